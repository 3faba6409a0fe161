#pragma once
// libtorch tensors to and from safetensors files (io/safetensors.h).
#include <ATen/core/Tensor.h>

#include <filesystem>
#include <map>
#include <string>

#include "flipless/io/safetensors.h"

namespace flipless::nn {

// A tensor of the file, copied into a CPU tensor of its own dtype (F32, F16, BF16, I64, I32,
// U8, BOOL, F64). Throws ModelError when it is missing or of another dtype.
at::Tensor read_tensor(const io::SafetensorsFile& file, const std::string& name);

// Writes CPU tensors (made contiguous) and metadata atomically.
void write_tensors(const std::filesystem::path& path, const std::map<std::string, at::Tensor>& tensors,
                   const std::map<std::string, std::string>& metadata = {});

}  // namespace flipless::nn
