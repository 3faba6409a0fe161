// flipless's side of bench/vs_pytorch.py: a long-lived process that runs one measurement round
// per command line on stdin and answers with one line on stdout, so that the Python driver can
// interleave flipless and PyTorch + transformers round by round (A B A B) in one run.
// Commands:
//   sentences PATH                 writes the sentences, one JSON string per line
//   embed PATH                     writes float32 mean-pooled embeddings (safetensors, "embeddings")
//   latency THREADS PRECISION N    FeatureExtractor::extract on one sentence at a time, the first N;
//                                  answers the N times in ms
//   throughput THREADS PRECISION   FeatureExtractor::extract on all sentences, batch 64; answers seconds
//   finetune THREADS PRECISION N   one epoch of train::train on the first N sentences, batch 32,
//                                  MiniLM + linear head; answers seconds
// Usage: vs_pytorch_worker [--model DIR] [--data sst2:dev]
// A worker driven by another program's measurement loop, not a benchmark of its own: Google
// Benchmark's runs do not apply; its flags are checked as the benches' are (bench_util.h).
#include <fmt/format.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench_util.h"
#include "flipless/data/registry.h"
#include "flipless/models/registry.h"
#include "flipless/nn/classifier.h"
#include "flipless/nn/tensor_io.h"
#include "flipless/train/cpu_math.h"
#include "flipless/train/device.h"
#include "flipless/train/features.h"
#include "flipless/train/inputs.h"
#include "flipless/train/trainer.h"

namespace {
using namespace flipless;
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

int main(int argc, char** argv) {
  train::select_blas_kernel_at_startup(argv);  // as the flipless binary does
  const bench::Flags flags(argc, argv, {"--model", "--data"}, "vs_pytorch_worker [--model DIR] [--data sst2:dev]");
  const std::string model = flags.text("--model", "minilm-l6"), spec = flags.text("--data", "sst2:dev");
  const auto dir = models::resolve_model(model);
  const data::Dataset ds = data::load_dataset(spec);
  std::map<train::Precision, std::unique_ptr<train::FeatureExtractor>> extractors;
  auto extractor = [&](train::Precision p) -> const train::FeatureExtractor& {
    auto& e = extractors[p];
    if (!e) e = std::make_unique<train::FeatureExtractor>(train::FeatureSpec{dir, 0, "mean", 128, p});
    return *e;
  };
  const auto math = train::blas_info();
  std::printf("ready %s %s\n", math.core.empty() ? "no-openblas" : math.core.c_str(), TORCH_VERSION);
  std::fflush(stdout);
  for (std::string line; std::getline(std::cin, line);) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    if (cmd == "quit") break;
    try {
      if (cmd == "sentences" || cmd == "embed") {
        std::string path;
        in >> path;
        if (cmd == "sentences") {
          std::ofstream out(path);
          for (const auto& ex : ds.examples) out << nlohmann::json(ex.text_a).dump() << '\n';
        } else {
          train::set_threads(0);
          nn::write_tensors(path, {{"embeddings", extractor(train::Precision::kFloat32).extract(ds)}}, {});
        }
        std::printf("ok\n");
      } else {
        int threads = 1;
        std::string precision;
        std::size_t n = ds.size();
        in >> threads >> precision >> n;
        train::set_threads(threads);
        const auto p = train::parse_precision(precision);
        if (cmd == "latency") {
          const auto& e = extractor(p);
          std::string out;
          for (std::size_t i = 0; i < std::min(n, ds.size()); ++i) {
            data::Dataset one;
            one.name = "request";
            one.label_names = ds.label_names;
            one.examples = {ds.examples[i]};
            const auto t = Clock::now();
            e.extract(one, 1);
            out += fmt::format("{:.4f} ", since(t) * 1e3);
          }
          std::printf("%s\n", out.c_str());
        } else if (cmd == "throughput") {
          const auto& e = extractor(p);
          const auto t = Clock::now();
          e.extract(ds, 64);
          std::printf("%.6f\n", since(t));
        } else if (cmd == "finetune") {
          data::Dataset small = ds;
          small.examples.resize(std::min(n, ds.size()));
          nn::EncoderClassifier model_(nn::load_encoder(dir), 2, nn::HeadConfig{});
          const train::TokenSource source(extractor(train::Precision::kFloat32).tokenizer(), small, 128);
          train::TrainConfig config;
          config.epochs = 1;
          config.batch_size = 32;
          config.precision = p;
          const auto result = train::train(model_, source, nullptr, config);
          std::printf("%.6f\n", result.epochs[0].seconds);
        } else {
          std::printf("error unknown command '%s'\n", cmd.c_str());
        }
      }
    } catch (const std::exception& e) {  // a bad command line is answered, not fatal
      std::printf("error %s\n", e.what());
    }
    std::fflush(stdout);
  }
  return 0;
}
