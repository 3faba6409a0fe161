#include "flipless/report/compare_report.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "flipless/core/error.h"
#include "flipless/report/svg_chart.h"

namespace flipless::report {

namespace {

using metrics::Metric;

std::string pct(const std::optional<double>& v, int decimals = 2) {
  return v ? fmt::format("{:.{}f}%", 100 * *v, decimals) : std::string("undefined");
}

std::string value_cell(const compare::Comparison& c, Metric m) {
  const auto& v = c.summary.value(m);
  if (!v) return "undefined";
  if (m == Metric::kAccuracyDelta) return fmt::format("{:+.2f} pts", 100 * *v);
  return pct(v);
}

std::string interval_cell(const compare::Comparison& c, Metric m) {
  const auto& iv = c.summary.intervals[m];
  if (!iv) return "";
  return fmt::format("[{:.2f}, {:.2f}]", 100 * iv->low, 100 * iv->high);
}

std::string count(double v) { return v == static_cast<double>(static_cast<long long>(v)) ? fmt::format("{}", static_cast<long long>(v)) : fmt::format("{:.2f}", v); }

std::string label_name(const compare::Comparison& c, std::int32_t label) {
  return c.label_names[static_cast<std::size_t>(label)];
}

std::string one_line(std::string s, std::size_t max_chars) {
  for (char& ch : s) {
    if (ch == '\n' || ch == '\r' || ch == '\t') ch = ' ';
  }
  if (s.size() > max_chars) {
    std::size_t cut = max_chars;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // keep UTF-8 whole
    s = s.substr(0, cut) + "...";
  }
  return s;
}

std::string example_text(const compare::FlipExample& ex) {
  return ex.text_b ? ex.text_a + " ||| " + *ex.text_b : ex.text_a;
}

std::string mcnemar_line(const compare::Comparison& c) {
  return fmt::format("McNemar exact test, old vs new: p = {:.4g} ({} negative vs {} positive flips)", c.summary.mcnemar_p,
                     count(c.summary.counts.negative_flips), count(c.summary.counts.positive_flips));
}

std::optional<double> nfr_of(const metrics::FlipCounts& fc) { return metrics::metric_value(fc, Metric::kNfr); }

nlohmann::json opt(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

nlohmann::json counts_json(const metrics::FlipCounts& fc) {
  return {{"both_correct", fc.both_correct}, {"negative_flips", fc.negative_flips}, {"positive_flips", fc.positive_flips},
          {"both_wrong", fc.both_wrong}, {"total", fc.total()}};
}

}  // namespace

CompareFormat parse_compare_format(const std::string& name) {
  if (name == "text") return CompareFormat::kText;
  if (name == "json") return CompareFormat::kJson;
  if (name == "markdown" || name == "md") return CompareFormat::kMarkdown;
  if (name == "html") return CompareFormat::kHtml;
  throw ConfigError(fmt::format("unknown format '{}' (expected text, json, markdown or html)", name));
}

std::string render_text(const compare::Comparison& c) {
  const auto& s = c.summary;
  std::string out;
  out += fmt::format("old: {}\nnew: {}\n{} examples, true labels from {}\n\n", c.old_source, c.new_source, s.n, c.labels_from);
  out += fmt::format("{:<16} {:>12}  {}\n", "metric", "value", "95% interval (bootstrap)");
  for (Metric m : metrics::kAllMetrics) {
    out += fmt::format("{:<16} {:>12}  {}\n", metrics::metric_label(m), value_cell(c, m), interval_cell(c, m));
  }
  out += fmt::format("\n{}\n\n", mcnemar_line(c));
  out += fmt::format("{:<12} {:>10} {:>10}\n", "", "new right", "new wrong");
  out += fmt::format("{:<12} {:>10} {:>10}\n", "old right", count(s.counts.both_correct), count(s.counts.negative_flips));
  out += fmt::format("{:<12} {:>10} {:>10}\n", "old wrong", count(s.counts.positive_flips), count(s.counts.both_wrong));

  out += fmt::format("\nper class\n{:<16} {:>8} {:>9} {:>9} {:>7} {:>7} {:>8}\n", "label", "n", "old acc", "new acc", "NF", "PF", "NFR");
  for (const auto& pc : s.per_class) {
    if (pc.counts.total() == 0) continue;
    out += fmt::format("{:<16} {:>8} {:>9} {:>9} {:>7} {:>7} {:>8}\n", one_line(label_name(c, pc.label), 16),
                       count(pc.counts.total()), pct(metrics::metric_value(pc.counts, Metric::kOldAccuracy), 1),
                       pct(metrics::metric_value(pc.counts, Metric::kNewAccuracy), 1), count(pc.counts.negative_flips),
                       count(pc.counts.positive_flips), pct(nfr_of(pc.counts)));
  }
  auto slices = [&](const std::vector<compare::SliceFlips>& rows, const char* title) {
    if (rows.empty()) return;
    out += fmt::format("\n{}\n{:<16} {:>8} {:>7} {:>7} {:>8}\n", title, "slice", "n", "NF", "PF", "NFR");
    for (const auto& r : rows) {
      out += fmt::format("{:<16} {:>8} {:>7} {:>7} {:>8}\n", r.name, count(r.counts.total()), count(r.counts.negative_flips),
                         count(r.counts.positive_flips), pct(nfr_of(r.counts)));
    }
  };
  slices(c.by_length, "flips by input length");
  slices(c.by_old_confidence, "flips by old-model confidence");
  if (!c.top_negative_flips.empty()) {
    out += fmt::format("\ntop {} negative flips (old right, new wrong){}\n", c.top_negative_flips.size(),
                       c.top_negative_flips.front().old_confidence ? ", most confident old answers first" : "");
    for (const auto& ex : c.top_negative_flips) {
      std::string conf;
      if (ex.old_confidence) conf += fmt::format(" old p={:.2f}", *ex.old_confidence);
      if (ex.new_confidence) conf += fmt::format(" new p={:.2f}", *ex.new_confidence);
      out += fmt::format("  {}  label={} new={}{}", one_line(ex.id, 24), label_name(c, ex.label), label_name(c, ex.new_pred), conf);
      if (!ex.text_a.empty()) out += "  " + one_line(example_text(ex), 90);
      out += "\n";
    }
  }
  return out;
}

std::string render_json(const compare::Comparison& c) {
  const auto& s = c.summary;
  nlohmann::json j;
  j["old"] = c.old_source;
  j["new"] = c.new_source;
  j["labels_from"] = c.labels_from;
  j["label_names"] = c.label_names;
  j["n"] = s.n;
  j["flip_table"] = counts_json(s.counts);
  nlohmann::json metrics_json = nlohmann::json::object();
  for (Metric m : metrics::kAllMetrics) {
    const auto& iv = s.intervals[m];
    metrics_json[std::string(metrics::metric_name(m))] = {
        {"value", opt(s.value(m))},
        {"ci95", iv ? nlohmann::json::array({iv->low, iv->high}) : nlohmann::json(nullptr)}};
  }
  j["metrics"] = metrics_json;
  j["mcnemar_p"] = s.mcnemar_p;
  j["per_class"] = nlohmann::json::array();
  for (const auto& pc : s.per_class) {
    nlohmann::json row = counts_json(pc.counts);
    row["label"] = label_name(c, pc.label);
    row["nfr"] = opt(nfr_of(pc.counts));
    j["per_class"].push_back(row);
  }
  auto slices = [&](const std::vector<compare::SliceFlips>& rows) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& r : rows) {
      nlohmann::json row = counts_json(r.counts);
      row["slice"] = r.name;
      row["nfr"] = opt(nfr_of(r.counts));
      arr.push_back(row);
    }
    return arr;
  };
  j["by_length"] = slices(c.by_length);
  j["by_old_confidence"] = slices(c.by_old_confidence);
  j["top_negative_flips"] = nlohmann::json::array();
  for (const auto& ex : c.top_negative_flips) {
    nlohmann::json row = {{"id", ex.id}, {"label", label_name(c, ex.label)}, {"old_pred", label_name(c, ex.old_pred)},
                          {"new_pred", label_name(c, ex.new_pred)}};
    if (ex.old_confidence) row["old_confidence"] = *ex.old_confidence;
    if (ex.new_confidence) row["new_confidence"] = *ex.new_confidence;
    if (!ex.text_a.empty()) row["text"] = ex.text_a;
    if (ex.text_b) row["text_pair"] = *ex.text_b;
    j["top_negative_flips"].push_back(row);
  }
  return j.dump(2) + "\n";
}

std::string render_markdown(const compare::Comparison& c) {
  const auto& s = c.summary;
  auto md = [](std::string text) {
    std::string out;
    for (char ch : one_line(std::move(text), 200)) {
      if (ch == '|') out += "\\|";
      else out += ch;
    }
    return out;
  };
  std::string out = "# flipless compare\n\n";
  out += fmt::format("- old: `{}`\n- new: `{}`\n- {} examples, true labels from `{}`\n\n", c.old_source, c.new_source, s.n, c.labels_from);
  out += "| metric | value | 95% interval |\n|---|---:|---|\n";
  for (Metric m : metrics::kAllMetrics) {
    out += fmt::format("| {} | {} | {} |\n", metrics::metric_label(m), value_cell(c, m), interval_cell(c, m));
  }
  out += fmt::format("\n{}\n\n", mcnemar_line(c));
  out += "| | new right | new wrong |\n|---|---:|---:|\n";
  out += fmt::format("| old right | {} | {} |\n| old wrong | {} | {} |\n\n", count(s.counts.both_correct),
                     count(s.counts.negative_flips), count(s.counts.positive_flips), count(s.counts.both_wrong));
  out += "## Per class\n\n| label | n | NF | PF | NFR |\n|---|---:|---:|---:|---:|\n";
  for (const auto& pc : s.per_class) {
    out += fmt::format("| {} | {} | {} | {} | {} |\n", md(label_name(c, pc.label)), count(pc.counts.total()),
                       count(pc.counts.negative_flips), count(pc.counts.positive_flips), pct(nfr_of(pc.counts)));
  }
  auto slices = [&](const std::vector<compare::SliceFlips>& rows, const char* title) {
    if (rows.empty()) return;
    out += fmt::format("\n## {}\n\n| slice | n | NF | PF | NFR |\n|---|---:|---:|---:|---:|\n", title);
    for (const auto& r : rows) {
      out += fmt::format("| {} | {} | {} | {} | {} |\n", r.name, count(r.counts.total()), count(r.counts.negative_flips),
                         count(r.counts.positive_flips), pct(nfr_of(r.counts)));
    }
  };
  slices(c.by_length, "Flips by input length");
  slices(c.by_old_confidence, "Flips by old-model confidence");
  if (!c.top_negative_flips.empty()) {
    out += "\n## Top negative flips\n\n| id | label | new | old p | text |\n|---|---|---|---:|---|\n";
    for (const auto& ex : c.top_negative_flips) {
      out += fmt::format("| {} | {} | {} | {} | {} |\n", md(ex.id), md(label_name(c, ex.label)), md(label_name(c, ex.new_pred)),
                         ex.old_confidence ? fmt::format("{:.2f}", *ex.old_confidence) : "", md(example_text(ex)));
    }
  }
  return out;
}

std::string render_html(const compare::Comparison& c) {
  const auto& s = c.summary;
  std::string out = R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>flipless compare</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0}td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.text{text-align:left;max-width:600px}
.charts{display:flex;flex-wrap:wrap;gap:24px}.muted{color:#666}
</style></head><body>
<h1>flipless compare</h1>
)";
  out += fmt::format("<p class=\"muted\">old: <code>{}</code><br>new: <code>{}</code><br>{} examples, true labels from <code>{}</code></p>\n",
                     html_escape(c.old_source), html_escape(c.new_source), s.n, html_escape(c.labels_from));
  out += "<h2>Metrics</h2><table id=\"metrics\"><tr><th>metric</th><th>value</th><th>95% interval</th></tr>\n";
  for (Metric m : metrics::kAllMetrics) {
    out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n", metrics::metric_label(m), value_cell(c, m), interval_cell(c, m));
  }
  out += fmt::format("</table><p>{}</p>\n", html_escape(mcnemar_line(c)));
  out += fmt::format(
      "<table id=\"flip-table\"><tr><th></th><th>new right</th><th>new wrong</th></tr>"
      "<tr><td>old right</td><td>{}</td><td>{}</td></tr><tr><td>old wrong</td><td>{}</td><td>{}</td></tr></table>\n",
      count(s.counts.both_correct), count(s.counts.negative_flips), count(s.counts.positive_flips), count(s.counts.both_wrong));

  out += "<h2>Charts</h2><div class=\"charts\">\n";
  {
    std::vector<std::string> cats;
    BarSeries nf{"negative flips", {}, "#d62728"}, pf{"positive flips", {}, "#2ca02c"};
    for (const auto& pc : s.per_class) {
      cats.push_back(label_name(c, pc.label));
      nf.values.push_back(pc.counts.negative_flips);
      pf.values.push_back(pc.counts.positive_flips);
    }
    out += svg_bar_chart("Flips per true class", cats, {nf, pf});
  }
  auto slice_chart = [&](const std::vector<compare::SliceFlips>& rows, const std::string& title) {
    if (rows.empty()) return;
    std::vector<std::string> cats;
    BarSeries nfr{"NFR", {}, "#d62728"}, pfr{"PFR", {}, "#2ca02c"};
    for (const auto& r : rows) {
      cats.push_back(r.name);
      nfr.values.push_back(100 * nfr_of(r.counts).value_or(0));
      pfr.values.push_back(100 * metrics::metric_value(r.counts, Metric::kPfr).value_or(0));
    }
    out += svg_bar_chart(title, cats, {nfr, pfr}, "%");
  };
  slice_chart(c.by_length, "Flip rates by input length");
  slice_chart(c.by_old_confidence, "Flip rates by old-model confidence");
  out += "</div>\n";

  out += "<h2>Per class</h2><table><tr><th>label</th><th>n</th><th>NF</th><th>PF</th><th>NFR</th></tr>\n";
  for (const auto& pc : s.per_class) {
    out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n", html_escape(label_name(c, pc.label)),
                       count(pc.counts.total()), count(pc.counts.negative_flips), count(pc.counts.positive_flips), pct(nfr_of(pc.counts)));
  }
  out += "</table>\n";
  if (!c.top_negative_flips.empty()) {
    out += "<h2>Top negative flips</h2><table><tr><th>id</th><th>label</th><th>new</th><th>old p</th><th>new p</th><th class=\"text\">text</th></tr>\n";
    for (const auto& ex : c.top_negative_flips) {
      out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"text\">{}</td></tr>\n",
                         html_escape(ex.id), html_escape(label_name(c, ex.label)), html_escape(label_name(c, ex.new_pred)),
                         ex.old_confidence ? fmt::format("{:.2f}", *ex.old_confidence) : "",
                         ex.new_confidence ? fmt::format("{:.2f}", *ex.new_confidence) : "", html_escape(example_text(ex)));
    }
    out += "</table>\n";
  }
  out += "<p class=\"muted\">Made by flipless. Intervals: paired bootstrap over examples, 95%.</p>\n</body></html>\n";
  return out;
}

std::string render(const compare::Comparison& c, CompareFormat format) {
  switch (format) {
    case CompareFormat::kText: return render_text(c);
    case CompareFormat::kJson: return render_json(c);
    case CompareFormat::kMarkdown: return render_markdown(c);
    case CompareFormat::kHtml: return render_html(c);
  }
  return render_text(c);
}

}  // namespace flipless::report
