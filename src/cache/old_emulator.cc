#include "flipless/cache/old_emulator.h"

#include <fmt/format.h>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>

#include "flipless/core/error.h"
#include "flipless/io/safetensors.h"

namespace flipless::cache {
namespace {

using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vector = Eigen::RowVectorXd;

constexpr const char* kFormat = "flipless-old-emulator";
constexpr const char* kFormatVersion = "1";

struct Ridge {
  Matrix weight;  // (dim, k)
  Vector bias;    // (k,)
};

// Ridge regression of y on x with an unpenalised intercept: centre both, solve
// (Xc'Xc + lambda I) W = Xc'Yc, bias = mean(y) - mean(x) W.
Ridge fit_ridge(const Matrix& x, const Matrix& y, double lambda) {
  const Vector mx = x.colwise().mean(), my = y.colwise().mean();
  const Matrix xc = x.rowwise() - mx, yc = y.rowwise() - my;
  Matrix gram = xc.transpose() * xc;
  gram.diagonal().array() += lambda;
  Ridge r;
  r.weight = gram.llt().solve(xc.transpose() * yc);
  r.bias = my - mx * r.weight;
  return r;
}

std::size_t argmax(const double* v, std::size_t k) { return static_cast<std::size_t>(std::max_element(v, v + k) - v); }

void check_finite(std::span<const float> values, const char* what) {
  for (const float v : values) {
    if (!std::isfinite(v)) throw InputError(fmt::format("old-model emulator: {} is not finite", what));
  }
}

double metadata_number(const io::SafetensorsFile& f, const char* key) {
  const auto it = f.metadata().find(key);
  if (it == f.metadata().end()) throw ModelError(fmt::format("{}: old-model emulator: metadata lacks '{}'", f.source(), key));
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  if (end == it->second.c_str() || *end != '\0' || !std::isfinite(v)) {
    throw ModelError(fmt::format("{}: old-model emulator: metadata '{}' is not a finite number: '{}'", f.source(), key, it->second));
  }
  return v;
}

}  // namespace

std::vector<float> OldEmulator::predict(std::span<const float> embedding) const { return predict_rows(embedding); }

std::vector<float> OldEmulator::predict_rows(std::span<const float> embeddings) const {
  if (empty() || embeddings.size() % dim_ != 0) {
    throw InputError(fmt::format("old-model emulator: {} embedding values for {}-d embeddings", embeddings.size(), dim_));
  }
  const std::size_t n = embeddings.size() / dim_, k = num_labels_;
  std::vector<float> out(n * k);
  for (std::size_t i = 0; i < n; ++i) {
    float* o = out.data() + i * k;
    std::copy(bias_.begin(), bias_.end(), o);
    const float* e = embeddings.data() + i * dim_;
    for (std::size_t j = 0; j < dim_; ++j) {
      const float* w = weight_.data() + j * k;
      for (std::size_t c = 0; c < k; ++c) o[c] += e[j] * w[c];
    }
  }
  return out;
}

OldEmulator fit_old_emulator(std::span<const float> embeddings, std::span<const float> old_logits, std::size_t dim, std::size_t num_labels,
                             const EmulatorFitOptions& options) {
  if (dim == 0 || num_labels < 2 || embeddings.size() % dim != 0) {
    throw InputError(fmt::format("old-model emulator: {} embedding values are not rows of {}", embeddings.size(), dim));
  }
  const std::size_t n = embeddings.size() / dim;
  if (old_logits.size() != n * num_labels) {
    throw InputError(fmt::format("old-model emulator: {} embeddings but {} old logit values for {} labels", n, old_logits.size(), num_labels));
  }
  if (n < kMinEmulatorRows) {
    throw InputError(fmt::format("old-model emulator: {} cached entries; at least {} are needed to fit and check one", n, kMinEmulatorRows));
  }
  if (options.relative_lambdas.empty() || options.folds < 2) throw InputError("old-model emulator: needs ridge strengths and at least 2 folds");
  check_finite(embeddings, "an embedding value");
  check_finite(old_logits, "an old logit value");
  Matrix x(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(dim));
  Matrix y(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(num_labels));
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < dim; ++j) x(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = embeddings[i * dim + j];
    for (std::size_t c = 0; c < num_labels; ++c) y(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(c)) = old_logits[i * num_labels + c];
  }
  // The scale the strengths are relative to: the mean per-feature sum of squares, centred.
  const double scale = std::max(1e-12, (x.rowwise() - x.colwise().mean()).squaredNorm() / static_cast<double>(dim));

  // Fold of each row: a seeded shuffle dealt round-robin.
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(options.seed);
  std::shuffle(order.begin(), order.end(), rng);
  const std::size_t folds = std::min<std::size_t>(static_cast<std::size_t>(options.folds), n);
  std::vector<std::size_t> fold(n);
  for (std::size_t r = 0; r < n; ++r) fold[order[r]] = r % folds;

  std::size_t best = 0;
  double best_mse = std::numeric_limits<double>::infinity(), best_agreement = 0;
  for (std::size_t l = 0; l < options.relative_lambdas.size(); ++l) {
    const double lambda = options.relative_lambdas[l] * scale;
    double squared = 0;
    std::size_t agree = 0;
    for (std::size_t f = 0; f < folds; ++f) {
      std::vector<Eigen::Index> train_rows, test_rows;
      for (std::size_t i = 0; i < n; ++i) (fold[i] == f ? test_rows : train_rows).push_back(static_cast<Eigen::Index>(i));
      const Matrix xt = x(train_rows, Eigen::all), yt = y(train_rows, Eigen::all);
      const Ridge r = fit_ridge(xt, yt, lambda);
      const Matrix pred = (x(test_rows, Eigen::all) * r.weight).rowwise() + r.bias;
      const Matrix want = y(test_rows, Eigen::all);
      squared += (pred - want).squaredNorm();
      for (Eigen::Index i = 0; i < pred.rows(); ++i) {
        const Vector p = pred.row(i), w = want.row(i);
        agree += argmax(p.data(), num_labels) == argmax(w.data(), num_labels);
      }
    }
    const double mse = squared / static_cast<double>(n * num_labels);
    if (mse < best_mse) {
      best = l;
      best_mse = mse;
      best_agreement = static_cast<double>(agree) / static_cast<double>(n);
    }
  }
  const Ridge r = fit_ridge(x, y, options.relative_lambdas[best] * scale);
  OldEmulator e;
  e.dim_ = dim;
  e.num_labels_ = num_labels;
  e.weight_.resize(dim * num_labels);
  e.bias_.resize(num_labels);
  for (std::size_t j = 0; j < dim; ++j) {
    for (std::size_t c = 0; c < num_labels; ++c) {
      e.weight_[j * num_labels + c] = static_cast<float>(r.weight(static_cast<Eigen::Index>(j), static_cast<Eigen::Index>(c)));
    }
  }
  for (std::size_t c = 0; c < num_labels; ++c) e.bias_[c] = static_cast<float>(r.bias(static_cast<Eigen::Index>(c)));
  check_finite(e.weight_, "a fitted weight");
  e.rows = n;
  e.relative_lambda = options.relative_lambdas[best];
  e.held_out_mse = best_mse;
  e.held_out_agreement = best_agreement;
  return e;
}

void OldEmulator::save(const std::filesystem::path& path) const {
  if (empty()) throw InputError(fmt::format("{}: no old-model emulator to save", path.string()));
  const auto bytes = [](const std::vector<float>& v) { return std::as_bytes(std::span<const float>(v)); };
  const std::vector<io::TensorView> tensors = {
      {"bias", io::DType::kF32, {static_cast<std::int64_t>(num_labels_)}, bytes(bias_)},
      {"weight", io::DType::kF32, {static_cast<std::int64_t>(dim_), static_cast<std::int64_t>(num_labels_)}, bytes(weight_)},
  };
  io::write_safetensors(path, tensors,
                        {{"format", kFormat},
                         {"format_version", kFormatVersion},
                         {"rows", std::to_string(rows)},
                         {"relative_lambda", fmt::format("{}", relative_lambda)},
                         {"held_out_mse", fmt::format("{}", held_out_mse)},
                         {"held_out_agreement", fmt::format("{}", held_out_agreement)},
                         {"embedding_space", embedding_space},
                         {"cache_version", cache_version}});
}

OldEmulator OldEmulator::load(const std::filesystem::path& path) {
  const auto f = io::SafetensorsFile::open(path);
  const auto format = f.metadata().find("format");
  if (format == f.metadata().end() || format->second != kFormat) {
    throw ModelError(fmt::format("{}: not a flipless old-model emulator (metadata 'format' is not '{}')", path.string(), kFormat));
  }
  if (const auto v = f.metadata().find("format_version"); v == f.metadata().end() || v->second != kFormatVersion) {
    throw ModelError(fmt::format("{}: old-model emulator format version '{}'; this flipless reads {}", path.string(),
                                 v == f.metadata().end() ? "" : v->second, kFormatVersion));
  }
  const auto* w = f.find("weight");
  const auto* b = f.find("bias");
  if (w == nullptr || b == nullptr || w->dtype != io::DType::kF32 || b->dtype != io::DType::kF32 || w->shape.size() != 2 ||
      b->shape.size() != 1 || w->shape[0] < 1 || w->shape[1] < 2 || b->shape[0] != w->shape[1]) {
    throw ModelError(fmt::format("{}: old-model emulator needs float32 'weight' (dim, k) and 'bias' (k,) with k >= 2", path.string()));
  }
  OldEmulator e;
  e.dim_ = static_cast<std::size_t>(w->shape[0]);
  e.num_labels_ = static_cast<std::size_t>(w->shape[1]);
  e.weight_.resize(e.dim_ * e.num_labels_);
  e.bias_.resize(e.num_labels_);
  std::memcpy(e.weight_.data(), f.data(*w).data(), e.weight_.size() * sizeof(float));
  std::memcpy(e.bias_.data(), f.data(*b).data(), e.bias_.size() * sizeof(float));
  for (const auto* v : {&e.weight_, &e.bias_}) {
    for (const float x : *v) {
      if (!std::isfinite(x)) throw ModelError(fmt::format("{}: old-model emulator has a value that is not finite", path.string()));
    }
  }
  e.rows = static_cast<std::size_t>(metadata_number(f, "rows"));
  e.relative_lambda = metadata_number(f, "relative_lambda");
  e.held_out_mse = metadata_number(f, "held_out_mse");
  e.held_out_agreement = metadata_number(f, "held_out_agreement");
  if (const auto it = f.metadata().find("embedding_space"); it != f.metadata().end()) e.embedding_space = it->second;
  if (const auto it = f.metadata().find("cache_version"); it != f.metadata().end()) e.cache_version = it->second;
  return e;
}

}  // namespace flipless::cache
