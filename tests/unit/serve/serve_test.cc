// CompatiblePredictor (the three look-up paths, a live old model, recording) on a tiny frozen
// BERT with a random head and gate, and the HTTP service on a loopback port.
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <httplib.h>
#include <torch/torch.h>

#include <atomic>
#include <fmt/ranges.h>
#include <mutex>
#include <cmath>
#include <nlohmann/json.hpp>
#include <thread>

#include "../test_util.h"
#include "flipless/cache/logit_cache.h"
#include "flipless/core/error.h"
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
void write_model(const fs::path& dir, std::uint64_t seed, bool gated) {
  torch::manual_seed(seed);
  nn::HeadConfig head;
  nn::FeatureClassifier model(32, 2, head);
  json card = {{"kind", "frozen-head"},     {"label_names", {"negative", "positive"}},
               {"base_model", kTinyBert.string()}, {"layers", 2},
               {"pooling", "mean"},         {"max_length", 32},
               {"head", {{"kind", head.kind}, {"hidden", head.hidden}, {"dropout", head.dropout}}}};
  if (gated) {
    card["method"] = {{"name", "gated_fusion"}, {"temperature", kTemperature}};
    nn::GatedFusionConfig gc;
    gc.temperature = kTemperature;
    nn::GatedFusion gate(32, gc);
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

}  // namespace
}  // namespace flipless::serve
