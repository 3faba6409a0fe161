#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "flipless/core/error.h"
#include "flipless/nn/classifier.h"
#include "flipless/train/strategy.h"
#include "flipless/train/trainer.h"

namespace flipless::train {
namespace {

namespace F = torch::nn::functional;

std::vector<std::pair<std::string, StrategyConfig>> every_strategy() {
  GatedFusionStrategyConfig gf;
  gf.embedding_dim = 8;
  gf.warmup = false;  // fused from the first step, so the contract sees the gate train
  gf.drop_gate = 0.0;
  GatedFusionStrategyConfig conf = gf;
  conf.gate.old_confidence = true;
  conf.num_labels = 3;
  GatedFusionStrategyConfig own_rate = gf;
  own_rate.gate_lr = 1e-3;
  return {{"vanilla", VanillaConfig{}},
          {"distillation", DistillationConfig{1.0, 2.0}},
          {"focal_distillation", FocalDistillationConfig{1.0, 5.0, "kl", 1.0}},
          {"gated_fusion", gf},
          {"gated_fusion_confidence", conf},
          {"gated_fusion_gate_lr", own_rate},
          {"elodi", ElodiConfig{1.0, 0.1}}};
}

class StrategyContract : public ::testing::TestWithParam<std::pair<std::string, StrategyConfig>> {};

// Over every registered strategy: a finite scalar loss; gradients reach only the new model and
// the strategy's own modules; the stored old logits stay unchanged and get no gradient.
TEST_P(StrategyContract, LossIsFiniteAndTouchesOnlyTheNewModelAndTheGate) {
  torch::manual_seed(0);
  auto strategy = make_strategy(GetParam().second);
  EXPECT_EQ(strategy->name(), GetParam().first);
  nn::FeatureClassifier model(8, 3, nn::HeadConfig{"linear", 16, 0.0});
  const auto x = torch::randn({6, 8});
  const auto labels = torch::tensor({0, 1, 2, 0, 1, 2}, torch::kInt64);
  const auto old_logits = torch::randn({6, 3});
  const auto old_copy = old_logits.clone();
  nn::ModelInputs in;
  in.features = x;
  const auto out = model.forward(in);
  const auto loss = strategy->loss(StrategyStep{out, labels, old_logits, 0, 3});
  ASSERT_EQ(loss.dim(), 0);
  EXPECT_TRUE(std::isfinite(loss.item<double>()));
  loss.backward();
  for (const auto& p : model.parameters()) EXPECT_TRUE(p.grad().defined() && p.grad().abs().sum().item<double>() > 0);
  for (const auto& p : strategy->parameters()) EXPECT_TRUE(p.grad().defined()) << "the strategy's own module did not train";
  EXPECT_FALSE(old_logits.grad().defined());
  EXPECT_TRUE(torch::equal(old_logits, old_copy));
}

INSTANTIATE_TEST_SUITE_P(Registry, StrategyContract, ::testing::ValuesIn(every_strategy()),
                         [](const auto& param_info) { return param_info.param.first; });

TEST(Strategies, RegistryListsEveryTrainingStrategyInContractOrder) {
  std::vector<std::string> trains;
  for (const auto& m : registered_methods()) {
    // The held-out gate trains the new model alone, then fits its gate: no strategy of its own.
    if (m.trains && methods::find(m.name)->runner != methods::Runner::kHeldOutGate) trains.push_back(m.name);
  }
  ASSERT_EQ(trains.size(), every_strategy().size());
  for (std::size_t i = 0; i < trains.size(); ++i) EXPECT_EQ(trains[i], every_strategy()[i].first);
}

// Every training method of the registry builds its strategy from a setting of its own grid
// (methods/method.h: the runner and flipless train both go through strategy_config).
TEST(Strategies, EveryTrainingMethodBuildsFromItsDescriptor) {
  for (const auto* d : methods::registry()) {
    if (d->runner != methods::Runner::kStrategy) {
      EXPECT_THROW(strategy_config(*d, {}, {}, {}), ConfigError) << d->name;
      continue;
    }
    std::map<std::string, double> numbers;
    std::map<std::string, std::string> words;
    for (const auto& p : d->params) {
      if (p.type == methods::ParamType::kWord) {
        words[p.key] = p.words.front();
      } else {
        numbers[p.key] = p.grid.front();
      }
    }
    const auto config = strategy_config(*d, numbers, words, {3, 4, 2});
    const auto strategy = make_strategy(config);
    EXPECT_EQ(strategy->name(), d->name);
    if (d->gated) {
      const auto& gf = std::get<GatedFusionStrategyConfig>(config);
      EXPECT_EQ(gf.gate.old_confidence, d->old_confidence) << d->name;
      EXPECT_EQ(gf.seed, 3u);
      EXPECT_EQ(gf.drop_gate, numbers.at("drop_gate"));
      EXPECT_EQ(gf.lr2, numbers.at("lr2"));
      EXPECT_EQ(gf.gate_lr, numbers.count("gate_lr") ? numbers.at("gate_lr") : 0.0) << d->name;  // 0: lr2, the paper's
    }
    numbers.erase(numbers.begin());
    if (!numbers.empty() || !words.empty()) {
      EXPECT_THROW(strategy_config(*d, numbers, words, {3, 4, 2}), ConfigError) << d->name;
    }
  }
}

TEST(Elodi, PenalisesOnlyLogitDifferencesAboveXi) {
  const auto logits = torch::tensor({{1.0, 0.0}, {0.0, 3.0}});
  const auto labels = torch::tensor({0, 1}, torch::kInt64);
  const auto reference = torch::tensor({{1.5, 0.0}, {0.0, 1.0}});
  nn::ModelOutput out{logits, torch::zeros({2, 4})};
  const double ce = F::cross_entropy(logits, labels).item<double>();
  // xi 1: row 0 differs by 0.5 (free), row 1 by 2 (penalised 4); mean over rows = 2.
  EXPECT_NEAR(make_strategy(ElodiConfig{0.5, 1.0})->loss({out, labels, reference, 0, 1}).item<double>(), ce + 0.5 * 2.0, 1e-6);
  // xi 0: 0.25 + 4 over 2 rows.
  EXPECT_NEAR(make_strategy(ElodiConfig{1.0, 0.0})->loss({out, labels, reference, 0, 1}).item<double>(), ce + 4.25 / 2, 1e-6);
  EXPECT_NEAR(make_strategy(ElodiConfig{0.0, 0.0})->loss({out, labels, reference, 0, 1}).item<double>(), ce, 1e-7);
  EXPECT_THROW(make_strategy(ElodiConfig{1.0, -1.0}), ConfigError);
}

TEST(Bcwi, InterpolatesEveryParameterAndRefusesOtherArchitectures) {
  torch::manual_seed(0);
  nn::FeatureClassifier old_model(2, 2, nn::HeadConfig{"linear", 4, 0.0});
  nn::FeatureClassifier new_model(2, 2, nn::HeadConfig{"linear", 4, 0.0});
  nn::FeatureClassifier out(2, 2, nn::HeadConfig{"linear", 4, 0.0});
  {
    torch::NoGradGuard no_grad;
    for (auto& p : old_model.parameters()) p.fill_(1.0);
    for (auto& p : new_model.parameters()) p.fill_(3.0);
  }
  interpolate_parameters(out, old_model, new_model, 0.25);  // 0.75 * 1 + 0.25 * 3 = 1.5
  for (const auto& p : out.parameters()) EXPECT_TRUE(torch::allclose(p, torch::full_like(p, 1.5)));
  // Hand-checked logits: x = (1, 2), W = 1.5 everywhere, b = 1.5: 1.5 * 3 + 1.5 = 6 per class.
  nn::ModelInputs in;
  in.features = torch::tensor({{1.0f, 2.0f}});
  out.eval();
  EXPECT_TRUE(torch::allclose(out.forward(in).logits, torch::full({1, 2}, 6.0)));
  interpolate_parameters(out, old_model, new_model, 1.0);
  for (const auto& p : out.parameters()) EXPECT_TRUE(torch::allclose(p, torch::full_like(p, 3.0)));
  EXPECT_TRUE(same_architecture(old_model, new_model));
  nn::FeatureClassifier wider(3, 2, nn::HeadConfig{"linear", 4, 0.0});
  EXPECT_FALSE(same_architecture(old_model, wider));
  EXPECT_THROW(interpolate_parameters(out, old_model, wider, 0.5), ModelError);
  EXPECT_THROW(interpolate_parameters(out, old_model, new_model, 1.5), ConfigError);
}

TEST(Distillation, LambdaZeroIsVanillaAndTheMaskSelectsWhereOldIsMoreConfident) {
  const auto logits = torch::tensor({{2.0, 0.0}, {0.0, 2.0}});
  const auto labels = torch::tensor({0, 0}, torch::kInt64);
  const auto old_logits = torch::tensor({{5.0, 0.0}, {5.0, 0.0}});
  nn::ModelOutput out{logits, torch::zeros({2, 4})};
  auto vanilla = make_strategy(VanillaConfig{});
  auto zero = make_strategy(DistillationConfig{0.0, 1.0});
  EXPECT_DOUBLE_EQ(zero->loss({out, labels, old_logits, 0, 1}).item<double>(), vanilla->loss({out, labels, old_logits, 0, 1}).item<double>());
  // Hand-checked: both rows have p_old(y) > p_new(y); KL(old || new) per row, mean over the batch.
  auto one = make_strategy(DistillationConfig{1.0, 1.0});
  const auto p_old = torch::softmax(old_logits, 1), log_new = torch::log_softmax(logits, 1);
  const auto kl = (p_old * (torch::log(p_old) - log_new)).sum(1).mean();
  EXPECT_NEAR(one->loss({out, labels, old_logits, 0, 1}).item<double>(), F::cross_entropy(logits, labels).item<double>() + kl.item<double>(), 1e-6);
  // Where the new model is already more confident in the truth, no KL term.
  const auto confident_old = torch::tensor({{0.1, 0.0}, {0.1, 0.0}});
  EXPECT_NEAR(one->loss({out, torch::tensor({0, 1}, torch::kInt64), confident_old, 0, 1}).item<double>(),
              F::cross_entropy(logits, torch::tensor({0, 1}, torch::kInt64)).item<double>(), 1e-6);
  EXPECT_THROW(make_strategy(DistillationConfig{-1, 1}), ConfigError);
}

TEST(FocalDistillation, WeightsExamplesTheOldModelGotRight) {
  const auto logits = torch::tensor({{1.0, 0.0}, {0.0, 1.0}});
  const auto labels = torch::tensor({0, 0}, torch::kInt64);
  const auto old_logits = torch::tensor({{2.0, 0.0}, {0.0, 3.0}});  // old right on row 0 only
  nn::ModelOutput out{logits, torch::zeros({2, 4})};
  auto l2 = make_strategy(FocalDistillationConfig{1.0, 5.0, "l2", 1.0});
  // Row 0: weight 6, distance (1-2)^2 + 0 = 1; row 1: weight 1, distance 0 + (1-3)^2 = 4.
  const double expected = F::cross_entropy(logits, labels).item<double>() + (6.0 * 1 + 1.0 * 4) / 2;
  EXPECT_NEAR(l2->loss({out, labels, old_logits, 0, 1}).item<double>(), expected, 1e-6);
  auto zero = make_strategy(FocalDistillationConfig{0.0, 0.0, "kl", 1.0});
  EXPECT_NEAR(zero->loss({out, labels, old_logits, 0, 1}).item<double>(), F::cross_entropy(logits, labels).item<double>(), 1e-7);
  EXPECT_THROW(make_strategy(FocalDistillationConfig{1, 1, "cosine", 1}), ConfigError);
}

TEST(GatedFusionStrategy, ScheduleDropGateAndLr2) {
  GatedFusionStrategyConfig c;
  c.embedding_dim = 4;
  c.drop_gate = 0.6;
  c.lr2 = 3e-6;
  c.seed = 5;
  auto gf = make_strategy(c);
  EXPECT_FALSE(gf->learning_rate(0, 3));
  EXPECT_EQ(gf->learning_rate(2, 3), 3e-6);
  const auto logits = torch::randn({4, 2}, torch::requires_grad());
  const auto labels = torch::tensor({0, 1, 0, 1}, torch::kInt64);
  const auto old_logits = torch::randn({4, 2});
  nn::ModelOutput out{logits, torch::randn({4, 4})};
  // Warm-up epochs: plain cross-entropy on the new logits.
  EXPECT_DOUBLE_EQ(gf->loss({out, labels, old_logits, 0, 3}).item<double>(), F::cross_entropy(logits, labels).item<double>());
  // Last epoch: the gate is dropped in about D of the steps.
  const double plain = F::cross_entropy(logits, labels).item<double>();
  int dropped = 0;
  const int steps = 4000;
  for (int i = 0; i < steps; ++i) dropped += gf->loss({out, labels, old_logits, 2, 3}).item<double>() == plain;
  EXPECT_NEAR(static_cast<double>(dropped) / steps, 0.6, 0.03);
  GatedFusionStrategyConfig missing;
  EXPECT_THROW(make_strategy(missing), ConfigError);
}

// gated_fusion_gate_lr: in a fused epoch the gate steps at its own rate, the new model at the
// loop's. AdamW's first step moves every parameter with a gradient by its learning rate (the
// normalised first moment is the gradient's sign; no weight decay here).
TEST(GatedFusionStrategy, TheGateTrainsAtItsOwnLearningRate) {
  torch::manual_seed(5);
  const auto x = torch::randn({16, 4});
  const auto y = (x.select(1, 0) > 0).to(torch::kInt64);
  const FeatureSource data(x, y);
  const auto old_logits = torch::randn({16, 2});
  for (const double gate_lr : {0.0, 1e-2}) {
    torch::manual_seed(6);
    nn::FeatureClassifier model(4, 2, nn::HeadConfig{"linear", 8, 0.0});
    GatedFusionStrategyConfig c;
    c.embedding_dim = 4;
    c.gate.dropout = 0.0;
    c.drop_gate = 0.0;
    c.warmup = false;  // fused from the first (only) step
    c.gate_lr = gate_lr;
    auto gf = make_strategy(c);
    EXPECT_EQ(gf->parameters_learning_rate(0, 1), gate_lr > 0 ? std::optional<double>(gate_lr) : std::nullopt);
    TrainConfig config;
    config.epochs = 1;
    config.batch_size = 16;
    config.learning_rate = 1e-4;
    config.warmup_ratio = 0.0;
    config.weight_decay = 0.0;
    config.max_grad_norm = 0.0;
    auto snapshot = [](const std::vector<torch::Tensor>& ps) {
      std::vector<torch::Tensor> out;
      for (const auto& p : ps) out.push_back(p.detach().clone());
      return out;
    };
    auto largest_move = [](const std::vector<torch::Tensor>& before, const std::vector<torch::Tensor>& after) {
      double m = 0;
      for (std::size_t i = 0; i < before.size(); ++i) m = std::max(m, (after[i].detach() - before[i]).abs().max().item<double>());
      return m;
    };
    const auto gate_before = snapshot(gf->parameters()), model_before = snapshot(model.parameters());
    train_with_strategy(model, *gf, data, old_logits, nullptr, torch::Tensor(), config);
    EXPECT_NEAR(largest_move(model_before, model.parameters()), 1e-4, 1e-6) << "gate_lr " << gate_lr;
    EXPECT_NEAR(largest_move(gate_before, gf->parameters()), gate_lr > 0 ? gate_lr : 1e-4, gate_lr > 0 ? 1e-4 : 1e-6) << "gate_lr " << gate_lr;
  }
}

// Synthetic: the old model is right on half the space (x0 > 0), the new model is noisy there.
// Gated Fusion's gate should learn to trust the old logits on that half, cutting negative flips.
TEST(GatedFusionStrategy, TheGateLearnsToFallBackWhereTheNewModelRegresses) {
  torch::manual_seed(3);
  const std::int64_t n = 2000;
  const auto x = torch::randn({n, 4});
  const auto y = (x.select(1, 1) > 0).to(torch::kInt64);
  const auto old_region = x.select(1, 0) > 0;
  // Old model: confident and right where x0 > 0, a coin elsewhere.
  const auto right = torch::stack({(1 - y).to(torch::kFloat), y.to(torch::kFloat)}, 1) * 4 - 2;
  const auto old_logits = torch::where(old_region.unsqueeze(1), right, torch::randn({n, 2}));
  // The new model sees features whose label signal is strong where x0 < 0 and hidden by noise
  // where x0 > 0, so alone it errs on the old model's half.
  auto features = x.clone();
  features.select(1, 1).copy_(torch::where(old_region, x.select(1, 1) * 0.05 + torch::randn({n}), x.select(1, 1)));
  const FeatureSource data(features, y);
  TrainConfig config;
  config.epochs = 4;
  config.batch_size = 64;
  config.learning_rate = 0.05;
  config.warmup_ratio = 0.0;

  torch::manual_seed(4);
  nn::FeatureClassifier vanilla(4, 2, nn::HeadConfig{"mlp", 32, 0.0});
  train(vanilla, data, nullptr, config);
  const auto vanilla_pred = predict(vanilla, data, 256).logits.argmax(1);

  torch::manual_seed(4);
  nn::FeatureClassifier model(4, 2, nn::HeadConfig{"mlp", 32, 0.0});
  GatedFusionStrategyConfig c;
  c.embedding_dim = 4;
  c.gate.dropout = 0.0;
  c.drop_gate = 0.4;
  c.lr2 = 0.01;
  auto gf = make_strategy(c);
  train_with_strategy(model, *gf, data, old_logits, nullptr, torch::Tensor(), config);
  const auto p = predict_with_strategy(model, *gf, data, old_logits, 256);
  const auto gf_pred = p.logits.argmax(1);

  const auto old_right = old_logits.argmax(1).eq(y);
  auto nfr = [&](const torch::Tensor& pred) { return (old_right & pred.ne(y)).to(torch::kFloat64).mean().item<double>(); };
  const double gate_old_half = p.gates.masked_select(old_region).mean().item<double>();
  const double gate_new_half = p.gates.masked_select(~old_region).mean().item<double>();
  EXPECT_LT(gate_old_half, gate_new_half) << "the gate should lean on the old model where it is right";
  EXPECT_LT(nfr(gf_pred), 0.5 * nfr(vanilla_pred)) << "GF NFR " << nfr(gf_pred) << " vs vanilla " << nfr(vanilla_pred);
}

}  // namespace
}  // namespace flipless::train
