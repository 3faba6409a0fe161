#include "flipless/cache/vector_index.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <queue>
#include <utility>

#include "flipless/core/error.h"
#include "index_checks.h"

namespace flipless::cache {
namespace {

// Eight independent partial sums, so the compiler vectorises the loop without -ffast-math.
float squared_l2(const float* a, const float* b, std::size_t dim) {
  float lanes[8] = {};
  std::size_t i = 0;
  for (; i + 8 <= dim; i += 8) {
    for (std::size_t j = 0; j < 8; ++j) {
      const float d = a[i + j] - b[i + j];
      lanes[j] += d * d;
    }
  }
  float sum = 0;
  for (; i < dim; ++i) sum += (a[i] - b[i]) * (a[i] - b[i]);
  for (const float lane : lanes) sum += lane;
  return sum;
}

}  // namespace

ExactIndex::ExactIndex(std::size_t dim) : dim_(dim) {
  if (dim == 0) throw ConfigError("vector index: dimension must be positive");
}

void ExactIndex::add(std::span<const float> vectors, std::span<const std::int64_t> ids) {
  detail::check_rows(vectors, ids, dim_);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto row = vectors.subspan(i * dim_, dim_);
    const auto [it, inserted] = slot_of_.try_emplace(ids[i], ids_.size());
    if (inserted) {
      ids_.push_back(ids[i]);
      vectors_.insert(vectors_.end(), row.begin(), row.end());
    } else {
      std::copy(row.begin(), row.end(), vectors_.begin() + static_cast<std::ptrdiff_t>(it->second * dim_));
    }
  }
}

std::vector<std::vector<Neighbour>> ExactIndex::search(std::span<const float> queries, std::size_t k) const {
  detail::check_queries(queries, dim_);
  const std::size_t n = queries.size() / dim_;
  std::vector<std::vector<Neighbour>> out(n);
  k = std::min(k, ids_.size());
  if (k == 0) return out;
  for (std::size_t q = 0; q < n; ++q) {
    // A max-heap of the k best so far: (squared distance, row).
    std::priority_queue<std::pair<float, std::size_t>> best;
    const float* query = queries.data() + q * dim_;
    for (std::size_t r = 0; r < ids_.size(); ++r) {
      const float d = squared_l2(query, vectors_.data() + r * dim_, dim_);
      if (best.size() < k) {
        best.emplace(d, r);
      } else if (d < best.top().first) {
        best.pop();
        best.emplace(d, r);
      }
    }
    auto& row = out[q];
    row.resize(best.size());
    for (std::size_t i = best.size(); i-- > 0;) {
      row[i] = {ids_[best.top().second], std::sqrt(best.top().first)};
      best.pop();
    }
  }
  return out;
}

std::string ExactIndex::describe() const { return fmt::format("exact, {} entries", ids_.size()); }

void IndexOptions::validate() const {
  if (kind != "auto" && kind != "exact" && kind != "hnsw") {
    throw ConfigError(fmt::format("index kind must be auto, exact or hnsw, got '{}'", kind));
  }
  hnsw.validate();
}

namespace {

// Exact search while small; from `threshold` entries on, an HNSW graph built from the same
// vectors (the exact copy is then dropped).
class AutoIndex final : public VectorIndex {
 public:
  AutoIndex(std::size_t dim, const IndexOptions& options) : options_(options), exact_(std::make_unique<ExactIndex>(dim)) {}
  AutoIndex(std::unique_ptr<HnswIndex> hnsw, const IndexOptions& options) : options_(options), hnsw_(std::move(hnsw)) {}
  bool save(const std::filesystem::path& path) const override { return hnsw_ && hnsw_->save(path); }
  std::size_t dim() const override { return active().dim(); }
  std::size_t size() const override { return active().size(); }
  void add(std::span<const float> vectors, std::span<const std::int64_t> ids) override {
    if (hnsw_) return hnsw_->add(vectors, ids);
    exact_->add(vectors, ids);
    if (exact_->size() >= options_.exact_threshold) {
      hnsw_ = std::make_unique<HnswIndex>(exact_->dim(), options_.hnsw);
      hnsw_->add(exact_->vectors(), exact_->ids());
      exact_.reset();
    }
  }
  std::vector<std::vector<Neighbour>> search(std::span<const float> queries, std::size_t k) const override {
    return active().search(queries, k);
  }
  std::string describe() const override { return active().describe(); }

 private:
  const VectorIndex& active() const { return hnsw_ ? static_cast<const VectorIndex&>(*hnsw_) : *exact_; }
  IndexOptions options_;
  std::unique_ptr<ExactIndex> exact_;
  std::unique_ptr<HnswIndex> hnsw_;
};

}  // namespace

std::unique_ptr<VectorIndex> make_index(std::size_t dim, const IndexOptions& options) {
  options.validate();
  if (options.kind == "exact") return std::make_unique<ExactIndex>(dim);
  if (options.kind == "hnsw") return std::make_unique<HnswIndex>(dim, options.hnsw);
  return std::make_unique<AutoIndex>(dim, options);
}

std::unique_ptr<VectorIndex> load_index(const std::filesystem::path& path, std::size_t dim, const IndexOptions& options) {
  options.validate();
  if (options.kind == "exact") throw ConfigError("an exact index has no saved form: it is rebuilt from the cache");
  auto hnsw = HnswIndex::load(path, dim, options.hnsw);
  if (options.kind == "hnsw") return hnsw;
  return std::make_unique<AutoIndex>(std::move(hnsw), options);
}

}  // namespace flipless::cache
