// flipless serve MODEL_DIR: Gated Fusion behind HTTP, old logits from a cache.
#include <fmt/format.h>
#include <signal.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <memory>
#include <thread>

#include "commands.h"
#include "flipless/cache/logit_cache.h"
#include "flipless/core/error.h"
#include "flipless/serve/http_api.h"
#include "flipless/serve/predictor.h"
#include "flipless/train/device.h"
#include "flipless/train/saved_model.h"

namespace flipless::cli {
namespace {

struct ServeArgs {
  std::string model_dir;
  std::string cache;
  std::string version;
  std::string old_model;
  std::string record;
  bool exact_only = false;
  double max_distance = -1;
  std::string fallback = "auto";
  std::string index = "auto";
  std::size_t ef_search = 256;
  int torch_threads = 0;
  std::string device = "cpu";
  std::string precision = "fp32";
  std::string auth_token_file;
  bool full_check = false;
  serve::ServerOptions server;
};

// The token in `path`: its first line, without surrounding whitespace. Throws ConfigError.
std::string read_token(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError(fmt::format("{}: cannot read the auth token file", path));
  std::string token;
  std::getline(in, token);
  const auto first = token.find_first_not_of(" \t\r");
  const auto last = token.find_last_not_of(" \t\r");
  token = first == std::string::npos ? "" : token.substr(first, last - first + 1);
  if (token.size() < 16)
    throw ConfigError(fmt::format("{}:1: the auth token must be at least 16 characters, found {}", path, token.size()));
  return token;
}

// SIGINT/SIGTERM write a byte to a pipe (all a signal handler may safely do); a watcher thread
// reads it and stops the server, so a stop is graceful whichever thread the signal lands on.
int stop_pipe[2] = {-1, -1};
extern "C" void on_stop_signal(int) {
  const char byte = 's';
  [[maybe_unused]] const auto n = write(stop_pipe[1], &byte, 1);
}

int run_serve(ServeArgs a) {
  if (!a.auth_token_file.empty()) a.server.auth_token = read_token(a.auth_token_file);
  a.server.validate();
  train::set_threads(a.torch_threads);  // torch and OpenBLAS pools; 0: one per core
  std::shared_ptr<cache::OldLogitCache> c;
  if (!a.cache.empty()) {
    cache::CacheOptions co;
    co.index.kind = a.index;
    co.read_only = a.record.empty();
    co.index.hnsw.threads = std::max(1u, std::thread::hardware_concurrency());
    co.index.hnsw.ef_search = a.ef_search;
    co.check = a.full_check ? cache::IntegrityCheck::kFull : cache::IntegrityCheck::kQuick;
    c = cache::OldLogitCache::open(a.cache, co);
  }
  std::shared_ptr<const models::Classifier> old;
  const auto device = train::parse_device(a.device);
  const auto precision = train::parse_precision(a.precision);
  if (!a.old_model.empty()) {
    serve::check_encoder_limits(a.old_model);
    old = train::load_classifier(a.old_model, device, precision);
  }
  serve::PredictorOptions po;
  po.device = a.device;
  po.precision = a.precision;
  po.lookup.version = a.version;
  po.lookup.nearest = !a.exact_only;
  if (a.max_distance >= 0) po.lookup.max_distance = static_cast<float>(a.max_distance);
  po.record_version = a.record;
  po.fallback = a.fallback;
  if (a.max_distance >= 0 && (a.fallback == "emulator" || a.fallback == "new")) {
    throw ConfigError(fmt::format("--max-distance limits neighbours; --fallback {} uses none", a.fallback));
  }
  if (a.exact_only && a.fallback == "neighbour") throw ConfigError("--exact-only and --fallback neighbour contradict each other");
  if (a.max_distance >= 0 && a.fallback == "auto") po.fallback = "neighbour";  // a distance limit asks for neighbours
  std::shared_ptr<const serve::CompatiblePredictor> predictor = serve::CompatiblePredictor::load(a.model_dir, c, old, po);
  predictor->warm_up();
  serve::Server server(predictor, a.server);
  const int port = server.bind();
  fmt::print(
      "flipless serve: {}\nlistening on http://{}:{} (POST /v1/predict, GET /healthz, GET /metrics){}; Ctrl-C stops\n",
      predictor->describe(), a.server.host, port, a.server.auth_token.empty() ? "" : ", bearer token required");
  std::fflush(stdout);
  if (pipe(stop_pipe) != 0) throw IoError("serve: cannot create the stop pipe");
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  std::thread waiter([&] {
    char byte = 0;
    while (read(stop_pipe[0], &byte, 1) < 0 && errno == EINTR) {
    }
    server.stop();
  });
  server.run();
  on_stop_signal(0);  // run() also returns when listening fails: wake the watcher
  waiter.join();
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  close(stop_pipe[0]);
  close(stop_pipe[1]);
  fmt::print("flipless serve: stopped\n");
  return 0;
}

}  // namespace

void add_serve_command(CLI::App& app, Runner& run) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a Gated Fusion model over HTTP with old logits from a cache (no old model needed)");
  cmd->add_option("model_dir", a->model_dir, "A Gated Fusion model folder (flipless train --method gated_fusion, or an experiment's model)")->required();
  cmd->add_option("--cache", a->cache, "Old-logit cache (flipless cache add); without one every input is served by the new model alone");
  cmd->add_option("--cache-version", a->version, "Legacy version to read (default: the latest)");
  cmd->add_option("--old-model", a->old_model, "A live old model for cache misses (instead of the new model alone)");
  cmd->add_option("--record", a->record, "Record served predictions into the cache as this new legacy version");
  cmd->add_flag("--exact-only", a->exact_only, "No nearest-neighbour look-ups: inputs not cached exactly are misses");
  cmd->add_option("--fallback", a->fallback,
                  "For inputs not cached exactly: emulator (the folder's old_emulator.safetensors, flipless cache fit-emulator), "
                  "neighbour (the nearest cached input, as the paper), new (the new model alone), auto (emulator when the folder has one, "
                  "else neighbour)")
      ->capture_default_str();
  cmd->add_option("--max-distance", a->max_distance, "Neighbours farther than this (Euclidean) are misses (default: no limit)");
  cmd->add_option("--index", a->index, "Nearest-neighbour index: auto (exact below 20k entries, else HNSW), exact, hnsw")->capture_default_str();
  cmd->add_option("--ef-search", a->ef_search, "HNSW candidate list per look-up: higher finds the true neighbour more often, slower")
      ->capture_default_str();
  cmd->add_option("--host", a->server.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", a->server.port, "Port (0: any free port)")->capture_default_str();
  cmd->add_option("--threads", a->server.threads, "HTTP event loops (the model runs on its own thread)")
      ->capture_default_str();
  cmd->add_option("--torch-threads", a->torch_threads, "Threads for the model (0: all cores)")->capture_default_str();
  cmd->add_option("--device", a->device, "Where the models run: cpu, cuda, cuda:N, auto")->capture_default_str();
  cmd->add_option("--precision", a->precision, "fp32, bf16, or fp16 (GPU only)")->capture_default_str();
  cmd->add_option("--max-batch", a->server.max_batch, "Inputs per model call")->capture_default_str();
  cmd->add_option("--max-wait-us", a->server.max_wait_us, "How long a batch waits to fill, in microseconds")->capture_default_str();
  cmd->add_option("--max-body-bytes", a->server.max_body_bytes, "Largest request body")->capture_default_str();
  cmd->add_option("--max-inputs", a->server.max_inputs, "Most inputs per request")->capture_default_str();
  cmd->add_option("--max-text-bytes", a->server.max_text_bytes, "Longest text, in bytes")->capture_default_str();
  cmd->add_option("--max-connections", a->server.max_connections, "Open connections; more are answered 503")
      ->capture_default_str();
  cmd->add_option("--idle-timeout", a->server.idle_timeout_s, "Seconds a keep-alive connection may sit idle")
      ->capture_default_str();
  cmd->add_option("--request-timeout", a->server.request_timeout_s, "Seconds a client has to send a whole request")
      ->capture_default_str();
  cmd->add_option("--drain-timeout", a->server.drain_timeout_s,
                  "On SIGTERM/SIGINT: seconds to finish requests already received")
      ->capture_default_str();
  cmd->add_option(
      "--auth-token-file", a->auth_token_file,
      "File whose first line is a bearer token every request but GET /healthz must send (Authorization: Bearer ...)");
  cmd->add_flag("--full-check", a->full_check,
                "Check the cache with SQLite's full integrity_check at start (default: quick_check)");
  cmd->callback([&run, a] { run = [a] { return run_serve(*a); }; });
}

}  // namespace flipless::cli
