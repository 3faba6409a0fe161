// The CPU math path, measured side by side: each candidate OpenBLAS kernel (the environment as
// it is, OPENBLAS_CORETYPE unset so OpenBLAS detects, and each kernel forced by name) in a
// child process, the candidates interleaved round by round so load on the machine hits them
// alike. Each child reports the kernel it got and:
//   - sgemm: OpenBLAS sgemm called directly, 1024^3, one thread (the one-line check);
//   - torch mm: the same product through libtorch (torch::mm), one thread: what flipless gets;
//   - max rel err: the largest relative error of torch::mm in float32 against float64 on the
//     encoder's shapes (plain, transposed, batched) - a wrong-result kernel shows here;
//   - encoder: MiniLM-L6 forward on one batch of 64 SST-2 sentences, ms, at 1 thread and at 2
//     threads (torch and OpenBLAS pools both set), at 2 torch threads with a 1-thread OpenBLAS
//     pool, and at "1 thread" as flipless set it before (torch::set_num_threads only), with the
//     cores it used (CPU time / wall time).
// Usage: blas_bench [--rounds N] [--model DIR] [--cores Haswell,SkylakeX,...]
// Not on Google Benchmark, unlike the other benches: each candidate must run in a process of its
// own (OpenBLAS reads OPENBLAS_CORETYPE once, when it loads), interleaved round by round, which
// its in-process runs cannot do; its flags are checked the same way (bench_util.h).
#include <fmt/format.h>
#include <time.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <numeric>
#include <sstream>
#include <string_view>
#include <thread>

#include "bench_util.h"
#include "flipless/data/registry.h"
#include "flipless/models/registry.h"
#include "flipless/nn/bert.h"
#include "flipless/text/wordpiece.h"
#include "flipless/train/cpu_math.h"
#include "flipless/train/device.h"
#include "flipless/train/inputs.h"

namespace {
using namespace flipless;
using Clock = std::chrono::steady_clock;

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Largest |torch - float64| / (|float64| summed scale) over the encoder's product shapes.
double max_relative_error() {
  torch::InferenceMode guard;
  double worst = 0;
  auto check = [&](const torch::Tensor& got, const torch::Tensor& want) {
    const auto scale = want.abs().max().item<double>();
    worst = std::max(worst, (got.to(torch::kDouble) - want).abs().max().item<double>() / std::max(scale, 1e-30));
  };
  std::int64_t seed = 1;
  auto mat = [&](std::int64_t r, std::int64_t c) {
    return torch::arange(r * c, torch::kFloat32).mul_(0.013 * static_cast<double>(seed++)).sin_().reshape({r, c});
  };
  for (const auto& [m, k, n] : std::vector<std::array<std::int64_t, 3>>{{1536, 384, 384},
                                                                        {1536, 384, 1536},
                                                                        {1536, 1536, 384},
                                                                        {1, 384, 384},
                                                                        {13, 37, 7},
                                                                        {64, 384, 2},
                                                                        {24, 32, 24}}) {
    const auto a = mat(m, k), b = mat(k, n);
    check(torch::mm(a, b), torch::mm(a.to(torch::kDouble), b.to(torch::kDouble)));
    const auto at = mat(k, m), bt = mat(n, k);  // transposed operands, as nn::Linear uses them
    check(torch::mm(at.t(), bt.t()), torch::mm(at.t().to(torch::kDouble), bt.t().to(torch::kDouble)));
  }
  const auto q = mat(12 * 24, 32).reshape({12, 24, 32}), kk = mat(12 * 24, 32).reshape({12, 24, 32});
  check(torch::matmul(q, kk.transpose(1, 2)),
        torch::matmul(q.to(torch::kDouble), kk.to(torch::kDouble).transpose(1, 2)));
  return worst;
}

struct EncoderTiming {
  double ms = 0, cores = 0;
};

EncoderTiming time_forward(nn::BertEncoder& encoder, const nn::ModelInputs& batch, int repeats) {
  torch::InferenceMode guard;
  encoder->forward(batch.input_ids, batch.token_type_ids, batch.attention_mask);  // warm-up
  double best = 1e300, cpu = 0, wall = 0;
  for (int r = 0; r < repeats; ++r) {
    const double c0 = cpu_seconds();
    const auto t0 = Clock::now();
    encoder->forward(batch.input_ids, batch.token_type_ids, batch.attention_mask);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    cpu += cpu_seconds() - c0;
    wall += s;
    best = std::min(best, s);
  }
  return {best * 1e3, cpu / wall};
}

int child(const std::filesystem::path& model_dir) {
  const auto info = train::blas_info();
  const auto sgemm = train::openblas_sgemm_gflops(1024, 5);
  const double mm = train::torch_gemm_gflops(torch::kFloat32, 1024, 5);
  const double err = max_relative_error();
  const text::WordPieceTokenizer tokenizer = text::WordPieceTokenizer::from_checkpoint_dir(model_dir);
  data::Dataset dev = data::load_dataset("sst2:dev");
  dev.examples.resize(64);
  const train::TokenSource tokens(tokenizer, dev, 128);
  std::vector<std::int64_t> rows(64);
  std::iota(rows.begin(), rows.end(), 0);
  const auto batch = tokens.batch(rows);
  auto encoder = nn::load_encoder(model_dir);
  encoder->eval();
  train::set_threads(1);
  const auto one = time_forward(encoder, batch, 3);
  train::set_threads(2);
  const auto two = time_forward(encoder, batch, 3);
  train::set_blas_threads(1);
  const auto two_blas1 = time_forward(encoder, batch, 3);
  train::set_blas_threads(static_cast<int>(std::thread::hardware_concurrency()));
  torch::set_num_threads(1);  // how flipless set "1 thread" before: OpenBLAS's pool untouched
  const auto old_one = time_forward(encoder, batch, 3);
  fmt::print(
      "core={} sgemm={:.1f} mm={:.1f} err={:.2e} enc1={:.1f} enc1_cores={:.2f} enc2={:.1f} enc2_cores={:.2f} "
      "enc2_blas1={:.1f} old1={:.1f} old1_cores={:.2f} tokens={}\n",
      info.core.empty() ? "none" : info.core, sgemm.value_or(0), mm, err, one.ms, one.cores, two.ms, two.cores,
      two_blas1.ms, old_one.ms, old_one.cores, batch.input_ids.size(1));
  return 0;
}

std::map<std::string, std::string> parse_line(const std::string& line) {
  std::map<std::string, std::string> out;
  std::istringstream in(line);
  for (std::string kv; in >> kv;) {
    const auto eq = kv.find('=');
    if (eq != std::string::npos) out[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  // A child measures one candidate: "blas_bench --child --model DIR", started by the parent.
  const bool is_child = argc >= 2 && std::string_view(argv[1]) == "--child";
  const bench::Flags flags(is_child ? argc - 1 : argc, is_child ? argv + 1 : argv, {"--rounds", "--model", "--cores"},
                           "blas_bench [--rounds N] [--model DIR] [--cores Haswell,SkylakeX,...]");
  const std::string model = flags.text("--model", "minilm-l6");
  const int rounds = static_cast<int>(flags.count("--rounds", 3));
  const std::string cores = flags.text("--cores", "Haswell,SkylakeX,Cooperlake,Zen,Prescott");
  const auto dir = models::resolve_model(model);
  if (is_child) return child(dir);

  const char* env = std::getenv("OPENBLAS_CORETYPE");
  struct Candidate {
    std::string name, env_prefix;
  };
  std::vector<Candidate> candidates;
  candidates.push_back({fmt::format("environment as is (OPENBLAS_CORETYPE={})", env ? env : "unset"), ""});
  candidates.push_back({"OPENBLAS_CORETYPE unset (OpenBLAS detects)", "env -u OPENBLAS_CORETYPE"});
  std::stringstream list(cores);
  for (std::string core; std::getline(list, core, ',');) {
    const auto best = train::best_openblas_core(train::cpu_features());
    if (core != "Prescott" && (!best || train::openblas_core_level(core) > train::openblas_core_level(*best))) continue;
    candidates.push_back({"OPENBLAS_CORETYPE=" + core, "env OPENBLAS_CORETYPE=" + core});
  }
  double load[3] = {0, 0, 0};
  if (getloadavg(load, 3) < 0) load[0] = -1;
  fmt::print("cpu: {}; load average {:.2f} {:.2f} {:.2f}; {} rounds, candidates interleaved\n", train::cpu_model_name(),
             load[0], load[1], load[2], rounds);
  std::vector<std::vector<std::map<std::string, std::string>>> results(candidates.size());
  for (int r = 0; r < rounds; ++r) {
    for (std::size_t j = 0; j < candidates.size(); ++j) {
      const std::size_t c = (r % 2 == 0) ? j : candidates.size() - 1 - j;  // A B C, then C B A
      FILE* pipe = popen(
          (candidates[c].env_prefix + " " + std::string(argv[0]) + " --child --model '" + dir.string() + "'").c_str(),
          "r");
      std::string line;
      char buf[4096];
      while (pipe && fgets(buf, sizeof buf, pipe)) line += buf;
      if (pipe) pclose(pipe);
      results[c].push_back(parse_line(line));
    }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
  };
  fmt::print("\n{:<48} {:<11} {:>7} {:>8} {:>9} {:>8} {:>6} {:>8} {:>6} {:>10} {:>8} {:>6}\n",
             "candidate (median of rounds)", "kernel", "sgemm", "torch mm", "max rel", "enc 1t", "cores", "enc 2t",
             "cores", "2t blas 1", "old 1t", "cores");
  fmt::print("{:<48} {:<11} {:>7} {:>8} {:>9} {:>8} {:>6} {:>8} {:>6} {:>10} {:>8} {:>6}\n", "", "", "GFLOP/s",
             "GFLOP/s", "err", "ms", "", "ms", "", "ms", "ms", "");
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    auto col = [&](const char* key) {
      std::vector<double> v;
      for (const auto& m : results[c]) {
        if (m.count(key)) v.push_back(std::stod(m.at(key)));
      }
      return median(v);
    };
    double err = 0;
    for (const auto& m : results[c]) {
      if (m.count("err")) err = std::max(err, std::stod(m.at("err")));
    }
    const std::string core = results[c].empty() || !results[c][0].count("core") ? "?" : results[c][0].at("core");
    fmt::print(
        "{:<48} {:<11} {:>7.1f} {:>8.1f} {:>9.1e} {:>8.1f} {:>6.2f} {:>8.1f} {:>6.2f} {:>10.1f} {:>8.1f} {:>6.2f}\n",
        candidates[c].name, core, col("sgemm"), col("mm"), err, col("enc1"), col("enc1_cores"), col("enc2"),
        col("enc2_cores"), col("enc2_blas1"), col("old1"), col("old1_cores"));
  }
  if (getloadavg(load, 3) >= 0)
    fmt::print("\nload average at the end {:.2f} {:.2f} {:.2f}\n", load[0], load[1], load[2]);
  return 0;
}
