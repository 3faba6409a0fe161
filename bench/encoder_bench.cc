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
// Usage: encoder_bench [--model DIR] [--rows N] [--threads T] [--tokenizers-python PYTHON]
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fmt/format.h>
#include <fstream>
#include <numeric>
#include <thread>

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
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

int main(int argc, char** argv) {
  flipless::train::select_blas_kernel_at_startup(argv);  // as the flipless binary does
  using namespace flipless;
  std::string model_name = "minilm-l6", python;
  std::size_t rows = 2000;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i];
    if (arg == "--model") model_name = argv[i + 1];
    else if (arg == "--rows") rows = std::stoul(argv[i + 1]);
    else if (arg == "--threads") threads = std::stoi(argv[i + 1]);
    else if (arg == "--tokenizers-python") python = argv[i + 1];
  }
  train::set_threads(threads);  // torch and OpenBLAS pools
  const auto dir = models::resolve_model(model_name);
  const data::Dataset train_full = data::load_dataset("sst2:train");
  data::Dataset sample = train_full;
  sample.examples.resize(std::min(rows, sample.size()));
  fmt::print("model {}, {} threads, {} SST-2 train sentences\n\n", dir.string(), threads, sample.size());

  // 1. Feature extraction against a bare forward loop on the same batches.
  const train::FeatureExtractor extractor(train::FeatureSpec{dir, 0, "mean", 128});
  extractor.extract(sample);  // warm-up
  auto t = Clock::now();
  extractor.extract(sample);
  const double ours = since(t);
  const train::TokenSource tokens(extractor.tokenizer(), sample, 128);
  std::vector<std::int64_t> order(static_cast<std::size_t>(tokens.size()));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return tokens.cost(a) < tokens.cost(b); });
  std::vector<nn::ModelInputs> batches;
  for (std::size_t s = 0; s < order.size(); s += 64) {
    batches.push_back(tokens.batch(std::vector<std::int64_t>(order.begin() + static_cast<std::ptrdiff_t>(s),
                                                             order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), s + 64)))));
  }
  auto encoder = nn::load_encoder(dir);
  encoder->eval();
  double bare = 0;
  {
    torch::InferenceMode guard;
    t = Clock::now();
    for (const auto& b : batches) encoder->forward(b.input_ids, b.token_type_ids, b.attention_mask);
    bare = since(t);
  }
  std::int64_t token_count = 0;
  for (std::int64_t r = 0; r < tokens.size(); ++r) token_count += tokens.cost(r);
  fmt::print("{:<62} {:>9} {:>10}\n", "measurement", "seconds", "rate");
  fmt::print("{:<62} {:>9.2f} {:>6.0f} ex/s\n", "feature extraction, FeatureExtractor::extract (mean pooling)", ours, sample.size() / ours);
  fmt::print("{:<62} {:>9.2f} {:>6.0f} ex/s\n", "bare libtorch forward loop, same length-sorted batches", bare, sample.size() / bare);
  fmt::print("  ratio bare / ours: {:.2f} (1.0 = no overhead); mean length {:.1f} tokens\n", bare / ours,
             static_cast<double>(token_count) / static_cast<double>(sample.size()));

  // 2. Fine-tuning throughput; for all 6 layers also under bf16 autocast, side by side.
  double fp32_rate = 0;
  for (const auto& [layers, precision] : std::vector<std::pair<std::int64_t, train::Precision>>{
           {6, train::Precision::kFloat32}, {6, train::Precision::kBFloat16}, {2, train::Precision::kFloat32}}) {
    data::Dataset small = sample;
    small.examples.resize(std::min<std::size_t>(256, small.size()));
    nn::EncoderClassifier model(nn::load_encoder(dir, layers), 2, nn::HeadConfig{});
    const train::TokenSource source(extractor.tokenizer(), small, 128);
    train::TrainConfig config;
    config.epochs = 1;
    config.batch_size = 32;
    config.precision = precision;
    const auto result = train::train(model, source, nullptr, config);
    const double rate = result.epochs[0].examples_per_second;
    fmt::print("{:<62} {:>9.2f} {:>6.1f} ex/s\n",
               fmt::format("fine-tuning MiniLM, {} layers, batch 32, 256 examples, {}", layers, train::to_string(precision)),
               result.epochs[0].seconds, rate);
    if (precision == train::Precision::kFloat32 && layers == 6) fp32_rate = rate;
    if (precision == train::Precision::kBFloat16) fmt::print("  ratio bf16 / fp32: {:.2f} (CPU autocast; GPUs are where bf16 pays)\n", rate / fp32_rate);
  }

  // 2b. Gated Fusion's cost against vanilla's, one fine-tuning epoch each on the same 256
  // examples (GF's is its fused last epoch: with the shared warm-up that is all a GF setting
  // trains), alternated V G G V so that drift hits both alike.
  {
    data::Dataset small = sample;
    small.examples.resize(std::min<std::size_t>(256, small.size()));
    const train::TokenSource source(extractor.tokenizer(), small, 128);
    auto gen = torch::make_generator<at::CPUGeneratorImpl>(7);
    const auto old_logits = torch::randn({source.size(), 2}, gen);
    const auto cpu = train::cpu_features();  // precision: auto's rule for fine-tuning on a CPU
    const auto precision = cpu.avx512_bf16 || cpu.amx_bf16 ? train::Precision::kBFloat16 : train::Precision::kFloat32;
    double vanilla_s = 0, gf_s = 0;
    for (const bool gf : {false, true, true, false}) {
      nn::EncoderClassifier model(nn::load_encoder(dir), 2, nn::HeadConfig{});
      train::TrainConfig config;
      config.epochs = 1;
      config.batch_size = 32;
      config.precision = precision;
      train::GatedFusionStrategyConfig g;
      g.embedding_dim = model.encoder()->config().hidden_size;
      g.num_labels = 2;
      g.lr2 = 3e-5;
      std::unique_ptr<train::CompatibilityStrategy> strategy =
          train::make_strategy(gf ? train::StrategyConfig(g) : train::StrategyConfig(train::VanillaConfig{}));
      t = Clock::now();
      train::train_with_strategy(model, *strategy, source, old_logits, nullptr, torch::Tensor(), config);
      (gf ? gf_s : vanilla_s) += since(t);
    }
    fmt::print("{:<62} {:>9.2f} {:>6.1f} ex/s\n", fmt::format("one fine-tuning epoch, vanilla, {}, 2 runs", train::to_string(precision)), vanilla_s,
               2 * 256 / vanilla_s);
    fmt::print("{:<62} {:>9.2f} {:>6.1f} ex/s\n", fmt::format("one fine-tuning epoch, Gated Fusion (fused), {}, 2 runs", train::to_string(precision)), gf_s,
               2 * 256 / gf_s);
    fmt::print("  ratio Gated Fusion / vanilla training time: {:.3f} (target <= 1.05)\n", gf_s / vanilla_s);
  }

  // 3. A head on cached features: the real cache when `flipless train --frozen` made one.
  {
    const auto features = train::cached_features(extractor, sample, std::filesystem::temp_directory_path() / "flipless-bench-cache");
    const std::int64_t n = 60614;
    const auto x = features.repeat({n / features.size(0) + 1, 1}).slice(0, 0, n);
    const auto y = torch::randint(0, 2, {n}, torch::kInt64);
    nn::FeatureClassifier head(384, 2, nn::HeadConfig{"linear", 256, 0.1});
    train::TrainConfig config;
    config.epochs = 10;
    config.batch_size = 64;
    config.learning_rate = 1e-3;
    t = Clock::now();
    train::train(head, train::FeatureSource(x, y), nullptr, config);
    fmt::print("{:<62} {:>9.2f}\n", "linear head, 10 epochs over 60,614 cached 384-d features", since(t));
  }

  // 4. Tokenizer throughput.
  {
    const auto tok = text::WordPieceTokenizer::from_checkpoint_dir(dir);
    std::size_t count = 0;
    t = Clock::now();
    for (const auto& ex : train_full.examples) count += tok.token_ids(ex.text_a).size();
    const double ours_tok = since(t);
    fmt::print("{:<62} {:>9.2f} {:>6.0f} ex/s\n", fmt::format("flipless WordPiece, 1 thread, all {} SST-2 train sentences", train_full.size()),
               ours_tok, train_full.size() / ours_tok);
    if (!python.empty()) {
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
      fmt::print("{:<62} {:>9.2f} {:>6.0f} ex/s\n", "HF tokenizers encode_batch (Rust, all cores)", batch, train_full.size() / batch);
      fmt::print("{:<62} {:>9.2f} {:>6.0f} ex/s\n", "HF tokenizers encode, one at a time from Python", serial, train_full.size() / serial);
      fmt::print("  ratio HF encode_batch / flipless: {:.2f}; HF one at a time / flipless: {:.2f}; flipless made {} tokens\n",
                 batch / ours_tok, serial / ours_tok, count);
    }
  }
  return 0;
}
