#pragma once
// Where training and prediction run, and in which precision. The same code runs on CPU here
// and on a GPU with a CUDA build of libtorch: models and the strategy's modules are moved to
// the device, each batch is copied there, and outputs come back to the CPU. Mixed precision
// is autocast (matrix products in 16 bits, parameters, optimizer state, reductions, softmax
// and the loss in 32): bf16 on CPU or GPU, fp16 on GPU only, with dynamic loss scaling.
// Only calls that libtorch 1.13 and 2.x share are used; the autocast switch, whose names
// changed in 2.4, is chosen at compile time.
#include <torch/types.h>

#include <string>
#include <string_view>

#include "flipless/nn/classifier.h"
#include "flipless/train/cpu_math.h"

namespace flipless::train {

enum class Precision { kFloat32, kBFloat16, kFloat16 };

// "fp32" | "bf16" | "fp16" (also "float32", "bfloat16", "float16"). Throws ConfigError.
Precision parse_precision(std::string_view text);
std::string to_string(Precision precision);

// Whether this libtorch was built with CUDA, GPU or not: at::hasCUDA() needs a usable GPU and
// driver, so a CUDA build on a machine without them also counts (libtorch_cuda is loaded).
bool libtorch_has_cuda();

// "cpu", "cuda", "cuda:N", or "auto" (the first GPU when one is visible, else the CPU).
// Throws ConfigError naming what is missing: a CUDA build of libtorch, a visible GPU, or GPU
// N. `rank` picks the GPU for "cuda" in data-parallel runs: rank modulo the GPUs visible.
torch::Device parse_device(std::string_view text, int rank = 0);

// Whether `precision` runs on `device`: fp16 needs a GPU (CPU autocast is bf16 only). Throws
// ConfigError.
void check_precision(const torch::Device& device, Precision precision);

// Autocast on `device` in `precision` for the guard's lifetime (nothing for fp32); restores
// the previous state and clears the cast cache on exit. Wrap forward passes and losses, not
// backward.
class AutocastGuard {
 public:
  AutocastGuard(const torch::Device& device, Precision precision);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool was_enabled_ = false;
  torch::ScalarType was_dtype_ = torch::kFloat32;
};

// Dynamic loss scaling for fp16 (PyTorch's GradScaler, in the loop's terms): the loss is
// multiplied by the scale before backward; gradients are divided by it before clipping; a step
// whose gradients hold inf or NaN is skipped and the scale halved; after `growth_interval`
// good steps in a row it doubles. Disabled (scale 1, every step taken) for other precisions.
class LossScaler {
 public:
  explicit LossScaler(bool enabled, double initial_scale = 65536.0, std::int64_t growth_interval = 2000);
  torch::Tensor scale(const torch::Tensor& loss) const;
  // Divides the gradients by the scale; returns whether they are all finite (then step).
  bool unscale(const std::vector<torch::Tensor>& parameters);
  // After the step (taken or skipped): adjusts the scale.
  void update(bool stepped);
  double current() const { return scale_; }
  std::int64_t skipped() const { return skipped_; }

 private:
  bool enabled_;
  double scale_;
  std::int64_t growth_interval_, good_steps_ = 0, skipped_ = 0;
};

// For inference under AutocastGuard: stores every torch::nn::Linear's weight and bias in
// `precision`'s 16-bit type (nothing for fp32), the rounding autocast applies to them, so that
// it stops casting every weight again on each call (in inference mode it keeps no casts; for
// MiniLM that cost more than a one-sentence forward). Results agree with per-call casting to
// within bf16 rounding, not bit for bit. The module must then only run under the guard.
void store_linear_weights_for_autocast(torch::nn::Module& module, Precision precision);

// The device of a module's first parameter (the CPU for a module without parameters).
torch::Device device_of(torch::nn::Module& module);

// A batch's tensors on `device` (no copy when already there).
nn::ModelInputs to_device(const nn::ModelInputs& inputs, const torch::Device& device);

// The output in float32 on the CPU.
nn::ModelOutput to_host_float(const nn::ModelOutput& output);

// "cpu", "cuda:0", ... and the GPU's name when there is one, for logs.
std::string describe_device(const torch::Device& device);

// Sets how many threads CPU work uses: torch's intra-op pool and OpenBLAS's own pool, which
// torch::set_num_threads does not reach (so "1 thread" would still use every core for float32
// matrix products, and n threads would oversubscribe n cores). `n` 0: one per core.
void set_threads(int n);

// The CPU math libtorch uses here.
struct CpuMathPath {
  std::string cpu;             // the CPU's name
  CpuFeatures features;
  BlasInfo blas;               // OpenBLAS, when libtorch's float32 products go to it
  bool mkl = false;            // libtorch built with MKL (float32 products go to MKL then)
  bool onednn = false;         // libtorch built with oneDNN (bf16 products go to it)
  std::optional<std::string> best_core;  // the OpenBLAS kernels this CPU should have
};

CpuMathPath cpu_math_path();

// GFLOP/s of one n x n x n matrix product of `dtype` (kFloat32 or kBFloat16) through libtorch
// (torch::mm) on one thread, best of `repeats` after a warm-up; restores the thread settings.
double torch_gemm_gflops(torch::ScalarType dtype, std::int64_t n = 1024, int repeats = 5);

}  // namespace flipless::train
