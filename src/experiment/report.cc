#include "flipless/experiment/report.h"

#include <algorithm>
#include <fmt/format.h>
#include <map>
#include <optional>
#include <random>

#include "flipless/core/error.h"
#include "flipless/core/file.h"
#include "flipless/data/predictions.h"
#include "flipless/experiment/config.h"
#include "flipless/experiment/run_results.h"
#include "flipless/methods/method.h"
#include "flipless/metrics/rates.h"
#include "flipless/metrics/uncertainty.h"

namespace flipless::experiment {

namespace {

namespace fs = std::filesystem;

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
  std::optional<GateDrift> drift;              // a gate trained in the loop: how far it moved (gate.json)
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
  std::vector<double> old_seconds;        // per old model: its training's wall time
  std::vector<std::optional<std::int64_t>> old_threads;  // per old model: the CPU threads it trained on, where recorded
  bool ensembles_share_members = false;   // a new_ensemble or ELODI unit drew on other seeds' vanilla models
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

// The old model(s) of a task: one, or one per seed (the first present fixes labels and row order).
void read_old_models(const ExperimentConfig& config, const fs::path& task_dir, TaskRuns& tr) {
  for (auto seed : config.seeds) {
    const auto old_dir = old_model_dir(config, task_dir, seed);
    if (!fs::exists(old_dir / "result.json")) continue;
    const auto result = read_old_model_result(old_dir / "result.json");
    if (tr.names.empty()) tr.names = result.label_names;
    tr.old_seconds.push_back(result.seconds);
    tr.old_threads.push_back(result.threads);
    const auto old = read_preds(old_dir / "predictions" / "dev.jsonl", tr.names, tr.ids.empty() ? nullptr : &tr.ids);
    if (tr.ids.empty()) {
      tr.ids = old.ids;
      tr.y = old.y;
      tr.old_pred = old.pred;
    }
    tr.old_accs.push_back(accuracy_of(tr.y, old.pred));
    if (!config.old_model.per_seed) break;
    tr.old_by_seed[seed] = old.pred;
  }
  if (!tr.ids.empty()) tr.old_acc = ms(tr.old_accs).mean;
}

// A finished unit (folder `dir`): its result, and unless it was not applicable its predictions
// (with the new model alone and the cache experiment where saved) scored against the old model.
SeedRun read_seed_run(const TaskRuns& tr, const fs::path& dir, std::uint64_t seed) {
  SeedRun s;
  s.seed = seed;
  s.result = read_unit_result(dir / "result.json");
  if (!s.result.applicable()) return s;
  const auto p = read_preds(dir / "predictions" / "dev.jsonl", tr.names, &tr.ids);
  s.pred = p.pred;
  s.gates = p.gates;
  if (fs::exists(dir / "predictions" / "dev.new_model_alone.jsonl")) {
    s.alone = read_preds(dir / "predictions" / "dev.new_model_alone.jsonl", tr.names, &tr.ids).pred;
  }
  if (fs::exists(dir / "cache.json")) s.cache = read_cache_experiment_result(dir / "cache.json");
  if (fs::exists(dir / "gate.json")) s.drift = read_gate_drift(dir / "gate.json");
  s.acc = accuracy_of(tr.y, s.pred);
  s.nfr = nfr_of(tr.y, tr.old(seed), s.pred);
  return s;
}

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
    read_old_models(c.config, run / t.name, tr);
    if (tr.ids.empty()) {
      c.tasks.push_back(std::move(tr));
      continue;
    }
    for (const auto& m : c.config.methods) {
      for (int size : unit_sizes(m)) {
        MethodRuns mr;
        mr.method = m.name;
        mr.size = size;
        mr.folder = unit_folder(m, size);
        for (auto seed : c.config.seeds) {
          const auto dir = run / t.name / mr.folder / fmt::format("seed-{}", seed);
          if (!fs::exists(dir / "result.json")) continue;
          ++c.finished;
          auto s = read_seed_run(tr, dir, seed);
          if (!s.result.applicable()) {
            mr.not_applicable = s.result.reason.value_or("not applicable");
            continue;
          }
          if (tr.precision.empty() && mr.method == "vanilla") tr.precision = s.result.precision;
          mr.seeds.push_back(std::move(s));
        }
        // Ensembles and ELODI's reference drawn from other seeds' vanilla models.
        const auto* words = m.words.count("reference") ? &m.words.at("reference") : nullptr;
        const bool uses_members = mr.method == "new_ensemble" ||
                                  (mr.method == "elodi" && words && std::count(words->begin(), words->end(), "ensemble") > 0);
        tr.ensembles_share_members |=
            !mr.seeds.empty() && uses_members && c.config.ensemble_members == "other_seeds" && c.config.seeds.size() > 1;
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
std::optional<report::PairedDifference> paired_bootstrap(const TaskRuns& t, const MethodRuns& m, const MethodRuns& v, int resamples, std::uint64_t seed) {
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
  report::PairedDifference p;
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

bool ran(const MethodRuns* m) { return m && !m->seeds.empty(); }

// A task's runs with what the report compares them with.
struct TaskContext {
  const TaskRuns& t;
  const MethodRuns* vanilla;    // null when the config has none
  const MethodRuns* strongest;  // the strongest baseline, null when none ran
  const ReportOptions& options;
  std::optional<report::PairedDifference> bootstrap(const MethodRuns& m, const MethodRuns& reference) const {
    return paired_bootstrap(t, m, reference, options.bootstrap, options.seed);
  }
};

// A reference method's mean NFR or accuracy (`field`) over the seeds `m` ran: all of them once a
// run is finished; a partly run method is compared on its own seeds, like its paired interval.
double mean_on_seeds_of(const MethodRuns& m, const MethodRuns& reference, double SeedRun::*field) {
  std::vector<double> v;
  for (const auto& s : m.seeds) {
    if (const auto* r = seed_of(reference, s.seed)) v.push_back(r->*field);
  }
  if (v.empty()) {
    for (const auto& r : reference.seeds) v.push_back(r.*field);
  }
  return ms(v).mean;
}

// The strongest baseline: the lowest mean NFR among the baselines that ran and are at most
// report::kBaselineAccuracyBand less accurate than vanilla (on their own seeds), the competitors
// at par the paper compares with (its baselines are all within 0.24 points below their new
// model). A baseline that buys its few flips with accuracy, down to copying a weaker old model,
// is set aside; when every baseline is, the lowest NFR among all of them, said so.
struct Strongest {
  const MethodRuns* method = nullptr;  // null when no baseline ran
  std::vector<report::SetAsideBaseline> set_aside;
  bool outside_band = false;  // no baseline within the band: `method` is the lowest NFR of all
};

Strongest strongest_baseline(const TaskRuns& t, const MethodRuns* vanilla) {
  Strongest s;
  std::vector<const MethodRuns*> in_band, all;
  for (const auto& m : t.methods) {
    if (!m.baseline() || m.seeds.empty()) continue;
    all.push_back(&m);
    const double change = ran(vanilla) ? ms(accs(m)).mean - mean_on_seeds_of(m, *vanilla, &SeedRun::acc) : 0.0;
    if (change < -report::kBaselineAccuracyBand) {
      s.set_aside.push_back({m.folder, pretty(m.folder), change});
    } else {
      in_band.push_back(&m);
    }
  }
  const auto& pool = in_band.empty() ? all : in_band;
  for (const auto* m : pool) {
    if (!s.method || ms(nfrs(*m)).mean < ms(nfrs(*s.method)).mean) s.method = m;
  }
  s.outside_band = in_band.empty() && !all.empty();
  return s;
}

report::MethodRow method_row(const TaskContext& x, const MethodRuns& m, std::uint64_t first_seed) {
  report::MethodRow row;
  row.folder = m.folder;
  row.label = pretty(m.folder);
  row.ensemble_size = m.size;
  row.seeds = m.seeds.size();
  row.not_applicable = m.not_applicable;
  row.accuracy = accs(m);
  row.nfr = nfrs(m);
  for (const auto& s : m.seeds) {
    row.seconds.push_back(s.result.seconds);
    row.threads.push_back(s.result.threads);
  }
  if (!m.not_applicable.empty() || m.seeds.empty()) return row;
  const double nfr = ms(row.nfr).mean;
  if (ran(x.vanilla)) {
    row.reduction_vs_vanilla = metrics::relative_flip_reduction(mean_on_seeds_of(m, *x.vanilla, &SeedRun::nfr), nfr);
    if (&m != x.vanilla) row.accuracy_change = ms(row.accuracy).mean - mean_on_seeds_of(m, *x.vanilla, &SeedRun::acc);
  }
  if (x.strongest && &m != x.strongest && !m.baseline() && m.method != "vanilla") {
    row.reduction_vs_strongest = metrics::relative_flip_reduction(mean_on_seeds_of(m, *x.strongest, &SeedRun::nfr), nfr);
  }
  if (x.vanilla && &m != x.vanilla) row.minus_vanilla = x.bootstrap(m, *x.vanilla);
  if (const auto* s0 = seed_of(m, first_seed); s0 && s0->result.chosen) {
    row.chosen = s0->result.chosen->describe;
    row.chosen_fallback = s0->result.fallback.value_or(false);
  }
  return row;
}

// The paper's claims for Gated Fusion method `m` (needs vanilla's runs).
report::ClaimsCheck claims_check(const TaskContext& x, const MethodRuns& m) {
  report::ClaimsCheck c;
  c.folder = m.folder;
  c.label = pretty(m.folder);
  c.accuracy_change = ms(accs(m)).mean - mean_on_seeds_of(m, *x.vanilla, &SeedRun::acc);
  c.vs_vanilla = x.bootstrap(m, *x.vanilla);
  if (x.strongest) c.vs_strongest = x.bootstrap(m, *x.strongest);
  const auto& v = c.vs_vanilla;
  const auto& s = c.vs_strongest;
  c.removes_70_percent_at_par = v && v->rel && *v->rel >= 0.70 && c.accuracy_change >= -0.002;
  c.fewer_than_strongest_30 = s && s->rel && *s->rel >= 0.30;
  c.interval_vs_vanilla_excludes_0 = v && v->hi < 0;
  c.interval_vs_strongest_excludes_0 = s && s->hi < 0;
  return c;
}

// NFR between consecutive vanilla seeds taken as old and new.
std::vector<double> noise_floor(const TaskRuns& t, const MethodRuns& vanilla) {
  std::vector<double> floor;
  for (std::size_t i = 0; i + 1 < vanilla.seeds.size(); ++i) floor.push_back(nfr_of(t.y, vanilla.seeds[i].pred, vanilla.seeds[i + 1].pred));
  return floor;
}

// Section 5.5: fix and new-fault rates against vanilla of the same seed.
std::vector<report::FixRates> fix_rates(const TaskRuns& t, const MethodRuns& vanilla) {
  std::vector<report::FixRates> rows;
  for (const auto& m : t.methods) {
    if (&m == &vanilla || m.seeds.empty()) continue;
    report::FixRates row{pretty(m.folder), {}, {}};
    for (const auto& s : m.seeds) {
      const auto* v = seed_of(vanilla, s.seed);
      if (!v) continue;
      if (auto r = metrics::fix_rate(t.y, t.old(s.seed), v->pred, s.pred)) row.fix.push_back(*r);
      if (auto r = metrics::new_fault_rate(t.y, t.old(s.seed), v->pred, s.pred)) row.new_fault.push_back(*r);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

// Table 4: Gated Fusion's new model alone, where its units saved its predictions.
std::optional<report::DropOldModel> drop_old_model(const TaskRuns& t) {
  const auto* gf = t.find(methods::gated_fusion().name);
  if (!ran(gf) || gf->seeds.front().alone.empty()) return std::nullopt;
  report::DropOldModel d{nfrs(*gf), accs(*gf), {}, {}};
  for (const auto& s : gf->seeds) {
    d.alone_accuracy.push_back(accuracy_of(t.y, s.alone));
    d.alone_nfr.push_back(nfr_of(t.y, t.old(s.seed), s.alone));
  }
  return d;
}

// Table 5 from a gated method's cache.json files: per share cached, each policy's NFR and
// accuracy over seeds and random caches, and how often each fallback's label is the input's old one.
std::optional<report::CacheTable> cache_table(const MethodRuns& m, std::size_t index, const MethodRuns& vanilla,
                                              const std::vector<report::MethodRow>& rows) {
  std::map<double, report::CacheRow> by;  // by percent
  for (const auto& s : m.seeds) {
    if (!s.cache) continue;
    for (const auto& row : s.cache->percents) {
      for (const auto& d : row.draws) {
        for (const char* a : report::kCacheAgreements) {
          if (const auto it = d.agreements.find(a); it != d.agreements.end()) by[row.percent].agreements[a].push_back(it->second);
        }
        for (const auto& p : report::kCachePolicies) {
          const auto it = d.policies.find(p.key);
          if (it == d.policies.end()) continue;  // a cache.json from before the policy existed
          auto& runs = by[row.percent].policies[p.key];
          runs.nfr.push_back(it->second.nfr);
          runs.accuracy.push_back(it->second.accuracy);
        }
      }
    }
  }
  report::CacheTable table{index, mean_on_seeds_of(m, vanilla, &SeedRun::nfr), ms(nfrs(m)).mean, true, {}, false};
  if (const auto* d = methods::find(m.method)) table.reevaluated_gate = d->old_confidence || d->runner == methods::Runner::kHeldOutGate;
  for (const auto& r : rows) {
    if (r.folder == m.folder && r.minus_vanilla) table.clear_reduction = r.minus_vanilla->hi < 0;
  }
  // Share of the method's full NF reduction over vanilla a policy keeps.
  auto kept_share = [&](const char* policy, const report::CacheRow& row) -> std::optional<double> {
    const auto it = row.policies.find(policy);
    if (it == row.policies.end() || table.vanilla_nfr - table.full_nfr <= 0 || !table.clear_reduction) return std::nullopt;
    return (table.vanilla_nfr - ms(it->second.nfr).mean) / (table.vanilla_nfr - table.full_nfr);
  };
  for (auto& [percent, row] : by) {
    if (row.policies.empty()) continue;  // agreements without any policy: not a row
    row.percent = percent;
    row.kept_tuned = kept_share("tuned_distance", row);
    row.kept_emulator = kept_share("emulator", row);
    table.rows.push_back(std::move(row));
  }
  if (table.rows.empty()) return std::nullopt;
  return table;
}

// Validation NFR and accuracy (%) of `m`'s candidates by grid value `key`, means over seeds.
report::Sweep sweep(const MethodRuns& m, const std::string& label, const std::string& key, double fallback) {
  std::map<double, std::vector<double>> nfr_by, acc_by;
  for (const auto& s : m.seeds) {
    for (const auto& cand : s.result.candidates.value_or(std::vector<CandidateResult>{})) {
      const double x = setting_number(cand.setting, key, fallback);
      nfr_by[x].push_back(100 * cand.validation_nfr);
      acc_by[x].push_back(100 * cand.validation_accuracy);
    }
  }
  report::Sweep out{label, {}, {}, {}};
  for (const auto& [x, v] : nfr_by) {
    out.x.push_back(x);
    out.nfr_percent.push_back(ms(v).mean);
    out.accuracy_percent.push_back(ms(acc_by[x]).mean);
  }
  return out;
}

// Gated Fusion's gate by flip category of the old model against vanilla of the same seed, and
// per seed the AUC of a low gate on vanilla's regressions.
report::GateRouting gate_routing(const TaskRuns& t, const MethodRuns& gf, const MethodRuns& vanilla) {
  std::vector<double> sum(4, 0), cnt(4, 0);
  report::GateRouting g;
  for (const auto& s : gf.seeds) {
    const auto* v = seed_of(vanilla, s.seed);
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
    if (auto auc = lower_score_auc(flips, rest)) g.auc.push_back(*auc);
    if (s.drift) {
      g.weight_change.push_back(s.drift->weight_change);
      g.output_change.push_back(s.drift->output_change);
      g.output_change_spread.push_back(s.drift->output_change_spread);
      g.max_abs_change.push_back(s.drift->max_abs_change);
    }
  }
  g.examples = cnt;
  for (std::size_t k = 0; k < 4; ++k) g.mean_gate.push_back(cnt[k] > 0 ? sum[k] / cnt[k] : 0);
  return g;
}

// Negative flips by true class, mean over seeds, of vanilla, Gated Fusion and the strongest baseline.
std::vector<report::ClassFlips> class_flips(const TaskContext& x) {
  const auto& t = x.t;
  std::vector<report::ClassFlips> out;
  for (std::size_t k = 0; k < t.methods.size(); ++k) {
    const auto& m = t.methods[k];
    if (m.seeds.empty() || !(m.method == "vanilla" || is_gated_fusion(m.method) || &m == x.strongest)) continue;
    std::vector<double> per(t.names.size(), 0.0);
    for (const auto& s : m.seeds) {
      for (std::size_t i = 0; i < t.y.size(); ++i) {
        if (t.old(s.seed)[i] == t.y[i] && s.pred[i] != t.y[i] && t.y[i] >= 0) per[static_cast<std::size_t>(t.y[i])] += 1.0 / static_cast<double>(m.seeds.size());
      }
    }
    out.push_back({k, std::move(per)});
  }
  return out;
}

// The sweeps of the validation grid: alpha for methods mixing old and new with a weight, T for
// Gated Fusion (with at least two values).
void sweeps(const TaskRuns& t, report::TaskReport& r) {
  for (const auto& m : t.methods) {
    const auto* d = methods::find(m.method);
    if (!d || (d->runner != methods::Runner::kOldNewEnsemble && d->runner != methods::Runner::kBcwi)) continue;
    auto s = sweep(m, pretty(m.folder), "alpha", 0.0);
    if (!s.x.empty()) r.alpha_sweeps.push_back(std::move(s));
  }
  if (const auto* gf = t.find(methods::gated_fusion().name); ran(gf)) {
    auto s = sweep(*gf, "Gated Fusion", "temperature", 1.0);
    if (s.x.size() >= 2) r.temperature_sweep = std::move(s);
  }
}

// The config's reference numbers beside task `task`'s rows (fractions, as the rows hold theirs).
void add_reference(const ReferenceConfig& ref, const std::string& task, report::TaskReport& r) {
  if (!ref.enabled()) return;
  r.reference_label = ref.label;
  if (const auto it = ref.old_accuracy.find(task); it != ref.old_accuracy.end()) r.reference_old_accuracy = it->second / 100;
  auto numbers = [&](const std::string& folder) -> const ReferenceNumbers* {
    const auto m = ref.methods.find(folder);
    if (m == ref.methods.end()) return nullptr;
    const auto n = m->second.find(task);
    return n == m->second.end() ? nullptr : &n->second;
  };
  const auto* vanilla = numbers("vanilla");
  for (auto& row : r.methods) {
    const auto* n = numbers(row.folder);
    if (!n) continue;
    row.reference_nfr = n->nfr / 100;
    row.reference_accuracy = n->accuracy / 100;
    if (vanilla && row.folder != "vanilla") row.reference_reduction = metrics::relative_flip_reduction(vanilla->nfr, n->nfr);
  }
}

report::TaskReport task_report(const Collected& c, const TaskRuns& t, const ReportOptions& options) {
  report::TaskReport r;
  r.name = t.name;
  r.old_finished = !t.y.empty();
  if (!r.old_finished) return r;
  const auto* vanilla = t.find("vanilla");
  const auto strongest = strongest_baseline(t, vanilla);
  const TaskContext x{t, vanilla, strongest.method, options};
  r.label_names = t.names;
  r.examples = t.y.size();
  r.old_accuracy = t.old_acc;
  r.old_accuracy_per_model = t.old_accs;
  r.old_model_per_seed = !t.old_by_seed.empty();
  r.precision = t.precision;
  r.old_model_seconds = t.old_seconds;
  r.old_model_threads = t.old_threads;
  r.ensembles_share_members = t.ensembles_share_members;
  if (x.strongest) {
    r.strongest_folder = x.strongest->folder;
    r.strongest_label = pretty(x.strongest->folder);
    r.strongest_outside_band = strongest.outside_band;
    r.baselines_set_aside = strongest.set_aside;
  }
  for (const auto& m : t.methods) r.methods.push_back(method_row(x, m, c.config.seeds.front()));
  add_reference(c.config.reference, t.name, r);
  if (ran(x.vanilla)) {
    const double new_acc = ms(accs(*x.vanilla)).mean, gain = new_acc - t.old_acc;
    r.upgrade = report::UpgradeCheck{t.old_acc, new_acc, gain, gain >= 0.02};  // the paper's upgrade: 2 points more accurate
    for (const auto& m : t.methods) {
      if (is_gated_fusion(m.method) && !m.seeds.empty()) r.claims.push_back(claims_check(x, m));
    }
    for (std::size_t k = 0; k < t.methods.size(); ++k) {
      if (!is_gated_fusion(t.methods[k].method)) continue;
      if (auto table = cache_table(t.methods[k], k, *x.vanilla, r.methods)) r.caches.push_back(std::move(*table));
    }
    std::stable_partition(r.caches.begin(), r.caches.end(), [&](const report::CacheTable& table) { return r.methods[table.method].folder == "gated_fusion"; });
  }
  if (x.vanilla && x.vanilla->seeds.size() >= 2) r.noise_floor = noise_floor(t, *x.vanilla);
  if (x.vanilla) r.fix_rates = fix_rates(t, *x.vanilla);
  r.drop_old_model = drop_old_model(t);
  sweeps(t, r);
  if (x.vanilla) {
    for (std::size_t k = 0; k < t.methods.size(); ++k) {
      const auto& m = t.methods[k];
      if (!is_gated_fusion(m.method) || !ran(&m) || m.seeds.front().gates.empty()) continue;
      auto g = gate_routing(t, m, *x.vanilla);
      g.method = k;
      // The paper's Gated Fusion first: the report's single-gate sections and JSON keys are its.
      r.gates.insert(m.method == methods::gated_fusion().name ? r.gates.begin() : r.gates.end(), std::move(g));
    }
  }
  r.class_flips = class_flips(x);
  return r;
}

}  // namespace

report::ExperimentReport build_experiment_report(const fs::path& run, const ReportOptions& options) {
  const auto c = collect(run);
  report::ExperimentReport r;
  r.experiment = c.config.name;
  r.run_dir = run.string();
  r.seeds = c.config.seeds;
  r.units_planned = c.planned;
  r.units_finished = c.finished;
  for (const auto& t : c.tasks) r.tasks.push_back(task_report(c, t, options));
  return r;
}

ReportFiles write_experiment_report(const fs::path& run, const ReportOptions& options) {
  const auto r = build_experiment_report(run, options);
  const fs::path out = options.out.empty() ? run / "report" : options.out;
  fs::create_directories(out);
  ReportFiles files{out / "report.html", out / "report.md", out / "report.json", report::render_text(r)};
  core::write_file_atomic(files.html, report::render_html(r));
  core::write_file_atomic(files.markdown, report::render_markdown(r));
  core::write_file_atomic(files.json, report::render_json(r));
  return files;
}

}  // namespace flipless::experiment
