#include "flipless/models/logits_file_classifier.h"

#include <cmath>
#include <fmt/format.h>

#include "flipless/core/error.h"
#include "flipless/data/predictions.h"

namespace flipless::models {

LogitsFileClassifier::LogitsFileClassifier(const std::filesystem::path& path) : source_(path.string()) {
  const auto file = data::read_predictions_file(path, {.keep_scores = true});
  if (file.score_kind == data::ScoreKind::kNone) {
    throw InputError(fmt::format("{}: has only predicted labels; an old model's logits need 'logits' or 'probs' per row", source_));
  }
  num_labels_ = file.num_scores;
  logits_ = data::score_logits(file);
  row_of_.reserve(file.size());
  for (std::size_t i = 0; i < file.size(); ++i) {
    if (!row_of_.emplace(file.ids[i], i).second) {
      throw InputError(fmt::format("{}:{}: field 'id': duplicate id '{}'", source_, file.lines[i], file.ids[i]));
    }
  }
}

ClassifierOutput LogitsFileClassifier::predict(std::span<const data::TextExample> examples) const {
  ClassifierOutput out;
  out.rows = examples.size();
  out.num_labels = num_labels_;
  out.logits.reserve(out.rows * num_labels_);
  for (const auto& ex : examples) {
    const auto it = row_of_.find(ex.id);
    if (it == row_of_.end()) throw InputError(fmt::format("{}: no logits for id '{}'", source_, ex.id));
    const float* row = logits_.data() + it->second * num_labels_;
    out.logits.insert(out.logits.end(), row, row + num_labels_);
  }
  return out;
}

std::string LogitsFileClassifier::describe() const {
  return fmt::format("stored logits from {} ({} examples, {} labels)", source_, row_of_.size(), num_labels_);
}

}  // namespace flipless::models
