#pragma once
// The report of a run folder (runner/runner.h), from saved results only: the paper's tables
// (NFR and accuracy mean ± std per method and task; relative NF reduction against vanilla and
// against the strongest baseline; fix and new-fault rates; ensemble sizes; dropping the old
// model), uncertainty (a paired bootstrap over examples and seeds of each method's NFR minus
// vanilla's; the NFR between vanilla seeds as the noise floor), and charts (accuracy against NFR,
// the alpha and T sweeps, gate values by flip category, per-class flips). Torch-free.
//
// The numbers are computed once, into a report::ExperimentReport; report/experiment_report.h
// renders that as Markdown, HTML, JSON and terminal text.
#include <cstdint>
#include <filesystem>
#include <string>

#include "flipless/report/experiment_report.h"

namespace flipless::experiment {

struct ReportOptions {
  int bootstrap = 2000;        // resamples of the paired bootstrap
  std::uint64_t seed = 0;      // its seed
  std::filesystem::path out;   // folder for report.{html,md,json}; empty: RUN/report
};

struct ReportFiles {
  std::filesystem::path html, markdown, json;
  std::string table;  // the main table as plain text, for a terminal
};

// Throws InputError naming the file when a result or prediction file is unreadable. Units not
// finished yet are left out and counted in the report. (options.out is not used.)
report::ExperimentReport build_experiment_report(const std::filesystem::path& run_dir, const ReportOptions& options = {});

// Builds the report and writes report.html, report.md and report.json (each atomically).
ReportFiles write_experiment_report(const std::filesystem::path& run_dir, const ReportOptions& options = {});

}  // namespace flipless::experiment
