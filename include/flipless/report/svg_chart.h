#pragma once
// Small self-contained SVG charts for HTML reports (no scripts, no network).
#include <string>
#include <vector>

namespace flipless::report {

struct BarSeries {
  std::string name;
  std::vector<double> values;  // one per category
  std::string color;           // CSS colour
};

// A grouped bar chart: one group of bars per category, one bar per series, with axis ticks,
// value labels and a legend. `value_suffix` is appended to tick and value labels ("%").
std::string svg_bar_chart(const std::string& title, const std::vector<std::string>& categories,
                          const std::vector<BarSeries>& series, const std::string& value_suffix = "");

// A labelled point with optional error bars (standard deviations).
struct ScatterPoint {
  std::string label;
  double x = 0, y = 0;
  double x_err = 0, y_err = 0;
  std::string color;
};

// A scatter chart with error bars and a label beside each point; axes fit the data.
std::string svg_scatter_chart(const std::string& title, const std::string& x_label, const std::string& y_label,
                              const std::vector<ScatterPoint>& points);

struct LineSeries {
  std::string name;
  std::vector<double> x, y;  // same length, x increasing
  std::string color;
};

// Lines with markers over a shared x axis, axes fit the data, legend below.
std::string svg_line_chart(const std::string& title, const std::string& x_label, const std::string& y_label,
                           const std::vector<LineSeries>& series);

// Escapes text for HTML/SVG element content and attribute values.
std::string html_escape(const std::string& text);

}  // namespace flipless::report
