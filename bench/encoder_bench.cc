// Models and training on this machine, each measured side by side in one run:
//   1. MiniLM feature extraction (FeatureExtractor: tokenise, length-sort, batch, pool) against a
//      bare libtorch forward loop over the very same pre-built batches: the ratio says how much
//      our bookkeeping costs (target >= 0.9);
//   2. fine-tuning examples/s of MiniLM (all 6 layers in fp32 and under bf16 autocast, and the
//      first 2 layers) at batch 32; then Gated Fusion's fused epoch (gate, fused loss, drop-gate,
//      the gate's own optimizer) against a vanilla epoch on the same batches, alternated, in the
//      default precision: the training-cost ratio GF / vanilla (target <= 1.05);
//   3. seconds to train a linear head on cached SST-2 features (train split, 384-d);
//   4. WordPiece tokenizer throughput against Hugging Face's `tokenizers` (Rust), run by
//      bench/tokenizers_speed.py when --tokenizers-python is given.
// On Google Benchmark: each measurement is one benchmark (one iteration: the runs are seconds
// long), and the ratios are printed from the kept results at the end.
// Usage: encoder_bench [--model DIR] [--rows N] [--threads T] [--tokenizers-python PYTHON]
//                      [Google Benchmark's --benchmark_* flags, e.g. --benchmark_filter=gated]
#include <benchmark/benchmark.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fmt/format.h>
#include <fstream>
#include <numeric>
#include <thread>

#include "bench_util.h"
#include "flipless/data/registry.h"
#include "flipless/models/registry.h"
#include "flipless/nn/classifier.h"
#include "flipless/text/wordpiece.h"
#include "flipless/train/cpu_math.h"
#include "flipless/train/device.h"
#include "flipless/train/features.h"
#include "flipless/train/inputs.h"
#include "flipless/train/strategy.h"
#include "flipless/train/trainer.h"

namespace {
using namespace flipless;
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A benchmark that runs once and reports `seconds` as its time.
template <typename F>
void once(const std::string& name, F&& f) {
  benchmark::RegisterBenchmark(name.c_str(), [f = std::forward<F>(f)](benchmark::State& state) {
    for (auto _ : state) state.SetIterationTime(f(state));
  })->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);
}

double rate(benchmark::State& state, double examples, double seconds) {
  state.counters["ex_per_s"] = examples / seconds;
  return seconds;
}

}  // namespace

int main(int argc, char** argv) {
  train::select_blas_kernel_at_startup(argv);  // as the flipless binary does
  benchmark::Initialize(&argc, argv);
  const bench::Flags flags(argc, argv, {"--model", "--rows", "--threads", "--tokenizers-python"},
                           "encoder_bench [--model DIR] [--rows N] [--threads T] [--tokenizers-python PYTHON] [--benchmark_...]");
  const std::string model_name = flags.text("--model", "minilm-l6"), python = flags.text("--tokenizers-python", "");
  const std::size_t rows = flags.count("--rows", 2000);
  const int threads = static_cast<int>(flags.count("--threads", std::max(1u, std::thread::hardware_concurrency())));
  train::set_threads(threads);  // torch and OpenBLAS pools
  const auto dir = models::resolve_model(model_name);
  const data::Dataset train_full = data::load_dataset("sst2:train");
  data::Dataset sample = train_full;
  sample.examples.resize(std::min(rows, sample.size()));
  data::Dataset small = sample;
  small.examples.resize(std::min<std::size_t>(256, small.size()));
  fmt::print("model {}, {} threads, {} SST-2 train sentences\n\n", dir.string(), threads, sample.size());
  std::fflush(stdout);
  const train::FeatureExtractor extractor(train::FeatureSpec{dir, 0, "mean", 128});
  const auto n_sample = static_cast<double>(sample.size());

  // 1. Feature extraction against a bare forward loop on the same length-sorted batches.
  once("features/extract", [&](benchmark::State& state) {
    extractor.extract(sample);  // warm-up
    const auto t = Clock::now();
    extractor.extract(sample);
    return rate(state, n_sample, since(t));
  });
  std::int64_t token_count = 0;
  once("features/bare_forward", [&](benchmark::State& state) {
    const train::TokenSource tokens(extractor.tokenizer(), sample, 128);
    std::vector<std::int64_t> order(static_cast<std::size_t>(tokens.size()));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return tokens.cost(a) < tokens.cost(b); });
    std::vector<nn::ModelInputs> batches;
    for (std::size_t s = 0; s < order.size(); s += 64) {
      batches.push_back(tokens.batch(std::vector<std::int64_t>(order.begin() + static_cast<std::ptrdiff_t>(s),
                                                               order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), s + 64)))));
    }
    token_count = 0;
    for (std::int64_t r = 0; r < tokens.size(); ++r) token_count += tokens.cost(r);
    auto encoder = nn::load_encoder(dir);
    encoder->eval();
    torch::InferenceMode guard;
    const auto t = Clock::now();
    for (const auto& b : batches) encoder->forward(b.input_ids, b.token_type_ids, b.attention_mask);
    return rate(state, n_sample, since(t));
  });

  // 2. Fine-tuning throughput at batch 32 on 256 sentences; all 6 layers also under bf16 autocast.
  const train::TokenSource small_source(extractor.tokenizer(), small, 128);
  for (const auto& [layers, precision] : std::vector<std::pair<std::int64_t, train::Precision>>{
           {6, train::Precision::kFloat32}, {6, train::Precision::kBFloat16}, {2, train::Precision::kFloat32}}) {
    once(fmt::format("finetune/layers:{}/{}", layers, train::to_string(precision)), [&, layers = layers, precision = precision](benchmark::State& state) {
      nn::EncoderClassifier model(nn::load_encoder(dir, layers), 2, nn::HeadConfig{});
      train::TrainConfig config;
      config.epochs = 1;
      config.batch_size = 32;
      config.precision = precision;
      const auto result = train::train(model, small_source, nullptr, config);
      state.counters["ex_per_s"] = result.epochs[0].examples_per_second;
      return result.epochs[0].seconds;
    });
  }

  // 2b. Gated Fusion's cost against vanilla's: one fine-tuning epoch each on the same 256
  // examples (GF's is its fused last epoch: with the shared warm-up that is all a GF setting
  // trains), alternated V G G V inside one benchmark so that drift hits both alike.
  const auto cpu = train::cpu_features();  // precision: auto's rule for fine-tuning on a CPU
  const auto gf_precision = cpu.avx512_bf16 || cpu.amx_bf16 ? train::Precision::kBFloat16 : train::Precision::kFloat32;
  once("gated_fusion_vs_vanilla/epoch_pairs", [&](benchmark::State& state) {
    auto gen = torch::make_generator<at::CPUGeneratorImpl>(7);
    const auto old_logits = torch::randn({small_source.size(), 2}, gen);
    double vanilla_s = 0, gf_s = 0;
    for (const bool gf : {false, true, true, false}) {
      nn::EncoderClassifier model(nn::load_encoder(dir), 2, nn::HeadConfig{});
      train::TrainConfig config;
      config.epochs = 1;
      config.batch_size = 32;
      config.precision = gf_precision;
      train::GatedFusionStrategyConfig g;
      g.embedding_dim = model.encoder()->config().hidden_size;
      g.num_labels = 2;
      g.lr2 = 3e-5;
      std::unique_ptr<train::CompatibilityStrategy> strategy =
          train::make_strategy(gf ? train::StrategyConfig(g) : train::StrategyConfig(train::VanillaConfig{}));
      const auto t = Clock::now();
      train::train_with_strategy(model, *strategy, small_source, old_logits, nullptr, torch::Tensor(), config);
      (gf ? gf_s : vanilla_s) += since(t);
    }
    state.counters["vanilla_s"] = vanilla_s;
    state.counters["gated_fusion_s"] = gf_s;
    return vanilla_s + gf_s;
  });

  // 3. A head on cached features: the real cache when `flipless train --frozen` made one.
  once("head/linear_10_epochs_60614_rows", [&](benchmark::State&) {
    const auto features = train::cached_features(extractor, sample, std::filesystem::temp_directory_path() / "flipless-bench-cache");
    const std::int64_t n = 60614;
    const auto x = features.repeat({n / features.size(0) + 1, 1}).slice(0, 0, n);
    const auto y = torch::randint(0, 2, {n}, torch::kInt64);
    nn::FeatureClassifier head(384, 2, nn::HeadConfig{"linear", 256, 0.1});
    train::TrainConfig config;
    config.epochs = 10;
    config.batch_size = 64;
    config.learning_rate = 1e-3;
    const auto t = Clock::now();
    train::train(head, train::FeatureSource(x, y), nullptr, config);
    return since(t);
  });

  // 4. Tokenizer throughput, one thread, every SST-2 training sentence.
  std::size_t token_total = 0;
  once("wordpiece/sst2_train", [&](benchmark::State& state) {
    const auto tok = text::WordPieceTokenizer::from_checkpoint_dir(dir);
    token_total = 0;
    const auto t = Clock::now();
    for (const auto& ex : train_full.examples) token_total += tok.token_ids(ex.text_a).size();
    return rate(state, static_cast<double>(train_full.size()), since(t));
  });

  bench::KeepingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  fmt::print("\n");
  const auto ours = reporter.seconds("features/extract"), bare = reporter.seconds("features/bare_forward");
  if (ours && bare) {
    fmt::print("feature extraction: ratio bare / ours {:.2f} (1.0 = no overhead); mean length {:.1f} tokens\n", *bare / *ours,
               static_cast<double>(token_count) / n_sample);
  }
  const auto fp32 = reporter.counter("finetune/layers:6/fp32", "ex_per_s"), bf16 = reporter.counter("finetune/layers:6/bf16", "ex_per_s");
  if (fp32 && bf16) fmt::print("fine-tuning: ratio bf16 / fp32 {:.2f} (CPU autocast)\n", *bf16 / *fp32);
  const auto vanilla_s = reporter.counter("gated_fusion_vs_vanilla/epoch_pairs", "vanilla_s"),
             gf_s = reporter.counter("gated_fusion_vs_vanilla/epoch_pairs", "gated_fusion_s");
  if (vanilla_s && gf_s) {
    fmt::print("one fine-tuning epoch, {}, 2 runs each: vanilla {:.2f} s, Gated Fusion (fused) {:.2f} s\n", train::to_string(gf_precision),
               *vanilla_s, *gf_s);
    fmt::print("  ratio Gated Fusion / vanilla training time: {:.3f} (target <= 1.05)\n", *gf_s / *vanilla_s);
  }
  const auto ours_tok = reporter.seconds("wordpiece/sst2_train");
  if (ours_tok && !python.empty()) {
    const auto sentences = std::filesystem::temp_directory_path() / fmt::format("flipless-bench-sentences-{}.txt", getpid());
    {
      std::ofstream out(sentences);
      for (const auto& ex : train_full.examples) out << ex.text_a << '\n';
    }
    const std::string cmd = fmt::format("'{}' '{}' '{}' '{}'", python, BENCH_DIR "/tokenizers_speed.py", dir.string(), sentences.string());
    std::fflush(stdout);
    FILE* pipe = popen(cmd.c_str(), "r");
    char buffer[4096] = {0};
    const std::string line = pipe && fgets(buffer, sizeof buffer, pipe) ? buffer : "";
    if (pipe) pclose(pipe);
    std::filesystem::remove(sentences);
    auto number = [&](const std::string& key) {
      const auto at = line.find("\"" + key + "\": ");
      return at == std::string::npos ? -1.0 : std::stod(line.substr(at + key.size() + 4));
    };
    const double batch = number("encode_batch_seconds"), serial = number("encode_one_by_one_seconds");
    const auto n_train = static_cast<double>(train_full.size());
    fmt::print("HF tokenizers encode_batch (Rust, all cores) {:.2f} s ({:.0f} ex/s); one at a time from Python {:.2f} s ({:.0f} ex/s)\n", batch,
               n_train / batch, serial, n_train / serial);
    fmt::print("  ratio HF encode_batch / flipless: {:.2f}; HF one at a time / flipless: {:.2f}; flipless made {} tokens\n", batch / *ours_tok,
               serial / *ours_tok, token_total);
  }
  benchmark::Shutdown();
  return 0;
}
