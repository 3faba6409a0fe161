#pragma once
// One training loop for every model and method: AdamW with decoupled weight decay (none on
// biases and LayerNorm), linear warm-up then linear decay, gradient clipping, seeded shuffling,
// validation each epoch. The loss is a function of the step's outputs, labels and rows, so a
// compatibility method can look up precomputed old-model logits by row; the loop never sees
// the old model. Progress goes to an observer, never to stdout.
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "flipless/models/classifier.h"
#include "flipless/nn/classifier.h"
#include "flipless/train/device.h"
#include "flipless/train/distributed.h"
#include "flipless/train/inputs.h"
#include "flipless/train/strategy.h"

namespace flipless::train {

struct EpochStats;
struct TrainState;

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
  // Hand the loop's state after this many epochs to TrainObserver::on_state (0: never); with
  // stop_after_state the loop then returns instead of going on.
  int state_after_epochs = 0;
  bool stop_after_state = false;
  // Continue from a state taken after state->epochs_done epochs of a run with the same model
  // kind, data, seed and schedule (shared warm-up: Gated Fusion's first N-1 epochs are the
  // vanilla model's). Not owned; must outlive the call.
  const TrainState* resume = nullptr;
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

// The training loop between two epochs: the model's weights, the optimizer's moments and step
// counts, the row order and both random streams (data order and the CPU generator that drives
// dropout). On the CPU, a run continued from a state is bit-identical to the uninterrupted run;
// on a GPU, dropout draws from the device's generator, which is not kept.
struct TrainState {
  int epochs_done = 0;
  std::int64_t global_step = 0;
  std::vector<EpochStats> history;
  std::map<std::string, torch::Tensor> model;  // parameters and buffers by name, on the CPU
  std::string optimizer;                        // the model optimizer's libtorch archive
  torch::Tensor order;                          // (n,) int64: the row order the next shuffle permutes
  std::string order_rng;                        // std::mt19937_64 state, as text
  torch::Tensor torch_rng;                      // the CPU generator's state (uint8)

  // A folder of three files (state.json, tensors.safetensors, optimizer.pt), written atomically
  // (a temporary folder renamed), read back exactly. load throws InputError naming the file.
  void save(const std::filesystem::path& dir) const;
  static TrainState load(const std::filesystem::path& dir);
};

struct TrainObserver {
  // After every step: epoch (1-based), step within the epoch, steps per epoch, running mean loss,
  // examples/s.
  std::function<void(int, std::int64_t, std::int64_t, double, double)> on_step;
  std::function<void(const EpochStats&)> on_epoch;
  // With TrainConfig::state_after_epochs: the loop's state after that many epochs.
  std::function<void(const TrainState&)> on_state;
};

struct TrainResult {
  std::vector<EpochStats> epochs;
  // Optimizer steps taken on each of the strategy's own parameters (Gated Fusion's gate), one
  // entry per parameter, ascending: a parameter that no process's loss reached in a step is not
  // stepped (no moment decay, no weight decay).
  std::vector<std::int64_t> strategy_parameter_steps;
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

// The shared CPU generator's state (it drives dropout and initialisation), and setting it back.
torch::Tensor cpu_generator_state();
void set_cpu_generator_state(const torch::Tensor& state);

// The same outputs as plain row-major arrays.
models::ClassifierOutput as_classifier_output(const Predictions& predictions);

// Accuracy of logits (n, k) against labels (n,).
double accuracy_of(const torch::Tensor& logits, const torch::Tensor& labels);

}  // namespace flipless::train
