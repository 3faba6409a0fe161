#pragma once
// Gated Fusion (Lai et al. 2023; ../shared/paper/SPEC.md, "Gated Fusion"): a small gate on the
// new model's pooled embedding mixes old and new logits,
//
//   a(x)      = g(stop_grad(E_new(x)))                       a scalar in [0, 1]
//   l_GF(y|x) = (1 - a(x)) * l_old(y|x) / T + a(x) * l_new(y|x)
//
// with g = Dropout, Linear(h -> 64), LayerNorm, ReLU, Dropout, Linear(64 -> 1), Sigmoid
// (appendix A.3). The stop-gradient keeps the gate's loss from reaching the encoder through the
// embedding; the new logits still carry gradient to the new model.
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

namespace flipless::nn {

struct GatedFusionConfig {
  std::int64_t hidden = 64;    // the paper uses 64 in every experiment
  double dropout = 0.1;        // both gate dropouts
  double temperature = 1.0;    // T on the old logits (search space 1.0-1.6)
  bool stop_gradient = true;   // false: the paper's "no stop-gradient" ablation
  // A flipless variant, not the paper's: the gate also reads the old and the new model's
  // probabilities, softmax(l_old) and softmax(l_new) (no gradient through either), so it can
  // see where the old model is sure and the new one is not.
  bool old_confidence = false;
  void validate() const;       // throws ConfigError
};

struct FusionOutput {
  torch::Tensor logits;  // (batch, num_labels): l_GF
  torch::Tensor gate;    // (batch,): a(x), the weight of the new model
};

class GatedFusionImpl : public torch::nn::Module {
 public:
  // `num_labels` is needed (>= 2) only with old_confidence.
  GatedFusionImpl(std::int64_t embedding_dim, GatedFusionConfig config, std::int64_t num_labels = 0);

  // new_embedding (batch, dim), new_logits and old_logits (batch, num_labels).
  FusionOutput forward(const torch::Tensor& new_embedding, const torch::Tensor& new_logits, const torch::Tensor& old_logits);
  // a(x) alone: (batch,). The embedding-only form is the paper's gate; with old_confidence it
  // throws ConfigError (that gate reads the logits too).
  torch::Tensor gate(const torch::Tensor& new_embedding);
  torch::Tensor gate(const torch::Tensor& new_embedding, const torch::Tensor& new_logits, const torch::Tensor& old_logits);
  // l_GF for a given gate value (batch,): also used with a forced gate (tests, ablations).
  torch::Tensor fuse(const torch::Tensor& gate, const torch::Tensor& new_logits, const torch::Tensor& old_logits) const;

  const GatedFusionConfig& config() const { return config_; }

 private:
  GatedFusionConfig config_;
  torch::nn::Sequential net_{nullptr};
};
TORCH_MODULE(GatedFusion);

}  // namespace flipless::nn
