// The experiment report's four renderings (report.md, report.html, report.json and the terminal
// table) of a hand-made run folder that reaches every section of the report, compared byte for
// byte with tests/golden/runs/report_every_section.json (golden_run.h). Torch-free, so it runs in
// every build; the runner's golden tests cover reports of real runs in the ML build.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../golden_run.h"
#include "../test_util.h"
#include "flipless/data/predictions.h"
#include "flipless/experiment/report.h"
#include "flipless/experiment/run_results.h"

namespace flipless::experiment {
namespace {

namespace fs = std::filesystem;
using flipless::testing::TempDir;

constexpr std::size_t kExamples = 24;
const std::vector<std::string> kLabels = {"neg", "neutral", "pos"};

// True labels cycle through the three classes.
std::int32_t truth(std::size_t i) { return static_cast<std::int32_t>(i % 3); }

// Predictions right except where `wrong(i)` holds (then the next class).
template <class Wrong>
std::vector<std::int32_t> predictions(Wrong wrong) {
  std::vector<std::int32_t> p;
  for (std::size_t i = 0; i < kExamples; ++i) p.push_back(wrong(i) ? (truth(i) + 1) % 3 : truth(i));
  return p;
}

void write_predictions(const fs::path& file, const std::vector<std::int32_t>& preds, const std::vector<float>& gates = {}) {
  fs::create_directories(file.parent_path());
  data::PredictionRows rows;
  rows.label_names = kLabels;
  rows.num_labels = 3;
  for (std::size_t i = 0; i < preds.size(); ++i) {
    rows.ids.push_back(fmt::format("ex{}", i));
    rows.labels.push_back(truth(i));
    for (std::int32_t k = 0; k < 3; ++k) rows.logits.push_back(k == preds[i] ? 2.0f : -1.0f);
  }
  rows.gates = gates;
  data::write_predictions(file, rows);
}

CandidateResult candidate(const std::string& key, double value, double nfr, double accuracy) {
  CandidateResult c;
  c.setting.numbers[key] = value;
  c.describe = c.setting.describe();
  c.validation_nfr = nfr;
  c.validation_accuracy = accuracy;
  return c;
}

// One cache.json: per percent, two draws; the 25% row has no emulator (a file from before the
// policy) and the 100% row no agreements (every input cached).
void write_cache(const fs::path& file, std::uint64_t seed) {
  nlohmann::json rows = nlohmann::json::array();
  for (double percent : {0.0, 25.0, 50.0, 100.0}) {
    nlohmann::json draws = nlohmann::json::array();
    for (int d = 0; d < 2; ++d) {
      const double s = 0.01 * static_cast<double>(seed + 1) + 0.003 * d, x = percent / 100;
      nlohmann::json policies = {{"neighbour", {{"nfr", 0.12 - 0.06 * x + s}, {"accuracy", 0.80 + 0.02 * x}}},
                                 {"new_on_miss", {{"nfr", 0.15 - 0.09 * x + s}, {"accuracy", 0.82}}},
                                 {"tuned_distance", {{"nfr", 0.11 - 0.05 * x + s}, {"accuracy", 0.81 + 0.01 * x}}}};
      if (percent != 25.0) policies["emulator"] = {{"nfr", 0.10 - 0.04 * x + s}, {"accuracy", 0.815}};
      nlohmann::json draw = {{"cached", static_cast<int>(percent * kExamples / 100)}, {"near_hits", 3}, {"policies", policies}};
      if (percent < 100) {
        draw["neighbour_agreement"] = 0.6 + 0.1 * x + s;
        draw["emulator_agreement"] = 0.7 + s;
        draw["new_model_agreement"] = 0.75;
      }
      draws.push_back(draw);
    }
    rows.push_back({{"percent", percent}, {"max_distance", percent > 0 ? nlohmann::json(0.4) : nlohmann::json(nullptr)}, {"draws", draws}});
  }
  std::ofstream(file) << nlohmann::json({{"temperature", 1.0}, {"percents", rows}}).dump(2);
}

class ReportGoldenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Two tasks, the second with no old model yet; three seeds, one old model per seed.
    fs::create_directories(run());
    std::ofstream(run() / "experiment.yaml") << "name: every_section\ntasks: [toy, later]\nseeds: [0, 1, 2]\n"
                                                "old: {kind: fasttext, per_seed: true}\nnew: {kind: frozen, model: m}\n"
                                                "methods:\n  distillation: {lambda: [0.1, 1]}\n  elodi: {}\n  new_ensemble: {sizes: [2, 3]}\n"
                                                "  old_new_prob_ensemble: {}\n  bcwi: {}\n  gated_fusion: {}\n  gated_fusion_confidence: {}\n";
    for (std::uint64_t seed = 0; seed < 3; ++seed) {
      const auto old_dir = run() / "toy" / "old" / fmt::format("seed-{}", seed);
      write_predictions(old_dir / "predictions" / "dev.jsonl", predictions([&](std::size_t i) { return (i + seed) % 5 == 0 || i % 7 == 3; }));
      OldModelResult r;
      r.describe = fmt::format("fastText (seed {})", seed);
      r.kind = "fasttext";
      r.seed = seed;
      r.label_names = kLabels;
      write_result(old_dir / "result.json", r);
    }
    // Vanilla on every seed (bf16); the others on fewer, each breaking fewer examples.
    unit("vanilla", 0, [](std::size_t i) { return i % 4 == 0 || i == 7; });
    unit("vanilla", 1, [](std::size_t i) { return i % 4 == 1 || i == 6; });
    unit("vanilla", 2, [](std::size_t i) { return i % 4 == 2; });
    unit("distillation", 0, [](std::size_t i) { return i % 6 == 0 || i == 5; });
    unit("distillation", 1, [](std::size_t i) { return i % 6 == 1; });
    unit("new_ensemble-2", 0, [](std::size_t i) { return i % 5 == 1; });
    unit("new_ensemble-2", 1, [](std::size_t i) { return i % 5 == 2; });
    unit("new_ensemble-3", 0, [](std::size_t i) { return i % 8 == 1; });
    unit("old_new_prob_ensemble", 0, [](std::size_t i) { return i % 9 == 0; });
    unit("old_new_prob_ensemble", 1, [](std::size_t i) { return i % 9 == 4; });
    unit("gated_fusion", 0, [](std::size_t i) { return i == 4 || i == 13; });
    unit("gated_fusion", 1, [](std::size_t i) { return i == 9; });
    unit("gated_fusion", 2, [](std::size_t i) { return i == 22; });
    unit("gated_fusion_confidence", 0, [](std::size_t i) { return i == 4 || i == 20; });
    // BCWI could not run; ELODI has not run yet.
    const auto na = run() / "toy" / "bcwi" / "seed-0";
    fs::create_directories(na);
    UnitResult r;
    r.task = "toy";
    r.method = "bcwi";
    r.precision = "bf16";
    r.status = "not_applicable";
    r.reason = "the old model is fastText";
    write_result(na / "result.json", r);
  }

  fs::path run() const { return dir_.path() / "run"; }

  template <class Wrong>
  void unit(const std::string& folder, std::uint64_t seed, Wrong wrong) {
    const auto dir = run() / "toy" / folder / fmt::format("seed-{}", seed);
    const auto preds = predictions(wrong);
    std::vector<float> gates;
    const bool gated = folder.rfind("gated_fusion", 0) == 0;
    if (gated) {
      for (std::size_t i = 0; i < kExamples; ++i) gates.push_back(static_cast<float>((i * 37 + seed * 11) % 100) / 100.0f);
    }
    write_predictions(dir / "predictions" / "dev.jsonl", preds, gates);
    UnitResult r;
    r.task = "toy";
    r.method = folder;
    r.seed = seed;
    r.precision = "bf16";
    if (folder == "gated_fusion") {
      write_predictions(dir / "predictions" / "dev.new_model_alone.jsonl", predictions([&](std::size_t i) { return i % 4 == seed; }));
      if (seed < 2) write_cache(dir / "cache.json", seed);
    }
    if (gated) {
      r.candidates = {candidate("temperature", 1.0, 0.03 + 0.01 * static_cast<double>(seed), 0.85), candidate("temperature", 1.4, 0.02, 0.84),
                      candidate("temperature", 2.0, 0.025, 0.83)};
      r.chosen = r.candidates->at(1);
      r.fallback = folder == "gated_fusion_confidence";  // none on par: the most accurate was taken
    } else if (folder == "old_new_prob_ensemble") {
      r.candidates = {candidate("alpha", 0.3, 0.01, 0.8), candidate("alpha", 0.5, 0.02, 0.84), candidate("alpha", 0.7, 0.04 + 0.01 * static_cast<double>(seed), 0.86)};
      r.chosen = r.candidates->at(1);
    } else if (folder == "distillation") {
      r.chosen = candidate("lambda", 1.0, 0.05, 0.85);
    }
    write_result(dir / "result.json", r);
  }

  TempDir dir_;
};

TEST_F(ReportGoldenTest, EveryRenderingIsUnchanged) {
  ReportOptions options;
  options.bootstrap = 300;
  options.seed = 7;
  options.out = dir_.path() / "out";
  const auto files = write_experiment_report(run(), options);
  std::ofstream(options.out / "terminal.txt", std::ios::binary) << files.table;
  // By its bytes, not as parsed JSON: number formatting and indentation are part of the output.
  fs::rename(files.json, options.out / "report.json.bytes");
  flipless::testing::expect_matches_golden(options.out, dir_.path(), "report_every_section");
}

// Table 5's "share of the reduction kept" is a ratio against full Gated Fusion's reduction: shown
// when that reduction is clear (here), withheld when its interval includes 0 (the runner's tiny
// golden run, tests/golden/runs/every_method.json).
TEST_F(ReportGoldenTest, Table5SharesAreShownOnlyWhenGatedFusionsReductionIsClear) {
  ReportOptions options;
  options.bootstrap = 300;
  options.seed = 7;
  const auto report = build_experiment_report(run(), options);
  const auto& t = report.tasks.front();
  ASSERT_FALSE(t.caches.empty());
  const auto& cache = t.caches.front();
  const auto gf = std::find_if(t.methods.begin(), t.methods.end(), [](const auto& m) { return m.folder == "gated_fusion"; });
  ASSERT_NE(gf, t.methods.end());
  EXPECT_EQ(t.methods[cache.method].folder, "gated_fusion");  // the paper's first
  ASSERT_TRUE(gf->minus_vanilla.has_value());
  EXPECT_EQ(cache.clear_reduction, gf->minus_vanilla->hi < 0);
  EXPECT_TRUE(cache.clear_reduction) << "upper end of GF - vanilla: " << gf->minus_vanilla->hi;
  bool any_share = false;
  for (const auto& row : cache.rows) any_share |= row.kept_tuned.has_value();
  EXPECT_EQ(any_share, cache.clear_reduction);
}

}  // namespace
}  // namespace flipless::experiment
