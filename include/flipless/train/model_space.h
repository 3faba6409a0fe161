#pragma once
// One model space (issue 15): a torch model kind (a head on frozen encoder features, or a
// fine-tuned encoder) over one task's splits: the inputs of each split, fresh models seeded
// alike on every device, predictions in the space's precision, and the saved folder that
// flipless predict reads. The experiment runner and flipless train both build their models
// through it.
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "flipless/data/example.h"
#include "flipless/nn/classifier.h"
#include "flipless/text/wordpiece.h"
#include "flipless/train/device.h"
#include "flipless/train/inputs.h"
#include "flipless/train/strategy.h"
#include "flipless/train/trainer.h"

namespace flipless::train {

struct ModelSpec {
  bool frozen = true;                // a head on frozen features; false: the encoder fine-tuned
  std::string name;                  // as the user gave it (a registered name or a folder), for messages
  std::filesystem::path model_dir;   // the encoder's checkpoint folder (models::resolve_model)
  std::int64_t layers = 0;           // 0: all
  std::string pooling = "mean";      // frozen: mean, cls or pooler
  nn::HeadConfig head;
  std::size_t max_length = 0;        // 0: 128 tokens, or fewer when the encoder's positions cover fewer
  // Frozen: the precision the encoder computes the features in (part of their cache key).
  Precision feature_precision = Precision::kFloat32;
};

// A split the space serves inputs for (train, validation, dev, ...).
struct SpaceSplit {
  std::string name;
  const data::Dataset* data = nullptr;
};

// Frozen features of a split: done of total rows; `status` is "cached" or "computed" once done.
using FeatureProgress = std::function<void(const std::string& split, std::int64_t done, std::int64_t total, const std::string& status)>;

class ModelSpace {
 public:
  // Checks the spec against the checkpoint (layers) and computes or loads the frozen features of
  // every split (from `feature_cache`). Throws ConfigError / ModelError.
  ModelSpace(const ModelSpec& spec, std::vector<SpaceSplit> splits, std::int64_t num_labels, const std::filesystem::path& feature_cache,
             torch::Device device, Precision precision, const FeatureProgress& progress = {});
  ~ModelSpace();
  ModelSpace(const ModelSpace&) = delete;
  ModelSpace& operator=(const ModelSpace&) = delete;

  std::int64_t dim() const { return dim_; }  // the pooled embedding size
  std::size_t max_length() const { return max_length_; }
  const torch::Device& device() const { return device_; }
  Precision precision() const { return precision_; }
  // Whether a run's state after an epoch can be continued bit for bit (shared warm-up): the CPU
  // generator drives dropout only on the CPU; fp16 loss scaling keeps state of its own.
  bool resumable() const { return device_.is_cpu() && precision_ != Precision::kFloat16; }
  std::int64_t eval_batch() const { return spec_.frozen ? 512 : 64; }

  // Rows `rows` of a split (all when null).
  std::unique_ptr<InputSource> source(const std::string& split, const std::vector<std::int64_t>* rows = nullptr) const;

  // A fresh model for `seed` (initialised on the CPU, so every device starts from the same
  // weights), on the space's device.
  std::shared_ptr<nn::ClassifierModule> make(std::uint64_t seed) const;

  // The model's outputs over a source, in the space's precision.
  Predictions predict(nn::ClassifierModule& model, const InputSource& source) const;
  Predictions predict(nn::ClassifierModule& model, CompatibilityStrategy& strategy, const InputSource& source,
                      const torch::Tensor& old_logits) const;

  // `training` with the space's device, precision and evaluation batch, and `seed`.
  TrainConfig train_config(TrainConfig training, std::uint64_t seed) const;

  // The card fields that describe the space's model: kind, base_model, layers, pooling,
  // max_length, pooler, head, precision (label names and the rest are the caller's).
  nlohmann::json card() const;

  // Saves a model folder flipless predict reads: the module's weights and `card` (which must
  // name its kind), and for fine-tuned models the encoder's config and tokenizer files.
  void save(const std::filesystem::path& dir, nn::ClassifierModule& model, const nlohmann::json& card) const;

 private:
  const data::Dataset& split(const std::string& name) const;

  ModelSpec spec_;
  std::vector<SpaceSplit> splits_;
  std::int64_t num_labels_ = 0;
  torch::Device device_ = torch::kCPU;
  Precision precision_ = Precision::kFloat32;
  std::int64_t dim_ = 0;
  std::int64_t checkpoint_layers_ = 0;
  std::size_t max_length_ = 128;
  std::map<std::string, torch::Tensor> features_;
  std::optional<text::WordPieceTokenizer> tokenizer_;
};

}  // namespace flipless::train
