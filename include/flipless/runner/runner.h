#pragma once
// Runs an experiment (config.h) into a run folder, unit by unit, skipping finished units:
//
//   RUN/experiment.yaml                     the config it ran (a different config is refused)
//   RUN/TASK/old/                           the old model: result.json, predictions/{train,validation,dev}.jsonl
//                                           (train: cross-fitted out-of-fold logits when cross_fit >= 2)
//   RUN/TASK/METHOD/seed-S/result.json      chosen setting, every candidate's validation accuracy and NFR,
//                                           dev accuracy and NFR, seconds
//   RUN/TASK/METHOD/seed-S/predictions/     validation.jsonl, dev.jsonl (gate values for Gated Fusion;
//                                           dev.new_model_alone.jsonl: the paper's table 4)
//   RUN/TASK/METHOD/seed-S/model/           the chosen model (flipless predict reads it)
//   RUN/TASK/members/seed-M/                extra new models for ensembles and ELODI's reference
//
// A unit's result.json is written last and atomically, so a crash or Ctrl-C loses at most the
// unit in progress. Hyper-parameters are chosen on the validation split carved from train;
// dev is only ever predicted.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "flipless/experiment/config.h"

namespace flipless::runner {

struct RunOptions {
  std::filesystem::path out;            // the run folder
  std::filesystem::path feature_cache;  // frozen features; empty: ~/.cache/flipless/features
  int threads = 0;                      // 0: the config's, else all cores
  std::string device;                   // empty: the config's (cpu, cuda, cuda:N, auto)
  std::string precision;                // empty: the config's (fp32, bf16, fp16)
  // Methods whose units this run may start (empty: every method). The others are left for a
  // later run: cheap or essential methods first on every task, the costly ones after. Each
  // name must be a method of the config (ConfigError otherwise).
  std::vector<std::string> only;
  // Seeds whose units this run may start (empty: every seed), so that one experiment's seeds
  // can train side by side in copies of the run folder, or on several machines. A seed outside
  // the config is refused (ConfigError). With search: first_seed, a later seed of a method with
  // a grid waits (is left) until the first seed's unit of that method is done.
  std::vector<std::uint64_t> seeds;
};

struct UnitInfo {
  std::string task;
  std::string method;  // folder name: vanilla, gated_fusion, new_ensemble-5, ...
  std::uint64_t seed = 0;
  std::size_t index = 0;  // 1-based
  std::size_t total = 0;
};

struct RunObserver {
  std::function<void(const std::string&)> message;             // a line of news
  std::function<void(const UnitInfo&, bool skipped)> on_unit;  // a unit starts (or is already done)
  // Work inside a unit: what (a training, a grid setting), done of total, and a detail string.
  std::function<void(const std::string& what, std::int64_t done, std::int64_t total, const std::string& detail)> on_progress;
  std::function<void(const UnitInfo&, double seconds, const std::string& summary)> on_unit_done;
};

struct RunSummary {
  std::size_t units = 0, ran = 0, skipped = 0;
  std::size_t left = 0;  // units outside RunOptions::only or ::seeds (or waiting for the first seed's search), not started
  double seconds = 0;
};

// Checks what can be checked before any work: models present, datasets readable, methods
// applicable. Throws ConfigError / InputError naming the config line.
void preflight(const experiment::ExperimentConfig& config);

// The file in a run folder that a run holds locked while it lasts (an advisory flock): a second
// run of the same folder is refused with ConfigError instead of training the same units twice.
inline constexpr const char* kRunLockName = ".lock";

RunSummary run_experiment(const experiment::ExperimentConfig& config, const RunOptions& options, const RunObserver& observer = {});

// The units an experiment has, in run order (vanilla first in each task).
std::vector<UnitInfo> plan_units(const experiment::ExperimentConfig& config);

}  // namespace flipless::runner
