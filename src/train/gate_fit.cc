#include "flipless/train/gate_fit.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/nn/functional/loss.h>
#include <torch/optim/adamw.h>

#include <ATen/CPUGeneratorImpl.h>
#include <cmath>
#include <map>
#include <mutex>
#include <regex>
#include <string>

#include "flipless/core/error.h"
#include "flipless/io/safetensors.h"
#include "flipless/methods/method.h"
#include "flipless/nn/tensor_io.h"
#include "flipless/train/cpu_math.h"
#include "flipless/train/device.h"
#include "flipless/train/saved_model.h"
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

std::vector<float> gate_values(nn::GatedFusion& gate, std::span<const float> embeddings, std::span<const float> new_logits,
                               std::span<const float> old_logits, std::int64_t n) {
  if (n == 0) return {};
  torch::NoGradGuard no_grad;
  const auto dim = static_cast<std::int64_t>(embeddings.size()) / n, k = static_cast<std::int64_t>(new_logits.size()) / n;
  const auto e = torch::from_blob(const_cast<float*>(embeddings.data()), {n, dim});
  const auto a = (gate->config().old_confidence ? gate->gate(e, torch::from_blob(const_cast<float*>(new_logits.data()), {n, k}),
                                                             torch::from_blob(const_cast<float*>(old_logits.data()), {n, k}))
                                                : gate->gate(e))
                     .contiguous();
  return {a.data_ptr<float>(), a.data_ptr<float>() + n};
}

namespace {

// T from the card: "temperature" (flipless train) or "temperature=X" inside "setting" (runner).
double temperature_of(const nlohmann::json& card, const std::filesystem::path& dir) {
  const auto where = (dir / kModelCardName).string();
  const auto* method = card.contains("method") && card.at("method").is_object() ? methods::find(card.at("method").value("name", "")) : nullptr;
  if (method == nullptr || !method->gated) {
    throw ModelError(fmt::format("{}: field 'method': not a Gated Fusion model (train one with --method gated_fusion)", where));
  }
  const auto& m = card.at("method");
  if (m.contains("temperature") && m.at("temperature").is_number()) return m.at("temperature").get<double>();
  std::smatch match;
  const std::string setting = m.value("setting", "");
  static const std::regex pattern(R"((?:^|\s)temperature=([0-9.eE+-]+))");
  if (std::regex_search(setting, match, pattern)) return std::stod(match[1].str());
  throw ModelError(fmt::format("{}: field 'method.temperature' is missing", where));
}

// Whether the model's gate also reads the old and new probabilities (nn::GatedFusionConfig::
// old_confidence): the method's own (gated_fusion_confidence) or its setting's
// (gated_fusion_heldout: "confidence": true from flipless train, confidence=1 from the runner).
bool reads_confidence(const nlohmann::json& card) {
  const auto& m = card.at("method");
  if (methods::find(m.value("name", ""))->old_confidence) return true;
  if (m.contains("confidence") && m.at("confidence").is_boolean()) return m.at("confidence").get<bool>();  // flipless train's card
  static const std::regex pattern(R"((?:^|\s)confidence=1(?:\s|$))");
  return std::regex_search(m.value("setting", ""), pattern);
}

}  // namespace

SavedGate load_gate(const std::filesystem::path& dir, std::int64_t num_labels) {
  const auto card = read_model_card(dir);
  SavedGate out;
  out.temperature = temperature_of(card, dir);
  out.old_confidence = reads_confidence(card);
  const auto gate_path = dir / "gate.safetensors";
  if (!std::filesystem::exists(gate_path)) throw ModelError(fmt::format("{}: missing; a Gated Fusion model folder holds its gate there", gate_path.string()));
  const auto file = io::SafetensorsFile::open(gate_path);
  const auto first = nn::read_tensor(file, "gate.0");  // (hidden, inputs): the gate's first Linear
  if (first.dim() != 2) throw ModelError(fmt::format("{}: tensor 'gate.0' should be 2-d, is {}-d", gate_path.string(), first.dim()));
  nn::GatedFusionConfig gc;
  gc.hidden = first.size(0);
  gc.temperature = out.temperature;
  gc.old_confidence = out.old_confidence;
  out.dim = first.size(1) - (gc.old_confidence ? 2 * num_labels : 0);
  if (out.dim < 1) {
    throw ModelError(fmt::format("{}: tensor 'gate.0' reads {} inputs, too few for a gate that also reads 2 x {} probabilities", gate_path.string(),
                                 first.size(1), num_labels));
  }
  out.gate = nn::GatedFusion(out.dim, gc, num_labels);
  torch::NoGradGuard no_grad;
  auto params = out.gate->parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    const auto t = nn::read_tensor(file, fmt::format("gate.{}", i)).to(torch::kFloat32);
    if (t.sizes() != params[i].sizes()) {
      throw ModelError(fmt::format("{}: tensor 'gate.{}' has shape {}, the gate needs {}", gate_path.string(), i, fmt::join(t.sizes(), "x"),
                                   fmt::join(params[i].sizes(), "x")));
    }
    params[i].copy_(t);
  }
  out.gate->eval();
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
