#include "flipless/serve/predictor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "flipless/cache/old_emulator.h"
#include "flipless/core/error.h"
#include "flipless/core/hash.h"
#include "flipless/io/safetensors.h"
#include "flipless/methods/method.h"
#include "flipless/nn/bert.h"
#include "flipless/nn/gated_fusion.h"
#include "flipless/nn/tensor_io.h"
#include "flipless/train/gate_fit.h"
#include "flipless/train/saved_model.h"

namespace flipless::serve {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::vector<float> softmax(std::span<const float> logits) {
  std::vector<float> p(logits.begin(), logits.end());
  const float top = *std::max_element(p.begin(), p.end());
  float z = 0;
  for (auto& v : p) z += (v = std::exp(v - top));
  for (auto& v : p) v /= z;
  return p;
}

}  // namespace

std::string_view path_name(PredictionPath path) {
  switch (path) {
    case PredictionPath::kExact: return "exact";
    case PredictionPath::kNear: return "near";
    case PredictionPath::kMiss: return "miss";
    case PredictionPath::kLiveOld: return "live_old";
    case PredictionPath::kEmulated: return "emulated";
  }
  return "miss";
}

namespace {

// The space of a model folder whose card is `card` (see embedding_space_of).
std::string space_of(const json& card, const fs::path& model_dir) {
  if (card.value("kind", "") == "frozen-head") {
    return fmt::format("frozen:{}:L{}:{}", fs::path(card.at("base_model").get<std::string>()).filename().string(),
                       card.at("layers").get<std::int64_t>(), card.at("pooling").get<std::string>());
  }
  // A trained encoder has a space of its own: name it by its weights.
  const auto weights = model_dir / "weights.safetensors";
  const std::uint64_t h = core::hash64(card.dump());
  return fmt::format("model:{:016x}", fs::exists(weights) ? core::hash_file(weights, h) : h);
}

// The model card's max_length against the encoder's positions: tokens past the last position
// fail the forward pass, so a text long enough to reach them would fail its whole batch.
void check_max_length(const json& card, const fs::path& model_dir) {
  if (!card.contains("max_length")) return;
  fs::path config;
  if (card.value("kind", "") == "frozen-head" && card.contains("base_model"))
    config = fs::path(card.at("base_model").get<std::string>()) / "config.json";
  else
    config = model_dir / "encoder" / "config.json";
  if (!fs::exists(config)) return;  // not an encoder model (fastText has no positions)
  const auto encoder = nn::BertConfig::from_json_file(config);
  // RoBERTa's positions start after its padding index (as the encoder counts them).
  const std::int64_t positions =
      encoder.max_sequence_length();
  const auto& field = card.at("max_length");
  if (!field.is_number_integer() || field.get<std::int64_t>() < 2 || field.get<std::int64_t>() > positions) {
    throw ModelError(
        fmt::format("{}: field 'max_length': {} tokens, but the encoder ({}) has {} positions; set it to at most {}",
                    (model_dir / train::kModelCardName).string(), field.dump(), config.string(), positions, positions));
  }
}

}  // namespace

std::string embedding_space_of(const fs::path& model_dir) { return space_of(train::read_model_card(model_dir), model_dir); }

void check_encoder_limits(const fs::path& model_dir) {
  if (!fs::exists(model_dir / train::kModelCardName)) return;  // a Hugging Face checkpoint: its own limits
  check_max_length(train::read_model_card(model_dir), model_dir);
}

struct CompatiblePredictor::Impl {
  fs::path dir;
  std::unique_ptr<models::Classifier> model;
  std::vector<std::string> label_names;
  mutable nn::GatedFusion gate{nullptr};  // forward() is not const; eval mode, no grad: safe to share
  double temperature = 1;
  std::size_t dim = 0;
  std::shared_ptr<cache::OldLogitCache> cache;
  std::shared_ptr<const models::Classifier> live_old;
  PredictorOptions options;
  std::string space;
  std::string version;       // pinned at load: recording must not redirect look-ups to itself
  bool nearest_ok = false;   // the version's embeddings live in this model's space
  std::string fallback;      // resolved: emulator, neighbour or new
  bool old_confidence = false;  // the gate also reads the old and new probabilities
  cache::OldEmulator emulator;  // when fallback is "emulator"
};

CompatiblePredictor::CompatiblePredictor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CompatiblePredictor::~CompatiblePredictor() = default;

std::unique_ptr<CompatiblePredictor> CompatiblePredictor::load(const fs::path& model_dir, std::shared_ptr<cache::OldLogitCache> cache,
                                                               std::shared_ptr<const models::Classifier> live_old) {
  return load(model_dir, std::move(cache), std::move(live_old), PredictorOptions());
}

std::unique_ptr<CompatiblePredictor> CompatiblePredictor::load(const fs::path& model_dir, std::shared_ptr<cache::OldLogitCache> cache,
                                                               std::shared_ptr<const models::Classifier> live_old, PredictorOptions options) {
  auto m = std::make_unique<Impl>();
  m->dir = model_dir;
  const auto card = train::read_model_card(model_dir);
  m->label_names = card.at("label_names").get<std::vector<std::string>>();
  auto gate = train::load_gate(model_dir, static_cast<std::int64_t>(m->label_names.size()));
  m->gate = gate.gate;
  m->temperature = gate.temperature;
  m->old_confidence = gate.old_confidence;
  m->dim = static_cast<std::size_t>(gate.dim);
  check_max_length(card, model_dir);
  m->model = train::load_classifier(model_dir, train::parse_device(options.device), train::parse_precision(options.precision));
  if (live_old && live_old->num_labels() != m->label_names.size()) {
    throw ConfigError(fmt::format("the live old model has {} labels, the new model {}", live_old->num_labels(), m->label_names.size()));
  }
  m->space = space_of(card, model_dir);
  const auto emulator_path = model_dir / kEmulatorFileName;
  if (options.fallback == "auto") {
    m->fallback = fs::exists(emulator_path) ? "emulator" : "neighbour";
  } else if (options.fallback == "emulator" || options.fallback == "neighbour" || options.fallback == "new") {
    m->fallback = options.fallback;
  } else {
    throw ConfigError(fmt::format("fallback '{}': expected auto, emulator, neighbour or new", options.fallback));
  }
  if (m->fallback == "emulator") {
    if (!fs::exists(emulator_path)) {
      throw ConfigError(fmt::format("{}: missing; fit one with 'flipless cache fit-emulator CACHE {}'", emulator_path.string(), model_dir.string()));
    }
    m->emulator = cache::OldEmulator::load(emulator_path);
    if (m->emulator.dim() != m->dim || m->emulator.num_labels() != m->label_names.size()) {
      throw ModelError(fmt::format("{}: the emulator maps {}-d embeddings to {} logits; the model has {}-d embeddings and {} labels",
                                   emulator_path.string(), m->emulator.dim(), m->emulator.num_labels(), m->dim, m->label_names.size()));
    }
    if (m->emulator.embedding_space != m->space) {
      throw ModelError(fmt::format("{}: fitted on embeddings of '{}', this model's are '{}': refit it with 'flipless cache fit-emulator'",
                                   emulator_path.string(), m->emulator.embedding_space, m->space));
    }
    options.lookup.nearest = false;  // every input not cached exactly goes to the emulator
  } else if (m->fallback == "new") {
    options.lookup.nearest = false;
  }
  if (cache) {
    if (cache->num_labels() != m->label_names.size()) {
      throw ConfigError(fmt::format("{}: the cache holds {} logits per entry, the model has {} labels", cache->path().string(), cache->num_labels(),
                                    m->label_names.size()));
    }
    if (cache->dim() != m->dim) {
      throw ConfigError(fmt::format("{}: the cache holds {}-d embeddings, the model's are {}-d", cache->path().string(), cache->dim(), m->dim));
    }
    m->version = options.lookup.version.empty() ? cache->latest_version().value_or("") : options.lookup.version;
    if (!m->version.empty()) {
      const auto versions = cache->versions();
      const auto it = std::find_if(versions.begin(), versions.end(), [&](const auto& v) { return v.tag == m->version; });
      if (it == versions.end()) throw ConfigError(fmt::format("{}: the cache has no version '{}'", cache->path().string(), m->version));
      m->nearest_ok = it->embedding_model.empty() || it->embedding_model == m->space;
    }
    // Build (or load) the neighbour index now, not on the first request.
    if (!m->version.empty() && options.lookup.nearest && m->nearest_ok) cache->prepare(m->version);
    if (!options.record_version.empty() && options.record_version == m->version) {
      throw ConfigError(fmt::format("recording into '{}', the version look-ups read: name a new version", m->version));
    }
  } else if (!options.record_version.empty()) {
    throw ConfigError("recording served predictions needs a cache");
  }
  m->cache = std::move(cache);
  m->live_old = std::move(live_old);
  m->options = std::move(options);
  return std::unique_ptr<CompatiblePredictor>(new CompatiblePredictor(std::move(m)));
}

// The gate's a(x) for every row: the paper's gate reads the embedding alone; a gate that also
// reads the probabilities is computed only where old logits were found (elsewhere the new model
// answers alone and the value is not used).
std::vector<float> CompatiblePredictor::gate_values(const Impl& m, const models::ClassifierOutput& fresh, const std::vector<cache::Lookup>& found) {
  const auto n = fresh.rows, k = m.label_names.size();
  if (!m.old_confidence) return train::gate_values(m.gate, fresh.embeddings, {}, {}, static_cast<std::int64_t>(n));
  // Each row's found old logits; a row without any takes its new logits (its gate is not used).
  std::vector<float> old_logits(fresh.logits.begin(), fresh.logits.end());
  for (std::size_t i = 0; i < n; ++i) {
    const auto& o = found[i].old_logits;
    std::copy(o.begin(), o.end(), old_logits.begin() + static_cast<std::ptrdiff_t>(i * k));
  }
  return train::gate_values(m.gate, fresh.embeddings, fresh.logits, old_logits, static_cast<std::int64_t>(n));
}

std::vector<Prediction> CompatiblePredictor::predict(std::span<const data::TextExample> examples) const {
  const auto& m = *impl_;
  const std::size_t n = examples.size();
  std::vector<Prediction> out(n);
  if (n == 0) return out;
  const auto k = m.label_names.size();
  const auto fresh = m.model->predict(examples);  // logits (n, k), embeddings (n, dim)
  if (fresh.dim != m.dim) throw ModelError(fmt::format("{}: the model's embeddings are {}-d, its gate reads {}-d", m.dir.string(), fresh.dim, m.dim));
  std::vector<cache::Lookup> found(n);
  const bool look_up = m.cache && !m.version.empty();
  std::vector<std::string> keys;  // needed to look up or to record
  if (look_up || !m.options.record_version.empty()) {
    keys.resize(n);
    for (std::size_t i = 0; i < n; ++i) keys[i] = cache::cache_key(examples[i].text_a, examples[i].text_b);
  }
  if (look_up) {
    auto lo = m.options.lookup;
    lo.version = m.version;
    lo.nearest = lo.nearest && m.nearest_ok;
    found = m.cache->lookup(keys, fresh.embeddings, lo);
  }
  std::vector<std::size_t> need_old;
  std::vector<bool> emulated(n, false);
  for (std::size_t i = 0; i < n; ++i) {
    if (found[i].path != cache::LookupPath::kMiss) continue;
    if (m.live_old) {
      need_old.push_back(i);
    } else if (!m.emulator.empty()) {
      found[i].old_logits = m.emulator.predict(std::span<const float>(fresh.embeddings.data() + i * m.dim, m.dim));
      emulated[i] = true;
    }
  }
  if (!need_old.empty()) {
    std::vector<data::TextExample> subset;
    for (const auto i : need_old) subset.push_back(examples[i]);
    const auto old = m.live_old->predict(subset);
    for (std::size_t j = 0; j < need_old.size(); ++j) {
      found[need_old[j]].old_logits.assign(old.logits.begin() + static_cast<std::ptrdiff_t>(j * k), old.logits.begin() + static_cast<std::ptrdiff_t>((j + 1) * k));
    }
  }
  const auto gates = gate_values(m, fresh, found);
  const float t = static_cast<float>(m.temperature);
  for (std::size_t i = 0; i < n; ++i) {
    auto& p = out[i];
    const auto* new_logits = fresh.logits.data() + i * k;
    p.logits.assign(new_logits, new_logits + k);
    p.gate = gates[i];
    p.distance = found[i].distance;
    switch (found[i].path) {
      case cache::LookupPath::kExact: p.path = PredictionPath::kExact; break;
      case cache::LookupPath::kNear: p.path = PredictionPath::kNear; break;
      case cache::LookupPath::kMiss:
        p.path = found[i].old_logits.empty() ? PredictionPath::kMiss : emulated[i] ? PredictionPath::kEmulated : PredictionPath::kLiveOld;
        break;
    }
    if (found[i].old_logits.empty()) {
      p.gate = 1;  // the new model alone
    } else {
      for (std::size_t c = 0; c < k; ++c) p.logits[c] = (1 - gates[i]) * found[i].old_logits[c] / t + gates[i] * new_logits[c];
    }
    p.probabilities = softmax(p.logits);
    p.label = static_cast<std::int32_t>(std::max_element(p.logits.begin(), p.logits.end()) - p.logits.begin());
  }
  if (!m.options.record_version.empty()) {
    std::vector<cache::CacheEntry> entries(n);
    for (std::size_t i = 0; i < n; ++i) {
      entries[i].key = keys[i];
      entries[i].old_logits = out[i].logits;
      entries[i].embedding.assign(fresh.embeddings.begin() + static_cast<std::ptrdiff_t>(i * m.dim),
                                  fresh.embeddings.begin() + static_cast<std::ptrdiff_t>((i + 1) * m.dim));
    }
    m.cache->put(m.options.record_version, entries, m.space);
  }
  return out;
}

void CompatiblePredictor::warm_up() const {
  const auto& m = *impl_;
  data::TextExample e;
  e.id = "warm-up";
  e.text_a = "warm up";
  const auto out = m.model->predict(std::span<const data::TextExample>(&e, 1));
  torch::NoGradGuard no_grad;
  const auto embedding = torch::from_blob(const_cast<float*>(out.embeddings.data()), {1, static_cast<std::int64_t>(out.dim)});
  if (m.old_confidence) {
    const auto l = torch::from_blob(const_cast<float*>(out.logits.data()), {1, static_cast<std::int64_t>(out.num_labels)});
    m.gate->gate(embedding, l, l);
  } else {
    m.gate->gate(embedding);
  }
}

const std::vector<std::string>& CompatiblePredictor::label_names() const { return impl_->label_names; }
std::size_t CompatiblePredictor::num_labels() const { return impl_->label_names.size(); }
double CompatiblePredictor::temperature() const { return impl_->temperature; }
const std::string& CompatiblePredictor::embedding_space() const { return impl_->space; }
const std::string& CompatiblePredictor::lookup_version() const { return impl_->version; }
const std::string& CompatiblePredictor::fallback() const { return impl_->fallback; }
std::string CompatiblePredictor::model_name() const {
  const auto& dir = impl_->dir;
  return (dir.has_filename() ? dir.filename() : dir.parent_path().filename()).string();
}

std::string CompatiblePredictor::describe() const {
  const auto& m = *impl_;
  std::string cache = "no cache";
  if (m.cache) {
    cache = fmt::format("cache {} version '{}' ({} entries)", m.cache->path().string(), m.version, m.version.empty() ? 0 : m.cache->size(m.version));
    if (m.fallback == "emulator") cache += ", exact look-ups only";
    else if (!m.nearest_ok) cache += ", exact look-ups only (embeddings from another model)";
    else if (!m.options.lookup.nearest) cache += ", exact look-ups only";
    else if (m.options.lookup.max_distance) cache += fmt::format(", neighbours within {:.3g}", *m.options.lookup.max_distance);
  }
  const std::string emulator =
      m.emulator.empty() ? "" : fmt::format("; old-model emulator for inputs not cached (fitted on {} entries of version '{}', held-out agreement {:.1f}%)",
                                            m.emulator.rows, m.emulator.cache_version, 100 * m.emulator.held_out_agreement);
  return fmt::format("Gated Fusion (T={:.3g}) over {}; {}{}{}{}", m.temperature, m.model->describe(), cache, m.live_old ? "" : emulator,
                     m.live_old ? "; live old model on misses" : "",
                     m.options.record_version.empty() ? "" : fmt::format("; recording into '{}'", m.options.record_version));
}

}  // namespace flipless::serve
