#include "flipless/train/gate_fit.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/adamw.h>

#include <ATen/CPUGeneratorImpl.h>
#include <cmath>
#include <map>
#include <mutex>
#include <string>

#include "flipless/core/error.h"
#include "flipless/nn/tensor_io.h"
#include "flipless/train/cpu_math.h"
#include "flipless/train/device.h"
#include "flipless/train/trainer.h"

namespace flipless::train {

namespace F = torch::nn::functional;

void GateFitConfig::validate() const {
  gate.validate();
  if (!(lr > 0) || !std::isfinite(lr)) throw ConfigError(fmt::format("gate learning rate must be positive, got {}", lr));
  if (!(weight_decay >= 0) || !std::isfinite(weight_decay)) throw ConfigError(fmt::format("gate weight decay must be >= 0, got {}", weight_decay));
  if (!(keep_weight >= 0) || !std::isfinite(keep_weight)) throw ConfigError(fmt::format("gate keep weight must be >= 0, got {}", keep_weight));
  if (epochs < 1) throw ConfigError(fmt::format("gate epochs must be >= 1, got {}", epochs));
  if (batch_size < 1) throw ConfigError(fmt::format("gate batch size must be >= 1, got {}", batch_size));
}

GateRows GateRows::subset(const torch::Tensor& index) const {
  GateRows out;
  out.embeddings = embeddings.index_select(0, index);
  out.new_logits = new_logits.index_select(0, index);
  out.old_logits = old_logits.index_select(0, index);
  if (labels.defined()) out.labels = labels.index_select(0, index);
  return out;
}

namespace {

void check_rows(const GateRows& r, bool need_labels) {
  if (!r.embeddings.defined() || !r.new_logits.defined() || !r.old_logits.defined() || (need_labels && !r.labels.defined())) {
    throw InputError("gate rows: embeddings, new logits, old logits and labels are all needed");
  }
  const auto n = r.new_logits.size(0);
  if (r.embeddings.dim() != 2 || r.new_logits.dim() != 2 || r.old_logits.sizes() != r.new_logits.sizes() || r.embeddings.size(0) != n ||
      (need_labels && (r.labels.dim() != 1 || r.labels.size(0) != n))) {
    throw InputError(fmt::format("gate rows: shapes disagree (embeddings {}, new logits {}, old logits {})", fmt::join(r.embeddings.sizes(), "x"),
                                 fmt::join(r.new_logits.sizes(), "x"), fmt::join(r.old_logits.sizes(), "x")));
  }
}

// The gate's tensors are tiny (a batch of 32 rows, 64 hidden units): one thread does them
// fastest, and two threads on a busy machine spin at every barrier (a grid took 524 s at two
// threads under load, against seconds at one). Also makes the fit independent of the thread count.
class OneThread {
 public:
  OneThread() : torch_(at::get_num_threads()), blas_(blas_info().threads) { set_threads(1); }
  ~OneThread() {
    at::set_num_threads(torch_);
    if (blas_ > 0) set_blas_threads(blas_);
  }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int torch_, blas_;
};

// Runs `f` with the shared CPU generator seeded by `seed`, then puts the generator back.
template <typename Fn>
auto with_seed(std::uint64_t seed, Fn&& f) {
  const auto saved = cpu_generator_state();
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  }
  struct Restore {
    const torch::Tensor& s;
    ~Restore() { set_cpu_generator_state(s); }
  } restore{saved};
  return f();
}

}  // namespace

FittedGate fit_gate(const GateRows& rows, const GateFitConfig& c) {
  c.validate();
  check_rows(rows, true);
  const auto n = rows.size();
  if (n < 2) throw InputError(fmt::format("a gate needs at least 2 rows to fit, got {}", n));
  const auto k = rows.new_logits.size(1);
  const OneThread one_thread;
  return with_seed(c.seed ^ 0x6a09e667f3bcc909ULL, [&] {
    FittedGate out;
    out.gate = nn::GatedFusion(rows.embeddings.size(1), c.gate, k);
    const auto emb = rows.embeddings.to(torch::kFloat32).detach();
    const auto nl = rows.new_logits.to(torch::kFloat32).detach();
    const auto ol = rows.old_logits.to(torch::kFloat32).detach();
    const auto y = rows.labels.to(torch::kLong);
    const auto weight = 1.0 + c.keep_weight * ol.argmax(1).eq(y).to(torch::kFloat32);  // (n,)
    torch::optim::AdamW optimizer(out.gate->parameters(), torch::optim::AdamWOptions(c.lr).weight_decay(c.weight_decay));
    out.gate->train();
    for (int epoch = 0; epoch < c.epochs; ++epoch) {
      const auto order = torch::randperm(n, torch::kLong);
      for (std::int64_t start = 0; start < n; start += c.batch_size) {
        const auto idx = order.slice(0, start, std::min(n, start + c.batch_size));
        optimizer.zero_grad();
        const auto fused = out.gate->forward(emb.index_select(0, idx), nl.index_select(0, idx), ol.index_select(0, idx));
        const auto ce = F::cross_entropy(fused.logits, y.index_select(0, idx), F::CrossEntropyFuncOptions().reduction(torch::kNone));
        const auto w = weight.index_select(0, idx);
        const auto loss = (w * ce).sum() / w.sum();
        loss.backward();
        optimizer.step();
        ++out.steps;
      }
    }
    out.gate->eval();
    return out;
  });
}

nn::FusionOutput apply_gate(nn::GatedFusion& gate, const GateRows& rows) {
  check_rows(rows, false);
  torch::NoGradGuard no_grad;
  const bool was_training = gate->is_training();
  gate->eval();
  auto out = gate->forward(rows.embeddings.to(torch::kFloat32), rows.new_logits.to(torch::kFloat32), rows.old_logits.to(torch::kFloat32));
  gate->train(was_training);
  return out;
}

void save_gate(const std::filesystem::path& dir, const std::vector<torch::Tensor>& parameters) {
  std::map<std::string, torch::Tensor> params;
  for (std::size_t i = 0; i < parameters.size(); ++i) params[fmt::format("gate.{}", i)] = parameters[i].detach();
  std::filesystem::create_directories(dir);
  nn::write_tensors(dir / "gate.safetensors", params, {{"format", "flipless-gate"}});
}

nn::FusionOutput cross_fit_gate(const GateRows& rows, const GateFitConfig& c, int folds) {
  check_rows(rows, true);
  const auto n = rows.size();
  if (folds < 2 || folds > n / 2) throw InputError(fmt::format("cross-fitting a gate: {} folds over {} rows (each fold needs 2 rows)", folds, n));
  const auto order = with_seed(c.seed ^ 0xbb67ae8584caa73bULL, [&] { return torch::randperm(n, torch::kLong); });
  nn::FusionOutput out;
  out.logits = torch::zeros({n, rows.new_logits.size(1)}, torch::kFloat32);
  out.gate = torch::zeros({n}, torch::kFloat32);
  for (int f = 0; f < folds; ++f) {
    const auto begin = n * f / folds, end = n * (f + 1) / folds;
    const auto held = order.slice(0, begin, end);
    const auto fit_index = torch::cat({order.slice(0, 0, begin), order.slice(0, end, n)});
    auto fold_config = c;
    fold_config.seed = c.seed + 1 + static_cast<std::uint64_t>(f);
    auto fitted = fit_gate(rows.subset(fit_index), fold_config);
    const auto fused = apply_gate(fitted.gate, rows.subset(held));
    out.logits.index_copy_(0, held, fused.logits);
    out.gate.index_copy_(0, held, fused.gate);
  }
  return out;
}

}  // namespace flipless::train
