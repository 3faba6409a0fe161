// HnswIndex: hnswlib's HierarchicalNSW behind VectorIndex. Its own file so that sanitizer
// builds can leave it uninstrumented for ASan: hnswlib 0.6.2 prefetches one element past a
// full link list in searchBaseLayer (`*(datal + j + 1)` at j = size - 1), a benign read that
// ASan reports as a heap-buffer-overflow in a system header we cannot change.
#include <fmt/format.h>
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "flipless/cache/vector_index.h"
#include "flipless/core/error.h"
#include "index_checks.h"

namespace flipless::cache {

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
  detail::check_rows(vectors, ids, dim_);
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
  detail::check_queries(queries, dim_);
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

}  // namespace flipless::cache
