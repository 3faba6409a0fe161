// Serving Gated Fusion from the old-logit cache against serving the new model alone, side by
// side in one run, at batch 1 and 64: what the cache look-up, the gate and the fusion add to a
// request. The new model is a trained Gated Fusion folder (default: the demo's seed 0); the
// cache holds SST-2 dev sentences; half of the queries are cached sentences (exact hits) and
// half are edited ones (near hits through the nearest-neighbour index). On Google Benchmark: each
// batch size is one benchmark whose rounds run both predictors, alternately first; its time is
// Gated Fusion's, the counters give both sides' p50/p99 and their ratio.
// Usage: serve_bench [--model DIR] [--threads T] [--rounds R] [Google Benchmark's --benchmark_* flags]
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fmt/format.h>
#include <thread>

#include "bench_util.h"
#include "flipless/cache/logit_cache.h"
#include "flipless/data/registry.h"
#include "flipless/serve/predictor.h"
#include "flipless/train/saved_model.h"

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
double p99(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, v.size() * 99 / 100)];
}
}  // namespace

int main(int argc, char** argv) {
  flipless::train::select_blas_kernel_at_startup(argv);  // as the flipless binary does
  benchmark::Initialize(&argc, argv);
  using namespace flipless;
  namespace fs = std::filesystem;
  const bench::Flags flags(argc, argv, {"--model", "--threads", "--rounds"}, "serve_bench [--model DIR] [--threads T] [--rounds R] [--benchmark_...]");
  const fs::path model = flags.text("--model", (fs::path(BENCH_DIR) / ".." / "runs" / "demo" / "sst2" / "gated_fusion" / "seed-0" / "model").string());
  const int threads = static_cast<int>(flags.count("--threads", std::max(1u, std::thread::hardware_concurrency())));
  const int rounds = static_cast<int>(flags.count("--rounds", 200));
  if (!fs::exists(model / train::kModelCardName)) {
    fmt::print(stderr, "serve_bench: no Gated Fusion model at {}; run `flipless demo` first or pass --model\n", model.string());
    return 2;
  }
  flipless::train::set_threads(threads);  // torch and OpenBLAS pools
  const auto dev = data::load_dataset("sst2:dev");
  const auto alone = train::load_classifier(model);
  // The cache: old logits (here: the new model's own, the values do not matter for timing) and
  // embeddings of every dev sentence.
  const auto path = fs::temp_directory_path() / "flipless-serve-bench.sqlite";
  fs::remove(path);
  fs::remove(path.string() + "-wal");
  fs::remove(path.string() + "-shm");
  {
    const auto out = alone->predict(dev.examples);
    cache::CacheOptions co;
    co.num_labels = out.num_labels;
    co.dim = out.dim;
    auto c = cache::OldLogitCache::open(path, co);
    std::vector<cache::CacheEntry> entries;
    for (std::size_t i = 0; i < dev.size(); ++i) {
      entries.push_back({cache::cache_key(dev.examples[i].text_a, dev.examples[i].text_b),
                         std::vector<float>(out.logits.begin() + static_cast<std::ptrdiff_t>(i * out.num_labels), out.logits.begin() + static_cast<std::ptrdiff_t>((i + 1) * out.num_labels)),
                         std::vector<float>(out.embeddings.begin() + static_cast<std::ptrdiff_t>(i * out.dim), out.embeddings.begin() + static_cast<std::ptrdiff_t>((i + 1) * out.dim))});
    }
    c->put("v1", entries, serve::embedding_space_of(model));
  }
  cache::CacheOptions ro;
  ro.read_only = true;
  const auto predictor = serve::CompatiblePredictor::load(model, cache::OldLogitCache::open(path, ro), nullptr);
  // Queries: even rows as cached, odd rows edited (" indeed" appended) so they miss the key.
  std::vector<data::TextExample> queries;
  for (std::size_t i = 0; i < 256; ++i) {
    auto e = dev.examples[i];
    if (i % 2 == 1) e.text_a += " indeed";
    queries.push_back(e);
  }
  fmt::print("{}\n{} threads, {} rounds per batch size\n\n", predictor->describe(), threads, rounds);
  std::fflush(stdout);
  const std::vector<std::size_t> batches = {1, 64};
  for (const std::size_t batch : batches) {
    const int n = batch == 1 ? rounds : std::max(10, rounds / 10);
    benchmark::RegisterBenchmark(fmt::format("serve/batch{}/gf_cache_vs_new_alone", batch).c_str(), [&, batch](benchmark::State& state) {
      std::vector<double> ta, tg;
      auto round = [&](int r) {
        const std::size_t start = (static_cast<std::size_t>(r + 3) * batch) % (queries.size() - batch + 1);
        const std::span<const data::TextExample> xs(queries.data() + start, batch);
        // Alternate which runs first, so neither always meets warm caches.
        double a = 0, g = 0;
        for (int k = 0; k < 2; ++k) {
          const bool gf_turn = (k == 0) == (r % 2 == 0);
          const auto t = Clock::now();
          if (gf_turn) {
            benchmark::DoNotOptimize(predictor->predict(xs));
            g = since(t);
          } else {
            benchmark::DoNotOptimize(alone->predict(xs));
            a = since(t);
          }
        }
        return std::pair{a, g};
      };
      for (int r = -3; r < 0; ++r) round(r);  // 3 warm-up rounds, not timed
      int r = 0;
      for (auto _ : state) {
        const auto [a, g] = round(r++);
        ta.push_back(a);
        tg.push_back(g);
        state.SetIterationTime(g);
      }
      state.counters["new_alone_p50_ms"] = 1e3 * median(ta);
      state.counters["new_alone_p99_ms"] = 1e3 * p99(ta);
      state.counters["gf_cache_p50_ms"] = 1e3 * median(tg);
      state.counters["gf_cache_p99_ms"] = 1e3 * p99(tg);
      state.counters["ratio_p50"] = median(tg) / median(ta);
      state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
    })->Iterations(n)->UseManualTime()->Unit(benchmark::kMillisecond);
  }
  bench::KeepingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  fmt::print("\n");
  for (const std::size_t batch : batches) {
    const std::string name = fmt::format("serve/batch{}/gf_cache_vs_new_alone", batch);
    const auto ratio = reporter.counter(name, "ratio_p50");
    if (!ratio) continue;
    fmt::print("batch {:>2}: new model alone p50 {:.2f} ms, Gated Fusion + cache p50 {:.2f} ms: ratio {:.3f}x\n", batch,
               *reporter.counter(name, "new_alone_p50_ms"), *reporter.counter(name, "gf_cache_p50_ms"), *ratio);
  }
  std::size_t exact = 0, near = 0;
  for (const auto& p : predictor->predict(std::span(queries).first(64))) {
    exact += p.path == serve::PredictionPath::kExact;
    near += p.path == serve::PredictionPath::kNear;
  }
  fmt::print("\npaths over 64 queries: {} exact, {} near\n", exact, near);
  fs::remove(path);
  fs::remove(path.string() + "-wal");
  fs::remove(path.string() + "-shm");
  benchmark::Shutdown();
  return 0;
}
