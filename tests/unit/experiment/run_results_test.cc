// The typed files of a run folder (issue 15): each reads back what its writer wrote, and a
// missing field, a wrong type or an unknown status is one InputError naming the file and the
// field, never an exception from inside the JSON library.
#include "flipless/experiment/run_results.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../test_util.h"
#include "flipless/core/error.h"

namespace flipless::experiment {
namespace {

using flipless::testing::error_of;
using flipless::testing::TempDir;
using json = nlohmann::json;

// A unit result as the runner writes one for Gated Fusion (every optional field present).
json gated_fusion_result() {
  const json candidate = {{"setting", {{"numbers", {{"drop_gate", 0.5}, {"lr2", 0.01}, {"temperature", 1.4}}}, {"words", json::object()}}},
                          {"describe", "drop_gate=0.5 lr2=0.01 temperature=1.4"},
                          {"validation_accuracy", 0.75},
                          {"validation_nfr", 0.0625},
                          {"on_par", true}};
  return {{"task", "words"},
          {"method", "gated_fusion"},
          {"seed", 1},
          {"precision", "fp32"},
          {"chosen", candidate},
          {"candidates", json::array({candidate, candidate})},
          {"reference_validation_accuracy", 0.7375},
          {"fallback", false},
          {"searched_on_seed", 1},
          {"dev_accuracy_new_model_alone", 0.8},
          {"dev_nfr_new_model_alone", 0.05},
          {"gate_steps", 12},
          {"shared_warmup", true},
          {"validation_accuracy", 0.75},
          {"validation_nfr", 0.0625},
          {"dev_accuracy", 0.825},
          {"dev_nfr", 0.0375},
          {"seconds", 1.5},
          {"threads", 2}};
}

json old_result() {
  return {{"describe", "fastText (seed 0)"}, {"kind", "fasttext"},     {"seed", 0},           {"label_names", {"0", "1"}},
          {"trained_on", 180},               {"cross_fit", 2},         {"train_accuracy", 0.7}, {"validation_accuracy", 0.65},
          {"dev_accuracy", 0.6},             {"train_accuracy_in_sample", 0.9}, {"seconds", 0.25}, {"threads", 1}};
}

TEST(RunResults, EachFileReadsBackAsWritten) {
  TempDir dir;
  const auto unit = dir.write("result.json", gated_fusion_result().dump(2));
  EXPECT_EQ(to_json(read_unit_result(unit)), gated_fusion_result());
  const auto r = read_unit_result(unit);
  ASSERT_TRUE(r.chosen.has_value());
  EXPECT_EQ(r.chosen->setting.number("temperature"), 1.4);
  EXPECT_EQ(r.candidates->size(), 2u);
  EXPECT_EQ(r.gate_steps, 12);
  EXPECT_EQ(r.threads, 2);
  const auto old = dir.write("old.json", old_result().dump(2));
  EXPECT_EQ(to_json(read_old_model_result(old)), old_result());
  EXPECT_EQ(read_old_model_result(old).threads, 1);
  // Files from before 2026-12-02 do not say how many threads: read as unknown, written without.
  auto older = gated_fusion_result();
  older.erase("threads");
  const auto older_path = dir.write("older.json", older.dump());
  EXPECT_FALSE(read_unit_result(older_path).threads.has_value());
  EXPECT_EQ(to_json(read_unit_result(older_path)), older);
  // A unit that could not run: status and reason, nothing else.
  const json na = {{"task", "words"}, {"method", "bcwi"}, {"seed", 0}, {"precision", "fp32"}, {"status", "not_applicable"}, {"reason", "why"}};
  const auto na_path = dir.write("na.json", na.dump());
  EXPECT_FALSE(read_unit_result(na_path).applicable());
  EXPECT_EQ(to_json(read_unit_result(na_path)), na);
  // Written through write_result: the bytes write_json_file writes for the same JSON.
  write_result(dir.path() / "again.json", read_unit_result(unit));
  EXPECT_EQ(to_json(read_unit_result(dir.path() / "again.json")), gated_fusion_result());
}

TEST(RunResults, AMissingOrMistypedFieldNamesTheFileAndTheField) {
  TempDir dir;
  auto unit = gated_fusion_result();
  unit.erase("dev_nfr");
  auto path = dir.write("result.json", unit.dump());
  EXPECT_EQ(error_of<InputError>([&] { read_unit_result(path); }), path.string() + ": field 'dev_nfr': missing");
  unit = gated_fusion_result();
  unit["chosen"]["setting"]["numbers"]["lr2"] = "fast";
  path = dir.write("result.json", unit.dump());
  EXPECT_EQ(error_of<InputError>([&] { read_unit_result(path); }), path.string() + ": field 'chosen.setting.numbers.lr2': expected a number");
  unit = gated_fusion_result();
  unit["threads"] = 0;
  path = dir.write("result.json", unit.dump());
  EXPECT_EQ(error_of<InputError>([&] { read_unit_result(path); }), path.string() + ": field 'threads': expected at least 1 thread");
  unit = gated_fusion_result();
  unit["candidates"][1].erase("on_par");
  path = dir.write("result.json", unit.dump());
  EXPECT_EQ(error_of<InputError>([&] { read_unit_result(path); }), path.string() + ": field 'candidates[1].on_par': missing");
  unit = gated_fusion_result();
  unit["dev_accuracy"] = nullptr;  // what nlohmann writes for NaN
  path = dir.write("result.json", unit.dump());
  EXPECT_NE(error_of<InputError>([&] { read_unit_result(path); }).find("field 'dev_accuracy': expected a number, found null"), std::string::npos);
  unit = gated_fusion_result();
  unit["status"] = "crashed";
  path = dir.write("result.json", unit.dump());
  EXPECT_NE(error_of<InputError>([&] { read_unit_result(path); }).find("field 'status': 'crashed' is not a status"), std::string::npos);
  unit = gated_fusion_result();
  unit["seed"] = -1;
  path = dir.write("result.json", unit.dump());
  EXPECT_EQ(error_of<InputError>([&] { read_unit_result(path); }), path.string() + ": field 'seed': expected a non-negative integer");
  path = dir.write("result.json", "[1, 2]");
  EXPECT_EQ(error_of<InputError>([&] { read_unit_result(path); }), path.string() + ": expected an object");
  path = dir.write("result.json", "{\"task\": ");
  EXPECT_NE(error_of<InputError>([&] { read_unit_result(path); }).find("not valid JSON"), std::string::npos);

  auto old = old_result();
  old.erase("label_names");
  path = dir.write("old.json", old.dump());
  EXPECT_EQ(error_of<InputError>([&] { read_old_model_result(path); }), path.string() + ": field 'label_names': missing");
  old = old_result();
  old["label_names"] = json::array();
  path = dir.write("old.json", old.dump());
  EXPECT_EQ(error_of<InputError>([&] { read_old_model_result(path); }), path.string() + ": field 'label_names': expected at least one label");
  EXPECT_THROW(read_old_model_result(dir.path() / "absent.json"), IoError);
}

TEST(RunResults, TheCacheExperimentReadsPoliciesByName) {
  TempDir dir;
  const json draw = {{"cached", 40},
                     {"near_hits", 40},
                     {"neighbour_agreement", 0.75},
                     {"new_model_agreement", 0.5},
                     {"policies", {{"neighbour", {{"nfr", 0.05}, {"accuracy", 0.8}}}, {"new_on_miss", {{"nfr", 0.04}, {"accuracy", 0.79}}}}}};
  json cache = {{"temperature", 1.4}, {"percents", {{{"percent", 50}, {"max_distance", nullptr}, {"draws", {draw, draw}}}}}};
  auto path = dir.write("cache.json", cache.dump());
  const auto r = read_cache_experiment_result(path);
  ASSERT_EQ(r.percents.size(), 1u);
  EXPECT_FALSE(r.percents[0].max_distance.has_value());
  EXPECT_EQ(r.percents[0].draws.size(), 2u);
  EXPECT_EQ(r.policy(0, 1, "new_on_miss").nfr, 0.04);
  EXPECT_EQ(r.percents[0].draws[0].agreements.at("neighbour_agreement"), 0.75);
  EXPECT_EQ(r.percents[0].draws[0].agreements.size(), 2u);
  // A policy the file does not have (written before it existed) is named with the file.
  EXPECT_EQ(error_of<InputError>([&] { r.policy(0, 1, "tuned_distance"); }).rfind(path.string() + ": field 'percents[0].draws[1].policies.tuned_distance': missing", 0), 0u);
  cache["percents"][0]["draws"][1]["policies"]["neighbour"].erase("accuracy");
  path = dir.write("cache.json", cache.dump());
  EXPECT_EQ(error_of<InputError>([&] { read_cache_experiment_result(path); }),
            path.string() + ": field 'percents[0].draws[1].policies.neighbour.accuracy': missing");
}

TEST(RunResults, AGateDriftReadsBackAndRefusesValuesOutOfRange) {
  TempDir dir;
  const auto path = dir.path() / "gate.json";
  write_result(path, GateDrift{0.25, 0.03, 0.4, 0.05});
  const auto r = read_gate_drift(path);
  EXPECT_EQ(r.weight_change, 0.25);
  EXPECT_EQ(r.max_abs_change, 0.03);
  EXPECT_EQ(r.output_change, 0.4);
  EXPECT_EQ(r.output_change_spread, 0.05);
  write_result(path, GateDrift{0.25, 0.03, 1.5, 0.05});
  EXPECT_EQ(error_of<InputError>([&] { read_gate_drift(path); }), path.string() + ": field 'output_change': expected a number in [0, 1]");
  const auto missing = dir.write("missing.json", R"({"weight_change": 0.1, "max_abs_change": 0.1, "output_change": 0.1})");
  EXPECT_EQ(error_of<InputError>([&] { read_gate_drift(missing); }), missing.string() + ": field 'output_change_spread': missing");
}

}  // namespace
}  // namespace flipless::experiment
