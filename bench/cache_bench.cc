// The old-logit cache, each measured side by side in one run:
//   1. nearest-neighbour look-up at 10k, 100k and 1M entries of 384-d: HNSW (hnswlib) against
//      exact search (the oracle): insert throughput, query p50/p99, recall@1 (the true nearest
//      distance found; ties count) and the 90th percentile of found/true distance, at three
//      ef_search values on the same graph;
//   2. OldLogitCache (SQLite, WAL) insert throughput in transactions of 1,000 entries, exact
//      look-up latency, and the neighbour index built from SQLite against loaded from its
//      snapshot (100k entries at most).
// The vectors are clustered (2,000 Gaussian clusters, unit-normalised) like sentence embeddings;
// queries are fresh points from the same clusters, not stored ones.
// With --features FILE (a flipless feature cache, e.g. MiniLM features of SST-2 train), part 1
// also runs on those real embeddings: all but the last `queries` rows stored, those queried.
// Usage: cache_bench [--sizes 10000,100000,1000000] [--queries 200] [--threads T] [--ef 64] [--ef-construction 100] [--m 16]
//                    [--features FILE]
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

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

}  // namespace

int main(int argc, char** argv) {
  using namespace flipless::cache;
  std::vector<std::size_t> sizes = {10000, 100000, 1000000};
  std::string features;
  std::size_t graph_m = 16;
  std::size_t queries = 200, threads = std::max(1u, std::thread::hardware_concurrency()), ef = 64, ef_construction = 100;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i];
    if (arg == "--sizes") {
      sizes.clear();
      std::string s = argv[i + 1];
      for (std::size_t at = 0; at <= s.size();) {
        const auto comma = s.find(',', at);
        sizes.push_back(std::stoul(s.substr(at, comma - at)));
        if (comma == std::string::npos) break;
        at = comma + 1;
      }
    } else if (arg == "--queries") {
      queries = std::stoul(argv[i + 1]);
    } else if (arg == "--threads") {
      threads = std::stoul(argv[i + 1]);
    } else if (arg == "--ef") {
      ef = std::stoul(argv[i + 1]);
    } else if (arg == "--m") {
      graph_m = std::stoul(argv[i + 1]);
    } else if (arg == "--features") {
      features = argv[i + 1];
    } else if (arg == "--ef-construction") {
      ef_construction = std::stoul(argv[i + 1]);
    }
  }
  fmt::print("384-d clustered unit vectors, {} queries, {} insert threads, HNSW M={} ef_construction={} ef_search={}\n\n", queries, threads,
             graph_m, ef_construction, ef);
  fmt::print("{:>9} {:>5} | {:>12} {:>12} | {:>10} {:>10} {:>10} {:>10} | {:>9} {:>10} {:>8}\n", "entries", "ef", "hnsw ins/s", "exact ins/s",
             "hnsw p50", "hnsw p99", "exact p50", "exact p99", "recall@1", "p90 ratio", "speed-up");
  auto measure = [&](const std::string& label, const std::vector<float>& data, const std::vector<float>& q) {
    const std::size_t n = data.size() / kDim;
    std::vector<std::int64_t> ids(n);
    for (std::size_t i = 0; i < n; ++i) ids[i] = static_cast<std::int64_t>(i);
    HnswOptions ho;
    ho.threads = threads;
    ho.ef_search = ef;
    ho.ef_construction = ef_construction;
    ho.m = graph_m;
    HnswIndex hnsw(kDim, ho);
    auto t = Clock::now();
    hnsw.add(data, ids);
    const double hnsw_insert = since(t);
    ExactIndex exact(kDim);
    t = Clock::now();
    exact.add(data, ids);
    const double exact_insert = since(t);
    // The exact answers once; then each ef against them.
    std::vector<double> te;
    std::vector<float> truth;  // the exact nearest distance (ties count as found: SST-2 has duplicate sentences)
    for (std::size_t i = 0; i < queries; ++i) {
      const std::span<const float> one(q.data() + i * kDim, kDim);
      t = Clock::now();
      truth.push_back(exact.search(one, 1)[0][0].distance);
      te.push_back(since(t));
    }
    for (const std::size_t e : {std::size_t{32}, ef, std::size_t{4} * ef}) {
      hnsw.set_ef_search(e);
      std::vector<double> th;
      std::size_t same = 0;
      std::vector<double> ratios;
      for (std::size_t i = 0; i < queries; ++i) {
        const std::span<const float> one(q.data() + i * kDim, kDim);
        t = Clock::now();
        const auto a = hnsw.search(one, 1);
        th.push_back(since(t));
        same += a[0][0].distance <= truth[i] * (1 + 1e-5f) + 1e-6f;
        ratios.push_back(truth[i] > 1e-6f ? a[0][0].distance / truth[i] : (a[0][0].distance <= 1e-6f ? 1.0 : 99.0));
      }
      const double ph = percentile(th, 0.5), pe = percentile(te, 0.5);
      fmt::print("{:>9} {:>5} | {:>12.0f} {:>12.0f} | {:>8.3f}ms {:>8.3f}ms {:>8.3f}ms {:>8.3f}ms | {:>9.3f} {:>10.4f} {:>7.0f}x\n", label, e,
                 static_cast<double>(n) / hnsw_insert, static_cast<double>(n) / exact_insert, 1e3 * ph, 1e3 * percentile(th, 0.99), 1e3 * pe,
                 1e3 * percentile(te, 0.99), static_cast<double>(same) / static_cast<double>(queries), percentile(ratios, 0.9), pe / ph);
    }
    std::fflush(stdout);
  };
  const auto q = clustered(queries, 2000, 99, 7);
  for (const auto n : sizes) measure(std::to_string(n), clustered(n, 2000, n, 7), q);
  if (!features.empty()) {
    const auto file = flipless::io::SafetensorsFile::open(features);
    const auto* info = file.find("features");
    if (!info || info->shape.size() != 2 || info->shape[1] != static_cast<std::int64_t>(kDim) || info->dtype != flipless::io::DType::kF32) {
      fmt::print(stderr, "{}: want a (n, 384) F32 tensor 'features'\n", features);
      return 2;
    }
    const auto bytes = file.data(*info);
    std::vector<float> all(bytes.size() / sizeof(float));
    std::memcpy(all.data(), bytes.data(), bytes.size());
    const std::vector<float> stored(all.begin(), all.end() - static_cast<std::ptrdiff_t>(queries * kDim));
    const std::vector<float> real_q(all.end() - static_cast<std::ptrdiff_t>(queries * kDim), all.end());
    fmt::print("real embeddings from {}:\n", features);
    measure(fmt::format("{}r", stored.size() / kDim), stored, real_q);
  }

  // 2. The SQLite store at the largest size.
  const std::size_t n = sizes.back();
  const auto path = std::filesystem::temp_directory_path() / "flipless-cache-bench.sqlite";
  std::filesystem::remove(path);
  std::filesystem::remove(path.string() + "-wal");
  std::filesystem::remove(path.string() + "-shm");
  std::filesystem::remove_all(path.string() + ".index");
  {
    CacheOptions co;
    co.num_labels = 2;
    co.dim = kDim;
    co.index.hnsw.threads = threads;
    co.index.hnsw.ef_search = ef;
    auto c = OldLogitCache::open(path, co);
    const auto data = clustered(std::min<std::size_t>(n, 100000), 2000, 5, 7);
    const std::size_t rows = data.size() / kDim;
    std::vector<CacheEntry> batch;
    auto t = Clock::now();
    for (std::size_t i = 0; i < rows; ++i) {
      batch.push_back({cache_key(fmt::format("input number {}", i)), {0.5f, -0.5f}, std::vector<float>(data.begin() + static_cast<std::ptrdiff_t>(i * kDim), data.begin() + static_cast<std::ptrdiff_t>((i + 1) * kDim))});
      if (batch.size() == 1000 || i + 1 == rows) {
        c->put("v1", batch);
        batch.clear();
      }
    }
    const double insert = since(t);
    std::vector<double> lat;
    std::mt19937_64 rng(3);
    for (std::size_t i = 0; i < 2000; ++i) {
      const std::vector<std::string> key = {cache_key(fmt::format("input number {}", rng() % rows))};
      t = Clock::now();
      c->lookup(key, {});
      lat.push_back(since(t));
    }
    fmt::print("\nOldLogitCache (SQLite WAL, synchronous=NORMAL): {} entries with 384-d embeddings inserted at {:.0f} entries/s "
               "(transactions of 1,000); exact look-up p50 {:.1f} us, p99 {:.1f} us; file {:.0f} MB\n",
               rows, static_cast<double>(rows) / insert, 1e6 * percentile(lat, 0.5), 1e6 * percentile(lat, 0.99),
               static_cast<double>(std::filesystem::file_size(path)) / 1e6);
    t = Clock::now();
    c->prepare();
    fmt::print("nearest-neighbour index built from SQLite (and snapshotted): {:.1f} s\n", since(t));
  }
  {
    CacheOptions co;
    co.read_only = true;
    co.index.hnsw.ef_search = ef;
    const auto t = Clock::now();
    auto c = OldLogitCache::open(path, co);
    c->prepare();
    fmt::print("reopened: index loaded from its snapshot (size and hash checked): {:.1f} s\n", since(t));
  }
  std::filesystem::remove_all(path.string() + ".index");
  std::filesystem::remove(path);
  std::filesystem::remove(path.string() + "-wal");
  std::filesystem::remove(path.string() + "-shm");
  return 0;
}
