// Comparisons from prediction files or from arrays, and their renderers. Arrays become the
// same in-memory prediction files that the file reader makes (ids, predictions, confidences,
// true labels), so compare::compare_predictions treats both alike; their rows are named
// "<source>:<row + 1>" in error messages, as a file's lines are.
#include <fmt/format.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "bindings.h"
#include "flipless/compare/compare.h"
#include "flipless/core/error.h"
#include "flipless/data/predictions.h"
#include "flipless/data/registry.h"
#include "flipless/report/compare_report.h"

namespace flipless::python {
namespace {

using namespace nb::literals;

// A comparison with what its rows need beyond the report: each example's confidences and text.
struct Report {
  compare::Comparison comparison;
  std::optional<data::Dataset> dataset;  // when the true labels came with texts
  std::vector<float> old_confidence;     // (n,) in comparison.ids order; empty without scores
  std::vector<float> new_confidence;
};

compare::CompareOptions options_of(const std::vector<std::string>& label_names, std::size_t top, int bootstrap,
                                   std::uint64_t seed) {
  compare::CompareOptions options;
  options.label_names = label_names;
  options.top_k = top;
  if (bootstrap < 2) throw ConfigError(fmt::format("bootstrap: {} resamples; need at least 2", bootstrap));
  options.bootstrap.resamples = bootstrap;
  options.bootstrap.seed = seed;
  return options;
}

// Confidences aligned with the comparison's ids (the old file's order).
void align_confidences(Report& r, const data::PredictionFile& old_file, const data::PredictionFile& new_file) {
  const auto& ids = r.comparison.ids;
  if (!old_file.confidence.empty()) r.old_confidence = old_file.confidence;
  if (!new_file.confidence.empty()) {
    std::unordered_map<std::string_view, std::size_t> row;
    for (std::size_t j = 0; j < new_file.size(); ++j) row.emplace(new_file.ids[j], j);
    r.new_confidence.resize(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) r.new_confidence[i] = new_file.confidence[row.at(ids[i])];
  }
}

Report compare_files(const std::string& old_path, const std::string& new_path, const std::optional<std::string>& data,
                     const std::vector<std::string>& label_names, std::size_t top, int bootstrap, std::uint64_t seed,
                     const std::string& text_column, const std::string& text_pair_column,
                     const std::string& label_column, const std::string& id_column) {
  const auto options = options_of(label_names, top, bootstrap, seed);
  nb::gil_scoped_release release;
  Report r;
  if (data) {
    data::ColumnSpec columns;
    columns.text = text_column;
    columns.text_pair = text_pair_column;
    columns.label = label_column;
    columns.id = id_column;
    r.dataset = data::load_dataset(*data, columns);
  }
  const auto old_file = data::read_predictions_file(old_path);
  const auto new_file = data::read_predictions_file(new_path);
  r.comparison = compare::compare_predictions(old_file, new_file, r.dataset ? &*r.dataset : nullptr, options);
  align_confidences(r, old_file, new_file);
  return r;
}

// One side's predictions as a prediction file: labels (n,) or scores (n, k) of `kind`
// ("probs" or "logits"), checked as the file reader checks them.
data::PredictionFile file_of(const std::string& source, const std::vector<std::string>& ids, const nb::object& labels,
                             const nb::object& scores, const std::string& kind) {
  data::PredictionFile f;
  f.source = source;
  f.ids = ids;
  const std::size_t n = ids.size();
  f.lines.resize(n);
  std::iota(f.lines.begin(), f.lines.end(), 1u);
  auto fail = [&](std::size_t row, std::string_view field, const std::string& message) {
    throw InputError(fmt::format("{}:{}: field '{}': {}", source, row + 1, field, message));
  };
  if (!labels.is_none()) {
    const auto a = nb::cast<In<std::int32_t>>(labels, false);
    if (a.shape(0) != n) throw InputError(fmt::format("{}: {} predictions for {} ids", source, a.shape(0), n));
    f.preds.assign(a.data(), a.data() + n);
    for (std::size_t i = 0; i < n; ++i) {
      if (f.preds[i] < 0)
        fail(i, "pred", fmt::format("label {} is negative; labels are class indices 0, 1, ...", f.preds[i]));
    }
    return f;
  }
  const auto s = nb::cast<In<double, nb::ndim<2>>>(scores, false);
  const bool probs = kind == "probs";
  if (!probs && kind != "logits") throw ConfigError(fmt::format("scores kind '{}': expected probs or logits", kind));
  const std::string_view field = probs ? "probs" : "logits";
  const std::size_t k = s.shape(1);
  if (s.shape(0) != n) throw InputError(fmt::format("{}: {} rows of scores for {} ids", source, s.shape(0), n));
  if (k < 2)
    throw InputError(fmt::format("{}: field '{}': expected at least 2 scores per row, found {}", source, field, k));
  f.score_kind = probs ? data::ScoreKind::kProbs : data::ScoreKind::kLogits;
  f.num_scores = k;
  f.preds.resize(n);
  f.confidence.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double* row = s.data() + i * k;
    std::size_t argmax = 0;
    double sum = 0.0;
    for (std::size_t j = 0; j < k; ++j) {
      if (!std::isfinite(row[j])) fail(i, field, "scores must be finite numbers");
      if (probs && (row[j] < 0.0 || row[j] > 1.0)) fail(i, field, "probabilities must lie in [0, 1]");
      if (row[j] > row[argmax]) argmax = j;
      sum += row[j];
    }
    double confidence = row[argmax];
    if (probs) {
      if (std::fabs(sum - 1.0) > 1e-2) fail(i, field, fmt::format("probabilities sum to {:.4g}, not 1", sum));
    } else {
      double z = 0.0;
      for (std::size_t j = 0; j < k; ++j) z += std::exp(row[j] - row[argmax]);
      confidence = 1.0 / z;
    }
    f.preds[i] = static_cast<std::int32_t>(argmax);
    f.confidence[i] = static_cast<float>(confidence);
  }
  return f;
}

Report compare_arrays(const nb::object& old_labels, const nb::object& old_scores, const std::string& old_kind,
                      const nb::object& new_labels, const nb::object& new_scores, const std::string& new_kind,
                      const nb::object& y_true, const std::vector<std::string>& ids,
                      const std::optional<std::vector<std::string>>& texts,
                      const std::optional<std::vector<std::string>>& text_pairs,
                      const std::vector<std::string>& label_names, std::size_t top, int bootstrap, std::uint64_t seed) {
  auto options = options_of(label_names, top, bootstrap, seed);
  const auto old_file = file_of("old", ids, old_labels, old_scores, old_kind);
  auto new_file = file_of("new", ids, new_labels, new_scores, new_kind);
  const std::size_t n = ids.size();
  std::vector<std::int32_t> truth;
  if (!y_true.is_none()) {
    const auto a = nb::cast<In<std::int32_t>>(y_true, false);
    if (a.shape(0) != n) throw InputError(fmt::format("labels: {} true labels for {} predictions", a.shape(0), n));
    truth.assign(a.data(), a.data() + n);
    for (std::size_t i = 0; i < n; ++i) {
      if (truth[i] < 0)
        throw InputError(fmt::format("labels:{}: field 'label': label {} is negative", i + 1, truth[i]));
    }
  } else {
    throw InputError("labels: the true labels are needed to compare arrays (labels=...)");
  }
  if (text_pairs && !texts) throw ConfigError("text_pairs needs texts");
  Report r;
  if (texts) {
    if (texts->size() != n) throw InputError(fmt::format("texts: {} texts for {} predictions", texts->size(), n));
    if (text_pairs && text_pairs->size() != n) {
      throw InputError(fmt::format("text_pairs: {} texts for {} predictions", text_pairs->size(), n));
    }
    data::Dataset ds;
    ds.name = "labels=";
    ds.label_names = label_names;
    if (ds.label_names.empty()) {
      // Class indices 0..k-1, k covering every label, prediction and score column.
      std::int32_t top_label = 0;
      for (const auto& v : {std::span<const std::int32_t>(truth), std::span<const std::int32_t>(old_file.preds),
                            std::span<const std::int32_t>(new_file.preds)}) {
        for (auto l : v) top_label = std::max(top_label, l);
      }
      const auto k = std::max({static_cast<std::size_t>(top_label) + 1, old_file.num_scores, new_file.num_scores});
      for (std::size_t j = 0; j < k; ++j) ds.label_names.push_back(std::to_string(j));
    }
    ds.examples.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      auto& e = ds.examples[i];
      e.id = ids[i];
      e.text_a = (*texts)[i];
      if (text_pairs) e.text_b = (*text_pairs)[i];
      e.label = truth[i];
      if (static_cast<std::size_t>(truth[i]) >= ds.label_names.size()) {
        throw InputError(fmt::format("labels:{}: field 'label': label {} is not in the label set [0, {}]", i + 1,
                                     truth[i], ds.label_names.size() - 1));
      }
    }
    r.dataset = std::move(ds);
    nb::gil_scoped_release release;
    r.comparison = compare::compare_predictions(old_file, new_file, &*r.dataset, options);
  } else {
    new_file.labels = truth;  // the true labels ride with one side, as a file's "label" field would
    nb::gil_scoped_release release;
    r.comparison = compare::compare_predictions(old_file, new_file, nullptr, options);
  }
  r.comparison.labels_from = "labels=";
  align_confidences(r, old_file, new_file);
  return r;
}

// Every negative flip as a row: the old model's most confident first when it gave scores.
nb::list negative_flips(const Report& r) {
  const auto& c = r.comparison;
  std::vector<std::size_t> rows;
  for (std::size_t i = 0; i < c.ids.size(); ++i) {
    if (c.old_pred[i] == c.y_true[i] && c.new_pred[i] != c.y_true[i]) rows.push_back(i);
  }
  if (!r.old_confidence.empty()) {
    std::stable_sort(rows.begin(), rows.end(),
                     [&](std::size_t a, std::size_t b) { return r.old_confidence[a] > r.old_confidence[b]; });
  }
  std::unordered_map<std::string_view, std::size_t> example;
  if (r.dataset) example = r.dataset->index_by_id();
  auto name = [&](std::int32_t label) { return c.label_names.at(static_cast<std::size_t>(label)); };
  nb::list out;
  for (const auto i : rows) {
    nb::dict row;
    row["id"] = c.ids[i];
    row["label"] = name(c.y_true[i]);
    row["old_pred"] = name(c.old_pred[i]);
    row["new_pred"] = name(c.new_pred[i]);
    row["old_confidence"] = r.old_confidence.empty() ? nb::none() : nb::cast(r.old_confidence[i]);
    row["new_confidence"] = r.new_confidence.empty() ? nb::none() : nb::cast(r.new_confidence[i]);
    if (r.dataset) {
      const auto& e = r.dataset->examples[example.at(c.ids[i])];
      row["text"] = e.text_a;
      if (e.text_b) row["text_pair"] = *e.text_b;
    }
    out.append(row);
  }
  return out;
}

}  // namespace

void bind_compare(nb::module_& m) {
  nb::class_<Report>(m, "Comparison", "A comparison of an old and a new model; see flipless.compare.")
      .def(
          "render",
          [](const Report& r, const std::string& format) {
            return report::render(r.comparison, report::parse_compare_format(format));
          },
          "format"_a, "The report as \"text\", \"json\", \"markdown\" or \"html\" (one self-contained page).")
      .def("negative_flips", &negative_flips,
           "Every negative flip as a dict (id, label, old_pred, new_pred, old_confidence, new_confidence, text, "
           "text_pair).")
      .def_prop_ro(
          "ids", [](const Report& r) { return r.comparison.ids; }, "Example ids, in the old predictions' order.")
      .def_prop_ro(
          "y_true",
          [](const Report& r) {
            auto v = r.comparison.y_true;
            const auto n = v.size();
            return to_numpy(std::move(v), n);
          },
          nb::rv_policy::move, "True labels (n,), as class indices.")
      .def_prop_ro(
          "old_pred",
          [](const Report& r) {
            auto v = r.comparison.old_pred;
            const auto n = v.size();
            return to_numpy(std::move(v), n);
          },
          nb::rv_policy::move, "The old model's predictions (n,).")
      .def_prop_ro(
          "new_pred",
          [](const Report& r) {
            auto v = r.comparison.new_pred;
            const auto n = v.size();
            return to_numpy(std::move(v), n);
          },
          nb::rv_policy::move, "The new model's predictions (n,).");
  m.def(
      "load_dataset",
      [](const std::string& spec, const std::string& text_column, const std::string& text_pair_column,
         const std::string& label_column, const std::string& id_column) {
        data::ColumnSpec columns;
        columns.text = text_column;
        columns.text_pair = text_pair_column;
        columns.label = label_column;
        columns.id = id_column;
        data::Dataset ds;
        {
          nb::gil_scoped_release release;
          ds = data::load_dataset(spec, columns);
        }
        nb::list ids, texts, pairs;
        std::vector<std::int32_t> labels;
        for (const auto& e : ds.examples) {
          ids.append(e.id);
          texts.append(e.text_a);
          if (e.text_b) pairs.append(*e.text_b);
          labels.push_back(e.label);
        }
        nb::dict out;
        out["name"] = ds.name;
        out["label_names"] = ds.label_names;
        out["ids"] = ids;
        out["texts"] = texts;
        out["text_pairs"] = ds.has_text_pair() ? nb::object(pairs) : nb::none();
        const auto n = labels.size();
        out["labels"] = to_numpy(std::move(labels), n);
        return out;
      },
      "spec"_a, "text_column"_a = "text", "text_pair_column"_a = "", "label_column"_a = "label", "id_column"_a = "",
      "Reads a dataset (\"sst2:dev\", \"qnli:PATH\", a CSV/TSV/JSONL path): a dict of name, label_names, ids, texts, "
      "text_pairs (or None) and labels (int32, -1 where unlabelled).");
  m.def("compare_files", &compare_files, "old"_a, "new"_a, "data"_a.none() = nb::none(),
        "label_names"_a = std::vector<std::string>{}, "top"_a = 10, "bootstrap"_a = 1000, "seed"_a = 0,
        "text_column"_a = "text", "text_pair_column"_a = "", "label_column"_a = "label", "id_column"_a = "",
        "Compares two prediction files (JSONL or CSV), true labels from the files or from a dataset spec (data).");
  m.def("compare_arrays", &compare_arrays, "old_labels"_a.none(), "old_scores"_a.none(), "old_kind"_a,
        "new_labels"_a.none(), "new_scores"_a.none(), "new_kind"_a, "y_true"_a.none(), "ids"_a, "texts"_a.none(),
        "text_pairs"_a.none(), "label_names"_a, "top"_a, "bootstrap"_a, "seed"_a,
        "Compares predictions given as arrays: for each side int32 labels (n,) or float64 scores (n, k) of kind "
        "\"probs\" or \"logits\"; y_true int32 (n,); ids (n,).");
}

}  // namespace flipless::python
