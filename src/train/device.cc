#include "flipless/train/device.h"

#include <ATen/autocast_mode.h>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <chrono>
#include <charconv>
#include <fmt/format.h>
#include <thread>

#include "flipless/core/error.h"

// libtorch 2.4 replaced the per-backend autocast switches (set_enabled, set_cpu_enabled, ...)
// with ones taking a device type, and deprecated the old names.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define FLIPLESS_AUTOCAST_BY_DEVICE_TYPE 1
#else
#define FLIPLESS_AUTOCAST_BY_DEVICE_TYPE 0
#endif

namespace flipless::train {

namespace {

bool autocast_enabled(bool cuda) {
#if FLIPLESS_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

void set_autocast_enabled(bool cuda, bool on) {
#if FLIPLESS_AUTOCAST_BY_DEVICE_TYPE
  at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, on);
#else
  if (cuda) {
    at::autocast::set_enabled(on);
  } else {
    at::autocast::set_cpu_enabled(on);
  }
#endif
}

torch::ScalarType autocast_dtype(bool cuda) {
#if FLIPLESS_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

void set_autocast_dtype(bool cuda, torch::ScalarType dtype) {
#if FLIPLESS_AUTOCAST_BY_DEVICE_TYPE
  at::autocast::set_autocast_dtype(cuda ? at::kCUDA : at::kCPU, dtype);
#else
  if (cuda) {
    at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_autocast_cpu_dtype(dtype);
  }
#endif
}

}  // namespace

Precision parse_precision(std::string_view text) {
  if (text == "fp32" || text == "float32") return Precision::kFloat32;
  if (text == "bf16" || text == "bfloat16") return Precision::kBFloat16;
  if (text == "fp16" || text == "float16") return Precision::kFloat16;
  throw ConfigError(fmt::format("precision '{}': expected fp32, bf16 or fp16", text));
}

std::string to_string(Precision precision) {
  switch (precision) {
    case Precision::kBFloat16: return "bf16";
    case Precision::kFloat16: return "fp16";
    case Precision::kFloat32: break;
  }
  return "fp32";
}

bool libtorch_has_cuda() {
  if (at::hasCUDA()) return true;
  void* handle = dlopen("libtorch_cuda.so", RTLD_LAZY | RTLD_NOLOAD);  // already loaded, never loads it
  if (handle != nullptr) dlclose(handle);
  return handle != nullptr;
}

torch::Device parse_device(std::string_view text, int rank) {
  if (text == "cpu") return torch::kCPU;
  const bool gpus = torch::cuda::is_available();
  if (text == "auto") return gpus ? parse_device("cuda", rank) : torch::Device(torch::kCPU);
  if (text != "cuda" && text.rfind("cuda:", 0) != 0) {
    throw ConfigError(fmt::format("device '{}': expected cpu, cuda, cuda:N or auto", text));
  }
  if (!gpus) {
    throw ConfigError(fmt::format("device '{}': no GPU available ({}); use --device cpu", text,
                                  libtorch_has_cuda() ? "this libtorch has CUDA, but no GPU is visible" : "this libtorch was built without CUDA"));
  }
  const auto count = static_cast<int>(torch::cuda::device_count());
  int index = rank % count;
  if (text != "cuda") {
    const auto digits = text.substr(5);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() || index < 0) {
      throw ConfigError(fmt::format("device '{}': expected cuda:N with N a GPU number", text));
    }
    if (index >= count) throw ConfigError(fmt::format("device '{}': only {} GPU(s) visible (cuda:0..cuda:{})", text, count, count - 1));
  }
  return torch::Device(torch::kCUDA, static_cast<torch::DeviceIndex>(index));
}

void check_precision(const torch::Device& device, Precision precision) {
  if (precision == Precision::kFloat16 && !device.is_cuda()) {
    throw ConfigError(fmt::format("precision fp16 needs a GPU (device is {}); on the CPU use bf16 or fp32", device.str()));
  }
}

AutocastGuard::AutocastGuard(const torch::Device& device, Precision precision) {
  if (precision == Precision::kFloat32) return;
  check_precision(device, precision);
  cuda_ = device.is_cuda();
  was_enabled_ = autocast_enabled(cuda_);
  was_dtype_ = autocast_dtype(cuda_);
  set_autocast_dtype(cuda_, precision == Precision::kFloat16 ? torch::kFloat16 : torch::kBFloat16);
  set_autocast_enabled(cuda_, true);
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast_enabled(cuda_, was_enabled_);
  set_autocast_dtype(cuda_, was_dtype_);
}

LossScaler::LossScaler(bool enabled, double initial_scale, std::int64_t growth_interval)
    : enabled_(enabled), scale_(enabled ? initial_scale : 1.0), growth_interval_(growth_interval) {
  if (enabled_ && !(initial_scale > 0)) throw ConfigError(fmt::format("loss scale must be positive, got {}", initial_scale));
  if (enabled_ && growth_interval < 1) throw ConfigError("loss-scale growth interval must be at least 1");
}

torch::Tensor LossScaler::scale(const torch::Tensor& loss) const { return enabled_ ? loss * scale_ : loss; }

bool LossScaler::unscale(const std::vector<torch::Tensor>& parameters) {
  if (!enabled_) return true;
  std::vector<torch::Tensor> finite;
  for (const auto& p : parameters) {
    if (!p.grad().defined()) continue;
    p.mutable_grad().div_(scale_);
    finite.push_back(torch::isfinite(p.grad()).all());
  }
  return finite.empty() || torch::stack(finite).all().item<bool>();
}

void LossScaler::update(bool stepped) {
  if (!enabled_) return;
  if (!stepped) {
    ++skipped_;
    good_steps_ = 0;
    scale_ = std::max(1.0, scale_ / 2);
    return;
  }
  if (++good_steps_ >= growth_interval_) {
    good_steps_ = 0;
    scale_ *= 2;
  }
}

void store_linear_weights_for_autocast(torch::nn::Module& module, Precision precision) {
  if (precision == Precision::kFloat32) return;
  const auto dtype = precision == Precision::kBFloat16 ? torch::kBFloat16 : torch::kFloat16;
  torch::NoGradGuard no_grad;
  auto cast = [dtype](torch::nn::Module& m) {
    if (auto* linear = m.as<torch::nn::Linear>()) {
      linear->weight.set_data(linear->weight.to(dtype));
      if (linear->bias.defined()) linear->bias.set_data(linear->bias.to(dtype));
    }
  };
  // The module itself apart: modules(include_self = true) needs it held by a shared_ptr, and the
  // saved classifiers hold theirs by value.
  cast(module);
  for (const auto& m : module.modules(/*include_self=*/false)) cast(*m);
}

torch::Device device_of(torch::nn::Module& module) {
  const auto params = module.parameters();
  return params.empty() ? torch::Device(torch::kCPU) : params.front().device();
}

nn::ModelInputs to_device(const nn::ModelInputs& inputs, const torch::Device& device) {
  auto move = [&](const torch::Tensor& t) { return t.defined() ? t.to(device, /*non_blocking=*/true) : t; };
  return {move(inputs.features), move(inputs.input_ids), move(inputs.token_type_ids), move(inputs.attention_mask)};
}

nn::ModelOutput to_host_float(const nn::ModelOutput& output) {
  auto host = [](const torch::Tensor& t) { return t.defined() ? t.to(torch::kCPU, torch::kFloat32) : t; };
  return {host(output.logits), host(output.embedding)};
}

std::string describe_device(const torch::Device& device) {
  if (!device.is_cuda()) return device.str();
  return fmt::format("{} ({} GPU(s) visible)", device.str(), torch::cuda::device_count());
}

void set_threads(int n) {
  const int threads = n > 0 ? n : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  set_blas_threads(threads);
}

CpuMathPath cpu_math_path() {
  CpuMathPath p;
  p.cpu = cpu_model_name();
  p.features = cpu_features();
  p.blas = blas_info();
  p.mkl = at::hasMKL();
  p.onednn = at::hasMKLDNN();
  p.best_core = best_openblas_core(p.features);
  return p;
}

double torch_gemm_gflops(torch::ScalarType dtype, std::int64_t n, int repeats) {
  const int threads = at::get_num_threads();
  const int blas_threads = blas_info().threads;
  set_threads(1);
  torch::InferenceMode guard;
  // Values in [-1, 1] without touching the global random generator.
  const auto a = torch::arange(n * n, torch::kFloat32).mul_(0.37).sin_().reshape({n, n}).to(dtype);
  const auto b = torch::arange(n * n, torch::kFloat32).mul_(0.91).cos_().reshape({n, n}).to(dtype);
  auto c = torch::empty({n, n}, torch::TensorOptions().dtype(dtype));
  double best = 1e300;
  for (int r = 0; r <= repeats; ++r) {  // the first run warms up and is not counted
    const auto start = std::chrono::steady_clock::now();
    torch::mm_out(c, a, b);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (r > 0) best = std::min(best, s);
  }
  torch::set_num_threads(threads);
  if (blas_threads > 0) set_blas_threads(blas_threads);
  return 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / best / 1e9;
}

}  // namespace flipless::train
