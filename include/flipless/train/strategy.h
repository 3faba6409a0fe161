#pragma once
// Compatibility methods as strategies plugged into the one training loop. A strategy gets the
// new model's outputs, the labels and the old model's PRECOMPUTED logits for the batch rows
// (never the old model), returns the step's loss, may train modules of its own (Gated Fusion's
// gate) and may set the learning rate of an epoch (Gated Fusion's lr2 in its last epoch).
// Semantics follow ../shared/paper/SPEC.md; choices the paper leaves open are noted where
// they are made.
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "flipless/nn/classifier.h"
#include "flipless/methods/method.h"
#include "flipless/train/gate_fit.h"
#include "flipless/nn/gated_fusion.h"

namespace flipless::train {

struct StrategyStep {
  const nn::ModelOutput& output;    // the new model: logits (batch, k), embedding (batch, dim)
  const torch::Tensor& labels;      // (batch,) int64
  const torch::Tensor& old_logits;  // (batch, k), precomputed and constant
  int epoch;                        // 0-based
  int epochs;
};

// Final outputs at inference: logits to predict from and, for Gated Fusion, the gate values.
struct StrategyOutput {
  torch::Tensor logits;  // (batch, k)
  torch::Tensor gate;    // (batch,) or undefined
};

class CompatibilityStrategy {
 public:
  virtual ~CompatibilityStrategy() = default;
  virtual std::string name() const = 0;
  // The step's loss (a scalar with gradient to the new model and the strategy's own modules).
  virtual torch::Tensor loss(const StrategyStep& step) = 0;
  // Trainable parameters of the strategy's own modules; they join the optimizer.
  virtual std::vector<torch::Tensor> parameters() { return {}; }
  // A learning rate that replaces the schedule's for a whole epoch, or nullopt.
  virtual std::optional<double> learning_rate(int /*epoch*/, int /*epochs*/) const { return std::nullopt; }
  // The learning rate of parameters() for a whole epoch when it differs from the model's, or
  // nullopt (they then follow the model's).
  virtual std::optional<double> parameters_learning_rate(int /*epoch*/, int /*epochs*/) const { return std::nullopt; }
  // Switches the strategy's modules between training and evaluation.
  virtual void train(bool /*on*/) {}
  // Moves the strategy's modules to `device` (their parameter handles stay valid).
  virtual void to(const torch::Device& /*device*/) {}
  // Predictions: the new model's logits unless the method combines them with the old ones.
  virtual StrategyOutput infer(const nn::ModelOutput& output, const torch::Tensor& /*old_logits*/) { return {output.logits, {}}; }
};

// 1. The new model trained alone (cross-entropy).
struct VanillaConfig {};

// 2. Distillation (Xie et al. 2021): CE + lambda * KL(softmax(l_old / T) || softmax(l_new / T)),
// the KL applied only to examples where p_old(y) > p_new(y) (probabilities at T = 1, no
// gradient through the mask) and averaged over the whole batch. No T^2 factor: SPEC.md writes
// the loss without one.
struct DistillationConfig {
  double lambda = 1.0;       // grid {0.1, 1, 10}
  double temperature = 1.0;  // grid {0.5, 1, 2}
};

// 3. Focal distillation (Yan et al. 2021, positive-congruent training): CE + mean over the batch
// of w_i * d(old_i, new_i) with w_i = alpha + beta * [old model right on i], d the KL divergence
// KL(softmax(l_old / T) || softmax(l_new / T)) or the squared L2 distance between logits.
struct FocalDistillationConfig {
  double alpha = 1.0;       // weight on every example
  double beta = 5.0;        // extra weight where the old model is right
  std::string distance = "kl";  // kl or l2
  double temperature = 1.0;     // for kl
};

// 6. Gated Fusion (Lai et al. 2023): the new model alone (CE) for the first N-1 epochs; in the
// last epoch the new model and the gate train jointly on the fused logits with learning rate
// lr2 (constant through that epoch), and at each step with probability D the step trains the
// new model alone instead ("drop gate").
struct GatedFusionStrategyConfig {
  nn::GatedFusionConfig gate;   // hidden 64, dropout, temperature T (grid 1.0-1.6), stop-gradient
  double drop_gate = 0.5;       // D, grid {0.4, 0.5, 0.6, 0.8}
  double lr2 = 1e-5;            // grid {5e-7, 1e-6, 3e-6, 1e-5, 3e-5} for fine-tuning
  // The gate's learning rate in the fused epochs (the last; every epoch in the no-warm-up
  // ablation); 0: the model's (lr2 in the last epoch), as the paper (gated_fusion_gate_lr, a
  // flipless variant, sets its own: at lr2 the gate's weights move too little to route).
  double gate_lr = 0;
  bool warmup = true;           // false: the "no warm-up" ablation, fused from the first epoch
  bool drop_old_at_inference = false;  // the paper's table 4 ablation: predict with l_new alone
  std::uint64_t seed = 0;       // the drop-gate coin
  std::int64_t embedding_dim = 0;  // the new model's pooled embedding size
  std::int64_t num_labels = 0;     // needed by gate.old_confidence (gated_fusion_confidence)
};

// 8. ELODI-style logit-difference inhibition (Zhao et al. 2022): CE + lambda * mean over the
// batch of sum_k [|d_k| > xi] * d_k^2, d = l_new - l_ref. The reference logits come in the
// step's old_logits slot: ELODI's reference is the mean logits of an ensemble of new-kind
// models trained with other seeds (the experiment runner's default), or the old model's.
struct ElodiConfig {
  double lambda = 1.0;
  double xi = 0.0;  // differences up to xi are free
};

using StrategyConfig = std::variant<VanillaConfig, DistillationConfig, FocalDistillationConfig, GatedFusionStrategyConfig, ElodiConfig>;

// BCWI (Schumann et al. 2023): out = (1 - alpha) * old + alpha * new, parameter by parameter,
// for two models of one architecture (buffers copied from `new_model`). Throws ModelError
// naming the first parameter whose name or shape differs.
void interpolate_parameters(nn::ClassifierModule& out, nn::ClassifierModule& old_model, nn::ClassifierModule& new_model, double alpha);

// Whether two modules have the same parameter names and shapes (BCWI applies).
bool same_architecture(nn::ClassifierModule& a, nn::ClassifierModule& b);

// Builds the strategy a config names.
std::unique_ptr<CompatibilityStrategy> make_strategy(const StrategyConfig& config);

// What a strategy's config needs beside the method's parameters.
struct StrategyContext {
  std::uint64_t seed = 0;           // Gated Fusion's drop-gate coin and gate initialisation
  std::int64_t embedding_dim = 0;   // the new model's pooled embedding size
  std::int64_t num_labels = 0;
};

// The config of a training method (methods::Runner::kStrategy) at one setting of its
// parameters (`numbers`: numbers and booleans as 0/1; `words`). Gated Fusion without warm-up may
// leave lr2 out. Throws ConfigError for a method that is not a training strategy.
StrategyConfig strategy_config(const methods::Descriptor& method, const std::map<std::string, double>& numbers,
                               const std::map<std::string, std::string>& words, const StrategyContext& context);

// Registered method names, for `flipless methods list` (methods/method.h's registry).
struct MethodInfo {
  std::string name;
  std::string summary;
  bool trains = true;  // a training strategy (flipless train --method); else built from trained runs
};
const std::vector<MethodInfo>& registered_methods();

// gated_fusion_heldout's gate-fitting setting from its parameters (methods::gated_fusion_heldout:
// temperature, dropout, confidence, gate_lr, weight_decay, keep_weight, epochs), as the
// experiment runner and flipless train both read it. Throws ConfigError naming a missing one.
GateFitConfig heldout_gate_config(const std::map<std::string, double>& numbers, std::uint64_t seed);

}  // namespace flipless::train
