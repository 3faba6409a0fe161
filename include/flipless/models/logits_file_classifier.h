#pragma once
// An old model that cannot be loaded, known only by its stored outputs: logits (or
// probabilities, turned into log-probabilities) read from a prediction file and looked up by
// example id. This is how later methods get the old model's logits without running it.
#include <filesystem>
#include <string>
#include <unordered_map>

#include "flipless/models/classifier.h"

namespace flipless::models {

class LogitsFileClassifier : public Classifier {
 public:
  // Reads `path` (JSONL or CSV with per-class `logits` or `probs`, and optionally `embedding`).
  // Throws InputError when the file gives only predicted labels.
  explicit LogitsFileClassifier(const std::filesystem::path& path);

  std::size_t num_labels() const override { return num_labels_; }
  // Throws InputError naming the first id the file does not hold.
  ClassifierOutput predict(std::span<const data::TextExample> examples) const override;
  std::string describe() const override;
  std::size_t size() const { return row_of_.size(); }

 private:
  std::string source_;
  std::size_t num_labels_ = 0;
  std::vector<float> logits_;  // (rows, num_labels)
  std::unordered_map<std::string, std::size_t> row_of_;
};

}  // namespace flipless::models
