// Serving Gated Fusion from the old-logit cache against serving the new model alone, side by
// side in one run, at batch 1 and 64: what the cache look-up, the gate and the fusion add to a
// request. The new model is a trained Gated Fusion folder (default: the demo's seed 0); the
// cache holds SST-2 dev sentences; half of the queries are cached sentences (exact hits) and
// half are edited ones (near hits through the nearest-neighbour index).
// Usage: serve_bench [--model DIR] [--threads T] [--rounds R]
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fmt/format.h>
#include <thread>

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
  using namespace flipless;
  namespace fs = std::filesystem;
  fs::path model = fs::path(BENCH_DIR) / ".." / "runs" / "demo" / "sst2" / "gated_fusion" / "seed-0" / "model";
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int rounds = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i];
    if (arg == "--model") model = argv[i + 1];
    else if (arg == "--threads") threads = std::stoi(argv[i + 1]);
    else if (arg == "--rounds") rounds = std::stoi(argv[i + 1]);
  }
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
  fmt::print("{:>6} | {:>14} {:>14} | {:>14} {:>14} | {:>8}\n", "batch", "new alone p50", "p99", "GF+cache p50", "p99", "ratio");
  for (const std::size_t batch : {std::size_t{1}, std::size_t{64}}) {
    std::vector<double> ta, tg;
    const int n = batch == 1 ? rounds : std::max(10, rounds / 10);
    for (int r = -3; r < n; ++r) {  // 3 warm-up rounds
      const std::size_t start = (static_cast<std::size_t>(r + 3) * batch) % (queries.size() - batch + 1);
      const std::span<const data::TextExample> xs(queries.data() + start, batch);
      // Alternate which runs first, so neither always meets warm caches.
      double a = 0, g = 0;
      for (int k = 0; k < 2; ++k) {
        const bool gf_turn = (k == 0) == (r % 2 == 0);
        const auto t = Clock::now();
        if (gf_turn) {
          predictor->predict(xs);
          g = since(t);
        } else {
          alone->predict(xs);
          a = since(t);
        }
      }
      if (r >= 0) {
        ta.push_back(a);
        tg.push_back(g);
      }
    }
    fmt::print("{:>6} | {:>12.2f}ms {:>12.2f}ms | {:>12.2f}ms {:>12.2f}ms | {:>7.3f}x\n", batch, 1e3 * median(ta), 1e3 * p99(ta), 1e3 * median(tg),
               1e3 * p99(tg), median(tg) / median(ta));
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
  return 0;
}
