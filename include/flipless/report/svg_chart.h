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

// Escapes text for HTML/SVG element content and attribute values.
std::string html_escape(const std::string& text);

}  // namespace flipless::report
