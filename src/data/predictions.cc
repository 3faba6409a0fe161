#include "flipless/data/predictions.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "delimited.h"
#include "flipless/core/error.h"
#include "flipless/core/utf8.h"
#include "json_row.h"

namespace flipless::data {

namespace {

using detail::JsonField;
using Kind = detail::JsonKind;

constexpr std::string_view kIdNames[] = {"id", "example_id", "idx", "guid"};
constexpr std::string_view kLabelNames[] = {"label", "y_true", "gold", "true_label"};
constexpr std::string_view kPredNames[] = {"pred", "prediction", "predicted_label", "y_pred"};
constexpr std::string_view kProbNames[] = {"probs", "probabilities", "prob"};
constexpr std::string_view kLogitNames[] = {"logits"};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Collects rows into a PredictionFile, checking each as it comes.
class Sink {
 public:
  Sink(PredictionFile& out, const PredictionReadOptions& options) : out_(out), options_(options) {}

  [[noreturn]] void fail(std::size_t line, std::string_view field, std::string_view message) const {
    throw InputError(fmt::format("{}:{}: field '{}': {}", out_.source, line, field, message));
  }

  void add(std::size_t line, std::string_view id_field, std::string id, std::string_view label_field,
           const std::optional<std::string>& label, std::string_view pred_field, const std::optional<std::string>& pred,
           std::string_view score_field, ScoreKind kind, const std::vector<double>& scores) {
    if (id.empty()) fail(line, id_field, "empty id");
    if (core::find_invalid_utf8(id)) fail(line, id_field, "invalid UTF-8");
    if (!pred && kind == ScoreKind::kNone) {
      throw InputError(fmt::format("{}:{}: no prediction: expected a field 'pred', 'probs' or 'logits'", out_.source, line));
    }
    // Every row carries the same kind of prediction as the first.
    const int shape = (pred ? 1 : 0) | (kind == ScoreKind::kProbs ? 2 : kind == ScoreKind::kLogits ? 4 : 0);
    if (out_.ids.empty()) {
      shape_ = shape;
      out_.score_kind = kind;
      out_.num_scores = scores.size();
    } else if (shape != shape_) {
      fail(line, pred ? pred_field : score_field, "this row's kind of prediction differs from the first row's");
    }
    float confidence = 0.0f;
    std::int32_t argmax = 0;
    if (kind != ScoreKind::kNone) {
      if (scores.size() < 2) fail(line, score_field, "expected an array of at least 2 scores");
      if (scores.size() != out_.num_scores) {
        fail(line, score_field, fmt::format("expected {} scores as in the first row, found {}", out_.num_scores, scores.size()));
      }
      double sum = 0.0;
      for (std::size_t k = 0; k < scores.size(); ++k) {
        const double s = scores[k];
        // Scores are kept as 32-bit floats: one past float's range (1e39) would become infinity.
        if (!(std::fabs(s) <= std::numeric_limits<float>::max())) {
          fail(line, score_field, fmt::format("scores must be finite 32-bit floats, found {}", s));
        }
        if (kind == ScoreKind::kProbs && (s < 0.0 || s > 1.0)) fail(line, score_field, "probabilities must lie in [0, 1]");
        if (s > scores[static_cast<std::size_t>(argmax)]) argmax = static_cast<std::int32_t>(k);
        sum += s;
      }
      const double top = scores[static_cast<std::size_t>(argmax)];
      if (kind == ScoreKind::kProbs) {
        if (std::fabs(sum - 1.0) > 1e-2) fail(line, score_field, fmt::format("probabilities sum to {:.4g}, not 1", sum));
        confidence = static_cast<float>(top);
      } else {
        double z = 0.0;
        for (double s : scores) z += std::exp(s - top);
        confidence = static_cast<float>(1.0 / z);
      }
      out_.confidence.push_back(confidence);
      if (options_.keep_scores) {
        for (double s : scores) out_.scores.push_back(static_cast<float>(s));
      }
    }
    out_.preds.push_back(pred ? token(line, pred_field, *pred) : argmax);
    if (label) {
      if (out_.labels.empty()) out_.labels.assign(out_.ids.size(), PredictionFile::kMissing);
      out_.labels.push_back(token(line, label_field, *label));
    } else if (!out_.labels.empty()) {
      out_.labels.push_back(PredictionFile::kMissing);
    }
    out_.ids.push_back(std::move(id));
    out_.lines.push_back(static_cast<std::uint32_t>(line));
  }

  // A row's Gated Fusion gate value; gates are kept only when every row has one in [0, 1].
  void gate(const JsonField& value) {
    if (value.present && value.kind == Kind::kNumber && value.number >= 0.0 && value.number <= 1.0) {
      out_.gates.push_back(static_cast<float>(value.number));
    }
  }

  bool wants_embeddings() const { return options_.keep_embeddings; }
  // A row's embedding (keep_embeddings): every row has one, all of the first row's width.
  void embedding(std::size_t line, const JsonField& value) {
    if (!value.present || value.kind != Kind::kArray || (value.all_numbers && value.numbers.empty())) {
      fail(line, "embedding", "expected a non-empty array of numbers (every row needs one)");
    }
    if (!value.all_numbers) fail(line, "embedding", "expected finite numbers within 32-bit float range");
    if (out_.dim == 0) out_.dim = value.numbers.size();
    if (value.numbers.size() != out_.dim) {
      fail(line, "embedding", fmt::format("expected {} numbers as in the first row, found {}", out_.dim, value.numbers.size()));
    }
    for (const double x : value.numbers) {
      if (!(std::fabs(x) <= std::numeric_limits<float>::max())) fail(line, "embedding", "expected finite numbers within 32-bit float range");
      out_.embeddings.push_back(static_cast<float>(x));
    }
  }

 private:
  std::int32_t token(std::size_t line, std::string_view field, const std::string& text) {
    if (text.empty()) fail(line, field, "empty label");
    if (core::find_invalid_utf8(text)) fail(line, field, "invalid UTF-8");
    const auto it = token_index_.find(text);
    if (it != token_index_.end()) return it->second;
    const auto code = -1 - static_cast<std::int32_t>(out_.tokens.size());
    out_.tokens.push_back(text);
    token_index_.emplace(text, code);
    return code;
  }

  PredictionFile& out_;
  const PredictionReadOptions& options_;
  std::unordered_map<std::string, std::int32_t> token_index_;
  int shape_ = 0;
};

// The members a prediction row is read for: every spelling of each role, then "gate" and
// "embedding"; a role is the range [first, first + count) of spellings, in order of preference.
struct RowKeys {
  struct Role {
    std::size_t first = 0, count = 0;
  };
  std::vector<std::string_view> names;
  Role id, label, pred, probs, logits;
  std::size_t gate = 0, embedding = 0;

  explicit RowKeys(bool with_embedding) {
    id = add(kIdNames);
    label = add(kLabelNames);
    pred = add(kPredNames);
    probs = add(kProbNames);
    logits = add(kLogitNames);
    gate = names.size();
    names.push_back("gate");
    embedding = names.size();
    if (with_embedding) names.push_back("embedding");
  }

  template <std::size_t N>
  Role add(const std::string_view (&spellings)[N]) {
    const Role role{names.size(), N};
    names.insert(names.end(), spellings, spellings + N);
    return role;
  }

  // The row's member for `role` under its first spelling present, or nullptr; `which` names it.
  const JsonField* find(const std::vector<JsonField>& fields, Role role, std::string_view& which) const {
    for (std::size_t i = role.first; i < role.first + role.count; ++i) {
      if (fields[i].present) {
        which = names[i];
        return &fields[i];
      }
    }
    return nullptr;
  }
};

void read_jsonl(const core::InputFile& file, Sink& sink) {
  const RowKeys keys(sink.wants_embeddings());
  std::vector<JsonField> fields(keys.names.size());
  detail::JsonRowParser parser;
  const std::vector<double> no_scores;
  core::LineCursor lines(file.bytes());
  std::string_view line;
  while (lines.next(line)) {
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    const std::size_t n = lines.line_number();
    Kind kind = Kind::kNull;
    try {
      kind = parser.read_object(line, keys.names, fields);
    } catch (const detail::JsonSyntaxError& e) {
      throw InputError(fmt::format("{}:{}:{}: invalid JSON: {}", file.source(), n, e.column, e.message));
    } catch (const detail::JsonFieldError& e) {
      sink.fail(n, e.field, e.message);
    }
    if (kind != Kind::kObject) {
      throw InputError(fmt::format("{}:{}: expected a JSON object, found a {}", file.source(), n, detail::json_kind_name(kind)));
    }
    auto text_of = [&](const JsonField* v, std::string_view field) -> std::string {
      if (v->kind == Kind::kString || v->kind == Kind::kNumber) return v->text;
      sink.fail(n, field, fmt::format("expected a string or number, found a {}", detail::json_kind_name(v->kind)));
    };
    std::string_view id_field = "id", label_field = "label", pred_field = "pred", score_field;
    const JsonField* id = keys.find(fields, keys.id, id_field);
    if (id == nullptr) throw InputError(fmt::format("{}:{}: missing field 'id'", file.source(), n));
    const JsonField* label = keys.find(fields, keys.label, label_field);
    const JsonField* pred = keys.find(fields, keys.pred, pred_field);
    ScoreKind score_kind = ScoreKind::kNone;
    const JsonField* score = keys.find(fields, keys.probs, score_field);
    if (score != nullptr) {
      score_kind = ScoreKind::kProbs;
    } else if ((score = keys.find(fields, keys.logits, score_field)) != nullptr) {
      score_kind = ScoreKind::kLogits;
    }
    if (score != nullptr) {
      if (score->kind != Kind::kArray) sink.fail(n, score_field, fmt::format("expected an array of numbers, found a {}", detail::json_kind_name(score->kind)));
      if (!score->all_numbers) sink.fail(n, score_field, "expected an array of numbers");
    }
    std::optional<std::string> label_text, pred_text;
    if (label != nullptr && label->kind != Kind::kNull) label_text = text_of(label, label_field);
    if (pred != nullptr) pred_text = text_of(pred, pred_field);
    sink.add(n, id_field, text_of(id, id_field), label_field, label_text, pred_field, pred_text, score_field, score_kind,
             score != nullptr ? score->numbers : no_scores);
    sink.gate(fields[keys.gate]);
    if (sink.wants_embeddings()) sink.embedding(n, fields[keys.embedding]);
  }
}

bool parse_double(std::string_view text, double& out) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size() && !text.empty();
}

void read_csv(const core::InputFile& file, Sink& sink) {
  detail::DelimitedReader reader(file.bytes(), ',', true);
  std::vector<std::string> header, fields;
  try {
    if (!reader.next(header)) throw InputError(fmt::format("{}: file is empty", file.source()));
    auto column = [&](const std::string_view* names, std::size_t count, std::string_view& which) -> std::optional<std::size_t> {
      for (std::size_t i = 0; i < count; ++i) {
        const auto it = std::find(header.begin(), header.end(), names[i]);
        if (it != header.end()) {
          which = names[i];
          return static_cast<std::size_t>(it - header.begin());
        }
      }
      return std::nullopt;
    };
    std::string_view id_field = "id", label_field = "label", pred_field = "pred", score_field;
    const auto id = column(kIdNames, std::size(kIdNames), id_field);
    if (!id) throw InputError(fmt::format("{}:1: missing column 'id' (the header has: {})", file.source(), fmt::join(header, ", ")));
    const auto label = column(kLabelNames, std::size(kLabelNames), label_field);
    const auto pred = column(kPredNames, std::size(kPredNames), pred_field);
    ScoreKind kind = ScoreKind::kNone;
    auto array_col = column(kProbNames, std::size(kProbNames), score_field);
    if (array_col) {
      kind = ScoreKind::kProbs;
    } else if ((array_col = column(kLogitNames, std::size(kLogitNames), score_field))) {
      kind = ScoreKind::kLogits;
    }
    // Column families prob_0, prob_1, ... or logit_0, logit_1, ...
    std::vector<std::size_t> family;
    std::string family_name;
    if (!array_col) {
      for (std::string_view prefix : {"prob_", "logit_"}) {
        for (std::size_t k = 0;; ++k) {
          const auto it = std::find(header.begin(), header.end(), fmt::format("{}{}", prefix, k));
          if (it == header.end()) break;
          family.push_back(static_cast<std::size_t>(it - header.begin()));
        }
        if (!family.empty()) {
          kind = prefix == "prob_" ? ScoreKind::kProbs : ScoreKind::kLogits;
          family_name = fmt::format("{}*", prefix);
          break;
        }
      }
      score_field = family_name;
    }
    std::vector<double> scores;
    detail::JsonRowParser parser;
    while (reader.next(fields)) {
      const std::size_t n = reader.line();
      if (fields.size() != header.size()) {
        throw InputError(fmt::format("{}:{}: expected {} fields as in the header, found {}", file.source(), n, header.size(), fields.size()));
      }
      scores.clear();
      if (array_col) {
        bool numbers = false;
        try {
          numbers = parser.read_number_array(fields[*array_col], scores);
        } catch (const detail::JsonSyntaxError& e) {
          sink.fail(n, score_field, fmt::format("expected a JSON array of numbers: {}", e.message));
        }
        if (!numbers) sink.fail(n, score_field, "expected a JSON array of numbers");
      }
      for (std::size_t col : family) {
        double v = 0.0;
        if (!parse_double(fields[col], v)) sink.fail(n, header[col], fmt::format("'{}' is not a number", fields[col]));
        scores.push_back(v);
      }
      std::optional<std::string> label_text, pred_text;
      if (label && !fields[*label].empty()) label_text = fields[*label];
      if (pred) pred_text = fields[*pred];
      sink.add(n, id_field, std::move(fields[*id]), label_field, label_text, pred_field, pred_text, score_field, kind, scores);
    }
  } catch (const detail::DelimitedSyntaxError& e) {
    throw InputError(fmt::format("{}:{}: {}", file.source(), e.line, e.message));
  }
}

}  // namespace

PredictionFile read_predictions(const core::InputFile& file, const PredictionReadOptions& options) {
  PredictionFile out;
  out.source = file.source();
  if (file.bytes().empty()) throw InputError(fmt::format("{}: file is empty", file.source()));
  Sink sink(out, options);
  std::string_view name = file.source();
  if (ends_with(name, ".gz")) name.remove_suffix(3);
  if (ends_with(name, ".csv")) {
    if (options.keep_embeddings) throw InputError(fmt::format("{}: embeddings are read from JSON Lines prediction files only", file.source()));
    read_csv(file, sink);
  } else {
    read_jsonl(file, sink);
  }
  if (out.ids.empty()) throw InputError(fmt::format("{}: no prediction rows", file.source()));
  if (out.gates.size() != out.ids.size()) out.gates.clear();
  return out;
}

PredictionFile read_predictions_file(const std::filesystem::path& path, const PredictionReadOptions& options) {
  return read_predictions(core::InputFile::open(path), options);
}

std::vector<float> score_logits(const PredictionFile& file) {
  if (file.score_kind == ScoreKind::kNone || file.scores.size() != file.size() * file.num_scores) {
    throw InputError(fmt::format("{}: rows need 'logits' or 'probs' (read with keep_scores)", file.source));
  }
  std::vector<float> out = file.scores;
  if (file.score_kind == ScoreKind::kProbs) {
    for (float& p : out) p = std::log(std::max(p, 1e-12f));  // log-probabilities are logits
  }
  return out;
}

std::int32_t label_index(const PredictionFile& file, std::size_t row, const std::vector<std::string>& label_names) {
  if (file.labels.empty() || file.labels[row] == PredictionFile::kMissing) return -1;
  const std::int32_t code = file.labels[row];
  if (code >= 0) return code;
  const auto& token = file.tokens[static_cast<std::size_t>(-1 - code)];
  const auto pos = std::find(label_names.begin(), label_names.end(), token);
  if (pos != label_names.end()) return static_cast<std::int32_t>(pos - label_names.begin());
  std::size_t index = 0;
  const auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), index);
  if (ec == std::errc() && ptr == token.data() + token.size() && index < label_names.size()) return static_cast<std::int32_t>(index);
  throw InputError(fmt::format("{}:{}: field 'label': '{}' is not a label of the model", file.source, file.lines[row], token));
}

namespace {
// A JSON string escaped by nlohmann::json, the project's JSON writer (ids and label names were
// checked as UTF-8 when read; a stray invalid byte would become U+FFFD rather than throw).
void append_json_string(std::string& out, std::string_view s) {
  out += nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Scores with 7 significant digits, a float's precision, as the files have always been written
// (nlohmann would write the 17 digits of the double a float widens to).
void append_floats(std::string& out, const float* values, std::size_t count) {
  out += '[';
  for (std::size_t k = 0; k < count; ++k) {
    if (k > 0) out += ',';
    out += fmt::format("{:.7g}", values[k]);
  }
  out += ']';
}
}  // namespace

void write_predictions(const std::filesystem::path& path, const PredictionRows& rows) {
  const std::size_t n = rows.ids.size();
  if (rows.num_labels == 0 || rows.logits.size() != n * rows.num_labels || (!rows.labels.empty() && rows.labels.size() != n) ||
      (!rows.embeddings.empty() && rows.embeddings.size() != n * rows.dim) || (!rows.gates.empty() && rows.gates.size() != n) ||
      (!rows.preds.empty() && rows.preds.size() != n)) {
    throw InputError(fmt::format("{}: prediction arrays do not match {} rows", path.string(), n));
  }
  std::string out;
  out.reserve(n * (64 + 12 * (rows.num_labels + rows.dim)));
  for (std::size_t i = 0; i < n; ++i) {
    out += "{\"id\":";
    append_json_string(out, rows.ids[i]);
    if (!rows.labels.empty() && rows.labels[i] >= 0) {
      out += ",\"label\":";
      const auto l = static_cast<std::size_t>(rows.labels[i]);
      if (l < rows.label_names.size()) append_json_string(out, rows.label_names[l]);
      else out += std::to_string(l);
    }
    const float* logits = rows.logits.data() + i * rows.num_labels;
    std::size_t best = 0;
    for (std::size_t k = 1; k < rows.num_labels; ++k) {
      if (logits[k] > logits[best]) best = k;
    }
    if (!rows.preds.empty()) best = static_cast<std::size_t>(rows.preds[i]);
    out += ",\"pred\":";
    if (best < rows.label_names.size()) append_json_string(out, rows.label_names[best]);
    else out += std::to_string(best);
    out += ",\"logits\":";
    append_floats(out, logits, rows.num_labels);
    if (!rows.embeddings.empty()) {
      out += ",\"embedding\":";
      append_floats(out, rows.embeddings.data() + i * rows.dim, rows.dim);
    }
    if (!rows.gates.empty()) out += fmt::format(",\"gate\":{:.7g}", rows.gates[i]);
    out += "}\n";
  }
  core::write_file_atomic(path, out);
}

}  // namespace flipless::data
