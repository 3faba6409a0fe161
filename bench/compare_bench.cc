// flipless compare at production scale, side by side with BackwardCompatibilityML, on Google
// Benchmark.
//
// Generates two 1M-row prediction files (seeded), then measures in one run:
//   compare/end_to_end   `flipless compare` (read, join, metrics, 1000-resample bootstrap,
//                        report) as a child process: wall time, median of 3, and its peak memory;
//   metrics/in_process   flipless' metric functions on the joined arrays (count_flips + BTC + BEC);
//   bcml/scores          BackwardCompatibilityML's trust_compatibility_score +
//                        error_compatibility_score on the same arrays (its own Python code and
//                        the time it reports), when `--bcml DIR` points at its unpacked wheel;
// and prints the ratios. scripts/bench.sh fetches the wheel and runs this.
// Usage: compare_bench [--rows N] [--bcml DIR] [Google Benchmark's --benchmark_* flags]
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "flipless/core/file.h"
#include "flipless/metrics/flip_counts.h"
#include "flipless/metrics/rates.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Arrays {
  std::vector<std::int32_t> y, old_pred, new_pred;
};

// Writes old (labels + probs) and new (logits) files of n rows; returns the label arrays.
Arrays generate(const std::filesystem::path& dir, std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::string old_text, new_text;
  old_text.reserve(n * 64);
  new_text.reserve(n * 64);
  Arrays a;
  for (std::size_t i = 0; i < n; ++i) {
    const int y = unit(rng) < 0.55 ? 1 : 0;
    const bool old_ok = unit(rng) < 0.90, new_ok = unit(rng) < 0.93;
    const int old_pred = old_ok ? y : 1 - y, new_pred = new_ok ? y : 1 - y;
    const double p = 0.5 + 0.5 * unit(rng);
    const double p1 = old_pred == 1 ? p : 1 - p;
    const double margin = 0.1 + 3 * unit(rng);
    old_text += fmt::format("{{\"id\":\"ex{:07d}\",\"label\":{},\"probs\":[{:.6f},{:.6f}]}}\n", i, y, 1 - p1, p1);
    new_text += fmt::format("{{\"id\":\"ex{:07d}\",\"logits\":[{:.5f},{:.5f}]}}\n", i, new_pred == 1 ? -margin : margin,
                            new_pred == 1 ? margin : -margin);
    a.y.push_back(y);
    a.old_pred.push_back(old_pred);
    a.new_pred.push_back(new_pred);
  }
  flipless::core::write_file_atomic(dir / "old.jsonl", old_text);
  flipless::core::write_file_atomic(dir / "new.jsonl", new_text);
  return a;
}

struct ProcessRun {
  double seconds;
  double peak_mb;
  int status;
};

ProcessRun run_process(const std::vector<std::string>& argv, const std::string& stdout_path) {
  std::fflush(stdout);  // or the child would flush our buffered output a second time
  const auto start = Clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    if (!stdout_path.empty()) {
      if (!std::freopen(stdout_path.c_str(), "w", stdout)) _exit(127);
    }
    std::vector<char*> args;
    for (const auto& s : argv) args.push_back(const_cast<char*>(s.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  struct rusage usage {};
  wait4(pid, &status, 0, &usage);
  return {seconds_since(start), static_cast<double>(usage.ru_maxrss) / 1024.0, status};
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const flipless::bench::Flags flags(argc, argv, {"--rows", "--bcml"},
                                     "compare_bench [--rows N] [--bcml DIR_WITH_backwardcompatibilityml] [--benchmark_...]");
  const std::size_t n = flags.count("--rows", 1000000);
  const std::string bcml_dir = flags.text("--bcml", "");
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("flipless-bench-{}", getpid());
  std::filesystem::create_directories(dir);

  const auto t = Clock::now();
  const Arrays a = generate(dir, n, 42);
  fmt::print("generated 2 x {} rows ({:.0f} MB + {:.0f} MB) in {:.1f}s\n", n,
             std::filesystem::file_size(dir / "old.jsonl") / 1e6, std::filesystem::file_size(dir / "new.jsonl") / 1e6,
             seconds_since(t));
  std::fflush(stdout);
  benchmark::AddCustomContext("rows", std::to_string(n));

  benchmark::RegisterBenchmark("compare/end_to_end", [&](benchmark::State& state) {
    double peak_mb = 0.0;
    for (auto _ : state) {
      const ProcessRun run = run_process({FLIPLESS_BINARY, "compare", (dir / "old.jsonl").string(), (dir / "new.jsonl").string(),
                                          "--format", "json", "--out", (dir / "report.json").string()},
                                         "/dev/null");
      if (run.status != 0) {
        state.SkipWithError(fmt::format("flipless compare failed (status {})", run.status).c_str());
        break;
      }
      peak_mb = std::max(peak_mb, run.peak_mb);
    }
    state.counters["peak_MB"] = peak_mb;
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
  })->Iterations(1)->Repetitions(3)->DisplayAggregatesOnly()->UseRealTime()->Unit(benchmark::kSecond);

  double btc = 0, bec = 0;
  benchmark::RegisterBenchmark("metrics/in_process", [&](benchmark::State& state) {
    for (auto _ : state) {
      const auto c = flipless::metrics::count_flips(a.y, a.old_pred, a.new_pred);
      btc = *flipless::metrics::backward_trust_compatibility(c);
      bec = *flipless::metrics::backward_error_compatibility(c);
      benchmark::DoNotOptimize(btc);
      benchmark::DoNotOptimize(bec);
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
  })->UseRealTime()->Unit(benchmark::kMillisecond);

  std::string bcml_output;
  if (!bcml_dir.empty()) {
    {
      std::ofstream labels(dir / "labels.txt");
      for (const auto* v : {&a.y, &a.old_pred, &a.new_pred}) {
        for (auto x : *v) labels << x << ' ';
        labels << '\n';
      }
    }
    setenv("PYTHONPATH", bcml_dir.c_str(), 1);
    benchmark::RegisterBenchmark("bcml/scores", [&](benchmark::State& state) {
      for (auto _ : state) {
        const auto out = dir / "bcml.json";
        const ProcessRun py = run_process({"python3", BENCH_DIR "/bcml_scores.py", (dir / "labels.txt").string()}, out.string());
        std::ifstream in(out);
        std::getline(in, bcml_output);
        const auto seconds_at = bcml_output.find("\"seconds\": ");
        if (py.status != 0 || seconds_at == std::string::npos) {
          state.SkipWithError(("BackwardCompatibilityML run failed: " + bcml_output).c_str());
          break;
        }
        state.SetIterationTime(std::stod(bcml_output.substr(seconds_at + 11)));  // the time it measured itself
      }
      state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
    })->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);
  }

  flipless::bench::KeepingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::filesystem::remove_all(dir);

  const auto end_to_end = reporter.seconds("compare/end_to_end"), metrics = reporter.seconds("metrics/in_process"),
             bcml = reporter.seconds("bcml/scores");
  fmt::print("\n{} examples:", n);
  if (end_to_end) fmt::print(" compare end to end {:.3f} s (median of 3, peak {:.0f} MB);", *end_to_end, reporter.counter("compare/end_to_end", "peak_MB").value_or(0));
  if (metrics) fmt::print(" metric functions {:.3f} ms;", 1e3 * *metrics);
  if (bcml) fmt::print(" BackwardCompatibilityML {:.3f} s", *bcml);
  fmt::print("\n");
  if (bcml && metrics) {
    fmt::print("BackwardCompatibilityML output: {}\nflipless BTC {:.6f}, BEC {:.6f} (BEC differs by definition: see docs/metrics.md)\n",
               bcml_output, btc, bec);
    if (end_to_end) fmt::print("ratio BackwardCompatibilityML scores / flipless compare end to end: {:.2f}x\n", *bcml / *end_to_end);
    fmt::print("ratio BackwardCompatibilityML scores / flipless metric functions:  {:.0f}x\n", *bcml / *metrics);
  } else if (bcml_dir.empty()) {
    fmt::print("(pass --bcml DIR to time BackwardCompatibilityML on the same arrays; scripts/bench.sh does)\n");
  }
  benchmark::Shutdown();
  return 0;
}
