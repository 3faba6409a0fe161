#include "flipless/report/experiment_report.h"

#include <algorithm>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "flipless/metrics/uncertainty.h"
#include "flipless/report/svg_chart.h"

namespace flipless::report {

namespace {

using json = nlohmann::json;

const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

metrics::MeanStd ms(const std::vector<double>& v) { return v.empty() ? metrics::MeanStd{} : metrics::mean_std(v); }
std::string pct(const std::vector<double>& v) { return v.empty() ? "–" : metrics::format_mean_std(v); }
std::string rel(std::optional<double> r) { return r ? fmt::format("{:.1f}%", 100 * *r) : "–"; }
std::string met(bool ok) { return ok ? "met" : "not met"; }

// A table rendered the same in Markdown, HTML and a terminal.
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::string markdown() const {
    std::string s = "| " + fmt::format("{}", fmt::join(header, " | ")) + " |\n|";
    for (std::size_t i = 0; i < header.size(); ++i) s += i == 0 ? "---|" : "---:|";
    s += "\n";
    for (const auto& r : rows) s += "| " + fmt::format("{}", fmt::join(r, " | ")) + " |\n";
    return s;
  }
  std::string html() const {
    std::string s = "<table><thead><tr>";
    for (const auto& h : header) s += "<th>" + html_escape(h) + "</th>";
    s += "</tr></thead><tbody>";
    for (const auto& r : rows) {
      s += "<tr>";
      for (std::size_t i = 0; i < r.size(); ++i) s += (i == 0 ? "<td>" : "<td class=\"num\">") + html_escape(r[i]) + "</td>";
      s += "</tr>";
    }
    return s + "</tbody></table>";
  }
  std::string text() const {
    std::vector<std::size_t> w(header.size(), 0);
    auto width = [](const std::string& s) {  // UTF-8 code points
      std::size_t n = 0;
      for (unsigned char ch : s) n += (ch & 0xC0) != 0x80;
      return n;
    };
    for (std::size_t i = 0; i < header.size(); ++i) w[i] = width(header[i]);
    for (const auto& r : rows) {
      for (std::size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], width(r[i]));
    }
    auto line = [&](const std::vector<std::string>& r) {
      std::string s;
      for (std::size_t i = 0; i < r.size(); ++i) {
        const std::string pad(w[i] - width(r[i]), ' ');
        s += i == 0 ? r[i] + pad : "  " + pad + r[i];
      }
      return s + "\n";
    };
    std::string s = line(header);
    for (const auto& r : rows) s += line(r);
    return s;
  }
};

// ---- The numbers as sentences and tables (shared by every format) ----

bool has_numbers(const MethodRow& m) { return m.not_applicable.empty() && m.seeds > 0; }

std::string interval_vs_vanilla(const PairedDifference& p) {
  return fmt::format("{:+.2f} [{:+.2f}, {:+.2f}]{}", 100 * p.diff, 100 * p.lo, 100 * p.hi, p.hi < 0 ? " lower" : p.lo > 0 ? " higher" : " not clear");
}

std::vector<std::string> main_row(const MethodRow& m, bool with_reference) {
  std::vector<std::string> row;
  if (!m.not_applicable.empty()) {
    row = {m.label, "–", "n/a", "n/a", "–", "–", "–", "–"};
  } else if (m.seeds == 0) {
    row = {m.label, "0", "–", "–", "–", "–", "–", "–"};
  } else {
    row = {m.label, std::to_string(m.seeds), pct(m.nfr), pct(m.accuracy), rel(m.reduction_vs_vanilla), rel(m.reduction_vs_strongest),
           m.minus_vanilla ? interval_vs_vanilla(*m.minus_vanilla) : "–",
           m.accuracy_change ? fmt::format("{:+.2f}", 100 * *m.accuracy_change) : "–"};
  }
  if (with_reference) {
    auto value = [](std::optional<double> v) { return v ? fmt::format("{:.2f}", 100 * *v) : std::string("–"); };
    row.push_back(value(m.reference_nfr));
    row.push_back(value(m.reference_accuracy));
    row.push_back(rel(m.reference_reduction));
  }
  if (!m.not_applicable.empty()) {
    row.push_back(m.not_applicable);
  } else if (m.seeds == 0) {
    row.push_back("not run yet");
  } else {
    row.push_back(m.chosen ? *m.chosen + (m.chosen_fallback ? " (none on par: most accurate)" : "") : "–");
  }
  return row;
}

Table main_table(const ExperimentReport& r, const TaskReport& t) {
  const bool with_reference = !t.reference_label.empty();
  Table main{{"method", "seeds", "NFR %", "accuracy %", "NF reduction vs vanilla",
              fmt::format("vs strongest baseline{}", t.strongest_label ? " (" + *t.strongest_label + ")" : ""), "NFR − vanilla [95% CI]",
              "accuracy − vanilla"},
             {}};
  if (with_reference) {
    for (const char* h : {"reference NFR %", "reference acc %", "reference NF reduction"}) main.header.push_back(h);
  }
  main.header.push_back("chosen setting (seed " + std::to_string(r.seeds.front()) + ")");
  for (const auto& m : t.methods) main.rows.push_back(main_row(m, with_reference));
  return main;
}

// Where the reference columns come from (empty without a reference).
std::string reference_line(const TaskReport& t) {
  if (t.reference_label.empty()) return {};
  return fmt::format("Reference columns: {}{}, as given in the experiment config (not computed here); its NF reduction is against its "
                     "own vanilla row.",
                     t.reference_label, t.reference_old_accuracy ? fmt::format(", old model {:.2f}%", 100 * *t.reference_old_accuracy) : "");
}

// Which baseline the "vs strongest baseline" column and the claims compare with, and why.
std::string strongest_line(const TaskReport& t) {
  if (!t.strongest_label) return {};
  std::vector<std::string> aside;
  for (const auto& b : t.baselines_set_aside) aside.push_back(fmt::format("{} ({:+.2f} points)", b.label, 100 * b.accuracy_change));
  const auto band = fmt::format("{:g} point", 100 * kBaselineAccuracyBand);
  if (t.strongest_outside_band) {
    return fmt::format("Strongest baseline (its column and the claims): {}, the lowest mean NFR of all the baselines, since none is within {} "
                       "of vanilla's accuracy: {}.",
                       *t.strongest_label, band, fmt::join(aside, ", "));
  }
  return fmt::format("Strongest baseline (its column and the claims): {}, the lowest mean NFR among the baselines at most {} less accurate "
                     "than vanilla, competitors at par as in the paper{}.",
                     *t.strongest_label, band,
                     aside.empty() ? std::string() : fmt::format("; set aside for accuracy: {}", fmt::join(aside, ", ")));
}

std::string intro_line(const TaskReport& t) {
  const std::string old_line = !t.old_model_per_seed ? fmt::format("Old model accuracy {:.2f}%", 100 * t.old_accuracy)
                                                     : fmt::format("Old model accuracy {}% (one old model per seed, {} so far)",
                                                                   pct(t.old_accuracy_per_model), t.old_accuracy_per_model.size());
  const std::string math = t.precision.empty() ? ""
                           : t.precision == "bf16" ? "; new models trained and evaluated with bf16 autocast (parameters and optimizer in fp32)"
                                                   : fmt::format("; new models in {}", t.precision);
  const std::string members = !t.ensembles_share_members ? ""
                              : " The new-model ensembles and ELODI's reference ensembles are drawn from the seeds' own vanilla models "
                                "(ensemble_members: other_seeds), so they overlap across seeds and their spread over seeds understates "
                                "their variance.";
  return fmt::format("{}; {} regression-set examples{}.{}", old_line, t.examples, math, members);
}

std::string upgrade_line(const UpgradeCheck& u) {
  return u.is_upgrade ? fmt::format("Upgrade check: the new model alone (vanilla) is {:.2f}% against the old model's {:.2f}%, {:+.2f} points: "
                                    "an upgrade (at least 2 points more accurate).", 100 * u.new_accuracy, 100 * u.old_accuracy, 100 * u.gain)
                      : fmt::format("Upgrade check: the new model alone (vanilla) is {:.2f}% against the old model's {:.2f}%, {:+.2f} points: "
                                    "NOT an upgrade (less than 2 points more accurate); do not read this table as one.",
                                    100 * u.new_accuracy, 100 * u.old_accuracy, 100 * u.gain);
}

Table claims_table(const TaskReport& t, const ClaimsCheck& c) {
  auto interval = [](const std::optional<PairedDifference>& p) {
    if (!p || !p->rel) return std::string("–");
    return fmt::format("{:.1f}% [{:.1f}, {:.1f}]", 100 * *p->rel, 100 * p->rel_lo.value_or(0.0), 100 * p->rel_hi.value_or(0.0));
  };
  auto difference = [](const std::optional<PairedDifference>& p) {
    return p ? fmt::format("{:+.2f} [{:+.2f}, {:+.2f}] points", 100 * p->diff, 100 * p->lo, 100 * p->hi) : std::string("–");
  };
  Table claims{{"claim (" + c.label + ")", "measured", "met?"}, {}};
  claims.rows.push_back({"removes ≥ 70% of vanilla's negative flips, accuracy ≥ vanilla − 0.2 point",
                         fmt::format("{} fewer flips [95% CI]; accuracy {:+.2f} points", interval(c.vs_vanilla), 100 * c.accuracy_change),
                         met(c.removes_70_percent_at_par)});
  claims.rows.push_back({"≥ 30% fewer negative flips than the strongest baseline" + (t.strongest_label ? " (" + *t.strongest_label + ")" : std::string()),
                         interval(c.vs_strongest), met(c.fewer_than_strongest_30)});
  claims.rows.push_back({"its NFR − vanilla's interval excludes 0", difference(c.vs_vanilla), met(c.interval_vs_vanilla_excludes_0)});
  claims.rows.push_back({"its NFR − the strongest baseline's interval excludes 0", difference(c.vs_strongest), met(c.interval_vs_strongest_excludes_0)});
  return claims;
}

Table cache_table(const CacheTable& cache) {
  Table table{{"cached %", "NFR % nearest (paper)", "acc %", "NFR % new alone on miss", "acc %", "NFR % tuned distance", "acc %", "NFR % emulator", "acc %",
               "NF reduction kept (tuned)", "NF reduction kept (emulator)", "neighbour's old label = own %", "emulator's = own %", "new model's = own %"},
              {}};
  auto kept = [](std::optional<double> k) { return k ? fmt::format("{:.0f}%", 100 * *k) : std::string("–"); };
  for (const auto& row : cache.rows) {
    std::vector<std::string> cells = {fmt::format("{:g}", row.percent)};
    for (const auto& p : kCachePolicies) {
      const auto it = row.policies.find(p.key);
      cells.push_back(it != row.policies.end() ? pct(it->second.nfr) : "–");
      cells.push_back(it != row.policies.end() ? pct(it->second.accuracy) : "–");
    }
    cells.push_back(kept(row.kept_tuned));
    cells.push_back(kept(row.kept_emulator));
    for (const char* a : kCacheAgreements) {
      const auto it = row.agreements.find(a);
      cells.push_back(it != row.agreements.end() ? pct(it->second) : "–");
    }
    table.rows.push_back(std::move(cells));
  }
  return table;
}

// What a method's full fusion is called in table 5's notes and charts.
std::string full_name(const TaskReport& t, const CacheTable& cache) {
  const auto& m = t.methods[cache.method];
  return m.folder == "gated_fusion" ? std::string("full Gated Fusion") : "full " + m.label;
}

std::string cache_note(const TaskReport& t, const CacheTable& cache) {
  const auto full = full_name(t, cache);
  const std::string unclear =
      cache.clear_reduction ? std::string()
                            : fmt::format("The {}'s NFR is not clearly below vanilla's here (its paired interval against vanilla's does not "
                                          "lie below 0), so the share of its reduction a policy keeps is a ratio of noise and is not shown (–). ",
                                          full.substr(5));
  const std::string regate = !cache.reevaluated_gate
                                 ? std::string()
                                 : " A gate that also reads the two models' probabilities is re-evaluated on the old logits each policy "
                                   "gives an input not cached (as flipless serve does).";
  return unclear + fmt::format(
      "Mean ± std over seeds × random caches. NF reduction kept: (vanilla NFR − NFR) / (vanilla NFR − {} NFR), vanilla {:.2f}%, "
      "{} {:.2f}%. The tuned distance is chosen on validation for each X. The emulator is a ridge regression from the new "
      "model's pooled embedding to the old logits, fitted on the cached inputs only (strength by 5-fold cross-validation on them), "
      "used for every input not cached. The last three columns, over the inputs not cached: how often the neighbour's cached old "
      "label, the emulator's label and the new model's own label are the input's own old label; a fallback helps only where it "
      "beats the new model.{}",
      full, 100 * cache.vanilla_nfr, full, 100 * cache.full_nfr, regate);
}

Table routing_table(const GateRouting& g) {
  Table routing{{"category (old vs vanilla)", "examples (all seeds)", "mean gate (1 = new model)"}, {}};
  for (std::size_t k = 0; k < std::size(GateRouting::kCategories); ++k) {
    routing.rows.push_back({GateRouting::kCategories[k], fmt::format("{:.0f}", g.examples[k]), g.examples[k] > 0 ? fmt::format("{:.3f}", g.mean_gate[k]) : "–"});
  }
  return routing;
}

std::string auc_line(const GateRouting& g) {
  if (g.auc.empty()) return "AUC: undefined (no vanilla regressions)";
  return fmt::format("AUC of the gate separating vanilla's negative flips from the rest (a lower gate, i.e. more of the old model, on the flips): "
                     "{:.3f} ± {:.3f} over {} seeds (0.5 = no routing).", ms(g.auc).mean, ms(g.auc).std, g.auc.size());
}

std::string drift_line(const GateRouting& g) {
  return fmt::format("How far training moved the gate from its random initialisation, over {} seeds: its weight matrices by {:.2f} ± {:.2f}% "
                     "(L2 norm of the change relative to theirs; the largest change of one parameter {:.1e}); its value on dev inputs by "
                     "{:.3f} ± {:.3f} on average (0-1 scale), with a spread over inputs of {:.3f} ± {:.3f} (standard deviation of the "
                     "change: near 0, every input moved alike, which shifts the mix without routing).",
                     g.weight_change.size(), 100 * ms(g.weight_change).mean, 100 * ms(g.weight_change).std, ms(g.max_abs_change).mean,
                     ms(g.output_change).mean, ms(g.output_change).std, ms(g.output_change_spread).mean, ms(g.output_change_spread).std);
}

// ---- A task's sections as blocks, laid out as Markdown or HTML ----
// Both formats hold the same blocks in the same order; where the HTML has the charts, the
// Markdown points to the HTML.

struct Block {
  enum Kind { kHeading, kSubheading, kParagraph, kStrong, kTable, kCharts } kind = kParagraph;
  std::string text = {};  // headings and paragraphs
  Table table = {};       // kTable
  std::string html = {};  // a subheading's HTML text where it differs from the Markdown's
};

Block subheading(std::string text, std::string html = {}) { return {Block::kSubheading, std::move(text), {}, std::move(html)}; }
Block paragraph(std::string text) { return {Block::kParagraph, std::move(text)}; }
Block table(Table t) { return {Block::kTable, {}, std::move(t)}; }

// The sections after the main table, each present when its numbers are.
void section_blocks(const TaskReport& t, std::vector<Block>& out) {
  for (const auto& c : t.claims) {
    out.push_back(subheading("The paper's claims, measured"));
    out.push_back(table(claims_table(t, c)));
  }
  if (t.noise_floor) {
    out.push_back(paragraph(fmt::format("Noise floor: NFR between two vanilla seeds {}% (over {} consecutive seed pairs). A method's NFR change smaller "
                                        "than its bootstrap interval is noise.", pct(*t.noise_floor), t.noise_floor->size())));
  }
  if (t.fix_rates) {
    Table fixes{{"method", "fix rate %", "new-fault rate %"}, {}};
    for (const auto& f : *t.fix_rates) fixes.rows.push_back({f.label, pct(f.fix), pct(f.new_fault)});
    out.push_back(subheading("Fix and new-fault rates against vanilla (the paper's section 5.5)", "Fix and new-fault rates against vanilla (section 5.5)"));
    out.push_back(table(std::move(fixes)));
  }
  Table sizes{{"new-model ensemble", "NFR %", "accuracy %"}, {}};
  for (const auto& m : t.methods) {
    if (m.ensemble_size > 0 && m.seeds > 0) sizes.rows.push_back({fmt::format("{} models", m.ensemble_size), pct(m.nfr), pct(m.accuracy)});
  }
  if (!sizes.rows.empty()) {
    out.push_back(subheading("New-model ensembles by size (table 3)"));
    out.push_back(table(std::move(sizes)));
  }
  if (const auto& d = t.drop_old_model) {
    out.push_back(subheading("Dropping the old model at inference (table 4)"));
    out.push_back(table({{"Gated Fusion", "NFR %", "accuracy %"},
                         {{"with the old model", pct(d->nfr), pct(d->accuracy)}, {"old model dropped at inference", pct(d->alone_nfr), pct(d->alone_accuracy)}}}));
  }
  for (const auto& cache : t.caches) {
    const auto& m = t.methods[cache.method];
    out.push_back(subheading(fmt::format("{} with a partial cache of old logits (table 5)", m.folder == "gated_fusion" ? std::string("Gated Fusion") : m.label)));
    out.push_back(table(cache_table(cache)));
    out.push_back(paragraph(cache_note(t, cache)));
  }
  for (const auto& g : t.gates) {
    const auto& m = t.methods[g.method];
    out.push_back(subheading(m.folder == "gated_fusion" ? std::string("Does the gate route? (mean gate by category)")
                                                        : fmt::format("Does the gate route? {} (mean gate by category)", m.label)));
    out.push_back(table(routing_table(g)));
    out.push_back(paragraph(auc_line(g)));
    if (!g.weight_change.empty()) out.push_back(paragraph(drift_line(g)));
  }
}

std::vector<Block> task_blocks(const ExperimentReport& r, const TaskReport& t) {
  std::vector<Block> out = {{Block::kHeading, t.name}};
  if (!t.old_finished) {
    out.push_back(paragraph("The old model has not finished yet."));
    return out;
  }
  out.push_back(paragraph(intro_line(t)));
  out.push_back(table(main_table(r, t)));
  if (!t.reference_label.empty()) out.push_back(paragraph(reference_line(t)));
  if (t.strongest_label) out.push_back(paragraph(strongest_line(t)));
  if (t.upgrade) out.push_back({Block::kStrong, upgrade_line(*t.upgrade)});
  section_blocks(t, out);
  out.push_back({Block::kCharts});
  return out;
}

std::string markdown(const Block& b) {
  switch (b.kind) {
    case Block::kHeading: return "## " + b.text + "\n\n";
    case Block::kSubheading: return "### " + b.text + "\n\n";
    case Block::kParagraph:
    case Block::kStrong: return b.text + "\n\n";
    case Block::kTable: return b.table.markdown() + "\n";
    case Block::kCharts: return "Charts: see report.html beside this file (accuracy against NFR, alpha and T sweeps, gate values by flip category, per-class flips).\n\n";
  }
  return {};
}

// ---- Charts (HTML only) ----

std::string trade_off_chart(const TaskReport& t) {
  std::vector<ScatterPoint> points;
  for (std::size_t k = 0; k < t.methods.size(); ++k) {
    const auto& m = t.methods[k];
    if (!has_numbers(m)) continue;
    const auto a = ms(m.accuracy), n = ms(m.nfr);
    points.push_back({m.label, 100 * n.mean, 100 * a.mean, 100 * n.std, 100 * a.std, kColors[k % 10]});
  }
  points.push_back({"old model", 0.0, 100 * t.old_accuracy, 0, 0, "#000"});
  return svg_scatter_chart(t.name + ": accuracy against NFR (mean ± std over seeds)", "NFR % (lower is better)", "accuracy %", points);
}

std::string sweep_charts(const TaskReport& t) {
  std::string charts;
  if (!t.alpha_sweeps.empty()) {
    std::vector<LineSeries> nfr_lines, acc_lines;
    for (std::size_t i = 0; i < t.alpha_sweeps.size(); ++i) {
      const auto& s = t.alpha_sweeps[i];
      nfr_lines.push_back({s.label, s.x, s.nfr_percent, kColors[i % 10]});
      acc_lines.push_back({s.label, s.x, s.accuracy_percent, kColors[i % 10]});
    }
    charts += svg_line_chart(t.name + ": alpha sweep, validation NFR", "alpha (weight of the new model)", "NFR %", nfr_lines);
    charts += svg_line_chart(t.name + ": alpha sweep, validation accuracy", "alpha (weight of the new model)", "accuracy %", acc_lines);
  }
  if (const auto& s = t.temperature_sweep) {
    charts += svg_line_chart(t.name + ": Gated Fusion T sweep, validation NFR", "T (mean over other grid values)", "NFR %",
                             {{"validation NFR", s->x, s->nfr_percent, kColors[3]}});
    charts += svg_line_chart(t.name + ": Gated Fusion T sweep, validation accuracy", "T (mean over other grid values)", "accuracy %",
                             {{"validation accuracy", s->x, s->accuracy_percent, kColors[0]}});
  }
  return charts;
}

std::string cache_chart(const TaskReport& t, const CacheTable& cache) {
  std::vector<LineSeries> lines;
  for (std::size_t p = 0; p < std::size(kCachePolicies); ++p) {
    LineSeries line{kCachePolicies[p].name, {}, {}, kColors[p]};
    for (const auto& row : cache.rows) {
      const auto it = row.policies.find(kCachePolicies[p].key);
      if (it == row.policies.end()) continue;
      line.x.push_back(row.percent);
      line.y.push_back(100 * ms(it->second.nfr).mean);
    }
    lines.push_back(std::move(line));
  }
  const double x0 = cache.rows.front().percent, x1 = cache.rows.back().percent;
  lines.push_back({"vanilla", {x0, x1}, {100 * cache.vanilla_nfr, 100 * cache.vanilla_nfr}, kColors[7]});
  lines.push_back({full_name(t, cache), {x0, x1}, {100 * cache.full_nfr, 100 * cache.full_nfr}, kColors[4]});
  const auto& m = t.methods[cache.method];
  return svg_line_chart(t.name + (m.folder == "gated_fusion" ? std::string() : ", " + m.label) + ": NFR by share of inputs cached", "% of eval inputs with cached old logits", "NFR %", lines);
}

std::string charts_html(const TaskReport& t) {
  std::string charts = trade_off_chart(t) + sweep_charts(t);
  if (!t.gates.empty()) {
    const std::vector<std::string> cats(std::begin(GateRouting::kCategories), std::end(GateRouting::kCategories));
    std::vector<BarSeries> series;
    for (const auto& g : t.gates) {
      const auto& m = t.methods[g.method];
      series.push_back({m.folder == "gated_fusion" ? std::string("Gated Fusion gate") : m.label, g.mean_gate, kColors[(2 + g.method) % 10]});
    }
    if (series.size() == 1) series.front().color = kColors[2];
    charts += svg_bar_chart(t.name + ": mean gate (1 = new) by old vs vanilla", cats, series);
  }
  if (!t.class_flips.empty()) {
    std::vector<BarSeries> series;
    for (const auto& f : t.class_flips) series.push_back({t.methods[f.method].label, f.per_class, kColors[f.method % 10]});
    charts += svg_bar_chart(t.name + ": negative flips by true class", t.label_names, series);
  }
  for (const auto& cache : t.caches) charts += cache_chart(t, cache);
  return "<div class=\"charts\">" + charts + "</div>";
}

std::string html(const Block& b, const TaskReport& t) {
  switch (b.kind) {
    case Block::kHeading: return "<h2>" + html_escape(b.text) + "</h2>";
    case Block::kSubheading: return "<h3>" + (b.html.empty() ? b.text : b.html) + "</h3>";  // fixed titles, written as they are
    case Block::kParagraph: return "<p>" + html_escape(b.text) + "</p>";
    case Block::kStrong: return "<p><b>" + html_escape(b.text) + "</b></p>";
    case Block::kTable: return b.table.html();
    case Block::kCharts: return charts_html(t);
  }
  return {};
}

// ---- JSON ----

json mean_std_json(const std::vector<double>& v) { return {{"mean", ms(v).mean}, {"std", ms(v).std}, {"per_seed", v}}; }

// Threads per unit, null where a result.json from before 2026-12-02 does not say.
bool known_any(const std::vector<std::optional<std::int64_t>>& v) {
  return std::any_of(v.begin(), v.end(), [](const auto& t) { return t.has_value(); });
}
json threads_json(const std::vector<std::optional<std::int64_t>>& v) {
  json out = json::array();
  for (const auto& t : v) out.push_back(t ? json(*t) : json());
  return out;
}

json method_json(const MethodRow& m) {
  json jm = {{"method", m.folder}, {"seeds", m.seeds}};
  if (!m.not_applicable.empty()) {
    jm["not_applicable"] = m.not_applicable;
    return jm;
  }
  if (m.seeds == 0) return jm;
  if (const auto& p = m.minus_vanilla) jm["nfr_minus_vanilla"] = {{"mean", p->diff}, {"lo", p->lo}, {"hi", p->hi}, {"seeds", p->seeds}, {"below_vanilla", p->hi < 0}};
  jm["accuracy"] = mean_std_json(m.accuracy);
  jm["nfr"] = mean_std_json(m.nfr);
  // Wall time per unit, per seed (the key golden comparisons leave out: it is the machine's).
  if (!m.seconds.empty()) jm["seconds"] = m.seconds;
  if (known_any(m.threads)) jm["threads"] = threads_json(m.threads);  // beside seconds: seconds x threads is core time
  if (m.reduction_vs_vanilla) jm["relative_nf_reduction_vs_vanilla"] = *m.reduction_vs_vanilla;
  if (m.reduction_vs_strongest) jm["relative_nf_reduction_vs_strongest_baseline"] = *m.reduction_vs_strongest;
  if (m.accuracy_change) jm["accuracy_change_vs_vanilla"] = *m.accuracy_change;
  if (m.reference_nfr) {
    jm["reference"] = {{"nfr", *m.reference_nfr}, {"accuracy", *m.reference_accuracy}};
    if (m.reference_reduction) jm["reference"]["relative_nf_reduction_vs_vanilla"] = *m.reference_reduction;
  }
  return jm;
}

json claims_json(const TaskReport& t, const ClaimsCheck& c) {
  json jc = {{"method", c.folder}, {"accuracy_change_vs_vanilla", c.accuracy_change},
             {"removes_70_percent_at_par", c.removes_70_percent_at_par}, {"30_percent_fewer_than_strongest", c.fewer_than_strongest_30},
             {"interval_vs_vanilla_excludes_0", c.interval_vs_vanilla_excludes_0}, {"interval_vs_strongest_excludes_0", c.interval_vs_strongest_excludes_0}};
  auto reduction = [](const PairedDifference& p) { return json{{"value", *p.rel}, {"lo", p.rel_lo.value_or(0)}, {"hi", p.rel_hi.value_or(0)}}; };
  if (c.vs_vanilla && c.vs_vanilla->rel) jc["relative_reduction_vs_vanilla"] = reduction(*c.vs_vanilla);
  if (c.vs_strongest && c.vs_strongest->rel) jc["relative_reduction_vs_strongest"] = reduction(*c.vs_strongest);
  if (t.strongest_folder) jc["strongest_baseline"] = *t.strongest_folder;
  return jc;
}

json cache_json(const CacheTable& cache) {
  json rows = json::array();
  for (const auto& row : cache.rows) {
    json jrow = {{"percent", row.percent}};
    for (const auto& p : kCachePolicies) {
      const auto it = row.policies.find(p.key);
      if (it == row.policies.end()) continue;
      const auto& [n, a] = it->second;
      jrow[p.key] = {{"nfr", ms(n).mean}, {"nfr_std", ms(n).std}, {"accuracy", ms(a).mean}, {"accuracy_std", ms(a).std}, {"runs", n.size()}};
    }
    jrow["nf_reduction_kept_tuned"] = row.kept_tuned ? json(*row.kept_tuned) : json(nullptr);
    jrow["nf_reduction_kept_emulator"] = row.kept_emulator ? json(*row.kept_emulator) : json(nullptr);
    if (!cache.clear_reduction) jrow["full_reduction_unclear"] = true;
    for (const auto& [key, values] : row.agreements) jrow[key] = ms(values).mean;
    rows.push_back(jrow);
  }
  return rows;
}

json task_json(const TaskReport& t) {
  json jt = {{"task", t.name}, {"methods", json::array()}};
  if (!t.old_finished) return jt;
  for (const auto& m : t.methods) jt["methods"].push_back(method_json(m));
  jt["old_accuracy"] = t.old_accuracy;
  if (!t.reference_label.empty()) {
    jt["reference"] = {{"label", t.reference_label}};
    if (t.reference_old_accuracy) jt["reference"]["old_accuracy"] = *t.reference_old_accuracy;
  }
  jt["old_accuracy_per_model"] = t.old_accuracy_per_model;
  if (!t.precision.empty()) jt["precision"] = t.precision;
  if (!t.old_model_seconds.empty()) jt["seconds"] = {{"old_models", t.old_model_seconds}};  // wall time, as the methods' below
  if (known_any(t.old_model_threads)) jt["threads"] = {{"old_models", threads_json(t.old_model_threads)}};
  if (t.ensembles_share_members) jt["ensembles_share_members"] = true;
  if (const auto& u = t.upgrade) jt["upgrade"] = {{"old_accuracy", u->old_accuracy}, {"new_accuracy", u->new_accuracy}, {"gain", u->gain}, {"is_upgrade", u->is_upgrade}};
  if (t.strongest_folder) {
    json aside = json::array();
    for (const auto& b : t.baselines_set_aside) aside.push_back({{"method", b.folder}, {"accuracy_change_vs_vanilla", b.accuracy_change}});
    jt["strongest_baseline"] = {{"method", *t.strongest_folder}, {"accuracy_band", kBaselineAccuracyBand}, {"outside_band", t.strongest_outside_band},
                                {"set_aside", aside}};
  }
  for (const auto& c : t.claims) jt["claims"].push_back(claims_json(t, c));
  if (t.noise_floor) jt["noise_floor_nfr"] = *t.noise_floor;
  if (const auto& d = t.drop_old_model) jt["gated_fusion_without_old"] = {{"accuracy", d->alone_accuracy}, {"nfr", d->alone_nfr}};
  // Table 5 per gated method, by folder (reports written before the variants had one carried the
  // paper's Gated Fusion alone, as "cache_experiment").
  for (const auto& cache : t.caches) jt["cache_experiments"][t.methods[cache.method].folder] = cache_json(cache);
  auto routing_json = [](const GateRouting& g) {
    json jg;
    for (std::size_t k = 0; k < std::size(GateRouting::kCategories); ++k) {
      jg[GateRouting::kCategories[k]] = {{"mean_gate", g.mean_gate[k]}, {"examples", g.examples[k]}};
    }
    return jg;
  };
  for (const auto& g : t.gates) {
    const auto& folder = t.methods[g.method].folder;
    if (folder == "gated_fusion") {  // the paper's: the keys earlier reports had
      jt["gate_by_category"] = routing_json(g);
      if (!g.auc.empty()) jt["gate_regression_auc"] = mean_std_json(g.auc);
    }
    jt["gate_routing"][folder]["by_category"] = routing_json(g);
    if (!g.auc.empty()) jt["gate_routing"][folder]["regression_auc"] = mean_std_json(g.auc);
    if (!g.weight_change.empty()) {
      jt["gate_routing"][folder]["weight_change"] = mean_std_json(g.weight_change);
      jt["gate_routing"][folder]["output_change"] = mean_std_json(g.output_change);
      jt["gate_routing"][folder]["output_change_spread"] = mean_std_json(g.output_change_spread);
      jt["gate_routing"][folder]["max_abs_change"] = mean_std_json(g.max_abs_change);
    }
  }
  return jt;
}

}  // namespace

std::string render_text(const ExperimentReport& r) {
  std::string out;
  for (const auto& t : r.tasks) {
    if (!t.old_finished) continue;
    Table brief{{"method", "NFR %", "accuracy %", "NF reduction", "NFR - vanilla [95% CI]"}, {}};
    for (const auto& row : main_table(r, t).rows) brief.rows.push_back({row[0], row[2], row[3], row[4], row[6]});
    out += fmt::format("{}: old model {:.2f}%, {} seeds, mean ± std\n", t.name, 100 * t.old_accuracy, r.seeds.size()) + brief.text() + "\n";
    if (t.upgrade) out += upgrade_line(*t.upgrade) + "\n";
  }
  return out;
}

std::string render_json(const ExperimentReport& r) {
  json j = {{"experiment", r.experiment}, {"seeds", r.seeds}, {"units_planned", r.units_planned}, {"units_finished", r.units_finished}, {"tasks", json::array()}};
  for (const auto& t : r.tasks) j["tasks"].push_back(task_json(t));
  return j.dump(2) + "\n";
}

std::string render_markdown(const ExperimentReport& r) {
  std::string md = fmt::format("# Experiment report: {}\n\n", r.experiment);
  md += fmt::format("Run folder `{}`; {} of {} units finished; seeds {}. NFR and accuracy on each task's regression set, mean ± std over seeds (%).\n\n",
                    r.run_dir, r.units_finished, r.units_planned, fmt::join(r.seeds, ", "));
  for (const auto& t : r.tasks) {
    for (const auto& b : task_blocks(r, t)) md += markdown(b);
  }
  return md;
}

std::string render_html(const ExperimentReport& r) {
  std::string body = fmt::format("<p>Run folder <code>{}</code>; {} of {} units finished; seeds {}. NFR and accuracy on each task's regression set, mean ± std over seeds (%).</p>",
                                 html_escape(r.run_dir), r.units_finished, r.units_planned, fmt::join(r.seeds, ", "));
  for (const auto& t : r.tasks) {
    for (const auto& b : task_blocks(r, t)) body += html(b, t);
  }
  const std::string css =
      "body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}"
      "table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}"
      "td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}.charts{display:flex;flex-wrap:wrap;gap:24px}"
      "code{background:#f4f4f4;padding:1px 4px}";
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>flipless report: {0}</title><style>{1}</style></head>"
      "<body><h1>flipless experiment report: {0}</h1>{2}<p>Made by <code>flipless experiment report</code> from saved results only; "
      "hyper-parameters were chosen on the validation split carved from train, never on the regression set.</p></body></html>\n",
      html_escape(r.experiment), css, body);
}

}  // namespace flipless::report
