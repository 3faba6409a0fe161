#pragma once
// Frozen-encoder features: a BERT-family encoder (optionally truncated to its first k layers,
// a smaller model of the same family) run once over a dataset, pooled (mean over real tokens,
// [CLS], or BERT's pooler), and cached on disk keyed by (model, layers, pooling, max length,
// precision, dataset), so training a head takes seconds and later runs reuse the features.
// bf16 runs the encoder under autocast (matrix products in bf16 through oneDNN, layer norms,
// softmax and pooling in float32): on a CPU with AVX512-BF16 or AMX several times faster than
// float32, with features that differ in about the third significant digit (BENCHMARKS.md).
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "flipless/data/example.h"
#include "flipless/nn/bert.h"
#include "flipless/text/wordpiece.h"
#include "flipless/train/device.h"

namespace flipless::train {

struct FeatureSpec {
  std::filesystem::path model_dir;  // a Hugging Face checkpoint folder
  std::int64_t layers = 0;          // 0: all layers
  std::string pooling = "mean";     // mean, cls or pooler
  std::size_t max_length = 128;
  Precision precision = Precision::kFloat32;  // of the encoder's matrix products (fp16: GPU only)
  void validate() const;            // throws ConfigError
};

using Progress = std::function<void(std::int64_t done, std::int64_t total)>;

class FeatureExtractor {
 public:
  // The encoder runs on `device` in the spec's precision (cached features do not depend on
  // where they were computed beyond rounding; on the precision they do, so it is in the key).
  explicit FeatureExtractor(FeatureSpec spec, torch::Device device = torch::kCPU);
  // Features (n, hidden) float32 on the CPU, in dataset order; inference mode, length-sorted
  // batches.
  torch::Tensor extract(const data::Dataset& dataset, std::int64_t batch_size = 64, const Progress& progress = {}) const;
  // The cache key: model (path, weights size and time), layers, pooling, max length, format
  // version, precision (bf16 only: float32 keys are those of earlier versions), and a hash of
  // the dataset's ids and texts.
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
