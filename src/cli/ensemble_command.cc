// flipless ensemble: the old-new probability or logit ensemble of two trained runs, alpha chosen
// on the validation split, applied to dev.
#include <cmath>
#include <cstdio>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <algorithm>
#include <unordered_map>

#include "commands.h"
#include "flipless/core/error.h"
#include "flipless/core/file.h"
#include "flipless/core/json_fields.h"
#include "flipless/data/predictions.h"
#include "flipless/ensemble/old_new.h"

namespace flipless::cli {

namespace {

struct EnsembleArgs {
  std::string old_run, new_run, kind = "logit", out;
  double tolerance = 0.001;
};

struct Split {
  std::vector<std::string> ids;
  std::vector<std::int32_t> labels;
  std::vector<float> old_logits, new_logits;  // (n, k), both in the new file's order
};

std::vector<std::string> label_names_of(const std::string& run) {
  const auto path = std::filesystem::path(run) / "flipless_model.json";
  nlohmann::json card;
  try {
    card = nlohmann::json::parse(core::InputFile::open(path).bytes());
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{}: not valid JSON: {}", path.string(), e.what()));
  }
  return core::JsonFields<InputError>(card, path).texts("label_names");
}

Split load_split(const EnsembleArgs& a, const std::string& split, const std::vector<std::string>& names) {
  const auto old_file = data::read_predictions_file(std::filesystem::path(a.old_run) / "predictions" / (split + ".jsonl"), {.keep_scores = true});
  const auto new_file = data::read_predictions_file(std::filesystem::path(a.new_run) / "predictions" / (split + ".jsonl"), {.keep_scores = true});
  const std::size_t k = names.size();
  if (old_file.num_scores != k || new_file.num_scores != k) {
    throw InputError(fmt::format("{} and {} must both give {} scores per row", old_file.source, new_file.source, k));
  }
  const auto old_logits = data::score_logits(old_file), new_logits = data::score_logits(new_file);
  std::unordered_map<std::string_view, std::size_t> old_row;
  for (std::size_t i = 0; i < old_file.size(); ++i) old_row.emplace(old_file.ids[i], i);
  if (old_file.size() != new_file.size()) {
    throw InputError(fmt::format("{} has {} rows, {} has {}", old_file.source, old_file.size(), new_file.source, new_file.size()));
  }
  if (new_file.labels.empty()) throw InputError(fmt::format("{}: rows need a 'label'", new_file.source));
  Split s;
  for (std::size_t j = 0; j < new_file.size(); ++j) {
    const auto it = old_row.find(new_file.ids[j]);
    if (it == old_row.end()) {
      throw InputError(fmt::format("{}:{}: field 'id': id '{}' is not in {}", new_file.source, new_file.lines[j], new_file.ids[j], old_file.source));
    }
    const std::int32_t label = data::label_index(new_file, j, names);
    if (label < 0) throw InputError(fmt::format("{}:{}: field 'label': missing on this row", new_file.source, new_file.lines[j]));
    s.ids.push_back(new_file.ids[j]);
    s.labels.push_back(label);
    s.old_logits.insert(s.old_logits.end(), old_logits.begin() + static_cast<std::ptrdiff_t>(it->second * k),
                        old_logits.begin() + static_cast<std::ptrdiff_t>((it->second + 1) * k));
    s.new_logits.insert(s.new_logits.end(), new_logits.begin() + static_cast<std::ptrdiff_t>(j * k),
                        new_logits.begin() + static_cast<std::ptrdiff_t>((j + 1) * k));
  }
  return s;
}

int run_ensemble(const EnsembleArgs& a) {
  if (a.kind != "logit" && a.kind != "prob") throw ConfigError(fmt::format("--kind '{}': expected logit or prob", a.kind));
  const auto kind = a.kind == "logit" ? ensemble::Kind::kLogits : ensemble::Kind::kProbabilities;
  const auto names = label_names_of(a.new_run);
  const Split validation = load_split(a, "validation", names);
  const Split dev = load_split(a, "dev", names);
  const auto choice = ensemble::choose_alpha(validation.labels, validation.old_logits, validation.new_logits, names.size(), kind, {0.5, 0.6, 0.7, 0.8, 0.9}, a.tolerance);
  std::printf("alpha on validation (new model alone: %.2f%% accuracy; tolerance %.2f points)\n", 100 * choice.new_model_accuracy, 100 * a.tolerance);
  nlohmann::json candidates = nlohmann::json::array();
  for (const auto& c : choice.candidates) {
    std::printf("  alpha %.1f  accuracy %.2f%%  NFR %.2f%%%s%s\n", c.alpha, 100 * c.accuracy, 100 * c.nfr, c.on_par ? "" : "  (below par)",
                c.alpha == choice.alpha ? "  <- chosen" : "");
    candidates.push_back({{"alpha", c.alpha}, {"accuracy", c.accuracy}, {"nfr", c.nfr}, {"on_par", c.on_par}});
  }
  if (choice.fallback) std::printf("  no alpha kept accuracy on par: the most accurate was taken\n");
  auto combined = ensemble::combine(dev.old_logits, dev.new_logits, names.size(), kind, choice.alpha);
  if (kind == ensemble::Kind::kProbabilities) {
    for (float& v : combined) v = std::log(std::max(v, 1e-12f));  // stored as logits
  }
  data::PredictionRows rows;
  rows.ids = dev.ids;
  rows.labels = dev.labels;
  rows.label_names = names;
  rows.num_labels = names.size();
  rows.logits = std::move(combined);
  const std::filesystem::path out(a.out);
  std::filesystem::create_directories(out / "predictions");
  data::write_predictions(out / "predictions" / "dev.jsonl", rows);
  const nlohmann::json summary = {{"method", a.kind == "logit" ? "old_new_logit_ensemble" : "old_new_prob_ensemble"}, {"alpha", choice.alpha},
                                  {"fallback", choice.fallback}, {"validation_new_model_accuracy", choice.new_model_accuracy},
                                  {"candidates", candidates}, {"old_run", a.old_run}, {"new_run", a.new_run}};
  core::write_file_atomic(out / "ensemble.json", summary.dump(2) + "\n");
  std::printf("dev predictions in %s\n", (out / "predictions" / "dev.jsonl").c_str());
  return 0;
}

struct VoteArgs {
  std::vector<std::string> runs;
  std::string out;
};

int run_vote(const VoteArgs& a) {
  const auto names = label_names_of(a.runs.front());
  const std::size_t k = names.size();
  std::vector<std::vector<float>> logits;
  data::PredictionFile first;
  for (std::size_t m = 0; m < a.runs.size(); ++m) {
    auto file = data::read_predictions_file(std::filesystem::path(a.runs[m]) / "predictions" / "dev.jsonl", {.keep_scores = true});
    if (file.num_scores != k) throw InputError(fmt::format("{}: expected {} scores per row", file.source, k));
    const auto scores = data::score_logits(file);
    if (m == 0) {
      logits.push_back(scores);
      first = std::move(file);
      continue;
    }
    std::unordered_map<std::string_view, std::size_t> row;
    for (std::size_t i = 0; i < file.size(); ++i) row.emplace(file.ids[i], i);
    if (file.size() != first.size()) throw InputError(fmt::format("{} has {} rows, {} has {}", file.source, file.size(), first.source, first.size()));
    std::vector<float> aligned;
    aligned.reserve(scores.size());
    for (std::size_t i = 0; i < first.size(); ++i) {
      const auto it = row.find(first.ids[i]);
      if (it == row.end()) throw InputError(fmt::format("{}: no row for id '{}' of {}", file.source, first.ids[i], first.source));
      aligned.insert(aligned.end(), scores.begin() + static_cast<std::ptrdiff_t>(it->second * k), scores.begin() + static_cast<std::ptrdiff_t>((it->second + 1) * k));
    }
    logits.push_back(std::move(aligned));
  }
  const auto v = ensemble::majority_vote(logits, k);
  data::PredictionRows rows;
  rows.ids = first.ids;
  rows.label_names = names;
  rows.num_labels = k;
  for (float p : v.mean_probs) rows.logits.push_back(std::log(std::max(p, 1e-12f)));
  rows.preds = v.labels;
  if (!first.labels.empty()) {
    for (std::size_t i = 0; i < first.size(); ++i) rows.labels.push_back(data::label_index(first, i, names));
  }
  const std::filesystem::path out(a.out);
  std::filesystem::create_directories(out / "predictions");
  data::write_predictions(out / "predictions" / "dev.jsonl", rows);
  std::printf("majority vote of %zu models; dev predictions in %s\n", a.runs.size(), (out / "predictions" / "dev.jsonl").c_str());
  return 0;
}

}  // namespace

void add_ensemble_command(CLI::App& app, Runner& run) {
  auto a = std::make_shared<EnsembleArgs>();
  CLI::App* cmd = app.add_subcommand("ensemble", "Old-new probability or logit ensemble of two trained runs (alpha chosen on validation)");
  cmd->add_option("old_run", a->old_run, "The old model's flipless train folder")->required();
  cmd->add_option("new_run", a->new_run, "The new model's flipless train folder")->required();
  cmd->add_option("--kind", a->kind, "logit or prob")->capture_default_str();
  cmd->add_option("--tolerance", a->tolerance, "Accuracy below the new model's still on par (fraction)")->capture_default_str();
  cmd->add_option("--out", a->out, "Output folder: predictions/dev.jsonl and ensemble.json")->required();
  cmd->callback([&run, a] { run = [a] { return run_ensemble(*a); }; });

  auto v = std::make_shared<VoteArgs>();
  CLI::App* vote = app.add_subcommand("vote", "New-model ensemble: majority vote of several runs (ties: mean probability)");
  vote->add_option("runs", v->runs, "flipless train folders (e.g. the same model with different seeds)")->required()->expected(2, 1000);
  vote->add_option("--out", v->out, "Output folder: predictions/dev.jsonl")->required();
  vote->callback([&run, v] { run = [v] { return run_vote(*v); }; });
}

}  // namespace flipless::cli
