#include <gtest/gtest.h>
#include <torch/torch.h>

#include "flipless/core/error.h"
#include "flipless/nn/gated_fusion.h"

namespace flipless::nn {
namespace {

// Forces the gate's output by its last Linear's bias (weights zeroed): sigmoid(+-30) = 1 or 0.
void force_gate(GatedFusion& gf, double bias) {
  torch::NoGradGuard no_grad;
  for (auto& p : gf->named_parameters()) {
    if (p.key().rfind("net.6.", 0) == 0) p.value().fill_(p.key() == "net.6.bias" ? bias : 0.0);
  }
}

TEST(GatedFusion, AForcedGateGivesNewOrOldLogitsOverT) {
  torch::manual_seed(0);
  GatedFusion gf(16, GatedFusionConfig{64, 0.0, 1.4, true});
  gf->eval();
  const auto emb = torch::randn({5, 16}), new_logits = torch::randn({5, 3}), old_logits = torch::randn({5, 3});
  force_gate(gf, 30.0);
  auto out = gf->forward(emb, new_logits, old_logits);
  EXPECT_TRUE(torch::allclose(out.logits, new_logits, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(out.gate, torch::ones({5}), 0, 1e-6));
  force_gate(gf, -30.0);
  out = gf->forward(emb, new_logits, old_logits);
  EXPECT_TRUE(torch::allclose(out.logits, old_logits / 1.4, 1e-5, 1e-6));
  // Half and half: the equation itself.
  const auto half = torch::full({5}, 0.5);
  EXPECT_TRUE(torch::allclose(gf->fuse(half, new_logits, old_logits), 0.5 * old_logits / 1.4 + 0.5 * new_logits));
}

TEST(GatedFusion, StopGradientKeepsTheGateLossOutOfTheEncoder) {
  torch::manual_seed(1);
  const auto labels = torch::tensor({0, 2, 1, 1}, torch::kInt64);
  for (bool stop : {true, false}) {
    GatedFusion gf(8, GatedFusionConfig{64, 0.0, 1.0, stop});
    auto emb = torch::randn({4, 8}, torch::requires_grad());
    auto new_logits = torch::randn({4, 3}, torch::requires_grad());
    const auto old_logits = torch::randn({4, 3});
    const auto out = gf->forward(emb, new_logits, old_logits);
    torch::nn::functional::cross_entropy(out.logits, labels).backward();
    EXPECT_TRUE(new_logits.grad().defined() && new_logits.grad().abs().sum().item<double>() > 0);  // the new model still learns
    const bool reached = emb.grad().defined() && emb.grad().abs().sum().item<double>() > 0;
    EXPECT_EQ(reached, !stop) << (stop ? "stop-gradient leaked into the embedding" : "ablation should pass gradient");
    for (const auto& p : gf->parameters()) EXPECT_TRUE(p.grad().defined());  // the gate itself trains
  }
}

TEST(GatedFusion, BackwardMatchesFiniteDifferencesInDouble) {
  torch::manual_seed(2);
  GatedFusion gf(6, GatedFusionConfig{64, 0.0, 1.2, true});
  gf->to(torch::kFloat64);
  const auto emb = torch::randn({3, 6}, torch::kFloat64), old_logits = torch::randn({3, 2}, torch::kFloat64);
  auto new_logits = torch::randn({3, 2}, torch::dtype(torch::kFloat64).requires_grad(true));
  const auto labels = torch::tensor({1, 0, 1}, torch::kInt64);
  auto loss_fn = [&] { return torch::nn::functional::cross_entropy(gf->forward(emb, new_logits, old_logits).logits, labels); };
  loss_fn().backward();
  const double eps = 1e-6;
  for (auto& p : gf->named_parameters()) {
    auto flat = p.value().view({-1});
    const auto grad = p.value().grad().view({-1});
    for (std::int64_t i = 0; i < std::min<std::int64_t>(flat.numel(), 5); ++i) {
      torch::NoGradGuard no_grad;
      const double saved = flat[i].item<double>();
      flat[i] = saved + eps;
      const double up = loss_fn().item<double>();
      flat[i] = saved - eps;
      const double down = loss_fn().item<double>();
      flat[i] = saved;
      EXPECT_NEAR(grad[i].item<double>(), (up - down) / (2 * eps), 1e-6) << p.key() << "[" << i << "]";
    }
  }
}

TEST(GatedFusion, ArchitectureAndConfigChecks) {
  GatedFusion gf(384, GatedFusionConfig{});
  std::int64_t params = 0;
  for (const auto& p : gf->parameters()) params += p.numel();
  EXPECT_EQ(params, 384 * 64 + 64 + 2 * 64 + 64 + 1);  // Linear(384->64), LayerNorm(64), Linear(64->1)
  EXPECT_THROW(GatedFusion(8, GatedFusionConfig{64, 0.1, 0.0, true}), ConfigError);
  EXPECT_THROW(GatedFusion(8, GatedFusionConfig{0, 0.1, 1.0, true}), ConfigError);
}

}  // namespace
}  // namespace flipless::nn

namespace flipless::nn {
namespace {

// The flipless variant's gate reads the old and new probabilities beside the embedding: its
// first layer is wider by 2k, its value moves with the old logits, and the embedding-only form
// (the paper's gate, used when serving) refuses it.
TEST(GatedFusionConfidence, TheGateReadsBothModelsProbabilities) {
  GatedFusionConfig c;
  c.old_confidence = true;
  c.dropout = 0.0;
  torch::manual_seed(0);
  GatedFusion gate(8, c, 3);
  EXPECT_EQ(gate->parameters().front().size(1), 8 + 2 * 3);
  const auto e = torch::randn({4, 8});
  const auto new_logits = torch::randn({4, 3});
  const auto a = gate->gate(e, new_logits, torch::zeros({4, 3}));
  const auto b = gate->gate(e, new_logits, torch::tensor({{9.0, 0.0, 0.0}}).expand({4, 3}));
  EXPECT_EQ(a.sizes(), (std::vector<std::int64_t>{4}));
  EXPECT_GT((a - b).abs().max().item<double>(), 1e-6);
  EXPECT_THROW(gate->gate(e), ConfigError);
  EXPECT_THROW(GatedFusion(8, c, 0), ConfigError);
  // No gradient reaches the logits through the gate's inputs.
  const auto l = torch::randn({4, 3}, torch::requires_grad());
  gate->gate(e, l, torch::zeros({4, 3})).sum().backward();
  EXPECT_FALSE(l.grad().defined());
}

}  // namespace
}  // namespace flipless::nn
