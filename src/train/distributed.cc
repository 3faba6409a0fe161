#include "flipless/train/distributed.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#ifdef FLIPLESS_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <fmt/format.h>

#include "flipless/core/error.h"

namespace flipless::train {

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#ifdef FLIPLESS_WITH_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
  // Runs a collective on whichever backend is connected and waits for it.
  template <class Call>
  void run(const Call& call) {
#ifdef FLIPLESS_WITH_NCCL
    if (nccl) {
      call(*nccl)->wait();
      return;
    }
#endif
    call(*gloo)->wait();
  }
};

bool nccl_available() {
#ifdef FLIPLESS_WITH_NCCL
  return true;
#else
  return false;
#endif
}

void DistributedConfig::validate() const {
  if (world_size < 1) throw ConfigError(fmt::format("world size must be at least 1, got {}", world_size));
  if (rank < 0 || rank >= world_size) throw ConfigError(fmt::format("rank {} is outside 0..{}", rank, world_size - 1));
  if (master_port < 1 || master_port > 65535) throw ConfigError(fmt::format("master port {} is not a TCP port", master_port));
  if (backend != "auto" && backend != "gloo" && backend != "nccl") {
    throw ConfigError(fmt::format("backend '{}': expected gloo, nccl or auto", backend));
  }
}

std::shared_ptr<ProcessGroup> ProcessGroup::connect(const DistributedConfig& config, const torch::Device& device) {
  config.validate();
  std::string backend = config.backend;
  if (backend == "auto") backend = device.is_cuda() && nccl_available() ? "nccl" : "gloo";
  if (backend == "nccl" && !nccl_available()) {
    throw ConfigError("backend nccl: this build has no NCCL (configure a CUDA libtorch with -DFLIPLESS_WITH_NCCL=ON); use gloo");
  }
  if (backend == "nccl" && !device.is_cuda()) throw ConfigError(fmt::format("backend nccl needs a GPU device, got {}", device.str()));
  std::shared_ptr<ProcessGroup> pg(new ProcessGroup());
  pg->rank_ = config.rank;
  pg->world_size_ = config.world_size;
  pg->backend_ = backend;
  pg->device_ = device;
  pg->impl_ = std::make_unique<Impl>();
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(config.master_port);
    options.isServer = config.rank == 0;
    options.numWorkers = static_cast<std::size_t>(config.world_size);
    options.timeout = std::chrono::seconds(config.timeout_seconds);
    pg->impl_->store = c10::make_intrusive<c10d::TCPStore>(config.master_addr, options);
#ifdef FLIPLESS_WITH_NCCL
    if (backend == "nccl") {
      c10::cuda::set_device(device.index());  // NCCL's communicator binds to the current GPU
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = std::chrono::milliseconds(1000LL * config.timeout_seconds);
      pg->impl_->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(pg->impl_->store, config.rank, config.world_size, nccl);
      return pg;
    }
#endif
    auto gloo = c10d::ProcessGroupGloo::Options::create(std::chrono::seconds(config.timeout_seconds));
    gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(config.master_addr));
    pg->impl_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(pg->impl_->store, config.rank, config.world_size, gloo);
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
  impl_->run([&](auto& group) { return group.allreduce(buffer); });
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
    impl_->run([&](auto& group) { return group.broadcast(one); });
  }
}

double ProcessGroup::sum(double value) {
  if (world_size_ == 1) return value;
  // On the group's device: NCCL reduces GPU tensors only.
  std::vector<torch::Tensor> one{torch::tensor({value}, torch::TensorOptions().dtype(torch::kFloat64).device(device_))};
  impl_->run([&](auto& group) { return group.allreduce(one); });
  return one[0].item<double>();
}

}  // namespace flipless::train
