#include "flipless/train/features.h"

#include <torch/torch.h>

#include <fmt/format.h>
#include <numeric>

#include "flipless/core/error.h"
#include "flipless/core/hash.h"
#include "flipless/io/safetensors.h"
#include "flipless/nn/tensor_io.h"
#include "flipless/train/device.h"
#include "flipless/train/inputs.h"

namespace flipless::train {

namespace {
constexpr const char* kMagic = "flipless-features";
constexpr const char* kVersion = "1";
}  // namespace

void FeatureSpec::validate() const {
  if (pooling != "mean" && pooling != "cls" && pooling != "pooler") {
    throw ConfigError(fmt::format("pooling '{}': expected mean, cls or pooler", pooling));
  }
  if (layers < 0) throw ConfigError(fmt::format("layers must be >= 0, got {}", layers));
  if (max_length < 3) throw ConfigError(fmt::format("max length must be at least 3, got {}", max_length));
}

FeatureExtractor::FeatureExtractor(FeatureSpec spec, torch::Device device)
    : spec_(std::move(spec)), device_(device), tokenizer_(text::WordPieceTokenizer::from_checkpoint_dir(spec_.model_dir)) {
  spec_.validate();
  check_precision(device_, spec_.precision);
  encoder_ = nn::load_encoder(spec_.model_dir, spec_.layers);
  if (spec_.pooling == "pooler" && !encoder_->has_pooler()) {
    throw ConfigError(fmt::format("{}: pooling 'pooler' asked for, but the checkpoint has no pooler", spec_.model_dir.string()));
  }
  encoder_->to(device_);
  encoder_->eval();
  // Linear weights kept in bf16: a one-sentence request no longer casts all of them per call.
  store_linear_weights_for_autocast(*encoder_, spec_.precision);
}

torch::Tensor FeatureExtractor::extract(const data::Dataset& dataset, std::int64_t batch_size, const Progress& progress) const {
  const TokenSource tokens(tokenizer_, dataset, spec_.max_length);
  const std::int64_t n = tokens.size();
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return tokens.cost(a) < tokens.cost(b); });
  torch::InferenceMode guard;
  // One autocast scope for the whole pass, so the weights are cast to bf16 once, not per batch.
  const AutocastGuard autocast(device_, spec_.precision);
  auto out = torch::empty({n, dim()});
  for (std::int64_t start = 0; start < n; start += batch_size) {
    const std::vector<std::int64_t> rows(order.begin() + start, order.begin() + std::min(n, start + batch_size));
    const nn::ModelInputs in = to_device(tokens.batch(rows), device_);
    const nn::EncoderOutput o = encoder_->forward(in.input_ids, in.token_type_ids, in.attention_mask);
    torch::Tensor pooled;
    if (spec_.pooling == "mean") {
      const auto hidden = o.last_hidden.to(torch::kFloat32);                                    // (b, s, hidden)
      const auto mask = in.attention_mask.unsqueeze(-1).to(torch::kFloat32);                    // (b, s, 1)
      pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0);                             // (b, hidden)
    } else if (spec_.pooling == "cls") {
      pooled = o.last_hidden.select(1, 0);
    } else {
      pooled = o.pooled;
    }
    out.index_copy_(0, torch::tensor(rows, torch::kInt64), pooled.to(torch::kCPU, torch::kFloat32));
    if (progress) progress(std::min(n, start + batch_size), n);
  }
  return out;
}

std::string FeatureExtractor::cache_key(const data::Dataset& dataset) const {
  std::error_code ec;
  const auto weights = spec_.model_dir / "model.safetensors";
  const auto size = std::filesystem::file_size(weights, ec);
  const auto time = std::filesystem::last_write_time(weights, ec).time_since_epoch().count();
  std::uint64_t h = core::hash64(std::filesystem::weakly_canonical(spec_.model_dir, ec).string());
  h = core::hash_combine(h, size);
  h = core::hash_combine(h, static_cast<std::uint64_t>(time));
  h = core::hash_combine(h, core::hash64(fmt::format("{}|{}|{}|{}|{}", encoder_->config().num_hidden_layers, spec_.pooling,
                                                     spec_.max_length, kMagic, kVersion)));
  const bool bf16 = spec_.precision != Precision::kFloat32;
  if (bf16) h = core::hash_combine(h, core::hash64(to_string(spec_.precision)));
  for (const auto& ex : dataset.examples) {
    h = core::hash_combine(h, core::hash64(ex.id));
    h = core::hash_combine(h, core::hash64(ex.text_a));
    if (ex.text_b) h = core::hash_combine(h, core::hash64(*ex.text_b, 1));
  }
  return fmt::format("{}-L{}-{}{}-{:016x}", spec_.model_dir.filename().string(), encoder_->config().num_hidden_layers, spec_.pooling,
                     bf16 ? fmt::format("-{}", to_string(spec_.precision)) : std::string(), h);
}

torch::Tensor cached_features(const FeatureExtractor& extractor, const data::Dataset& dataset, const std::filesystem::path& cache_dir,
                              const Progress& progress, bool* hit) {
  const std::string key = extractor.cache_key(dataset);
  const auto path = cache_dir / (key + ".safetensors");
  if (std::filesystem::exists(path)) {
    try {
      const auto file = io::SafetensorsFile::open(path);
      const auto& meta = file.metadata();
      const auto magic = meta.find("format");
      const auto rows = meta.find("rows");
      if (magic != meta.end() && magic->second == kMagic && rows != meta.end() && rows->second == std::to_string(dataset.size())) {
        auto features = nn::read_tensor(file, "features");
        if (features.dim() == 2 && features.size(0) == static_cast<std::int64_t>(dataset.size())) {
          if (hit) *hit = true;
          return features;
        }
      }
    } catch (const ModelError&) {
      // A damaged cache entry is recomputed and replaced.
    }
  }
  if (hit) *hit = false;
  auto features = extractor.extract(dataset, 64, progress);
  std::filesystem::create_directories(cache_dir);
  nn::write_tensors(path, {{"features", features}},
                    {{"format", kMagic}, {"version", kVersion}, {"rows", std::to_string(dataset.size())},
                     {"dataset", dataset.name}, {"model", extractor.spec().model_dir.string()}, {"pooling", extractor.spec().pooling},
                     {"precision", to_string(extractor.spec().precision)}});
  return features;
}

}  // namespace flipless::train
