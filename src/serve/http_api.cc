#include "flipless/serve/http_api.h"

#include <fmt/format.h>

#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <unordered_map>

#include "flipless/core/utf8.h"

namespace flipless::serve {
using nlohmann::json;
using Clock = std::chrono::steady_clock;

void ServerOptions::validate() const {
  if (port < 0 || port > 65535) throw ConfigError(fmt::format("port must be in [0, 65535], got {}", port));
  if (threads == 0) throw ConfigError("threads must be positive");
  if (max_batch == 0) throw ConfigError("max_batch must be positive");
  if (max_wait_us < 0) throw ConfigError("max_wait_us must not be negative");
  if (max_body_bytes == 0 || max_header_bytes == 0 || max_inputs == 0 || max_text_bytes == 0)
    throw ConfigError("size limits must be positive");
  if (max_connections == 0 || max_keepalive_requests == 0)
    throw ConfigError("max_connections and max_keepalive_requests must be positive");
  using Limit = std::pair<const char*, double>;
  for (const auto& [name, value] :
       {Limit{"idle_timeout_s", idle_timeout_s}, Limit{"request_timeout_s", request_timeout_s},
        Limit{"write_timeout_s", write_timeout_s}, Limit{"drain_timeout_s", drain_timeout_s}}) {
    if (!(value > 0 && value <= 86400))
      throw ConfigError(fmt::format("{} must be in (0, 86400] seconds, got {}", name, value));
  }
  for (const char c : auth_token) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      throw ConfigError("the auth token must be printable ASCII without spaces");
  }
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
  // nlohmann's parser takes a NUL byte for the end of input; raw NUL is never valid JSON (a
  // string holds it as \u0000), so "{...}\0garbage" must not parse as its first half.
  if (const auto nul = body.find('\0'); nul != std::string_view::npos) {
    throw InputError(fmt::format("request body: invalid JSON (a NUL byte at offset {})", nul));
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
  std::array<std::atomic<std::uint64_t>, kNumPredictionPaths> paths{};  // by PredictionPath
  std::atomic<std::uint64_t> batches{0}, batch_inputs{0};
  std::atomic<std::int64_t> in_flight{0};  // requests received and not yet answered

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
    out +=
        "# HELP flipless_http_requests_in_flight Requests received and not yet answered.\n# TYPE "
        "flipless_http_requests_in_flight gauge\n";
    out += fmt::format("flipless_http_requests_in_flight {}\n", in_flight.load());
    return out;
  }
};

// Queues inputs from many requests and runs them through the model in batches.
class Batcher {
 public:
  // Called on the batcher thread with the job's predictions, or with the exception that failed it.
  using Done = std::function<void(std::vector<Prediction>, std::exception_ptr)>;

  Batcher(std::shared_ptr<const CompatiblePredictor> predictor, const ServerOptions& options, Metrics& metrics)
      : predictor_(std::move(predictor)), options_(options), metrics_(metrics), worker_([this] { loop(); }) {}
  // Runs what is queued, then stops.
  ~Batcher() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_all();
    worker_.join();
  }

  void submit(std::vector<data::TextExample> inputs, Done done) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(Job{std::move(inputs), std::move(done)});
    }
    ready_.notify_one();
  }

 private:
  struct Job {
    std::vector<data::TextExample> inputs;
    Done done;
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

  // The predictions of `inputs`, in max_batch chunks.
  std::vector<Prediction> predict(const std::vector<data::TextExample>& inputs) {
    std::vector<Prediction> all;
    all.reserve(inputs.size());
    for (std::size_t start = 0; start < inputs.size(); start += options_.max_batch) {
      const auto count = std::min(options_.max_batch, inputs.size() - start);
      auto part = predictor_->predict(std::span<const data::TextExample>(inputs).subspan(start, count));
      metrics_.batches.fetch_add(1);
      metrics_.batch_inputs.fetch_add(count);
      for (auto& p : part) all.push_back(std::move(p));
    }
    return all;
  }

  void finish(Job& job, std::vector<Prediction> predictions) {
    for (const auto& p : predictions) metrics_.paths[static_cast<std::size_t>(p.path)].fetch_add(1);
    job.done(std::move(predictions), nullptr);
  }

  void run(std::vector<Job>& jobs) {
    if (jobs.size() > 1) {
      std::vector<data::TextExample> inputs;
      for (auto& j : jobs) inputs.insert(inputs.end(), j.inputs.begin(), j.inputs.end());
      try {
        auto all = predict(inputs);
        std::size_t offset = 0;
        for (auto& j : jobs) {
          std::vector<Prediction> mine(
              std::make_move_iterator(all.begin() + static_cast<std::ptrdiff_t>(offset)),
              std::make_move_iterator(all.begin() + static_cast<std::ptrdiff_t>(offset + j.inputs.size())));
          offset += j.inputs.size();
          finish(j, std::move(mine));
        }
        return;
      } catch (...) {
        // One request's input failed the shared batch: rerun each request alone below, so the
        // failure reaches only the request it belongs to.
      }
    }
    for (auto& j : jobs) {
      std::vector<Prediction> mine;
      try {
        mine = predict(j.inputs);
      } catch (...) {
        j.done({}, std::current_exception());
        continue;
      }
      finish(j, std::move(mine));
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

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

std::string error_body(std::string_view message) { return json{{"error", message}}.dump(); }

std::chrono::milliseconds millis(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(seconds * 1000)));
}

// Equal strings, in time independent of where they differ (the auth token).
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

constexpr std::string_view kNoSuchEndpoint = "no such endpoint (POST /v1/predict, GET /healthz, GET /metrics)";

class Session;

// What every connection shares: options, the model's batcher, metrics, the open connections.
struct Shared {
  std::shared_ptr<const CompatiblePredictor> predictor;
  ServerOptions options;
  Metrics metrics;
  std::atomic<bool> stopping{false};
  std::mutex sessions_mutex;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
  std::unique_ptr<Batcher> batcher;  // set last, reset first (its callbacks reach sessions)
};

// One connection: reads requests one after another (pipelined ones in order), answers each,
// and closes on an error, a timeout, the client's wish, the keep-alive limit or a stop. All of
// its handlers run on its own strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Shared& shared) : stream_(std::move(socket)), shared_(shared) {}
  ~Session() {
    if (in_flight_) --shared_.metrics.in_flight;
    std::lock_guard lock(shared_.sessions_mutex);
    shared_.sessions.erase(this);
  }

  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->next_request(); });
  }

  // Over max_connections: one 503, then close.
  void refuse() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      self->handler_ = "other";
      self->started_ = Clock::now();
      self->respond(http::status::service_unavailable, error_body("too many connections; try again later"), true);
    });
  }

  // The server is stopping: a keep-alive connection between requests closes now; one with a
  // request in flight, or whose request has (partly) arrived, closes after answering it; a new
  // one that has sent nothing yet gets a second for its first request (its client may be
  // sending it right now, and would see a close, not an answer).
  void on_stop() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (self->busy_ || self->request_arrived()) return;
      if (self->served_ > 0) return self->close();
      self->stream_.expires_after(millis(std::min(1.0, self->options().idle_timeout_s)));
    });
  }

  // Closes the socket, ending whatever it waits for.
  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

 private:
  const ServerOptions& options() const { return shared_.options; }

  // Bytes of a request are here: buffered, or waiting in the socket.
  bool request_arrived() {
    beast::error_code ec;
    return buffer_.size() > 0 || stream_.socket().available(ec) > 0;
  }

  void next_request() {
    busy_ = false;
    if (shared_.stopping && served_ > 0 && !request_arrived()) return close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(options().max_header_bytes, UINT32_MAX)));
    // No body limit while the head is read (the parser would refuse a large Content-Length
    // before the head is complete, without its path); on_header() sets it.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    handler_ = "other";
    if (buffer_.size() > 0) return read_header();  // a pipelined request is already here
    // Idle between requests: wait for the next one's first byte at most idle_timeout_s.
    stream_.expires_after(
        millis(shared_.stopping ? std::min(1.0, options().idle_timeout_s) : options().idle_timeout_s));
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->buffer_.commit(n);
      if (ec || n == 0) return self->close();
      self->read_header();
    });
  }

  void read_header() {
    started_ = Clock::now();
    // The whole request (head and body) must arrive within request_timeout_s: a client that
    // trickles bytes cannot hold the connection longer.
    stream_.expires_after(millis(options().request_timeout_s));
    http::async_read_header(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->read_failed(ec);
      self->on_header();
    });
  }

  void read_failed(beast::error_code ec) {
    if (ec == http::error::header_limit) {
      return respond(http::status::request_header_fields_too_large,
                     error_body(fmt::format("request head over {} bytes", options().max_header_bytes)), true);
    }
    if (ec == http::error::body_limit) {  // a chunked body past the limit, as it arrives
      return respond(http::status::payload_too_large,
                     error_body(fmt::format("request body: over {} bytes, the limit", options().max_body_bytes)), true);
    }
    // A timeout has closed the socket already (request_timeout_s: a client too slow to send its
    // request); a client that went away or a stop needs no answer either.
    if (ec == beast::error::timeout || ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset || ec == net::error::eof ||
        !parser_ || !parser_->got_some()) {
      return close();
    }
    // Malformed HTTP: the parser's reason, then close (the stream's framing is lost).
    respond(http::status::bad_request, error_body(fmt::format("malformed HTTP request: {}", ec.message())), true);
  }

  // An answer decided from the request head alone (404, 405, 401): it waits until the body is
  // read, so the connection stays usable for the requests behind it.
  struct Refusal {
    http::status status;
    std::string body;
    std::vector<std::pair<http::field, std::string>> extra;
  };

  void on_header() {
    busy_ = true;  // from here on the request is answered, even during a stop
    ++shared_.metrics.in_flight;
    in_flight_ = true;
    refusal_.reset();
    const auto& req = parser_->get();
    const std::string_view target(req.target().data(), req.target().size());
    const std::string_view path = target.substr(0, target.find('?'));
    const bool known = path == "/v1/predict" || path == "/healthz" || path == "/metrics";
    handler_ = known ? std::string(path) : "other";
    const http::verb want = path == "/v1/predict" ? http::verb::post : http::verb::get;
    const char* allowed = want == http::verb::post ? "POST" : "GET";
    if (!known) {
      refusal_ = Refusal{http::status::not_found, error_body(kNoSuchEndpoint), {}};
    } else if (req.method() != want) {
      refusal_ = Refusal{http::status::method_not_allowed,
                         error_body(fmt::format("{} takes {} only", path, allowed)),
                         {{http::field::allow, allowed}}};
    } else if (!options().auth_token.empty() && path != "/healthz") {
      const auto given = req[http::field::authorization];
      const std::string_view value(given.data(), given.size());
      constexpr std::string_view kBearer = "Bearer ";
      if (value.size() <= kBearer.size() ||
          !beast::iequals(beast::string_view(value.data(), kBearer.size()), "Bearer ") ||
          !same_secret(value.substr(kBearer.size()), options().auth_token)) {
        refusal_ = Refusal{http::status::unauthorized,
                           error_body("missing or wrong bearer token (Authorization: Bearer <token>)"),
                           {{http::field::www_authenticate, "Bearer"}}};
      }
    }
    if (const auto length = parser_->content_length(); length && *length > options().max_body_bytes) {
      return respond(
          http::status::payload_too_large,
          error_body(fmt::format("request body: {} bytes, the limit is {}", *length, options().max_body_bytes)), true);
    }
    parser_->body_limit(options().max_body_bytes);  // counted while a chunked body is read
    if (parser_->is_done()) return handle();
    const auto expect = req[http::field::expect];
    if (beast::iequals(expect, "100-continue")) {
      // The client waits for this before sending its body; a refused one is not wanted.
      if (refusal_) return respond(refusal_->status, std::move(refusal_->body), true, std::move(refusal_->extra));
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, req.version());
      stream_.expires_after(millis(options().write_timeout_s));
      return http::async_write(stream_, *cont, [self = shared_from_this(), cont](beast::error_code ec, std::size_t) {
        if (ec) return self->close();
        self->read_body();
      });
    }
    read_body();
  }

  void read_body() {
    stream_.expires_after(millis(
        std::max(0.001, options().request_timeout_s - std::chrono::duration<double>(Clock::now() - started_).count())));
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->read_failed(ec);
      self->handle();
    });
  }

  void handle() {
    stream_.expires_never();  // the model's time is not the client's
    auto& s = shared_;
    if (refusal_) return respond(refusal_->status, std::move(refusal_->body), false, std::move(refusal_->extra));
    if (handler_ == "/healthz") {
      return respond(http::status::ok,
                     json{{"status", "ok"},
                          {"model", s.predictor->model_name()},
                          {"labels", s.predictor->label_names()},
                          {"cache_version", s.predictor->lookup_version()}}
                         .dump(),
                     false);
    }
    if (handler_ == "/metrics") {
      s.metrics.request("/metrics", 200, 0);
      counted_ = true;
      return respond(http::status::ok, s.metrics.text(), false, {}, "text/plain; version=0.0.4");
    }
    std::vector<data::TextExample> inputs;
    try {
      inputs = parse_predict_request(parser_->get().body(), s.options);
    } catch (const RequestTooLarge& e) {
      return respond(http::status::payload_too_large, error_body(e.what()), false);
    } catch (const Error& e) {
      return respond(http::status::bad_request, error_body(e.what()), false);
    }
    parser_->get().body().clear();
    s.batcher->submit(std::move(inputs), [self = shared_from_this()](std::vector<Prediction> predictions,
                                                                     std::exception_ptr failure) {
      net::post(self->stream_.get_executor(), [self, predictions = std::move(predictions), failure]() mutable {
        self->answer(std::move(predictions), failure);
      });
    });
  }

  void answer(std::vector<Prediction> predictions, std::exception_ptr failure) {
    try {
      if (failure) std::rethrow_exception(failure);
      json out = json::array();
      const auto& names = shared_.predictor->label_names();
      for (const auto& p : predictions) {
        for (const float v : p.probabilities) {
          if (!std::isfinite(v)) throw std::runtime_error("a prediction is not a finite number");
        }
        out.push_back({{"label", names[static_cast<std::size_t>(p.label)]},
                       {"label_index", p.label},
                       {"probabilities", p.probabilities},
                       {"gate", p.gate},
                       {"path", path_name(p.path)},
                       {"distance", p.distance}});
      }
      respond(http::status::ok, json{{"predictions", std::move(out)}}.dump(), false);
    } catch (const InputError& e) {
      respond(http::status::bad_request, error_body(e.what()), false);
    } catch (const std::exception& e) {
      fmt::print(stderr, "flipless serve: /v1/predict failed: {}\n", e.what());
      respond(http::status::internal_server_error, error_body("internal error"), false);
    }
  }

  // Writes one response; closes afterwards when `close_after` (the rest of the request was not
  // read, or the stream is broken), when the client asked to, at the keep-alive limit, or when
  // the server is stopping. Counted in the metrics under the request's handler.
  void respond(http::status status, std::string body, bool close_after,
               std::vector<std::pair<http::field, std::string>> extra = {},
               std::string_view content_type = "application/json") {
    busy_ = true;
    ++served_;
    if (in_flight_) --shared_.metrics.in_flight;
    in_flight_ = false;
    const unsigned version = parser_ && parser_->is_header_done() ? parser_->get().version() : 11;
    const bool keep_alive = !close_after && parser_ && parser_->is_header_done() && parser_->get().keep_alive() &&
                            !shared_.stopping && served_ < options().max_keepalive_requests;
    if (!counted_)
      shared_.metrics.request(handler_, static_cast<int>(status),
                              std::chrono::duration<double>(Clock::now() - started_).count());
    counted_ = false;
    auto res = std::make_shared<Response>(status, version);
    res->set(http::field::server, "flipless");
    res->set(http::field::content_type, std::string(content_type));
    for (auto& [field, value] : extra) res->set(field, value);
    res->body() = std::move(body);
    res->keep_alive(keep_alive);
    res->prepare_payload();
    stream_.expires_after(millis(options().write_timeout_s));
    http::async_write(stream_, *res, [self = shared_from_this(), res, keep_alive](beast::error_code ec, std::size_t) {
      if (ec) return self->close();
      if (keep_alive) return self->next_request();
      self->linger();
    });
  }

  // Closes after a response the client may still be sending a body for: half-close, then read
  // and drop what comes (at most 1 MiB for 2 s) so the client sees the response, not a reset.
  void linger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return close();
    stream_.expires_after(std::chrono::seconds(2));
    drain();
  }
  void drain() {
    stream_.async_read_some(net::buffer(scratch_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->drained_ += n;
      if (ec || self->drained_ > (1u << 20)) return self->close();
      self->drain();
    });
  }

  beast::tcp_stream stream_;
  Shared& shared_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string handler_ = "other";
  Clock::time_point started_ = Clock::now();
  std::size_t served_ = 0;
  bool busy_ = false;       // a request is being answered
  bool counted_ = false;    // the handler counted its own request
  bool in_flight_ = false;  // counted in the in-flight gauge
  std::optional<Refusal> refusal_;
  std::array<char, 16384> scratch_{};
  std::size_t drained_ = 0;
};

}  // namespace

struct Server::Impl {
  Shared shared;
  net::io_context io;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  tcp::acceptor acceptor{io};
  std::optional<net::steady_timer> drain_timer;
  net::steady_timer accept_timer{io};
  bool bound = false;

  void accept() {
    acceptor.async_accept(net::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
      // A connection accepted just before the drain began (its handler queued behind it) is
      // served like the drain's own: its client was told it is connected and may have sent its
      // request, which a dropped socket would leave unanswered.
      const bool accepted = !ec && socket.is_open();
      if (!accepted && (ec == net::error::operation_aborted || !acceptor.is_open())) return;
      if (ec) {
        // Out of file descriptors or the like: try again shortly rather than spin.
        accept_timer.expires_after(std::chrono::milliseconds(50));
        return accept_timer.async_wait([this](beast::error_code) {
          if (!shared.stopping) accept();
        });
      }
      {
        auto session = std::make_shared<Session>(std::move(socket), shared);
        bool refused = false, stopping = false;
        {
          std::lock_guard lock(shared.sessions_mutex);
          stopping = shared.stopping;
          refused = shared.sessions.size() >= shared.options.max_connections;
          shared.sessions.emplace(session.get(), session);
        }
        if (refused) {
          session->refuse();
        } else {
          session->start();
          if (stopping) session->on_stop();  // the drain's rule: answer what has arrived, then close
        }
      }
      if (acceptor.is_open()) accept();
    });
  }

  // On the io_context: stop accepting, close idle connections, let busy ones finish, and after
  // drain_timeout_s close whatever is left.
  void begin_drain() {
    // Connections already in the listen queue have been told they are connected and may have
    // sent their requests: accept them too rather than reset them with the socket.
    beast::error_code ec;
    acceptor.non_blocking(true, ec);
    for (std::size_t n = 0; !ec && n < shared.options.max_connections; ++n) {
      tcp::socket socket(net::make_strand(io));
      acceptor.accept(socket, ec);
      if (ec) break;
      auto session = std::make_shared<Session>(std::move(socket), shared);
      {
        std::lock_guard lock(shared.sessions_mutex);
        shared.sessions.emplace(session.get(), session);
      }
      session->start();
    }
    acceptor.close(ec);
    accept_timer.cancel();
    for (const auto& s : live_sessions()) s->on_stop();
    const auto deadline = Clock::now() + millis(shared.options.drain_timeout_s);
    drain_timer.emplace(io);
    wait_drained(deadline);
  }

  void wait_drained(Clock::time_point deadline) {
    std::size_t open = 0;
    {
      std::lock_guard lock(shared.sessions_mutex);
      open = shared.sessions.size();
    }
    if (open == 0 || Clock::now() >= deadline) {
      // Past the deadline: stop the loops; what is left is closed with the io_context.
      work.reset();
      if (open != 0) io.stop();
      return;
    }
    drain_timer->expires_after(std::chrono::milliseconds(10));
    drain_timer->async_wait([this, deadline](beast::error_code) { wait_drained(deadline); });
  }

  std::vector<std::shared_ptr<Session>> live_sessions() {
    std::vector<std::shared_ptr<Session>> out;
    std::lock_guard lock(shared.sessions_mutex);
    for (const auto& [raw, weak] : shared.sessions) {
      if (auto s = weak.lock()) out.push_back(std::move(s));
    }
    return out;
  }
};

Server::Server(std::shared_ptr<const CompatiblePredictor> predictor, ServerOptions options)
    : impl_(std::make_unique<Impl>()) {
  options.validate();
  auto& s = impl_->shared;
  s.predictor = std::move(predictor);
  s.options = std::move(options);
  s.batcher = std::make_unique<Batcher>(s.predictor, s.options, s.metrics);
  impl_->work.emplace(impl_->io.get_executor());
}

Server::~Server() {
  stop();
  // The batcher finishes its queue; its answers are posted to an io_context that no longer runs
  // and are dropped with it.
  impl_->shared.batcher.reset();
}

int Server::bind() {
  auto& m = *impl_;
  const auto& o = m.shared.options;
  beast::error_code ec;
  tcp::endpoint endpoint;
  const auto address = net::ip::make_address(o.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, static_cast<unsigned short>(o.port));
  } else {
    tcp::resolver resolver(m.io);
    const auto found = resolver.resolve(o.host, std::to_string(o.port), ec);
    if (ec || found.empty()) throw IoError(fmt::format("serve: cannot listen on {}:{} (unknown host)", o.host, o.port));
    endpoint = found.begin()->endpoint();
  }
  // SO_REUSEADDR allows a quick restart over connections in TIME_WAIT; without SO_REUSEPORT a
  // second server on the same port is refused rather than taking a share of the connections.
  m.acceptor.open(endpoint.protocol(), ec);
  if (!ec) m.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) m.acceptor.bind(endpoint, ec);
  if (!ec) m.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    beast::error_code ignored;
    m.acceptor.close(ignored);
    throw IoError(fmt::format("serve: cannot listen on {}:{}", o.host, o.port));
  }
  m.bound = true;
  return m.acceptor.local_endpoint().port();
}

void Server::run() {
  auto& m = *impl_;
  if (!m.bound) bind();
  if (!m.shared.stopping) m.accept();
  std::vector<std::thread> loops;
  for (std::size_t i = 1; i < m.shared.options.threads; ++i) loops.emplace_back([&m] { m.io.run(); });
  m.io.run();
  for (auto& t : loops) t.join();
}

void Server::stop() {
  auto& m = *impl_;
  if (m.shared.stopping.exchange(true)) return;
  net::post(m.io, [&m] { m.begin_drain(); });
}

std::string Server::metrics_text() const { return impl_->shared.metrics.text(); }

}  // namespace flipless::serve
