// Device placement and mixed precision. On this CPU-only machine the bf16 autocast path runs
// for real; the GPU tests run where a GPU is visible (scripts/gpu_check.sh) and skip elsewhere.
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <dlfcn.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>

#include "../test_util.h"
#include "words.h"
#include "flipless/core/error.h"
#include "flipless/nn/classifier.h"
#include "flipless/train/device.h"
#include "flipless/train/features.h"
#include "flipless/train/inputs.h"
#include "flipless/train/saved_model.h"
#include "flipless/train/strategy.h"
#include "flipless/train/trainer.h"

namespace flipless::train {
namespace {

using flipless::testing::error_of;
using flipless::testing::TempDir;
using flipless::testing::words_dataset;

const std::filesystem::path kTinyBert = std::filesystem::path(FLIPLESS_TEST_DIR) / "golden/nn/tiny-bert";

TEST(Device, NamesParseAndMissingGpusAreOneClearLine) {
  EXPECT_TRUE(parse_device("cpu").is_cpu());
  EXPECT_EQ(parse_device("auto").is_cuda(), torch::cuda::is_available());
  EXPECT_EQ(error_of<ConfigError>([] { parse_device("gpu"); }), "device 'gpu': expected cpu, cuda, cuda:N or auto");
  // A CUDA build stays one without a GPU or driver (PyTorch's CUDA wheel on this machine).
  EXPECT_EQ(libtorch_has_cuda(), FLIPLESS_TORCH_CUDA_BUILD == 1);
  if (!torch::cuda::is_available()) {
    const auto message = error_of<ConfigError>([] { parse_device("cuda"); });
    EXPECT_NE(message.find("device 'cuda': no GPU available"), std::string::npos) << message;
    EXPECT_NE(message.find(FLIPLESS_TORCH_CUDA_BUILD == 1 ? "this libtorch has CUDA, but no GPU is visible" : "this libtorch was built without CUDA"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("use --device cpu"), std::string::npos) << message;
    EXPECT_THROW(parse_device("cuda:1"), ConfigError);
  } else {
    const auto count = static_cast<int>(torch::cuda::device_count());
    EXPECT_EQ(parse_device("cuda").index(), 0);
    EXPECT_EQ(parse_device("cuda", count + 1).index(), 1 % count);  // data parallel: rank modulo the GPUs
    EXPECT_NE(error_of<ConfigError>([&] { parse_device("cuda:" + std::to_string(count)); }).find("GPU(s) visible"), std::string::npos);
    EXPECT_THROW(parse_device("cuda:x"), ConfigError);
  }
  EXPECT_EQ(parse_precision("bf16"), Precision::kBFloat16);
  EXPECT_EQ(parse_precision("float16"), Precision::kFloat16);
  EXPECT_EQ(to_string(parse_precision("fp32")), "fp32");
  EXPECT_EQ(error_of<ConfigError>([] { parse_precision("fp8"); }), "precision 'fp8': expected fp32, bf16 or fp16");
  EXPECT_EQ(error_of<ConfigError>([] { check_precision(torch::kCPU, Precision::kFloat16); }),
            "precision fp16 needs a GPU (device is cpu); on the CPU use bf16 or fp32");
}

// PyTorch's wheels (2.5+) export their own static copy of libstdc++'s std::filesystem, whose
// remove_all jumps to address 0 with the system's libstdc++ (pytorch/pytorch#133437; found on
// the GPU machine). flipless::nn puts libstdc++ on the link line right before libtorch, so a
// program's std::filesystem calls resolve to the system library, or, where the compiler links
// libstdc++ statically (the GPU machine's), to the program's own copy; never to libtorch.
namespace {
[[gnu::noinline]] int a_function_of_this_program() { return 1; }
}  // namespace

TEST(Build, StdFilesystemResolvesToTheSystemLibstdcxxNotLibtorch) {
  Dl_info self{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(&a_function_of_this_program), &self), 0);
  std::uintmax_t (*remove_all)(const std::filesystem::path&) = &std::filesystem::remove_all;
  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(remove_all), &info), 0);
  ASSERT_NE(info.dli_fname, nullptr);
  const std::string library = info.dli_fname;
  const bool from_libstdcxx = library.find("libstdc++") != std::string::npos;
  const bool from_this_program = info.dli_fbase == self.dli_fbase;  // libstdc++ linked statically
  ASSERT_TRUE(from_libstdcxx || from_this_program) << "std::filesystem::remove_all comes from " << library;
  TempDir dir;  // removed with remove_all: only once the check above has passed
  std::filesystem::create_directories(dir.path() / "a" / "b");
  std::ofstream(dir.path() / "a" / "b" / "f") << "x";
  EXPECT_EQ(std::filesystem::remove_all(dir.path() / "a"), 3U);
}

TEST(Autocast, Bf16OnCpuCastsMatrixProductsAndRestoresTheStateOnExit) {
  const auto a = torch::randn({4, 8}), b = torch::randn({8, 3});
  EXPECT_EQ(torch::matmul(a, b).scalar_type(), torch::kFloat32);
  {
    const AutocastGuard outer(torch::kCPU, Precision::kBFloat16);
    EXPECT_EQ(torch::matmul(a, b).scalar_type(), torch::kBFloat16);
    {
      const AutocastGuard fp32(torch::kCPU, Precision::kFloat32);  // fp32 leaves the outer state alone
      EXPECT_EQ(torch::matmul(a, b).scalar_type(), torch::kBFloat16);
    }
    auto lin = torch::nn::Linear(8, 3);
    EXPECT_EQ(lin(a).scalar_type(), torch::kBFloat16);
    EXPECT_EQ(lin->weight.scalar_type(), torch::kFloat32);  // parameters stay float32
  }
  EXPECT_EQ(torch::matmul(a, b).scalar_type(), torch::kFloat32);
  EXPECT_THROW(AutocastGuard(torch::kCPU, Precision::kFloat16), ConfigError);
}

TEST(LossScaler, ScalesUnscalesSkipsNonFiniteStepsAndGrows) {
  auto w = torch::ones({3}, torch::requires_grad());
  LossScaler scaler(true, 1024.0, 2);
  scaler.scale((w * 2).sum()).backward();
  EXPECT_TRUE(torch::allclose(w.grad(), torch::full({3}, 2048.0)));
  EXPECT_TRUE(scaler.unscale({w}));
  EXPECT_TRUE(torch::allclose(w.grad(), torch::full({3}, 2.0)));
  scaler.update(true);
  scaler.update(true);
  EXPECT_EQ(scaler.current(), 2048.0);  // two good steps in a row: doubled
  w.mutable_grad().fill_(std::numeric_limits<float>::infinity());
  EXPECT_FALSE(scaler.unscale({w}));
  scaler.update(false);
  EXPECT_EQ(scaler.current(), 1024.0);
  EXPECT_EQ(scaler.skipped(), 1);

  LossScaler off(false);
  const auto loss = torch::tensor(3.0);
  EXPECT_TRUE(off.scale(loss).equal(loss));
  w.mutable_grad().fill_(std::numeric_limits<float>::quiet_NaN());
  EXPECT_TRUE(off.unscale({w}));  // disabled: every step is taken, gradients untouched
  EXPECT_EQ(off.current(), 1.0);
}

// Fine-tunes the tiny BERT; returns the trained model and the result.
std::pair<std::shared_ptr<nn::EncoderClassifier>, TrainResult> fine_tune(const torch::Device& device, Precision precision,
                                                                         const InputSource& train_source, const InputSource& test_source) {
  torch::manual_seed(0);
  auto model = std::make_shared<nn::EncoderClassifier>(nn::load_encoder(kTinyBert), 2, nn::HeadConfig{"linear", 16, 0.0});
  TrainConfig config;
  config.epochs = 8;
  config.batch_size = 16;
  config.learning_rate = 3e-3;
  config.warmup_ratio = 0.0;
  config.device = device;
  config.precision = precision;
  auto result = train(*model, train_source, &test_source, config);
  return {model, result};
}

TEST(MixedPrecision, Bf16AutocastFineTunesTheTinyBertOnCpu) {
  const auto tokenizer = text::WordPieceTokenizer::from_checkpoint_dir(kTinyBert);
  const auto train_set = words_dataset(64, 5), test_set = words_dataset(32, 6);
  const TokenSource train_source(tokenizer, train_set, 32), test_source(tokenizer, test_set, 32);
  const auto [model, result] = fine_tune(torch::kCPU, Precision::kBFloat16, train_source, test_source);
  EXPECT_LT(result.epochs.back().train_loss, result.epochs.front().train_loss);
  EXPECT_GT(*result.epochs.back().validation_accuracy, 0.8);
  for (const auto& p : model->parameters()) ASSERT_EQ(p.scalar_type(), torch::kFloat32);
  // Predictions come back as float32, and bf16 really ran: they differ from the same weights'
  // float32 outputs by bf16 rounding, not more.
  const auto bf16 = predict(*model, test_source, 8, {}, Precision::kBFloat16);
  const auto fp32 = predict(*model, test_source, 8);
  ASSERT_EQ(bf16.logits.scalar_type(), torch::kFloat32);
  ASSERT_EQ(bf16.embeddings.scalar_type(), torch::kFloat32);
  const double diff = (bf16.logits - fp32.logits).abs().max().item<double>();
  EXPECT_GT(diff, 0.0);
  EXPECT_LT(diff, 0.25);
  EXPECT_EQ(bf16.logits.argmax(1).ne(fp32.logits.argmax(1)).sum().item<std::int64_t>(), 0);
}

// Frozen features in bf16: their own cache entry (float32 keys stay as they were), close to
// float32's but not equal (the bf16 products really ran), cached and read back.
TEST(MixedPrecision, Bf16FeaturesHaveTheirOwnCacheKeyAndStayCloseToFloat32) {
  TempDir dir;
  const FeatureExtractor fp32(FeatureSpec{kTinyBert, 1, "mean", 32});
  const FeatureExtractor bf16(FeatureSpec{kTinyBert, 1, "mean", 32, Precision::kBFloat16});
  const auto ds = words_dataset(20, 3);
  EXPECT_NE(bf16.cache_key(ds), fp32.cache_key(ds));
  EXPECT_NE(bf16.cache_key(ds).find("-mean-bf16-"), std::string::npos) << bf16.cache_key(ds);
  EXPECT_EQ(fp32.cache_key(ds).find("fp32"), std::string::npos) << fp32.cache_key(ds);
  bool hit = true;
  const auto low = cached_features(bf16, ds, dir.path(), {}, &hit);
  EXPECT_FALSE(hit);
  EXPECT_EQ(low.scalar_type(), torch::kFloat32);
  const auto full = cached_features(fp32, ds, dir.path(), {}, &hit);
  EXPECT_FALSE(hit);
  const double diff = (low - full).abs().max().item<double>(), scale = full.abs().max().item<double>();
  EXPECT_GT(diff, 0.0);
  EXPECT_LT(diff, 0.05 * scale) << diff << " against values up to " << scale;
  EXPECT_TRUE(torch::equal(cached_features(bf16, ds, dir.path(), {}, &hit), low));
  EXPECT_TRUE(hit);
}

TEST(MixedPrecision, Fp16IsRefusedOnTheCpuBeforeAnyWork) {
  const auto data = FeatureSource(torch::randn({8, 4}), torch::zeros({8}, torch::kInt64));
  nn::FeatureClassifier model(4, 2, nn::HeadConfig{});
  TrainConfig config;
  config.precision = Precision::kFloat16;
  EXPECT_EQ(error_of<ConfigError>([&] { train(model, data, nullptr, config); }),
            "precision fp16 needs a GPU (device is cpu); on the CPU use bf16 or fp32");
  EXPECT_THROW(load_classifier(kTinyBert, torch::kCPU, Precision::kFloat16), ConfigError);
}

// On a GPU: the same fine-tuning on cuda in fp32, bf16 and fp16 learns like the CPU run; the
// model and Gated Fusion's gate live on the GPU; a saved model loads back onto the GPU and
// predicts what the trained module predicts.
TEST(Gpu, FineTunesInEveryPrecisionAndRoundTrips) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU visible (runs in scripts/gpu_check.sh)";
  const auto tokenizer = text::WordPieceTokenizer::from_checkpoint_dir(kTinyBert);
  const auto train_set = words_dataset(64, 5), test_set = words_dataset(32, 6);
  const TokenSource train_source(tokenizer, train_set, 32), test_source(tokenizer, test_set, 32);
  const torch::Device gpu = parse_device("cuda");
  for (const auto precision : {Precision::kFloat32, Precision::kBFloat16, Precision::kFloat16}) {
    SCOPED_TRACE(to_string(precision));
    const auto [model, result] = fine_tune(gpu, precision, train_source, test_source);
    EXPECT_TRUE(device_of(*model).is_cuda());
    EXPECT_LT(result.epochs.back().train_loss, result.epochs.front().train_loss);
    EXPECT_GT(*result.epochs.back().validation_accuracy, 0.8);
    const auto p = predict(*model, test_source, 8, {}, precision);
    EXPECT_TRUE(p.logits.is_cpu());
    EXPECT_EQ(p.logits.scalar_type(), torch::kFloat32);
  }
  const auto [cpu_model, cpu_result] = fine_tune(torch::kCPU, Precision::kFloat32, train_source, test_source);
  const auto [gpu_model, gpu_result] = fine_tune(gpu, Precision::kFloat32, train_source, test_source);
  EXPECT_NEAR(gpu_result.epochs.back().train_loss, cpu_result.epochs.back().train_loss, 0.05);

  // Gated Fusion's gate follows the model to the GPU.
  GatedFusionStrategyConfig gf;
  gf.embedding_dim = gpu_model->encoder()->config().hidden_size;
  gf.lr2 = 1e-3;
  auto strategy = make_strategy(gf);
  TrainConfig config;
  config.epochs = 2;
  config.batch_size = 16;
  config.learning_rate = 1e-3;
  config.device = gpu;
  const auto old_train = torch::randn({train_source.size(), 2}), old_test = torch::randn({test_source.size(), 2});
  train_with_strategy(*gpu_model, *strategy, train_source, old_train, &test_source, old_test, config);
  for (const auto& p : strategy->parameters()) EXPECT_TRUE(p.is_cuda());
  const auto fused = predict_with_strategy(*gpu_model, *strategy, test_source, old_test, 8);
  EXPECT_TRUE(fused.gates.is_cpu());
  EXPECT_TRUE((fused.gates >= 0).all().item<bool>() && (fused.gates <= 1).all().item<bool>());

  TempDir dir;
  std::filesystem::create_directories(dir.path() / "encoder");
  for (const char* f : {"config.json", "vocab.txt"}) std::filesystem::copy_file(kTinyBert / f, dir.path() / "encoder" / f);
  save_torch_classifier(dir.path(), *gpu_model,
                        {{"kind", "fine-tuned"}, {"label_names", {"0", "1"}}, {"base_model", kTinyBert.string()}, {"layers", 2},
                         {"pooler", true}, {"max_length", 32}, {"head", {{"kind", "linear"}, {"hidden", 16}, {"dropout", 0.0}}}});
  const auto loaded = load_classifier(dir.path(), gpu);
  const auto out = loaded->predict(test_set.examples);
  const auto got = torch::from_blob(const_cast<float*>(out.logits.data()), {static_cast<std::int64_t>(out.rows), 2}).clone();
  EXPECT_TRUE(torch::allclose(got, predict(*gpu_model, test_source, 8).logits, 1e-4, 1e-5));
}

}  // namespace
}  // namespace flipless::train
