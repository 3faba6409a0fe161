#include "flipless/nn/tensor_io.h"

#include <torch/torch.h>

#include <cstring>
#include <fmt/format.h>
#include <vector>

#include "flipless/core/error.h"

namespace flipless::nn {

namespace {
struct Pair {
  io::DType dtype;
  torch::ScalarType type;
};
constexpr Pair kPairs[] = {{io::DType::kF32, torch::kFloat32}, {io::DType::kF16, torch::kFloat16}, {io::DType::kBF16, torch::kBFloat16},
                           {io::DType::kF64, torch::kFloat64}, {io::DType::kI64, torch::kInt64},   {io::DType::kI32, torch::kInt32},
                           {io::DType::kU8, torch::kUInt8},    {io::DType::kI8, torch::kInt8},     {io::DType::kI16, torch::kInt16},
                           {io::DType::kBool, torch::kBool}};
}  // namespace

at::Tensor read_tensor(const io::SafetensorsFile& file, const std::string& name) {
  const io::TensorInfo* info = file.find(name);
  if (info == nullptr) throw ModelError(fmt::format("{}: missing tensor '{}'", file.source(), name));
  for (const auto& p : kPairs) {
    if (p.dtype != info->dtype) continue;
    auto t = torch::empty(info->shape, torch::TensorOptions().dtype(p.type));
    const auto bytes = file.data(*info);
    if (!bytes.empty()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
    return t;
  }
  throw ModelError(fmt::format("{}: tensor '{}' has an unsupported dtype", file.source(), name));
}

void write_tensors(const std::filesystem::path& path, const std::map<std::string, at::Tensor>& tensors,
                   const std::map<std::string, std::string>& metadata) {
  std::vector<torch::Tensor> keep;
  std::vector<io::TensorView> views;
  for (const auto& [name, tensor] : tensors) {
    auto t = tensor.detach().to(torch::kCPU).contiguous();
    io::DType dtype = io::DType::kF32;
    bool found = false;
    for (const auto& p : kPairs) {
      if (p.type == t.scalar_type()) {
        dtype = p.dtype;
        found = true;
      }
    }
    if (!found) throw ModelError(fmt::format("tensor '{}': dtype {} cannot be saved", name, std::string(c10::toString(t.scalar_type()))));
    keep.push_back(t);
    views.push_back({name, dtype, t.sizes().vec(),
                     std::span<const std::byte>(static_cast<const std::byte*>(t.data_ptr()), static_cast<std::size_t>(t.nbytes()))});
  }
  io::write_safetensors(path, views, metadata);
}

}  // namespace flipless::nn
