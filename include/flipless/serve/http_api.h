#pragma once
// The HTTP service behind `flipless serve` (cpp-httplib):
//
//   POST /v1/predict  {"inputs": ["a text", {"text": "a premise", "text_pair": "a hypothesis"}, ...]}
//                     -> 200 {"predictions": [{"label": "1", "label_index": 1, "probabilities": [...],
//                             "gate": 0.18, "path": "exact"|"near"|"miss"|"live_old", "distance": 0.0}, ...]}
//                     -> 400 {"error": "..."} malformed JSON or fields; 413 body, batch or text too large
//   GET  /healthz     -> 200 {"status": "ok", "model": "...", "cache_version": "..."}
//   GET  /metrics     -> Prometheus text: requests by handler and code, a latency histogram,
//                        predictions by look-up path, model batches and their inputs
//
// Requests are served by a pool of HTTP threads; their inputs are queued and batched into the
// model by one batcher thread (up to max_batch inputs, waiting at most max_wait_us to fill one).
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
  std::size_t threads = 8;              // HTTP worker threads
  std::size_t max_batch = 64;           // inputs per model call
  int max_wait_us = 2000;               // how long a batch waits for more inputs
  std::size_t max_body_bytes = 1 << 20; // larger bodies get 413
  std::size_t max_inputs = 256;         // inputs per request; more get 413
  std::size_t max_text_bytes = 20000;   // bytes per text; longer get 413
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
  // Serves until stop(); call after bind().
  void run();
  // Stops serving; run() returns. Safe from any thread.
  void stop();
  // The /metrics text.
  std::string metrics_text() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace flipless::serve
