#pragma once
// An experiment: tasks, an old model, a new model, compatibility methods with their grids, seeds.
// Read from YAML and validated on load: an unknown key, a wrong type or a bad value is one
// ConfigError naming the file, line and key ("exp.yaml:12: methods.gated_fusion.lr2: ...").
// Torch-free, so configs can be checked (and reports written) without the ML build.
//
//   name: sst2-fasttext-to-minilm
//   tasks: [sst2]                       # or {name, train, eval, max_train, max_validation}
//   seeds: 3                            # or a list [0, 1, 2]
//   old: {kind: fasttext, cross_fit: 5}
//   new: {kind: frozen, model: minilm-l6, epochs: 10, lr: 1e-3, batch_size: 64}
//   methods:
//     vanilla: {}
//     gated_fusion: {drop_gate: [0.5, 0.8], temperature: [1.0, 1.4], lr2: [1e-4, 1e-3]}
//   selection: {tolerance: 0.001, search: every_seed}
//   cache_experiment: {percents: [0, 25, 50, 75, 100], draws: 5}
//   device: auto                        # cpu (default), cuda, cuda:N, auto (a GPU when visible)
//   precision: auto                     # auto (default): bf16 autocast for fine-tuned models where the
//                                       # device multiplies bf16 natively, else fp32; fp32, bf16, fp16 (GPU)
//   ensemble_members: extra             # or other_seeds: see ExperimentConfig::ensemble_members
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace flipless::experiment {

// One model: fastText, a head on frozen encoder features, or a fine-tuned encoder.
struct ModelConfig {
  std::string kind = "frozen";  // fasttext | frozen | finetuned
  std::string model;            // registered name (flipless models list) or checkpoint folder
  int line = 0;                 // where `model` is written, for errors found later
  std::int64_t layers = 0;      // 0: all
  std::string pooling = "mean";
  std::string head = "linear";  // fine-tuned: hf (the encoder type's Hugging Face head) by default
  std::int64_t head_hidden = 256;
  double dropout = 0.1;
  int epochs = 10;
  double lr = 1e-3;
  std::int64_t batch_size = 64;
  double weight_decay = 0.01;
  double warmup = 0.1;
  std::size_t max_length = 0;   // 0: 128 tokens, or fewer when the encoder's positions cover fewer
  // fastText
  int fasttext_epochs = 10;
  double fasttext_lr = 0.5;
  int fasttext_dim = 50;
  int fasttext_ngrams = 2;
  // Old model only: its logits for the training rows come from K models each trained without
  // that fold (K >= 2), so a method never learns from the old model's memorised training set.
  int cross_fit = 0;
  // Old model only: it saw this many of the training examples (a data-growth upgrade); 0: all.
  std::size_t max_train = 0;
  std::uint64_t seed = 0;  // old model only; new models take the experiment's seeds
  // Old model only: one old model per experiment seed S (trained with seed + S), each seed's
  // methods measured against its own old model, as the paper reports the old model over seeds.
  bool per_seed = false;
  bool torch() const { return kind != "fasttext"; }
};

struct TaskConfig {
  std::string name;         // label in tables: sst2, mrpc, qnli, ...
  std::string train;        // dataset spec; default NAME:train
  std::string eval;         // the regression set; default NAME:dev
  std::size_t max_train = 0;       // deterministic subsample of the train split (0: all)
  std::size_t max_validation = 0;  // and of the validation split
  // Columns of generic CSV / TSV / JSONL files (train and eval): as flipless data inspect's
  // --text-column, --text-pair-column, --label-column, --id-column, --hash-ids.
  std::string text_column = "text", text_pair_column, label_column = "label", id_column;
  bool hash_ids = false;
};

// A method's grid: every parameter a list of values (numbers, or words for `distance` and
// `reference`). Settings are the cartesian product, in key order.
struct MethodConfig {
  std::string name;
  std::map<std::string, std::vector<double>> numbers;
  std::map<std::string, std::vector<std::string>> words;
  std::vector<int> sizes;  // new_ensemble: ensemble sizes, each its own table row
};

// One point of a grid.
struct Setting {
  std::map<std::string, double> numbers;
  std::map<std::string, std::string> words;
  double number(const std::string& key) const { return numbers.at(key); }
  std::string describe() const;  // "drop_gate=0.5 lr2=0.001"
};
// The settings a method searches: its grid, less settings that cannot differ (Gated Fusion
// without warm-up has no lr2).
std::vector<Setting> settings_of(const MethodConfig& method);
// The plain cartesian product of a method's grid.
std::vector<Setting> grid_of(const MethodConfig& method);

struct SelectionConfig {
  double tolerance = 0.001;  // accuracy on par with vanilla: >= vanilla - tolerance (validation)
  std::string search = "every_seed";  // or first_seed: search once, reuse the setting
};

// The paper's section 3.3 / table 5: Gated Fusion with old logits cached for X% of the eval
// inputs, the rest answered by the nearest cached input or the new model alone.
//   cache_experiment: {percents: [0, 25, 50, 75, 100], draws: 5}
struct CacheExperimentConfig {
  std::vector<double> percents;  // X values in [0, 100]; empty: not run
  int draws = 5;                 // random caches per X and seed
  bool enabled() const { return !percents.empty(); }
};

// Published numbers to read the report beside (a paper's table, an earlier run): shown as extra
// columns of each task's main table, never used in any computation.
//   reference:
//     label: "the paper's table 2 (BERT-base -> ELECTRA-base)"
//     old_accuracy: {mrpc: 85.69}                  # % per task (optional)
//     methods:                                     # unit folder -> task -> [NFR %, accuracy %]
//       vanilla: {mrpc: [3.73, 88.58]}
//       new_ensemble-5: {mrpc: [3.24, 89.02]}
struct ReferenceNumbers {
  double nfr = 0, accuracy = 0;  // %
};
struct ReferenceConfig {
  std::string label;                                // empty: no reference
  std::map<std::string, double> old_accuracy;       // by task, %
  std::map<std::string, std::map<std::string, ReferenceNumbers>> methods;  // unit folder -> task -> numbers
  bool enabled() const { return !label.empty(); }
};

struct ExperimentConfig {
  std::filesystem::path source;  // the YAML file
  std::string name;
  std::vector<TaskConfig> tasks;
  std::vector<std::uint64_t> seeds;
  double validation_fraction = 0.1;
  std::uint64_t split_seed = 0;
  ModelConfig old_model, new_model;
  std::vector<MethodConfig> methods;  // in file order; vanilla is added first when absent
  SelectionConfig selection;
  CacheExperimentConfig cache_experiment;  // needs a gated method among the methods
  ReferenceConfig reference;               // published numbers shown beside the report's (optional)
  int threads = 0;
  std::string device = "cpu";      // where torch models train and predict
  std::string precision = "auto";  // autocast precision of torch models (auto: see above)
  // The new models a new-model ensemble of k (and ELODI's reference of k) is made of, besides
  // the seed's own vanilla model: "extra" (default): k-1 models trained for that seed alone
  // (seeds 1000+100s+j); "other_seeds": the vanilla models of the experiment's other seeds
  // first, then extra models shared by every seed (seeds 1001, 1002, ...) when k exceeds the
  // seed count. It costs no extra training when k <= seeds, but the seeds' ensembles overlap
  // (with k = seeds they are one ensemble), so their spread over seeds understates its variance.
  std::string ensemble_members = "extra";
  bool has_method(const std::string& method_name) const;
  const MethodConfig* method(const std::string& method_name) const;
};

// A method of Gated Fusion's family (methods::Descriptor::gated): trained with a gate, written
// with gate values and the new model alone.
bool is_gated_fusion(const std::string& method_name);

// The ensemble sizes of a method with sizes (each its own unit, new_ensemble-N), else {0}.
std::vector<int> unit_sizes(const MethodConfig& method);
// A unit's folder under TASK/: the method's name, with its size for methods with sizes
// (new_ensemble-5).
std::string unit_folder(const MethodConfig& method, int size);

// Every field that decides what a model computes, as one line ("kind=finetuned model=minilm-l6
// layers=2 ..."): two configs train the same model when their lines are equal.
std::string model_identity(const ModelConfig& m);

// Where a task's old model lives in a run folder: TASK/old, or TASK/old/seed-S with per_seed.
std::filesystem::path old_model_dir(const ExperimentConfig& config, const std::filesystem::path& task_dir, std::uint64_t seed);

// Why a run folder made with `stored` cannot take `now`, or "" when it can: `now` may add
// methods and seeds (keeping the first seed, on which first_seed searches) but must train and
// judge every existing unit the same way (tasks, split, old and new models, grids of existing
// methods, selection, cache experiment, device and precision). A method for which
// `has_results(name)` is false (none of its units finished) may change its grid or go.
std::string incompatible_change(const ExperimentConfig& stored, const ExperimentConfig& now,
                                const std::function<bool(const std::string&)>& has_results = {});

// Method names the runner knows, with the parameters each takes.
const std::vector<std::string>& experiment_methods();

// Parses and validates. Throws ConfigError("FILE:LINE: KEY: reason").
ExperimentConfig load_experiment(const std::filesystem::path& path);
ExperimentConfig parse_experiment(const std::string& yaml, const std::filesystem::path& source);

}  // namespace flipless::experiment
