// flipless compare at production scale, side by side with BackwardCompatibilityML.
//
// Generates two 1M-row prediction files (seeded), then measures in one run:
//   1. `flipless compare` end to end (read, join, metrics, 1000-resample bootstrap, report),
//      wall time and peak memory of the process, median of 3 runs;
//   2. flipless' metric functions alone on the joined arrays (count_flips + every rate);
//   3. BackwardCompatibilityML's trust_compatibility_score + error_compatibility_score on the
//      same arrays (its own Python code), when `--bcml DIR` points at its unpacked wheel;
// and prints the ratios. scripts/bench.sh fetches the wheel and runs this.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <random>
#include <string>
#include <vector>

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
  std::size_t n = 1000000;
  std::string bcml_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--rows" && i + 1 < argc) n = std::stoul(argv[++i]);
    else if (arg == "--bcml" && i + 1 < argc) bcml_dir = argv[++i];
    else {
      std::fprintf(stderr, "usage: compare_bench [--rows N] [--bcml DIR_WITH_backwardcompatibilityml]\n");
      return 2;
    }
  }
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("flipless-bench-{}", getpid());
  std::filesystem::create_directories(dir);

  auto t = Clock::now();
  const Arrays a = generate(dir, n, 42);
  fmt::print("generated 2 x {} rows ({:.0f} MB + {:.0f} MB) in {:.1f}s\n", n,
             std::filesystem::file_size(dir / "old.jsonl") / 1e6, std::filesystem::file_size(dir / "new.jsonl") / 1e6,
             seconds_since(t));

  // 1. End to end, median of 3.
  std::vector<ProcessRun> runs;
  for (int r = 0; r < 3; ++r) {
    runs.push_back(run_process({FLIPLESS_BINARY, "compare", (dir / "old.jsonl").string(), (dir / "new.jsonl").string(),
                                "--format", "json", "--out", (dir / "report.json").string()},
                               "/dev/null"));
    if (runs.back().status != 0) {
      std::fprintf(stderr, "flipless compare failed (status %d)\n", runs.back().status);
      return 1;
    }
  }
  std::sort(runs.begin(), runs.end(), [](const ProcessRun& x, const ProcessRun& y) { return x.seconds < y.seconds; });
  const ProcessRun median = runs[1];

  // 2. Metric functions alone, best of 5.
  double metrics_s = 1e9;
  double btc = 0, bec = 0;
  for (int r = 0; r < 5; ++r) {
    t = Clock::now();
    const auto c = flipless::metrics::count_flips(a.y, a.old_pred, a.new_pred);
    btc = *flipless::metrics::backward_trust_compatibility(c);
    bec = *flipless::metrics::backward_error_compatibility(c);
    metrics_s = std::min(metrics_s, seconds_since(t));
  }

  fmt::print("\n{:<58} {:>10} {:>10}\n", "measurement (" + std::to_string(n) + " examples)", "seconds", "peak MB");
  fmt::print("{:<58} {:>10.3f} {:>10.0f}\n", "flipless compare end to end (read+join+metrics+bootstrap)", median.seconds,
             median.peak_mb);
  fmt::print("{:<58} {:>10.4f} {:>10}\n", "flipless count_flips + BTC + BEC (in process)", metrics_s, "");

  if (!bcml_dir.empty()) {
    {
      std::ofstream labels(dir / "labels.txt");
      for (const auto* v : {&a.y, &a.old_pred, &a.new_pred}) {
        for (auto x : *v) labels << x << ' ';
        labels << '\n';
      }
    }
    setenv("PYTHONPATH", bcml_dir.c_str(), 1);
    const auto out = dir / "bcml.json";
    const ProcessRun py = run_process({"python3", BENCH_DIR "/bcml_scores.py", (dir / "labels.txt").string()}, out.string());
    std::ifstream in(out);
    std::string line;
    std::getline(in, line);
    const auto seconds_at = line.find("\"seconds\": ");
    if (py.status != 0 || seconds_at == std::string::npos) {
      std::fprintf(stderr, "BackwardCompatibilityML run failed: %s\n", line.c_str());
      return 1;
    }
    const double bcml_s = std::stod(line.substr(seconds_at + 11));
    fmt::print("{:<58} {:>10.3f} {:>10}\n", "BackwardCompatibilityML trust+error scores (Python)", bcml_s, "");
    fmt::print("\nBackwardCompatibilityML output: {}\nflipless BTC {:.6f}, BEC {:.6f} (BEC differs by definition: see docs/metrics.md)\n",
               line, btc, bec);
    fmt::print("\nratio BackwardCompatibilityML scores / flipless compare end to end: {:.2f}x\n", bcml_s / median.seconds);
    fmt::print("ratio BackwardCompatibilityML scores / flipless metric functions:  {:.0f}x\n", bcml_s / metrics_s);
  } else {
    fmt::print("\n(pass --bcml DIR to time BackwardCompatibilityML on the same arrays; scripts/bench.sh does)\n");
  }
  std::filesystem::remove_all(dir);
  return 0;
}
