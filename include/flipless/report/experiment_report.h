#pragma once
// The report of an experiment's run folder as data, and its renderings for people and for
// machines. experiment/report.h computes an ExperimentReport from a run folder's saved results
// (as compare/compare.h computes a Comparison); the functions below only lay it out. Rates and
// accuracies are fractions unless a field says otherwise; per-seed vectors are in seed order.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace flipless::report {

// A paired bootstrap over examples (and seeds) of a method against a reference.
struct PairedDifference {
  double diff = 0, lo = 0, hi = 0;            // mean over seeds of NFR(method) - NFR(reference), 95% interval
  std::optional<double> rel, rel_lo, rel_hi;  // 1 - NF(method) / NF(reference) and its interval; undefined when the reference has no flips
  std::size_t seeds = 0;                      // seeds present in both
};

// One row of the main table: a unit folder (a method, or a method at one ensemble size).
struct MethodRow {
  std::string folder;             // the unit folder ("new_ensemble-5")
  std::string label;              // its row label ("new-model ensemble (5)")
  int ensemble_size = 0;          // new-model ensembles: their size (table 3); 0 otherwise
  std::size_t seeds = 0;          // seeds finished (and applicable)
  std::string not_applicable;     // why the method could not run; empty when it could
  std::vector<double> accuracy, nfr;  // per seed
  std::optional<double> reduction_vs_vanilla, reduction_vs_strongest;  // relative NF reductions
  std::optional<double> accuracy_change;  // mean accuracy minus vanilla's on the same seeds (not for vanilla)
  std::optional<PairedDifference> minus_vanilla;                       // not for vanilla itself
  std::optional<std::string> chosen;  // the setting chosen on the first seed
  bool chosen_fallback = false;       // none was on par: the most accurate was chosen
  // The config's reference numbers for this method and task (fractions), and its NF reduction
  // against the reference's vanilla; none when the config gives none.
  std::optional<double> reference_nfr, reference_accuracy, reference_reduction;
  std::vector<double> seconds;  // per seed: the unit's wall time on the machine that ran it (report.json only)
  std::vector<std::optional<std::int64_t>> threads;  // per seed: the CPU threads the unit ran on, where its result.json says
};

// The new model alone (vanilla) against the old model: an upgrade is >= 2 points more accurate.
struct UpgradeCheck {
  double old_accuracy = 0, new_accuracy = 0, gain = 0;
  bool is_upgrade = false;
};

// The paper's claims for one Gated Fusion method, measured.
struct ClaimsCheck {
  std::string folder, label;
  double accuracy_change = 0;  // mean accuracy minus vanilla's
  std::optional<PairedDifference> vs_vanilla, vs_strongest;
  bool removes_70_percent_at_par = false;      // >= 70% of vanilla's flips removed, accuracy >= vanilla - 0.2 point
  bool fewer_than_strongest_30 = false;        // >= 30% fewer flips than the strongest baseline
  bool interval_vs_vanilla_excludes_0 = false;
  bool interval_vs_strongest_excludes_0 = false;
};

// Section 5.5: fix and new-fault rates against vanilla, per seed.
struct FixRates {
  std::string label;
  std::vector<double> fix, new_fault;
};

// Table 4: Gated Fusion with the old model and with it dropped at inference, per seed.
struct DropOldModel {
  std::vector<double> nfr, accuracy;              // with the old model
  std::vector<double> alone_nfr, alone_accuracy;  // the new model alone
};

// Table 5: Gated Fusion (or a variant) served from a cache holding the old logits of a share of the inputs.
struct CachePolicy {
  const char* key;   // in cache.json and report.json
  const char* name;  // in tables and charts
};
inline constexpr CachePolicy kCachePolicies[] = {
    {"neighbour", "nearest (paper)"}, {"new_on_miss", "new alone on miss"}, {"tuned_distance", "tuned distance"}, {"emulator", "old-model emulator"}};
// How often a fallback's label is the input's own old label (over the inputs not cached).
inline constexpr const char* kCacheAgreements[] = {"neighbour_agreement", "emulator_agreement", "new_model_agreement"};

struct CachePolicyRuns {
  std::vector<double> nfr, accuracy;  // over seeds x random caches
};
struct CacheRow {
  double percent = 0;                                  // of the eval inputs cached
  std::map<std::string, CachePolicyRuns> policies;     // by kCachePolicies key; only those measured
  std::optional<double> kept_tuned, kept_emulator;     // share of GF's NF reduction kept
  std::map<std::string, std::vector<double>> agreements;  // by kCacheAgreements key; only those measured
};
struct CacheTable {
  std::size_t method = 0;                 // index into TaskReport::methods (a gated method)
  double vanilla_nfr = 0, full_nfr = 0;   // means over seeds; full: the method with every old logit
  // Whether the method's full NFR is clearly below vanilla's (its paired interval excludes 0).
  // When it is not, a share of its reduction is a ratio of noise and is not computed.
  bool clear_reduction = true;
  std::vector<CacheRow> rows;             // by increasing percent
  // The method's gate may read the two models' probabilities (re-evaluated on the old logits
  // each policy gives an input not cached); the paper's reads the embedding only.
  bool reevaluated_gate = false;
};

// A validation sweep over one grid value (alpha, T), means over seeds and other grid values, in %.
struct Sweep {
  std::string label;
  std::vector<double> x, nfr_percent, accuracy_percent;
};

// A gate (Gated Fusion's or a variant's) by flip category of the old model against vanilla of
// the same seed.
struct GateRouting {
  std::size_t method = 0;  // index into TaskReport::methods
  static constexpr const char* kCategories[] = {"regressions", "fixes", "both right", "both wrong"};
  std::vector<double> examples, mean_gate;  // per category, over all seeds
  std::vector<double> auc;                  // per seed: P(gate of a vanilla regression < gate of another example)
  // Per seed with a gate.json: how far training moved the gate from its initialisation, in its
  // weight matrices (relative L2) and in its value on dev (mean absolute change, and the
  // change's spread over inputs: near 0, every input shifted alike).
  std::vector<double> weight_change, output_change, output_change_spread;
  std::vector<double> max_abs_change;  // per seed: the largest change of one gate parameter
};

// Negative flips by true class of one method, mean over its seeds.
struct ClassFlips {
  std::size_t method = 0;  // index into TaskReport::methods
  std::vector<double> per_class;
};

// A baseline that counts as the strongest only if its mean accuracy is at most this far (a
// fraction: 1 point) below vanilla's: the paper's baselines all are, its strongest 0.24 points below.
inline constexpr double kBaselineAccuracyBand = 0.01;

// A baseline left out of the choice of the strongest: more than kBaselineAccuracyBand less accurate than vanilla.
struct SetAsideBaseline {
  std::string folder, label;
  double accuracy_change = 0;  // mean accuracy − vanilla's (fraction)
};

struct TaskReport {
  std::string name;
  bool old_finished = false;  // false: nothing else below is filled
  std::vector<std::string> label_names;
  std::size_t examples = 0;   // regression-set examples
  double old_accuracy = 0;    // mean over old models
  std::vector<double> old_accuracy_per_model;
  bool old_model_per_seed = false;  // one old model per seed
  std::string precision;            // the new models' math; empty when unknown
  std::vector<double> old_model_seconds;  // per old model: its training's wall time (report.json only)
  std::vector<std::optional<std::int64_t>> old_model_threads;  // per old model: its CPU threads, where recorded
  // New-model ensembles or ELODI's reference ensembles hold other seeds' vanilla models
  // (ensemble_members: other_seeds): they overlap, so their spread over seeds understates their variance.
  bool ensembles_share_members = false;
  // The strongest baseline: the lowest mean NFR among the baselines at most kBaselineAccuracyBand
  // less accurate than vanilla; strongest_outside_band: none was, so the lowest NFR of them all.
  std::optional<std::string> strongest_folder, strongest_label;
  bool strongest_outside_band = false;
  std::vector<SetAsideBaseline> baselines_set_aside;  // more than the band less accurate than vanilla
  std::vector<MethodRow> methods;
  std::string reference_label;                     // the config's reference (empty: none)
  std::optional<double> reference_old_accuracy;    // its old model's accuracy (fraction)
  std::optional<UpgradeCheck> upgrade;
  std::vector<ClaimsCheck> claims;
  std::optional<std::vector<double>> noise_floor;  // NFR between consecutive vanilla seeds
  std::optional<std::vector<FixRates>> fix_rates;
  std::optional<DropOldModel> drop_old_model;
  std::vector<CacheTable> caches;  // table 5 per gated method with cache.json files, the paper's first
  std::vector<Sweep> alpha_sweeps;  // methods mixing old and new with a weight alpha
  std::optional<Sweep> temperature_sweep;
  std::vector<GateRouting> gates;  // every method of Gated Fusion's family with gate values, the paper's first
  std::vector<ClassFlips> class_flips;  // vanilla, Gated Fusion methods and the strongest baseline
};

struct ExperimentReport {
  std::string experiment;  // the config's name
  std::string run_dir;
  std::vector<std::uint64_t> seeds;
  std::size_t units_planned = 0, units_finished = 0;
  std::vector<TaskReport> tasks;
};

// The main table of each task (and the upgrade check) aligned for a terminal.
std::string render_text(const ExperimentReport& r);
// Every number of the report as indented JSON (report.json), with a final newline.
std::string render_json(const ExperimentReport& r);
// GitHub-flavoured Markdown (report.md); the charts are only in the HTML.
std::string render_markdown(const ExperimentReport& r);
// One self-contained HTML page with SVG charts (report.html); no scripts or network needed.
std::string render_html(const ExperimentReport& r);

}  // namespace flipless::report
