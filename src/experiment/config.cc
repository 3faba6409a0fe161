#include "flipless/experiment/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <regex>
#include <set>
#include <thread>
#include <tuple>

#include "flipless/core/error.h"
#include "flipless/core/file.h"
#include "flipless/methods/method.h"

namespace flipless::experiment {

namespace {

// Bounds with reasons: past them a config is a typo, not a plan (each seed, fold, epoch and grid
// setting trains a model).
constexpr std::int64_t kMaxSeeds = 1000, kMaxEpochs = 1000, kMaxFolds = 20;
constexpr std::size_t kMaxGrid = 10000;

class Parser {
 public:
  explicit Parser(std::filesystem::path source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const YAML::Node& node, const std::string& key, const std::string& why) const {
    const int line = node.Mark().line >= 0 ? node.Mark().line + 1 : 0;
    throw ConfigError(fmt::format("{}:{}: {}: {}", source_.string(), line, key, why));
  }

  void expect_map(const YAML::Node& node, const std::string& key) const {
    if (!node.IsMap()) fail(node, key, "expected a mapping (key: value lines)");
  }

  // Refuses keys outside `allowed`.
  void only_keys(const YAML::Node& node, const std::string& where, const std::vector<std::string>& allowed) const {
    for (const auto& kv : node) {
      const auto k = kv.first.as<std::string>();
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
        fail(kv.first, where.empty() ? k : where + "." + k, fmt::format("unknown key (expected one of: {})", fmt::join(allowed, ", ")));
      }
    }
  }

  double number(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) fail(node, key, "expected a number");
    double v = 0;
    try {
      v = node.as<double>();
    } catch (const YAML::Exception&) {
      fail(node, key, fmt::format("expected a number, got '{}'", node.Scalar()));
    }
    if (!std::isfinite(v)) fail(node, key, fmt::format("must be a finite number, got '{}'", node.Scalar()));
    return v;
  }
  std::int64_t integer(const YAML::Node& node, const std::string& key) const {
    const double v = number(node, key);
    if (std::abs(v) > 9e15) fail(node, key, fmt::format("{} is far too large", node.Scalar()));
    if (v != static_cast<double>(static_cast<std::int64_t>(v))) fail(node, key, fmt::format("expected a whole number, got {}", node.Scalar()));
    return static_cast<std::int64_t>(v);
  }
  // A whole number in [min, max]; `what` says what each unit costs.
  std::int64_t bounded(const YAML::Node& node, const std::string& key, std::int64_t min, std::int64_t max, const char* what) const {
    const auto v = count(node, key, min);
    if (v > max) fail(node, key, fmt::format("{} is more than {} {}", v, max, what));
    return v;
  }
  std::int64_t count(const YAML::Node& node, const std::string& key, std::int64_t min) const {
    const auto v = integer(node, key);
    if (v < min) fail(node, key, fmt::format("must be at least {}, got {}", min, v));
    return v;
  }
  bool boolean(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) fail(node, key, "expected true or false");
    try {
      return node.as<bool>();
    } catch (const YAML::Exception&) {
      fail(node, key, fmt::format("expected true or false, got '{}'", node.Scalar()));
    }
  }
  std::string word(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) fail(node, key, "expected a string");
    return node.Scalar();
  }
  std::string one_of(const YAML::Node& node, const std::string& key, const std::vector<std::string>& allowed) const {
    const auto w = word(node, key);
    if (std::find(allowed.begin(), allowed.end(), w) == allowed.end()) {
      fail(node, key, fmt::format("'{}' is not one of: {}", w, fmt::join(allowed, ", ")));
    }
    return w;
  }
  // A scalar or a list of scalars.
  std::vector<YAML::Node> items(const YAML::Node& node, const std::string& key) const {
    std::vector<YAML::Node> out;
    if (node.IsSequence()) {
      for (const auto& n : node) out.push_back(n);
      if (out.empty()) fail(node, key, "empty list");
    } else if (node.IsScalar()) {
      out.push_back(node);
    } else {
      fail(node, key, "expected a value or a list of values");
    }
    return out;
  }

  ModelConfig model(const YAML::Node& node, const std::string& key, bool old) const {
    expect_map(node, key);
    std::vector<std::string> allowed = {"kind", "model", "layers", "pooling", "head", "head_hidden", "dropout", "epochs", "lr",
                                        "batch_size", "weight_decay", "warmup", "max_length", "fasttext_epochs", "fasttext_lr",
                                        "fasttext_dim", "fasttext_ngrams"};
    if (old) {
      allowed.push_back("cross_fit");
      allowed.push_back("seed");
      allowed.push_back("max_train");
      allowed.push_back("per_seed");
    }
    only_keys(node, key, allowed);
    ModelConfig m;
    if (!node["kind"]) fail(node, key + ".kind", "missing (fasttext, frozen or finetuned)");
    m.kind = one_of(node["kind"], key + ".kind", {"fasttext", "frozen", "finetuned"});
    if (m.torch()) {
      if (!node["model"]) fail(node, key + ".model", fmt::format("missing: a {} model needs a registered model name or a checkpoint folder", m.kind));
      m.model = word(node["model"], key + ".model");
      m.line = node["model"].Mark().line + 1;
      if (m.kind == "finetuned") {  // the paper's fine-tuning recipe scale, not the head's
        m.lr = 2e-5;
        m.epochs = 3;
        m.batch_size = 32;
        m.dropout = 0.1;
        m.head = "hf";
      }
    } else if (node["model"]) {
      fail(node["model"], key + ".model", "fastText models are trained by flipless; drop the key");
    }
    auto k = [&](const char* name) { return key + "." + name; };
    if (node["layers"]) m.layers = count(node["layers"], k("layers"), 0);
    if (node["pooling"]) m.pooling = one_of(node["pooling"], k("pooling"), {"mean", "cls", "pooler"});
    if (node["head"]) {
      m.head = one_of(node["head"], k("head"), {"linear", "mlp", "hf"});
      if (m.head == "hf" && m.kind != "finetuned") fail(node["head"], k("head"), "hf (Hugging Face's classification head) is for fine-tuned encoders");
    }
    if (node["head_hidden"]) m.head_hidden = count(node["head_hidden"], k("head_hidden"), 1);
    if (node["dropout"]) {
      m.dropout = number(node["dropout"], k("dropout"));
      if (m.dropout < 0 || m.dropout >= 1) fail(node["dropout"], k("dropout"), "must be in [0, 1)");
    }
    if (node["epochs"]) m.epochs = static_cast<int>(bounded(node["epochs"], k("epochs"), 1, kMaxEpochs, "epochs over the training set"));
    if (node["lr"]) {
      m.lr = number(node["lr"], k("lr"));
      if (!(m.lr > 0)) fail(node["lr"], k("lr"), "must be positive");
    }
    if (node["batch_size"]) m.batch_size = count(node["batch_size"], k("batch_size"), 1);
    if (node["weight_decay"]) {
      m.weight_decay = number(node["weight_decay"], k("weight_decay"));
      if (m.weight_decay < 0) fail(node["weight_decay"], k("weight_decay"), "must be >= 0");
    }
    if (node["warmup"]) {
      m.warmup = number(node["warmup"], k("warmup"));
      if (m.warmup < 0 || m.warmup >= 1) fail(node["warmup"], k("warmup"), "must be in [0, 1)");
    }
    if (node["max_length"]) m.max_length = static_cast<std::size_t>(count(node["max_length"], k("max_length"), 4));
    if (node["fasttext_epochs"]) {
      m.fasttext_epochs = static_cast<int>(bounded(node["fasttext_epochs"], k("fasttext_epochs"), 1, kMaxEpochs, "epochs over the training set"));
    }
    if (node["fasttext_lr"]) m.fasttext_lr = number(node["fasttext_lr"], k("fasttext_lr"));
    if (node["fasttext_dim"]) m.fasttext_dim = static_cast<int>(count(node["fasttext_dim"], k("fasttext_dim"), 1));
    if (node["fasttext_ngrams"]) m.fasttext_ngrams = static_cast<int>(count(node["fasttext_ngrams"], k("fasttext_ngrams"), 1));
    if (node["cross_fit"]) {
      m.cross_fit = static_cast<int>(bounded(node["cross_fit"], k("cross_fit"), 0, kMaxFolds, "folds, each a model trained once more"));
      if (m.cross_fit == 1) fail(node["cross_fit"], k("cross_fit"), "0 (off) or at least 2 folds");
    }
    if (node["max_train"]) m.max_train = static_cast<std::size_t>(count(node["max_train"], k("max_train"), 0));
    if (node["seed"]) m.seed = static_cast<std::uint64_t>(count(node["seed"], k("seed"), 0));
    if (node["per_seed"]) m.per_seed = boolean(node["per_seed"], k("per_seed"));
    return m;
  }

  TaskConfig task(const YAML::Node& node, const std::string& key) const {
    TaskConfig t;
    if (node.IsScalar()) {
      t.name = node.Scalar();
    } else {
      expect_map(node, key);
      only_keys(node, key, {"name", "train", "eval", "max_train", "max_validation", "text_column", "text_pair_column", "label_column", "id_column",
                            "hash_ids"});
      if (!node["name"]) fail(node, key + ".name", "missing");
      t.name = word(node["name"], key + ".name");
      if (node["train"]) t.train = word(node["train"], key + ".train");
      if (node["eval"]) t.eval = word(node["eval"], key + ".eval");
      if (node["max_train"]) t.max_train = static_cast<std::size_t>(count(node["max_train"], key + ".max_train", 0));
      if (node["max_validation"]) t.max_validation = static_cast<std::size_t>(count(node["max_validation"], key + ".max_validation", 0));
      if (node["text_column"]) t.text_column = word(node["text_column"], key + ".text_column");
      if (node["text_pair_column"]) t.text_pair_column = word(node["text_pair_column"], key + ".text_pair_column");
      if (node["label_column"]) t.label_column = word(node["label_column"], key + ".label_column");
      if (node["id_column"]) t.id_column = word(node["id_column"], key + ".id_column");
      if (node["hash_ids"]) t.hash_ids = boolean(node["hash_ids"], key + ".hash_ids");
    }
    if (t.name.empty() || !std::isalpha(static_cast<unsigned char>(t.name.front())) || t.name.find_first_of("/\\ .") != std::string::npos) {
      fail(node, key + ".name", fmt::format("'{}': a task name is one word starting with a letter (it names a folder)", t.name));
    }
    if (t.train.empty()) t.train = t.name + ":train";
    if (t.eval.empty()) t.eval = t.name + ":dev";
    return t;
  }

  MethodConfig method(const YAML::Node& node, const std::string& name, const YAML::Node& key_node) const {
    const auto* spec = methods::find(name);
    if (spec == nullptr) fail(key_node, "methods." + name, fmt::format("unknown method (known: {})", fmt::join(experiment_methods(), ", ")));
    MethodConfig m;
    m.name = name;
    const std::string key = "methods." + name;
    if (!node.IsNull() && !node.IsMap()) fail(node, key, "expected a mapping of parameters to values or lists ({} for defaults)");
    std::vector<std::string> allowed;
    for (const auto& p : spec->params) allowed.push_back(p.key);
    if (spec->sizes) allowed.push_back("sizes");
    if (node.IsMap()) only_keys(node, key, allowed);
    for (const auto& p : spec->params) {
      const auto pk = key + "." + p.key;
      const YAML::Node v = node.IsMap() ? node[p.key] : YAML::Node();
      if (p.type == methods::ParamType::kWord) {
        if (!v) {
          m.words[p.key] = p.words;
          continue;
        }
        for (const auto& item : items(v, pk)) m.words[p.key].push_back(one_of(item, pk, p.allowed));
      } else {
        if (!v) {
          m.numbers[p.key] = p.grid;
          continue;
        }
        for (const auto& item : items(v, pk)) {
          const double x = p.type == methods::ParamType::kBool ? (boolean(item, pk) ? 1.0 : 0.0) : number(item, pk);
          if (p.check) {
            if (const auto why = p.check(x); !why.empty()) fail(item, pk, why);
          }
          m.numbers[p.key].push_back(x);
        }
      }
    }
    std::size_t grid = 1;
    for (const auto& [k, v] : m.numbers) grid *= v.size();
    for (const auto& [k, v] : m.words) grid *= v.size();
    if (grid > kMaxGrid) fail(node, key, fmt::format("{} settings is more than {}: each trains a model", grid, kMaxGrid));
    if (spec->sizes) {
      const YAML::Node v = node.IsMap() ? node["sizes"] : YAML::Node();
      if (!v) {
        m.sizes = {5};
      } else {
        for (const auto& item : items(v, key + ".sizes")) {
          m.sizes.push_back(static_cast<int>(bounded(item, key + ".sizes", 2, kMaxSeeds, "models in one ensemble")));
        }
      }
    }
    return m;
  }

  // yaml-cpp keeps one value of a key given twice in a mapping; a config whose meaning
  // depends on which is refused, naming both lines.
  void refuse_duplicate_keys(const YAML::Node& node, const std::string& where) const {
    if (node.IsMap()) {
      std::map<std::string, int> seen;
      for (const auto& kv : node) {
        const auto k = kv.first.Scalar();
        const std::string path = where.empty() ? k : where + "." + k;
        const int line = kv.first.Mark().line + 1;
        if (const auto it = seen.find(k); it != seen.end()) fail(kv.first, path, fmt::format("given twice (also on line {})", it->second));
        seen.emplace(k, line);
        refuse_duplicate_keys(kv.second, path);
      }
    } else if (node.IsSequence()) {
      for (std::size_t i = 0; i < node.size(); ++i) refuse_duplicate_keys(node[i], fmt::format("{}[{}]", where, i));
    }
  }

  ExperimentConfig parse(const YAML::Node& root) const {
    if (!root.IsMap()) throw ConfigError(fmt::format("{}:1: expected a YAML mapping of experiment keys", source_.string()));
    refuse_duplicate_keys(root, "");
    only_keys(root, "", {"name", "tasks", "seeds", "validation_fraction", "split_seed", "old", "new", "methods", "selection", "threads",
                         "cache_experiment", "device", "precision", "reference", "ensemble_members"});
    ExperimentConfig c;
    c.source = source_;
    c.name = root["name"] ? word(root["name"], "name") : source_.stem().string();
    if (!root["tasks"]) fail(root, "tasks", "missing (e.g. tasks: [sst2])");
    std::set<std::string> task_names;
    const auto task_nodes = items(root["tasks"], "tasks");
    for (std::size_t i = 0; i < task_nodes.size(); ++i) {
      auto t = task(task_nodes[i], fmt::format("tasks[{}]", i));
      if (!task_names.insert(t.name).second) fail(task_nodes[i], fmt::format("tasks[{}]", i), fmt::format("task '{}' given twice", t.name));
      c.tasks.push_back(std::move(t));
    }
    if (!root["seeds"]) {
      c.seeds = {0, 1, 2, 3, 4};
    } else if (root["seeds"].IsScalar()) {
      const auto n = bounded(root["seeds"], "seeds", 1, kMaxSeeds, "seeds, each a full set of trainings");
      for (std::int64_t s = 0; s < n; ++s) c.seeds.push_back(static_cast<std::uint64_t>(s));
    } else {
      for (const auto& s : items(root["seeds"], "seeds")) c.seeds.push_back(static_cast<std::uint64_t>(count(s, "seeds", 0)));
      std::set<std::uint64_t> unique(c.seeds.begin(), c.seeds.end());
      if (unique.size() != c.seeds.size()) fail(root["seeds"], "seeds", "a seed is listed twice");
    }
    if (root["validation_fraction"]) {
      c.validation_fraction = number(root["validation_fraction"], "validation_fraction");
      if (!(c.validation_fraction > 0 && c.validation_fraction < 1)) fail(root["validation_fraction"], "validation_fraction", "must be in (0, 1)");
    }
    if (root["split_seed"]) c.split_seed = static_cast<std::uint64_t>(count(root["split_seed"], "split_seed", 0));
    if (root["threads"]) {
      const auto cores = static_cast<std::int64_t>(std::max(1u, std::thread::hardware_concurrency()));
      c.threads = static_cast<int>(count(root["threads"], "threads", 0));
      if (c.threads > cores) {
        fail(root["threads"], "threads", fmt::format("{} threads on {} cores oversubscribe them (OpenMP threads then spin); at most {} "
                                                     "(--threads overrides for one run)", c.threads, cores, cores));
      }
    }
    if (root["device"]) {
      c.device = word(root["device"], "device");
      static const std::regex kDevice("cpu|cuda|cuda:[0-9]+|auto");
      if (!std::regex_match(c.device, kDevice)) fail(root["device"], "device", fmt::format("'{}': expected cpu, cuda, cuda:N or auto", c.device));
    }
    if (root["precision"]) {
      c.precision = word(root["precision"], "precision");
      if (c.precision != "auto" && c.precision != "fp32" && c.precision != "bf16" && c.precision != "fp16") {
        fail(root["precision"], "precision", fmt::format("'{}': expected auto, fp32, bf16 or fp16", c.precision));
      }
      if (c.precision == "fp16" && c.device == "cpu") fail(root["precision"], "precision", "fp16 needs a GPU (device: cuda or auto); on the CPU use bf16");
    }
    if (root["ensemble_members"]) {
      c.ensemble_members = one_of(root["ensemble_members"], "ensemble_members", {"extra", "other_seeds"});
      const auto high = std::find_if(c.seeds.begin(), c.seeds.end(), [](std::uint64_t s) { return s > 1000; });
      if (c.ensemble_members == "other_seeds" && high != c.seeds.end()) {
        fail(root["ensemble_members"], "ensemble_members",
             fmt::format("other_seeds numbers its shared extra models 1001, 1002, ...: seed {} would be one of them (use seeds up to 1000)", *high));
      }
    }
    if (!root["old"]) fail(root, "old", "missing: the deployed model (e.g. old: {kind: fasttext})");
    if (!root["new"]) fail(root, "new", "missing: the model that replaces it (e.g. new: {kind: frozen, model: minilm-l6})");
    c.old_model = model(root["old"], "old", true);
    c.new_model = model(root["new"], "new", false);
    if (!c.new_model.torch()) fail(root["new"], "new.kind", "the new model must be a torch model (frozen or finetuned); fastText can only be the old one");
    if (root["methods"]) {
      const auto& m = root["methods"];
      expect_map(m, "methods");
      for (const auto& kv : m) {
        const auto name = kv.first.as<std::string>();
        c.methods.push_back(method(kv.second, name, kv.first));
      }
    }
    if (!c.has_method("vanilla")) c.methods.insert(c.methods.begin(), method(YAML::Node(), "vanilla", root));
    if (root["selection"]) {
      const auto& s = root["selection"];
      expect_map(s, "selection");
      only_keys(s, "selection", {"tolerance", "search"});
      if (s["tolerance"]) {
        c.selection.tolerance = number(s["tolerance"], "selection.tolerance");
        if (c.selection.tolerance < 0 || c.selection.tolerance > 1) fail(s["tolerance"], "selection.tolerance", "an accuracy difference in [0, 1] (0.001 = 0.1 point)");
      }
      if (s["search"]) c.selection.search = one_of(s["search"], "selection.search", {"every_seed", "first_seed"});
    }
    if (root["cache_experiment"]) {
      const auto& ce = root["cache_experiment"];
      expect_map(ce, "cache_experiment");
      only_keys(ce, "cache_experiment", {"percents", "draws"});
      if (!ce["percents"]) fail(ce, "cache_experiment.percents", "missing (e.g. percents: [0, 25, 50, 75, 100])");
      for (const auto& x : items(ce["percents"], "cache_experiment.percents")) {
        const double v = number(x, "cache_experiment.percents");
        if (!(v >= 0 && v <= 100)) fail(x, "cache_experiment.percents", fmt::format("a percentage in [0, 100], got {}", x.Scalar()));
        c.cache_experiment.percents.push_back(v);
      }
      if (ce["draws"]) c.cache_experiment.draws = static_cast<int>(count(ce["draws"], "cache_experiment.draws", 1));
      // Table 5 runs on the gated methods' units (the paper's Gated Fusion and the variants).
      std::vector<std::string> gated;
      bool any = false;
      for (const auto* d : methods::registry()) {
        if (!d->cache_experiment) continue;
        gated.push_back(d->name);
        any |= c.has_method(d->name);
      }
      if (!any) fail(ce, "cache_experiment", fmt::format("needs one of {} among the methods", fmt::join(gated, ", ")));
    }
    if (root["reference"]) c.reference = reference(root["reference"], c);
    return c;
  }

  // The optional reference block (see ReferenceConfig): every task a task of the experiment,
  // every method one of its unit folders, percentages in [0, 100].
  ReferenceConfig reference(const YAML::Node& r, const ExperimentConfig& c) const {
    expect_map(r, "reference");
    only_keys(r, "reference", {"label", "old_accuracy", "methods"});
    ReferenceConfig out;
    if (!r["label"]) fail(r, "reference.label", "missing (where the numbers come from, e.g. label: \"the paper's table 2\")");
    out.label = word(r["label"], "reference.label");
    if (out.label.empty()) fail(r["label"], "reference.label", "empty");
    auto percent = [&](const YAML::Node& n, const std::string& key) {
      const double v = number(n, key);
      if (v < 0 || v > 100) fail(n, key, fmt::format("a percentage in [0, 100], got {}", n.Scalar()));
      return v;
    };
    auto task_of = [&](const YAML::Node& key_node, const std::string& where) {
      const auto t = key_node.as<std::string>();
      if (std::none_of(c.tasks.begin(), c.tasks.end(), [&](const TaskConfig& x) { return x.name == t; })) {
        fail(key_node, where + "." + t, "not a task of this experiment");
      }
      return t;
    };
    if (r["old_accuracy"]) {
      expect_map(r["old_accuracy"], "reference.old_accuracy");
      for (const auto& kv : r["old_accuracy"]) {
        const auto t = task_of(kv.first, "reference.old_accuracy");
        out.old_accuracy[t] = percent(kv.second, "reference.old_accuracy." + t);
      }
    }
    if (!r["methods"]) fail(r, "reference.methods", "missing (method: {task: [NFR %, accuracy %]})");
    expect_map(r["methods"], "reference.methods");
    std::set<std::string> folders;
    for (const auto& m : c.methods) {
      for (int size : unit_sizes(m)) folders.insert(unit_folder(m, size));
    }
    for (const auto& kv : r["methods"]) {
      const auto folder = kv.first.as<std::string>();
      const auto where = "reference.methods." + folder;
      if (!folders.count(folder)) fail(kv.first, where, fmt::format("not a method of this experiment (one of: {})", fmt::join(folders, ", ")));
      expect_map(kv.second, where);
      for (const auto& tv : kv.second) {
        const auto t = task_of(tv.first, where);
        const auto key = where + "." + t;
        if (!tv.second.IsSequence() || tv.second.size() != 2) fail(tv.second, key, "expected [NFR %, accuracy %]");
        out.methods[folder][t] = {percent(tv.second[0], key), percent(tv.second[1], key)};
      }
    }
    return out;
  }

 private:
  std::filesystem::path source_;
};

}  // namespace

std::string Setting::describe() const {
  std::vector<std::string> parts;
  for (const auto& [k, v] : numbers) parts.push_back(fmt::format("{}={:g}", k, v));
  for (const auto& [k, v] : words) parts.push_back(fmt::format("{}={}", k, v));
  return parts.empty() ? "default" : fmt::format("{}", fmt::join(parts, " "));
}

std::vector<Setting> settings_of(const MethodConfig& method) {
  std::vector<Setting> out = grid_of(method);
  if (!is_gated_fusion(method.name)) return out;  // methods::Descriptor::gated
  // Gated Fusion without warm-up trains fused from the first epoch at the schedule's rate: lr2
  // (the warm-up's last-epoch rate) changes nothing there, so such settings carry no lr2 and
  // appear once.
  std::vector<Setting> unique;
  for (auto s : out) {
    if (s.numbers.count("warmup") && s.numbers.at("warmup") == 0) s.numbers.erase("lr2");
    bool seen = false;
    for (const auto& u : unique) seen |= u.numbers == s.numbers && u.words == s.words;
    if (!seen) unique.push_back(std::move(s));
  }
  return unique;
}

std::vector<Setting> grid_of(const MethodConfig& method) {
  std::vector<Setting> out(1);
  for (const auto& [key, values] : method.numbers) {
    std::vector<Setting> next;
    for (const auto& s : out) {
      for (double v : values) {
        auto t = s;
        t.numbers[key] = v;
        next.push_back(std::move(t));
      }
    }
    out = std::move(next);
  }
  for (const auto& [key, values] : method.words) {
    std::vector<Setting> next;
    for (const auto& s : out) {
      for (const auto& v : values) {
        auto t = s;
        t.words[key] = v;
        next.push_back(std::move(t));
      }
    }
    out = std::move(next);
  }
  return out;
}

bool is_gated_fusion(const std::string& method_name) {
  const auto* d = methods::find(method_name);
  return d != nullptr && d->gated;
}

std::string unit_folder(const MethodConfig& method, int size) { return size > 0 ? fmt::format("{}-{}", method.name, size) : method.name; }

std::vector<int> unit_sizes(const MethodConfig& method) {
  const auto* d = methods::find(method.name);
  return d != nullptr && d->sizes ? method.sizes : std::vector<int>{0};
}

std::filesystem::path old_model_dir(const ExperimentConfig& config, const std::filesystem::path& task_dir, std::uint64_t seed) {
  return config.old_model.per_seed ? task_dir / "old" / fmt::format("seed-{}", seed) : task_dir / "old";
}

std::string model_identity(const ModelConfig& m) {
  return fmt::format("kind={} model={} layers={} pooling={} head={} head_hidden={} dropout={:.17g} epochs={} lr={:.17g} batch_size={} "
                     "weight_decay={:.17g} warmup={:.17g} max_length={} fasttext_epochs={} fasttext_lr={:.17g} fasttext_dim={} "
                     "fasttext_ngrams={} cross_fit={} max_train={} seed={} per_seed={}",
                     m.kind, m.model, m.layers, m.pooling, m.head, m.head_hidden, m.dropout, m.epochs, m.lr, m.batch_size, m.weight_decay,
                     m.warmup, m.max_length, m.fasttext_epochs, m.fasttext_lr, m.fasttext_dim, m.fasttext_ngrams, m.cross_fit, m.max_train,
                     m.seed, m.per_seed);
}

namespace {
bool same_model(const ModelConfig& a, const ModelConfig& b) { return model_identity(a) == model_identity(b); }
bool same_task(const TaskConfig& a, const TaskConfig& b) {
  return std::tie(a.name, a.train, a.eval, a.max_train, a.max_validation, a.text_column, a.text_pair_column, a.label_column, a.id_column, a.hash_ids) ==
         std::tie(b.name, b.train, b.eval, b.max_train, b.max_validation, b.text_column, b.text_pair_column, b.label_column, b.id_column, b.hash_ids);
}
}  // namespace

std::string incompatible_change(const ExperimentConfig& stored, const ExperimentConfig& now,
                                const std::function<bool(const std::string&)>& has_results) {
  if (stored.tasks.size() != now.tasks.size() ||
      !std::equal(stored.tasks.begin(), stored.tasks.end(), now.tasks.begin(), same_task)) {
    return "its tasks differ";
  }
  if (stored.validation_fraction != now.validation_fraction || stored.split_seed != now.split_seed) return "its validation split differs";
  if (!same_model(stored.old_model, now.old_model)) return "its old model differs";
  if (!same_model(stored.new_model, now.new_model)) return "its new model differs";
  if (stored.selection.tolerance != now.selection.tolerance || stored.selection.search != now.selection.search) return "its selection differs";
  if (stored.cache_experiment.percents != now.cache_experiment.percents || stored.cache_experiment.draws != now.cache_experiment.draws) {
    return "its cache experiment differs";
  }
  if (stored.device != now.device || stored.precision != now.precision) return "its device or precision differs";
  if (now.seeds.empty() || stored.seeds.front() != now.seeds.front()) return "its first seed differs";
  for (auto seed : stored.seeds) {
    if (std::find(now.seeds.begin(), now.seeds.end(), seed) == now.seeds.end()) return fmt::format("seed {} is gone", seed);
  }
  // The models an ensemble or ELODI's reference is drawn from: with other_seeds they depend on
  // the seed list, so neither the policy nor (under it) the seeds change once such a unit ran.
  const bool members_ran = !has_results || has_results("new_ensemble") || has_results("elodi");
  if (members_ran && stored.ensemble_members != now.ensemble_members) return "its ensemble_members differs";
  if (members_ran && now.ensemble_members == "other_seeds" && stored.seeds != now.seeds) {
    return "its seeds differ, and with ensemble_members: other_seeds its ensembles are drawn from the seeds' models";
  }
  for (const auto& m : stored.methods) {
    if (has_results && !has_results(m.name)) continue;  // nothing of it to invalidate
    const auto* n = now.method(m.name);
    if (n == nullptr) return fmt::format("method {} is gone", m.name);
    if (n->numbers != m.numbers || n->words != m.words || n->sizes != m.sizes) return fmt::format("method {} has another grid", m.name);
  }
  return "";
}

bool ExperimentConfig::has_method(const std::string& method_name) const { return method(method_name) != nullptr; }

const MethodConfig* ExperimentConfig::method(const std::string& method_name) const {
  for (const auto& m : methods) {
    if (m.name == method_name) return &m;
  }
  return nullptr;
}

const std::vector<std::string>& experiment_methods() {
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> names;
    for (const auto* d : methods::registry()) names.push_back(d->name);
    return names;
  }();
  return kNames;
}

ExperimentConfig parse_experiment(const std::string& yaml, const std::filesystem::path& source) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(fmt::format("{}:{}: not valid YAML: {}", source.string(), e.mark.line + 1, e.msg));
  }
  try {
    return Parser(source).parse(root);
  } catch (const YAML::Exception& e) {  // anything the checks above did not anticipate
    throw ConfigError(fmt::format("{}:{}: {}", source.string(), e.mark.line + 1, e.msg));
  }
}

ExperimentConfig load_experiment(const std::filesystem::path& path) {
  const auto file = core::InputFile::open(path);
  return parse_experiment(std::string(file.bytes()), path);
}

}  // namespace flipless::experiment
