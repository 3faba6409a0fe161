#pragma once
// The torch-free classifier interface every model kind implements: fastText, logits read from
// a prediction file, and (in flipless::train) frozen-encoder heads and fine-tuned encoders.
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "flipless/data/example.h"

namespace flipless::models {

// Outputs for a batch, row-major: logits (rows, num_labels), embeddings (rows, dim).
struct ClassifierOutput {
  std::size_t rows = 0;
  std::size_t num_labels = 0;
  std::size_t dim = 0;
  std::vector<float> logits;
  std::vector<float> embeddings;
};

class Classifier {
 public:
  virtual ~Classifier() = default;
  virtual std::size_t num_labels() const = 0;
  // Logits and pooled embeddings for `examples`, in order. Thread-safe.
  virtual ClassifierOutput predict(std::span<const data::TextExample> examples) const = 0;
  // One line saying what this is ("fastText, 10 dims, 2 labels").
  virtual std::string describe() const = 0;
};

}  // namespace flipless::models
