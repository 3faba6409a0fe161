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
  const double plot_w = std::max(400.0, group_w * static_cast<double>(std::max<std::size_t>(categories.size(), 1)));
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

namespace {
struct Range {
  double lo = 0, hi = 1;
};
// Pads a data range by 8% each side and rounds it outward to the tick step.
Range fit(double lo, double hi) {
  if (!(hi > lo)) {
    lo -= 0.5;
    hi += 0.5;
  }
  const double pad = (hi - lo) * 0.08;
  lo -= pad;
  hi += pad;
  const double step = nice_ceiling((hi - lo) / 4) / 2;
  return {std::floor(lo / step) * step, std::ceil(hi / step) * step};
}
struct Frame {
  double left = 64, right = 24, top = 40, bottom = 56, w = 420, h = 260;
  Range x, y;
  double px(double v) const { return left + w * (v - x.lo) / (x.hi - x.lo); }
  double py(double v) const { return top + h - h * (v - y.lo) / (y.hi - y.lo); }
};
std::string frame_svg(const Frame& f, const std::string& title, const std::string& x_label, const std::string& y_label, double extra_h) {
  const double width = f.left + f.w + f.right, height = f.top + f.h + f.bottom + extra_h;
  std::string svg = fmt::format(
      R"(<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {0:.0f} {1:.0f}" width="{0:.0f}" height="{1:.0f}" font-family="sans-serif" font-size="11">)",
      width, height);
  svg += fmt::format(R"(<title>{}</title><text x="{}" y="18" font-size="13" font-weight="bold">{}</text>)", html_escape(title), f.left,
                     html_escape(title));
  for (int t = 0; t <= 4; ++t) {
    const double vy = f.y.lo + (f.y.hi - f.y.lo) * t / 4.0, vx = f.x.lo + (f.x.hi - f.x.lo) * t / 4.0;
    svg += fmt::format(R"(<line x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" stroke="#ddd"/>)", f.left, f.left + f.w, f.py(vy), f.py(vy));
    svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="end">{}</text>)", f.left - 4, f.py(vy) + 4, number(vy));
    svg += fmt::format(R"(<line x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" stroke="#eee"/>)", f.px(vx), f.px(vx), f.top, f.top + f.h);
    svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="middle">{}</text>)", f.px(vx), f.top + f.h + 14, number(vx));
  }
  svg += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="none" stroke="#333"/>)", f.left, f.top, f.w, f.h);
  svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" text-anchor="middle">{}</text>)", f.left + f.w / 2, f.top + f.h + 32, html_escape(x_label));
  svg += fmt::format(R"svg(<text transform="translate(14 {:.1f}) rotate(-90)" text-anchor="middle">{}</text>)svg", f.top + f.h / 2, html_escape(y_label));
  return svg;
}
}  // namespace

std::string svg_scatter_chart(const std::string& title, const std::string& x_label, const std::string& y_label,
                              const std::vector<ScatterPoint>& points) {
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const auto& p : points) {
    x0 = std::min(x0, p.x - p.x_err);
    x1 = std::max(x1, p.x + p.x_err);
    y0 = std::min(y0, p.y - p.y_err);
    y1 = std::max(y1, p.y + p.y_err);
  }
  if (points.empty()) x0 = y0 = 0, x1 = y1 = 1;
  Frame f;
  f.x = fit(x0, x1);
  f.y = fit(y0, y1);
  std::string svg = frame_svg(f, title, x_label, y_label, 0);
  for (const auto& p : points) {
    const double cx = f.px(p.x), cy = f.py(p.y);
    if (p.x_err > 0) svg += fmt::format(R"(<line x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" stroke="{}"/>)", f.px(p.x - p.x_err), f.px(p.x + p.x_err), cy, cy, html_escape(p.color));
    if (p.y_err > 0) svg += fmt::format(R"(<line x1="{:.1f}" x2="{:.1f}" y1="{:.1f}" y2="{:.1f}" stroke="{}"/>)", cx, cx, f.py(p.y - p.y_err), f.py(p.y + p.y_err), html_escape(p.color));
    svg += fmt::format(R"(<circle class="point" cx="{:.1f}" cy="{:.1f}" r="4.5" fill="{}"><title>{}: {} , {}</title></circle>)", cx, cy,
                       html_escape(p.color), html_escape(p.label), number(p.x), number(p.y));
    svg += fmt::format(R"(<text x="{:.1f}" y="{:.1f}">{}</text>)", cx + 7, cy - 6, html_escape(p.label));
  }
  return svg + "</svg>";
}

std::string svg_line_chart(const std::string& title, const std::string& x_label, const std::string& y_label,
                           const std::vector<LineSeries>& series) {
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const auto& s : series) {
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      x0 = std::min(x0, s.x[i]);
      x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]);
      y1 = std::max(y1, s.y[i]);
    }
  }
  if (x0 > x1) x0 = y0 = 0, x1 = y1 = 1;
  Frame f;
  f.x = fit(x0, x1);
  f.y = fit(y0, y1);
  std::string svg = frame_svg(f, title, x_label, y_label, 16.0 * static_cast<double>((series.size() + 2) / 3));
  for (std::size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    std::string path;
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) path += fmt::format("{}{:.1f},{:.1f}", i ? " L" : "M", f.px(s.x[i]), f.py(s.y[i]));
    svg += fmt::format(R"(<path class="line" d="{}" fill="none" stroke="{}" stroke-width="2"/>)", path, html_escape(s.color));
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      svg += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"><title>{}: {} , {}</title></circle>)", f.px(s.x[i]), f.py(s.y[i]),
                         html_escape(s.color), html_escape(s.name), number(s.x[i]), number(s.y[i]));
    }
    const double lx = f.left + 150.0 * static_cast<double>(k % 3), ly = f.top + f.h + 46 + 16.0 * static_cast<double>(k / 3);
    svg += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="10" height="10" fill="{}"/><text x="{:.1f}" y="{:.1f}">{}</text>)", lx, ly,
                       html_escape(s.color), lx + 14, ly + 9, html_escape(s.name));
  }
  return svg + "</svg>";
}

}  // namespace flipless::report
