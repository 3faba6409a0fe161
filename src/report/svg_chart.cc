#include "flipless/report/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

namespace flipless::report {

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

namespace {
// A "nice" axis maximum: 1, 2 or 5 times a power of ten, at or above `v`.
double nice_ceiling(double v) {
  if (v <= 0) return 1;
  const double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * p >= v) return m * p;
  }
  return 10 * p;
}
std::string number(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e9) return fmt::format("{:.0f}", v);
  return std::fabs(v) >= 10 ? fmt::format("{:.1f}", v) : fmt::format("{:.2f}", v);
}
}  // namespace

std::string svg_bar_chart(const std::string& title, const std::vector<std::string>& categories,
                          const std::vector<BarSeries>& series, const std::string& value_suffix) {
  const double left = 56, right = 16, top = 40, bottom = 64;
  const double group_w = std::max(48.0, 22.0 * static_cast<double>(series.size()) + 20.0);
  const double plot_w = group_w * static_cast<double>(std::max<std::size_t>(categories.size(), 1));
  const double plot_h = 200;
  const double width = left + plot_w + right, height = top + plot_h + bottom;
  double vmax = 0;
  for (const auto& s : series) {
    for (double v : s.values) vmax = std::max(vmax, v);
  }
  const double axis_max = nice_ceiling(vmax);
  auto y_of = [&](double v) { return top + plot_h - plot_h * v / axis_max; };

  std::string svg = fmt::format(
      R"(<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {0:.0f} {1:.0f}" width="{0:.0f}" height="{1:.0f}" font-family="sans-serif" font-size="11">)",
      width, height);
  svg += fmt::format(R"(<title>{}</title><text x="{}" y="18" font-size="13" font-weight="bold">{}</text>)",
                     html_escape(title), left, html_escape(title));
  for (int t = 0; t <= 4; ++t) {
    const double v = axis_max * t / 4.0;
    const double y = y_of(v);
    svg += fmt::format(R"(<line x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" stroke="#ddd"/>)", left, left + plot_w, y, y);
    svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="end">{}{}</text>)", left - 4, y + 4, number(v),
                       html_escape(value_suffix));
  }
  const double bar_w = (group_w - 20.0) / static_cast<double>(std::max<std::size_t>(series.size(), 1));
  for (std::size_t c = 0; c < categories.size(); ++c) {
    const double gx = left + group_w * static_cast<double>(c) + 10.0;
    for (std::size_t s = 0; s < series.size(); ++s) {
      const double v = c < series[s].values.size() ? series[s].values[c] : 0.0;
      const double x = gx + bar_w * static_cast<double>(s);
      const double y = y_of(v);
      svg += fmt::format(R"(<rect class="bar" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"><title>{}: {}{}</title></rect>)",
                         x, y, bar_w - 2, top + plot_h - y, html_escape(series[s].color),
                         html_escape(series[s].name + " / " + categories[c]), number(v), html_escape(value_suffix));
    }
    svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="middle">{}</text>)", gx + (group_w - 20.0) / 2,
                       top + plot_h + 16, html_escape(categories[c]));
  }
  svg += fmt::format(R"(<line x1="{0:.1f}" x2="{1:.1f}" y1="{2:.1f}" y2="{2:.1f}" stroke="#333"/>)", left, left + plot_w,
                     top + plot_h);
  double lx = left;
  for (const auto& s : series) {
    svg += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="10" height="10" fill="{}"/><text x="{:.1f}" y="{:.1f}">{}</text>)",
                       lx, top + plot_h + 34, html_escape(s.color), lx + 14, top + plot_h + 43, html_escape(s.name));
    lx += 24 + 7.0 * static_cast<double>(s.name.size());
  }
  svg += "</svg>";
  return svg;
}

}  // namespace flipless::report
