#pragma once
// Frozen-encoder features: a BERT-family encoder (optionally truncated to its first k layers,
// a smaller model of the same family) run once over a dataset, pooled (mean over real tokens,
// [CLS], or BERT's pooler), and cached on disk keyed by (model, layers, pooling, max length,
// dataset), so training a head takes seconds and later runs reuse the features.
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "flipless/data/example.h"
#include "flipless/nn/bert.h"
#include "flipless/text/wordpiece.h"

namespace flipless::train {

struct FeatureSpec {
  std::filesystem::path model_dir;  // a Hugging Face checkpoint folder
  std::int64_t layers = 0;          // 0: all layers
  std::string pooling = "mean";     // mean, cls or pooler
  std::size_t max_length = 128;
  void validate() const;            // throws ConfigError
};

using Progress = std::function<void(std::int64_t done, std::int64_t total)>;

class FeatureExtractor {
 public:
  // The encoder runs on `device` (float32 there: cached features do not depend on where they
  // were computed beyond float rounding).
  explicit FeatureExtractor(FeatureSpec spec, torch::Device device = torch::kCPU);
  // Features (n, hidden) float32 on the CPU, in dataset order; inference mode, length-sorted
  // batches.
  torch::Tensor extract(const data::Dataset& dataset, std::int64_t batch_size = 64, const Progress& progress = {}) const;
  // The cache key: model (path, weights size and time), layers, pooling, max length, format
  // version, and a hash of the dataset's ids and texts.
  std::string cache_key(const data::Dataset& dataset) const;
  std::int64_t dim() const { return encoder_->config().hidden_size; }
  const FeatureSpec& spec() const { return spec_; }
  const text::WordPieceTokenizer& tokenizer() const { return tokenizer_; }
  torch::Device device() const { return device_; }

 private:
  FeatureSpec spec_;
  torch::Device device_;
  text::WordPieceTokenizer tokenizer_;
  mutable nn::BertEncoder encoder_{nullptr};
};

// The features of `dataset` from `cache_dir/<key>.safetensors`, computed and stored (atomically)
// when absent. `hit` (optional) tells whether the cache answered.
torch::Tensor cached_features(const FeatureExtractor& extractor, const data::Dataset& dataset,
                              const std::filesystem::path& cache_dir, const Progress& progress = {}, bool* hit = nullptr);

}  // namespace flipless::train
