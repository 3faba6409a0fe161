#include "flipless/cache/vector_index.h"

#include <fmt/format.h>
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <cmath>
#include <queue>
#include <utility>

#include "flipless/core/error.h"

namespace flipless::cache {
namespace {

void check_rows(std::span<const float> vectors, std::span<const std::int64_t> ids, std::size_t dim) {
  if (vectors.size() != ids.size() * dim) {
    throw InputError(fmt::format("vector index: {} floats for {} ids of {} dimensions (want {})", vectors.size(), ids.size(), dim,
                                 ids.size() * dim));
  }
}

void check_queries(std::span<const float> queries, std::size_t dim) {
  if (queries.size() % dim != 0) {
    throw InputError(fmt::format("vector index: {} query floats is not a multiple of the {} dimensions", queries.size(), dim));
  }
}

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
  check_rows(vectors, ids, dim_);
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
  check_queries(queries, dim_);
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

void HnswOptions::validate() const {
  if (m < 2 || m > 128) throw ConfigError(fmt::format("hnsw: m must be in [2, 128], got {}", m));
  if (ef_construction < m) throw ConfigError(fmt::format("hnsw: ef_construction ({}) must be at least m ({})", ef_construction, m));
  if (ef_search == 0) throw ConfigError("hnsw: ef_search must be positive");
  if (threads == 0) throw ConfigError("hnsw: threads must be positive");
}

struct HnswIndex::State {
  hnswlib::L2Space space;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> graph;
  explicit State(std::size_t dim) : space(dim) {}
};

HnswIndex::HnswIndex(std::size_t dim, HnswOptions options) : dim_(dim), options_(options), state_(std::make_unique<State>(dim)) {
  if (dim == 0) throw ConfigError("vector index: dimension must be positive");
  options_.validate();
  state_->graph = std::make_unique<hnswlib::HierarchicalNSW<float>>(&state_->space, 1024, options_.m, options_.ef_construction,
                                                                     options_.seed);
  state_->graph->setEf(options_.ef_search);
}

HnswIndex::~HnswIndex() = default;

std::size_t HnswIndex::size() const { return state_->graph->cur_element_count; }

void HnswIndex::add(std::span<const float> vectors, std::span<const std::int64_t> ids) {
  check_rows(vectors, ids, dim_);
  auto& g = *state_->graph;
  if (g.cur_element_count + ids.size() > g.max_elements_) {
    g.resizeIndex(std::max(g.max_elements_ * 2, g.cur_element_count + ids.size()));
  }
  for (const auto id : ids) {
    if (id < 0) throw InputError(fmt::format("hnsw index: ids must be non-negative, got {}", id));
  }
  // Large batches insert from several threads: hnswlib's addPoint is safe concurrently once
  // the capacity is reserved (above). Small ones stay on the caller's thread.
  const std::size_t workers = ids.size() >= 1000 ? std::min(options_.threads, ids.size()) : 1;
  std::atomic<std::size_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto work = [&] {
    try {
      for (std::size_t i = next++; i < ids.size(); i = next++) g.addPoint(vectors.data() + i * dim_, static_cast<hnswlib::labeltype>(ids[i]));
    } catch (...) {
      std::lock_guard lock(failure_mutex);
      failure = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < workers; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
}

std::vector<std::vector<Neighbour>> HnswIndex::search(std::span<const float> queries, std::size_t k) const {
  check_queries(queries, dim_);
  const std::size_t n = queries.size() / dim_;
  std::vector<std::vector<Neighbour>> out(n);
  auto& g = *state_->graph;
  k = std::min(k, static_cast<std::size_t>(g.cur_element_count));
  if (k == 0) return out;
  for (std::size_t q = 0; q < n; ++q) {
    auto best = g.searchKnn(queries.data() + q * dim_, k);  // farthest first, squared distances
    auto& row = out[q];
    row.resize(best.size());
    for (std::size_t i = best.size(); i-- > 0;) {
      row[i] = {static_cast<std::int64_t>(best.top().second), std::sqrt(best.top().first)};
      best.pop();
    }
  }
  return out;
}

bool HnswIndex::save(const std::filesystem::path& path) const {
  try {
    state_->graph->saveIndex(path.string());
  } catch (const std::exception& e) {
    throw IoError(fmt::format("{}: cannot write the HNSW graph: {}", path.string(), e.what()));
  }
  return true;
}

std::unique_ptr<HnswIndex> HnswIndex::load(const std::filesystem::path& path, std::size_t dim, HnswOptions options) {
  auto index = std::make_unique<HnswIndex>(dim, options);
  try {
    index->state_->graph = std::make_unique<hnswlib::HierarchicalNSW<float>>(&index->state_->space, path.string());
  } catch (const std::exception& e) {
    throw IoError(fmt::format("{}: cannot read the HNSW graph: {}", path.string(), e.what()));
  }
  index->state_->graph->setEf(index->options_.ef_search);
  return index;
}

void HnswIndex::set_ef_search(std::size_t ef) {
  if (ef == 0) throw ConfigError("hnsw: ef_search must be positive");
  options_.ef_search = ef;
  state_->graph->setEf(ef);
}

std::string HnswIndex::describe() const {
  return fmt::format("hnsw M={} ef={}, {} entries", options_.m, options_.ef_search, size());
}

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
