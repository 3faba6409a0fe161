// flipless train / predict / models: real classifiers on this machine's CPUs (or a GPU build).
#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <fmt/format.h>
#include <functional>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <thread>

#include "commands.h"
#include "flipless/core/error.h"
#include "flipless/core/file.h"
#include "flipless/core/hash.h"
#include "flipless/data/predictions.h"
#include "flipless/data/registry.h"
#include "flipless/data/split.h"
#include "flipless/models/fasttext_classifier.h"
#include "flipless/io/safetensors.h"
#include "flipless/methods/method.h"
#include "flipless/models/logits_file_classifier.h"
#include "flipless/nn/tensor_io.h"
#include "flipless/train/strategy.h"
#include "flipless/models/registry.h"
#include "flipless/train/features.h"
#include "flipless/train/gate_fit.h"
#include "flipless/train/inputs.h"
#include "flipless/train/model_space.h"
#include "flipless/train/saved_model.h"
#include "flipless/train/device.h"
#include "flipless/train/distributed.h"
#include "flipless/train/trainer.h"
#include "progress.h"

namespace flipless::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct TrainArgs {
  std::string model;
  std::string task;
  std::string train_spec;
  std::string eval_spec;
  data::ColumnSpec columns;  // of generic --train/--eval files
  bool frozen = false;
  std::int64_t layers = 0;
  std::string pooling = "mean";
  nn::HeadConfig head{"auto", 256, 0.1};
  train::TrainConfig config;
  std::size_t max_length = 0;  // 0: 128, or the encoder's positions when fewer
  double validation_fraction = 0.1;
  std::uint64_t split_seed = 0;
  std::size_t max_train = 0;
  models::FastTextConfig fasttext;
  std::string cache;
  std::string out;
  int threads = 0;
  std::string device = "cpu";
  std::string precision = "fp32";
  train::DistributedConfig dist;
  // Compatibility method, with the old model's stored predictions.
  std::string method = "vanilla";
  std::string old_run;
  // The methods' flags (methods/method.h), by flag: numbers, words and switches.
  std::map<std::string, double> method_numbers;
  std::map<std::string, std::string> method_words;
  std::map<std::string, bool> method_switches;
};

// One training's setting of `method`: its flags' values, or the fixed values of parameters
// without a flag.
void method_setting(const methods::Descriptor& method, const TrainArgs& a, std::map<std::string, double>& numbers,
                    std::map<std::string, std::string>& words) {
  for (const auto& p : method.params) {
    if (p.type == methods::ParamType::kWord) {
      words[p.key] = p.flag.empty() ? p.train_word : a.method_words.at(p.flag);
    } else if (p.type == methods::ParamType::kBool) {
      numbers[p.key] = p.flag.empty() ? p.train : a.method_switches.at(p.flag) ? 0.0 : 1.0;  // the switch turns it off
    } else {
      numbers[p.key] = p.flag.empty() ? p.train : a.method_numbers.at(p.flag);
    }
  }
}

// The old model's logits for a split, in the split's order, from OLD_RUN/predictions/SPLIT.jsonl.
torch::Tensor old_logits_for(const std::string& old_run, const std::string& split, const data::Dataset& ds, std::size_t num_labels) {
  const models::LogitsFileClassifier old(std::filesystem::path(old_run) / "predictions" / (split + ".jsonl"));
  if (old.num_labels() != num_labels) {
    throw InputError(fmt::format("{}: the old model has {} labels, the data {}", old.describe(), old.num_labels(), num_labels));
  }
  const auto out = old.predict(ds.examples);
  return torch::from_blob(const_cast<float*>(out.logits.data()), {static_cast<std::int64_t>(out.rows), static_cast<std::int64_t>(out.num_labels)})
      .clone();
}

// torch's pool and OpenBLAS's own; 0: one per core.
void set_threads(int threads) { train::set_threads(threads); }

std::filesystem::path default_cache() { return models::models_dir().parent_path() / "features"; }

data::PredictionRows rows_of(const data::Dataset& ds, const models::ClassifierOutput& out) {
  data::PredictionRows rows;
  for (const auto& ex : ds.examples) {
    rows.ids.push_back(ex.id);
    rows.labels.push_back(ex.label);
  }
  rows.label_names = ds.label_names;
  rows.num_labels = out.num_labels;
  rows.logits = out.logits;
  rows.dim = out.dim;
  rows.embeddings = out.embeddings;
  return rows;
}

double accuracy_of_rows(const data::PredictionRows& rows) {
  std::size_t correct = 0, total = 0;
  for (std::size_t i = 0; i < rows.ids.size(); ++i) {
    if (rows.labels[i] < 0) continue;
    const float* l = rows.logits.data() + i * rows.num_labels;
    const auto pred = static_cast<std::int32_t>(std::max_element(l, l + rows.num_labels) - l);
    correct += pred == rows.labels[i];
    ++total;
  }
  return total ? static_cast<double>(correct) / static_cast<double>(total) : 0.0;
}

train::TrainObserver bar_observer(std::unique_ptr<ProgressBar>& bar, nlohmann::json& log) {
  train::TrainObserver observer;
  observer.on_step = [&bar](int epoch, std::int64_t step, std::int64_t steps, double loss, double rate) {
    if (step == 1) bar = std::make_unique<ProgressBar>(fmt::format("train epoch {}", epoch), steps, "step", false, 1);  // after step 1
    bar->update(step, fmt::format("loss {:.4f}  {:.0f} ex/s", loss, rate));
  };
  observer.on_epoch = [&bar, &log](const train::EpochStats& s) {
    if (bar) bar->finish();
    std::fprintf(stderr, "epoch %d: loss %.4f, %.0f examples/s, %.1fs%s%s\n", s.epoch, s.train_loss, s.examples_per_second, s.seconds,
                 s.validation_accuracy ? fmt::format(", validation accuracy {:.2f}%", 100 * *s.validation_accuracy).c_str() : "",
                 s.skipped_steps > 0 ? fmt::format(", {} fp16 steps skipped (inf/NaN gradients)", s.skipped_steps).c_str() : "");
    log["epochs"].push_back({{"epoch", s.epoch}, {"train_loss", s.train_loss}, {"examples_per_second", s.examples_per_second},
                             {"seconds", s.seconds}, {"skipped_steps", s.skipped_steps},
                             {"validation_accuracy", s.validation_accuracy ? nlohmann::json(*s.validation_accuracy) : nlohmann::json(nullptr)}});
  };
  return observer;
}

// What flipless train will do, every option checked before minutes of reading and encoding.
struct TrainPlan {
  nn::HeadConfig head;
  train::TrainConfig config;  // with device and precision
  const methods::Descriptor* method = nullptr;
  std::string train_spec, eval_spec;
  std::filesystem::path model_dir;  // torch models
  std::size_t max_length = 0;       // resolved: 128, or the encoder's positions when fewer
};

TrainPlan plan_training(const TrainArgs& a) {
  TrainPlan p;
  p.head = a.head;
  if (p.head.kind == "auto") p.head.kind = a.frozen ? "linear" : "hf";  // fine-tuned: Hugging Face's head
  p.train_spec = a.train_spec;
  p.eval_spec = a.eval_spec;
  if (!a.task.empty()) {
    if (p.train_spec.empty()) p.train_spec = a.task + ":train";
    if (p.eval_spec.empty()) p.eval_spec = a.task + ":dev";
  }
  if (p.train_spec.empty() || p.eval_spec.empty()) throw ConfigError("give --task (sst2, mrpc) or both --train and --eval");
  a.dist.validate();
  p.config = a.config;
  p.config.device = train::parse_device(a.device, a.dist.rank);
  p.config.precision = train::parse_precision(a.precision);
  p.config.validate();
  if (a.model == "fasttext" && (!p.config.device.is_cpu() || p.config.precision != train::Precision::kFloat32)) {
    throw ConfigError("fastText trains on the CPU in float32; drop --device/--precision");
  }
  p.method = methods::find(a.method);
  if (p.method == nullptr) throw ConfigError(fmt::format("--method '{}': unknown (see flipless methods list)", a.method));
  if (!p.method->trains()) {
    throw ConfigError(fmt::format("--method {}: not a training strategy; it is built from trained runs ({})", a.method, p.method->summary));
  }
  // The flags' values within the parameters' bounds (a default is not checked: lr2's 0 means "choose").
  for (const auto& param : p.method->params) {
    if (param.flag.empty() || !param.check || !a.method_numbers.count(param.flag)) continue;
    const double value = a.method_numbers.at(param.flag);
    if (value == param.train) continue;
    if (const auto why = param.check(value); !why.empty()) throw ConfigError(fmt::format("{}: {}", param.flag, why));
  }
  if (p.method->runner != methods::Runner::kVanilla) {
    if (a.old_run.empty()) throw ConfigError(fmt::format("--method {} needs --old RUN_DIR: the old model's flipless train output", a.method));
    if (a.model == "fasttext") throw ConfigError("compatibility methods train a torch model; fastText can only be the old model");
    for (const char* split : {"train", "validation", "dev"}) {
      const auto path = std::filesystem::path(a.old_run) / "predictions" / (std::string(split) + ".jsonl");
      if (!std::filesystem::exists(path)) throw ConfigError(fmt::format("--old: {} is missing", path.string()));
    }
  }
  p.max_length = a.max_length;
  if (a.model == "fasttext") {
    a.fasttext.validate();
    return p;
  }
  p.model_dir = models::resolve_model(a.model);
  p.head.validate();
  const auto base = nn::BertConfig::from_json_file(p.model_dir / "config.json");
  // 0: 128 tokens, or fewer when the encoder's positions cover fewer.
  if (p.max_length == 0) p.max_length = static_cast<std::size_t>(std::min<std::int64_t>(128, base.max_sequence_length()));
  if (static_cast<std::int64_t>(p.max_length) > base.max_sequence_length()) {
    throw ConfigError(fmt::format("--max-length {}: the encoder {} covers at most {} tokens", p.max_length, p.model_dir.string(),
                                  base.max_sequence_length()));
  }
  train::FeatureSpec{p.model_dir, a.layers, a.pooling, p.max_length}.validate();
  if (a.layers > base.num_hidden_layers) {
    throw ConfigError(fmt::format("--layers: asked for {} layers, the model has {}", a.layers, base.num_hidden_layers));
  }
  return p;
}

// The data of one training: the train split after the validation carve-out and --max-train.
struct TrainData {
  data::Dataset full_train, dev, train, validation;

  // (name, split) in the order predictions are written.
  std::vector<std::pair<std::string, const data::Dataset*>> splits() const { return {{"train", &train}, {"validation", &validation}, {"dev", &dev}}; }
};

TrainData load_training_data(const TrainPlan& plan, const TrainArgs& a) {
  TrainData d;
  d.full_train = data::load_dataset(plan.train_spec, a.columns);
  d.dev = data::load_dataset(plan.eval_spec, a.columns);
  if (d.full_train.label_names != d.dev.label_names) {
    throw InputError(fmt::format("{} and {} have different label sets [{}] vs [{}]", d.full_train.name, d.dev.name,
                                 fmt::join(d.full_train.label_names, ", "), fmt::join(d.dev.label_names, ", ")));
  }
  auto split = data::split_train_validation(d.full_train, a.validation_fraction, a.split_seed);
  d.train = data::subsample(split.train, a.max_train, a.split_seed);
  d.validation = std::move(split.validation);
  std::fprintf(stderr, "data: %zu train, %zu validation (carved from %s), %zu dev (%s)\n", d.train.size(), d.validation.size(),
               d.full_train.name.c_str(), d.dev.size(), d.dev.name.c_str());
  return d;
}

// fastText: trains, saves model.bin and the card, writes each split's predictions.
void train_fasttext(const TrainArgs& a, const TrainData& d, const std::filesystem::path& out, nlohmann::json& card,
                    std::map<std::string, double>& accuracy) {
  models::FastTextConfig ft = a.fasttext;
  ft.seed = a.config.seed;
  auto model = models::FastTextClassifier::train(d.train, ft);
  model->save(out / "model.bin");
  card["kind"] = "fasttext";
  card["lowercase"] = ft.lowercase;
  card["fasttext"] = {{"epochs", ft.epochs}, {"lr", ft.learning_rate}, {"dim", ft.dim}, {"word_ngrams", ft.word_ngrams}};
  train::save_model_card(out, card);
  for (const auto& [name, ds] : d.splits()) {
    const auto rows = rows_of(*ds, model->predict(ds->examples));
    accuracy[name] = accuracy_of_rows(rows);
    data::write_predictions(out / "predictions" / (name + ".jsonl"), rows);
  }
}

// The method's setting from its flags, recorded in the card.
std::map<std::string, double> record_method(const TrainArgs& a, const methods::Descriptor& method, std::map<std::string, std::string>& words,
                                            nlohmann::json& card) {
  std::map<std::string, double> numbers;
  method_setting(method, a, numbers, words);
  // Gated Fusion's lr2 0: 1e-5 for fine-tuned models, frozen heads train at head scale.
  if (method.strategy == methods::Strategy::kGatedFusion && numbers.at("lr2") <= 0) numbers["lr2"] = a.frozen ? a.config.learning_rate : 1e-5;
  card["method"] = {{"name", a.method}};
  for (const auto& p : method.params) {
    if (!p.in_card) continue;
    if (p.type == methods::ParamType::kWord) {
      card["method"][p.key] = words.at(p.key);
    } else if (p.type == methods::ParamType::kBool) {
      card["method"][p.key] = numbers.at(p.key) != 0;
    } else {
      card["method"][p.key] = numbers.at(p.key);
    }
  }
  card["method"]["old_run"] = std::filesystem::absolute(a.old_run).string();
  return numbers;
}

// The compatibility method's strategy from its flags, with its settings recorded in the card.
std::unique_ptr<train::CompatibilityStrategy> method_strategy(const TrainArgs& a, const methods::Descriptor& method, std::int64_t embedding_dim,
                                                              std::int64_t num_labels, nlohmann::json& card) {
  std::map<std::string, std::string> words;
  const auto numbers = record_method(a, method, words, card);
  return train::make_strategy(train::strategy_config(method, numbers, words, {a.config.seed, embedding_dim, num_labels}));
}

// gated_fusion_heldout: the gate fitted on the trained model's validation outputs (train::fit_gate).
train::FittedGate fit_heldout_gate(const std::map<std::string, double>& n, const train::Predictions& validation, const torch::Tensor& old_logits,
                                   const data::Dataset& ds, std::uint64_t seed) {
  const auto g = train::heldout_gate_config(n, seed);
  return train::fit_gate({validation.embeddings, validation.logits, old_logits, train::label_tensor(ds)}, g);
}

// A progress bar per split while the model space encodes features.
struct FeatureBars {
  std::unique_ptr<ProgressBar> bar;
  std::string split;

  void operator()(const std::string& name, std::int64_t done, std::int64_t total, const std::string& status) {
    if (!bar || split != name) {
      bar.reset();
      bar = std::make_unique<ProgressBar>(fmt::format("features {}", name), total, "ex");
      split = name;
    }
    if (status.empty()) {
      bar->update(done);
    } else {
      bar->update(done, status);
    }
  }
};

// A torch model (frozen encoder + head, or fine-tuned), with the compatibility method when one is
// asked for; rank 0 saves it and writes each split's predictions. False on the other ranks.
bool train_torch(const TrainArgs& a, TrainPlan& plan, const TrainData& d, const std::filesystem::path& out, nlohmann::json& card,
                 nlohmann::json& log, std::map<std::string, double>& accuracy) {
  auto& config = plan.config;
  const auto* method = plan.method;
  const auto num_labels = static_cast<std::int64_t>(d.full_train.num_labels());
  card["base_model"] = std::filesystem::absolute(plan.model_dir).string();
  card["max_length"] = plan.max_length;
  card["head"] = {{"kind", plan.head.kind}, {"hidden", plan.head.hidden}, {"dropout", plan.head.dropout}};
  card["train_config"] = {{"epochs", a.config.epochs}, {"batch_size", a.config.batch_size}, {"learning_rate", a.config.learning_rate},
                          {"weight_decay", a.config.weight_decay}, {"warmup_ratio", a.config.warmup_ratio},
                          {"precision", train::to_string(config.precision)}};
  std::unique_ptr<ProgressBar> bar;
  // The method, and the old model's stored logits it needs (never the old model itself).
  std::map<std::string, torch::Tensor> old;
  std::unique_ptr<train::CompatibilityStrategy> strategy;
  std::map<std::string, double> heldout;  // gated_fusion_heldout's setting: the new model trains alone
  if (method->runner != methods::Runner::kVanilla) {
    for (const auto& [name, ds] : d.splits()) old[name] = old_logits_for(a.old_run, name, *ds, d.full_train.num_labels());
    const std::int64_t embedding_dim = nn::BertConfig::from_json_file(plan.model_dir / "config.json").hidden_size;
    if (method->runner == methods::Runner::kHeldOutGate) {
      std::map<std::string, std::string> words;
      heldout = record_method(a, *method, words, card);
    } else {
      strategy = method_strategy(a, *method, embedding_dim, num_labels, card);
    }
    std::fprintf(stderr, "method %s against the stored logits of %s\n", a.method.c_str(), a.old_run.c_str());
  }
  // The model, its inputs and its saved folder: the experiment runner's model space.
  train::ModelSpec spec;
  spec.frozen = a.frozen;
  spec.name = a.model;
  spec.model_dir = plan.model_dir;
  spec.layers = a.layers;
  spec.pooling = a.pooling;
  spec.head = plan.head;
  spec.max_length = plan.max_length;
  spec.feature_precision = config.precision;
  FeatureBars progress;
  const train::ModelSpace space(spec, {{"train", &d.train}, {"validation", &d.validation}, {"dev", &d.dev}}, num_labels,
                                a.cache.empty() ? default_cache() : std::filesystem::path(a.cache), config.device, config.precision,
                                std::ref(progress));
  progress.bar.reset();
  const auto model = space.make(a.config.seed);
  if (strategy) {
    train::train_with_strategy(*model, *strategy, *space.source("train"), old["train"], space.source("validation").get(), old["validation"],
                               config, bar_observer(bar, log));
  } else {
    train::train(*model, *space.source("train"), space.source("validation").get(), config, train::cross_entropy_loss, bar_observer(bar, log));
  }
  if (a.dist.rank != 0) return false;  // only rank 0 writes the model and predictions
  const auto described = space.card();
  card["kind"] = described.at("kind");
  card["layers"] = described.at("layers");
  if (a.frozen) {
    card["pooling"] = a.pooling;
  } else {
    card["pooler"] = described.at("pooler");
  }
  if (strategy && !strategy->parameters().empty()) train::save_gate(out, strategy->parameters());  // Gated Fusion's gate
  std::optional<train::FittedGate> gate;
  if (!heldout.empty()) {
    const auto validation = train::predict(*model, *space.source("validation"), space.eval_batch(), {}, config.precision);
    gate = fit_heldout_gate(heldout, validation, old["validation"], d.validation, a.config.seed);
    std::fprintf(stderr, "gate fitted on the %zu validation rows (%lld steps)\n", d.validation.size(), static_cast<long long>(gate->steps));
    train::save_gate(out, gate->gate->parameters());
  }
  space.save(out, *model, card);
  for (const auto& [name, ds] : d.splits()) {
    const auto source_of_split = space.source(name);
    const auto& source = *source_of_split;
    auto p = strategy ? train::predict_with_strategy(*model, *strategy, source, old[name], space.eval_batch(), config.precision)
                      : train::predict(*model, source, space.eval_batch(), {}, config.precision);
    if (gate) {
      const auto fused = train::apply_gate(gate->gate, {p.embeddings, p.logits, old[name], {}});
      p.logits = fused.logits;
      p.gates = fused.gate;
    }
    auto rows = rows_of(*ds, train::as_classifier_output(p));
    if (p.gates.defined()) {
      const auto g = p.gates.contiguous();
      rows.gates.assign(g.data_ptr<float>(), g.data_ptr<float>() + g.numel());
    }
    accuracy[name] = accuracy_of_rows(rows);
    data::write_predictions(out / "predictions" / (name + ".jsonl"), rows);
    if (method->gated) {  // table 4: the GF-trained new model alone
      const auto alone = rows_of(*ds, train::as_classifier_output(train::predict(*model, source, space.eval_batch(), {}, config.precision)));
      accuracy[name + "_new_model_alone"] = accuracy_of_rows(alone);
      data::write_predictions(out / "predictions" / (name + ".new_model_alone.jsonl"), alone);
    }
  }
  return true;
}

int run_train(const TrainArgs& a) {
  set_threads(a.threads);
  const auto started = Clock::now();
  TrainPlan plan = plan_training(a);
  const TrainData d = load_training_data(plan, a);
  auto& config = plan.config;
  if (!config.device.is_cpu() || config.precision != train::Precision::kFloat32) {
    std::fprintf(stderr, "device %s, precision %s\n", train::describe_device(config.device).c_str(), train::to_string(config.precision).c_str());
  }
  if (a.dist.world_size > 1) {
    if (a.model == "fasttext") throw ConfigError("fastText trains in one process; drop --world-size");
    config.group = train::ProcessGroup::connect(a.dist, config.device);
    std::fprintf(stderr, "rank %d of %d joined %s:%d (%s)\n", a.dist.rank, a.dist.world_size, a.dist.master_addr.c_str(), a.dist.master_port,
                 config.group->backend().c_str());
  }
  const std::filesystem::path out(a.out);
  if (a.dist.rank == 0) std::filesystem::create_directories(out / "predictions");  // only rank 0 writes
  nlohmann::json log = {{"train", d.train.name}, {"validation", d.validation.name}, {"dev", d.dev.name}, {"epochs", nlohmann::json::array()}};
  nlohmann::json card = {{"label_names", d.full_train.label_names}, {"train_data", plan.train_spec}, {"seed", a.config.seed}};
  std::map<std::string, double> accuracy;
  if (a.model == "fasttext") {
    train_fasttext(a, d, out, card, accuracy);
  } else if (!train_torch(a, plan, d, out, card, log, accuracy)) {
    return 0;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  log["accuracy"] = accuracy;
  log["seconds"] = seconds;
  core::write_file_atomic(out / "train_log.json", log.dump(2) + "\n");
  std::printf("%s: train %.2f%%, validation %.2f%%, dev %.2f%% accuracy (%.0fs)\nmodel and predictions in %s\n",
              a.model.c_str(), 100 * accuracy["train"], 100 * accuracy["validation"], 100 * accuracy["dev"], seconds, out.c_str());
  return 0;
}

struct PredictArgs {
  std::string model_dir;
  std::string data;
  data::ColumnSpec columns;
  std::string out;
  int threads = 0;
  std::string device = "cpu";
  std::string precision = "fp32";
};

// A model folder of Gated Fusion's family must hold its gate, readable: a folder without it (or
// with a damaged one) is broken, and predicting from it as if nothing were missing would hide
// that. Predictions themselves are the new model's own: the gate needs the old model's logits
// (flipless serve fuses them from a cache).
void check_gate(const std::filesystem::path& dir) {
  if (!std::filesystem::exists(dir / train::kModelCardName)) return;  // a Hugging Face checkpoint
  const auto card = train::read_typed_model_card(dir);
  const auto method = card.fields.find("method");
  if (method == card.fields.end() || !method->is_object() || !method->contains("name") || !(*method)["name"].is_string()) return;
  const auto* descriptor = methods::find((*method)["name"].get<std::string>());
  if (descriptor == nullptr || !descriptor->gated) return;
  const auto gate = dir / "gate.safetensors";
  if (!std::filesystem::exists(gate)) {
    throw ModelError(fmt::format("{}: missing: a {} model keeps its gate there (copy the whole folder flipless wrote)", gate.string(),
                                 descriptor->name));
  }
  const auto file = io::SafetensorsFile::open(gate);  // throws ModelError naming the file when damaged
  if (file.find("gate.0") == nullptr) throw ModelError(fmt::format("{}: tensor 'gate.0' is missing: not a gate written by flipless", gate.string()));
  std::fprintf(stderr, "%s model: these are the new model's own predictions; the gate needs the old model's logits (flipless serve)\n",
               descriptor->name.c_str());
}

int run_predict(const PredictArgs& a) {
  set_threads(a.threads);
  check_gate(a.model_dir);
  const auto classifier = train::load_classifier(a.model_dir, train::parse_device(a.device), train::parse_precision(a.precision));
  const data::Dataset ds = data::load_dataset(a.data, a.columns);
  const auto names = train::label_names_of_model(a.model_dir);
  if (ds.has_labels() && ds.label_names != names) {
    throw InputError(fmt::format("{}: labels [{}] differ from the model's [{}]", ds.name, fmt::join(ds.label_names, ", "), fmt::join(names, ", ")));
  }
  std::fprintf(stderr, "%s on %s (%zu examples)\n", classifier->describe().c_str(), ds.name.c_str(), ds.size());
  ProgressBar progress("predict", static_cast<std::int64_t>(ds.size()), "ex");
  models::ClassifierOutput all;
  const std::size_t chunk = 512;
  for (std::size_t start = 0; start < ds.size(); start += chunk) {
    const auto part = classifier->predict(std::span(ds.examples).subspan(start, std::min(chunk, ds.size() - start)));
    all.num_labels = part.num_labels;
    all.dim = part.dim;
    all.rows += part.rows;
    all.logits.insert(all.logits.end(), part.logits.begin(), part.logits.end());
    all.embeddings.insert(all.embeddings.end(), part.embeddings.begin(), part.embeddings.end());
    progress.update(static_cast<std::int64_t>(std::min(ds.size(), start + chunk)));
  }
  progress.finish();
  auto rows = rows_of(ds, all);
  rows.label_names = names;
  data::write_predictions(a.out, rows);
  if (ds.has_labels()) std::printf("accuracy %.2f%% on %s\n", 100 * accuracy_of_rows(rows), ds.name.c_str());
  std::printf("wrote %s\n", a.out.c_str());
  return 0;
}

int run_models_list() {
  const auto dir = models::models_dir();
  std::printf("%-12s %-8s %-7s %-10s %s\n", "name", "layers", "hidden", "on disk", "what");
  for (const auto& m : models::registered_models()) {
    std::uintmax_t bytes = 0;
    const auto path = dir / m.name;
    const bool present = std::filesystem::exists(path / "model.safetensors");
    if (present) {
      for (const auto& e : std::filesystem::directory_iterator(path)) {
        if (e.is_regular_file()) bytes += e.file_size();
      }
    }
    std::printf("%-12s %-8lld %-7lld %-10s %s\n", m.name.c_str(), static_cast<long long>(m.layers), static_cast<long long>(m.hidden),
                present ? fmt::format("{:.0f} MB", static_cast<double>(bytes) / 1e6).c_str() : "absent", m.description.c_str());
  }
  std::printf("%-12s %-8s %-7s %-10s %s\n", "fasttext", "-", "-", "built in", "fastText supervised classifier (libfasttext), trained by flipless");
  std::printf("\nfolder: %s (scripts/fetch_models.sh fetches absent models); any Hugging Face checkpoint folder works by path\n",
              dir.c_str());
  return 0;
}

const char* yes_no(bool b) { return b ? "yes" : "no"; }

// What this build can run on (CPU, GPUs, precisions, data-parallel backends) and the CPU math
// it uses: which library and kernels do the float32 and bf16 matrix products, and how fast one
// thread multiplies two 1024 x 1024 matrices through libtorch, against OpenBLAS called
// directly. A warning line when OpenBLAS runs kernels below what the CPU offers.
int run_devices() {
  std::printf("libtorch %s (%s)\n", TORCH_VERSION, train::libtorch_has_cuda() ? "CUDA build" : "CPU-only build");
  const auto math = train::cpu_math_path();
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::printf("cpu: %s, %u cores; AVX2+FMA %s, AVX-512 %s, AVX512-BF16 %s, AMX-BF16 %s\n", math.cpu.empty() ? "unknown" : math.cpu.c_str(),
              cores, yes_no(math.features.avx2_fma), yes_no(math.features.avx512), yes_no(math.features.avx512_bf16),
              yes_no(math.features.amx_bf16));
  if (math.blas.openblas) {
    std::printf("fp32 products: %s; kernels %s, %s\n", math.blas.config.c_str(), math.blas.core.c_str(), math.blas.chosen_by.c_str());
    if (math.best_core && train::openblas_core_level(math.blas.core) < train::openblas_core_level(*math.best_core)) {
      std::printf("warning: OpenBLAS runs %s kernels; this CPU has %s's (several times faster float32 products, BENCHMARKS.md)%s\n",
                  math.blas.core.c_str(), math.best_core->c_str(),
                  std::getenv("OPENBLAS_CORETYPE") ? ": unset OPENBLAS_CORETYPE, or set it to that" : "");
    }
  } else {
    std::printf("fp32 products: %s\n", math.mkl ? "MKL" : "libtorch's BLAS (not OpenBLAS, not MKL)");
  }
  const bool bf16_native = math.features.avx512_bf16 || math.features.amx_bf16;
  std::printf("bf16 products: %s, %s\n", math.onednn ? "oneDNN" : "libtorch's own kernels (no oneDNN)",
              bf16_native ? (math.features.amx_bf16 ? "with AMX and AVX512-BF16" : "with AVX512-BF16 instructions")
                          : "without bf16 instructions on this CPU (emulated: slower than fp32)");
  std::printf("threads: torch %d, OpenBLAS %d (--threads sets both)\n", at::get_num_threads(), math.blas.threads);
  if (math.blas.openblas) std::printf("OpenMP idle threads: %s\n", math.blas.openmp_spin.c_str());
  const double fp32 = train::torch_gemm_gflops(torch::kFloat32);
  const auto direct = train::openblas_sgemm_gflops();
  std::printf("fp32 GEMM 1024^3, 1 thread: %.1f GFLOP/s through libtorch", fp32);
  if (direct) std::printf("; OpenBLAS sgemm called directly %.1f GFLOP/s (%.2fx)", *direct, fp32 / *direct);
  std::printf("\n");
  std::printf("bf16 GEMM 1024^3, 1 thread: %.1f GFLOP/s through libtorch\n", train::torch_gemm_gflops(torch::kBFloat16));
  std::printf("%-8s %-16s %s\n", "device", "precision", "");
  std::printf("%-8s %-16s %u cores (--threads picks how many torch uses)\n", "cpu", "fp32, bf16", cores);
  // device_count() is a size_t in libtorch 1.13 and an int in 2.x.
  const int gpus = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  for (int i = 0; i < gpus; ++i) std::printf("%-8s %-16s\n", fmt::format("cuda:{}", i).c_str(), "fp32, bf16, fp16");
  std::printf("gpus: %d%s\n", gpus,
              gpus > 0 ? "" : train::libtorch_has_cuda() ? " (this libtorch has CUDA, but no GPU is visible)" : " (this libtorch was built without CUDA)");
  std::printf("data parallel: gloo%s\n", train::nccl_available() ? ", nccl" : " (nccl: not in this build, -DFLIPLESS_WITH_NCCL=ON)");
  return 0;
}

}  // namespace

void add_train_commands(CLI::App& app, Runner& run) {
  app.add_subcommand("devices", "Where torch models can run in this build (CPU, GPUs, precisions, data-parallel backends) and the CPU math path, with a measured GEMM rate")
      ->callback([&run] { run = [] { return run_devices(); }; });
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Train a classifier (fastText, a head on frozen encoder features, or a fine-tuned encoder)");
  cmd->footer(
      "Examples:\n"
      "  flipless train --model fasttext --task sst2 --out runs/fasttext\n"
      "  flipless train --model minilm-l6 --frozen --layers 2 --task sst2 --out runs/minilm-l2-frozen\n"
      "  flipless train --model minilm-l6 --task sst2 --max-train 4000 --epochs 2 --out runs/minilm-ft");
  cmd->add_option("--model", a->model, "fasttext, a registered model (flipless models list) or a checkpoint folder")->required();
  cmd->add_option("--task", a->task, "Bundled task: its train split (minus validation) and dev (sst2, mrpc)");
  cmd->add_option("--train", a->train_spec, "Training data (dataset spec, e.g. qnli:/data/QNLI/train_subset.tsv)");
  cmd->add_option("--eval", a->eval_spec, "Regression set, never used to choose anything (e.g. qnli:/data/QNLI/dev.tsv)");
  add_column_options(cmd, a->columns);
  cmd->add_flag("--frozen", a->frozen, "Freeze the encoder; train a head on cached features");
  cmd->add_option("--layers", a->layers, "Keep the encoder's first K layers (0: all)")->capture_default_str();
  cmd->add_option("--pooling", a->pooling, "Frozen features: mean, cls or pooler")->capture_default_str();
  cmd->add_option("--head", a->head.kind, "auto (hf when fine-tuning, else linear), linear, mlp, or hf: the encoder type's Hugging Face head")
      ->capture_default_str();
  cmd->add_option("--head-hidden", a->head.hidden, "MLP head width")->capture_default_str();
  cmd->add_option("--dropout", a->head.dropout, "Dropout before the head")->capture_default_str();
  cmd->add_option("--epochs", a->config.epochs, "Epochs")->capture_default_str();
  cmd->add_option("--lr", a->config.learning_rate, "Peak learning rate (AdamW)")->capture_default_str();
  cmd->add_option("--batch-size", a->config.batch_size, "Batch size")->capture_default_str();
  cmd->add_option("--weight-decay", a->config.weight_decay, "Weight decay")->capture_default_str();
  cmd->add_option("--warmup", a->config.warmup_ratio, "Warm-up share of all steps")->capture_default_str();
  cmd->add_option("--max-grad-norm", a->config.max_grad_norm, "Gradient clipping (0: off)")->capture_default_str();
  cmd->add_option("--seed", a->config.seed, "Seed (initialisation, shuffling, fastText)")->capture_default_str();
  cmd->add_option("--max-length", a->max_length, "Maximum tokens per input (0: 128, or fewer when the encoder's positions cover fewer)")
      ->capture_default_str();
  cmd->add_option("--validation-fraction", a->validation_fraction, "Share of train carved out for validation")->capture_default_str();
  cmd->add_option("--split-seed", a->split_seed, "Seed of the validation split")->capture_default_str();
  cmd->add_option("--max-train", a->max_train, "Train on a deterministic subsample of this many examples (0: all)")->capture_default_str();
  cmd->add_option("--fasttext-epochs", a->fasttext.epochs, "fastText epochs")->capture_default_str();
  cmd->add_option("--fasttext-lr", a->fasttext.learning_rate, "fastText learning rate")->capture_default_str();
  cmd->add_option("--fasttext-dim", a->fasttext.dim, "fastText dimensions")->capture_default_str();
  cmd->add_option("--fasttext-ngrams", a->fasttext.word_ngrams, "fastText word n-grams")->capture_default_str();
  cmd->add_option("--cache", a->cache, "Feature cache folder (default: ~/.cache/flipless/features)");
  cmd->add_option("--threads", a->threads, "CPU threads (0: all cores)")->capture_default_str();
  cmd->add_option("--device", a->device, "cpu, cuda, cuda:N (data parallel: rank modulo the GPUs), or auto")->capture_default_str();
  cmd->add_option("--precision", a->precision, "fp32, bf16 (autocast), or fp16 (autocast + loss scaling; GPU only)")->capture_default_str();
  cmd->add_option("--world-size", a->dist.world_size, "Data-parallel processes (start one per rank)")->capture_default_str();
  cmd->add_option("--rank", a->dist.rank, "This process's rank, 0..world-size-1 (rank 0 writes the outputs)")->capture_default_str();
  cmd->add_option("--master-addr", a->dist.master_addr, "Address of rank 0's store")->capture_default_str();
  cmd->add_option("--master-port", a->dist.master_port, "Port of rank 0's store")->capture_default_str();
  cmd->add_option("--backend", a->dist.backend, "Data-parallel backend: gloo, nccl (GPU builds with NCCL), or auto")->capture_default_str();
  cmd->add_option("--method", a->method, "Compatibility method (flipless methods list)")->capture_default_str();
  cmd->add_option("--old", a->old_run, "The old model's flipless train output folder (its stored predictions are the old logits)");
  // Every training method's parameters that have a flag, once per flag (methods/method.h).
  for (const auto* m : methods::registry()) {
    for (const auto& p : m->params) {
      if (p.flag.empty() || a->method_numbers.count(p.flag) || a->method_words.count(p.flag) || a->method_switches.count(p.flag)) continue;
      CLI::Option* option = nullptr;
      if (p.type == methods::ParamType::kBool) {
        cmd->add_flag(p.flag, a->method_switches[p.flag] = false, p.help);
        continue;
      }
      if (p.type == methods::ParamType::kWord) {
        option = cmd->add_option(p.flag, a->method_words[p.flag] = p.train_word, p.help);
      } else {
        option = cmd->add_option(p.flag, a->method_numbers[p.flag] = p.train, p.help);
      }
      if (p.show_default) option->capture_default_str();
    }
  }
  cmd->add_option("--out", a->out, "Output folder: model, predictions/{train,validation,dev}.jsonl, train_log.json")->required();
  cmd->callback([&run, a] { run = [a] { return run_train(*a); }; });

  auto p = std::make_shared<PredictArgs>();
  CLI::App* predict = app.add_subcommand("predict", "Predict with a trained model; writes ids, labels, logits and embeddings");
  predict->add_option("model_dir", p->model_dir,
                      "A folder written by flipless train, or a Hugging Face *ForSequenceClassification checkpoint folder")
      ->required();
  predict->add_option("--data", p->data, "Dataset spec (sst2:dev, qnli:PATH, a CSV/TSV/JSONL path)")->required();
  predict->add_option("--out", p->out, "Prediction file (JSONL) to write")->required();
  add_column_options(predict, p->columns);
  predict->add_option("--threads", p->threads, "CPU threads (0: all cores)")->capture_default_str();
  predict->add_option("--device", p->device, "cpu, cuda, cuda:N, or auto")->capture_default_str();
  predict->add_option("--precision", p->precision, "fp32, bf16, or fp16 (GPU only)")->capture_default_str();
  predict->callback([&run, p] { run = [p] { return run_predict(*p); }; });

  CLI::App* methods_cmd = app.add_subcommand("methods", "Compatibility methods");
  methods_cmd->require_subcommand(1);
  methods_cmd->add_subcommand("list", "Registered methods")->callback([&run] {
    run = [] {
      for (const auto& m : train::registered_methods()) {
        std::printf("%-24s %-10s %s\n", m.name.c_str(), m.trains ? "training" : "combines", m.summary.c_str());
      }
      return 0;
    };
  });

  CLI::App* models_cmd = app.add_subcommand("models", "Pretrained models");
  models_cmd->require_subcommand(1);
  models_cmd->add_subcommand("list", "Registered models, their size and whether each is present")->callback([&run] { run = [] { return run_models_list(); }; });
}

}  // namespace flipless::cli
