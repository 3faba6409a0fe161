// The old-logit cache on Google Benchmark, each part measured side by side in one run:
//   1. nearest-neighbour look-up at 10k, 100k and 1M entries of 384-d: HNSW (hnswlib) against
//      exact search (the oracle): insert throughput, query time with p50/p99, recall@1 (the true
//      nearest distance found; ties count) and the 90th percentile of found/true distance, at
//      three ef_search values on the same graph;
//   2. OldLogitCache (SQLite, WAL) insert throughput in transactions of 1,000 entries, exact
//      look-up latency, and the neighbour index built from SQLite against loaded from its
//      snapshot (100k entries at most).
// The vectors are clustered (2,000 Gaussian clusters, unit-normalised) like sentence embeddings;
// queries are fresh points from the same clusters, not stored ones, each run once.
// With --features FILE (a flipless feature cache, e.g. MiniLM features of SST-2 train), part 1
// also runs on those real embeddings: all but the last `queries` rows stored, those queried.
// The ratios (exact / HNSW query time, build / load) are printed after the runs.
// Usage: cache_bench [--sizes 10000,100000,1000000] [--queries 200] [--threads T] [--ef 64] [--ef-construction 100] [--m 16]
//                    [--features FILE] [Google Benchmark's --benchmark_* flags]
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "bench_util.h"
#include "flipless/cache/logit_cache.h"
#include "flipless/cache/vector_index.h"
#include "flipless/io/safetensors.h"

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

constexpr std::size_t kDim = 384;

// n unit vectors around `clusters` random centres.
std::vector<float> clustered(std::size_t n, std::size_t clusters, std::uint64_t seed, std::uint64_t centre_seed) {
  std::mt19937_64 crng(centre_seed), rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> centres(clusters * kDim);
  for (auto& c : centres) c = normal(crng);
  std::uniform_int_distribution<std::size_t> pick(0, clusters - 1);
  std::vector<float> out(n * kDim);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t c = pick(rng);
    float norm = 0;
    for (std::size_t j = 0; j < kDim; ++j) {
      const float v = centres[c * kDim + j] + 0.6f * normal(rng);
      out[i * kDim + j] = v;
      norm += v * v;
    }
    norm = std::sqrt(norm);
    for (std::size_t j = 0; j < kDim; ++j) out[i * kDim + j] /= norm;
  }
  return out;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}


struct Settings {
  std::size_t queries = 200, threads = 1, ef = 64, ef_construction = 100, m = 16;
};

// One set of stored vectors with its two indexes, built when first needed; one set is kept at a
// time (1M entries take 1.5 GB per copy).
struct IndexSet {
  std::string label;
  std::vector<float> data;
  std::unique_ptr<flipless::cache::HnswIndex> hnsw;
  std::unique_ptr<flipless::cache::ExactIndex> exact;
  std::vector<float> truth;  // the exact nearest distance per query (ties count as found: SST-2 repeats sentences)
};

class IndexBench {
 public:
  IndexBench(Settings settings, std::vector<float> queries) : s_(settings), queries_(std::move(queries)) {}

  // Registers part 1 for one set of stored vectors, made by `make` when first needed.
  void add(const std::string& label, std::function<std::vector<float>()> make) {
    makers_[label] = std::move(make);
    labels_.push_back(label);
    const auto n = static_cast<benchmark::IterationCount>(s_.queries);
    benchmark::RegisterBenchmark(("index/" + label + "/hnsw_insert").c_str(), [this, label](benchmark::State& state) {
      IndexSet& set = vectors(label);
      for (auto _ : state) set.hnsw = build_hnsw(set.data);
      state.SetItemsProcessed(static_cast<std::int64_t>(set.data.size() / kDim));
    })->Iterations(1)->UseRealTime()->Unit(benchmark::kSecond);
    benchmark::RegisterBenchmark(("index/" + label + "/exact_insert").c_str(), [this, label](benchmark::State& state) {
      IndexSet& set = vectors(label);
      for (auto _ : state) {
        set.exact = std::make_unique<flipless::cache::ExactIndex>(kDim);
        set.exact->add(set.data, ids(set.data.size() / kDim));
      }
      state.SetItemsProcessed(static_cast<std::int64_t>(set.data.size() / kDim));
    })->Iterations(1)->UseRealTime()->Unit(benchmark::kSecond);
    benchmark::RegisterBenchmark(("index/" + label + "/exact_query").c_str(), [this, label](benchmark::State& state) {
      IndexSet& set = exact(label);
      std::vector<double> times;
      set.truth.clear();
      for (auto _ : state) {
        const std::size_t i = times.size() % s_.queries;
        const auto t = Clock::now();
        const auto found = set.exact->search(query(i), 1);
        times.push_back(since(t));
        state.SetIterationTime(times.back());
        set.truth.push_back(found[0][0].distance);
      }
      latency_counters(state, times);
    })->Iterations(n)->UseManualTime()->Unit(benchmark::kMillisecond);
    for (const std::size_t ef : {std::size_t{32}, s_.ef, std::size_t{4} * s_.ef}) {
      benchmark::RegisterBenchmark(fmt::format("index/{}/hnsw_query_ef{}", label, ef).c_str(), [this, label, ef](benchmark::State& state) {
        IndexSet& set = hnsw(label);
        set.hnsw->set_ef_search(ef);
        std::vector<double> times, ratios;
        std::size_t same = 0;
        for (auto _ : state) {
          const std::size_t i = times.size() % s_.queries;
          const auto t = Clock::now();
          const auto found = set.hnsw->search(query(i), 1);
          times.push_back(since(t));
          state.SetIterationTime(times.back());
          const float d = found[0][0].distance, truth = set.truth[i];
          same += d <= truth * (1 + 1e-5f) + 1e-6f;
          ratios.push_back(truth > 1e-6f ? d / truth : (d <= 1e-6f ? 1.0 : 99.0));
        }
        latency_counters(state, times);
        state.counters["recall@1"] = static_cast<double>(same) / static_cast<double>(times.size());
        state.counters["p90_ratio"] = percentile(ratios, 0.9);
      })->Iterations(n)->UseManualTime()->Unit(benchmark::kMillisecond);
    }
  }

  // Exact / HNSW query time, with recall, for every set and ef that ran.
  void print_ratios(const flipless::bench::KeepingReporter& r) const {
    for (const auto& label : labels_) {
      const auto exact = r.counter("index/" + label + "/exact_query", "p50_ms");
      for (const std::size_t ef : {std::size_t{32}, s_.ef, std::size_t{4} * s_.ef}) {
        const std::string name = fmt::format("index/{}/hnsw_query_ef{}", label, ef);
        const auto hnsw = r.counter(name, "p50_ms");
        if (!exact || !hnsw) continue;
        fmt::print("{:>9} entries, ef {:>4}: HNSW p50 {:.3f} ms, exact p50 {:.3f} ms, ratio exact/HNSW {:.2f}x at recall@1 {:.3f} (p90 found/true distance {:.4f})\n",
                   label, ef, *hnsw, *exact, *exact / *hnsw, r.counter(name, "recall@1").value_or(0), r.counter(name, "p90_ratio").value_or(0));
      }
    }
  }

 private:
  std::span<const float> query(std::size_t i) const { return {queries_.data() + i * kDim, kDim}; }

  static std::vector<std::int64_t> ids(std::size_t n) {
    std::vector<std::int64_t> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::int64_t>(i);
    return out;
  }

  std::unique_ptr<flipless::cache::HnswIndex> build_hnsw(const std::vector<float>& data) const {
    flipless::cache::HnswOptions ho;
    ho.threads = s_.threads;
    ho.ef_search = s_.ef;
    ho.ef_construction = s_.ef_construction;
    ho.m = s_.m;
    auto index = std::make_unique<flipless::cache::HnswIndex>(kDim, ho);
    index->add(data, ids(data.size() / kDim));
    return index;
  }

  IndexSet& vectors(const std::string& label) {
    if (set_.label != label) {
      set_ = IndexSet{};
      set_.label = label;
      set_.data = makers_.at(label)();
    }
    return set_;
  }
  IndexSet& exact(const std::string& label) {
    IndexSet& set = vectors(label);
    if (!set.exact) {
      set.exact = std::make_unique<flipless::cache::ExactIndex>(kDim);
      set.exact->add(set.data, ids(set.data.size() / kDim));
    }
    return set;
  }
  IndexSet& hnsw(const std::string& label) {
    IndexSet& set = vectors(label);
    if (!set.hnsw) set.hnsw = build_hnsw(set.data);
    if (set.truth.size() != s_.queries) {  // the exact answers, when exact_query did not run
      exact(label);
      set.truth.clear();
      for (std::size_t i = 0; i < s_.queries; ++i) set.truth.push_back(set.exact->search(query(i), 1)[0][0].distance);
    }
    return set;
  }

  static void latency_counters(benchmark::State& state, const std::vector<double>& times) {
    state.counters["p50_ms"] = 1e3 * percentile(times, 0.5);
    state.counters["p99_ms"] = 1e3 * percentile(times, 0.99);
  }

  Settings s_;
  std::vector<float> queries_;
  std::map<std::string, std::function<std::vector<float>()>> makers_;
  std::vector<std::string> labels_;
  IndexSet set_;
};

// Part 2: the SQLite store, one file through every step.
class StoreBench {
 public:
  StoreBench(Settings settings, std::size_t rows)
      : s_(settings), rows_(rows), path_(std::filesystem::temp_directory_path() / fmt::format("flipless-cache-bench-{}.sqlite", getpid())) {}
  ~StoreBench() { remove(); }

  void add() {
    benchmark::RegisterBenchmark("cache/sqlite_insert", [this](benchmark::State& state) {
      for (auto _ : state) fill();
      state.SetItemsProcessed(static_cast<std::int64_t>(rows_));
      state.counters["file_MB"] = static_cast<double>(std::filesystem::file_size(path_)) / 1e6;
    })->Iterations(1)->UseRealTime()->Unit(benchmark::kSecond);
    benchmark::RegisterBenchmark("cache/exact_lookup", [this](benchmark::State& state) {
      if (!cache_) fill();
      std::mt19937_64 rng(3);
      std::vector<double> times;
      for (auto _ : state) {
        const std::vector<std::string> key = {flipless::cache::cache_key(fmt::format("input number {}", rng() % rows_))};
        const auto t = Clock::now();
        benchmark::DoNotOptimize(cache_->lookup(key, {}));
        times.push_back(since(t));
        state.SetIterationTime(times.back());
      }
      state.counters["p50_us"] = 1e6 * percentile(times, 0.5);
      state.counters["p99_us"] = 1e6 * percentile(times, 0.99);
    })->Iterations(2000)->UseManualTime()->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("cache/index_built_from_sqlite", [this](benchmark::State& state) {
      if (!cache_) fill();
      for (auto _ : state) cache_->prepare();  // builds the index and writes its snapshot
    })->Iterations(1)->UseRealTime()->Unit(benchmark::kSecond);
    benchmark::RegisterBenchmark("cache/index_loaded_from_snapshot", [this](benchmark::State& state) {
      if (!cache_) fill();
      cache_->prepare();  // the snapshot, when the benchmark before did not run
      cache_.reset();
      flipless::cache::CacheOptions co;
      co.read_only = true;
      co.index.hnsw.ef_search = s_.ef;
      for (auto _ : state) {
        auto c = flipless::cache::OldLogitCache::open(path_, co);
        c->prepare();  // size and hash of the snapshot checked
      }
    })->Iterations(1)->UseRealTime()->Unit(benchmark::kSecond);
  }

  static void print_ratios(const flipless::bench::KeepingReporter& r) {
    const auto built = r.seconds("cache/index_built_from_sqlite"), loaded = r.seconds("cache/index_loaded_from_snapshot");
    if (built && loaded) fmt::print("neighbour index built from SQLite {:.2f} s, loaded from its snapshot {:.2f} s: ratio built/loaded {:.2f}x\n", *built, *loaded, *built / *loaded);
  }

 private:
  void remove() {
    cache_.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_.string() + suffix);
    std::filesystem::remove_all(path_.string() + ".index");
  }

  // A fresh store with rows_ entries inserted in transactions of 1,000.
  void fill() {
    remove();
    flipless::cache::CacheOptions co;
    co.num_labels = 2;
    co.dim = kDim;
    co.index.hnsw.threads = s_.threads;
    co.index.hnsw.ef_search = s_.ef;
    cache_ = flipless::cache::OldLogitCache::open(path_, co);
    const auto data = clustered(rows_, 2000, 5, 7);
    std::vector<flipless::cache::CacheEntry> batch;
    for (std::size_t i = 0; i < rows_; ++i) {
      batch.push_back({flipless::cache::cache_key(fmt::format("input number {}", i)), {0.5f, -0.5f},
                       std::vector<float>(data.begin() + static_cast<std::ptrdiff_t>(i * kDim), data.begin() + static_cast<std::ptrdiff_t>((i + 1) * kDim))});
      if (batch.size() == 1000 || i + 1 == rows_) {
        cache_->put("v1", batch);
        batch.clear();
      }
    }
  }

  Settings s_;
  std::size_t rows_;
  std::filesystem::path path_;
  std::unique_ptr<flipless::cache::OldLogitCache> cache_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const flipless::bench::Flags flags(argc, argv, {"--sizes", "--queries", "--threads", "--ef", "--ef-construction", "--m", "--features"},
                                     "cache_bench [--sizes 10000,100000,1000000] [--queries 200] [--threads T] [--ef 64] "
                                     "[--ef-construction 100] [--m 16] [--features FILE] [--benchmark_...]");
  const std::vector<std::size_t> sizes = flags.counts("--sizes", {10000, 100000, 1000000});
  Settings s;
  s.queries = flags.count("--queries", 200);
  s.threads = flags.count("--threads", std::max(1u, std::thread::hardware_concurrency()));
  s.ef = flags.count("--ef", 64);
  s.ef_construction = flags.count("--ef-construction", 100);
  s.m = flags.count("--m", 16);
  const std::string features = flags.text("--features", "");
  fmt::print("384-d clustered unit vectors, {} queries, {} insert threads, HNSW M={} ef_construction={} ef_search={}\n\n", s.queries,
             s.threads, s.m, s.ef_construction, s.ef);
  std::fflush(stdout);

  IndexBench index(s, clustered(s.queries, 2000, 99, 7));
  for (const std::size_t n : sizes) index.add(std::to_string(n), [n] { return clustered(n, 2000, n, 7); });
  std::unique_ptr<IndexBench> real;  // on the embeddings of --features
  if (!features.empty()) {
    const auto file = flipless::io::SafetensorsFile::open(features);
    const auto* info = file.find("features");
    if (!info || info->shape.size() != 2 || info->shape[1] != static_cast<std::int64_t>(kDim) || info->dtype != flipless::io::DType::kF32 ||
        static_cast<std::size_t>(info->shape[0]) <= s.queries) {
      fmt::print(stderr, "{}: want a (n, 384) F32 tensor 'features' with more than {} rows\n", features, s.queries);
      return 2;
    }
    const auto bytes = file.data(*info);
    std::vector<float> all(bytes.size() / sizeof(float));
    std::memcpy(all.data(), bytes.data(), bytes.size());
    const auto split = all.end() - static_cast<std::ptrdiff_t>(s.queries * kDim);
    std::vector<float> stored(all.begin(), split);
    // The real set gets its own queries: the last rows of the file.
    real = std::make_unique<IndexBench>(s, std::vector<float>(split, all.end()));
    const std::string label = fmt::format("{}r", stored.size() / kDim);
    real->add(label, [stored = std::move(stored)] { return stored; });
  }
  StoreBench store(s, std::min<std::size_t>(sizes.back(), 100000));
  store.add();

  flipless::bench::KeepingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  fmt::print("\n");
  index.print_ratios(reporter);
  if (real) real->print_ratios(reporter);
  StoreBench::print_ratios(reporter);
  benchmark::Shutdown();
  return 0;
}
