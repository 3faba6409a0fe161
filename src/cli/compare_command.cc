#include <cstdio>
#include <fmt/format.h>
#include <optional>
#include <string>
#include <vector>

#include "commands.h"
#include "flipless/compare/compare.h"
#include "flipless/core/file.h"
#include "flipless/data/predictions.h"
#include "flipless/data/registry.h"
#include "flipless/report/compare_report.h"

namespace flipless::cli {

namespace {

struct CompareArgs {
  std::string old_file;
  std::string new_file;
  std::string data;
  data::ColumnSpec columns;
  std::string label_names;
  std::string format = "text";
  std::string out;
  std::vector<std::string> fail_if;
  int top_k = 10;
  int resamples = 1000;
  std::uint64_t seed = 0;
  bool unknown_preds_wrong = false;
};

int run_compare(const CompareArgs& a) {
  // Parse the gates first: a typo should fail before minutes of reading.
  std::vector<compare::Gate> gates;
  for (const auto& g : a.fail_if) {
    for (const auto& part : split_commas(g)) gates.push_back(compare::parse_gate(part));
  }
  const auto format = report::parse_compare_format(a.format);
  compare::CompareOptions options;
  options.top_k = static_cast<std::size_t>(a.top_k);
  options.bootstrap.resamples = a.resamples;
  options.bootstrap.seed = a.seed;
  options.unknown_preds_wrong = a.unknown_preds_wrong;
  if (!a.label_names.empty()) options.label_names = split_commas(a.label_names);

  std::optional<data::Dataset> dataset;
  if (!a.data.empty()) dataset = data::load_dataset(a.data, a.columns);
  const auto old_file = data::read_predictions_file(a.old_file);
  const auto new_file = data::read_predictions_file(a.new_file);
  const compare::Comparison c = compare::compare_predictions(old_file, new_file, dataset ? &*dataset : nullptr, options);

  const std::string rendered = report::render(c, format);
  if (a.out.empty()) {
    std::fwrite(rendered.data(), 1, rendered.size(), stdout);
  } else {
    core::write_file_atomic(a.out, rendered);
    std::fprintf(stderr, "wrote %s\n", a.out.c_str());
  }
  int code = 0;
  for (const auto& gate : gates) {
    if (compare::gate_crossed(gate, c.summary)) {
      std::fprintf(stderr, "flipless: check failed: %s (%s = %.6g)\n", gate.text.c_str(),
                   std::string(metrics::metric_name(gate.metric)).c_str(), *c.summary.value(gate.metric));
      code = 1;
    }
  }
  return code;
}

}  // namespace

void add_compare_command(CLI::App& app, Runner& run) {
  auto args = std::make_shared<CompareArgs>();
  CLI::App* cmd = app.add_subcommand("compare", "Measure regressions between two models from their prediction files");
  cmd->footer(
      "Prediction files are JSONL or CSV with 'id', an optional true 'label', and 'pred', 'probs' or 'logits'.\n"
      "Rows are joined by id. Examples:\n"
      "  flipless compare old.jsonl new.jsonl --data sst2:dev\n"
      "  flipless compare old.csv new.csv --format html --out report.html --fail-if nfr>0.02");
  cmd->add_option("old", args->old_file, "Old model's prediction file")->required();
  cmd->add_option("new", args->new_file, "New model's prediction file")->required();
  cmd->add_option("--data", args->data,
                  "Dataset giving true labels and texts: sst2:dev, mrpc:train (bundled), qnli:PATH (a GLUE file) or a "
                  "CSV/TSV/JSONL path");
  add_column_options(cmd, args->columns);
  cmd->add_option("--label-names", args->label_names, "Comma-separated label set, in score-column order, when no --data gives it");
  cmd->add_flag(
      "--unknown-preds-wrong", args->unknown_preds_wrong,
      "Count a predicted label outside the task's label set as wrong (default: an error naming it and its line)");
  cmd->add_option("--format", args->format, "text, json, markdown or html")->capture_default_str();
  cmd->add_option("--out", args->out, "Write the report here (atomically) instead of stdout");
  cmd->add_option("--fail-if", args->fail_if, "Exit 1 when a check holds, e.g. nfr>0.02 or btc<0.97 (repeatable)");
  cmd->add_option("--top", args->top_k, "Negative flips to list")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--bootstrap", args->resamples, "Bootstrap resamples for the 95% intervals")->capture_default_str()->check(CLI::Range(2, 1000000));
  cmd->add_option("--seed", args->seed, "Bootstrap seed")->capture_default_str();
  cmd->callback([&run, args] { run = [args] { return run_compare(*args); }; });
}

}  // namespace flipless::cli
