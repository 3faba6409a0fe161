// One process of the data-parallel tests (train_test's Distributed and GatedFusionExact suites):
// trains a small head on fixed data as rank R of W and writes its final parameters; with `gf`,
// trains it with Gated Fusion and writes the gate's parameters after every step instead.
//   ddp_worker WORLD RANK PORT BATCH OUT.safetensors [gf]
#include <torch/torch.h>

#include <fmt/format.h>

#include <cstdio>
#include <string>

#include "flipless/core/error.h"
#include "flipless/nn/tensor_io.h"
#include "flipless/train/strategy.h"
#include "flipless/train/trainer.h"

int main(int argc, char** argv) {
  using namespace flipless;
  if (argc != 6 && !(argc == 7 && std::string(argv[6]) == "gf")) return 2;
  const bool gated_fusion = argc == 7;
  train::set_threads(1);
  try {
    train::DistributedConfig dist;
    dist.world_size = std::stoi(argv[1]);
    dist.rank = std::stoi(argv[2]);
    dist.master_port = std::stoi(argv[3]);
    dist.timeout_seconds = 60;
    torch::manual_seed(11);
    const auto x = torch::randn({250, 8});
    const auto y = (x.select(1, 0) + 0.5 * x.select(1, 1) > 0).to(torch::kInt64);
    const train::FeatureSource data(x, y);
    torch::manual_seed(dist.rank + 100);  // different initial weights per rank: the broadcast must fix them
    nn::FeatureClassifier model(8, 2, nn::HeadConfig{"mlp", 16, 0.0});
    train::TrainConfig config;
    config.epochs = 3;
    config.batch_size = std::stoi(argv[4]);
    config.learning_rate = 0.05;
    config.seed = 7;
    if (dist.world_size > 1) config.group = train::ProcessGroup::connect(dist);
    if (dist.world_size == 1) {
      torch::manual_seed(100);  // rank 0's initial weights
      model = nn::FeatureClassifier(8, 2, nn::HeadConfig{"mlp", 16, 0.0});
    }
    if (gated_fusion) {
      torch::manual_seed(12);
      const auto old_logits = torch::randn({250, 2});
      train::GatedFusionStrategyConfig gf;
      gf.embedding_dim = 8;
      gf.drop_gate = 0.5;
      gf.lr2 = 0.01;
      gf.seed = 7;
      auto strategy = train::make_strategy(gf);
      const auto gate = strategy->parameters();
      std::map<std::string, torch::Tensor> out;
      for (std::size_t i = 0; i < gate.size(); ++i) out[fmt::format("initial.{}", i)] = gate[i].detach().clone();
      int step = 0;
      train::TrainObserver observer;
      observer.on_step = [&](int, std::int64_t, std::int64_t, double, double) {
        for (std::size_t i = 0; i < gate.size(); ++i) out[fmt::format("step{}.{}", step, i)] = gate[i].detach().clone();
        ++step;
      };
      const auto result = train::train_with_strategy(model, *strategy, data, old_logits, nullptr, {}, config, observer);
      out["gate_steps"] = torch::tensor(result.strategy_parameter_steps, torch::kInt64);
      nn::write_tensors(argv[5], out);
      return 0;
    }
    train::train(model, data, nullptr, config);
    std::map<std::string, torch::Tensor> params;
    for (const auto& p : model.named_parameters()) params[p.key()] = p.value();
    nn::write_tensors(argv[5], params);
  } catch (const Error& e) {
    std::fprintf(stderr, "ddp_worker: %s\n", e.what());
    return 2;
  }
  return 0;
}
