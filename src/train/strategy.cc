#include "flipless/train/strategy.h"

#include <cmath>
#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <mutex>

#include "flipless/core/error.h"
#include "flipless/train/trainer.h"

namespace flipless::train {

namespace {

namespace F = torch::nn::functional;

class Vanilla : public CompatibilityStrategy {
 public:
  std::string name() const override { return "vanilla"; }
  torch::Tensor loss(const StrategyStep& step) override { return F::cross_entropy(step.output.logits, step.labels); }
};

class Distillation : public CompatibilityStrategy {
 public:
  explicit Distillation(DistillationConfig c) : c_(c) {
    if (c_.lambda < 0) throw ConfigError(fmt::format("distillation lambda must be >= 0, got {}", c_.lambda));
    if (!(c_.temperature > 0)) throw ConfigError(fmt::format("distillation temperature must be positive, got {}", c_.temperature));
  }
  std::string name() const override { return "distillation"; }
  torch::Tensor loss(const StrategyStep& step) override {
    const auto& l_new = step.output.logits;
    const auto ce = F::cross_entropy(l_new, step.labels);
    if (c_.lambda == 0) return ce;
    const auto old_logits = step.old_logits.detach();
    torch::Tensor mask;
    {
      torch::NoGradGuard no_grad;  // where the old model is more confident in the truth
      const auto y = step.labels.unsqueeze(1);
      const auto p_old = torch::softmax(old_logits, 1).gather(1, y).squeeze(1);
      const auto p_new = torch::softmax(l_new, 1).gather(1, y).squeeze(1);
      mask = (p_old > p_new).to(l_new.dtype());  // (batch,)
    }
    const double t = c_.temperature;
    const auto log_p_new = torch::log_softmax(l_new / t, 1);
    const auto p_old_t = torch::softmax(old_logits / t, 1);
    const auto kl = (p_old_t * (torch::log_softmax(old_logits / t, 1) - log_p_new)).sum(1);  // (batch,) KL(old || new)
    return ce + c_.lambda * (mask * kl).mean();
  }

 private:
  DistillationConfig c_;
};

class FocalDistillation : public CompatibilityStrategy {
 public:
  explicit FocalDistillation(FocalDistillationConfig c) : c_(std::move(c)) {
    if (c_.alpha < 0 || c_.beta < 0) throw ConfigError("focal distillation weights alpha and beta must be >= 0");
    if (c_.distance != "kl" && c_.distance != "l2") throw ConfigError(fmt::format("focal distillation distance '{}': expected kl or l2", c_.distance));
    if (!(c_.temperature > 0)) throw ConfigError(fmt::format("focal distillation temperature must be positive, got {}", c_.temperature));
  }
  std::string name() const override { return "focal_distillation"; }
  torch::Tensor loss(const StrategyStep& step) override {
    const auto& l_new = step.output.logits;
    const auto old_logits = step.old_logits.detach();
    const auto old_right = old_logits.argmax(1).eq(step.labels).to(l_new.dtype());  // (batch,)
    const auto weight = c_.alpha + c_.beta * old_right;                              // (batch,)
    torch::Tensor distance;
    if (c_.distance == "l2") {
      distance = (l_new - old_logits).pow(2).sum(1);  // (batch,)
    } else {
      const double t = c_.temperature;
      const auto p_old = torch::softmax(old_logits / t, 1);
      distance = (p_old * (torch::log_softmax(old_logits / t, 1) - torch::log_softmax(l_new / t, 1))).sum(1);
    }
    return F::cross_entropy(l_new, step.labels) + (weight * distance).mean();
  }

 private:
  FocalDistillationConfig c_;
};

// The gate's initial weights, drawn from a stream of its own (seeded by the unit's seed), leaving
// the shared CPU generator as it was: building the gate changes none of the new model's draws,
// so Gated Fusion's warm-up epochs are the vanilla model's, and a resumed run builds the same
// gate as an uninterrupted one.
nn::GatedFusion seeded_gate(const GatedFusionStrategyConfig& c) {
  if (c.embedding_dim <= 0) throw ConfigError("gated_fusion needs the embedding size");
  const auto saved = cpu_generator_state();
  {
    auto gen = at::detail::getDefaultCPUGenerator();  // the CPU generator only (torch::manual_seed would reseed GPUs too)
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(c.seed ^ 0x9e3779b97f4a7c15ULL);
  }
  nn::GatedFusion gate(c.embedding_dim, c.gate, c.num_labels);
  set_cpu_generator_state(saved);
  return gate;
}

class GatedFusionStrategy : public CompatibilityStrategy {
 public:
  explicit GatedFusionStrategy(const GatedFusionStrategyConfig& c) : c_(c), gate_(seeded_gate(c)), rng_(c.seed) {
    if (!(c_.drop_gate >= 0 && c_.drop_gate < 1)) throw ConfigError(fmt::format("drop-gate probability must be in [0, 1), got {}", c_.drop_gate));
    if (!(c_.lr2 > 0)) throw ConfigError(fmt::format("lr2 must be positive, got {}", c_.lr2));
    if (!(c_.gate_lr >= 0) || !std::isfinite(c_.gate_lr)) throw ConfigError(fmt::format("gate_lr must be >= 0, got {}", c_.gate_lr));
  }
  std::string name() const override {
    if (c_.gate_lr > 0) return "gated_fusion_gate_lr";
    return c_.gate.old_confidence ? "gated_fusion_confidence" : "gated_fusion";
  }

  bool fused_epoch(int epoch, int epochs) const { return !c_.warmup || epoch == epochs - 1; }

  torch::Tensor loss(const StrategyStep& step) override {
    if (!fused_epoch(step.epoch, step.epochs)) return F::cross_entropy(step.output.logits, step.labels);
    ++steps_;
    if (coin_(rng_) < c_.drop_gate) {  // drop gate: this step trains the new model alone
      ++dropped_;
      return F::cross_entropy(step.output.logits, step.labels);
    }
    const auto fused = gate_->forward(step.output.embedding, step.output.logits, step.old_logits.detach());
    return F::cross_entropy(fused.logits, step.labels);
  }

  std::vector<torch::Tensor> parameters() override { return gate_->parameters(); }

  std::optional<double> learning_rate(int epoch, int epochs) const override {
    if (c_.warmup && epoch == epochs - 1) return c_.lr2;
    return std::nullopt;
  }
  std::optional<double> parameters_learning_rate(int epoch, int epochs) const override {
    if (c_.gate_lr > 0 && fused_epoch(epoch, epochs)) return c_.gate_lr;
    return std::nullopt;
  }

  void train(bool on) override { gate_->train(on); }
  void to(const torch::Device& device) override { gate_->to(device); }

  StrategyOutput infer(const nn::ModelOutput& output, const torch::Tensor& old_logits) override {
    const auto fused = gate_->forward(output.embedding, output.logits, old_logits);
    if (c_.drop_old_at_inference) return {output.logits, fused.gate};
    return {fused.logits, fused.gate};
  }

  // Steps of fused epochs so far, and how many of them dropped the gate.
  std::int64_t steps() const { return steps_; }
  std::int64_t dropped() const { return dropped_; }
  nn::GatedFusion& gate() { return gate_; }

 private:
  GatedFusionStrategyConfig c_;
  nn::GatedFusion gate_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> coin_{0.0, 1.0};
  std::int64_t steps_ = 0, dropped_ = 0;
};

class Elodi : public CompatibilityStrategy {
 public:
  explicit Elodi(ElodiConfig c) : c_(c) {
    if (c_.lambda < 0) throw ConfigError(fmt::format("elodi lambda must be >= 0, got {}", c_.lambda));
    if (c_.xi < 0) throw ConfigError(fmt::format("elodi xi must be >= 0, got {}", c_.xi));
  }
  std::string name() const override { return "elodi"; }
  torch::Tensor loss(const StrategyStep& step) override {
    const auto& l_new = step.output.logits;
    const auto ce = F::cross_entropy(l_new, step.labels);
    if (c_.lambda == 0) return ce;
    const auto d = l_new - step.old_logits.detach();
    const auto inhibited = (d.abs() > c_.xi).to(d.dtype()) * d.pow(2);
    return ce + c_.lambda * inhibited.sum(1).mean();
  }

 private:
  ElodiConfig c_;
};

}  // namespace

bool same_architecture(nn::ClassifierModule& a, nn::ClassifierModule& b) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  if (pa.size() != pb.size()) return false;
  for (const auto& p : pa) {
    const auto* q = pb.find(p.key());
    if (q == nullptr || q->sizes() != p.value().sizes()) return false;
  }
  return true;
}

void interpolate_parameters(nn::ClassifierModule& out, nn::ClassifierModule& old_model, nn::ClassifierModule& new_model, double alpha) {
  if (!(alpha >= 0 && alpha <= 1)) throw ConfigError(fmt::format("interpolation weight must be in [0, 1], got {}", alpha));
  const auto po = old_model.named_parameters(), pn = new_model.named_parameters();
  auto dst = out.named_parameters();
  if (po.size() != pn.size() || dst.size() != pn.size()) {
    throw ModelError(fmt::format("weight interpolation needs one architecture: {} vs {} parameters", po.size(), pn.size()));
  }
  torch::NoGradGuard no_grad;
  for (auto& p : dst) {
    const auto* a = po.find(p.key());
    const auto* b = pn.find(p.key());
    if (a == nullptr || b == nullptr) throw ModelError(fmt::format("weight interpolation: parameter '{}' is not in both models", p.key()));
    if (a->sizes() != b->sizes() || a->sizes() != p.value().sizes()) {
      throw ModelError(fmt::format("weight interpolation: parameter '{}' has shapes {} and {}", p.key(), fmt::join(a->sizes(), "x"),
                                   fmt::join(b->sizes(), "x")));
    }
    p.value().copy_((1.0 - alpha) * *a + alpha * *b);
  }
  auto bo = out.named_buffers();
  const auto bn = new_model.named_buffers();
  for (auto& b : bo) {
    if (const auto* src = bn.find(b.key())) b.value().copy_(*src);
  }
}

std::unique_ptr<CompatibilityStrategy> make_strategy(const StrategyConfig& config) {
  struct Maker {
    std::unique_ptr<CompatibilityStrategy> operator()(const VanillaConfig&) const { return std::make_unique<Vanilla>(); }
    std::unique_ptr<CompatibilityStrategy> operator()(const DistillationConfig& c) const { return std::make_unique<Distillation>(c); }
    std::unique_ptr<CompatibilityStrategy> operator()(const FocalDistillationConfig& c) const { return std::make_unique<FocalDistillation>(c); }
    std::unique_ptr<CompatibilityStrategy> operator()(const GatedFusionStrategyConfig& c) const {
      return std::make_unique<GatedFusionStrategy>(c);
    }
    std::unique_ptr<CompatibilityStrategy> operator()(const ElodiConfig& c) const { return std::make_unique<Elodi>(c); }
  };
  return std::visit(Maker{}, config);
}

const std::vector<MethodInfo>& registered_methods() {
  static const std::vector<MethodInfo> kMethods = [] {
    std::vector<MethodInfo> out;
    for (const auto* d : methods::registry()) out.push_back({d->name, d->summary, d->trains()});
    return out;
  }();
  return kMethods;
}

StrategyConfig strategy_config(const methods::Descriptor& method, const std::map<std::string, double>& numbers,
                               const std::map<std::string, std::string>& words, const StrategyContext& context) {
  auto number = [&](const char* key) {
    const auto it = numbers.find(key);
    if (it == numbers.end()) throw ConfigError(fmt::format("{}: parameter {} has no value", method.name, key));
    return it->second;
  };
  auto word = [&](const char* key) {
    const auto it = words.find(key);
    if (it == words.end()) throw ConfigError(fmt::format("{}: parameter {} has no value", method.name, key));
    return it->second;
  };
  switch (method.strategy) {
    case methods::Strategy::kDistillation:
      return DistillationConfig{number("lambda"), number("temperature")};
    case methods::Strategy::kFocalDistillation:
      return FocalDistillationConfig{number("alpha"), number("beta"), word("distance"), number("temperature")};
    case methods::Strategy::kElodi:
      return ElodiConfig{number("lambda"), number("xi")};
    case methods::Strategy::kGatedFusion: {
      GatedFusionStrategyConfig gf;
      gf.gate.temperature = number("temperature");
      gf.gate.dropout = number("dropout");
      gf.gate.stop_gradient = number("stop_gradient") != 0;
      gf.gate.old_confidence = method.old_confidence;
      gf.drop_gate = number("drop_gate");
      if (numbers.count("lr2")) gf.lr2 = number("lr2");  // absent without warm-up: unused
      if (numbers.count("gate_lr")) gf.gate_lr = number("gate_lr");  // gated_fusion_gate_lr only
      gf.warmup = number("warmup") != 0;
      gf.seed = context.seed;
      gf.embedding_dim = context.embedding_dim;
      gf.num_labels = context.num_labels;
      return gf;
    }
    case methods::Strategy::kNone:
      break;
  }
  throw ConfigError(fmt::format("method {} is not a training strategy", method.name));
}

GateFitConfig heldout_gate_config(const std::map<std::string, double>& numbers, std::uint64_t seed) {
  auto number = [&](const char* key) {
    const auto it = numbers.find(key);
    if (it == numbers.end()) throw ConfigError(fmt::format("gated_fusion_heldout: parameter {} has no value", key));
    return it->second;
  };
  GateFitConfig g;
  g.gate.temperature = number("temperature");
  g.gate.dropout = number("dropout");
  g.gate.old_confidence = number("confidence") != 0;
  g.lr = number("gate_lr");
  g.weight_decay = number("weight_decay");
  g.keep_weight = number("keep_weight");
  g.epochs = static_cast<int>(number("epochs"));
  g.seed = seed;
  return g;
}

}  // namespace flipless::train
