#pragma once
// Each subcommand registers its options on the app and sets `run` to its body, which returns
// the exit code (0 ok, 1 a --fail-if check failed) or throws flipless::Error (exit 2).
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "flipless/data/readers.h"

namespace flipless::cli {

using Runner = std::function<int()>;

// "a,b,,c" -> {"a", "b", "", "c"}.
std::vector<std::string> split_commas(const std::string& s);

// The column options of a generic CSV/TSV/JSONL dataset (--text-column, --text-pair-column,
// --label-column, --id-column, --hash-ids), the same on every command that reads one.
void add_column_options(CLI::App* cmd, data::ColumnSpec& columns);

void add_compare_command(CLI::App& app, Runner& run);
void add_data_command(CLI::App& app, Runner& run);
void add_ensemble_command(CLI::App& app, Runner& run);
// experiment check/report (and run, demo with libtorch).
void add_experiment_commands(CLI::App& app, Runner& run);
// train, predict and models (only in builds with libtorch).
void add_train_commands(CLI::App& app, Runner& run);
// cache add/info (add --model needs libtorch).
void add_cache_commands(CLI::App& app, Runner& run);
// serve (only in builds with libtorch).
void add_serve_command(CLI::App& app, Runner& run);

}  // namespace flipless::cli
