#include <cstdio>
#include <fmt/format.h>
#include <string>

#include "commands.h"
#include "flipless/data/registry.h"
#include "flipless/data/split.h"

namespace flipless::cli {

namespace {

struct InspectArgs {
  std::string spec;
  data::ColumnSpec columns;
  std::string label_names;
  double validation_fraction = 0.1;
  std::uint64_t seed = 0;
};

int run_inspect(const InspectArgs& a) {
  data::ColumnSpec columns = a.columns;
  if (!a.label_names.empty()) columns.label_names = split_commas(a.label_names);
  const data::Dataset ds = data::load_dataset(a.spec, columns);
  std::string out = fmt::format("{}: {} examples, {}\n", ds.name, ds.size(), ds.has_text_pair() ? "text pairs" : "single texts");
  if (ds.has_labels()) {
    const auto counts = ds.label_counts();
    out += "labels:\n";
    for (std::size_t k = 0; k < counts.size(); ++k) {
      out += fmt::format("  {:>3}  {:<20} {:>8} ({:.1f}%)\n", k, ds.label_names[k], counts[k],
                         100.0 * static_cast<double>(counts[k]) / static_cast<double>(ds.size()));
    }
    const auto split = data::split_train_validation(ds, a.validation_fraction, a.seed);
    out += fmt::format("stratified split (fraction {}, seed {}): {} train, {} validation\n", a.validation_fraction, a.seed,
                       split.train.size(), split.validation.size());
  }
  out += fmt::format("first id: {}\n", ds.examples.front().id);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace

void add_data_command(CLI::App& app, Runner& run) {
  CLI::App* cmd = app.add_subcommand("data", "Inspect datasets");
  cmd->require_subcommand(1);
  auto list = cmd->add_subcommand("list", "List the bundled datasets");
  list->callback([&run] {
    run = [] {
      for (const auto& name : data::bundled_dataset_names()) std::printf("%s\n", name.c_str());
      std::printf("(bundled in %s)\n", data::bundled_data_dir().c_str());
      return 0;
    };
  });
  auto args = std::make_shared<InspectArgs>();
  auto inspect = cmd->add_subcommand("inspect", "Read a dataset, check it, and print its size, labels and validation split");
  inspect->add_option("dataset", args->spec, "sst2:dev, mrpc:train, qnli:PATH or a CSV/TSV/JSONL path")->required();
  add_column_options(inspect, args->columns);
  inspect->add_option("--label-names", args->label_names, "Comma-separated label set; other labels are errors");
  inspect->add_option("--validation-fraction", args->validation_fraction, "Share of each label carved out for validation")->capture_default_str();
  inspect->add_option("--seed", args->seed, "Split seed")->capture_default_str();
  inspect->callback([&run, args] { run = [args] { return run_inspect(*args); }; });
}

void add_column_options(CLI::App* cmd, data::ColumnSpec& columns) {
  cmd->add_option("--text-column", columns.text, "Text column of a generic CSV/TSV/JSONL dataset")
      ->capture_default_str();
  cmd->add_option("--text-pair-column", columns.text_pair, "Second text column of a generic dataset (pair tasks)");
  cmd->add_option("--label-column", columns.label, "Label column of a generic dataset")->capture_default_str();
  auto* id = cmd->add_option("--id-column", columns.id,
                             "Id column of a generic dataset (default: 'id' when there is one, else content hashes)");
  cmd->add_flag("--hash-ids", columns.hash_ids,
                "Ids of a generic dataset are content hashes of the texts, even with an 'id' column")
      ->excludes(id);
}

}  // namespace flipless::cli
