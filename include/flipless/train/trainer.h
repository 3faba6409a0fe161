#pragma once
// One training loop for every model and method: AdamW with decoupled weight decay (none on
// biases and LayerNorm), linear warm-up then linear decay, gradient clipping, seeded shuffling,
// validation each epoch. The loss is a function of the step's outputs, labels and rows, so a
// compatibility method can look up precomputed old-model logits by row; the loop never sees
// the old model. Progress goes to an observer, never to stdout.
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "flipless/models/classifier.h"
#include "flipless/nn/classifier.h"
#include "flipless/train/device.h"
#include "flipless/train/distributed.h"
#include "flipless/train/inputs.h"
#include "flipless/train/strategy.h"

namespace flipless::train {

struct TrainConfig {
  int epochs = 3;
  std::int64_t batch_size = 32;
  double learning_rate = 5e-5;
  double weight_decay = 0.01;
  double warmup_ratio = 0.1;      // share of all steps spent warming up
  double max_grad_norm = 1.0;     // 0: no clipping
  std::uint64_t seed = 0;
  std::int64_t eval_batch_size = 128;
  // Where the model trains (moved there by the loop; batches are copied there, outputs come
  // back to the CPU) and in which precision (autocast; fp16 with dynamic loss scaling, GPU only).
  torch::Device device = torch::kCPU;
  Precision precision = Precision::kFloat32;
  // Data parallel: with a group of N processes each step takes N x batch_size examples, each
  // process its own batch_size share, and gradients are averaged. Null: one process.
  std::shared_ptr<ProcessGroup> group;
  void validate() const;  // throws ConfigError
};

struct StepInputs {
  const nn::ModelOutput& output;
  const torch::Tensor& labels;  // (batch,) int64
  const torch::Tensor& rows;    // (batch,) int64 positions in the training source
  int epoch;                    // 0-based
  int epochs;
};

// The loss of one step; the default is cross-entropy.
using LossFn = std::function<torch::Tensor(const StepInputs&)>;
torch::Tensor cross_entropy_loss(const StepInputs& step);

struct EpochStats {
  int epoch = 0;  // 1-based
  double train_loss = 0;
  double examples_per_second = 0;
  double seconds = 0;
  std::int64_t skipped_steps = 0;  // fp16: steps skipped for inf/NaN gradients (loss scale lowered)
  std::optional<double> validation_accuracy;
};

struct TrainObserver {
  // After every step: epoch (1-based), step within the epoch, steps per epoch, running mean loss,
  // examples/s.
  std::function<void(int, std::int64_t, std::int64_t, double, double)> on_step;
  std::function<void(const EpochStats&)> on_epoch;
};

struct TrainResult {
  std::vector<EpochStats> epochs;
};

// Trains `model` in place, on config.device (the model stays there). Deterministic on CPU for
// a fixed config.seed.
TrainResult train(nn::ClassifierModule& model, const InputSource& train_data, const InputSource* validation,
                  const TrainConfig& config, const LossFn& loss = cross_entropy_loss, const TrainObserver& observer = {});

struct Predictions {
  torch::Tensor logits;      // (n, num_labels)
  torch::Tensor embeddings;  // (n, dim)
  torch::Tensor gates;       // (n,) Gated Fusion's gate values, else undefined
};

// Trains the new model with a compatibility strategy. `old_logits` (n, k) are the old model's
// stored logits for the training rows, `validation_old_logits` for the validation rows; the old
// model itself is never run. Validation accuracy is that of the strategy's predictions.
TrainResult train_with_strategy(nn::ClassifierModule& model, CompatibilityStrategy& strategy, const InputSource& train_data,
                                const torch::Tensor& old_logits, const InputSource* validation,
                                const torch::Tensor& validation_old_logits, const TrainConfig& config,
                                const TrainObserver& observer = {});

// The strategy's predictions (fused logits and gate values for Gated Fusion) in source order,
// on the model's device; outputs are float32 on the CPU.
Predictions predict_with_strategy(nn::ClassifierModule& model, CompatibilityStrategy& strategy, const InputSource& data,
                                  const torch::Tensor& old_logits, std::int64_t batch_size,
                                  Precision precision = Precision::kFloat32);

// Runs the model in evaluation mode over the whole source, in cost-sorted batches (little
// padding), on the model's device, and returns float32 outputs on the CPU in source order.
// `progress(done, total)` is optional.
Predictions predict(nn::ClassifierModule& model, const InputSource& data, std::int64_t batch_size,
                    const std::function<void(std::int64_t, std::int64_t)>& progress = {},
                    Precision precision = Precision::kFloat32);

// The same outputs as plain row-major arrays.
models::ClassifierOutput as_classifier_output(const Predictions& predictions);

// Accuracy of logits (n, k) against labels (n,).
double accuracy_of(const torch::Tensor& logits, const torch::Tensor& labels);

}  // namespace flipless::train
