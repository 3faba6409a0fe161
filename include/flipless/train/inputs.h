#pragma once
// Where a training or prediction loop gets its batches: precomputed features, or tokenised
// text padded per batch. Rows are positions in the dataset the source was built from.
#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "flipless/data/example.h"
#include "flipless/nn/classifier.h"
#include "flipless/text/wordpiece.h"

namespace flipless::train {

class InputSource {
 public:
  virtual ~InputSource() = default;
  virtual std::int64_t size() const = 0;
  // Inputs for `rows` (positions 0..size-1), in that order.
  virtual nn::ModelInputs batch(const std::vector<std::int64_t>& rows) const = 0;
  // Labels (size,) int64; -1 where unlabelled.
  virtual const torch::Tensor& labels() const = 0;
  // A cost for ordering prediction batches (token count); equal costs by default.
  virtual std::int64_t cost(std::int64_t /*row*/) const { return 0; }
};

// Rows of a (n, dim) float tensor.
class FeatureSource : public InputSource {
 public:
  FeatureSource(torch::Tensor features, torch::Tensor labels);
  std::int64_t size() const override { return features_.size(0); }
  nn::ModelInputs batch(const std::vector<std::int64_t>& rows) const override;
  const torch::Tensor& labels() const override { return labels_; }

 private:
  torch::Tensor features_, labels_;
};

// A dataset tokenised once; each batch is padded to its longest row.
class TokenSource : public InputSource {
 public:
  TokenSource(const text::WordPieceTokenizer& tokenizer, const data::Dataset& dataset, std::size_t max_length);
  std::int64_t size() const override { return static_cast<std::int64_t>(encodings_.size()); }
  nn::ModelInputs batch(const std::vector<std::int64_t>& rows) const override;
  const torch::Tensor& labels() const override { return labels_; }
  std::int64_t cost(std::int64_t row) const override { return static_cast<std::int64_t>(encodings_[static_cast<std::size_t>(row)].size()); }

 private:
  std::vector<text::Encoding> encodings_;
  torch::Tensor labels_;
  std::int32_t pad_id_;
};

// Labels of a dataset as an (n,) int64 tensor.
torch::Tensor label_tensor(const data::Dataset& dataset);

}  // namespace flipless::train
