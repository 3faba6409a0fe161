#include "flipless/experiment/report.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "flipless/core/error.h"
#include "flipless/core/file.h"
#include "flipless/data/predictions.h"
#include "flipless/experiment/config.h"
#include "flipless/experiment/json_file.h"
#include "flipless/experiment/run_results.h"
#include "flipless/methods/method.h"
#include "flipless/metrics/rates.h"
#include "flipless/metrics/uncertainty.h"
#include "flipless/report/svg_chart.h"

namespace flipless::experiment {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::int32_t decode(const data::PredictionFile& f, std::int32_t v, const std::vector<std::string>& names, std::size_t row) {
  if (v >= 0) return v;
  const auto& token = f.tokens.at(static_cast<std::size_t>(-(v + 1)));
  const auto pos = std::find(names.begin(), names.end(), token);
  if (pos != names.end()) return static_cast<std::int32_t>(pos - names.begin());
  throw InputError(fmt::format("{}:{}: pred: '{}' is not one of the task's labels", f.source, f.lines[row], token));
}

struct Preds {
  std::vector<std::string> ids;
  std::vector<std::int32_t> y, pred;
  std::vector<float> gates;
};

// Predicted (and true) labels of a prediction file, in the order of `ids` when given.
Preds read_preds(const fs::path& path, const std::vector<std::string>& names, const std::vector<std::string>* ids) {
  const auto f = data::read_predictions_file(path);
  Preds p;
  std::map<std::string, std::size_t> row_of;
  for (std::size_t i = 0; i < f.size(); ++i) row_of[f.ids[i]] = i;
  std::vector<std::size_t> order;
  if (ids) {
    for (const auto& id : *ids) {
      const auto it = row_of.find(id);
      if (it == row_of.end()) throw InputError(fmt::format("{}: example '{}' is missing", path.string(), id));
      order.push_back(it->second);
    }
  } else {
    for (std::size_t i = 0; i < f.size(); ++i) order.push_back(i);
  }
  for (auto i : order) {
    p.ids.push_back(f.ids[i]);
    p.pred.push_back(decode(f, f.preds[i], names, i));
    p.y.push_back(data::label_index(f, i, names));
  }
  if (!f.gates.empty()) {
    for (auto i : order) p.gates.push_back(f.gates[i]);
  }
  return p;
}

struct SeedRun {
  std::uint64_t seed = 0;
  UnitResult result;
  std::vector<std::int32_t> pred, alone;
  std::vector<float> gates;
  double acc = 0, nfr = 0;
  std::optional<CacheExperimentResult> cache;  // gated_fusion: the cache experiment (cache.json)
};

struct MethodRuns {
  std::string folder, method;
  int size = 0;
  std::vector<SeedRun> seeds;
  std::string not_applicable;
  bool baseline() const { return method != "vanilla" && !is_gated_fusion(method); }
};

struct TaskRuns {
  std::string name;
  std::vector<std::string> names, ids;
  std::vector<std::int32_t> y, old_pred;  // old_pred: the one old model, or the first seed's
  double old_acc = 0;                     // mean over old models
  std::vector<double> old_accs;           // per old model (one, or one per seed with per_seed)
  std::map<std::uint64_t, std::vector<std::int32_t>> old_by_seed;  // per_seed: each seed's old model
  std::string precision;                  // the new model's math (from the vanilla units)
  std::vector<MethodRuns> methods;
  // The old model's predictions that seed `seed`'s methods are measured against.
  const std::vector<std::int32_t>& old(std::uint64_t seed) const {
    const auto it = old_by_seed.find(seed);
    return it != old_by_seed.end() ? it->second : old_pred;
  }
  const MethodRuns* find(const std::string& folder) const {
    for (const auto& m : methods) {
      if (m.folder == folder) return &m;
    }
    return nullptr;
  }
};

double accuracy_of(const std::vector<std::int32_t>& y, const std::vector<std::int32_t>& p) { return metrics::accuracy(y, p); }
double nfr_of(const std::vector<std::int32_t>& y, const std::vector<std::int32_t>& old, const std::vector<std::int32_t>& p) {
  return metrics::negative_flip_rate(y, old, p);
}

metrics::MeanStd ms(const std::vector<double>& v) { return v.empty() ? metrics::MeanStd{} : metrics::mean_std(v); }
std::string pct(const std::vector<double>& v) { return v.empty() ? "–" : metrics::format_mean_std(v); }

std::vector<double> accs(const MethodRuns& m) {
  std::vector<double> v;
  for (const auto& s : m.seeds) v.push_back(s.acc);
  return v;
}
std::vector<double> nfrs(const MethodRuns& m) {
  std::vector<double> v;
  for (const auto& s : m.seeds) v.push_back(s.nfr);
  return v;
}

// A setting's number, or `fallback` when the grid has no such key.
double setting_number(const Setting& s, const std::string& key, double fallback) {
  const auto it = s.numbers.find(key);
  return it == s.numbers.end() ? fallback : it->second;
}

const SeedRun* seed_of(const MethodRuns& m, std::uint64_t seed) {
  for (const auto& s : m.seeds) {
    if (s.seed == seed) return &s;
  }
  return nullptr;
}

// P(a < b) + P(a = b) / 2 for a from `low`, b from `high` (Mann-Whitney), or nullopt when a
// side is empty.
std::optional<double> lower_score_auc(const std::vector<float>& low, const std::vector<float>& high) {
  if (low.empty() || high.empty()) return std::nullopt;
  std::vector<std::pair<float, int>> all;
  for (float x : low) all.emplace_back(x, 0);
  for (float x : high) all.emplace_back(x, 1);
  std::sort(all.begin(), all.end());
  // Sum of the ranks (1-based, ties averaged) of the `high` scores.
  double rank_sum = 0;
  for (std::size_t i = 0; i < all.size();) {
    std::size_t j = i;
    while (j < all.size() && all[j].first == all[i].first) ++j;
    const double rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (std::size_t k = i; k < j; ++k) {
      if (all[k].second == 1) rank_sum += rank;
    }
    i = j;
  }
  const double nh = static_cast<double>(high.size()), nl = static_cast<double>(low.size());
  return (rank_sum - nh * (nh + 1) / 2.0) / (nh * nl);
}

struct Collected {
  ExperimentConfig config;
  std::vector<TaskRuns> tasks;
  std::size_t planned = 0, finished = 0;
};

Collected collect(const fs::path& run) {
  Collected c;
  const auto cfg_path = run / "experiment.yaml";
  if (!fs::exists(cfg_path)) throw InputError(fmt::format("{}: not a run folder (no experiment.yaml; run flipless experiment run first)", run.string()));
  c.config = load_experiment(cfg_path);
  for (const auto& t : c.config.tasks) {
    TaskRuns tr;
    tr.name = t.name;
    for (const auto& m : c.config.methods) {
      c.planned += unit_sizes(m).size() * c.config.seeds.size();
    }
    // The old model(s): one, or one per seed (the first present fixes labels and row order).
    for (auto seed : c.config.seeds) {
      const auto old_dir = old_model_dir(c.config, run / t.name, seed);
      if (!fs::exists(old_dir / "result.json")) continue;
      if (tr.names.empty()) tr.names = read_old_model_result(old_dir / "result.json").label_names;
      const auto old = read_preds(old_dir / "predictions" / "dev.jsonl", tr.names, tr.ids.empty() ? nullptr : &tr.ids);
      if (tr.ids.empty()) {
        tr.ids = old.ids;
        tr.y = old.y;
        tr.old_pred = old.pred;
      }
      tr.old_accs.push_back(accuracy_of(tr.y, old.pred));
      if (!c.config.old_model.per_seed) break;
      tr.old_by_seed[seed] = old.pred;
    }
    if (tr.ids.empty()) {
      c.tasks.push_back(std::move(tr));
      continue;
    }
    tr.old_acc = ms(tr.old_accs).mean;
    for (const auto& m : c.config.methods) {
      for (int size : unit_sizes(m)) {
        MethodRuns mr;
        mr.method = m.name;
        mr.size = size;
        mr.folder = size > 0 ? fmt::format("{}-{}", m.name, size) : m.name;
        for (auto seed : c.config.seeds) {
          const auto dir = run / t.name / mr.folder / fmt::format("seed-{}", seed);
          if (!fs::exists(dir / "result.json")) continue;
          ++c.finished;
          SeedRun s;
          s.seed = seed;
          s.result = read_unit_result(dir / "result.json");
          if (!s.result.applicable()) {
            mr.not_applicable = s.result.reason.value_or("not applicable");
            continue;
          }
          const auto p = read_preds(dir / "predictions" / "dev.jsonl", tr.names, &tr.ids);
          s.pred = p.pred;
          s.gates = p.gates;
          if (fs::exists(dir / "predictions" / "dev.new_model_alone.jsonl")) {
            s.alone = read_preds(dir / "predictions" / "dev.new_model_alone.jsonl", tr.names, &tr.ids).pred;
          }
          if (fs::exists(dir / "cache.json")) s.cache = read_cache_experiment_result(dir / "cache.json");
          s.acc = accuracy_of(tr.y, s.pred);
          s.nfr = nfr_of(tr.y, tr.old(seed), s.pred);
          if (tr.precision.empty() && mr.method == "vanilla") tr.precision = s.result.precision;
          mr.seeds.push_back(std::move(s));
        }
        tr.methods.push_back(std::move(mr));
      }
    }
    c.tasks.push_back(std::move(tr));
  }
  return c;
}

// Paired bootstrap over examples (the same resample for every seed) of mean over seeds of
// NFR(method) - NFR(reference), and of the relative reduction 1 - NF(method) / NF(reference)
// (negative flips summed over the seeds). Seeds present in both only.
struct Paired {
  double diff = 0, lo = 0, hi = 0;
  std::optional<double> rel, rel_lo, rel_hi;  // undefined when the reference has no flips
  std::size_t seeds = 0;
};
std::optional<Paired> paired_bootstrap(const TaskRuns& t, const MethodRuns& m, const MethodRuns& v, int resamples, std::uint64_t seed) {
  std::vector<std::pair<const SeedRun*, const SeedRun*>> pairs;
  for (const auto& s : m.seeds) {
    if (const auto* b = seed_of(v, s.seed)) pairs.emplace_back(&s, b);
  }
  if (pairs.empty() || t.y.empty()) return std::nullopt;
  const std::size_t n = t.y.size();
  // fm[i], fv[i] = sum over seeds of NF_m and NF_v at example i; d = fm - fv.
  std::vector<double> d(n, 0.0), fm(n, 0.0), fv(n, 0.0);
  for (const auto& [a, b] : pairs) {
    for (std::size_t i = 0; i < n; ++i) {
      const bool old_right = t.old(a->seed)[i] == t.y[i];
      fm[i] += static_cast<double>(old_right && a->pred[i] != t.y[i]);
      fv[i] += static_cast<double>(old_right && b->pred[i] != t.y[i]);
      d[i] = fm[i] - fv[i];
    }
  }
  const double k = static_cast<double>(pairs.size()) * static_cast<double>(n);
  Paired p;
  p.seeds = pairs.size();
  for (double x : d) p.diff += x;
  p.diff /= k;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> pick(0, n - 1);
  double total_m = 0, total_v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    total_m += fm[i];
    total_v += fv[i];
  }
  if (total_v > 0) p.rel = 1.0 - total_m / total_v;
  std::vector<double> stats, rels;
  stats.reserve(static_cast<std::size_t>(resamples));
  for (int r = 0; r < resamples; ++r) {
    double sum_m = 0, sum_v = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t j = pick(rng);
      sum_m += fm[j];
      sum_v += fv[j];
    }
    stats.push_back((sum_m - sum_v) / k);
    if (sum_v > 0) rels.push_back(1.0 - sum_m / sum_v);
  }
  std::sort(stats.begin(), stats.end());
  p.lo = stats[static_cast<std::size_t>(0.025 * (resamples - 1))];
  p.hi = stats[static_cast<std::size_t>(0.975 * (resamples - 1))];
  if (p.rel && rels.size() >= 2) {
    std::sort(rels.begin(), rels.end());
    p.rel_lo = rels[static_cast<std::size_t>(0.025 * static_cast<double>(rels.size() - 1))];
    p.rel_hi = rels[static_cast<std::size_t>(0.975 * static_cast<double>(rels.size() - 1))];
  }
  return p;
}

// A unit folder's row label: the method's, with the ensemble size for methods with sizes.
std::string pretty(const std::string& folder) {
  if (const auto* d = methods::find(folder)) return d->label;
  if (const auto dash = folder.rfind('-'); dash != std::string::npos) {
    if (const auto* d = methods::find(folder.substr(0, dash)); d && d->sizes) return fmt::format("{} ({})", d->label, folder.substr(dash + 1));
  }
  return folder;
}

std::string rel(std::optional<double> r) { return r ? fmt::format("{:.1f}%", 100 * *r) : "–"; }

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
    for (const auto& h : header) s += "<th>" + report::html_escape(h) + "</th>";
    s += "</tr></thead><tbody>";
    for (const auto& r : rows) {
      s += "<tr>";
      for (std::size_t i = 0; i < r.size(); ++i) s += (i == 0 ? "<td>" : "<td class=\"num\">") + report::html_escape(r[i]) + "</td>";
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

}  // namespace

ReportFiles write_experiment_report(const fs::path& run, const ReportOptions& options) {
  const auto c = collect(run);
  const fs::path out = options.out.empty() ? run / "report" : options.out;
  fs::create_directories(out);
  json j = {{"experiment", c.config.name}, {"seeds", c.config.seeds}, {"units_planned", c.planned}, {"units_finished", c.finished}, {"tasks", json::array()}};
  std::string md = fmt::format("# Experiment report: {}\n\n", c.config.name);
  std::string html_body;
  std::string terminal;
  md += fmt::format("Run folder `{}`; {} of {} units finished; seeds {}. NFR and accuracy on each task's regression set, mean ± std over seeds (%).\n\n",
                    run.string(), c.finished, c.planned, fmt::join(c.config.seeds, ", "));
  html_body += fmt::format("<p>Run folder <code>{}</code>; {} of {} units finished; seeds {}. NFR and accuracy on each task's regression set, mean ± std over seeds (%).</p>",
                           report::html_escape(run.string()), c.finished, c.planned, fmt::join(c.config.seeds, ", "));

  for (const auto& t : c.tasks) {
    json jt = {{"task", t.name}, {"methods", json::array()}};
    md += fmt::format("## {}\n\n", t.name);
    html_body += fmt::format("<h2>{}</h2>", report::html_escape(t.name));
    if (t.y.empty()) {
      md += "The old model has not finished yet.\n\n";
      html_body += "<p>The old model has not finished yet.</p>";
      j["tasks"].push_back(jt);
      continue;
    }
    const auto* vanilla = t.find("vanilla");
    const double v_nfr = vanilla && !vanilla->seeds.empty() ? ms(nfrs(*vanilla)).mean : 0;
    // The strongest baseline: lowest mean NFR among baselines that ran.
    const MethodRuns* strongest = nullptr;
    for (const auto& m : t.methods) {
      if (m.baseline() && !m.seeds.empty() && (!strongest || ms(nfrs(m)).mean < ms(nfrs(*strongest)).mean)) strongest = &m;
    }
    Table main{{"method", "seeds", "NFR %", "accuracy %", "NF reduction vs vanilla", fmt::format("vs strongest baseline{}", strongest ? " (" + pretty(strongest->folder) + ")" : ""),
                "NFR − vanilla [95% CI]", "chosen setting (seed " + std::to_string(c.config.seeds.front()) + ")"}, {}};
    std::vector<report::ScatterPoint> points;
    for (std::size_t k = 0; k < t.methods.size(); ++k) {
      const auto& m = t.methods[k];
      json jm = {{"method", m.folder}, {"seeds", m.seeds.size()}};
      if (!m.not_applicable.empty()) {
        main.rows.push_back({pretty(m.folder), "–", "n/a", "n/a", "–", "–", "–", m.not_applicable});
        jm["not_applicable"] = m.not_applicable;
        jt["methods"].push_back(jm);
        continue;
      }
      if (m.seeds.empty()) {
        main.rows.push_back({pretty(m.folder), "0", "–", "–", "–", "–", "–", "not run yet"});
        jt["methods"].push_back(jm);
        continue;
      }
      const auto a = ms(accs(m)), n = ms(nfrs(m));
      const auto vs_vanilla = vanilla && !vanilla->seeds.empty() ? metrics::relative_flip_reduction(v_nfr, n.mean) : std::nullopt;
      const auto vs_strong = strongest && &m != strongest && !m.baseline() && m.method != "vanilla"
                                 ? metrics::relative_flip_reduction(ms(nfrs(*strongest)).mean, n.mean)
                                 : std::nullopt;
      std::string ci = "–";
      if (vanilla && &m != vanilla) {
        if (const auto p = paired_bootstrap(t, m, *vanilla, options.bootstrap, options.seed)) {
          ci = fmt::format("{:+.2f} [{:+.2f}, {:+.2f}]{}", 100 * p->diff, 100 * p->lo, 100 * p->hi, p->hi < 0 ? " lower" : p->lo > 0 ? " higher" : " not clear");
          jm["nfr_minus_vanilla"] = {{"mean", p->diff}, {"lo", p->lo}, {"hi", p->hi}, {"seeds", p->seeds}, {"below_vanilla", p->hi < 0}};
        }
      }
      std::string chosen = "–";
      if (const auto* s0 = seed_of(m, c.config.seeds.front()); s0 && s0->result.chosen) {
        chosen = s0->result.chosen->describe;
        if (s0->result.fallback.value_or(false)) chosen += " (none on par: most accurate)";
      }
      main.rows.push_back({pretty(m.folder), std::to_string(m.seeds.size()), pct(nfrs(m)), pct(accs(m)), rel(vs_vanilla), rel(vs_strong), ci, chosen});
      jm["accuracy"] = {{"mean", a.mean}, {"std", a.std}, {"per_seed", accs(m)}};
      jm["nfr"] = {{"mean", n.mean}, {"std", n.std}, {"per_seed", nfrs(m)}};
      if (vs_vanilla) jm["relative_nf_reduction_vs_vanilla"] = *vs_vanilla;
      if (vs_strong) jm["relative_nf_reduction_vs_strongest_baseline"] = *vs_strong;
      jt["methods"].push_back(jm);
      points.push_back({pretty(m.folder), 100 * n.mean, 100 * a.mean, 100 * n.std, 100 * a.std, kColors[k % 10]});
    }
    points.push_back({"old model", 0.0, 100 * t.old_acc, 0, 0, "#000"});
    jt["old_accuracy"] = t.old_acc;
    jt["old_accuracy_per_model"] = t.old_accs;
    if (!t.precision.empty()) jt["precision"] = t.precision;
    const std::string old_line = t.old_by_seed.empty() ? fmt::format("Old model accuracy {:.2f}%", 100 * t.old_acc)
                                                       : fmt::format("Old model accuracy {}% (one old model per seed, {} so far)", pct(t.old_accs), t.old_accs.size());
    const std::string math = t.precision.empty() ? ""
                             : t.precision == "bf16" ? "; new models trained and evaluated with bf16 autocast (parameters and optimizer in fp32)"
                                                     : fmt::format("; new models in {}", t.precision);
    const std::string intro = fmt::format("{}; {} regression-set examples{}.", old_line, t.y.size(), math);
    md += intro + "\n\n" + main.markdown() + "\n";
    html_body += "<p>" + report::html_escape(intro) + "</p>" + main.html();
    Table brief{{"method", "NFR %", "accuracy %", "NF reduction", "NFR - vanilla [95% CI]"}, {}};
    for (const auto& r : main.rows) brief.rows.push_back({r[0], r[2], r[3], r[4], r[6]});
    terminal += fmt::format("{}: old model {:.2f}%, {} seeds, mean ± std\n", t.name, 100 * t.old_acc, c.config.seeds.size()) + brief.text() + "\n";

    // An upgrade in the paper's sense: the new model clearly more accurate than the old one.
    if (vanilla && !vanilla->seeds.empty()) {
      const double new_acc = ms(accs(*vanilla)).mean, gain = new_acc - t.old_acc;
      const bool upgrade = gain >= 0.02;
      jt["upgrade"] = {{"old_accuracy", t.old_acc}, {"new_accuracy", new_acc}, {"gain", gain}, {"is_upgrade", upgrade}};
      const auto line = upgrade ? fmt::format("Upgrade check: the new model alone (vanilla) is {:.2f}% against the old model's {:.2f}%, {:+.2f} points: "
                                              "an upgrade (at least 2 points more accurate).", 100 * new_acc, 100 * t.old_acc, 100 * gain)
                                : fmt::format("Upgrade check: the new model alone (vanilla) is {:.2f}% against the old model's {:.2f}%, {:+.2f} points: "
                                              "NOT an upgrade (less than 2 points more accurate); do not read this table as one.",
                                              100 * new_acc, 100 * t.old_acc, 100 * gain);
      md += line + "\n\n";
      html_body += "<p><b>" + report::html_escape(line) + "</b></p>";
      terminal += line + "\n";
    }

    // The paper's claims for Gated Fusion (and any variant), met or not, with the numbers.
    if (vanilla && !vanilla->seeds.empty()) {
      for (const auto& m : t.methods) {
        if (!is_gated_fusion(m.method) || m.seeds.empty()) continue;
        const double acc_change = ms(accs(m)).mean - ms(accs(*vanilla)).mean;
        // Plain values with flags (GCC 12 misreads optionals of this struct as uninitialised).
        Paired pv, ps;
        bool has_v = false, has_s = false;
        if (auto p = paired_bootstrap(t, m, *vanilla, options.bootstrap, options.seed)) {
          pv = *p;
          has_v = true;
        }
        if (strongest) {
          if (auto p = paired_bootstrap(t, m, *strongest, options.bootstrap, options.seed)) {
            ps = *p;
            has_s = true;
          }
        }
        auto interval = [](bool has, const Paired& p) {
          if (!has || !p.rel) return std::string("–");
          return fmt::format("{:.1f}% [{:.1f}, {:.1f}]", 100 * *p.rel, 100 * p.rel_lo.value_or(0.0), 100 * p.rel_hi.value_or(0.0));
        };
        auto met = [](bool ok) { return std::string(ok ? "met" : "not met"); };
        const bool c1 = has_v && pv.rel && *pv.rel >= 0.70 && acc_change >= -0.002;
        const bool c2 = has_s && ps.rel && *ps.rel >= 0.30;
        const bool c3 = has_v && pv.hi < 0;
        const bool c4 = has_s && ps.hi < 0;
        Table claims{{"claim (" + pretty(m.folder) + ")", "measured", "met?"}, {}};
        claims.rows.push_back({"removes ≥ 70% of vanilla's negative flips, accuracy ≥ vanilla − 0.2 point",
                               fmt::format("{} fewer flips [95% CI]; accuracy {:+.2f} points", interval(has_v, pv), 100 * acc_change), met(c1)});
        claims.rows.push_back({"≥ 30% fewer negative flips than the strongest baseline" + (strongest ? " (" + pretty(strongest->folder) + ")" : std::string()),
                               interval(has_s, ps), met(c2)});
        claims.rows.push_back({"its NFR − vanilla's interval excludes 0", has_v ? fmt::format("{:+.2f} [{:+.2f}, {:+.2f}] points", 100 * pv.diff, 100 * pv.lo, 100 * pv.hi) : "–", met(c3)});
        claims.rows.push_back({"its NFR − the strongest baseline's interval excludes 0",
                               has_s ? fmt::format("{:+.2f} [{:+.2f}, {:+.2f}] points", 100 * ps.diff, 100 * ps.lo, 100 * ps.hi) : "–", met(c4)});
        json jc = {{"method", m.folder}, {"accuracy_change_vs_vanilla", acc_change},
                   {"removes_70_percent_at_par", c1}, {"30_percent_fewer_than_strongest", c2},
                   {"interval_vs_vanilla_excludes_0", c3}, {"interval_vs_strongest_excludes_0", c4}};
        if (has_v && pv.rel) jc["relative_reduction_vs_vanilla"] = {{"value", *pv.rel}, {"lo", pv.rel_lo.value_or(0)}, {"hi", pv.rel_hi.value_or(0)}};
        if (has_s && ps.rel) jc["relative_reduction_vs_strongest"] = {{"value", *ps.rel}, {"lo", ps.rel_lo.value_or(0)}, {"hi", ps.rel_hi.value_or(0)}};
        if (strongest) jc["strongest_baseline"] = strongest->folder;
        jt["claims"].push_back(jc);
        md += "### The paper's claims, measured\n\n" + claims.markdown() + "\n";
        html_body += "<h3>The paper's claims, measured</h3>" + claims.html();
      }
    }

    // Noise floor: NFR between vanilla seeds taken as old and new.
    if (vanilla && vanilla->seeds.size() >= 2) {
      std::vector<double> floor;
      for (std::size_t i = 0; i + 1 < vanilla->seeds.size(); ++i) floor.push_back(nfr_of(t.y, vanilla->seeds[i].pred, vanilla->seeds[i + 1].pred));
      const auto line = fmt::format("Noise floor: NFR between two vanilla seeds {}% (over {} consecutive seed pairs). A method's NFR change smaller than its bootstrap interval is noise.",
                                    pct(floor), floor.size());
      md += line + "\n\n";
      html_body += "<p>" + report::html_escape(line) + "</p>";
      jt["noise_floor_nfr"] = floor;
    }

    // Section 5.5: fix and new-fault rates against vanilla, per seed.
    if (vanilla) {
      Table fixes{{"method", "fix rate %", "new-fault rate %"}, {}};
      for (const auto& m : t.methods) {
        if (&m == vanilla || m.seeds.empty()) continue;
        std::vector<double> fr, nf;
        for (const auto& s : m.seeds) {
          const auto* v = seed_of(*vanilla, s.seed);
          if (!v) continue;
          if (auto x = metrics::fix_rate(t.y, t.old(s.seed), v->pred, s.pred)) fr.push_back(*x);
          if (auto x = metrics::new_fault_rate(t.y, t.old(s.seed), v->pred, s.pred)) nf.push_back(*x);
        }
        fixes.rows.push_back({pretty(m.folder), pct(fr), pct(nf)});
      }
      md += "### Fix and new-fault rates against vanilla (the paper's section 5.5)\n\n" + fixes.markdown() + "\n";
      html_body += "<h3>Fix and new-fault rates against vanilla (section 5.5)</h3>" + fixes.html();
    }

    // Table 3: ensemble sizes; table 4: GF without the old model.
    Table sizes{{"new-model ensemble", "NFR %", "accuracy %"}, {}};
    for (const auto& m : t.methods) {
      if (m.size > 0 && !m.seeds.empty()) sizes.rows.push_back({fmt::format("{} models", m.size), pct(nfrs(m)), pct(accs(m))});
    }
    if (!sizes.rows.empty()) {
      md += "### New-model ensembles by size (table 3)\n\n" + sizes.markdown() + "\n";
      html_body += "<h3>New-model ensembles by size (table 3)</h3>" + sizes.html();
    }
    if (const auto* gf = t.find(methods::gated_fusion().name); gf && !gf->seeds.empty() && !gf->seeds.front().alone.empty()) {
      std::vector<double> a, n;
      for (const auto& s : gf->seeds) {
        a.push_back(accuracy_of(t.y, s.alone));
        n.push_back(nfr_of(t.y, t.old(s.seed), s.alone));
      }
      Table drop{{"Gated Fusion", "NFR %", "accuracy %"}, {{"with the old model", pct(nfrs(*gf)), pct(accs(*gf))}, {"old model dropped at inference", pct(n), pct(a)}}};
      md += "### Dropping the old model at inference (table 4)\n\n" + drop.markdown() + "\n";
      html_body += "<h3>Dropping the old model at inference (table 4)</h3>" + drop.html();
      jt["gated_fusion_without_old"] = {{"accuracy", a}, {"nfr", n}};
    }

    // Table 5: GF with old logits cached for X% of the inputs, and the policies for the rest.
    std::string cache_chart;
    if (const auto* gf = t.find("gated_fusion"); gf && vanilla && !vanilla->seeds.empty()) {
      const char* policies[] = {"neighbour", "new_on_miss", "tuned_distance", "emulator"};
      const char* policy_names[] = {"nearest (paper)", "new alone on miss", "tuned distance", "old-model emulator"};
      constexpr std::size_t kNumPolicies = std::size(policies);
      std::map<double, std::map<std::string, std::pair<std::vector<double>, std::vector<double>>>> by;  // X -> policy -> (nfr, acc)
      // X -> how often a neighbour's / the emulator's / the new model's label is the input's own old label
      std::map<double, std::map<std::string, std::vector<double>>> agreement;
      for (const auto& s : gf->seeds) {
        if (!s.cache) continue;
        for (const auto& row : s.cache->percents) {
          const double x = row.percent;
          for (const auto& d : row.draws) {
            for (const char* a : {"neighbour_agreement", "emulator_agreement", "new_model_agreement"}) {
              if (const auto it = d.agreements.find(a); it != d.agreements.end()) agreement[x][a].push_back(it->second);
            }
            for (const char* p : policies) {
              const auto it = d.policies.find(p);
              if (it == d.policies.end()) continue;  // a cache.json from before the policy existed
              by[x][p].first.push_back(it->second.nfr);
              by[x][p].second.push_back(it->second.accuracy);
            }
          }
        }
      }
      if (!by.empty()) {
        const double gf_nfr = ms(nfrs(*gf)).mean;
        auto kept_share = [&](const std::vector<double>& n) -> std::optional<double> {
          if (n.empty() || v_nfr - gf_nfr <= 0) return std::nullopt;
          return (v_nfr - ms(n).mean) / (v_nfr - gf_nfr);
        };
        auto kept = [&](const std::vector<double>& n) {
          const auto k = kept_share(n);
          return k ? fmt::format("{:.0f}%", 100 * *k) : std::string("–");
        };
        Table cache_table{{"cached %", "NFR % nearest (paper)", "acc %", "NFR % new alone on miss", "acc %", "NFR % tuned distance", "acc %",
                           "NFR % emulator", "acc %", "NF reduction kept (tuned)", "NF reduction kept (emulator)",
                           "neighbour's old label = own %", "emulator's = own %", "new model's = own %"},
                          {}};
        json jc = json::array();
        std::vector<report::LineSeries> lines;
        for (std::size_t p = 0; p < kNumPolicies; ++p) lines.push_back({policy_names[p], {}, {}, kColors[p]});
        const std::vector<double> none;
        for (const auto& [x, per] : by) {
          std::vector<std::string> row = {fmt::format("{:g}", x)};
          json jrow = {{"percent", x}};
          auto of = [&](const char* p) -> const std::pair<std::vector<double>, std::vector<double>>* {
            const auto it = per.find(p);
            return it == per.end() || it->second.first.empty() ? nullptr : &it->second;
          };
          for (std::size_t p = 0; p < kNumPolicies; ++p) {
            const auto* v = of(policies[p]);
            row.push_back(v ? pct(v->first) : "–");
            row.push_back(v ? pct(v->second) : "–");
            if (!v) continue;
            const auto& [n, a] = *v;
            jrow[policies[p]] = {{"nfr", ms(n).mean}, {"nfr_std", ms(n).std}, {"accuracy", ms(a).mean}, {"accuracy_std", ms(a).std}, {"runs", n.size()}};
            lines[p].x.push_back(x);
            lines[p].y.push_back(100 * ms(n).mean);
          }
          for (const char* p : {"tuned_distance", "emulator"}) {
            const auto* v = of(p);
            row.push_back(kept(v ? v->first : none));
            const auto share = kept_share(v ? v->first : none);
            jrow[fmt::format("nf_reduction_kept_{}", std::string_view(p) == "tuned_distance" ? "tuned" : p)] = share ? json(*share) : json(nullptr);
          }
          const auto ag = agreement.find(x);
          for (const char* a : {"neighbour_agreement", "emulator_agreement", "new_model_agreement"}) {
            const bool have = ag != agreement.end() && ag->second.count(a) && !ag->second.at(a).empty();
            row.push_back(have ? pct(ag->second.at(a)) : "–");
            if (have) jrow[a] = ms(ag->second.at(a)).mean;
          }
          cache_table.rows.push_back(row);
          jc.push_back(jrow);
        }
        const double x0 = by.begin()->first, x1 = by.rbegin()->first;
        lines.push_back({"vanilla", {x0, x1}, {100 * v_nfr, 100 * v_nfr}, kColors[7]});
        lines.push_back({"full Gated Fusion", {x0, x1}, {100 * gf_nfr, 100 * gf_nfr}, kColors[4]});
        const std::string note = fmt::format(
            "Mean ± std over seeds × random caches. NF reduction kept: (vanilla NFR − NFR) / (vanilla NFR − full GF NFR), vanilla {:.2f}%, "
            "full GF {:.2f}%. The tuned distance is chosen on validation for each X. The emulator is a ridge regression from the new "
            "model's pooled embedding to the old logits, fitted on the cached inputs only (strength by 5-fold cross-validation on them), "
            "used for every input not cached. The last three columns, over the inputs not cached: how often the neighbour's cached old "
            "label, the emulator's label and the new model's own label are the input's own old label; a fallback helps only where it "
            "beats the new model.",
            100 * v_nfr, 100 * gf_nfr);
        md += "### Gated Fusion with a partial cache of old logits (table 5)\n\n" + cache_table.markdown() + "\n" + note + "\n\n";
        html_body += "<h3>Gated Fusion with a partial cache of old logits (table 5)</h3>" + cache_table.html() + "<p>" + report::html_escape(note) + "</p>";
        jt["cache_experiment"] = jc;
        cache_chart = report::svg_line_chart(t.name + ": NFR by share of inputs cached", "% of eval inputs with cached old logits", "NFR %", lines);
      }
    }

    // Charts.
    std::string charts = report::svg_scatter_chart(t.name + ": accuracy against NFR (mean ± std over seeds)", "NFR % (lower is better)", "accuracy %", points);
    std::vector<report::LineSeries> alpha;
    std::size_t color = 0;
    for (const auto& m : t.methods) {
      const auto* d = methods::find(m.method);  // methods mixing old and new with a weight alpha
      if (!d || (d->runner != methods::Runner::kOldNewEnsemble && d->runner != methods::Runner::kBcwi)) continue;
      std::map<double, std::vector<double>> nfr_by, acc_by;
      for (const auto& s : m.seeds) {
        for (const auto& cand : s.result.candidates.value_or(std::vector<CandidateResult>{})) {
          const double x = setting_number(cand.setting, "alpha", 0.0);
          nfr_by[x].push_back(100 * cand.validation_nfr);
          acc_by[x].push_back(100 * cand.validation_accuracy);
        }
      }
      if (nfr_by.empty()) continue;
      report::LineSeries sn{pretty(m.folder), {}, {}, kColors[color % 10]}, sa{pretty(m.folder), {}, {}, kColors[color % 10]};
      ++color;
      for (const auto& [x, v] : nfr_by) {
        sn.x.push_back(x);
        sn.y.push_back(ms(v).mean);
        sa.x.push_back(x);
        sa.y.push_back(ms(acc_by[x]).mean);
      }
      alpha.push_back(sn);
      alpha.push_back(sa);
    }
    if (!alpha.empty()) {
      std::vector<report::LineSeries> nfr_lines, acc_lines;
      for (std::size_t i = 0; i < alpha.size(); ++i) (i % 2 == 0 ? nfr_lines : acc_lines).push_back(alpha[i]);
      charts += report::svg_line_chart(t.name + ": alpha sweep, validation NFR", "alpha (weight of the new model)", "NFR %", nfr_lines);
      charts += report::svg_line_chart(t.name + ": alpha sweep, validation accuracy", "alpha (weight of the new model)", "accuracy %", acc_lines);
    }
    if (const auto* gf = t.find(methods::gated_fusion().name); gf && !gf->seeds.empty()) {
      std::map<double, std::vector<double>> nfr_by, acc_by;
      for (const auto& s : gf->seeds) {
        for (const auto& cand : s.result.candidates.value_or(std::vector<CandidateResult>{})) {
          const double x = setting_number(cand.setting, "temperature", 1.0);
          nfr_by[x].push_back(100 * cand.validation_nfr);
          acc_by[x].push_back(100 * cand.validation_accuracy);
        }
      }
      if (nfr_by.size() >= 2) {
        report::LineSeries sn{"validation NFR", {}, {}, kColors[3]}, sa{"validation accuracy", {}, {}, kColors[0]};
        for (const auto& [x, v] : nfr_by) {
          sn.x.push_back(x);
          sn.y.push_back(ms(v).mean);
          sa.x.push_back(x);
          sa.y.push_back(ms(acc_by[x]).mean);
        }
        charts += report::svg_line_chart(t.name + ": Gated Fusion T sweep, validation NFR", "T (mean over other grid values)", "NFR %", {sn});
        charts += report::svg_line_chart(t.name + ": Gated Fusion T sweep, validation accuracy", "T (mean over other grid values)", "accuracy %", {sa});
      }
      // Gate values by flip category of old vs vanilla (same seed).
      if (vanilla && !gf->seeds.front().gates.empty()) {
        // Old model against vanilla of the same seed: where vanilla regresses, fixes, or neither.
        const std::vector<std::string> cats = {"regressions", "fixes", "both right", "both wrong"};
        std::vector<double> sum(4, 0), cnt(4, 0);
        std::vector<double> aucs;  // per seed: P(gate of a vanilla regression < gate of another example)
        for (const auto& s : gf->seeds) {
          const auto* v = seed_of(*vanilla, s.seed);
          if (!v || s.gates.empty()) continue;
          const auto& old = t.old(s.seed);
          std::vector<float> flips, rest;
          for (std::size_t i = 0; i < t.y.size(); ++i) {
            const bool o = old[i] == t.y[i], n = v->pred[i] == t.y[i];
            const std::size_t cat = o && !n ? 0 : !o && n ? 1 : o && n ? 2 : 3;
            sum[cat] += s.gates[i];
            cnt[cat] += 1;
            (cat == 0 ? flips : rest).push_back(s.gates[i]);
          }
          if (auto auc = lower_score_auc(flips, rest)) aucs.push_back(*auc);
        }
        std::vector<double> mean(4, 0);
        json jg;
        Table routing{{"category (old vs vanilla)", "examples (all seeds)", "mean gate (1 = new model)"}, {}};
        for (std::size_t k = 0; k < 4; ++k) {
          mean[k] = cnt[k] > 0 ? sum[k] / cnt[k] : 0;
          jg[cats[k]] = {{"mean_gate", mean[k]}, {"examples", cnt[k]}};
          routing.rows.push_back({cats[k], fmt::format("{:.0f}", cnt[k]), cnt[k] > 0 ? fmt::format("{:.3f}", mean[k]) : "–"});
        }
        jt["gate_by_category"] = jg;
        if (!aucs.empty()) jt["gate_regression_auc"] = {{"mean", ms(aucs).mean}, {"std", ms(aucs).std}, {"per_seed", aucs}};
        const auto auc_line = aucs.empty() ? std::string("AUC: undefined (no vanilla regressions)")
                                           : fmt::format("AUC of the gate separating vanilla's negative flips from the rest (a lower gate, i.e. more of the old model, on the flips): "
                                                         "{:.3f} ± {:.3f} over {} seeds (0.5 = no routing).", ms(aucs).mean, ms(aucs).std, aucs.size());
        md += "### Does the gate route? (mean gate by category)\n\n" + routing.markdown() + "\n" + auc_line + "\n\n";
        html_body += "<h3>Does the gate route? (mean gate by category)</h3>" + routing.html() + "<p>" + report::html_escape(auc_line) + "</p>";
        charts += report::svg_bar_chart(t.name + ": mean gate (1 = new) by old vs vanilla", cats, {{"Gated Fusion gate", mean, kColors[2]}});
      }
    }
    // Per-class negative flips, mean over seeds.
    {
      std::vector<std::string> cats = t.names;
      std::vector<report::BarSeries> series;
      std::size_t k = 0;
      for (const auto& m : t.methods) {
        if (m.seeds.empty() || !(m.method == "vanilla" || is_gated_fusion(m.method) || &m == strongest)) {
          ++k;
          continue;
        }
        std::vector<double> per(t.names.size(), 0.0);
        for (const auto& s : m.seeds) {
          for (std::size_t i = 0; i < t.y.size(); ++i) {
            if (t.old(s.seed)[i] == t.y[i] && s.pred[i] != t.y[i] && t.y[i] >= 0) per[static_cast<std::size_t>(t.y[i])] += 1.0 / static_cast<double>(m.seeds.size());
          }
        }
        series.push_back({pretty(m.folder), per, kColors[k++ % 10]});
      }
      if (!series.empty()) charts += report::svg_bar_chart(t.name + ": negative flips by true class", cats, series);
    }
    charts += cache_chart;
    html_body += "<div class=\"charts\">" + charts + "</div>";
    md += "Charts: see report.html beside this file (accuracy against NFR, alpha and T sweeps, gate values by flip category, per-class flips).\n\n";
    j["tasks"].push_back(jt);
  }

  const std::string css =
      "body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}"
      "table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}"
      "td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}.charts{display:flex;flex-wrap:wrap;gap:24px}"
      "code{background:#f4f4f4;padding:1px 4px}";
  const std::string html = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>flipless report: {0}</title><style>{1}</style></head>"
      "<body><h1>flipless experiment report: {0}</h1>{2}<p>Made by <code>flipless experiment report</code> from saved results only; "
      "hyper-parameters were chosen on the validation split carved from train, never on the regression set.</p></body></html>\n",
      report::html_escape(c.config.name), css, html_body);
  ReportFiles files{out / "report.html", out / "report.md", out / "report.json", terminal};
  core::write_file_atomic(files.html, html);
  core::write_file_atomic(files.markdown, md);
  write_json_file(files.json, j);
  return files;
}

}  // namespace flipless::experiment
