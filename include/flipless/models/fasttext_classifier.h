#pragma once
// A fastText supervised classifier (libfasttext): the classic production text classifier, and
// the typical old model a team upgrades from. Its probabilities become logits (log p); its
// sentence vector is the embedding.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include "flipless/data/example.h"
#include "flipless/models/classifier.h"

namespace fasttext {
class FastText;
}

namespace flipless::models {

struct FastTextConfig {
  int epochs = 10;
  double learning_rate = 0.5;
  int dim = 50;
  int word_ngrams = 2;
  int min_count = 1;
  std::uint64_t seed = 0;  // one thread, so a seed gives the same model every time
  bool lowercase = true;
  void validate() const;
};

class FastTextClassifier : public Classifier {
 public:
  // Trains on labelled `train` (written to a temporary fastText input file).
  static std::unique_ptr<FastTextClassifier> train(const data::Dataset& train, const FastTextConfig& config);
  // Loads a model saved with save(); `num_labels` must match the training label set.
  static std::unique_ptr<FastTextClassifier> load(const std::filesystem::path& path, std::size_t num_labels, bool lowercase);
  ~FastTextClassifier() override;

  void save(const std::filesystem::path& path) const;
  std::size_t num_labels() const override { return num_labels_; }
  ClassifierOutput predict(std::span<const data::TextExample> examples) const override;
  std::string describe() const override;

 private:
  FastTextClassifier(std::unique_ptr<fasttext::FastText> model, std::size_t num_labels, bool lowercase);
  std::string line_of(const data::TextExample& ex) const;

  std::unique_ptr<fasttext::FastText> model_;
  std::size_t num_labels_;
  bool lowercase_;
  mutable std::mutex mutex_;  // getSentenceVector is not const in libfasttext
};

}  // namespace flipless::models
