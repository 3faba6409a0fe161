// CompatiblePredictor (the three look-up paths, a live old model, recording) on a tiny frozen
// BERT with a random head and gate, and the HTTP service on a loopback port.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <torch/torch.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "../test_util.h"
#include "flipless/cache/logit_cache.h"
#include "flipless/cache/old_emulator.h"
#include "flipless/core/error.h"
#include "flipless/io/safetensors.h"
#include "flipless/nn/classifier.h"
#include "flipless/nn/gated_fusion.h"
#include "flipless/nn/tensor_io.h"
#include "flipless/serve/http_api.h"
#include "flipless/serve/predictor.h"
#include "flipless/train/saved_model.h"

namespace flipless::serve {
namespace {

namespace fs = std::filesystem;
using flipless::testing::error_of;
using flipless::testing::TempDir;
using nlohmann::json;

const fs::path kTinyBert = fs::path(FLIPLESS_TEST_DIR) / "golden" / "nn" / "tiny-bert";
constexpr double kTemperature = 1.5;

// A frozen tiny BERT + random linear head (seed `seed`) saved as a model folder; with a gate
// when `gated`.
// With `confidence`, the gate also reads the old and new probabilities, as the held-out-gate
// variant chooses it (methods::gated_fusion_heldout, setting confidence=1).
void write_model(const fs::path& dir, std::uint64_t seed, bool gated, int max_length = 32, bool confidence = false) {
  torch::manual_seed(seed);
  nn::HeadConfig head;
  nn::FeatureClassifier model(32, 2, head);
  json card = {{"kind", "frozen-head"},
               {"label_names", {"negative", "positive"}},
               {"base_model", kTinyBert.string()},
               {"layers", 2},
               {"pooling", "mean"},
               {"max_length", max_length},
               {"head", {{"kind", head.kind}, {"hidden", head.hidden}, {"dropout", head.dropout}}}};
  if (gated) {
    card["method"] = confidence ? json{{"name", "gated_fusion_heldout"}, {"setting", fmt::format("confidence=1 temperature={:g}", kTemperature)}}
                                : json{{"name", "gated_fusion"}, {"temperature", kTemperature}};
    nn::GatedFusionConfig gc;
    gc.temperature = kTemperature;
    gc.old_confidence = confidence;
    nn::GatedFusion gate(32, gc, 2);
    std::map<std::string, torch::Tensor> params;
    const auto ps = gate->parameters();
    for (std::size_t i = 0; i < ps.size(); ++i) params[fmt::format("gate.{}", i)] = ps[i].detach();
    fs::create_directories(dir);
    nn::write_tensors(dir / "gate.safetensors", params, {{"format", "flipless-gate"}});
  }
  train::save_torch_classifier(dir, model, card);
}

data::TextExample text(std::string a, std::optional<std::string> b = std::nullopt) {
  data::TextExample e;
  e.id = a;
  e.text_a = std::move(a);
  e.text_b = std::move(b);
  return e;
}


class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_dir_ = dir_.path() / "gf";
    old_dir_ = dir_.path() / "old";
    write_model(model_dir_, 1, true);
    write_model(old_dir_, 2, false);
    cache_path_ = dir_.path() / "cache.sqlite";
    cache::CacheOptions co;
    co.num_labels = 2;
    co.dim = 32;
    auto c = cache::OldLogitCache::open(cache_path_, co);
    const auto new_model = train::load_classifier(model_dir_);
    const std::vector<data::TextExample> cached = {text("the movie was good"), text("the plot was boring and bad")};
    const auto out = new_model->predict(cached);
    std::vector<cache::CacheEntry> entries(2);
    for (std::size_t i = 0; i < 2; ++i) {
      entries[i].key = cache::cache_key(cached[i].text_a);
      entries[i].old_logits = i == 0 ? std::vector<float>{-3, 3} : std::vector<float>{4, -4};
      entries[i].embedding.assign(out.embeddings.begin() + static_cast<std::ptrdiff_t>(i * 32), out.embeddings.begin() + static_cast<std::ptrdiff_t>((i + 1) * 32));
    }
    c->put("v1", entries, embedding_space_of(model_dir_));
  }

  std::shared_ptr<cache::OldLogitCache> open_cache(bool read_only = false) {
    cache::CacheOptions co;
    co.read_only = read_only;
    return cache::OldLogitCache::open(cache_path_, co);
  }

  TempDir dir_;
  fs::path model_dir_, old_dir_, cache_path_;
};

TEST_F(ServeTest, ExactNearAndMissPathsFuseAsTheEquationSays) {
  PredictorOptions po;
  po.lookup.max_distance = 1e9f;
  auto p = CompatiblePredictor::load(model_dir_, open_cache(true), nullptr, po);
  EXPECT_EQ(p->lookup_version(), "v1");
  EXPECT_DOUBLE_EQ(p->temperature(), kTemperature);
  const std::vector<data::TextExample> xs = {text("  the movie  was good "), text("the plot was bad and boring")};
  const auto got = p->predict(xs);
  const auto fresh = train::load_classifier(model_dir_)->predict(xs);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].path, PredictionPath::kExact);
  EXPECT_EQ(got[1].path, PredictionPath::kNear);
  EXPECT_GT(got[1].distance, 0.0f);
  const std::vector<std::vector<float>> old = {{-3, 3}, {4, -4}};  // the near hit's neighbour is the boring plot
  for (std::size_t i = 0; i < 2; ++i) {
    const float a = got[i].gate;
    EXPECT_GT(a, 0.0f);
    EXPECT_LT(a, 1.0f);
    float z = 0;
    for (std::size_t c = 0; c < 2; ++c) {
      const float want = (1 - a) * old[i][c] / static_cast<float>(kTemperature) + a * fresh.logits[i * 2 + c];
      EXPECT_NEAR(got[i].logits[c], want, 1e-5) << i << "," << c;
      z += std::exp(got[i].logits[c]);
    }
    EXPECT_NEAR(got[i].probabilities[1], std::exp(got[i].logits[1]) / z, 1e-6);
  }
  // A tight threshold makes the same neighbour a miss: the new model alone, gate 1.
  po.lookup.max_distance = got[1].distance / 2;
  p = CompatiblePredictor::load(model_dir_, open_cache(true), nullptr, po);
  const auto miss = p->predict(std::vector<data::TextExample>{xs[1]});
  EXPECT_EQ(miss[0].path, PredictionPath::kMiss);
  EXPECT_FLOAT_EQ(miss[0].gate, 1.0f);
  EXPECT_NEAR(miss[0].logits[0], fresh.logits[2], 1e-6);
  EXPECT_NEAR(miss[0].logits[1], fresh.logits[3], 1e-6);
}

// A gate that also reads the probabilities (the held-out-gate variant's confidence=1) is served
// with them: its a(x) is the saved gate's on the embedding, new and old logits; a miss is the
// new model alone.
TEST_F(ServeTest, AGateThatReadsTheProbabilitiesIsServedWithThem) {
  const auto dir = dir_.path() / "gf-confidence";
  write_model(dir, 1, true, 32, true);
  PredictorOptions po;
  po.lookup.nearest = false;
  auto p = CompatiblePredictor::load(dir, open_cache(true), nullptr, po);
  const std::vector<data::TextExample> xs = {text("the movie was good"), text("an unseen sentence")};
  const auto got = p->predict(xs);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].path, PredictionPath::kExact);
  EXPECT_EQ(got[1].path, PredictionPath::kMiss);
  const auto fresh = train::load_classifier(dir)->predict(xs);
  nn::GatedFusionConfig gc;
  gc.temperature = kTemperature;
  gc.old_confidence = true;
  nn::GatedFusion gate(32, gc, 2);
  {
    torch::NoGradGuard no_grad;
    const auto file = io::SafetensorsFile::open(dir / "gate.safetensors");
    auto ps = gate->parameters();
    for (std::size_t i = 0; i < ps.size(); ++i) ps[i].copy_(nn::read_tensor(file, fmt::format("gate.{}", i)));
  }
  gate->eval();
  const auto e = torch::tensor(std::vector<float>(fresh.embeddings.begin(), fresh.embeddings.begin() + 32)).reshape({1, 32});
  const auto l_new = torch::tensor(std::vector<float>{fresh.logits[0], fresh.logits[1]}).reshape({1, 2});
  const auto l_old = torch::tensor(std::vector<float>{-3, 3}).reshape({1, 2});
  const float want = gate->gate(e, l_new, l_old).item<float>();
  EXPECT_NEAR(got[0].gate, want, 1e-5);
  // The probabilities move the gate: with the embedding-only reading it would differ.
  EXPECT_GT(std::abs(gate->gate(e, l_new, -l_old).item<float>() - want), 1e-6);
  for (std::size_t c = 0; c < 2; ++c) {
    EXPECT_NEAR(got[0].logits[c], (1 - want) * (c == 0 ? -3.0F : 3.0F) / static_cast<float>(kTemperature) + want * fresh.logits[c], 1e-5);
    EXPECT_NEAR(got[1].logits[c], fresh.logits[2 + c], 1e-6);
  }
  EXPECT_FLOAT_EQ(got[1].gate, 1.0F);
  p->warm_up();
}

TEST_F(ServeTest, LiveOldModelAnswersMissesAndRecordingWritesTheNextVersion) {
  PredictorOptions po;
  po.lookup.nearest = false;
  po.record_version = "served-1";
  std::shared_ptr<const models::Classifier> old = train::load_classifier(old_dir_);
  auto p = CompatiblePredictor::load(model_dir_, open_cache(), old, po);
  const std::vector<data::TextExample> xs = {text("the movie was good"), text("a fun story", std::string("love it"))};
  const auto got = p->predict(xs);
  EXPECT_EQ(got[0].path, PredictionPath::kExact);
  EXPECT_EQ(got[1].path, PredictionPath::kLiveOld);
  const auto old_logits = old->predict(std::vector<data::TextExample>{xs[1]}).logits;
  const auto fresh = train::load_classifier(model_dir_)->predict(std::vector<data::TextExample>{xs[1]}).logits;
  const float a = got[1].gate;
  EXPECT_NEAR(got[1].logits[0], (1 - a) * old_logits[0] / kTemperature + a * fresh[0], 1e-5);
  // Served predictions became version served-1 (look-ups still read v1).
  auto c = open_cache(true);
  EXPECT_EQ(c->latest_version(), "served-1");
  EXPECT_EQ(c->size("served-1"), 2u);
  const std::vector<std::string> key = {cache::cache_key("a fun story", std::string("love it"))};
  cache::LookupOptions lo;
  lo.version = "served-1";
  EXPECT_EQ(c->lookup(key, {}, lo)[0].old_logits, got[1].logits);
  EXPECT_EQ(p->lookup_version(), "v1");
  // Recording into the version look-ups read is refused.
  po.record_version = "v1";
  po.lookup.version = "v1";
  EXPECT_EQ(error_of<ConfigError>([&] { CompatiblePredictor::load(model_dir_, open_cache(), nullptr, po); }),
            "recording into 'v1', the version look-ups read: name a new version");
}

TEST_F(ServeTest, RefusesFoldersWithoutAGateAndCachesOfAnotherWidth) {
  EXPECT_NE(error_of<ModelError>([&] { CompatiblePredictor::load(old_dir_, nullptr, nullptr); }).find("not a Gated Fusion model"),
            std::string::npos);
  cache::CacheOptions co;
  co.num_labels = 2;
  co.dim = 16;
  auto narrow = cache::OldLogitCache::open(dir_.path() / "narrow.sqlite", co);
  EXPECT_NE(error_of<ConfigError>([&] { CompatiblePredictor::load(model_dir_, std::move(narrow), nullptr); }).find("16-d embeddings"),
            std::string::npos);
}

TEST(ParsePredictRequest, AcceptsTextsAndPairsAndNamesTheBadField) {
  ServerOptions o;
  o.max_inputs = 3;
  o.max_text_bytes = 10;
  const auto xs = parse_predict_request(R"({"inputs": ["good", {"text": "a", "text_pair": "b"}]})", o);
  ASSERT_EQ(xs.size(), 2u);
  EXPECT_EQ(xs[1].text_b, "b");
  EXPECT_EQ(error_of<InputError>([&] { parse_predict_request("{", o); }), "request body: invalid JSON");
  // nlohmann's parser stops at a NUL byte: the valid first half must not hide the rest.
  EXPECT_EQ(error_of<InputError>([&] {
              parse_predict_request(std::string(R"({"inputs":["a"]})"
                                                "\0"
                                                R"({"inputs":[1]})",
                                                31),
                                    o);
            }),
            "request body: invalid JSON (a NUL byte at offset 16)");
  EXPECT_EQ(error_of<InputError>([&] { parse_predict_request(R"({"texts": []})", o); }), "request body: unknown field 'texts' (expected 'inputs')");
  EXPECT_EQ(error_of<InputError>([&] { parse_predict_request(R"({"inputs": []})", o); }), "inputs: empty");
  EXPECT_EQ(error_of<InputError>([&] { parse_predict_request(R"({"inputs": ["a", 3]})", o); }),
            "inputs[1]: expected a string or an object with 'text', found number");
  EXPECT_EQ(error_of<InputError>([&] { parse_predict_request(R"({"inputs": [{"text_pair": "b"}]})", o); }), "inputs[0]: missing field 'text'");
  EXPECT_EQ(error_of<RequestTooLarge>([&] { parse_predict_request(R"({"inputs": ["a", "b", "c", "d"]})", o); }),
            "inputs: 4 inputs, the limit is 3 per request");
  EXPECT_EQ(error_of<RequestTooLarge>([&] { parse_predict_request(R"({"inputs": ["this text is long"]})", o); }),
            "inputs[0]: 17 bytes, the limit is 10");
}

// A server on 127.0.0.1 and a free port, serving from a thread.
class LiveServer {
 public:
  LiveServer(std::shared_ptr<const CompatiblePredictor> p, ServerOptions o) : server_(std::move(p), o) {
    port_ = server_.bind();
    thread_ = std::thread([this] { server_.run(); });
  }
  ~LiveServer() {
    server_.stop();
    thread_.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    return c;
  }
  Server& server() { return server_; }
  int port() const { return port_; }

 private:
  Server server_;
  int port_ = 0;
  std::thread thread_;
};

ServerOptions loopback() {
  ServerOptions o;
  o.port = 0;
  o.threads = 8;
  o.max_body_bytes = 4096;
  o.max_inputs = 32;
  return o;
}

TEST_F(ServeTest, HttpPredictHealthzAndMetrics) {
  LiveServer live(CompatiblePredictor::load(model_dir_, open_cache(true), nullptr), loopback());
  auto client = live.client();
  auto res = client.Post("/v1/predict", R"({"inputs": ["the movie was good", "the plot was bad and boring", {"text": "fun", "text_pair": "film"}]})",
                         "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const auto body = json::parse(res->body);
  ASSERT_EQ(body.at("predictions").size(), 3u);
  EXPECT_EQ(body["predictions"][0]["path"], "exact");
  EXPECT_EQ(body["predictions"][1]["path"], "near");
  EXPECT_EQ(body["predictions"][2]["path"], "near");
  const auto& p0 = body["predictions"][0];
  EXPECT_EQ(p0["label"], p0["label_index"] == 0 ? "negative" : "positive");
  EXPECT_NEAR(p0["probabilities"][0].get<double>() + p0["probabilities"][1].get<double>(), 1.0, 1e-6);

  res = client.Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body)["cache_version"], "v1");

  // Bad requests: 400 with the reason; too large: 413; unknown path: 404.
  res = client.Post("/v1/predict", "{not json", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(json::parse(res->body)["error"], "request body: invalid JSON");
  res = client.Post("/v1/predict", R"({"inputs": [1]})", "application/json");
  EXPECT_EQ(res->status, 400);
  res = client.Post("/v1/predict", json{{"inputs", std::vector<std::string>(33, "good")}}.dump(), "application/json");
  EXPECT_EQ(res->status, 413);
  res = client.Post("/v1/predict", json{{"inputs", {std::string(5000, 'a')}}}.dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413);
  res = client.Get("/v2/nothing");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);

  res = client.Get("/metrics");
  ASSERT_TRUE(res);
  const auto& m = res->body;
  EXPECT_NE(m.find("flipless_http_requests_total{handler=\"/v1/predict\",code=\"200\"} 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("flipless_http_requests_total{handler=\"/v1/predict\",code=\"400\"} 2\n"), std::string::npos) << m;
  EXPECT_NE(m.find("flipless_http_requests_total{handler=\"/v1/predict\",code=\"413\"} 2\n"), std::string::npos) << m;
  EXPECT_NE(m.find("flipless_predictions_total{path=\"exact\"} 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("flipless_predictions_total{path=\"near\"} 2\n"), std::string::npos) << m;
  EXPECT_NE(m.find("flipless_predict_duration_seconds_count 5\n"), std::string::npos) << m;
}

// The old-model emulator: fitted on a cache version of 30 inputs (the old model's logits, the new
// model's embeddings), saved in the model folder, it answers every input not cached exactly
// (path "emulated", fused by the same equation), counted in /metrics; a wrong one is refused.
TEST_F(ServeTest, AnEmulatorInTheFolderAnswersInputsNotCachedAndIsCounted) {
  const auto new_model = train::load_classifier(model_dir_);
  const auto old_model = train::load_classifier(old_dir_);
  std::vector<data::TextExample> texts;
  const char* words[] = {"good", "bad", "boring", "fun", "great", "awful", "slow", "bright", "dull", "sharp"};
  for (int i = 0; i < 30; ++i) texts.push_back(text(fmt::format("the {} film {} was {}", words[i % 10], i, words[(i * 7 + 3) % 10])));
  const auto fresh = new_model->predict(texts);
  const auto old = old_model->predict(texts);
  std::vector<cache::CacheEntry> entries(texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    entries[i].key = cache::cache_key(texts[i].text_a);
    entries[i].old_logits.assign(old.logits.begin() + static_cast<std::ptrdiff_t>(2 * i), old.logits.begin() + static_cast<std::ptrdiff_t>(2 * i + 2));
    entries[i].embedding.assign(fresh.embeddings.begin() + static_cast<std::ptrdiff_t>(32 * i),
                                fresh.embeddings.begin() + static_cast<std::ptrdiff_t>(32 * (i + 1)));
  }
  open_cache()->put("v2", entries, embedding_space_of(model_dir_));
  const auto stored = open_cache(true)->entries_with_embeddings("v2");
  std::vector<float> x, y;
  for (const auto& e : stored) {
    x.insert(x.end(), e.embedding.begin(), e.embedding.end());
    y.insert(y.end(), e.old_logits.begin(), e.old_logits.end());
  }
  auto emulator = cache::fit_old_emulator(x, y, 32, 2);
  emulator.embedding_space = embedding_space_of(model_dir_);
  emulator.cache_version = "v2";

  // Without the file: "auto" is the paper's neighbour, "emulator" is refused.
  EXPECT_EQ(CompatiblePredictor::load(model_dir_, open_cache(true), nullptr)->fallback(), "neighbour");
  PredictorOptions want_emulator;
  want_emulator.fallback = "emulator";
  EXPECT_NE(error_of<ConfigError>([&] { CompatiblePredictor::load(model_dir_, open_cache(true), nullptr, want_emulator); }).find("fit one with"),
            std::string::npos);
  PredictorOptions bogus;
  bogus.fallback = "oracle";
  EXPECT_EQ(error_of<ConfigError>([&] { CompatiblePredictor::load(model_dir_, open_cache(true), nullptr, bogus); }),
            "fallback 'oracle': expected auto, emulator, neighbour or new");

  emulator.save(model_dir_ / kEmulatorFileName);
  const auto p = CompatiblePredictor::load(model_dir_, open_cache(true), nullptr);
  EXPECT_EQ(p->fallback(), "emulator");
  EXPECT_NE(p->describe().find("old-model emulator for inputs not cached (fitted on 30 entries of version 'v2'"), std::string::npos) << p->describe();
  const std::vector<data::TextExample> xs = {texts[4], text("an entirely new sentence about a film")};
  const auto got = p->predict(xs);
  const auto alone = new_model->predict(xs);
  EXPECT_EQ(got[0].path, PredictionPath::kExact);
  EXPECT_EQ(got[1].path, PredictionPath::kEmulated);
  const auto emulated = emulator.predict(std::span<const float>(alone.embeddings.data() + 32, 32));
  for (std::size_t c = 0; c < 2; ++c) {
    const float a = got[1].gate;
    EXPECT_NEAR(got[1].logits[c], (1 - a) * emulated[c] / static_cast<float>(kTemperature) + a * alone.logits[2 + c], 1e-5) << c;
    EXPECT_NEAR(got[0].logits[c], (1 - got[0].gate) * entries[4].old_logits[c] / static_cast<float>(kTemperature) + got[0].gate * alone.logits[c], 1e-5);
  }
  // Without any cache the emulator still answers; asked for neighbours, the paper's path returns.
  EXPECT_EQ(CompatiblePredictor::load(model_dir_, nullptr, nullptr)->predict(xs)[1].path, PredictionPath::kEmulated);
  PredictorOptions neighbour;
  neighbour.fallback = "neighbour";
  EXPECT_EQ(CompatiblePredictor::load(model_dir_, open_cache(true), nullptr, neighbour)->predict(xs)[1].path, PredictionPath::kNear);

  {
    LiveServer live(CompatiblePredictor::load(model_dir_, open_cache(true), nullptr), loopback());
    auto client = live.client();
    auto res = client.Post("/v1/predict", json{{"inputs", {texts[4].text_a, "an entirely new sentence about a film", "and another"}}}.dump(),
                           "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(json::parse(res->body)["predictions"][1]["path"], "emulated");
    res = client.Get("/metrics");
    ASSERT_TRUE(res);
    EXPECT_NE(res->body.find("flipless_predictions_total{path=\"emulated\"} 2\n"), std::string::npos) << res->body;
    EXPECT_NE(res->body.find("flipless_predictions_total{path=\"exact\"} 1\n"), std::string::npos) << res->body;
  }

  // An emulator fitted in another embedding space (another model's) is refused at load.
  emulator.embedding_space = "model:0123456789abcdef";
  emulator.save(model_dir_ / kEmulatorFileName);
  EXPECT_NE(error_of<ModelError>([&] { CompatiblePredictor::load(model_dir_, open_cache(true), nullptr); }).find("refit it"), std::string::npos);
}

// A second server on a port in use is refused: it must not share the port (SO_REUSEPORT) and
// take a share of the first one's connections.
TEST_F(ServeTest, ASecondServerOnAPortInUseIsRefused) {
  LiveServer first(CompatiblePredictor::load(model_dir_, open_cache(true), nullptr), loopback());
  auto o = loopback();
  o.port = first.port();
  Server second(CompatiblePredictor::load(model_dir_, open_cache(true), nullptr), o);
  EXPECT_EQ(error_of<IoError>([&] { second.bind(); }), fmt::format("serve: cannot listen on 127.0.0.1:{}", first.port()));
}

TEST_F(ServeTest, ThousandRequestsAtConcurrencySixteenWithoutErrors) {
  auto o = loopback();
  o.max_batch = 16;
  LiveServer live(CompatiblePredictor::load(model_dir_, open_cache(true), nullptr), o);
  constexpr int kClients = 16, kPerClient = 63;  // 1,008 requests
  const std::vector<std::string> texts = {"the movie was good", "a boring film", "not very fun", "love the actors"};
  std::atomic<int> ok{0}, bad{0};
  std::mutex failures_mutex;
  std::vector<std::string> failures;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto client = live.client();
      for (int r = 0; r < kPerClient; ++r) {
        const auto& t = texts[static_cast<std::size_t>(c + r) % texts.size()];
        const auto res = client.Post("/v1/predict", json{{"inputs", {t, t + " story"}}}.dump(), "application/json");
        if (res && res->status == 200 && json::parse(res->body)["predictions"].size() == 2) {
          ++ok;
        } else {
          ++bad;
          const std::lock_guard lock(failures_mutex);
          failures.push_back(res ? fmt::format("HTTP {}: {}", res->status, res->body) : fmt::format("no response: {}", httplib::to_string(res.error())));
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), kClients * kPerClient);
  EXPECT_EQ(bad.load(), 0) << fmt::format("{}", fmt::join(failures, "\n"));
  const auto m = live.server().metrics_text();
  EXPECT_NE(m.find(fmt::format("flipless_model_batch_inputs_total {}\n", 2 * kClients * kPerClient)), std::string::npos) << m;
  // Requests were batched together: fewer model calls than requests.
  const auto at = m.find("\nflipless_model_batches_total ");
  ASSERT_NE(at, std::string::npos);
  const int batches = std::stoi(m.substr(at + 30));
  EXPECT_GT(batches, 0);
  EXPECT_LT(batches, kClients * kPerClient);
}

TEST_F(ServeTest, ACardWhoseMaxLengthExceedsTheEncodersPositionsIsRefusedAtStart) {
  const auto long_dir = dir_.path() / "gf-long";
  write_model(long_dir, 1, true, 700);  // the tiny BERT has 64 positions
  EXPECT_EQ(
      error_of<ModelError>([&] { CompatiblePredictor::load(long_dir, nullptr, nullptr); }),
      fmt::format("{}: field 'max_length': 700 tokens, but the encoder ({}) has 64 positions; set it to at most 64",
                  (long_dir / train::kModelCardName).string(), (kTinyBert / "config.json").string()));
  // The same check for a live old model (flipless serve --old-model).
  const auto long_old = dir_.path() / "old-long";
  write_model(long_old, 2, false, 65);
  EXPECT_NE(error_of<ModelError>([&] { check_encoder_limits(long_old); }).find("65 tokens, but the encoder"), std::string::npos);
  check_encoder_limits(old_dir_);  // 32 of 64: fine
}

// ---- Hostile clients, each through the real server on 127.0.0.1 (issue 14's list) ----

// A raw TCP client: what a misbehaving peer sends, byte for byte.
class Socket {
 public:
  explicit Socket(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~Socket() { ::close(fd_); }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  bool connected() const { return connected_; }
  // False once the peer has closed or reset.
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  // True when something (data or a close) can be read within `ms`.
  bool readable(int ms) const {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, ms) > 0;
  }
  // Reads until `count` whole responses (Content-Length framed) came, the peer closed, or
  // `ms` passed; returns the responses' status codes and bodies.
  std::vector<std::pair<int, std::string>> responses(std::size_t count, int ms = 10000) {
    std::vector<std::pair<int, std::string>> out;
    const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
    while (out.size() < count) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0 || !readable(static_cast<int>(left))) break;
      char chunk[65536];
      const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      data_.append(chunk, static_cast<std::size_t>(n));
      for (;;) {
        const auto head_end = data_.find("\r\n\r\n");
        if (head_end == std::string::npos) break;
        std::size_t length = 0;
        const auto head = data_.substr(0, head_end);
        if (const auto at = head.find("Content-Length: "); at != std::string::npos)
          length = std::stoul(head.substr(at + 16));
        if (data_.size() < head_end + 4 + length) break;
        heads_.push_back(head);
        out.emplace_back(std::stoi(head.substr(9, 3)), data_.substr(head_end + 4, length));
        data_.erase(0, head_end + 4 + length);
      }
    }
    return out;
  }
  // True when the peer closes within `ms` (reading and dropping anything it sends first).
  bool closed_within(int ms) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
    while (!closed_) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0 || !readable(static_cast<int>(left))) return false;
      char chunk[4096];
      if (::recv(fd_, chunk, sizeof chunk, 0) <= 0) closed_ = true;
    }
    return true;
  }
  const std::vector<std::string>& heads() const { return heads_; }

 private:
  using Clock = std::chrono::steady_clock;
  int fd_;
  bool connected_ = false, closed_ = false;
  std::string data_;
  std::vector<std::string> heads_;
};

std::string post(std::string_view body, std::string_view extra_headers = "") {
  return fmt::format(
      "POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{}Content-Length: {}\r\n\r\n{}",
      extra_headers, body.size(), body);
}
constexpr std::string_view kGood = R"({"inputs": ["the movie was good"]})";
constexpr std::string_view kHealthz = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

// Issue 14, 1: a chunked body is counted while it is read: 413 long before 64 MiB are sent.
TEST_F(ServeTest, AChunkedBodyOverTheLimitIsRefusedWhileItIsRead) {
  LiveServer live(CompatiblePredictor::load(model_dir_, open_cache(true), nullptr), loopback());  // 4096-byte bodies
  Socket s(live.port());
  ASSERT_TRUE(s.send("POST /v1/predict HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
  const std::string chunk = fmt::format("{:x}\r\n{}\r\n", 65536, std::string(65536, 'a'));
  std::size_t sent = 0;
  while (sent < (64u << 20) && !s.readable(0) && s.send(chunk)) sent += 65536;
  const auto got = s.responses(1);
  ASSERT_EQ(got.size(), 1u) << "after " << sent << " bytes";
  EXPECT_EQ(got[0].first, 413);
  EXPECT_EQ(json::parse(got[0].second)["error"], "request body: over 4096 bytes, the limit");
  EXPECT_LT(sent, 64u << 20);
  // A Content-Length over the limit is refused from the head alone, before any body.
  Socket t(live.port());
  ASSERT_TRUE(t.send("POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Length: 1073741824\r\n\r\n"));
  const auto early = t.responses(1);
  ASSERT_EQ(early.size(), 1u);
  EXPECT_EQ(early[0].first, 413);
  EXPECT_EQ(json::parse(early[0].second)["error"], "request body: 1073741824 bytes, the limit is 4096");
}

// Issue 14, 2: clients that trickle their requests byte by byte hold a connection each, never
// a thread: a normal client is answered meanwhile, and a trickler is cut off at the request
// timeout.
TEST_F(ServeTest, SlowClientsDoNotHoldUpOthersAndAreCutOffAtTheRequestTimeout) {
  auto o = loopback();
  o.threads = 2;
  o.request_timeout_s = 1;
  LiveServer live(CompatiblePredictor::load(model_dir_, open_cache(true), nullptr), o);
  std::vector<std::unique_ptr<Socket>> slow;
  const std::string request = post(kGood);
  for (int i = 0; i < 50; ++i) {
    slow.push_back(std::make_unique<Socket>(live.port()));
    ASSERT_TRUE(slow.back()->send(request.substr(0, 1)));
  }
  // 4 more bytes each, 100 ms apart, while a normal client asks twice.
  for (std::size_t b = 1; b < 5; ++b) {
    for (auto& s : slow) s->send(request.substr(b, 1));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  Socket normal(live.port());
  ASSERT_TRUE(normal.send(request + request));
  const auto got = normal.responses(2, 5000);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].first, 200);
  EXPECT_EQ(got[1].first, 200);
  // The tricklers have had their second; the server closes each (a request takes at most 1 s).
  for (auto& s : slow) EXPECT_TRUE(s->closed_within(3000));
}

// Issue 14, 2: idle keep-alive connections do not stall a new client, and are closed after the
// idle timeout.
TEST_F(ServeTest, IdleKeepAliveConnectionsDoNotStallANewClientAndTimeOut) {
  auto o = loopback();
  o.idle_timeout_s = 1;
  LiveServer live(CompatiblePredictor::load(model_dir_, open_cache(true), nullptr), o);
  std::vector<std::unique_ptr<Socket>> idle;
  for (int i = 0; i < 64; ++i) {
    idle.push_back(std::make_unique<Socket>(live.port()));
    ASSERT_TRUE(idle.back()->send(kHealthz));
    ASSERT_EQ(idle.back()->responses(1).size(), 1u);
  }
  Socket fresh(live.port());
  ASSERT_TRUE(fresh.send(post(kGood)));
  const auto got = fresh.responses(1, 5000);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].first, 200);
  for (auto& s : idle) EXPECT_TRUE(s->closed_within(3000));
}

// Issue 14, 2: over max_connections a client is told so (503) and the connection closed.
TEST_F(ServeTest, ConnectionsOverTheCapAreAnswered503) {
  auto o = loopback();
  o.max_connections = 4;
  LiveServer live(CompatiblePredictor::load(model_dir_, open_cache(true), nullptr), o);
  std::vector<std::unique_ptr<Socket>> open;
  for (int i = 0; i < 4; ++i) {
    open.push_back(std::make_unique<Socket>(live.port()));
    ASSERT_TRUE(open.back()->send(kHealthz));
    ASSERT_EQ(open.back()->responses(1).size(), 1u);
  }
  {
    Socket fifth(live.port());
    const auto refused = fifth.responses(1);
    ASSERT_EQ(refused.size(), 1u);
    EXPECT_EQ(refused[0].first, 503);
    EXPECT_TRUE(fifth.closed_within(3000));
  }
  open.pop_back();  // one leaves: a newcomer is served again
  bool served = false;
  for (int attempt = 0; attempt < 50 && !served; ++attempt) {
    Socket again(live.port());
    again.send(kHealthz);
    const auto r = again.responses(1);
    served = r.size() == 1 && r[0].first == 200;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(served);
}

// Issue 14, 3: pipelined requests are answered, in order, on the same connection.
TEST_F(ServeTest, PipelinedRequestsAreAnsweredInOrder) {
  LiveServer live(CompatiblePredictor::load(model_dir_, open_cache(true), nullptr), loopback());
  Socket s(live.port());
  ASSERT_TRUE(
      s.send(std::string(kHealthz) + post(kGood) + "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n" + std::string(kHealthz)));
  const auto got = s.responses(4, 5000);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(json::parse(got[0].second)["status"], "ok");
  EXPECT_EQ(json::parse(got[1].second)["predictions"][0]["path"], "exact");
  EXPECT_NE(got[2].second.find("flipless_http_requests_total"), std::string::npos);
  EXPECT_EQ(json::parse(got[3].second)["status"], "ok");
  // A malformed head, a head over the limit: an answer, then the connection closes.
  Socket bad(live.port());
  ASSERT_TRUE(bad.send("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(20000, 'x') + "\r\n\r\n"));
  const auto big = bad.responses(1);
  ASSERT_EQ(big.size(), 1u);
  EXPECT_EQ(big[0].first, 431);
}

// Issue 14, 4: a NUL byte does not end the JSON body.
TEST_F(ServeTest, ANulByteInTheBodyIsRefused) {
  LiveServer live(CompatiblePredictor::load(model_dir_, open_cache(true), nullptr), loopback());
  Socket s(live.port());
  ASSERT_TRUE(s.send(post(std::string(R"({"inputs":["a"]})"
                                      "\0"
                                      R"({"inputs":[1]})",
                                      31))));
  const auto got = s.responses(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].first, 400);
  EXPECT_EQ(json::parse(got[0].second)["error"], "request body: invalid JSON (a NUL byte at offset 16)");
}

// Issue 14, 5: an input that fails the model (here a text longer than a live old model's
// encoder takes) fails its own request only, not the requests batched with it.
TEST_F(ServeTest, OneClientsFailingInputDoesNotFailOtherClients) {
  const auto long_old = dir_.path() / "old-long";
  write_model(long_old, 2, false, 1000);  // the tiny BERT has 64 positions
  PredictorOptions po;
  po.lookup.nearest = false;
  auto o = loopback();
  o.max_body_bytes = 1 << 16;
  o.max_wait_us = 200000;  // requests wait long enough to share a batch
  LiveServer live(CompatiblePredictor::load(model_dir_, open_cache(true), train::load_classifier(long_old), po), o);
  std::string long_text;
  for (int i = 0; i < 200; ++i) long_text += "good movie ";
  std::vector<std::unique_ptr<Socket>> others;
  Socket bad(live.port());
  for (int i = 0; i < 10; ++i) others.push_back(std::make_unique<Socket>(live.port()));
  ASSERT_TRUE(bad.send(post(json{{"inputs", {long_text}}}.dump())));
  for (auto& s : others) ASSERT_TRUE(s->send(post(R"({"inputs": ["a fine film", "the movie was good"]})")));
  const auto failed = bad.responses(1);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].first, 400);
  EXPECT_NE(json::parse(failed[0].second)["error"].get<std::string>().find("exceeds the model's 64 positions"),
            std::string::npos);
  for (auto& s : others) {
    const auto got = s->responses(1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].first, 200) << got[0].second;
  }
  // They did share batches: fewer model calls than requests.
  const auto m = live.server().metrics_text();
  EXPECT_NE(m.find("flipless_http_requests_total{handler=\"/v1/predict\",code=\"200\"} 10\n"), std::string::npos) << m;
}

// Issue 14, 6: stop() answers the requests it has received before the connections close.
TEST_F(ServeTest, StopAnswersRequestsInFlight) {
  auto o = loopback();
  o.max_wait_us = 2000000;  // a batch waits up to 2 s for more inputs: the requests are in flight at stop()
  o.max_batch = 64;
  auto server = std::make_unique<Server>(CompatiblePredictor::load(model_dir_, open_cache(true), nullptr), o);
  const int port = server->bind();
  std::thread loop([&] { server->run(); });
  std::vector<std::unique_ptr<Socket>> clients;
  for (int i = 0; i < 16; ++i) {
    clients.push_back(std::make_unique<Socket>(port));
    ASSERT_TRUE(clients.back()->send(post(kGood)));
  }
  Socket idle(port);
  ASSERT_TRUE(idle.send(kHealthz));
  ASSERT_EQ(idle.responses(1).size(), 1u);
  // Stop once the server holds all 16 requests.
  for (int i = 0; i < 1000 && server->metrics_text().find("flipless_http_requests_in_flight 16\n") == std::string::npos;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_NE(server->metrics_text().find("flipless_http_requests_in_flight 16\n"), std::string::npos)
      << server->metrics_text();
  server->stop();
  for (auto& c : clients) {
    const auto got = c->responses(1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].first, 200);
    EXPECT_NE(c->heads().back().find("Connection: close"), std::string::npos) << c->heads().back();
    EXPECT_TRUE(c->closed_within(3000));
    c.reset();
  }
  EXPECT_TRUE(idle.closed_within(3000));   // between requests: closed at once
  loop.join();                             // run() returned
  EXPECT_FALSE(Socket(port).connected());  // and nothing listens
}

// Issue 14, 7: a bearer token guards everything but /healthz, which shows no file paths; a
// wrong method is 405 with Allow.
TEST_F(ServeTest, BearerTokenHealthzWithoutPathsAndWrongMethods) {
  auto o = loopback();
  o.auth_token = "s3cret-token";
  LiveServer live(CompatiblePredictor::load(model_dir_, open_cache(true), nullptr), o);
  Socket s(live.port());
  ASSERT_TRUE(s.send(post(kGood) + post(kGood, "Authorization: Bearer wrong-token!\r\n") +
                     post(kGood, "Authorization: Bearer s3cret-token\r\n") +
                     "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n" + std::string(kHealthz) +
                     "POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n" +
                     "GET /v1/predict HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer s3cret-token\r\n\r\n"));
  const auto got = s.responses(7);
  ASSERT_EQ(got.size(), 7u);
  EXPECT_EQ(got[0].first, 401);
  EXPECT_NE(s.heads()[0].find("WWW-Authenticate: Bearer"), std::string::npos) << s.heads()[0];
  EXPECT_EQ(got[1].first, 401);
  EXPECT_EQ(got[2].first, 200);
  EXPECT_EQ(got[3].first, 401);
  EXPECT_EQ(got[4].first, 200);
  const auto health = json::parse(got[4].second);
  EXPECT_EQ(health["model"], "gf");
  EXPECT_EQ(health["cache_version"], "v1");
  EXPECT_EQ(got[4].second.find(dir_.path().string()), std::string::npos) << got[4].second;
  EXPECT_EQ(got[4].second.find('/'), std::string::npos) << got[4].second;
  EXPECT_EQ(got[5].first, 405);
  EXPECT_NE(s.heads()[5].find("Allow: GET"), std::string::npos) << s.heads()[5];
  EXPECT_EQ(got[6].first, 405);
  EXPECT_NE(s.heads()[6].find("Allow: POST"), std::string::npos) << s.heads()[6];
}

}  // namespace
}  // namespace flipless::serve
