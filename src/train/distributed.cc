#include "flipless/train/distributed.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include <fmt/format.h>

#include "flipless/core/error.h"

namespace flipless::train {

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

void DistributedConfig::validate() const {
  if (world_size < 1) throw ConfigError(fmt::format("world size must be at least 1, got {}", world_size));
  if (rank < 0 || rank >= world_size) throw ConfigError(fmt::format("rank {} is outside 0..{}", rank, world_size - 1));
  if (master_port < 1 || master_port > 65535) throw ConfigError(fmt::format("master port {} is not a TCP port", master_port));
}

std::shared_ptr<ProcessGroup> ProcessGroup::connect(const DistributedConfig& config) {
  config.validate();
  std::shared_ptr<ProcessGroup> pg(new ProcessGroup());
  pg->rank_ = config.rank;
  pg->world_size_ = config.world_size;
  pg->impl_ = std::make_unique<Impl>();
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(config.master_port);
    options.isServer = config.rank == 0;
    options.numWorkers = static_cast<std::size_t>(config.world_size);
    options.timeout = std::chrono::seconds(config.timeout_seconds);
    pg->impl_->store = c10::make_intrusive<c10d::TCPStore>(config.master_addr, options);
    auto gloo = c10d::ProcessGroupGloo::Options::create(std::chrono::seconds(config.timeout_seconds));
    gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(config.master_addr));
    pg->impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(pg->impl_->store, config.rank, config.world_size, gloo);
  } catch (const std::exception& e) {
    throw IoError(fmt::format("rank {}: cannot join the process group at {}:{}: {}", config.rank, config.master_addr,
                              config.master_port, e.what()));
  }
  return pg;
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::average(const std::vector<torch::Tensor>& tensors) {
  if (world_size_ == 1 || tensors.empty()) return;
  std::vector<torch::Tensor> flat_parts;
  for (const auto& t : tensors) flat_parts.push_back(t.reshape({-1}));
  std::vector<torch::Tensor> buffer{torch::cat(flat_parts)};
  impl_->group->allreduce(buffer)->wait();
  buffer[0].div_(world_size_);
  std::int64_t offset = 0;
  for (const auto& t : tensors) {
    t.copy_(buffer[0].slice(0, offset, offset + t.numel()).view_as(t));
    offset += t.numel();
  }
}

void ProcessGroup::broadcast_from_root(const std::vector<torch::Tensor>& tensors) {
  if (world_size_ == 1) return;
  for (const auto& t : tensors) {
    std::vector<torch::Tensor> one{t.detach()};
    impl_->group->broadcast(one)->wait();
  }
}

double ProcessGroup::sum(double value) {
  if (world_size_ == 1) return value;
  std::vector<torch::Tensor> one{torch::tensor({value}, torch::kFloat64)};
  impl_->group->allreduce(one)->wait();
  return one[0].item<double>();
}

}  // namespace flipless::train
