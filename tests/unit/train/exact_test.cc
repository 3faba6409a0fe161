// Gated Fusion trained exactly as specified: dropped steps and warm-up epochs leave the gate and
// its optimizer state untouched (one process and two), the gate's initial weights come from
// the unit's seed alone, and a run continued from the vanilla model's state after epoch N-1
// (shared warm-up) is bit-identical to one trained from scratch.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <limits>
#include <random>

#include "../test_util.h"
#include "flipless/core/error.h"
#include "flipless/io/safetensors.h"
#include "flipless/nn/classifier.h"
#include "flipless/nn/tensor_io.h"
#include "flipless/train/inputs.h"
#include "flipless/train/strategy.h"
#include "flipless/train/trainer.h"

namespace flipless::train {
namespace {

using flipless::testing::free_port;
using flipless::testing::TempDir;

struct Fixture {
  torch::Tensor x, y, old_logits;
};

Fixture fixture() {
  torch::manual_seed(11);
  Fixture f;
  f.x = torch::randn({96, 8});
  f.y = (f.x.select(1, 0) + 0.5 * f.x.select(1, 1) > 0).to(torch::kInt64);
  f.old_logits = torch::randn({96, 2});
  return f;
}

GatedFusionStrategyConfig gf_config(std::uint64_t seed) {
  GatedFusionStrategyConfig gf;
  gf.embedding_dim = 8;
  gf.drop_gate = 0.5;
  gf.lr2 = 0.01;
  gf.seed = seed;
  return gf;
}

TrainConfig loop_config(std::uint64_t seed) {
  TrainConfig config;
  config.epochs = 3;
  config.batch_size = 16;
  config.learning_rate = 0.01;
  config.weight_decay = 0.01;  // a gate stepped on a zero gradient would still decay
  config.seed = seed;
  return config;
}

std::vector<torch::Tensor> snapshot(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  for (const auto& p : params) out.push_back(p.detach().clone());
  return out;
}

bool same(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!torch::equal(a[i], b[i])) return false;
  }
  return true;
}

// The drop-gate coins of the fused epoch, as the strategy draws them (its own stream).
std::vector<bool> dropped_steps(std::uint64_t seed, std::size_t steps, double drop) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  std::vector<bool> out;
  for (std::size_t i = 0; i < steps; ++i) out.push_back(coin(rng) < drop);
  return out;
}

TEST(GatedFusionExact, DroppedStepsAndWarmupEpochsLeaveTheGateAndItsOptimizerUntouched) {
  const auto f = fixture();
  const FeatureSource data(f.x, f.y);
  torch::manual_seed(5);
  nn::FeatureClassifier model(8, 2, nn::HeadConfig{"linear", 16, 0.1});
  auto strategy = make_strategy(gf_config(7));
  const auto params = strategy->parameters();
  const auto initial = snapshot(params);
  std::vector<std::vector<torch::Tensor>> after;  // gate parameters after each step
  std::vector<int> epoch_of;
  TrainObserver observer;
  observer.on_step = [&](int epoch, std::int64_t, std::int64_t, double, double) {
    after.push_back(snapshot(params));
    epoch_of.push_back(epoch);
  };
  const auto result = train_with_strategy(model, *strategy, data, f.old_logits, nullptr, {}, loop_config(3), observer);
  ASSERT_EQ(after.size(), 18u);  // 3 epochs x 6 steps
  for (std::size_t s = 0; s < 12; ++s) EXPECT_TRUE(same(after[s], initial)) << "warm-up step " << s << " moved the gate";
  const auto dropped = dropped_steps(7, 6, 0.5);
  std::int64_t fused = 0;
  for (std::size_t s = 12; s < 18; ++s) {
    const bool moved = !same(after[s], after[s - 1]);
    if (dropped[s - 12]) {
      EXPECT_FALSE(moved) << "dropped step " << s - 12 << " of the last epoch moved the gate";
    } else {
      EXPECT_TRUE(moved) << "fused step " << s - 12 << " did not train the gate";
      ++fused;
    }
  }
  ASSERT_GT(fused, 0);
  ASSERT_LT(fused, 6) << "the coins should drop some steps; pick another seed";
  // AdamW stepped every gate parameter exactly once per fused step: its moments saw no zero
  // gradients from the dropped steps or the warm-up.
  ASSERT_EQ(result.strategy_parameter_steps.size(), params.size());
  for (auto steps : result.strategy_parameter_steps) EXPECT_EQ(steps, fused);
}

TEST(GatedFusionExact, TheGateComesFromTheSeedAloneAndDrawsNothingFromTheSharedStream) {
  torch::manual_seed(1);
  auto a = make_strategy(gf_config(4));
  const auto after_a = torch::rand({3});
  torch::manual_seed(99);
  torch::rand({1000});  // other draws before it: the gate must not care
  auto b = make_strategy(gf_config(4));
  EXPECT_TRUE(same(snapshot(a->parameters()), snapshot(b->parameters())));
  torch::manual_seed(1);
  EXPECT_TRUE(torch::equal(torch::rand({3}), after_a)) << "building the gate drew from the shared generator";
  auto c = make_strategy(gf_config(5));
  EXPECT_FALSE(same(snapshot(a->parameters()), snapshot(c->parameters())));
}

TEST(GatedFusionExact, ContinuingFromTheVanillaStateEqualsTrainingFromScratch) {
  const auto f = fixture();
  const FeatureSource data(f.x, f.y);
  TempDir dir;
  // Vanilla, keeping its state after epoch 2 (through the disk, as the runner keeps it).
  auto config = loop_config(3);
  config.state_after_epochs = 2;
  torch::manual_seed(5);
  nn::FeatureClassifier vanilla(8, 2, nn::HeadConfig{"mlp", 16, 0.1});  // dropout: the CPU generator matters
  TrainObserver keep;
  keep.on_state = [&](const TrainState& st) { st.save(dir.path() / "warm"); };
  const auto plain = train(vanilla, data, &data, config, cross_entropy_loss, keep);
  const auto state = TrainState::load(dir.path() / "warm");
  ASSERT_EQ(state.epochs_done, 2);
  ASSERT_EQ(state.history.size(), 2u);

  auto gf_run = [&](const TrainState* resume, std::vector<torch::Tensor>& gate) {
    torch::manual_seed(123);  // whatever came before must not matter
    nn::FeatureClassifier model(8, 2, nn::HeadConfig{"mlp", 16, 0.1});
    if (!resume) {  // from scratch: the same initial weights as the vanilla run
      torch::manual_seed(5);
      model = nn::FeatureClassifier(8, 2, nn::HeadConfig{"mlp", 16, 0.1});
    }
    auto strategy = make_strategy(gf_config(3));
    auto c = loop_config(3);
    c.resume = resume;
    const auto r = train_with_strategy(model, *strategy, data, f.old_logits, &data, f.old_logits, c);
    gate = snapshot(strategy->parameters());
    EXPECT_EQ(r.epochs.size(), 3u);
    return snapshot(model.parameters());
  };
  std::vector<torch::Tensor> gate_scratch, gate_shared;
  const auto scratch = gf_run(nullptr, gate_scratch);
  const auto shared = gf_run(&state, gate_shared);
  EXPECT_TRUE(same(scratch, shared)) << "the new model differs";
  EXPECT_TRUE(same(gate_scratch, gate_shared)) << "the gate differs";
  // And vanilla continued from its own state is vanilla.
  torch::manual_seed(77);
  nn::FeatureClassifier again(8, 2, nn::HeadConfig{"mlp", 16, 0.1});
  auto c = loop_config(3);
  c.resume = &state;
  const auto continued = train(again, data, &data, c);
  EXPECT_TRUE(same(snapshot(again.parameters()), snapshot(vanilla.parameters())));
  ASSERT_EQ(continued.epochs.size(), plain.epochs.size());
  EXPECT_EQ(continued.epochs.back().train_loss, plain.epochs.back().train_loss);
}

TEST(GatedFusionExact, AStateFromAnotherRunIsRefused) {
  const auto f = fixture();
  const FeatureSource data(f.x, f.y);
  TrainState st;
  st.epochs_done = 5;
  nn::FeatureClassifier model(8, 2, nn::HeadConfig{});
  auto c = loop_config(3);
  c.resume = &st;
  EXPECT_THROW(train(model, data, nullptr, c), ConfigError);
  st.epochs_done = 1;
  st.global_step = 6;
  st.order = torch::arange(10);
  EXPECT_THROW(train(model, data, nullptr, c), InputError);
}

TEST(GatedFusionExact, ANonFiniteLossStopsTraining) {
  const auto f = fixture();
  const FeatureSource data(f.x, f.y);
  nn::FeatureClassifier model(8, 2, nn::HeadConfig{});
  auto c = loop_config(0);
  c.learning_rate = std::numeric_limits<double>::infinity();
  EXPECT_THROW(train(model, data, nullptr, c), ConfigError);
  c.learning_rate = 0.01;
  const LossFn diverges = [](const StepInputs& step) { return cross_entropy_loss(step) * std::numeric_limits<float>::quiet_NaN(); };
  const auto message = flipless::testing::error_of<ConfigError>([&] { train(model, data, nullptr, c, diverges); });
  EXPECT_NE(message.find("epoch 1: the training loss is not finite"), std::string::npos) << message;
}

// Two processes: a parameter that neither process's loss reached is not stepped by either (the
// old loop zero-filled such gradients, so AdamW moved the gate in the warm-up epochs).
TEST(GatedFusionExact, TwoProcessesStepTheGateOnlyOnFusedSteps) {
  TempDir dir;
  const std::string worker = FLIPLESS_DDP_WORKER;
  const int port = free_port();
  const auto a = dir.path() / "rank0.safetensors", b = dir.path() / "rank1.safetensors";
  const std::string both = fmt::format("'{0}' 2 0 {1} 16 '{2}' gf & '{0}' 2 1 {1} 16 '{3}' gf; wait", worker, port, a.string(), b.string());
  ASSERT_EQ(std::system(("bash -c \"" + both + "\"").c_str()), 0);
  const auto fa = io::SafetensorsFile::open(a), fb = io::SafetensorsFile::open(b);
  const auto read_step = [](const io::SafetensorsFile& file, const std::string& step) {
    std::vector<torch::Tensor> out;
    for (int i = 0; file.find(fmt::format("{}.{}", step, i)) != nullptr; ++i) out.push_back(nn::read_tensor(file, fmt::format("{}.{}", step, i)));
    return out;
  };
  const auto initial = read_step(fa, "initial");
  ASSERT_FALSE(initial.empty());
  // 250 rows, 32 a global step: 8 steps an epoch, 3 epochs.
  for (int s = 0; s < 24; ++s) {
    const auto pa = read_step(fa, fmt::format("step{}", s)), pb = read_step(fb, fmt::format("step{}", s));
    ASSERT_EQ(pa.size(), initial.size()) << "step " << s;
    EXPECT_TRUE(same(pa, pb)) << "the processes disagree at step " << s;
    if (s < 16) {
      EXPECT_TRUE(same(pa, initial)) << "warm-up step " << s << " moved the gate";
    }
  }
  const auto dropped = dropped_steps(7, 8, 0.5);
  std::int64_t fused = 0;
  for (int s = 16; s < 24; ++s) {
    const bool moved = !same(read_step(fa, fmt::format("step{}", s)), read_step(fa, fmt::format("step{}", s - 1)));
    EXPECT_EQ(moved, !dropped[static_cast<std::size_t>(s - 16)]) << "last-epoch step " << s - 16;
    fused += dropped[static_cast<std::size_t>(s - 16)] ? 0 : 1;
  }
  const auto steps = nn::read_tensor(fa, "gate_steps");
  for (std::int64_t i = 0; i < steps.numel(); ++i) EXPECT_EQ(steps[i].item<std::int64_t>(), fused);
}

}  // namespace
}  // namespace flipless::train
