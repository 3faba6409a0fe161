// One process of the data-parallel test (train_test's Distributed suite): trains a small head
// on fixed data as rank R of W and writes its final parameters.
//   ddp_worker WORLD RANK PORT BATCH OUT.safetensors
#include <torch/torch.h>

#include <cstdio>
#include <string>

#include "flipless/core/error.h"
#include "flipless/nn/tensor_io.h"
#include "flipless/train/trainer.h"

int main(int argc, char** argv) {
  using namespace flipless;
  if (argc != 6) return 2;
  torch::set_num_threads(1);
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
