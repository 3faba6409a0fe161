#include "flipless/train/trainer.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <mutex>
#include <numeric>
#include <random>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>

#include <nlohmann/json.hpp>

#include "flipless/core/error.h"
#include "flipless/core/file.h"
#include "flipless/io/safetensors.h"
#include "flipless/nn/tensor_io.h"

namespace flipless::train {

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Groups rows of similar length into the same batch, so little of a batch is padding: within
// windows of 50 batches of the shuffled order, rows are sorted by cost and cut into batches,
// and the batches are shuffled again. Every process computes the same order.
void bucket_by_cost(std::vector<std::int64_t>& order, const InputSource& data, std::int64_t batch, std::mt19937_64& rng) {
  const auto window = static_cast<std::size_t>(batch * 50);
  for (std::size_t start = 0; start < order.size(); start += window) {
    const auto end = order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + window));
    std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(start), end,
                     [&](std::int64_t a, std::int64_t b) { return data.cost(a) < data.cost(b); });
  }
  std::vector<std::vector<std::int64_t>> batches;
  for (std::size_t start = 0; start < order.size(); start += static_cast<std::size_t>(batch)) {
    batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(start),
                         order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + static_cast<std::size_t>(batch))));
  }
  // Keep a short batch last, where the loop expects it.
  const bool short_last = !batches.empty() && batches.back().size() < static_cast<std::size_t>(batch);
  std::shuffle(batches.begin(), batches.end() - (short_last ? 1 : 0), rng);
  order.clear();
  for (const auto& b : batches) order.insert(order.end(), b.begin(), b.end());
}

std::vector<torch::Tensor> gradients_of(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  return grads;
}

bool no_decay(const std::string& name) {
  return name.find("bias") != std::string::npos || name.find("norm") != std::string::npos;
}
}  // namespace

void TrainConfig::validate() const {
  if (epochs < 1) throw ConfigError(fmt::format("epochs must be at least 1, got {}", epochs));
  if (batch_size < 1 || eval_batch_size < 1) throw ConfigError("batch sizes must be at least 1");
  if (!(learning_rate > 0) || !std::isfinite(learning_rate)) throw ConfigError(fmt::format("learning rate must be positive and finite, got {}", learning_rate));
  if (!(weight_decay >= 0) || !std::isfinite(weight_decay)) throw ConfigError("weight decay must be finite and >= 0");
  if (!(warmup_ratio >= 0 && warmup_ratio < 1)) throw ConfigError("warm-up ratio must be in [0, 1)");
  if (!(max_grad_norm >= 0) || !std::isfinite(max_grad_norm)) throw ConfigError("max grad norm must be finite and >= 0");
  check_precision(device, precision);
}

torch::Tensor cross_entropy_loss(const StepInputs& step) { return torch::nn::functional::cross_entropy(step.output.logits, step.labels); }

models::ClassifierOutput as_classifier_output(const Predictions& p) {
  models::ClassifierOutput out;
  out.rows = static_cast<std::size_t>(p.logits.size(0));
  out.num_labels = static_cast<std::size_t>(p.logits.size(1));
  out.dim = static_cast<std::size_t>(p.embeddings.size(1));
  const auto l = p.logits.contiguous(), e = p.embeddings.contiguous();
  out.logits.assign(l.data_ptr<float>(), l.data_ptr<float>() + l.numel());
  out.embeddings.assign(e.data_ptr<float>(), e.data_ptr<float>() + e.numel());
  return out;
}

double accuracy_of(const torch::Tensor& logits, const torch::Tensor& labels) {
  return logits.argmax(1).eq(labels).to(torch::kFloat64).mean().item<double>();
}

namespace {

// What a caller adds to the plain loop: the strategy's own parameters, per-epoch learning
// rates, its train/eval switch, and how validation accuracy is measured.
struct LoopHooks {
  std::vector<torch::Tensor> extra_parameters;
  std::function<std::optional<double>(int epoch)> learning_rate;
  std::function<std::optional<double>(int epoch)> extra_learning_rate;  // extra_parameters' own, when set
  std::function<void(bool)> set_training;
  std::function<void(const torch::Device&)> to_device;
  std::function<double()> validate;
};

// Every trainable parameter's gradient undefined: a parameter the step's loss does not reach keeps
// an undefined gradient, and AdamW skips it (no moment decay, no weight decay). libtorch 1.13's
// zero_grad() would leave zeros, which AdamW steps on; 2.x resets to undefined as here.
void clear_gradients(const std::vector<torch::Tensor>& params) {
  for (const auto& p : params) {
    if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
  }
}

// Data parallel: which parameters some process's loss reached this step (the same answer on
// every process), so all step the same parameters.
std::vector<bool> touched_anywhere(const std::vector<torch::Tensor>& params, ProcessGroup& group) {
  auto flags = torch::zeros({static_cast<std::int64_t>(params.size())}, torch::kFloat64);
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (params[i].grad().defined()) flags[static_cast<std::int64_t>(i)] = 1.0;
  }
  const auto on_device = flags.to(params.empty() ? torch::Device(torch::kCPU) : params.front().device());
  group.average({on_device});
  const auto back = on_device.to(torch::kCPU);
  std::vector<bool> out(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) out[i] = back[static_cast<std::int64_t>(i)].item<double>() > 0;
  return out;
}

std::string archive_bytes(const torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

void load_archive_bytes(torch::optim::Optimizer& optimizer, const std::string& bytes, const torch::Device& device) {
  torch::serialize::InputArchive archive;
  std::istringstream in(bytes);
  archive.load_from(in, device);
  optimizer.load(archive);
}

std::string rng_text(const std::mt19937_64& rng) {
  std::ostringstream out;
  out << rng;
  return out.str();
}

std::map<std::string, torch::Tensor> model_tensors(nn::ClassifierModule& model) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : model.named_parameters()) out[p.key()] = p.value().detach().to(torch::kCPU).clone();
  for (const auto& b : model.named_buffers()) out["buffer:" + b.key()] = b.value().detach().to(torch::kCPU).clone();
  return out;
}

void load_model_tensors(nn::ClassifierModule& model, const std::map<std::string, torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  std::size_t used = 0;
  auto take = [&](const std::string& key, torch::Tensor& target) {
    const auto it = tensors.find(key);
    if (it == tensors.end()) throw InputError(fmt::format("training state: no tensor '{}' for this model", key));
    if (it->second.sizes() != target.sizes()) {
      throw InputError(fmt::format("training state: tensor '{}' has shape [{}], the model [{}]", key, fmt::join(it->second.sizes(), ", "),
                                   fmt::join(target.sizes(), ", ")));
    }
    target.copy_(it->second);
    ++used;
  };
  for (auto& p : model.named_parameters()) take(p.key(), p.value());
  for (auto& b : model.named_buffers()) take("buffer:" + b.key(), b.value());
  if (used != tensors.size()) throw InputError(fmt::format("training state: {} tensors, the model has {}", tensors.size(), used));
}

TrainResult run_loop(nn::ClassifierModule& model, const InputSource& train_data, const TrainConfig& config, const LossFn& loss,
                     const TrainObserver& observer, const LoopHooks& hooks) {
  config.validate();
  if (train_data.size() == 0) throw InputError("no training examples");
  if (train_data.labels().lt(0).any().item<bool>()) throw InputError("training data has unlabelled examples");
  torch::manual_seed(config.seed);
  const torch::Device device = config.device;
  model.to(device);  // parameters keep their handles: the caller's tensors follow
  if (hooks.to_device) hooks.to_device(device);
  LossScaler scaler(config.precision == Precision::kFloat16);

  // The model's parameters in two groups (weight decay, none on biases and norms); a strategy's
  // own parameters in an optimizer of their own, so the model's optimizer is the same object
  // with or without a strategy (a vanilla run's state continues a Gated Fusion run).
  std::vector<torch::Tensor> decay, plain;
  for (const auto& p : model.named_parameters()) {
    if (!p.value().requires_grad()) continue;
    (no_decay(p.key()) ? plain : decay).push_back(p.value());
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(config.learning_rate).weight_decay(config.weight_decay)));
  groups.emplace_back(plain, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(config.learning_rate).weight_decay(0.0)));
  torch::optim::AdamW optimizer(std::move(groups));
  std::optional<torch::optim::AdamW> extra_optimizer;
  if (!hooks.extra_parameters.empty()) {
    extra_optimizer.emplace(hooks.extra_parameters, torch::optim::AdamWOptions(config.learning_rate).weight_decay(config.weight_decay));
  }

  const std::int64_t n = train_data.size();
  const int world = config.group ? config.group->world_size() : 1;
  const int rank = config.group ? config.group->rank() : 0;
  const std::int64_t global_batch = config.batch_size * world;
  const std::int64_t steps_per_epoch = (n + global_batch - 1) / global_batch;
  std::vector<torch::Tensor> trainable;
  for (const auto& p : model.parameters()) {
    if (p.requires_grad()) trainable.push_back(p);
  }
  trainable.insert(trainable.end(), hooks.extra_parameters.begin(), hooks.extra_parameters.end());
  const std::int64_t total_steps = steps_per_epoch * config.epochs;
  const auto warmup = static_cast<std::int64_t>(std::floor(config.warmup_ratio * static_cast<double>(total_steps)));
  auto lr_at = [&](std::int64_t step) {  // step is 0-based; linear warm-up, then linear decay to 0
    if (step < warmup) return config.learning_rate * static_cast<double>(step + 1) / static_cast<double>(warmup);
    return config.learning_rate * static_cast<double>(total_steps - step) / static_cast<double>(std::max<std::int64_t>(1, total_steps - warmup));
  };

  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(config.seed);
  bool bucketed = false;  // only sources whose rows differ in cost (token counts) are bucketed
  for (std::int64_t i = 1; i < n && !bucketed; ++i) bucketed = train_data.cost(i) != train_data.cost(0);
  TrainResult result;
  std::int64_t global_step = 0;
  int first_epoch = 0;
  if (config.resume != nullptr) {
    const TrainState& st = *config.resume;
    if (st.epochs_done < 1 || st.epochs_done >= config.epochs) {
      throw ConfigError(fmt::format("a training state after {} epochs cannot continue a {}-epoch run", st.epochs_done, config.epochs));
    }
    if (st.order.numel() != n || st.global_step != steps_per_epoch * st.epochs_done) {
      throw InputError(fmt::format("the training state is for {} rows and {} steps, this run has {} rows and {} steps per epoch",
                                   st.order.numel(), st.global_step, n, steps_per_epoch));
    }
    load_model_tensors(model, st.model);
    load_archive_bytes(optimizer, st.optimizer, device);
    const auto o = st.order.to(torch::kInt64).contiguous();
    order.assign(o.data_ptr<std::int64_t>(), o.data_ptr<std::int64_t>() + n);
    std::istringstream(st.order_rng) >> rng;
    set_cpu_generator_state(st.torch_rng);
    global_step = st.global_step;
    first_epoch = st.epochs_done;
    result.epochs = st.history;
  }
  if (config.group) config.group->broadcast_from_root(trainable);  // everyone starts from rank 0's weights
  for (int epoch = first_epoch; epoch < config.epochs; ++epoch) {
    model.train();
    if (hooks.set_training) hooks.set_training(true);
    const std::optional<double> epoch_lr = hooks.learning_rate ? hooks.learning_rate(epoch) : std::nullopt;
    const std::optional<double> extra_epoch_lr = hooks.extra_learning_rate ? hooks.extra_learning_rate(epoch) : std::nullopt;
    std::shuffle(order.begin(), order.end(), rng);
    if (bucketed) bucket_by_cost(order, train_data, global_batch, rng);
    const auto start = Clock::now();
    double loss_sum = 0;
    std::int64_t seen = 0;
    const std::int64_t skipped_before = scaler.skipped();
    for (std::int64_t s = 0; s < steps_per_epoch; ++s) {
      // This process's share of the global batch; every process shuffles alike (same seed).
      const std::int64_t first = std::min(n, s * global_batch + rank * config.batch_size);
      const std::int64_t last = std::min(n, first + config.batch_size);
      const std::vector<std::int64_t> rows(order.begin() + first, order.begin() + last);
      const double lr = epoch_lr ? *epoch_lr : lr_at(global_step);
      for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      if (extra_optimizer) {
        for (auto& group : extra_optimizer->param_groups()) {
          static_cast<torch::optim::AdamWOptions&>(group.options()).lr(extra_epoch_lr ? *extra_epoch_lr : lr);
        }
      }
      clear_gradients(trainable);
      torch::Tensor value;
      if (!rows.empty()) {
        const auto host_rows = torch::tensor(rows, torch::kInt64);
        const auto row_tensor = host_rows.to(device);
        const auto labels = train_data.labels().index_select(0, host_rows).to(device);
        {
          // Forward and loss under autocast (16-bit matrix products), backward outside it; the
          // loss sees float32 outputs.
          const AutocastGuard autocast(device, config.precision);
          nn::ModelOutput out = model.forward(to_device(train_data.batch(rows), device));
          out.logits = out.logits.to(torch::kFloat32);
          out.embedding = out.embedding.to(torch::kFloat32);
          value = loss(StepInputs{out, labels, row_tensor, epoch, config.epochs});
        }
        scaler.scale(value).backward();
      }
      if (config.group) {
        // Weight each process's mean gradient by its share of this step's examples, so the
        // average is the mean over the whole global batch, short last batches included. A
        // process without rows (a short last step), or whose loss did not reach a parameter
        // another process's did, joins with zeros; a parameter no process reached stays
        // without a gradient everywhere and is not stepped.
        const auto touched = touched_anywhere(trainable, *config.group);
        const std::int64_t step_rows = std::min(n, (s + 1) * global_batch) - s * global_batch;
        const double scale = static_cast<double>(rows.size()) * world / static_cast<double>(step_rows);
        for (std::size_t i = 0; i < trainable.size(); ++i) {
          auto& p = trainable[i];
          if (!touched[i]) continue;
          if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
          p.mutable_grad().mul_(scale);
        }
        config.group->average(gradients_of(trainable));
      }
      // fp16: gradients back to their true size; a step with inf/NaN gradients is skipped (every
      // process sees the same averaged gradients, so all skip together).
      const bool finite = scaler.unscale(trainable);
      if (finite) {
        if (config.max_grad_norm > 0) torch::nn::utils::clip_grad_norm_(trainable, config.max_grad_norm);
        optimizer.step();
        if (extra_optimizer) extra_optimizer->step();
      }
      scaler.update(finite);
      ++global_step;
      if (rows.empty()) continue;
      const auto b = static_cast<std::int64_t>(rows.size());
      loss_sum += value.item<double>() * static_cast<double>(b);
      seen += b;
      if (observer.on_step) observer.on_step(epoch + 1, s + 1, steps_per_epoch, loss_sum / static_cast<double>(seen), static_cast<double>(seen) / since(start));
    }
    EpochStats stats;
    stats.epoch = epoch + 1;
    stats.seconds = since(start);
    stats.skipped_steps = scaler.skipped() - skipped_before;
    const double total_loss = config.group ? config.group->sum(loss_sum) : loss_sum;
    const double total_seen = config.group ? config.group->sum(static_cast<double>(seen)) : static_cast<double>(seen);
    stats.train_loss = total_loss / total_seen;
    stats.examples_per_second = total_seen / stats.seconds;
    if (!std::isfinite(stats.train_loss)) {
      throw ConfigError(fmt::format("epoch {}: the training loss is not finite ({}); lower the learning rate", epoch + 1, stats.train_loss));
    }
    if (hooks.validate) stats.validation_accuracy = hooks.validate();
    if (observer.on_epoch) observer.on_epoch(stats);
    result.epochs.push_back(stats);
    if (config.state_after_epochs == epoch + 1 && observer.on_state) {
      TrainState st;
      st.epochs_done = epoch + 1;
      st.global_step = global_step;
      st.history = result.epochs;
      st.model = model_tensors(model);
      st.optimizer = archive_bytes(optimizer);
      st.order = torch::tensor(order, torch::kInt64);
      st.order_rng = rng_text(rng);
      st.torch_rng = cpu_generator_state();
      observer.on_state(st);
      if (config.stop_after_state) break;
    }
  }
  if (extra_optimizer) {
    // AdamW keeps state only for parameters it stepped; the rest were never stepped.
    for (const auto& entry : extra_optimizer->state()) {
      result.strategy_parameter_steps.push_back(static_cast<const torch::optim::AdamWParamState&>(*entry.second).step());
    }
    result.strategy_parameter_steps.resize(hooks.extra_parameters.size(), 0);
    std::sort(result.strategy_parameter_steps.begin(), result.strategy_parameter_steps.end());
  }
  return result;
}

}  // namespace

TrainResult train(nn::ClassifierModule& model, const InputSource& train_data, const InputSource* validation,
                  const TrainConfig& config, const LossFn& loss, const TrainObserver& observer) {
  LoopHooks hooks;
  if (validation != nullptr && validation->size() > 0) {
    hooks.validate = [&] {
      return accuracy_of(predict(model, *validation, config.eval_batch_size, {}, config.precision).logits, validation->labels());
    };
  }
  return run_loop(model, train_data, config, loss, observer, hooks);
}

TrainResult train_with_strategy(nn::ClassifierModule& model, CompatibilityStrategy& strategy, const InputSource& train_data,
                                const torch::Tensor& old_logits, const InputSource* validation,
                                const torch::Tensor& validation_old_logits, const TrainConfig& config,
                                const TrainObserver& observer) {
  if (old_logits.dim() != 2 || old_logits.size(0) != train_data.size()) {
    throw InputError(fmt::format("old logits have shape {}, expected ({}, num_labels): one row per training example",
                                 fmt::format("{}", fmt::join(old_logits.sizes(), "x")), train_data.size()));
  }
  const auto old_constant = old_logits.detach().to(config.device, torch::kFloat32);
  LossFn loss = [&](const StepInputs& step) {
    const auto old_rows = old_constant.index_select(0, step.rows);  // (batch, k)
    return strategy.loss(StrategyStep{step.output, step.labels, old_rows, step.epoch, step.epochs});
  };
  LoopHooks hooks;
  hooks.extra_parameters = strategy.parameters();
  hooks.learning_rate = [&](int epoch) { return strategy.learning_rate(epoch, config.epochs); };
  hooks.extra_learning_rate = [&](int epoch) { return strategy.parameters_learning_rate(epoch, config.epochs); };
  hooks.set_training = [&](bool on) { strategy.train(on); };
  hooks.to_device = [&](const torch::Device& device) { strategy.to(device); };
  if (validation != nullptr && validation->size() > 0) {
    hooks.validate = [&] {
      return accuracy_of(
          predict_with_strategy(model, strategy, *validation, validation_old_logits, config.eval_batch_size, config.precision).logits,
          validation->labels());
    };
  }
  return run_loop(model, train_data, config, loss, observer, hooks);
}

Predictions predict_with_strategy(nn::ClassifierModule& model, CompatibilityStrategy& strategy, const InputSource& data,
                                  const torch::Tensor& old_logits, std::int64_t batch_size, Precision precision) {
  if (old_logits.dim() != 2 || old_logits.size(0) != data.size()) {
    throw InputError(fmt::format("old logits have {} rows, the data {}", old_logits.size(0), data.size()));
  }
  const bool was_training = model.is_training();
  const torch::Device device = device_of(model);
  model.eval();
  strategy.to(device);
  strategy.train(false);
  torch::InferenceMode guard;
  const AutocastGuard autocast(device, precision);
  Predictions out;
  const std::int64_t n = data.size();
  for (std::int64_t start = 0; start < n; start += batch_size) {
    std::vector<std::int64_t> rows(static_cast<std::size_t>(std::min(n, start + batch_size) - start));
    std::iota(rows.begin(), rows.end(), start);
    const auto index = torch::tensor(rows, torch::kInt64);
    const nn::ModelOutput o = model.forward(to_device(data.batch(rows), device));
    StrategyOutput s = strategy.infer(o, old_logits.index_select(0, index).to(device, torch::kFloat32));
    s.logits = s.logits.to(torch::kCPU, torch::kFloat32);
    if (s.gate.defined()) s.gate = s.gate.to(torch::kCPU, torch::kFloat32);
    const auto embedding = o.embedding.to(torch::kCPU, torch::kFloat32);
    if (!out.logits.defined()) {
      out.logits = torch::empty({n, s.logits.size(1)});
      out.embeddings = torch::empty({n, embedding.size(1)});
      if (s.gate.defined()) out.gates = torch::empty({n});
    }
    out.logits.index_copy_(0, index, s.logits);
    out.embeddings.index_copy_(0, index, embedding);
    if (s.gate.defined()) out.gates.index_copy_(0, index, s.gate);
  }
  model.train(was_training);
  strategy.train(was_training);
  return out;
}

Predictions predict(nn::ClassifierModule& model, const InputSource& data, std::int64_t batch_size,
                    const std::function<void(std::int64_t, std::int64_t)>& progress, Precision precision) {
  const std::int64_t n = data.size();
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  // Similar lengths together: little padding, same results (padding is masked).
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return data.cost(a) < data.cost(b); });
  const bool was_training = model.is_training();
  const torch::Device device = device_of(model);
  model.eval();
  torch::InferenceMode guard;
  const AutocastGuard autocast(device, precision);
  Predictions out;
  for (std::int64_t start = 0; start < n; start += batch_size) {
    const std::vector<std::int64_t> rows(order.begin() + start, order.begin() + std::min(n, start + batch_size));
    const nn::ModelOutput o = to_host_float(model.forward(to_device(data.batch(rows), device)));
    if (!out.logits.defined()) {
      out.logits = torch::empty({n, o.logits.size(1)});
      out.embeddings = torch::empty({n, o.embedding.size(1)});
    }
    const auto index = torch::tensor(rows, torch::kInt64);
    out.logits.index_copy_(0, index, o.logits);
    out.embeddings.index_copy_(0, index, o.embedding);
    if (progress) progress(std::min(n, start + batch_size), n);
  }
  model.train(was_training);
  return out;
}

}  // namespace flipless::train

namespace flipless::train {

torch::Tensor cpu_generator_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_cpu_generator_state(const torch::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

namespace {
const char* kStateFormat = "flipless-train-state-1";
}  // namespace

void TrainState::save(const std::filesystem::path& dir) const {
  namespace fs = std::filesystem;
  const fs::path tmp = dir.string() + ".partial";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, t] : model) tensors["model." + name] = t;
  tensors["order"] = order;
  tensors["torch_rng"] = torch_rng;
  nn::write_tensors(tmp / "tensors.safetensors", tensors, {{"format", kStateFormat}});
  core::write_file_atomic(tmp / "optimizer.pt", optimizer);
  nlohmann::json history_json = nlohmann::json::array();
  for (const auto& e : history) {
    nlohmann::json j = {{"epoch", e.epoch}, {"train_loss", e.train_loss}, {"examples_per_second", e.examples_per_second},
                        {"seconds", e.seconds}, {"skipped_steps", e.skipped_steps}};
    if (e.validation_accuracy) j["validation_accuracy"] = *e.validation_accuracy;
    history_json.push_back(j);
  }
  const nlohmann::json j = {{"format", kStateFormat}, {"epochs_done", epochs_done}, {"global_step", global_step},
                            {"order_rng", order_rng}, {"history", history_json}};
  core::write_file_atomic(tmp / "state.json", j.dump(1));
  fs::remove_all(dir);
  fs::rename(tmp, dir);
}

TrainState TrainState::load(const std::filesystem::path& dir) {
  const auto json_path = dir / "state.json";
  TrainState st;
  try {
    const auto j = nlohmann::json::parse(core::InputFile::open(json_path).bytes());
    if (j.value("format", "") != kStateFormat) throw InputError(fmt::format("{}: field 'format': not a flipless training state", json_path.string()));
    st.epochs_done = j.at("epochs_done").get<int>();
    st.global_step = j.at("global_step").get<std::int64_t>();
    st.order_rng = j.at("order_rng").get<std::string>();
    for (const auto& e : j.at("history")) {
      EpochStats s;
      s.epoch = e.at("epoch").get<int>();
      s.train_loss = e.at("train_loss").get<double>();
      s.examples_per_second = e.at("examples_per_second").get<double>();
      s.seconds = e.at("seconds").get<double>();
      s.skipped_steps = e.at("skipped_steps").get<std::int64_t>();
      if (e.contains("validation_accuracy")) s.validation_accuracy = e.at("validation_accuracy").get<double>();
      st.history.push_back(s);
    }
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{}: {}", json_path.string(), e.what()));
  }
  const auto file = io::SafetensorsFile::open(dir / "tensors.safetensors");
  for (const auto& info : file.tensors()) {
    if (info.name.rfind("model.", 0) == 0) st.model[info.name.substr(6)] = nn::read_tensor(file, info.name);
  }
  st.order = nn::read_tensor(file, "order");
  st.torch_rng = nn::read_tensor(file, "torch_rng");
  st.optimizer = std::string(core::InputFile::open(dir / "optimizer.pt").bytes());
  return st;
}

}  // namespace flipless::train
