#include "flipless/ensemble/old_new.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "flipless/core/error.h"
#include "flipless/metrics/flip_counts.h"
#include "flipless/metrics/rates.h"

namespace flipless::ensemble {

namespace {
void softmax_row(const float* in, float* out, std::size_t k) {
  const float top = *std::max_element(in, in + k);
  double z = 0;
  for (std::size_t j = 0; j < k; ++j) z += std::exp(static_cast<double>(in[j] - top));
  for (std::size_t j = 0; j < k; ++j) out[j] = static_cast<float>(std::exp(static_cast<double>(in[j] - top)) / z);
}

void check(std::size_t n_old, std::size_t n_new, std::size_t k) {
  if (k < 2) throw InputError(fmt::format("an ensemble needs at least 2 labels, got {}", k));
  if (n_old != n_new || n_old % k != 0 || n_old == 0) {
    throw InputError(fmt::format("old and new scores must both be (n, {}) with n > 0; got {} and {} values", k, n_old, n_new));
  }
}
}  // namespace

std::vector<float> combine(std::span<const float> old_logits, std::span<const float> new_logits, std::size_t k, Kind kind, double alpha) {
  check(old_logits.size(), new_logits.size(), k);
  if (!(alpha >= 0 && alpha <= 1)) throw InputError(fmt::format("alpha must be in [0, 1], got {}", alpha));
  std::vector<float> out(old_logits.size());
  const auto a = static_cast<float>(alpha);
  if (kind == Kind::kLogits) {
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = (1 - a) * old_logits[i] + a * new_logits[i];
    return out;
  }
  std::vector<float> po(k), pn(k);
  for (std::size_t r = 0; r < out.size() / k; ++r) {
    softmax_row(old_logits.data() + r * k, po.data(), k);
    softmax_row(new_logits.data() + r * k, pn.data(), k);
    for (std::size_t j = 0; j < k; ++j) out[r * k + j] = (1 - a) * po[j] + a * pn[j];
  }
  return out;
}

Choice choose_alpha(std::span<const std::int32_t> y, std::span<const float> old_logits, std::span<const float> new_logits, std::size_t k,
                    Kind kind, const std::vector<double>& grid, double tolerance) {
  check(old_logits.size(), new_logits.size(), k);
  if (y.size() * k != old_logits.size()) throw InputError(fmt::format("{} labels for {} rows of scores", y.size(), old_logits.size() / k));
  if (grid.empty()) throw InputError("empty alpha grid");
  const auto old_pred = metrics::labels_from_scores(old_logits, k);
  Choice choice;
  choice.new_model_accuracy = metrics::accuracy(y, metrics::labels_from_scores(new_logits, k));
  for (double alpha : grid) {
    const auto pred = metrics::labels_from_scores(combine(old_logits, new_logits, k, kind, alpha), k);
    const auto counts = metrics::count_flips(y, old_pred, pred);
    Candidate c{alpha, *metrics::metric_value(counts, metrics::Metric::kNewAccuracy), metrics::negative_flip_rate(counts), false};
    c.on_par = c.accuracy >= choice.new_model_accuracy - tolerance;
    choice.candidates.push_back(c);
  }
  const Candidate* best = nullptr;
  for (const auto& c : choice.candidates) {
    if (!c.on_par) continue;
    if (best == nullptr || c.nfr < best->nfr || (c.nfr == best->nfr && c.alpha > best->alpha)) best = &c;
  }
  if (best == nullptr) {
    choice.fallback = true;
    for (const auto& c : choice.candidates) {
      if (best == nullptr || c.accuracy > best->accuracy) best = &c;
    }
  }
  choice.alpha = best->alpha;
  return choice;
}

Vote majority_vote(const std::vector<std::vector<float>>& logits, std::size_t k) {
  if (logits.size() < 2) throw InputError(fmt::format("a vote needs at least 2 models, got {}", logits.size()));
  for (const auto& l : logits) check(logits.front().size(), l.size(), k);
  const std::size_t rows = logits.front().size() / k;
  Vote v;
  v.mean_probs.assign(rows * k, 0.0f);
  v.labels.resize(rows);
  std::vector<float> p(k);
  std::vector<int> votes(k);
  for (std::size_t r = 0; r < rows; ++r) {
    std::fill(votes.begin(), votes.end(), 0);
    for (const auto& l : logits) {
      const float* row = l.data() + r * k;
      ++votes[static_cast<std::size_t>(std::max_element(row, row + k) - row)];
      softmax_row(row, p.data(), k);
      for (std::size_t j = 0; j < k; ++j) v.mean_probs[r * k + j] += p[j] / static_cast<float>(logits.size());
    }
    std::size_t best = 0;
    for (std::size_t j = 1; j < k; ++j) {
      if (votes[j] > votes[best] || (votes[j] == votes[best] && v.mean_probs[r * k + j] > v.mean_probs[r * k + best])) best = j;
    }
    v.labels[r] = static_cast<std::int32_t>(best);
  }
  return v;
}

}  // namespace flipless::ensemble
