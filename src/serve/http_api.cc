#include "flipless/serve/http_api.h"

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include <netinet/in.h>
#include <sys/socket.h>

#include "flipless/core/utf8.h"

namespace flipless::serve {
using nlohmann::json;
using Clock = std::chrono::steady_clock;

void ServerOptions::validate() const {
  if (port < 0 || port > 65535) throw ConfigError(fmt::format("port must be in [0, 65535], got {}", port));
  if (threads == 0) throw ConfigError("threads must be positive");
  if (max_batch == 0) throw ConfigError("max_batch must be positive");
  if (max_wait_us < 0) throw ConfigError("max_wait_us must not be negative");
  if (max_body_bytes == 0 || max_inputs == 0 || max_text_bytes == 0) throw ConfigError("size limits must be positive");
}

namespace {

std::string text_field(const json& value, const std::string& where, const ServerOptions& options) {
  if (!value.is_string()) throw InputError(fmt::format("{}: expected a string, found {}", where, value.type_name()));
  auto text = value.get<std::string>();
  if (text.size() > options.max_text_bytes) {
    throw RequestTooLarge(fmt::format("{}: {} bytes, the limit is {}", where, text.size(), options.max_text_bytes));
  }
  if (core::find_invalid_utf8(text)) throw InputError(fmt::format("{}: invalid UTF-8", where));
  return text;
}

}  // namespace

std::vector<data::TextExample> parse_predict_request(std::string_view body, const ServerOptions& options) {
  if (body.size() > options.max_body_bytes) {
    throw RequestTooLarge(fmt::format("request body: {} bytes, the limit is {}", body.size(), options.max_body_bytes));
  }
  const json request = json::parse(body.begin(), body.end(), nullptr, false);
  if (request.is_discarded()) throw InputError("request body: invalid JSON");
  if (!request.is_object()) throw InputError(fmt::format("request body: expected a JSON object, found {}", request.type_name()));
  for (const auto& [key, value] : request.items()) {
    if (key != "inputs") throw InputError(fmt::format("request body: unknown field '{}' (expected 'inputs')", key));
  }
  if (!request.contains("inputs")) throw InputError("request body: missing field 'inputs'");
  const auto& inputs = request.at("inputs");
  if (!inputs.is_array()) throw InputError(fmt::format("inputs: expected an array, found {}", inputs.type_name()));
  if (inputs.empty()) throw InputError("inputs: empty");
  if (inputs.size() > options.max_inputs) {
    throw RequestTooLarge(fmt::format("inputs: {} inputs, the limit is {} per request", inputs.size(), options.max_inputs));
  }
  std::vector<data::TextExample> out(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const auto& item = inputs[i];
    const std::string where = fmt::format("inputs[{}]", i);
    auto& e = out[i];
    e.id = where;
    if (item.is_string()) {
      e.text_a = text_field(item, where, options);
    } else if (item.is_object()) {
      for (const auto& [key, value] : item.items()) {
        if (key != "text" && key != "text_pair") throw InputError(fmt::format("{}: unknown field '{}' (text, text_pair)", where, key));
      }
      if (!item.contains("text")) throw InputError(fmt::format("{}: missing field 'text'", where));
      e.text_a = text_field(item.at("text"), where + ".text", options);
      if (item.contains("text_pair") && !item.at("text_pair").is_null()) e.text_b = text_field(item.at("text_pair"), where + ".text_pair", options);
    } else {
      throw InputError(fmt::format("{}: expected a string or an object with 'text', found {}", where, item.type_name()));
    }
  }
  return out;
}

namespace {

// Latency buckets (seconds) of the request histogram.
constexpr std::array<double, 12> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

struct Metrics {
  std::mutex mutex;
  std::map<std::pair<std::string, int>, std::uint64_t> requests;  // (handler, code) -> count
  std::array<std::uint64_t, kBuckets.size()> latency_buckets{};   // predict requests, cumulative on output
  std::uint64_t latency_count = 0;
  double latency_sum = 0;
  std::array<std::atomic<std::uint64_t>, 4> paths{};  // by PredictionPath
  std::atomic<std::uint64_t> batches{0}, batch_inputs{0};

  void request(const std::string& handler, int code, double seconds) {
    std::lock_guard lock(mutex);
    ++requests[{handler, code}];
    if (handler != "/v1/predict") return;
    for (std::size_t b = 0; b < kBuckets.size(); ++b) {
      if (seconds <= kBuckets[b]) {
        ++latency_buckets[b];
        break;
      }
    }
    ++latency_count;
    latency_sum += seconds;
  }

  std::string text() {
    std::lock_guard lock(mutex);
    std::string out;
    out += "# HELP flipless_http_requests_total HTTP requests by handler and status code.\n# TYPE flipless_http_requests_total counter\n";
    for (const auto& [key, n] : requests) {
      out += fmt::format("flipless_http_requests_total{{handler=\"{}\",code=\"{}\"}} {}\n", key.first, key.second, n);
    }
    out += "# HELP flipless_predict_duration_seconds Latency of /v1/predict requests.\n# TYPE flipless_predict_duration_seconds histogram\n";
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < kBuckets.size(); ++b) {
      cumulative += latency_buckets[b];
      out += fmt::format("flipless_predict_duration_seconds_bucket{{le=\"{}\"}} {}\n", kBuckets[b], cumulative);
    }
    out += fmt::format("flipless_predict_duration_seconds_bucket{{le=\"+Inf\"}} {}\n", latency_count);
    out += fmt::format("flipless_predict_duration_seconds_sum {:.6f}\nflipless_predict_duration_seconds_count {}\n", latency_sum, latency_count);
    out += "# HELP flipless_predictions_total Predictions by where the old logits came from.\n# TYPE flipless_predictions_total counter\n";
    for (std::size_t p = 0; p < paths.size(); ++p) {
      out += fmt::format("flipless_predictions_total{{path=\"{}\"}} {}\n", path_name(static_cast<PredictionPath>(p)), paths[p].load());
    }
    out += "# HELP flipless_model_batches_total Batches run through the model.\n# TYPE flipless_model_batches_total counter\n";
    out += fmt::format("flipless_model_batches_total {}\n", batches.load());
    out += "# HELP flipless_model_batch_inputs_total Inputs run through the model.\n# TYPE flipless_model_batch_inputs_total counter\n";
    out += fmt::format("flipless_model_batch_inputs_total {}\n", batch_inputs.load());
    return out;
  }
};

// Queues inputs from many requests and runs them through the model in batches.
class Batcher {
 public:
  Batcher(std::shared_ptr<const CompatiblePredictor> predictor, const ServerOptions& options, Metrics& metrics)
      : predictor_(std::move(predictor)), options_(options), metrics_(metrics), worker_([this] { loop(); }) {}
  ~Batcher() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_all();
    worker_.join();
  }

  std::future<std::vector<Prediction>> submit(std::vector<data::TextExample> inputs) {
    Job job{std::move(inputs), {}};
    auto future = job.promise.get_future();
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(job));
    }
    ready_.notify_one();
    return future;
  }

 private:
  struct Job {
    std::vector<data::TextExample> inputs;
    std::promise<std::vector<Prediction>> promise;
  };

  void loop() {
    for (;;) {
      std::vector<Job> jobs;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, nothing left
        // Wait a little for more inputs while the batch is not full.
        const auto deadline = Clock::now() + std::chrono::microseconds(options_.max_wait_us);
        auto queued = [&] {
          std::size_t n = 0;
          for (const auto& j : queue_) n += j.inputs.size();
          return n;
        };
        while (!stopping_ && queued() < options_.max_batch && ready_.wait_until(lock, deadline) != std::cv_status::timeout) {
        }
        std::size_t n = 0;
        while (!queue_.empty() && (jobs.empty() || n + queue_.front().inputs.size() <= options_.max_batch)) {
          n += queue_.front().inputs.size();
          jobs.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      run(jobs);
    }
  }

  void run(std::vector<Job>& jobs) {
    std::vector<data::TextExample> inputs;
    for (auto& j : jobs) inputs.insert(inputs.end(), j.inputs.begin(), j.inputs.end());
    try {
      std::vector<Prediction> all;
      // A request larger than max_batch runs in max_batch chunks.
      for (std::size_t start = 0; start < inputs.size(); start += options_.max_batch) {
        const auto count = std::min(options_.max_batch, inputs.size() - start);
        auto part = predictor_->predict(std::span<const data::TextExample>(inputs).subspan(start, count));
        metrics_.batches.fetch_add(1);
        metrics_.batch_inputs.fetch_add(count);
        for (auto& p : part) all.push_back(std::move(p));
      }
      std::size_t offset = 0;
      for (auto& j : jobs) {
        std::vector<Prediction> mine(std::make_move_iterator(all.begin() + static_cast<std::ptrdiff_t>(offset)),
                                     std::make_move_iterator(all.begin() + static_cast<std::ptrdiff_t>(offset + j.inputs.size())));
        offset += j.inputs.size();
        for (const auto& p : mine) metrics_.paths[static_cast<std::size_t>(p.path)].fetch_add(1);
        j.promise.set_value(std::move(mine));
      }
    } catch (...) {
      for (auto& j : jobs) j.promise.set_exception(std::current_exception());
    }
  }

  std::shared_ptr<const CompatiblePredictor> predictor_;
  const ServerOptions& options_;
  Metrics& metrics_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::thread worker_;
};

json error_body(std::string_view message) { return json{{"error", message}}; }

// cpp-httplib listens with a backlog of 5 (compiled into Debian's libcpp-httplib, so no macro
// changes it): a burst of clients overflows the accept queue whenever the accepting thread is
// not scheduled, and the kernel answers with SYN cookies and resets ("no response" at the
// client; seen in the tests as TcpExtListenOverflows). httplib keeps its socket private, so the
// listening socket on `port` is found among this process's descriptors and listen() is called
// again with the system's maximum (Linux takes a new backlog on a listening socket).
void raise_backlog(int port) {
  for (int fd = 0; fd < 4096; ++fd) {
    int accepting = 0;
    socklen_t length = sizeof accepting;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) != 0 || accepting == 0) continue;
    sockaddr_storage address{};
    socklen_t size = sizeof address;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) continue;
    int bound = -1;
    if (address.ss_family == AF_INET) bound = ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
    if (address.ss_family == AF_INET6) bound = ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
    if (bound == port) ::listen(fd, SOMAXCONN);
  }
}

}  // namespace

struct Server::Impl {
  std::shared_ptr<const CompatiblePredictor> predictor;
  ServerOptions options;
  Metrics metrics;
  std::unique_ptr<Batcher> batcher;
  httplib::Server http;
  bool bound = false;
  // run()'s progress, so stop() works whenever it comes (see stop()).
  std::atomic<bool> run_started{false}, run_finished{false}, stopping{false};
};

Server::Server(std::shared_ptr<const CompatiblePredictor> predictor, ServerOptions options) : impl_(std::make_unique<Impl>()) {
  options.validate();
  auto& m = *impl_;
  m.predictor = std::move(predictor);
  m.options = std::move(options);
  m.batcher = std::make_unique<Batcher>(m.predictor, m.options, m.metrics);
  const auto threads = m.options.threads;
  m.http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // httplib's default socket options set SO_REUSEPORT, which lets a second server bind the same
  // port and silently take a share of its connections. SO_REUSEADDR alone still allows a quick
  // restart over connections in TIME_WAIT, and a second listener is refused.
  m.http.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  // Bodies over the cap are refused by httplib with 413 before they are read in full.
  m.http.set_payload_max_length(m.options.max_body_bytes);
  auto reply = [&m](httplib::Response& res, const std::string& handler, int code, const json& body, Clock::time_point started) {
    res.status = code;
    res.set_content(body.dump(), "application/json");
    m.metrics.request(handler, code, std::chrono::duration<double>(Clock::now() - started).count());
  };
  m.http.Post("/v1/predict", [&m, reply](const httplib::Request& req, httplib::Response& res) {
    const auto started = Clock::now();
    std::vector<data::TextExample> inputs;
    try {
      inputs = parse_predict_request(req.body, m.options);
    } catch (const RequestTooLarge& e) {
      return reply(res, "/v1/predict", 413, error_body(e.what()), started);
    } catch (const Error& e) {
      return reply(res, "/v1/predict", 400, error_body(e.what()), started);
    }
    try {
      const auto predictions = m.batcher->submit(std::move(inputs)).get();
      json out = json::array();
      const auto& names = m.predictor->label_names();
      for (const auto& p : predictions) {
        out.push_back({{"label", names[static_cast<std::size_t>(p.label)]},
                       {"label_index", p.label},
                       {"probabilities", p.probabilities},
                       {"gate", p.gate},
                       {"path", path_name(p.path)},
                       {"distance", p.distance}});
      }
      reply(res, "/v1/predict", 200, json{{"predictions", std::move(out)}}, started);
    } catch (const InputError& e) {
      reply(res, "/v1/predict", 400, error_body(e.what()), started);
    } catch (const std::exception& e) {
      fmt::print(stderr, "flipless serve: /v1/predict failed: {}\n", e.what());
      reply(res, "/v1/predict", 500, error_body("internal error"), started);
    }
  });
  m.http.Get("/healthz", [&m, reply](const httplib::Request&, httplib::Response& res) {
    reply(res, "/healthz", 200,
          json{{"status", "ok"}, {"model", m.predictor->describe()}, {"cache_version", m.predictor->lookup_version()}}, Clock::now());
  });
  m.http.Get("/metrics", [&m](const httplib::Request&, httplib::Response& res) {
    m.metrics.request("/metrics", 200, 0);
    res.set_content(m.metrics.text(), "text/plain; version=0.0.4");
  });
  m.http.set_error_handler([&m](const httplib::Request& req, httplib::Response& res) {
    // Errors from httplib itself (404, 413 on an oversized body) come with no body; ours have
    // one and were counted by their handler.
    if (!res.body.empty()) return;
    res.set_content(error_body(res.status == 404 ? "no such endpoint (POST /v1/predict, GET /healthz, GET /metrics)" : res.status == 413 ? "request body too large" : fmt::format("HTTP {}", res.status)).dump(), "application/json");
    m.metrics.request(req.path == "/v1/predict" ? "/v1/predict" : "other", res.status, 0);
  });
}

Server::~Server() {
  stop();
  impl_->batcher.reset();
}

int Server::bind() {
  auto& m = *impl_;
  int port = m.options.port;
  if (port == 0) {
    port = m.http.bind_to_any_port(m.options.host);
  } else if (!m.http.bind_to_port(m.options.host, port)) {
    port = -1;
  }
  if (port < 0) throw IoError(fmt::format("serve: cannot listen on {}:{}", m.options.host, m.options.port));
  raise_backlog(port);
  m.bound = true;
  return port;
}

void Server::run() {
  if (!impl_->bound) bind();
  impl_->run_started = true;
  if (!impl_->stopping) impl_->http.listen_after_bind();
  impl_->run_finished = true;
}

void Server::stop() {
  auto& m = *impl_;
  m.stopping = true;
  // httplib's stop() does nothing until its listen loop has begun: a stop that comes between
  // run()'s start and that moment would be lost and the loop would run on. Wait for it.
  while (m.run_started && !m.run_finished && !m.http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  m.http.stop();
}

std::string Server::metrics_text() const { return impl_->metrics.text(); }

}  // namespace flipless::serve
