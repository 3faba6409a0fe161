// Metrics over NumPy label arrays: int32 and int64 arrays are counted where they lie (the
// Python layer passes only C-contiguous arrays of those two types, so nothing here copies).
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <span>
#include <string>
#include <tuple>

#include "bindings.h"
#include "flipless/metrics/flip_counts.h"
#include "flipless/metrics/rates.h"
#include "flipless/metrics/uncertainty.h"

namespace flipless::python {
namespace {

using namespace nb::literals;
using Cells = std::tuple<double, double, double, double>;

template <typename T>
std::span<const T> span_of(const In<T>& a) {
  return {a.data(), a.shape(0)};
}

template <typename T>
Cells count(const In<T>& y_true, const In<T>& old_pred, const In<T>& new_pred, const nb::object& weights) {
  std::span<const double> w;
  In<double> weights_array;
  if (!weights.is_none()) {
    weights_array = nb::cast<In<double>>(weights, /*convert=*/false);
    w = span_of(weights_array);
  }
  metrics::FlipCounts c;
  {
    nb::gil_scoped_release release;
    c = metrics::count_flips(span_of(y_true), span_of(old_pred), span_of(new_pred), w);
  }
  return {c.both_correct, c.negative_flips, c.positive_flips, c.both_wrong};
}

metrics::FlipCounts counts_of(const Cells& cells) {
  return {std::get<0>(cells), std::get<1>(cells), std::get<2>(cells), std::get<3>(cells)};
}

}  // namespace

void bind_metrics(nb::module_& m) {
  constexpr const char* kCountDoc =
      "count_flips(y_true, old_pred, new_pred, weights=None) -> (both_correct, negative_flips, positive_flips, "
      "both_wrong)\n\n"
      "The flip table of C-contiguous int32 or int64 label arrays of one length (all three of one type), counted in "
      "place; "
      "weights: None or a C-contiguous float64 array, each finite and >= 0.";
  m.def("count_flips", &count<std::int32_t>, "y_true"_a.noconvert(), "old_pred"_a.noconvert(), "new_pred"_a.noconvert(),
        "weights"_a = nb::none(), kCountDoc);
  m.def("count_flips", &count<std::int64_t>, "y_true"_a.noconvert(), "old_pred"_a.noconvert(), "new_pred"_a.noconvert(),
        "weights"_a = nb::none(), kCountDoc);
  m.def(
      "metric_values",
      [](const Cells& cells) {
        const auto counts = counts_of(cells);
        nb::dict out;
        for (const auto metric : metrics::kAllMetrics) {
          const auto value = metrics::metric_value(counts, metric);
          out[nb::str(std::string(metrics::metric_name(metric)).c_str())] = value ? nb::cast(*value) : nb::none();
        }
        return out;
      },
      "cells"_a,
      "Every metric of a flip table (both_correct, negative_flips, positive_flips, both_wrong) by its short name; "
      "None where undefined (a zero denominator).");
  m.def(
      "metric_value",
      [](const Cells& cells, const std::string& name) -> std::optional<double> {
        const auto metric = metrics::metric_from_name(name);
        if (!metric) throw nb::value_error(("unknown metric '" + name + "'").c_str());
        return metrics::metric_value(counts_of(cells), *metric);
      },
      "cells"_a, "name"_a, "One metric of a flip table by name or alias (\"nfr\", \"acc_new\"); None where undefined.");
  m.def(
      "metric_names",
      [] {
        std::vector<std::string> names;
        for (const auto metric : metrics::kAllMetrics) names.emplace_back(metrics::metric_name(metric));
        return names;
      },
      "Short names of every metric, in the C++ library's order.");
  m.def(
      "metric_label",
      [](const std::string& name) -> std::string {
        const auto metric = metrics::metric_from_name(name);
        if (!metric) throw nb::value_error(("unknown metric '" + name + "'").c_str());
        return std::string(metrics::metric_label(*metric));
      },
      "name"_a, "The human label of a metric (\"NFR\", \"old accuracy\").");
  m.def(
      "labels_from_scores",
      [](const In<float, nb::ndim<2>>& scores) {
        std::vector<std::int32_t> labels;
        {
          nb::gil_scoped_release release;
          labels = metrics::labels_from_scores({scores.data(), scores.size()}, scores.shape(1));
        }
        const std::size_t n = labels.size();
        return to_numpy(std::move(labels), n);
      },
      "scores"_a.noconvert(),
      "Argmax of each row of C-contiguous float32 scores (n, k): the lowest index on ties, as int32 (n,).");
  m.def("mcnemar_exact_p", &metrics::mcnemar_exact_p, "negative_flips"_a, "positive_flips"_a,
        "Two-sided exact McNemar p-value on the discordant pairs.");
}

}  // namespace flipless::python
