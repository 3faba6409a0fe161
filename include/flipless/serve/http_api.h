#pragma once
// The HTTP service behind `flipless serve` (Boost.Beast on Asio: event-driven, so a slow or
// idle client holds a connection slot, never a thread):
//
//   POST /v1/predict  {"inputs": ["a text", {"text": "a premise", "text_pair": "a hypothesis"}, ...]}
//                     -> 200 {"predictions": [{"label": "1", "label_index": 1, "probabilities": [...],
//                             "gate": 0.18, "path": "exact"|"near"|"miss"|"live_old", "distance": 0.0}, ...]}
//                     -> 400 {"error": "..."} malformed JSON or fields; 413 body, batch or text too large
//   GET  /healthz     -> 200 {"status": "ok", "model": "<folder name>", "labels": [...], "cache_version": "..."}
//                        (no file-system paths; never needs the auth token, for load balancers)
//   GET  /metrics     -> Prometheus text: requests by handler and code, a latency histogram,
//                        predictions by look-up path, model batches and their inputs
//   401 without the bearer token (when one is set), 404 unknown path, 405 wrong method, 431 a
//   request head over max_header_bytes, 503 over max_connections. A request not received whole
//   within request_timeout_s, or a connection idle for idle_timeout_s, is closed.
//
// HTTP/1.1 keep-alive and pipelining: requests on one connection are answered in order. Bodies
// (chunked too) are counted while they are read and refused with 413 past max_body_bytes.
// Connections are served by `threads` event loops; the inputs of all requests are queued and
// batched into the model by one batcher thread (up to max_batch inputs, waiting at most
// max_wait_us to fill one). A batch that fails is rerun request by request, so one client's bad
// input fails only its own request. stop() drains: no new connections, requests already
// received are answered (within drain_timeout_s), then connections close.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "flipless/core/error.h"
#include "flipless/data/example.h"
#include "flipless/serve/predictor.h"

namespace flipless::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                      // 0: any free port (bind() returns it)
  std::size_t threads = 2;              // I/O event loops (the model runs on its own thread)
  std::size_t max_batch = 64;           // inputs per model call
  int max_wait_us = 2000;               // how long a batch waits for more inputs
  std::size_t max_body_bytes = 1 << 20;  // larger bodies get 413, refused while reading
  std::size_t max_header_bytes = 16384;  // larger request heads get 431
  std::size_t max_inputs = 256;         // inputs per request; more get 413
  std::size_t max_text_bytes = 20000;   // bytes per text; longer get 413
  std::size_t max_connections = 512;    // open connections; more are answered 503 and closed
  std::size_t max_keepalive_requests = 1000;  // requests per connection, then it is closed
  double idle_timeout_s = 5;                  // a keep-alive connection idle this long is closed
  double request_timeout_s = 10;              // a request (head and body) must arrive within this
  double write_timeout_s = 10;                // a client must take a response within this
  double drain_timeout_s = 10;                // stop(): how long requests already received may take
  std::string auth_token;                     // non-empty: every request but /healthz needs
                                              // "Authorization: Bearer <auth_token>" (else 401)
  void validate() const;                // throws ConfigError
};

// A request body's inputs. Throws InputError ("inputs[3].text: expected a string") for
// malformed requests and RequestTooLarge for ones over the limits.
class RequestTooLarge : public InputError {
 public:
  using InputError::InputError;
};
std::vector<data::TextExample> parse_predict_request(std::string_view body, const ServerOptions& options);

class Server {
 public:
  Server(std::shared_ptr<const CompatiblePredictor> predictor, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds host:port; returns the port (the chosen one with port 0). Throws IoError.
  int bind();
  // Serves until stop(); binds first when bind() was not called.
  void run();
  // Stops serving gracefully: no new connections, requests already received are answered
  // (for at most drain_timeout_s), then run() returns. Safe from any thread, before run() too.
  void stop();
  // The /metrics text.
  std::string metrics_text() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flipless::serve
