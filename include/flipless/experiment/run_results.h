#pragma once
// The result files of a run folder (runner/runner.h) as types, each read by one function and
// written by one: TASK/old[/seed-S]/result.json (OldModelResult) and
// TASK/METHOD/seed-S/result.json (UnitResult). A reader checks every field it fills: a missing
// field, a wrong type or a value out of range is one InputError naming the file and the field
// ("RUN/words/vanilla/seed-0/result.json: field 'dev_nfr': missing"), never an exception from
// deep inside the JSON library. Torch-free, so the report reads them without the ML build.
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "flipless/experiment/config.h"

namespace flipless::experiment {

// One setting of a method's grid judged on validation ("chosen", "candidates").
struct CandidateResult {
  Setting setting;
  std::string describe;  // setting.describe() when written
  double validation_accuracy = 0, validation_nfr = 0;
  bool on_par = false;  // validation accuracy >= vanilla's - tolerance
};

// TASK/old/result.json, or TASK/old/seed-S/result.json with per_seed.
struct OldModelResult {
  std::string describe;  // "fastText (seed 0)"
  std::string kind;      // the config's kind: fasttext, frozen, finetuned
  std::uint64_t seed = 0;
  std::vector<std::string> label_names;
  std::uint64_t trained_on = 0;  // training rows it saw
  std::int64_t cross_fit = 0;
  double train_accuracy = 0, validation_accuracy = 0, dev_accuracy = 0;  // train: cross-fitted when cross_fit >= 2
  std::optional<double> train_accuracy_in_sample;                         // with cross_fit >= 2
  std::optional<std::string> precision;                                   // torch kinds
  double seconds = 0;
  std::optional<std::int64_t> threads;  // CPU threads it ran on (absent in files from before 2026-12-02)
};

// TASK/METHOD/seed-S/result.json: one method and seed.
struct UnitResult {
  std::string task, method;  // method: the unit's folder name (new_ensemble-5)
  std::uint64_t seed = 0;
  std::string precision;
  // Units that could not run (BCWI between two architectures): status "not_applicable" and why;
  // the fields below are then absent.
  std::optional<std::string> status, reason;
  bool applicable() const { return !status.has_value(); }

  double validation_accuracy = 0, validation_nfr = 0, dev_accuracy = 0, dev_nfr = 0;
  // Methods with a grid: the chosen setting, every candidate, the vanilla accuracy the
  // candidates were held to, whether none was on par (the most accurate was taken).
  std::optional<CandidateResult> chosen;
  std::optional<std::vector<CandidateResult>> candidates;
  std::optional<double> reference_validation_accuracy;
  std::optional<bool> fallback;
  std::optional<std::uint64_t> searched_on_seed;  // strategies (search: first_seed reuses seed 0's)
  // Gated Fusion and its variant: the new model alone (table 4), gate steps, shared warm-up.
  std::optional<double> dev_accuracy_new_model_alone, dev_nfr_new_model_alone;
  std::optional<std::int64_t> gate_steps;
  std::optional<bool> shared_warmup;
  // new_ensemble-N: its size and its members' seeds.
  std::optional<std::int64_t> size;
  std::optional<std::vector<std::uint64_t>> member_seeds;
  double seconds = 0;
  std::optional<std::int64_t> threads;  // CPU threads it ran on (absent in files from before 2026-12-02)
};

// TASK/gated_fusion/seed-S/cache.json: the cache experiment (experiment/cache_experiment.h writes
// it). Policies are read by name, whatever policies the file has.
struct CachePolicyResult {
  double nfr = 0, accuracy = 0;
};
struct CacheDrawResult {
  std::uint64_t cached = 0, near_hits = 0;
  std::map<std::string, CachePolicyResult> policies;
  // With near hits: how often a source's label equals the input's own old label, by the file's
  // key (neighbour_agreement, new_model_agreement, emulator_agreement, ...).
  std::map<std::string, double> agreements;
};
struct CachePercentResult {
  double percent = 0;
  std::optional<double> max_distance;  // the tuned distance threshold, when one was found
  std::vector<CacheDrawResult> draws;
};
struct CacheExperimentResult {
  std::filesystem::path source;  // the file, for errors found by its readers
  double temperature = 0;
  std::vector<CachePercentResult> percents;
  // Policy `name` of draw `draw` of row `row`; throws InputError naming the file and the field
  // when the file has no such policy (a file written before the policy existed).
  const CachePolicyResult& policy(std::size_t row, std::size_t draw, const std::string& name) const;
};

// TASK/METHOD/seed-S/gate.json, for a gate trained in the loop (Gated Fusion and its in-loop
// variants): how far training moved it from its (seeded, reproducible) initialisation. At the
// paper's lr2 a gate moves little in its one epoch.
struct GateDrift {
  double weight_change = 0;   // ||W - W_0|| / ||W_0|| over the gate's two weight matrices (L2)
  double max_abs_change = 0;  // the largest |theta - theta_0| of one parameter
  double output_change = 0;   // mean over dev of |a(x) - a_0(x)|, both on the trained model's inputs
  double output_change_spread = 0;  // standard deviation over dev of a(x) - a_0(x): near 0, a shift of every input alike
};

// Readers: throw IoError when the file cannot be read, InputError naming the file and the field.
OldModelResult read_old_model_result(const std::filesystem::path& path);
UnitResult read_unit_result(const std::filesystem::path& path);
CacheExperimentResult read_cache_experiment_result(const std::filesystem::path& path);
GateDrift read_gate_drift(const std::filesystem::path& path);

// The JSON the readers take (keys in the order nlohmann writes objects: sorted).
nlohmann::json to_json(const CandidateResult& c);
nlohmann::json to_json(const OldModelResult& r);
nlohmann::json to_json(const UnitResult& r);

// Writes through a temporary file and a rename, as every run-folder file is written.
void write_result(const std::filesystem::path& path, const OldModelResult& r);
void write_result(const std::filesystem::path& path, const UnitResult& r);
void write_result(const std::filesystem::path& path, const GateDrift& r);

}  // namespace flipless::experiment
