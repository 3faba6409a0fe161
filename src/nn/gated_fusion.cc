#include "flipless/nn/gated_fusion.h"

#include <torch/torch.h>

#include <fmt/format.h>

#include "flipless/core/error.h"

namespace flipless::nn {

void GatedFusionConfig::validate() const {
  if (hidden < 1) throw ConfigError(fmt::format("gate hidden size must be positive, got {}", hidden));
  if (!(dropout >= 0 && dropout < 1)) throw ConfigError(fmt::format("gate dropout must be in [0, 1), got {}", dropout));
  if (!(temperature > 0)) throw ConfigError(fmt::format("temperature must be positive, got {}", temperature));
}

GatedFusionImpl::GatedFusionImpl(std::int64_t embedding_dim, GatedFusionConfig config, std::int64_t num_labels) : config_(config) {
  config_.validate();
  if (config_.old_confidence && num_labels < 2) {
    throw ConfigError(fmt::format("a gate that reads the old and new probabilities needs the number of labels (>= 2), got {}", num_labels));
  }
  const std::int64_t in = embedding_dim + (config_.old_confidence ? 2 * num_labels : 0);
  // Under autocast the first Linear returns 16-bit values, and libtorch 1.13's CPU LayerNorm
  // refuses an input whose type differs from its weights': the LayerNorm reads its weights' type
  // (a no-op without autocast; the Functional has no parameters, so saved gates keep their order).
  const torch::nn::LayerNorm norm(torch::nn::LayerNormOptions({config_.hidden}));
  const auto as_norm = [norm](const torch::Tensor& t) { return t.to(norm->weight.scalar_type()); };
  net_ = register_module("net", torch::nn::Sequential(torch::nn::Dropout(config_.dropout),                       //
                                                      torch::nn::Linear(in, config_.hidden),                     //
                                                      torch::nn::Functional(as_norm),                            //
                                                      norm,
                                                      torch::nn::Functional(torch::relu),                        //
                                                      torch::nn::Dropout(config_.dropout),                       //
                                                      torch::nn::Linear(config_.hidden, 1),                      //
                                                      torch::nn::Functional(torch::sigmoid)));
}

torch::Tensor GatedFusionImpl::gate(const torch::Tensor& new_embedding) {
  if (config_.old_confidence) throw ConfigError("this gate reads the old and new probabilities too; give it the logits");
  const auto input = config_.stop_gradient ? new_embedding.detach() : new_embedding;  // stop_grad(E_new(x))
  return net_->forward(input).squeeze(-1);                                             // (batch,)
}

torch::Tensor GatedFusionImpl::gate(const torch::Tensor& new_embedding, const torch::Tensor& new_logits, const torch::Tensor& old_logits) {
  if (!config_.old_confidence) return gate(new_embedding);
  const auto embedding = config_.stop_gradient ? new_embedding.detach() : new_embedding;
  const auto input = torch::cat({embedding, torch::softmax(old_logits.detach().to(embedding.scalar_type()), 1),
                                 torch::softmax(new_logits.detach().to(embedding.scalar_type()), 1)},
                                1);
  return net_->forward(input).squeeze(-1);
}

torch::Tensor GatedFusionImpl::fuse(const torch::Tensor& a, const torch::Tensor& new_logits, const torch::Tensor& old_logits) const {
  const auto w = a.unsqueeze(-1);                                                 // (batch, 1)
  return (1 - w) * old_logits / config_.temperature + w * new_logits;           // (batch, num_labels)
}

FusionOutput GatedFusionImpl::forward(const torch::Tensor& new_embedding, const torch::Tensor& new_logits, const torch::Tensor& old_logits) {
  const auto a = gate(new_embedding, new_logits, old_logits);
  return {fuse(a, new_logits, old_logits), a};
}

}  // namespace flipless::nn
