#include "flipless/compare/compare.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>

#include "flipless/core/error.h"

namespace flipless::compare {

namespace {

using data::PredictionFile;

std::optional<long long> as_index(std::string_view s) {
  long long v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

// The first line of `file` whose label or pred uses `code`.
std::pair<std::uint32_t, std::string_view> first_use(const PredictionFile& file, std::int32_t code) {
  for (std::size_t i = 0; i < file.size(); ++i) {
    if (file.preds[i] == code) return {file.lines[i], "pred"};
    if (!file.labels.empty() && file.labels[i] == code) return {file.lines[i], "label"};
  }
  return {0, "label"};
}

// The first line of `file` whose pred uses `code`.
std::uint32_t first_pred_use(const PredictionFile& file, std::int32_t code) {
  for (std::size_t i = 0; i < file.size(); ++i) {
    if (file.preds[i] == code) return file.lines[i];
  }
  return 0;
}

// Whether token `t` of `file` is used as a true label / as a prediction.
bool used_in(const std::vector<std::int32_t>& codes, std::size_t t) {
  const auto code = -1 - static_cast<std::int32_t>(t);
  return std::find(codes.begin(), codes.end(), code) != codes.end();
}

constexpr std::string_view kUnknownLabel = "<not a label of the task>";

// Maps each file's label tokens to class indices and fixes the label set. A predicted label
// outside the task's set is an error (almost always a label-mapping mistake), or with
// `unknown_preds_wrong` a class of its own that is never the true one.
class LabelResolver {
 public:
  LabelResolver(const PredictionFile& old_file, const PredictionFile& new_file, std::vector<std::string> names,
                bool unknown_preds_wrong)
      : names_(std::move(names)) {
    const PredictionFile* files[] = {&old_file, &new_file};
    if (names_.empty()) {
      infer_names(files);
      // Inferred from the files: the task's labels are those the true labels use. A prediction
      // named by text outside them ('positive' where the labels are 0 and 1) is not a class of
      // the task.
      std::set<std::string> truth;
      for (const PredictionFile* f : files) {
        for (std::size_t t = 0; t < f->tokens.size(); ++t) {
          if (used_in(f->labels, t)) truth.insert(f->tokens[t]);
        }
      }
      for (const PredictionFile* f : files) {
        for (std::size_t t = 0; t < f->tokens.size() && !truth.empty(); ++t) {
          const std::string& tok = f->tokens[t];
          if (truth.contains(tok) || as_index(tok) || used_in(f->labels, t)) continue;
          if (!unknown_preds_wrong) {
            throw InputError(fmt::format(
                "{}:{}: field 'pred': label '{}' is not a label of the task [{}] (the true labels' set); "
                "pass --label-names when the task has more labels, or --unknown-preds-wrong to count such "
                "predictions as wrong",
                f->source, first_pred_use(*f, -1 - static_cast<std::int32_t>(t)), tok, fmt::join(truth, ", ")));
          }
          if (const auto at = std::find(names_.begin(), names_.end(), tok); at != names_.end()) names_.erase(at);
        }
      }
    }
    for (const PredictionFile* f : files) {
      if (f->num_scores != 0 && f->num_scores != names_.size()) {
        throw InputError(fmt::format("{}: rows have {} scores but the label set has {} labels [{}]", f->source,
                                     f->num_scores, names_.size(), fmt::join(names_, ", ")));
      }
    }
    const std::size_t known = names_.size();
    for (const PredictionFile* f : files) {
      std::vector<std::int32_t> map;
      for (std::size_t t = 0; t < f->tokens.size(); ++t) {
        const std::string& tok = f->tokens[t];
        const auto it = std::find(names_.begin(), names_.begin() + static_cast<std::ptrdiff_t>(known), tok);
        if (it != names_.begin() + static_cast<std::ptrdiff_t>(known)) {
          map.push_back(static_cast<std::int32_t>(it - names_.begin()));
        } else if (auto idx = as_index(tok); idx && static_cast<std::size_t>(*idx) < known) {
          map.push_back(static_cast<std::int32_t>(*idx));
        } else if (unknown_preds_wrong && !used_in(f->labels, t)) {
          // One extra class for every unknown prediction: never a true label, so always wrong.
          if (names_.size() == known) names_.emplace_back(kUnknownLabel);
          map.push_back(static_cast<std::int32_t>(known));
        } else {
          const auto [line, field] = first_use(*f, -1 - static_cast<std::int32_t>(t));
          throw InputError(
              fmt::format("{}:{}: field '{}': label '{}' is not in the label set [{}]{}", f->source, line, field, tok,
                          fmt::join(names_.begin(), names_.begin() + static_cast<std::ptrdiff_t>(known), ", "),
                          field == "pred" ? "; pass --unknown-preds-wrong to count such predictions as wrong" : ""));
        }
      }
      maps_.push_back(std::move(map));
    }
  }

  // The class index of an encoded value from file `which` (0 old, 1 new).
  std::int32_t resolve(int which, std::int32_t code) const {
    return code >= 0 ? code : maps_[static_cast<std::size_t>(which)][static_cast<std::size_t>(-1 - code)];
  }
  std::vector<std::string> names() const { return names_; }

 private:
  void infer_names(const PredictionFile* const (&files)[2]) {
    std::set<std::string> tokens;
    std::size_t width = 0;
    for (const PredictionFile* f : files) {
      tokens.insert(f->tokens.begin(), f->tokens.end());
      width = std::max(width, f->num_scores);
    }
    const bool all_int = std::all_of(tokens.begin(), tokens.end(), [](const std::string& t) { return as_index(t).has_value(); });
    if (all_int) {
      long long top = static_cast<long long>(width) - 1;
      for (const auto& t : tokens) top = std::max(top, *as_index(t));
      if (top > 100000) throw InputError(fmt::format("label index {} is implausibly large; pass --label-names", top));
      for (long long k = 0; k <= top; ++k) names_.push_back(std::to_string(k));
      return;
    }
    if (width != 0) {
      throw InputError(
          "one file names labels by text and another gives scores per class: pass --data or --label-names "
          "to say which score column is which label");
    }
    names_.assign(tokens.begin(), tokens.end());
  }

  std::vector<std::string> names_;
  std::vector<std::vector<std::int32_t>> maps_;
};

std::size_t word_count(const data::TextExample& ex) {
  auto count = [](std::string_view s) {
    std::size_t words = 0;
    bool in_word = false;
    for (char c : s) {
      const bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r';
      if (!space && !in_word) ++words;
      in_word = !space;
    }
    return words;
  };
  return count(ex.text_a) + (ex.text_b ? count(*ex.text_b) : 0);
}

void add_flip(metrics::FlipCounts& c, bool old_ok, bool new_ok) {
  (old_ok ? (new_ok ? c.both_correct : c.negative_flips) : (new_ok ? c.positive_flips : c.both_wrong)) += 1;
}

constexpr std::uint32_t kUnset = static_cast<std::uint32_t>(-1);

// The join by id: for each row of the old file, its row in the new file. Duplicate, extra and
// missing ids throw InputError naming the file and line.
std::vector<std::uint32_t> join_by_id(const PredictionFile& old_file, const PredictionFile& new_file) {
  std::unordered_map<std::string_view, std::uint32_t> old_index;
  old_index.reserve(old_file.size());
  for (std::size_t i = 0; i < old_file.size(); ++i) {
    const auto [it, inserted] = old_index.emplace(old_file.ids[i], static_cast<std::uint32_t>(i));
    if (!inserted) {
      throw InputError(fmt::format("{}:{}: field 'id': duplicate id '{}' (first on line {})", old_file.source,
                                   old_file.lines[i], old_file.ids[i], old_file.lines[it->second]));
    }
  }
  std::vector<std::uint32_t> new_row(old_file.size(), kUnset);
  for (std::size_t j = 0; j < new_file.size(); ++j) {
    const auto it = old_index.find(new_file.ids[j]);
    if (it == old_index.end()) {
      throw InputError(fmt::format("{}:{}: field 'id': id '{}' is not in {}", new_file.source, new_file.lines[j],
                                   new_file.ids[j], old_file.source));
    }
    if (new_row[it->second] != kUnset) {
      throw InputError(fmt::format("{}:{}: field 'id': duplicate id '{}' (first on line {})", new_file.source,
                                   new_file.lines[j], new_file.ids[j], new_file.lines[new_row[it->second]]));
    }
    new_row[it->second] = static_cast<std::uint32_t>(j);
  }
  if (new_file.size() != old_file.size()) {
    const std::size_t missing = old_file.size() - new_file.size();
    for (std::size_t i = 0; i < old_file.size(); ++i) {
      if (new_row[i] == kUnset) {
        throw InputError(fmt::format("{}:{}: field 'id': id '{}' is not in {} ({} ids missing there)", old_file.source,
                                     old_file.lines[i], old_file.ids[i], new_file.source, missing));
      }
    }
  }
  return new_row;
}

// True labels (out.y_true, out.labels_from): the dataset's, else the files'; where both exist
// they must agree. Returns each row's position in the dataset (empty without one).
std::vector<std::size_t> true_labels(Comparison& out, const PredictionFile& old_file, const PredictionFile& new_file,
                                     const std::vector<std::uint32_t>& new_row, const LabelResolver& labels, const data::Dataset* dataset) {
  const std::size_t n = old_file.size();
  out.y_true.resize(n);
  std::vector<std::size_t> example_of;  // dataset position of each row
  auto check_file_label = [&](const PredictionFile& f, int which, std::size_t row, std::int32_t truth, std::string_view from) {
    if (f.labels.empty() || f.labels[row] == PredictionFile::kMissing) return;
    const std::int32_t l = labels.resolve(which, f.labels[row]);
    if (l != truth) {
      throw InputError(fmt::format("{}:{}: field 'label': label '{}' of id '{}' disagrees with {} ('{}')", f.source,
                                   f.lines[row], out.label_names[static_cast<std::size_t>(l)], f.ids[row], from,
                                   out.label_names[static_cast<std::size_t>(truth)]));
    }
  };
  if (dataset != nullptr) {
    out.labels_from = dataset->name;
    if (!dataset->has_labels()) throw InputError(fmt::format("{}: the dataset has no labels", dataset->name));
    const auto index = dataset->index_by_id();
    example_of.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      const auto it = index.find(out.ids[i]);
      if (it == index.end()) {
        throw InputError(fmt::format("{}:{}: field 'id': id '{}' is not in dataset {}", old_file.source,
                                     old_file.lines[i], out.ids[i], dataset->name));
      }
      example_of[i] = it->second;
      out.y_true[i] = dataset->examples[it->second].label;
      check_file_label(old_file, 0, i, out.y_true[i], dataset->name);
      check_file_label(new_file, 1, new_row[i], out.y_true[i], dataset->name);
    }
    if (n != dataset->size()) {
      std::vector<bool> covered(dataset->size(), false);
      for (std::size_t pos : example_of) covered[pos] = true;
      const auto first = static_cast<std::size_t>(std::find(covered.begin(), covered.end(), false) - covered.begin());
      throw InputError(fmt::format("{}: {} examples of dataset {} have no prediction (first: id '{}')", old_file.source,
                                   dataset->size() - n, dataset->name, dataset->examples[first].id));
    }
    return example_of;
  }
  const bool old_has = !old_file.labels.empty(), new_has = !new_file.labels.empty();
  if (!old_has && !new_has) {
    throw InputError(fmt::format("{}: no true labels: add a 'label' field to the prediction files or pass --data",
                                 old_file.source));
  }
  out.labels_from = old_has ? old_file.source : new_file.source;
  for (std::size_t i = 0; i < n; ++i) {
    const PredictionFile& f = old_has ? old_file : new_file;
    const std::size_t row = old_has ? i : new_row[i];
    if (f.labels[row] == PredictionFile::kMissing) {
      throw InputError(fmt::format("{}:{}: field 'label': missing on this row", f.source, f.lines[row]));
    }
    out.y_true[i] = labels.resolve(old_has ? 0 : 1, f.labels[row]);
    if (old_has) check_file_label(new_file, 1, new_row[i], out.y_true[i], old_file.source);
  }
  return example_of;
}

// The old model's most confident correct answers the new one lost, at most `top_k`.
std::vector<FlipExample> top_negative_flips(const Comparison& out, const PredictionFile& old_file, const PredictionFile& new_file,
                                            const std::vector<std::uint32_t>& new_row, const data::Dataset* dataset,
                                            const std::vector<std::size_t>& example_of, std::size_t top_k) {
  const bool old_conf = !old_file.confidence.empty();
  const bool new_conf = !new_file.confidence.empty();
  std::vector<std::size_t> flips;
  for (std::size_t i = 0; i < out.ids.size(); ++i) {
    if (out.old_pred[i] == out.y_true[i] && out.new_pred[i] != out.y_true[i]) flips.push_back(i);
  }
  if (old_conf) {
    std::stable_sort(flips.begin(), flips.end(),
                     [&](std::size_t a, std::size_t b) { return old_file.confidence[a] > old_file.confidence[b]; });
  }
  std::vector<FlipExample> top;
  for (std::size_t k = 0; k < flips.size() && k < top_k; ++k) {
    const std::size_t i = flips[k];
    FlipExample ex{out.ids[i], out.y_true[i], out.old_pred[i], out.new_pred[i], {}, {}, {}, {}};
    if (old_conf) ex.old_confidence = old_file.confidence[i];
    if (new_conf) ex.new_confidence = new_file.confidence[new_row[i]];
    if (dataset != nullptr) {
      ex.text_a = dataset->examples[example_of[i]].text_a;
      ex.text_b = dataset->examples[example_of[i]].text_b;
    }
    top.push_back(std::move(ex));
  }
  return top;
}

// Flips by input length (words), and by the old model's confidence (tenths) when it gave
// scores; empty slices at both ends dropped, gaps in between kept so bins stay comparable.
void slices(Comparison& out, const PredictionFile& old_file, const data::Dataset* dataset, const std::vector<std::size_t>& example_of) {
  const std::size_t n = out.ids.size();
  if (dataset != nullptr) {
    static constexpr std::size_t kEdges[] = {5, 10, 20, 40};
    out.by_length = {{"1-5 words", {}}, {"6-10 words", {}}, {"11-20 words", {}}, {"21-40 words", {}}, {"41+ words", {}}};
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t words = word_count(dataset->examples[example_of[i]]);
      std::size_t b = 0;
      while (b < std::size(kEdges) && words > kEdges[b]) ++b;
      add_flip(out.by_length[b].counts, out.old_pred[i] == out.y_true[i], out.new_pred[i] == out.y_true[i]);
    }
  }
  if (!old_file.confidence.empty()) {
    for (int b = 0; b < 10; ++b) out.by_old_confidence.push_back({fmt::format("{:.1f}-{:.1f}", b / 10.0, (b + 1) / 10.0), {}});
    for (std::size_t i = 0; i < n; ++i) {
      const int b = std::clamp(static_cast<int>(std::floor(old_file.confidence[i] * 10.0f)), 0, 9);
      add_flip(out.by_old_confidence[static_cast<std::size_t>(b)].counts, out.old_pred[i] == out.y_true[i],
               out.new_pred[i] == out.y_true[i]);
    }
  }
  for (auto* s : {&out.by_length, &out.by_old_confidence}) {
    while (!s->empty() && s->back().counts.total() == 0) s->pop_back();
    while (!s->empty() && s->front().counts.total() == 0) s->erase(s->begin());
  }
}

}  // namespace

Comparison compare_predictions(const PredictionFile& old_file, const PredictionFile& new_file,
                               const data::Dataset* dataset, const CompareOptions& options) {
  Comparison out;
  out.old_source = old_file.source;
  out.new_source = new_file.source;
  const LabelResolver labels(old_file, new_file, dataset ? dataset->label_names : options.label_names,
                             options.unknown_preds_wrong);
  out.label_names = labels.names();
  const auto new_row = join_by_id(old_file, new_file);  // in the old file's order
  const std::size_t n = old_file.size();
  out.ids = old_file.ids;
  out.old_pred.resize(n);
  out.new_pred.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    out.old_pred[i] = labels.resolve(0, old_file.preds[i]);
    out.new_pred[i] = labels.resolve(1, new_file.preds[new_row[i]]);
  }
  const auto example_of = true_labels(out, old_file, new_file, new_row, labels, dataset);
  out.summary = metrics::summarize(out.y_true, out.old_pred, out.new_pred, out.label_names.size(), {}, options.bootstrap);
  out.top_negative_flips = top_negative_flips(out, old_file, new_file, new_row, dataset, example_of, options.top_k);
  slices(out, old_file, dataset, example_of);
  return out;
}

Gate parse_gate(std::string_view text) {
  static constexpr std::string_view kOps[] = {">=", "<=", ">", "<"};
  for (auto op : kOps) {
    const std::size_t at = text.find(op);
    if (at == std::string_view::npos) continue;
    std::string name(text.substr(0, at));
    std::string value(text.substr(at + op.size()));
    auto trim = [](std::string& s) {
      s.erase(0, s.find_first_not_of(' '));
      s.erase(s.find_last_not_of(' ') + 1);
    };
    trim(name);
    trim(value);
    const auto metric = metrics::metric_from_name(name);
    if (!metric) {
      std::vector<std::string_view> known;
      for (auto m : metrics::kAllMetrics) known.push_back(metrics::metric_name(m));
      throw ConfigError(fmt::format("--fail-if '{}': unknown metric '{}' (known: {})", text, name, fmt::join(known, ", ")));
    }
    double threshold = 0;
    const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), threshold);
    if (ec != std::errc() || ptr != value.data() + value.size() || value.empty() || !std::isfinite(threshold)) {
      throw ConfigError(fmt::format("--fail-if '{}': '{}' is not a number (rates are fractions: 0.02 for 2%)", text, value));
    }
    return Gate{*metric, std::string(op), threshold, std::string(text)};
  }
  throw ConfigError(fmt::format("--fail-if '{}': expected METRIC OP VALUE with OP one of > >= < <=, e.g. nfr>0.02", text));
}

bool gate_crossed(const Gate& gate, const metrics::FlipSummary& summary) {
  const auto& value = summary.value(gate.metric);
  if (!value) {
    throw InputError(fmt::format("--fail-if '{}': {} is undefined for these predictions", gate.text,
                                 metrics::metric_label(gate.metric)));
  }
  if (gate.op == ">") return *value > gate.threshold;
  if (gate.op == ">=") return *value >= gate.threshold;
  if (gate.op == "<") return *value < gate.threshold;
  return *value <= gate.threshold;
}

}  // namespace flipless::compare
