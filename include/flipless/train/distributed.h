#pragma once
// Data-parallel training over processes with libtorch's own c10d: Gloo on CPU (and for GPU
// tensors when NCCL is not built in), NCCL between GPUs in builds configured with
// FLIPLESS_WITH_NCCL. Every process runs the same loop on its shard of each global batch;
// gradients are averaged with one all-reduce per step, so N processes with batch B follow the
// same trajectory as one process with batch N x B.
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace flipless::train {

struct DistributedConfig {
  int world_size = 1;
  int rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int timeout_seconds = 300;
  std::string backend = "auto";  // gloo, nccl, or auto: nccl for a GPU device when built in, else gloo
  void validate() const;  // throws ConfigError
};

// Whether this build has the NCCL backend.
bool nccl_available();

class ProcessGroup {
 public:
  // Connects to the others (rank 0 hosts the TCP store); `device` is where this process's
  // tensors live (NCCL needs each rank on its own GPU). Throws IoError when they do not come,
  // ConfigError for a backend this build or device cannot use.
  static std::shared_ptr<ProcessGroup> connect(const DistributedConfig& config, const torch::Device& device = torch::kCPU);
  ~ProcessGroup();

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  const std::string& backend() const { return backend_; }
  // Averages the tensors over all processes, in place (one flattened all-reduce).
  void average(const std::vector<torch::Tensor>& tensors);
  // Copies rank 0's tensors to every process, in place.
  void broadcast_from_root(const std::vector<torch::Tensor>& tensors);
  // The sum of `value` over all processes.
  double sum(double value);

 private:
  ProcessGroup() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, world_size_ = 1;
  std::string backend_ = "gloo";
  torch::Device device_ = torch::kCPU;
};

}  // namespace flipless::train
