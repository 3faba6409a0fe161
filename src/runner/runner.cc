#include "flipless/runner/runner.h"

#include <fcntl.h>
#include <sys/file.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "flipless/core/assert.h"
#include "flipless/core/error.h"
#include "flipless/core/file.h"
#include "flipless/core/hash.h"
#include "flipless/data/predictions.h"
#include "flipless/data/registry.h"
#include "flipless/data/split.h"
#include "flipless/ensemble/old_new.h"
#include "flipless/experiment/cache_experiment.h"
#include "flipless/experiment/json_file.h"
#include "flipless/experiment/run_results.h"
#include "flipless/io/safetensors.h"
#include "flipless/methods/method.h"
#include "flipless/models/fasttext_classifier.h"
#include "flipless/models/logits_file_classifier.h"
#include "flipless/models/registry.h"
#include "flipless/nn/bert.h"
#include "flipless/nn/classifier.h"
#include "flipless/nn/tensor_io.h"
#include "flipless/text/wordpiece.h"
#include "flipless/train/cpu_math.h"
#include "flipless/train/features.h"
#include "flipless/train/gate_fit.h"
#include "flipless/train/inputs.h"
#include "flipless/train/model_space.h"
#include "flipless/train/saved_model.h"
#include "flipless/train/strategy.h"
#include "flipless/train/trainer.h"

namespace flipless::runner {

using namespace flipless::experiment;  // configs, settings and run results

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

const char* kSplits[] = {"train", "validation", "dev"};

// gated_fusion_heldout: folds of the validation split its settings are judged on.
constexpr int kGateFolds = 2;

// Member j >= 1 of seed s's ensemble with ensemble_members: extra (member 0 is the vanilla model of seed s).
std::uint64_t member_seed(std::uint64_t seed, int j) { return 1000 + 100 * seed + static_cast<std::uint64_t>(j); }


struct TaskData {
  data::Dataset train, validation, dev;
  std::int64_t num_labels = 0;
  const data::Dataset& split(const std::string& name) const {
    return name == "train" ? train : name == "validation" ? validation : dev;
  }
};

TaskData load_task(const ExperimentConfig& c, const TaskConfig& t) {
  data::ColumnSpec columns;
  columns.text = t.text_column;
  columns.text_pair = t.text_pair_column;
  columns.label = t.label_column;
  columns.id = t.id_column;
  columns.hash_ids = t.hash_ids;
  const auto full = data::load_dataset(t.train, columns);
  TaskData d;
  d.dev = data::load_dataset(t.eval, columns);
  if (full.label_names != d.dev.label_names) {
    throw InputError(fmt::format("{}: task {}: {} and {} have different label sets [{}] vs [{}]", c.source.string(), t.name, full.name,
                                 d.dev.name, fmt::join(full.label_names, ", "), fmt::join(d.dev.label_names, ", ")));
  }
  if (!d.dev.has_labels()) throw InputError(fmt::format("{}: task {}: the regression set {} has no labels", c.source.string(), t.name, d.dev.name));
  auto split = data::split_train_validation(full, c.validation_fraction, c.split_seed);
  d.train = data::subsample(split.train, t.max_train, c.split_seed);
  d.validation = data::subsample(split.validation, t.max_validation, c.split_seed);
  d.num_labels = static_cast<std::int64_t>(full.num_labels());
  return d;
}

torch::Tensor labels_of(const data::Dataset& ds) { return train::label_tensor(ds); }

double accuracy(const torch::Tensor& logits, const torch::Tensor& labels) { return train::accuracy_of(logits, labels); }

// Share of rows the old model got right and `logits` gets wrong.
double nfr(const torch::Tensor& old_logits, const torch::Tensor& logits, const torch::Tensor& labels) {
  const auto old_right = old_logits.argmax(1).eq(labels);
  const auto new_wrong = logits.argmax(1).ne(labels);
  return (old_right & new_wrong).to(torch::kFloat64).mean().item<double>();
}

data::PredictionRows rows_of(const data::Dataset& ds, const torch::Tensor& logits, const torch::Tensor& embeddings = {},
                             const torch::Tensor& gates = {}) {
  data::PredictionRows rows;
  for (const auto& ex : ds.examples) {
    rows.ids.push_back(ex.id);
    rows.labels.push_back(ex.label);
  }
  rows.label_names = ds.label_names;
  const auto l = logits.contiguous().to(torch::kFloat32);
  rows.num_labels = static_cast<std::size_t>(l.size(1));
  rows.logits.assign(l.data_ptr<float>(), l.data_ptr<float>() + l.numel());
  if (embeddings.defined()) {
    const auto e = embeddings.contiguous().to(torch::kFloat32);
    rows.dim = static_cast<std::size_t>(e.size(1));
    rows.embeddings.assign(e.data_ptr<float>(), e.data_ptr<float>() + e.numel());
  }
  if (gates.defined()) {
    const auto g = gates.contiguous().to(torch::kFloat32);
    rows.gates.assign(g.data_ptr<float>(), g.data_ptr<float>() + g.numel());
  }
  return rows;
}

torch::Tensor logits_from_file(const fs::path& path, const data::Dataset& ds, std::int64_t num_labels) {
  const models::LogitsFileClassifier file(path);
  if (static_cast<std::int64_t>(file.num_labels()) != num_labels) {
    throw InputError(fmt::format("{}: {} labels, the task has {}", path.string(), file.num_labels(), num_labels));
  }
  const auto out = file.predict(ds.examples);
  return torch::from_blob(const_cast<float*>(out.logits.data()), {static_cast<std::int64_t>(out.rows), num_labels}).clone();
}

std::vector<float> flat(const torch::Tensor& t) {
  const auto c = t.contiguous().to(torch::kFloat32);
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

bool same_torch_model(const ModelConfig& a, const ModelConfig& b) {
  return a.torch() && b.torch() && a.kind == b.kind && a.model == b.model && a.layers == b.layers && a.pooling == b.pooling &&
         a.head == b.head && a.head_hidden == b.head_hidden && a.max_length == b.max_length;
}

// Where torch models run, and in which precision.
struct Execution {
  torch::Device device = torch::kCPU;
  train::Precision precision = train::Precision::kFloat32;
};

// The precision a model trains and predicts in. auto: bf16 autocast for fine-tuned encoders on a
// CPU that multiplies bf16 natively (AVX512-BF16 or AMX), fp32 otherwise (frozen heads gain
// nothing: their encoder ran once, in fp32, for the feature cache; GPUs keep the paper's fp32).
train::Precision resolve_precision(const std::string& text, const torch::Device& device, const ModelConfig& model) {
  if (text != "auto") return train::parse_precision(text);
  if (model.kind == "finetuned" && device.is_cpu()) {
    const auto cpu = train::cpu_features();
    if (cpu.avx512_bf16 || cpu.amx_bf16) return train::Precision::kBFloat16;
  }
  return train::Precision::kFloat32;
}

train::ModelSpec spec_of(const ModelConfig& cfg) {
  train::ModelSpec spec;
  spec.frozen = cfg.kind == "frozen";
  spec.name = cfg.model;
  spec.model_dir = models::resolve_model(cfg.model);
  spec.layers = cfg.layers;
  spec.pooling = cfg.pooling;
  spec.head = nn::HeadConfig{cfg.head, cfg.head_hidden, cfg.dropout};
  spec.max_length = cfg.max_length;
  return spec;
}

// TASK/METHOD/seed-S/gate.json (defined below, beside the cache experiment's writer).
void write_gate_drift(const ExperimentConfig& c, const fs::path& task_dir, const methods::Descriptor& method, std::uint64_t seed);

// A config's torch model over one task's data (train::ModelSpace), with the config's training
// settings and the task's label names in the cards it saves.
class Space : public train::ModelSpace {
 public:
  Space(const ModelConfig& cfg, const TaskData& data, const fs::path& feature_cache, const RunObserver& observer, const Execution& exec,
        const std::string& precision)
      : train::ModelSpace(spec_of(cfg), {{"train", &data.train}, {"validation", &data.validation}, {"dev", &data.dev}}, data.num_labels,
                          feature_cache, exec.device, resolve_precision(precision, exec.device, cfg),
                          [&](const std::string& split, std::int64_t done, std::int64_t total, const std::string& status) {
                            if (observer.on_progress) observer.on_progress(fmt::format("features {} ({})", split, cfg.model), done, total, status);
                          }),
        cfg_(cfg),
        label_names_(data.train.label_names) {}

  train::TrainConfig train_config(std::uint64_t seed) const {
    train::TrainConfig t;
    t.epochs = cfg_.epochs;
    t.batch_size = cfg_.batch_size;
    t.learning_rate = cfg_.lr;
    t.weight_decay = cfg_.weight_decay;
    t.warmup_ratio = cfg_.warmup;
    return ModelSpace::train_config(t, seed);
  }

  // Saves a model folder `flipless predict` reads: the space's card, the label names, `extra`.
  void save(const fs::path& dir, nn::ClassifierModule& model, const json& extra) const {
    json card = this->card();
    card["label_names"] = label_names_;
    card.update(extra);
    ModelSpace::save(dir, model, card);
  }

 private:
  ModelConfig cfg_;
  std::vector<std::string> label_names_;
};

void load_parameters(nn::ClassifierModule& model, const fs::path& file) {
  const auto st = io::SafetensorsFile::open(file);
  torch::NoGradGuard no_grad;
  for (auto& p : model.named_parameters()) p.value().copy_(nn::read_tensor(st, p.key()));
  for (auto& b : model.named_buffers()) b.value().copy_(nn::read_tensor(st, b.key()));
}

// The model's parameters and buffers by name, as load_parameters reads them (written through a
// temporary file and a rename).
void save_parameters(nn::ClassifierModule& model, const fs::path& file, const std::string& fingerprint) {
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& p : model.named_parameters()) tensors[p.key()] = p.value();
  for (const auto& b : model.named_buffers()) tensors[b.key()] = b.value();
  fs::create_directories(file.parent_path());
  nn::write_tensors(file, tensors, {{"format", "flipless-weights"}, {"fingerprint", fingerprint}});
}

// The fingerprint a kept weights file was saved with ("" when it has none).
std::string saved_fingerprint(const fs::path& file) {
  const auto st = io::SafetensorsFile::open(file);
  const auto it = st.metadata().find("fingerprint");
  return it == st.metadata().end() ? std::string() : it->second;
}

// One candidate of a grid, judged on validation (its describe is filled when written).
using Candidate = CandidateResult;

// Lowest validation NFR among candidates on par with vanilla (accuracy >= vanilla - tolerance);
// when none is on par, the most accurate. Ties keep the earlier candidate (grid order).
bool better(const Candidate& c, const Candidate* best) {
  if (!best) return true;
  if (c.on_par != best->on_par) return c.on_par;
  if (c.on_par) return c.validation_nfr < best->validation_nfr;
  return c.validation_accuracy > best->validation_accuracy;
}

Candidate described(Candidate c) {
  c.describe = c.setting.describe();
  return c;
}

std::vector<Candidate> described(const std::vector<Candidate>& cs) {
  std::vector<Candidate> out;
  for (const auto& c : cs) out.push_back(described(c));
  return out;
}

class TaskRunner {
 public:
  TaskRunner(const ExperimentConfig& c, const TaskConfig& t, const RunOptions& o, const RunObserver& obs)
      : c_(c), t_(t), o_(o), obs_(obs), dir_(o.out / t.name), precision_(o.precision.empty() ? c.precision : o.precision) {
    exec_.device = train::parse_device(o.device.empty() ? c.device : o.device);
    if (precision_ != "auto") train::check_precision(exec_.device, train::parse_precision(precision_));
  }

  void say(const std::string& line) const {
    if (obs_.message) obs_.message(line);
  }

  train::TrainObserver train_observer(const std::string& what) const {
    train::TrainObserver t;
    t.on_step = [this, what](int epoch, std::int64_t step, std::int64_t steps, double loss, double rate) {
      if (obs_.on_progress && (step == steps || step % 10 == 1)) {
        obs_.on_progress(fmt::format("{} epoch {}", what, epoch), step, steps, fmt::format("loss {:.4f}  {:.0f} ex/s", loss, rate));
      }
    };
    return t;
  }

  void progress(const std::string& what, std::int64_t done, std::int64_t total, const std::string& detail = "") const {
    if (obs_.on_progress) obs_.on_progress(what, done, total, detail);
  }

  // Loads data, then the old model (trained once, or once per seed), then the new model's space.
  void prepare() {
    data_ = load_task(c_, t_);
    say(fmt::format("{}: {} train, {} validation (carved from {}), {} dev ({})", t_.name, data_.train.size(), data_.validation.size(),
                    t_.train, data_.dev.size(), data_.dev.name));
    for (const char* s : kSplits) labels_[s] = labels_of(data_.split(s));
    if (!c_.old_model.per_seed) old(c_.seeds.front());
    space_ = std::make_unique<Space>(c_.new_model, data_, feature_cache(), obs_, exec_, precision_);
    say(fmt::format("{}: new model in {}{}", t_.name, train::to_string(space_->precision()),
                    precision_ == "auto" ? " (precision: auto)" : ""));
    refuse_other_precision();
  }

  // A run folder holds one precision: units trained in another (the same config with precision:
  // auto on a machine with bf16 instructions and one without, or another --precision) would be
  // compared with this run's as if alike, so the run stops before any work.
  void refuse_other_precision() const {
    const auto now = train::to_string(space_->precision());
    if (!fs::exists(dir_)) return;
    for (const auto& method : fs::directory_iterator(dir_)) {
      if (!method.is_directory() || method.path().filename() == "old" || method.path().filename() == "trained") continue;
      for (const auto& unit : fs::directory_iterator(method.path())) {
        const auto file = unit.path() / "result.json";
        if (!fs::exists(file)) continue;
        const auto r = read_unit_result(file);
        if (!r.applicable() || r.precision.empty() || r.precision == now) continue;
        throw ConfigError(fmt::format("{}: this unit ran in {}, and this run would compute in {}{}; one run folder holds one precision: "
                                      "run it with --precision {}, or give another --out",
                                      file.string(), r.precision, now, precision_ == "auto" ? " (precision: auto on this machine)" : "",
                                      r.precision));
      }
    }
  }

  fs::path old_dir(std::uint64_t seed) const { return old_model_dir(c_, dir_, seed); }
  std::uint64_t old_seed(std::uint64_t seed) const { return c_.old_model.per_seed ? c_.old_model.seed + seed : c_.old_model.seed; }

  // The old model's logits per split for experiment seed `seed` (the one old model, or seed's
  // own with per_seed), trained when missing.
  const std::map<std::string, torch::Tensor>& old(std::uint64_t seed) {
    const auto key = c_.old_model.per_seed ? seed : 0;
    if (const auto it = old_.find(key); it != old_.end()) return it->second;
    const auto dir = old_dir(seed);
    if (!fs::exists(dir / "result.json")) train_old(seed);
    auto& logits = old_[key];
    for (const char* s : kSplits) logits[s] = logits_from_file(dir / "predictions" / (std::string(s) + ".jsonl"), data_.split(s), data_.num_labels);
    const auto old_result = read_old_model_result(dir / "result.json");
    say(fmt::format("{}: old model {}: validation {:.2f}%, dev {:.2f}%", t_.name, old_result.describe,
                    100 * accuracy(logits["validation"], labels_["validation"]), 100 * accuracy(logits["dev"], labels_["dev"])));
    return logits;
  }

  fs::path feature_cache() const { return o_.feature_cache.empty() ? models::models_dir().parent_path() / "features" : o_.feature_cache; }

  // The old model of experiment seed `seed` (see old()): its logits for every split, the
  // training rows' cross-fitted when asked.
  void train_old(std::uint64_t experiment_seed) {
    const auto started = Clock::now();
    const auto& cfg = c_.old_model;
    const std::uint64_t seed = old_seed(experiment_seed);
    const fs::path dir = old_dir(experiment_seed);
    fs::create_directories(dir / "predictions");
    // The old model's own training rows (all of train, or its data-growth subsample).
    std::vector<std::int64_t> seen;
    {
      const auto part = data::subsample(data_.train, cfg.max_train, c_.split_seed + 17);
      std::set<std::string> ids;
      for (const auto& ex : part.examples) ids.insert(ex.id);
      for (std::size_t i = 0; i < data_.train.size(); ++i) {
        if (ids.count(data_.train.examples[i].id)) seen.push_back(static_cast<std::int64_t>(i));
      }
    }
    // fit(rows, what) trains on train rows and returns a predictor of (split, rows).
    using Predict = std::function<torch::Tensor(const std::string&, const std::vector<std::int64_t>*)>;
    std::unique_ptr<Space> space;
    if (cfg.torch()) space = std::make_unique<Space>(cfg, data_, feature_cache(), obs_, exec_, precision_);
    std::shared_ptr<nn::ClassifierModule> last_torch;
    auto fit = [&](const std::vector<std::int64_t>& rows, const std::string& what) -> Predict {
      if (!cfg.torch()) {
        models::FastTextConfig ft;
        ft.epochs = cfg.fasttext_epochs;
        ft.learning_rate = cfg.fasttext_lr;
        ft.dim = cfg.fasttext_dim;
        ft.word_ngrams = cfg.fasttext_ngrams;
        ft.seed = seed;
        progress(what, 0, 1, "fastText");
        auto model = std::shared_ptr<models::FastTextClassifier>(models::FastTextClassifier::train(data::rows_of(data_.train, rows), ft).release());
        progress(what, 1, 1, "fastText");
        return [this, model](const std::string& split, const std::vector<std::int64_t>* r) {
          const auto& ds = data_.split(split);
          const auto out = r ? model->predict(data::rows_of(ds, *r).examples) : model->predict(ds.examples);
          return torch::from_blob(const_cast<float*>(out.logits.data()), {static_cast<std::int64_t>(out.rows), data_.num_labels}).clone();
        };
      }
      auto model = space->make(seed);
      const auto tr = space->source("train", &rows);
      const auto va = space->source("validation");
      train::train(*model, *tr, va.get(), space->train_config(seed), train::cross_entropy_loss, train_observer(what));
      last_torch = model;
      return [&space, model](const std::string& split, const std::vector<std::int64_t>* r) {
        return space->predict(*model, *space->source(split, r)).logits;
      };
    };
    const auto full = fit(seen, "old model");
    std::map<std::string, torch::Tensor> logits;
    for (const char* s : kSplits) logits[s] = full(s, nullptr);
    OldModelResult result;
    result.describe = cfg.torch() ? fmt::format("{} {} (seed {})", cfg.kind, cfg.model, seed) : fmt::format("fastText (seed {})", seed);
    result.kind = cfg.kind;
    result.seed = seed;
    result.label_names = data_.train.label_names;
    result.trained_on = seen.size();
    result.cross_fit = cfg.cross_fit;
    if (cfg.torch()) {
      result.precision = train::to_string(space->precision());
      space->save(dir / "model", *last_torch, {{"seed", seed}, {"train_data", t_.train}});
    }
    // Cross-fitting: each seen training row gets the logits of a model trained without its fold.
    if (cfg.cross_fit >= 2) {
      data::write_predictions(dir / "predictions" / "train.in_sample.jsonl", rows_of(data_.train, logits["train"]));
      const auto k = static_cast<std::uint64_t>(cfg.cross_fit);
      auto oof = logits["train"].clone();
      for (std::uint64_t f = 0; f < k; ++f) {
        std::vector<std::int64_t> fit_rows, held;
        for (auto r : seen) (core::hash64(data_.train.examples[static_cast<std::size_t>(r)].id, 4242) % k == f ? held : fit_rows).push_back(r);
        if (held.empty() || fit_rows.empty()) continue;
        const auto predict = fit(fit_rows, fmt::format("old model fold {}/{}", f + 1, k));
        oof.index_copy_(0, torch::tensor(held, torch::kInt64), predict("train", &held));
      }
      logits["train"] = oof;
      result.train_accuracy_in_sample = accuracy(full("train", nullptr), labels_["train"]);
    }
    for (const char* s : kSplits) {
      (std::string(s) == "train" ? result.train_accuracy : std::string(s) == "validation" ? result.validation_accuracy : result.dev_accuracy) =
          accuracy(logits[s], labels_[s]);
      data::write_predictions(dir / "predictions" / (std::string(s) + ".jsonl"), rows_of(data_.split(s), logits[s]));
    }
    result.seconds = since(started);
    result.threads = at::get_num_threads();
    write_result(dir / "result.json", result);
  }

  // Whether Gated Fusion's warm-up epochs can be taken from the vanilla model's run (shared
  // warm-up): a torch model trained for at least 2 epochs, resumable bit for bit.
  bool shares_warmup() const {
    return space_->resumable() && c_.new_model.epochs >= 2 &&
           std::any_of(c_.methods.begin(), c_.methods.end(), [](const MethodConfig& m) { return methods::find(m.name)->strategy == methods::Strategy::kGatedFusion; });
  }
  fs::path warm_state_dir(std::uint64_t seed) const { return dir_ / "vanilla" / fmt::format("seed-{}", seed) / "warm-state"; }

  // The logits of new model `seed` trained plainly (vanilla for experiment seeds, members
  // otherwise), computed once and stored. For experiment seeds whose Gated Fusion shares the
  // warm-up, the loop's state after epoch N-1 is kept beside them.
  std::map<std::string, torch::Tensor> vanilla_logits(std::uint64_t seed, const fs::path& dir, bool keep_warm_state = false) {
    const auto file = dir / "logits.safetensors";
    if (!fs::exists(file)) {
      auto model = space_->make(seed);
      const auto tr = space_->source("train");
      const auto va = space_->source("validation");
      auto config = space_->train_config(seed);
      auto observer = train_observer(fmt::format("new model seed {}", seed));
      if (keep_warm_state && shares_warmup()) {
        config.state_after_epochs = c_.new_model.epochs - 1;
        observer.on_state = [&](const train::TrainState& st) { st.save(warm_state_dir(seed)); };
      }
      train::train(*model, *tr, va.get(), config, train::cross_entropy_loss, observer);
      std::map<std::string, torch::Tensor> out;
      torch::Tensor dev_embedding;
      for (const char* s : kSplits) {
        const auto p = space_->predict(*model, *space_->source(s));
        out[s] = p.logits;
        if (std::string(s) == "dev") dev_embedding = p.embeddings;
      }
      fs::create_directories(dir);
      space_->save(dir / "model", *model, {{"seed", seed}, {"train_data", t_.train}, {"method", {{"name", "vanilla"}}}});
      std::map<std::string, torch::Tensor> stored = out;
      stored["dev_embedding"] = dev_embedding;
      nn::write_tensors(file, stored, {{"format", "flipless-logits"}});
    } else if (const auto card = dir / "model" / "flipless_model.json"; fs::exists(card)) {
      // Kept or linked in from another run folder (scripts/upgrade_runs.sh): in this run's math only.
      const auto j = json::parse(std::string(core::InputFile::open(card).bytes()), nullptr, false);
      const auto now = train::to_string(space_->precision());
      if (j.is_object() && j.contains("precision") && j["precision"].is_string() && j["precision"].get<std::string>() != now) {
        throw ConfigError(fmt::format("{}: this model was trained in {}, and this run computes in {}; one run folder holds one precision: "
                                      "run it with --precision {}, or remove the model to train it again",
                                      card.string(), j["precision"].get<std::string>(), now, j["precision"].get<std::string>()));
      }
    }
    const auto st = io::SafetensorsFile::open(file);
    std::map<std::string, torch::Tensor> out;
    for (const char* s : kSplits) out[s] = nn::read_tensor(st, s);
    out["dev_embedding"] = nn::read_tensor(st, "dev_embedding");
    return out;
  }

  // Member j of seed `seed`'s ensembles (ExperimentConfig::ensemble_members): 0 is the seed's
  // vanilla model; "extra": a model trained for this seed alone; "other_seeds": the vanilla
  // model of the j-th seed after it (cyclically, in the config's order), then extra models every
  // seed shares. Whether it is an experiment seed's vanilla model, and its seed.
  std::pair<bool, std::uint64_t> member(std::uint64_t seed, int j) const {
    if (j == 0) return {true, seed};
    if (c_.ensemble_members != "other_seeds") return {false, member_seed(seed, j)};
    const auto& seeds = c_.seeds;
    const auto at = static_cast<std::size_t>(std::find(seeds.begin(), seeds.end(), seed) - seeds.begin());
    FLIPLESS_ASSERT(at < seeds.size(), "an ensemble member asked for a seed that is not an experiment seed");
    const auto others = seeds.size() - 1, k = static_cast<std::size_t>(j);
    if (k <= others) return {true, seeds[(at + k) % seeds.size()]};
    return {false, 1000 + static_cast<std::uint64_t>(k - others)};
  }

  std::map<std::string, torch::Tensor> member_logits(std::uint64_t seed, int j) {
    const auto [vanilla, s] = member(seed, j);
    if (vanilla) return vanilla_logits(s, dir_ / "vanilla" / fmt::format("seed-{}", s), true);
    return vanilla_logits(s, dir_ / "members" / fmt::format("seed-{}", s));
  }

  // The vanilla model of `seed` after its first N-1 epochs: kept by its own run, or trained here
  // (those epochs only) when the vanilla unit ran without keeping it.
  const train::TrainState& warm_state(std::uint64_t seed) {
    if (const auto it = warm_.find(seed); it != warm_.end()) return it->second;
    const auto dir = warm_state_dir(seed);
    if (!fs::exists(dir / "state.json")) {
      auto model = space_->make(seed);
      const auto tr = space_->source("train");
      const auto va = space_->source("validation");
      auto config = space_->train_config(seed);
      config.state_after_epochs = c_.new_model.epochs - 1;
      config.stop_after_state = true;
      auto observer = train_observer(fmt::format("new model seed {} (warm-up)", seed));
      observer.on_state = [&](const train::TrainState& st) { st.save(dir); };
      train::train(*model, *tr, va.get(), config, train::cross_entropy_loss, observer);
    }
    return warm_.emplace(seed, train::TrainState::load(dir)).first->second;
  }

  double vanilla_validation_accuracy(std::uint64_t seed) {
    return accuracy(member_logits(seed, 0)["validation"], labels_["validation"]);
  }

  UnitResult base_result(const std::string& method, std::uint64_t seed) const {
    UnitResult r;
    r.task = t_.name;
    r.method = method;
    r.seed = seed;
    r.precision = train::to_string(space_->precision());
    return r;
  }

  void finish(const fs::path& dir, UnitResult result, const torch::Tensor& dev_logits, const Clock::time_point started) {
    const auto seed = result.seed;
    result.dev_accuracy = accuracy(dev_logits, labels_["dev"]);
    result.dev_nfr = nfr(old(seed).at("dev"), dev_logits, labels_["dev"]);
    if (!std::isfinite(result.dev_accuracy) || !torch::isfinite(dev_logits).all().item<bool>()) {
      throw ConfigError(fmt::format("{}: {} seed {}: the model's dev logits are not finite; the unit is not recorded", t_.name, result.method, seed));
    }
    result.seconds = since(started);
    result.threads = at::get_num_threads();
    write_result(dir / "result.json", result);
  }

  std::string summary(const UnitResult& r) const {
    if (!r.applicable()) return r.reason.value_or("");
    return fmt::format("dev acc {:.2f}%, NFR {:.2f}%{}", 100 * r.dev_accuracy, 100 * r.dev_nfr, r.chosen ? fmt::format(" ({})", r.chosen->describe) : "");
  }

  void run_vanilla(std::uint64_t seed, const fs::path& dir, Clock::time_point started) {
    const auto l = member_logits(seed, 0);
    fs::create_directories(dir / "predictions");
    data::write_predictions(dir / "predictions" / "validation.jsonl", rows_of(data_.validation, l.at("validation")));
    data::write_predictions(dir / "predictions" / "dev.jsonl", rows_of(data_.dev, l.at("dev"), l.at("dev_embedding")));
    auto r = base_result("vanilla", seed);
    r.validation_accuracy = accuracy(l.at("validation"), labels_["validation"]);
    r.validation_nfr = nfr(old(seed).at("validation"), l.at("validation"), labels_["validation"]);
    finish(dir, r, l.at("dev"), started);
  }

  // The settings a seed searches: the grid, or with search: first_seed the first seed's choice.
  std::vector<Setting> settings_for(const MethodConfig& m, const std::string& folder, std::uint64_t seed, std::optional<std::uint64_t>& note) const {
    if (c_.selection.search == "first_seed" && seed != c_.seeds.front()) {
      const auto first = dir_ / folder / fmt::format("seed-{}", c_.seeds.front()) / "result.json";
      if (fs::exists(first)) {
        const auto r = read_unit_result(first);
        if (r.chosen) {
          note = c_.seeds.front();
          return {r.chosen->setting};
        }
      }
    }
    return settings_of(m);
  }

  struct Outcome {
    Candidate candidate;
    torch::Tensor validation, dev, dev_embedding, dev_gates, dev_alone;
    torch::Tensor validation_embedding, validation_gates, validation_alone;  // gated_fusion: for the cache experiment
    std::shared_ptr<nn::ClassifierModule> model;
    std::vector<torch::Tensor> gate_parameters;
    std::int64_t gate_steps = 0;  // optimizer steps the gate took (fused, not dropped)
  };

  // What a strategy reads in the old-logits slot for setting `s`: the old model's logits, or for
  // ELODI with an ensemble reference the mean logits of `members` other new models (computed
  // once per member count, kept in `references`).
  std::map<std::string, torch::Tensor> fixed_logits(const methods::Descriptor& method, const Setting& s, std::uint64_t seed,
                                                    std::map<int, std::map<std::string, torch::Tensor>>& references) {
    std::map<std::string, torch::Tensor> fixed = old(seed);
    if (method.strategy != methods::Strategy::kElodi || s.words.at("reference") != "ensemble") return fixed;
    const int members = static_cast<int>(s.number("members"));
    auto& mean = references[members];
    if (mean.empty()) {
      for (const char* split : {"train", "validation"}) mean[split] = torch::zeros_like(old(seed).at(split));
      for (int j = 1; j <= members; ++j) {
        const auto l = member_logits(seed, j);
        for (const char* split : {"train", "validation"}) mean[split] += l.at(split) / members;
      }
    }
    for (const auto& [split, logits] : mean) fixed[split] = logits;
    return fixed;
  }

  // Whether a strategy's training reads the old model: all do but ELODI against an ensemble of
  // other new models, whose trained weights depend on the new model's data, seeds and setting
  // only.
  static bool reads_old_model(const methods::Descriptor& method, const Setting& s) {
    return !(method.strategy == methods::Strategy::kElodi && s.words.at("reference") == "ensemble");
  }

  // Where the weights of such a training are kept: TASK/trained/METHOD/seed-S/SETTING/. A resumed
  // run, or another experiment whose new model is the same computation (scripts/upgrade_runs.sh
  // links the folder between them, as it links vanilla/ and members/), takes them instead of
  // training again; the unit itself, judged against its own run's old model, is computed anew.
  fs::path kept_weights(const std::string& method, std::uint64_t seed, const Setting& s) const {
    auto key = s.describe();
    std::replace(key.begin(), key.end(), ' ', '_');
    return dir_ / "trained" / method / fmt::format("seed-{}", seed) / key / "weights.safetensors";
  }

  // Everything besides the method that decides such a training, saved with the weights and
  // compared before they are taken (a folder linked in from another experiment, or one whose
  // setting's name rounds two grid values alike, is trained again instead): the new model, the
  // task's data and validation split, the math and threads, the exact setting and the seed.
  std::string kept_fingerprint(const std::string& method, std::uint64_t seed, const Setting& s) const {
    json numbers = json::object();
    for (const auto& [k, v] : s.numbers) numbers[k] = fmt::format("{:.17g}", v);
    json j = {{"method", method},
              {"seed", seed},
              {"numbers", numbers},
              {"words", s.words},
              {"new_model", model_identity(c_.new_model)},
              {"task", {t_.name, t_.train, t_.eval, t_.max_train, t_.max_validation, t_.text_column, t_.text_pair_column, t_.label_column,
                        t_.id_column, t_.hash_ids}},
              {"split", {c_.validation_fraction, c_.split_seed}},
              {"precision", train::to_string(space_->precision())},
              {"threads", at::get_num_threads()},
              {"device", exec_.device.str()}};
    if (methods::find(method)->strategy == methods::Strategy::kElodi) {  // its reference: the members' seeds
      std::vector<std::uint64_t> members;
      for (int k = 1; k <= static_cast<int>(s.number("members")); ++k) members.push_back(member(seed, k).second);
      j["reference_members"] = members;
    }
    return j.dump();
  }

  // Where a grid search keeps each setting it finished training until its unit is written, so a
  // stopped search (Ctrl-C, a session's end) resumes at the setting it was in:
  // TASK/trained/searching/METHOD/seed-S/SETTING/setting.safetensors, removed with the folder
  // once the unit's result is written.
  fs::path searching_dir(const std::string& method, std::uint64_t seed) const {
    return dir_ / "trained" / "searching" / method / fmt::format("seed-{}", seed);
  }
  fs::path searched_setting(const std::string& method, std::uint64_t seed, const Setting& s) const {
    auto key = s.describe();
    std::replace(key.begin(), key.end(), ' ', '_');
    return searching_dir(method, seed) / key / "setting.safetensors";
  }

  // What decides such a setting's training besides kept_fingerprint's inputs: the logits it
  // read in the old model's slot (their bytes) and whether it started from the shared warm-up.
  std::string searched_fingerprint(const std::string& method, std::uint64_t seed, const Setting& s,
                                   const std::map<std::string, torch::Tensor>& fixed, bool warm) const {
    auto j = json::parse(kept_fingerprint(method, seed, s));
    for (const char* split : {"train", "validation"}) {
      const auto t = fixed.at(split).contiguous();
      j["old_logits"][split] = fmt::format("{:016x}", core::hash64({static_cast<const char*>(t.data_ptr()), t.nbytes()}));
    }
    j["shared_warmup"] = warm;
    return j.dump();
  }

  // The setting's trained model, its strategy's parameters (the gate) and the gate's step count.
  static void save_searched(const fs::path& file, const std::string& fingerprint, nn::ClassifierModule& model, train::CompatibilityStrategy& strategy,
                            const std::vector<std::int64_t>& gate_steps) {
    std::map<std::string, torch::Tensor> tensors;
    for (const auto& p : model.named_parameters()) tensors["model." + p.key()] = p.value().detach();
    for (const auto& b : model.named_buffers()) tensors["model." + b.key()] = b.value();
    const auto params = strategy.parameters();
    for (std::size_t i = 0; i < params.size(); ++i) tensors[fmt::format("strategy.{}", i)] = params[i].detach();
    fs::create_directories(file.parent_path());
    nn::write_tensors(file, tensors,
                      {{"format", "flipless-search-setting"},
                       {"fingerprint", fingerprint},
                       {"gate_steps", gate_steps.empty() ? std::string() : std::to_string(gate_steps.back())}});
  }
  static std::vector<std::int64_t> load_searched(const fs::path& file, nn::ClassifierModule& model, train::CompatibilityStrategy& strategy) {
    const auto st = io::SafetensorsFile::open(file);
    torch::NoGradGuard no_grad;
    for (auto& p : model.named_parameters()) p.value().copy_(nn::read_tensor(st, "model." + p.key()));
    for (auto& b : model.named_buffers()) b.value().copy_(nn::read_tensor(st, "model." + b.key()));
    auto params = strategy.parameters();
    for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(nn::read_tensor(st, fmt::format("strategy.{}", i)));
    const auto it = st.metadata().find("gate_steps");
    if (it == st.metadata().end() || it->second.empty()) return {};
    return {std::stoll(it->second)};
  }

  // Once the unit is written: its kept settings, and the folders above them left empty.
  void remove_searched(const std::string& method, std::uint64_t seed) const {
    std::error_code ec;  // tidying: a folder that cannot be removed stays
    fs::remove_all(searching_dir(method, seed), ec);
    for (auto p = searching_dir(method, seed).parent_path(); p != dir_ / "trained"; p = p.parent_path()) {
      if (!fs::is_directory(p, ec) || !fs::is_empty(p, ec) || !fs::remove(p, ec)) break;
    }
    if (fs::is_directory(dir_ / "trained", ec) && fs::is_empty(dir_ / "trained", ec)) fs::remove(dir_ / "trained", ec);
  }

  // Writes the chosen setting's predictions, gate and model, and its result.
  void write_strategy_unit(const MethodConfig& m, const methods::Descriptor& method, std::uint64_t seed, const fs::path& dir, const Outcome& best,
                           const std::vector<Candidate>& candidates, double reference, std::optional<std::uint64_t> searched_on,
                           Clock::time_point started) {
    fs::create_directories(dir / "predictions");
    const bool gf = method.gated;
    data::write_predictions(dir / "predictions" / "validation.jsonl",
                            rows_of(data_.validation, best.validation, gf ? best.validation_embedding : torch::Tensor(),
                                    gf ? best.validation_gates : torch::Tensor()));
    if (gf) data::write_predictions(dir / "predictions" / "validation.new_model_alone.jsonl", rows_of(data_.validation, best.validation_alone));
    data::write_predictions(dir / "predictions" / "dev.jsonl",
                            rows_of(data_.dev, best.dev, gf ? best.dev_embedding : torch::Tensor(), best.dev_gates));
    auto r = base_result(m.name, seed);
    if (best.dev_alone.defined()) {
      data::write_predictions(dir / "predictions" / "dev.new_model_alone.jsonl", rows_of(data_.dev, best.dev_alone));
      r.dev_accuracy_new_model_alone = accuracy(best.dev_alone, labels_["dev"]);
      r.dev_nfr_new_model_alone = nfr(old(seed).at("dev"), best.dev_alone, labels_["dev"]);
    }
    if (!best.gate_parameters.empty()) train::save_gate(dir / "model", best.gate_parameters);
    space_->save(dir / "model", *best.model,
                 {{"seed", seed}, {"train_data", t_.train}, {"method", {{"name", m.name}, {"setting", best.candidate.setting.describe()}}}});
    r.chosen = described(best.candidate);
    r.candidates = described(candidates);
    if (gf) {
      r.gate_steps = best.gate_steps;
      r.shared_warmup = best.candidate.setting.number("warmup") != 0 && shares_warmup();
    }
    r.reference_validation_accuracy = reference;
    r.fallback = !best.candidate.on_par;
    r.searched_on_seed = searched_on.value_or(seed);
    r.validation_accuracy = best.candidate.validation_accuracy;
    r.validation_nfr = best.candidate.validation_nfr;
    finish(dir, r, best.dev, started);
  }

  // Training strategies (distillation, Gated Fusion, ...): one training per setting; the best
  // on validation (see better()) is kept.
  void run_strategy(const MethodConfig& m, const methods::Descriptor& method, std::uint64_t seed, const fs::path& dir, Clock::time_point started) {
    std::optional<std::uint64_t> searched_on;
    const auto settings = settings_for(m, m.name, seed, searched_on);
    const double reference = vanilla_validation_accuracy(seed);
    std::vector<Candidate> candidates;
    std::optional<Outcome> best;
    const auto tr = space_->source("train");
    const auto va = space_->source("validation");
    const auto dev = space_->source("dev");
    std::map<int, std::map<std::string, torch::Tensor>> references;  // ELODI: members -> mean logits per split
    for (std::size_t i = 0; i < settings.size(); ++i) {
      const auto& s = settings[i];
      progress(fmt::format("{} seed {} grid", m.name, seed), static_cast<std::int64_t>(i), static_cast<std::int64_t>(settings.size()), s.describe());
      const auto sc = train::strategy_config(method, s.numbers, s.words, {seed, space_->dim(), data_.num_labels});
      auto strategy = train::make_strategy(sc);
      auto model = space_->make(seed);
      // A setting whose training never reads the old model is kept (see kept_weights) and taken
      // from there when another run of this new model already trained it.
      const auto kept = reads_old_model(method, s) ? fs::path() : kept_weights(m.name, seed, s);
      const auto fingerprint = kept.empty() ? std::string() : kept_fingerprint(m.name, seed, s);
      std::vector<std::int64_t> gate_steps;
      if (!kept.empty() && fs::exists(kept) && saved_fingerprint(kept) == fingerprint) {
        load_parameters(*model, kept);
        say(fmt::format("{}: {} seed {} [{}/{}]: trained weights taken from {} (its training never reads the old model)", t_.name, m.name, seed, i + 1,
                        settings.size(), kept.string()));
      } else {
        auto fixed = fixed_logits(method, s, seed, references);
        // Shared warm-up: Gated Fusion's first N-1 epochs are the vanilla model's (same seed, data
        // order and schedule; the gate draws from no shared stream), so every setting starts
        // its fused last epoch from the vanilla run's state.
        const bool warm = method.gated && s.number("warmup") != 0 && shares_warmup();
        // A grid's settings are kept while it is searched (see searched_setting).
        const auto searched = kept.empty() && settings.size() > 1 ? searched_setting(m.name, seed, s) : fs::path();
        const auto searched_print = searched.empty() ? std::string() : searched_fingerprint(m.name, seed, s, fixed, warm);
        if (!searched.empty() && fs::exists(searched) && saved_fingerprint(searched) == searched_print) {
          gate_steps = load_searched(searched, *model, *strategy);
          say(fmt::format("{}: {} seed {} [{}/{}]: trained by a stopped run of this search, taken from {}", t_.name, m.name, seed, i + 1,
                          settings.size(), searched.string()));
        } else {
          auto config = space_->train_config(seed);
          if (warm) config.resume = &warm_state(seed);
          gate_steps = train::train_with_strategy(*model, *strategy, *tr, fixed["train"], va.get(), fixed["validation"], config,
                                                  train_observer(fmt::format("{} seed {} [{}/{}]", m.name, seed, i + 1, settings.size())))
                           .strategy_parameter_steps;
          if (!kept.empty()) save_parameters(*model, kept, fingerprint);
          if (!searched.empty()) save_searched(searched, searched_print, *model, *strategy, gate_steps);
        }
      }
      Outcome o;
      o.candidate.setting = s;
      const auto pv = space_->predict(*model, *strategy, *va, old(seed).at("validation"));
      o.candidate.validation_accuracy = accuracy(pv.logits, labels_["validation"]);
      o.candidate.validation_nfr = nfr(old(seed).at("validation"), pv.logits, labels_["validation"]);
      o.candidate.on_par = o.candidate.validation_accuracy >= reference - c_.selection.tolerance;
      candidates.push_back(o.candidate);
      if (!better(o.candidate, best ? &best->candidate : nullptr)) continue;
      const auto pd = space_->predict(*model, *strategy, *dev, old(seed).at("dev"));
      o.validation = pv.logits;
      o.dev = pd.logits;
      o.dev_embedding = pd.embeddings;
      o.dev_gates = pd.gates;
      if (method.gated) {
        o.dev_alone = space_->predict(*model, *dev).logits;
        o.validation_embedding = pv.embeddings;
        o.validation_gates = pv.gates;
        o.validation_alone = space_->predict(*model, *va).logits;
      }
      o.model = model;
      o.gate_parameters = strategy->parameters();
      if (!gate_steps.empty()) o.gate_steps = gate_steps.back();
      best = std::move(o);
    }
    progress(fmt::format("{} seed {} grid", m.name, seed), static_cast<std::int64_t>(settings.size()), static_cast<std::int64_t>(settings.size()),
             best->candidate.setting.describe());
    write_strategy_unit(m, method, seed, dir, *best, candidates, reference, searched_on, started);
    remove_searched(m.name, seed);
    if (!method.gated) return;
    try {  // a diagnosis: a unit whose files do not allow it is named, and the run goes on
      write_gate_drift(c_, dir_, method, seed);
    } catch (const Error& e) {
      say(fmt::format("  {} {} seed {}: no gate.json ({})", t_.name, m.name, seed, e.what()));
    }
  }

  void run_new_ensemble(int size, std::uint64_t seed, const fs::path& dir, Clock::time_point started) {
    std::vector<std::vector<float>> val, dev;
    std::vector<std::uint64_t> seeds;
    for (int j = 0; j < size; ++j) {
      progress(fmt::format("new_ensemble-{} seed {} members", size, seed), j, size);
      const auto l = member_logits(seed, j);
      val.push_back(flat(l.at("validation")));
      dev.push_back(flat(l.at("dev")));
      seeds.push_back(member(seed, j).second);
    }
    progress(fmt::format("new_ensemble-{} seed {} members", size, seed), size, size);
    const auto k = static_cast<std::size_t>(data_.num_labels);
    auto as_rows = [&](const data::Dataset& ds, const ensemble::Vote& v) {
      auto rows = rows_of(ds, torch::from_blob(const_cast<float*>(v.mean_probs.data()), {static_cast<std::int64_t>(ds.size()), data_.num_labels})
                                  .clone()
                                  .clamp_min(1e-12)
                                  .log());
      rows.preds = v.labels;
      return rows;
    };
    const auto vv = ensemble::majority_vote(val, k), vd = ensemble::majority_vote(dev, k);
    fs::create_directories(dir / "predictions");
    data::write_predictions(dir / "predictions" / "validation.jsonl", as_rows(data_.validation, vv));
    data::write_predictions(dir / "predictions" / "dev.jsonl", as_rows(data_.dev, vd));
    // Accuracy and NFR from the vote labels (ties by mean probability), not the mean probabilities.
    auto one_hot = [&](const std::vector<std::int32_t>& labels) {
      auto t = torch::zeros({static_cast<std::int64_t>(labels.size()), data_.num_labels});
      for (std::size_t i = 0; i < labels.size(); ++i) t[static_cast<std::int64_t>(i)][labels[i]] = 1;
      return t;
    };
    auto r = base_result(fmt::format("new_ensemble-{}", size), seed);
    r.size = size;
    r.member_seeds = seeds;
    r.validation_accuracy = accuracy(one_hot(vv.labels), labels_["validation"]);
    r.validation_nfr = nfr(old(seed).at("validation"), one_hot(vv.labels), labels_["validation"]);
    finish(dir, r, one_hot(vd.labels), started);
  }

  void run_old_new(const MethodConfig& m, std::uint64_t seed, const fs::path& dir, Clock::time_point started) {
    const auto l = member_logits(seed, 0);
    const auto kind = methods::find(m.name)->probabilities ? ensemble::Kind::kProbabilities : ensemble::Kind::kLogits;
    const auto k = static_cast<std::size_t>(data_.num_labels);
    std::vector<std::int32_t> y;
    for (const auto& ex : data_.validation.examples) y.push_back(ex.label);
    const auto ov = flat(old(seed).at("validation")), nv = flat(l.at("validation"));
    const auto choice = ensemble::choose_alpha(y, ov, nv, k, kind, m.numbers.at("alpha"), c_.selection.tolerance);
    auto scores = [&](const std::vector<float>& s, std::int64_t n) {
      auto t = torch::from_blob(const_cast<float*>(s.data()), {n, data_.num_labels}).clone();
      return kind == ensemble::Kind::kProbabilities ? t.clamp_min(1e-12).log() : t;
    };
    const auto dev = scores(ensemble::combine(flat(old(seed).at("dev")), flat(l.at("dev")), k, kind, choice.alpha), static_cast<std::int64_t>(data_.dev.size()));
    const auto val = scores(ensemble::combine(ov, nv, k, kind, choice.alpha), static_cast<std::int64_t>(data_.validation.size()));
    fs::create_directories(dir / "predictions");
    data::write_predictions(dir / "predictions" / "validation.jsonl", rows_of(data_.validation, val));
    data::write_predictions(dir / "predictions" / "dev.jsonl", rows_of(data_.dev, dev));
    auto r = base_result(m.name, seed);
    r.candidates.emplace();
    Candidate chosen;
    for (const auto& c : choice.candidates) {
      Candidate cand;
      cand.setting.numbers["alpha"] = c.alpha;
      cand.validation_accuracy = c.accuracy;
      cand.validation_nfr = c.nfr;
      cand.on_par = c.on_par;
      r.candidates->push_back(described(cand));
      if (c.alpha == choice.alpha) chosen = cand;
    }
    r.chosen = described(chosen);
    r.fallback = choice.fallback;
    r.reference_validation_accuracy = choice.new_model_accuracy;
    r.validation_accuracy = chosen.validation_accuracy;
    r.validation_nfr = chosen.validation_nfr;
    finish(dir, r, dev, started);
  }

  void run_bcwi(const MethodConfig& m, std::uint64_t seed, const fs::path& dir, Clock::time_point started) {
    auto r = base_result(m.name, seed);
    if (!same_torch_model(c_.old_model, c_.new_model)) {
      r.status = "not_applicable";
      r.reason = c_.old_model.torch() ? "old and new models differ in architecture; BCWI interpolates the weights of one architecture"
                                      : "the old model is fastText; BCWI interpolates the weights of one torch architecture";
      fs::create_directories(dir);
      write_result(dir / "result.json", r);
      return;
    }
    // Schumann et al. 2023: fine-tune starting from the old weights, then interpolate.
    auto old_model = space_->make(old_seed(seed));
    load_parameters(*old_model, old_dir(seed) / "model" / "weights.safetensors");
    auto tuned = space_->make(seed);
    train::interpolate_parameters(*tuned, *old_model, *old_model, 0.0);
    const auto tr = space_->source("train");
    const auto va = space_->source("validation");
    const auto dev = space_->source("dev");
    train::train(*tuned, *tr, va.get(), space_->train_config(seed), train::cross_entropy_loss, train_observer(fmt::format("bcwi seed {}", seed)));
    const double reference = vanilla_validation_accuracy(seed);
    std::optional<Outcome> best;
    std::vector<Candidate> candidates;
    const auto settings = settings_of(m);
    for (const auto& s : settings) {
      auto mixed = space_->make(seed);
      train::interpolate_parameters(*mixed, *old_model, *tuned, s.number("alpha"));
      Outcome o;
      o.candidate.setting = s;
      o.validation = space_->predict(*mixed, *va).logits;
      o.candidate.validation_accuracy = accuracy(o.validation, labels_["validation"]);
      o.candidate.validation_nfr = nfr(old(seed).at("validation"), o.validation, labels_["validation"]);
      o.candidate.on_par = o.candidate.validation_accuracy >= reference - c_.selection.tolerance;
      candidates.push_back(o.candidate);
      if (!better(o.candidate, best ? &best->candidate : nullptr)) continue;
      o.dev = space_->predict(*mixed, *dev).logits;
      o.model = mixed;
      best = std::move(o);
    }
    fs::create_directories(dir / "predictions");
    data::write_predictions(dir / "predictions" / "validation.jsonl", rows_of(data_.validation, best->validation));
    data::write_predictions(dir / "predictions" / "dev.jsonl", rows_of(data_.dev, best->dev));
    space_->save(dir / "model", *best->model,
                 {{"seed", seed}, {"train_data", t_.train}, {"method", {{"name", m.name}, {"setting", best->candidate.setting.describe()}}}});
    r.chosen = described(best->candidate);
    r.candidates = described(candidates);
    r.reference_validation_accuracy = reference;
    r.fallback = !best->candidate.on_par;
    r.validation_accuracy = best->candidate.validation_accuracy;
    r.validation_nfr = best->candidate.validation_nfr;
    finish(dir, r, best->dev, started);
  }

  // A flipless variant of Gated Fusion (methods::gated_fusion_heldout): the seed's vanilla model,
  // frozen, with a gate fitted on the validation split (train::fit_gate). Each setting is judged
  // on cross-fitted validation outputs (every row fused by a gate fitted on the other folds);
  // the chosen setting's gate is refitted on the whole split and fuses the dev set.
  void run_heldout_gate(const MethodConfig& m, std::uint64_t seed, const fs::path& dir, Clock::time_point started) {
    const auto vanilla_dir = dir_ / "vanilla" / fmt::format("seed-{}", seed);
    // The vanilla unit stored its dev logits and embeddings; validation embeddings it did not.
    const auto stored = member_logits(seed, 0);  // trains the vanilla model when its unit has not run yet
    auto model = space_->make(seed);
    load_parameters(*model, vanilla_dir / "model" / "weights.safetensors");
    const auto pv = space_->predict(*model, *space_->source("validation"));
    const train::GateRows val{pv.embeddings, pv.logits, old(seed).at("validation"), labels_["validation"]};
    const train::GateRows dv{stored.at("dev_embedding"), stored.at("dev"), old(seed).at("dev"), labels_["dev"]};
    const double reference = accuracy(pv.logits, labels_["validation"]);
    auto fit_config = [&](const Setting& s) { return train::heldout_gate_config(s.numbers, seed); };
    std::optional<std::uint64_t> searched_on;
    const auto settings = settings_for(m, m.name, seed, searched_on);
    std::vector<Candidate> candidates;
    std::optional<std::pair<Candidate, nn::FusionOutput>> best;
    for (std::size_t i = 0; i < settings.size(); ++i) {
      progress(fmt::format("{} seed {} grid", m.name, seed), static_cast<std::int64_t>(i), static_cast<std::int64_t>(settings.size()), settings[i].describe());
      const auto out = train::cross_fit_gate(val, fit_config(settings[i]), kGateFolds);
      Candidate c;
      c.setting = settings[i];
      c.validation_accuracy = accuracy(out.logits, labels_["validation"]);
      c.validation_nfr = nfr(old(seed).at("validation"), out.logits, labels_["validation"]);
      c.on_par = c.validation_accuracy >= reference - c_.selection.tolerance;
      candidates.push_back(c);
      if (better(c, best ? &best->first : nullptr)) best.emplace(c, out);
    }
    progress(fmt::format("{} seed {} grid", m.name, seed), static_cast<std::int64_t>(settings.size()), static_cast<std::int64_t>(settings.size()),
             best->first.setting.describe());
    auto fitted = train::fit_gate(val, fit_config(best->first.setting));
    const auto fused = train::apply_gate(fitted.gate, dv);
    fs::create_directories(dir / "predictions");
    data::write_predictions(dir / "predictions" / "validation.jsonl", rows_of(data_.validation, best->second.logits, pv.embeddings, best->second.gate));
    data::write_predictions(dir / "predictions" / "validation.new_model_alone.jsonl", rows_of(data_.validation, pv.logits));
    data::write_predictions(dir / "predictions" / "dev.jsonl", rows_of(data_.dev, fused.logits, dv.embeddings, fused.gate));
    data::write_predictions(dir / "predictions" / "dev.new_model_alone.jsonl", rows_of(data_.dev, dv.new_logits));
    train::save_gate(dir / "model", fitted.gate->parameters());
    space_->save(dir / "model", *model,
                 {{"seed", seed}, {"train_data", t_.train}, {"method", {{"name", m.name}, {"setting", best->first.setting.describe()}}}});
    auto r = base_result(m.name, seed);
    r.dev_accuracy_new_model_alone = accuracy(dv.new_logits, labels_["dev"]);
    r.dev_nfr_new_model_alone = nfr(old(seed).at("dev"), dv.new_logits, labels_["dev"]);
    r.chosen = described(best->first);
    r.candidates = described(candidates);
    r.gate_steps = fitted.steps;
    r.reference_validation_accuracy = reference;
    r.fallback = !best->first.on_par;
    r.searched_on_seed = searched_on.value_or(seed);
    r.validation_accuracy = best->first.validation_accuracy;
    r.validation_nfr = best->first.validation_nfr;
    finish(dir, r, fused.logits, started);
  }

  // Runs one unit unless its result exists.
  void run_unit(const UnitInfo& u, const MethodConfig& m, int size, RunSummary& summary) {
    const fs::path dir = dir_ / u.method / fmt::format("seed-{}", u.seed);
    const bool done = fs::exists(dir / "result.json");
    if (obs_.on_unit) obs_.on_unit(u, done);
    if (done) {
      ++summary.skipped;
      return;
    }
    const auto started = Clock::now();
    const auto& method = *methods::find(m.name);  // a config names registered methods only
    switch (method.runner) {
      case methods::Runner::kVanilla:
        run_vanilla(u.seed, dir, started);
        break;
      case methods::Runner::kNewEnsemble:
        run_new_ensemble(size, u.seed, dir, started);
        break;
      case methods::Runner::kOldNewEnsemble:
        run_old_new(m, u.seed, dir, started);
        break;
      case methods::Runner::kBcwi:
        run_bcwi(m, u.seed, dir, started);
        break;
      case methods::Runner::kStrategy:
        run_strategy(m, method, u.seed, dir, started);
        break;
      case methods::Runner::kHeldOutGate:
        run_heldout_gate(m, u.seed, dir, started);
        break;
    }
    ++summary.ran;
    if (obs_.on_unit_done) obs_.on_unit_done(u, since(started), summary_of(dir));
  }

  std::string summary_of(const fs::path& dir) const { return summary(read_unit_result(dir / "result.json")); }

 private:
  const ExperimentConfig& c_;
  const TaskConfig& t_;
  const RunOptions& o_;
  const RunObserver& obs_;
  Execution exec_;
  fs::path dir_;
  TaskData data_;
  std::string precision_;
  std::map<std::string, torch::Tensor> labels_;
  std::map<std::uint64_t, std::map<std::string, torch::Tensor>> old_;  // by experiment seed (0 without per_seed)
  std::map<std::uint64_t, train::TrainState> warm_;
  std::unique_ptr<Space> space_;
};

#ifdef FLIPLESS_WITH_CACHE
// One split of a finished Gated Fusion unit as the cache experiment reads it.
FusionArrays fusion_arrays(const fs::path& unit, const fs::path& old_dir, const std::string& split, const std::vector<std::string>& label_names) {
  data::PredictionReadOptions scores;
  scores.keep_scores = true;
  data::PredictionReadOptions with_embeddings = scores;
  with_embeddings.keep_embeddings = true;
  const auto gf_path = unit / "predictions" / (split + ".jsonl");
  const auto alone_path = unit / "predictions" / (split + ".new_model_alone.jsonl");
  if (!fs::exists(alone_path)) {
    throw InputError(fmt::format("{}: missing; this Gated Fusion unit predates the cache experiment: delete {} to rerun it", alone_path.string(),
                                 unit.parent_path().string()));
  }
  const auto gf = data::read_predictions_file(gf_path, with_embeddings);
  const auto alone = data::read_predictions_file(alone_path, scores);
  const auto old = data::read_predictions_file(old_dir / "predictions" / (split + ".jsonl"), scores);
  if (gf.gates.empty()) throw InputError(fmt::format("{}: rows need a 'gate' value", gf_path.string()));
  if (alone.ids != gf.ids || old.ids != gf.ids) throw InputError(fmt::format("{}: ids differ from the old model's and the new model's files", gf_path.string()));
  FusionArrays a;
  a.num_labels = label_names.size();
  a.dim = gf.dim;
  a.old_logits = data::score_logits(old);
  a.new_logits = data::score_logits(alone);
  a.gates = gf.gates;
  a.embeddings = gf.embeddings;
  for (std::size_t i = 0; i < gf.size(); ++i) a.labels.push_back(data::label_index(gf, i, label_names));
  a.validate(split.c_str());
  return a;
}

// Whether a unit's cache.json exists and has every policy this version computes (one written
// by an earlier flipless is recomputed: it takes a second, from the unit's saved files).
bool cache_experiment_current(const fs::path& path) {
  if (!fs::exists(path)) return false;
  const auto j = read_json_file(path);
  if (!j.is_object() || !j.contains("policies") || !j.at("policies").is_array()) return false;
  for (const char* p : kCachePolicies) {
    if (std::find(j.at("policies").begin(), j.at("policies").end(), p) == j.at("policies").end()) return false;
  }
  return true;
}

// TASK/METHOD/seed-S/cache.json (table 5, Gated Fusion's units), from saved files only.
void write_cache_experiment(const ExperimentConfig& c, const fs::path& task_dir, const std::string& method, std::uint64_t seed) {
  const auto unit = task_dir / method / fmt::format("seed-{}", seed);
  const auto result_path = unit / "result.json";
  const auto result = read_unit_result(result_path);
  if (!result.chosen || !result.chosen->setting.numbers.count("temperature")) {
    throw InputError(fmt::format("{}: field 'chosen.setting.numbers.temperature': missing (not a Gated Fusion unit?)", result_path.string()));
  }
  const auto label_names = train::label_names_of_model(unit / "model");
  CacheExperimentInputs in;
  in.validation = fusion_arrays(unit, old_model_dir(c, task_dir, seed), "validation", label_names);
  in.dev = fusion_arrays(unit, old_model_dir(c, task_dir, seed), "dev", label_names);
  in.temperature = result.chosen->setting.number("temperature");
  if (!result.reference_validation_accuracy) {
    throw InputError(fmt::format("{}: field 'reference_validation_accuracy': missing (not a Gated Fusion unit?)", result_path.string()));
  }
  in.reference_validation_accuracy = *result.reference_validation_accuracy;
  in.tolerance = c.selection.tolerance;
  in.seed = seed;
  // A gate that reads the probabilities is re-evaluated on the old logits a policy substitutes
  // (float32, as flipless serve evaluates it).
  auto saved = train::load_gate(unit / "model", static_cast<std::int64_t>(label_names.size()));
  if (saved.old_confidence) {
    in.gate_of = [gate = saved.gate](const FusionArrays& a, const std::vector<float>& old_logits) mutable {
      return train::gate_values(gate, a.embeddings, a.new_logits, old_logits, static_cast<std::int64_t>(a.size()));
    };
  }
  write_json_file(unit / "cache.json", run_cache_experiment(in, c.cache_experiment));
}
#else
bool cache_experiment_current(const fs::path& path) { return fs::exists(path); }
void write_cache_experiment(const ExperimentConfig& c, const fs::path&, const std::string&, std::uint64_t) {
  throw ConfigError(fmt::format("{}: cache_experiment: this build has no cache (configured with FLIPLESS_WITH_CACHE=OFF)", c.source.string()));
}
#endif

std::string config_text(const ExperimentConfig& c) {
  const auto file = core::InputFile::open(c.source);
  return std::string(file.bytes());
}

}  // namespace

std::vector<UnitInfo> plan_units(const ExperimentConfig& c) {
  std::vector<UnitInfo> units;
  for (const auto& t : c.tasks) {
    for (const auto& m : c.methods) {
      for (int size : unit_sizes(m)) {
        for (auto seed : c.seeds) units.push_back({t.name, unit_folder(m, size), seed, 0, 0});
      }
    }
  }
  for (std::size_t i = 0; i < units.size(); ++i) {
    units[i].index = i + 1;
    units[i].total = units.size();
  }
  return units;
}

void preflight(const ExperimentConfig& c) {
  for (const auto* m : {&c.old_model, &c.new_model}) {
    if (!m->torch()) continue;
    try {
      const auto dir = models::resolve_model(m->model);
      const auto base = nn::BertConfig::from_json_file(dir / "config.json");
      if (m->layers > base.num_hidden_layers) {
        throw ConfigError(fmt::format("asked for {} layers, the model has {}", m->layers, base.num_hidden_layers));
      }
      if (static_cast<std::int64_t>(m->max_length) > base.max_sequence_length()) {
        throw ConfigError(fmt::format("max_length {}: the encoder covers at most {} tokens", m->max_length, base.max_sequence_length()));
      }
    } catch (const Error& e) {
      throw ConfigError(fmt::format("{}:{}: {}.model: {}", c.source.string(), m->line, m == &c.old_model ? "old" : "new", e.what()));
    }
  }
}

namespace {
// TASK/METHOD/seed-S/gate.json for a gate trained in the loop: its saved weights against the
// initialisation the unit's strategy builds again from the chosen setting and the seed (the
// gate's initial weights come from a stream of its own seeded by the unit's seed), and both
// gates' values on dev, from saved files only; units run before gate.json existed get theirs on
// the next run.
void write_gate_drift(const ExperimentConfig& c, const fs::path& task_dir, const methods::Descriptor& method, std::uint64_t seed) {
  const auto unit = task_dir / method.name / fmt::format("seed-{}", seed);
  const auto result_path = unit / "result.json";
  const auto result = read_unit_result(result_path);
  if (!result.applicable()) return;
  if (!result.chosen) throw InputError(fmt::format("{}: field 'chosen': missing (not a Gated Fusion unit?)", result_path.string()));
  const auto label_names = train::label_names_of_model(unit / "model");
  const auto num_labels = static_cast<std::int64_t>(label_names.size());
  auto trained = train::load_gate(unit / "model", num_labels);
  auto initial = train::load_gate(unit / "model", num_labels);  // the same module, given the initial weights below
  const auto config = train::strategy_config(method, result.chosen->setting.numbers, result.chosen->setting.words, {seed, trained.dim, num_labels});
  const auto built = train::make_strategy(config)->parameters();
  auto params = initial.gate->parameters();
  const auto gate_file = (unit / "model" / "gate.safetensors").string();
  if (built.size() != params.size()) throw ModelError(fmt::format("{}: {} gate tensors, the unit's setting builds {}", gate_file, params.size(), built.size()));
  torch::NoGradGuard no_grad;
  GateDrift drift;
  double change = 0, norm = 0;
  for (std::size_t i = 0; i < built.size(); ++i) {
    if (built[i].sizes() != params[i].sizes()) {
      throw ModelError(fmt::format("{}: tensor 'gate.{}' has shape {}, the unit's setting builds {}", gate_file, i, fmt::join(params[i].sizes(), "x"),
                                   fmt::join(built[i].sizes(), "x")));
    }
    const auto delta = params[i].to(torch::kFloat64) - built[i].to(torch::kFloat64);
    drift.max_abs_change = std::max(drift.max_abs_change, delta.abs().max().item<double>());
    if (built[i].dim() == 2) {  // the weight matrices; LayerNorm's weights start at 1 and the biases at 0
      change += delta.pow(2).sum().item<double>();
      norm += built[i].to(torch::kFloat64).pow(2).sum().item<double>();
    }
    params[i].copy_(built[i]);
  }
  drift.weight_change = norm > 0 ? std::sqrt(change / norm) : 0;
  // Both gates on the dev rows the unit saved: the trained model's embeddings, and the old and
  // new logits for a gate that reads the probabilities.
  data::PredictionReadOptions scores;
  scores.keep_scores = true;
  data::PredictionReadOptions with_embeddings = scores;
  with_embeddings.keep_embeddings = true;
  const auto dev_path = unit / "predictions" / "dev.jsonl";
  const auto dev = data::read_predictions_file(dev_path, with_embeddings);
  const auto alone = data::read_predictions_file(unit / "predictions" / "dev.new_model_alone.jsonl", scores);
  const auto old = data::read_predictions_file(old_model_dir(c, task_dir, seed) / "predictions" / "dev.jsonl", scores);
  if (alone.ids != dev.ids || old.ids != dev.ids) throw InputError(fmt::format("{}: ids differ from the old model's and the new model's files", dev_path.string()));
  const auto n = static_cast<std::int64_t>(dev.size());
  const auto new_logits = data::score_logits(alone), old_logits = data::score_logits(old);
  const auto a = train::gate_values(trained.gate, dev.embeddings, new_logits, old_logits, n);
  const auto a0 = train::gate_values(initial.gate, dev.embeddings, new_logits, old_logits, n);
  double moved = 0, sum = 0, squares = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - a0[i];
    moved += std::abs(d);
    sum += d;
    squares += d * d;
  }
  if (!a.empty()) {
    const auto rows = static_cast<double>(a.size());
    drift.output_change = moved / rows;
    drift.output_change_spread = std::sqrt(std::max(0.0, squares / rows - (sum / rows) * (sum / rows)));
  }
  write_result(unit / "gate.json", drift);
}

void run_units(const ExperimentConfig& c, const RunOptions& o, const RunObserver& observer, RunSummary& summary);

// The config method a unit belongs to (new_ensemble-5 -> new_ensemble).
std::string unit_method(const ExperimentConfig& c, const UnitInfo& u) {
  for (const auto& m : c.methods) {
    if (u.method == m.name || u.method.rfind(m.name + "-", 0) == 0) return m.name;
  }
  return u.method;
}

void check_only(const ExperimentConfig& c, const RunOptions& o) {
  for (const auto& name : o.only) {
    if (!c.has_method(name)) {
      std::vector<std::string> names;
      for (const auto& m : c.methods) names.push_back(m.name);
      throw ConfigError(fmt::format("--only {}: not a method of experiment {} (its methods: {})", name, c.name, fmt::join(names, ", ")));
    }
  }  for (const auto seed : o.seeds) {
    if (std::find(c.seeds.begin(), c.seeds.end(), seed) == c.seeds.end()) {
      throw ConfigError(fmt::format("--seeds {}: not a seed of experiment {} (its seeds: {})", seed, c.name, fmt::join(c.seeds, ", ")));
    }
  }
}
}  // namespace

namespace {
// One run per folder at a time: two runs of one folder would train the same units twice and race
// on their files. An advisory lock on RUN/.lock, held while the run lasts and released by the
// kernel when the process ends, however it ends (a killed run leaves no stale lock).
class FolderLock {
 public:
  explicit FolderLock(const fs::path& dir) {
    const auto path = dir / kRunLockName;
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw IoError(fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      ::close(fd_);
      if (error != EWOULDBLOCK) throw IoError(fmt::format("{}: cannot lock: {}", path.string(), std::strerror(error)));  // e.g. a file system without locks
      throw ConfigError(fmt::format("{}: another flipless experiment run is using this folder ({} is locked); wait for it to end, or give another --out",
                                    dir.string(), path.filename().string()));
    }
  }
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;
  ~FolderLock() { ::close(fd_); }

 private:
  int fd_ = -1;
};
}  // namespace

RunSummary run_experiment(const ExperimentConfig& c, const RunOptions& o, const RunObserver& observer) {
  const auto started = Clock::now();
  preflight(c);
  check_only(c, o);
  const int threads = o.threads > 0 ? o.threads : c.threads > 0 ? c.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  train::set_threads(threads);  // torch and OpenBLAS pools
  const bool fresh = !fs::exists(o.out);
  fs::create_directories(o.out);
  RunSummary summary;
  try {
    const FolderLock lock(o.out);
    run_units(c, o, observer, summary);
  } catch (const Error&) {
    // A run refused before any unit finished leaves nothing behind in a folder it created, so
    // the corrected config can use the same folder.
    if (fresh && summary.ran == 0) fs::remove_all(o.out);
    throw;
  }
  summary.seconds = since(started);
  return summary;
}

namespace {
void run_units(const ExperimentConfig& c, const RunOptions& o, const RunObserver& observer, RunSummary& summary) {
  const auto stored = o.out / "experiment.yaml";
  const auto text = config_text(c);
  if (fs::exists(stored)) {
    const auto file = core::InputFile::open(stored);
    if (std::string(file.bytes()) != text) {
      // An extension (more methods or seeds, every existing unit unchanged) continues the run.
      const auto previous = parse_experiment(std::string(file.bytes()), stored);
      const auto has_results = [&](const std::string& method) {
        for (const auto& t : previous.tasks) {
          const auto task_dir = o.out / t.name;
          if (!fs::exists(task_dir)) continue;
          for (const auto& e : fs::directory_iterator(task_dir)) {
            const auto name = e.path().filename().string();
            if (name != method && name.rfind(method + "-", 0) != 0) continue;  // new_ensemble-5
            for (const auto& unit : fs::directory_iterator(e.path())) {
              if (fs::exists(unit.path() / "result.json")) return true;
            }
          }
        }
        return false;
      };
      const auto why = incompatible_change(previous, c, has_results);
      if (!why.empty()) {
        throw ConfigError(fmt::format("{} holds the results of a different experiment ({}: {}); give another --out, or delete it to start over",
                                      o.out.string(), stored.string(), why));
      }
      core::write_file_atomic(stored, text);
    }
  } else {
    core::write_file_atomic(stored, text);
  }
  const auto units = plan_units(c);
  summary.units = units.size();
  const auto selected = [&](const std::string& method) { return o.only.empty() || std::find(o.only.begin(), o.only.end(), method) != o.only.end(); };
  const auto seed_selected = [&](std::uint64_t seed) { return o.seeds.empty() || std::find(o.seeds.begin(), o.seeds.end(), seed) != o.seeds.end(); };
  const auto unit_done = [&](const TaskConfig& t, const UnitInfo& u) {
    return fs::exists(o.out / t.name / u.method / fmt::format("seed-{}", u.seed) / "result.json");
  };
  // A later seed of a method that searches its grid on the first seed waits for that seed's unit
  // (with --seeds leaving the first seed out): run now, it would search a grid of its own and
  // differ from the run done in one go.
  const auto waits_for_search = [&](const TaskConfig& t, const MethodConfig& m, const UnitInfo& u) {
    const auto runs = methods::find(m.name)->runner;  // the runners that take the first seed's setting
    if (runs != methods::Runner::kStrategy && runs != methods::Runner::kHeldOutGate) return false;
    if (c.selection.search != "first_seed" || u.seed == c.seeds.front() || settings_of(m).size() < 2 || seed_selected(c.seeds.front())) return false;
    return !fs::exists(o.out / t.name / u.method / fmt::format("seed-{}", c.seeds.front()) / "result.json");
  };
  std::size_t next = 0;
  for (const auto& t : c.tasks) {
    // Every unit of the task done: nothing to load.
    bool pending = false;
    for (const auto& u : units) {
      pending |= u.task == t.name && selected(unit_method(c, u)) && seed_selected(u.seed) && !unit_done(t, u);
    }
    TaskRunner runner(c, t, o, observer);
    if (pending) runner.prepare();
    for (const auto& m : c.methods) {
      for (int size : unit_sizes(m)) {
        for (std::size_t s = 0; s < c.seeds.size(); ++s) {
          const auto& u = units[next++];
          if ((!selected(m.name) || !seed_selected(u.seed)) && !unit_done(t, u)) {
            ++summary.left;
            continue;
          }
          if (pending && !unit_done(t, u) && waits_for_search(t, m, u)) {
            if (observer.message) {
              observer.message(fmt::format("  {} {} seed {}: left for later: it takes the setting seed {} chooses (search: first_seed), and that unit is not done",
                                           t.name, u.method, u.seed, c.seeds.front()));
            }
            ++summary.left;
            continue;
          }
          if (!pending) {
            if (observer.on_unit) observer.on_unit(u, true);
            ++summary.skipped;
            continue;
          }
          runner.run_unit(u, m, size, summary);
        }
        if (const auto* d = methods::find(m.name); d->gated && d->runner == methods::Runner::kStrategy && selected(m.name)) {
          for (const auto seed : c.seeds) {
            if (!seed_selected(seed)) continue;
            // Units that finished before gate.json existed get theirs here; a diagnosis, so a
            // unit whose files do not allow it is named and the run goes on.
            const auto unit = o.out / t.name / m.name / fmt::format("seed-{}", seed);
            if (fs::exists(unit / "gate.json") || !fs::exists(unit / "model" / "gate.safetensors") || !fs::exists(unit / "result.json")) continue;
            try {
              write_gate_drift(c, o.out / t.name, *d, seed);
            } catch (const Error& e) {
              if (observer.message) observer.message(fmt::format("  {} {} seed {}: no gate.json ({})", t.name, m.name, seed, e.what()));
            }
          }
        }
        if (methods::find(m.name)->cache_experiment && c.cache_experiment.enabled() && selected(m.name)) {
          for (const auto seed : c.seeds) {
            if (!seed_selected(seed)) continue;
            if (cache_experiment_current(o.out / t.name / m.name / fmt::format("seed-{}", seed) / "cache.json")) continue;
            const auto cache_started = Clock::now();
            write_cache_experiment(c, o.out / t.name, m.name, seed);
            if (observer.message) observer.message(fmt::format("  {} {} seed {}: cache experiment ({:.1f}s)", t.name, m.name, seed, since(cache_started)));
          }
        }
      }
    }
  }
}
}  // namespace

}  // namespace flipless::runner
