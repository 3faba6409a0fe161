// flipless cache add|info|fit-emulator: fill an old-logit cache from prediction files (or a new
// model's embeddings), show what it holds, and fit the old-model emulator that serving uses for
// inputs the cache does not hold.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "commands.h"
#include "flipless/cache/bulk_load.h"
#include "flipless/cache/logit_cache.h"
#include "flipless/cache/old_emulator.h"
#include "flipless/core/error.h"
#include "flipless/data/predictions.h"
#include "flipless/data/registry.h"
#include "progress.h"

#ifdef FLIPLESS_WITH_TORCH
#include "flipless/serve/predictor.h"
#include "flipless/train/saved_model.h"
#endif

namespace flipless::cli {
namespace {

struct CacheAddArgs {
  std::string cache;
  std::string data;
  std::string old_predictions;
  std::string embeddings;
  std::string model;
  std::string version = "v1";
  std::string embedding_space;
  std::size_t batch = 2000;
  bool full_check = false;
  data::ColumnSpec columns;
};

cache::IntegrityCheck check_of(bool full) {
  return full ? cache::IntegrityCheck::kFull : cache::IntegrityCheck::kQuick;
}

int run_cache_add(const CacheAddArgs& a) {
  if (a.embeddings.empty() == a.model.empty()) throw ConfigError("cache add: give exactly one of --embeddings FILE or --model DIR");
  // An existing file is checked before the (possibly long) work: another SQLite database or a
  // damaged cache is refused now, and nothing is written to it.
  if (std::filesystem::exists(a.cache)) {
    cache::CacheOptions check;
    check.read_only = true;
    check.check = check_of(a.full_check);
    cache::OldLogitCache::open(a.cache, check);
  }
  const auto dataset = data::load_dataset(a.data, a.columns);
  data::PredictionReadOptions ro;
  ro.keep_scores = true;
  const auto old = data::read_predictions_file(a.old_predictions, ro);
  std::vector<cache::CacheEntry> entries;
  std::string space = a.embedding_space;
  if (!a.embeddings.empty()) {
    data::PredictionReadOptions eo;
    eo.keep_embeddings = true;
    const auto emb = data::read_predictions_file(a.embeddings, eo);
    entries = cache::entries_from_predictions(dataset, old, &emb);
  } else {
#ifdef FLIPLESS_WITH_TORCH
    entries = cache::entries_from_predictions(dataset, old, nullptr);
    const auto model = train::load_classifier(a.model);
    ProgressBar bar("embedding", static_cast<std::int64_t>(dataset.size()), "ex");
    for (std::size_t start = 0; start < dataset.size(); start += 256) {
      const auto n = std::min<std::size_t>(256, dataset.size() - start);
      const auto out = model->predict(std::span(dataset.examples).subspan(start, n));
      for (std::size_t i = 0; i < n; ++i) {
        entries[start + i].embedding.assign(out.embeddings.begin() + static_cast<std::ptrdiff_t>(i * out.dim),
                                            out.embeddings.begin() + static_cast<std::ptrdiff_t>((i + 1) * out.dim));
      }
      bar.update(static_cast<std::int64_t>(start + n));
    }
    bar.finish();
    if (space.empty()) space = serve::embedding_space_of(a.model);
#else
    throw ConfigError("cache add --model needs a build with libtorch; pass --embeddings FILE instead");
#endif
  }
  cache::CacheOptions co;
  co.num_labels = old.num_scores;
  co.dim = entries.empty() ? 0 : entries.front().embedding.size();
  co.check = check_of(a.full_check);
  auto c = cache::OldLogitCache::open(a.cache, co);
  ProgressBar bar("caching", static_cast<std::int64_t>(entries.size()), "entries");
  for (std::size_t start = 0; start < entries.size(); start += a.batch) {
    const auto n = std::min(a.batch, entries.size() - start);
    c->put(a.version, std::span<const cache::CacheEntry>(entries).subspan(start, n), space);
    bar.update(static_cast<std::int64_t>(start + n));
  }
  bar.finish();
  fmt::print("{}: {} entries of {} into version '{}' ({} entries now)\n", a.cache, entries.size(), dataset.name, a.version, c->size(a.version));
  return 0;
}

int run_cache_info(const std::string& path, bool full_check) {
  cache::CacheOptions co;
  co.read_only = true;
  co.check = check_of(full_check);
  const auto c = cache::OldLogitCache::open(path, co);
  fmt::print("{}: old-logit cache, {} labels, {}-d embeddings; integrity: ok (SQLite {})\n", path, c->num_labels(),
             c->dim(), full_check ? "integrity_check" : "quick_check");
  const auto versions = c->versions();
  if (versions.empty()) fmt::print("  no versions yet\n");
  for (std::size_t i = 0; i < versions.size(); ++i) {
    const auto& v = versions[i];
    fmt::print("  {:<16} {:>9} entries  created {}  embeddings: {}{}\n", v.tag, v.entries, v.created,
               v.embedding_model.empty() ? "unnamed space" : v.embedding_model, i + 1 == versions.size() ? "  (latest)" : "");
  }
  return 0;
}

#ifdef FLIPLESS_WITH_TORCH
struct FitEmulatorArgs {
  std::string cache;
  std::string model;
  std::string version;
  std::string out;
  bool full_check = false;
};

int run_fit_emulator(const FitEmulatorArgs& a) {
  cache::CacheOptions co;
  co.read_only = true;
  co.check = check_of(a.full_check);
  const auto c = cache::OldLogitCache::open(a.cache, co);
  const auto tag = a.version.empty() ? c->latest_version() : std::optional<std::string>(a.version);
  if (!tag) throw InputError(fmt::format("{}: the cache is empty: add the old model's logits first (flipless cache add)", a.cache));
  const auto versions = c->versions();
  const auto it = std::find_if(versions.begin(), versions.end(), [&](const auto& v) { return v.tag == *tag; });
  if (it == versions.end()) throw InputError(fmt::format("{}: the cache has no version '{}'", a.cache, *tag));
  const auto space = serve::embedding_space_of(a.model);
  if (it->embedding_model != space) {
    throw InputError(fmt::format("{}: version '{}' holds embeddings of '{}', the model {} makes '{}': add the logits with 'flipless cache add "
                                 "--model {}' (a new version) and fit on that",
                                 a.cache, *tag, it->embedding_model.empty() ? "(unnamed)" : it->embedding_model, a.model, space, a.model));
  }
  if (c->dim() == 0) throw InputError(fmt::format("{}: the cache holds no embeddings", a.cache));
  const auto entries = c->entries_with_embeddings(*tag);
  std::vector<float> embeddings, logits;
  embeddings.reserve(entries.size() * c->dim());
  logits.reserve(entries.size() * c->num_labels());
  for (const auto& e : entries) {
    embeddings.insert(embeddings.end(), e.embedding.begin(), e.embedding.end());
    logits.insert(logits.end(), e.old_logits.begin(), e.old_logits.end());
  }
  auto emulator = cache::fit_old_emulator(embeddings, logits, c->dim(), c->num_labels());
  emulator.embedding_space = space;
  emulator.cache_version = *tag;
  const auto out = a.out.empty() ? std::filesystem::path(a.model) / serve::kEmulatorFileName : std::filesystem::path(a.out);
  emulator.save(out);
  fmt::print("old-model emulator: fitted on {} entries of version '{}'; held out (5-fold): the old label reproduced for {:.1f}%, "
             "mean squared logit error {:.4g} (ridge strength {:g})\nwrote {}{}\n",
             emulator.rows, *tag, 100 * emulator.held_out_agreement, emulator.held_out_mse, emulator.relative_lambda, out.string(),
             a.out.empty() ? "; flipless serve uses it for inputs not cached exactly (--fallback auto)" : "");
  return 0;
}
#endif

}  // namespace

void add_cache_commands(CLI::App& app, Runner& run) {
  CLI::App* cmd = app.add_subcommand("cache", "Old-logit caches: serve Gated Fusion without the old model");
  cmd->require_subcommand(1);
  auto a = std::make_shared<CacheAddArgs>();
  CLI::App* add = cmd->add_subcommand("add", "Add the old model's logits for a dataset to a cache (created if missing)");
  add->add_option("cache", a->cache, "Cache file (SQLite)")->required();
  add->add_option("--data", a->data, "Dataset the inputs come from (sst2:dev, qnli:PATH, a CSV/TSV/JSONL path)")->required();
  add->add_option("--old", a->old_predictions, "The old model's prediction file with logits or probs, ids as in --data")->required();
  add->add_option("--embeddings", a->embeddings, "A prediction file with the new model's 'embedding' per id");
  add->add_option("--model", a->model, "Or: the new model folder, run on --data for its embeddings");
  add->add_option("--version", a->version, "Legacy version tag of these logits")->capture_default_str();
  add->add_option("--embedding-space", a->embedding_space, "Name of the embeddings' space (default: from --model)");
  add->add_option("--batch", a->batch, "Entries per transaction")->capture_default_str()->check(CLI::PositiveNumber);
  add->add_flag("--full-check", a->full_check,
                "Check an existing cache with SQLite's full integrity_check (default: quick_check)");
  add_column_options(add, a->columns);
  add->callback([&run, a] { run = [a] { return run_cache_add(*a); }; });
  auto path = std::make_shared<std::string>();
  auto full = std::make_shared<bool>(false);
  CLI::App* info = cmd->add_subcommand("info", "Check a cache (SQLite quick_check) and show its versions and sizes");
  info->add_option("cache", *path, "Cache file")->required();
  info->add_flag("--full-check", *full, "SQLite's full integrity_check (also every index against its table; slower)");
  info->callback([&run, path, full] { run = [path, full] { return run_cache_info(*path, *full); }; });
#ifdef FLIPLESS_WITH_TORCH
  auto f = std::make_shared<FitEmulatorArgs>();
  CLI::App* fit = cmd->add_subcommand("fit-emulator",
                                      "Fit an old-model emulator on a cache's entries (ridge regression from the new model's embedding to the "
                                      "old logits) and save it in the model folder, for the inputs the cache does not hold");
  fit->add_option("cache", f->cache, "Cache file")->required();
  fit->add_option("model_dir", f->model, "The Gated Fusion model folder whose embeddings the cache's version holds")->required();
  fit->add_option("--version", f->version, "Cache version to fit on (default: the latest)");
  fit->add_option("--out", f->out, "Where to write it (default: MODEL_DIR/old_emulator.safetensors)");
  fit->add_flag("--full-check", f->full_check, "Check the cache with SQLite's full integrity_check (default: quick_check)");
  fit->callback([&run, f] { run = [f] { return run_fit_emulator(*f); }; });
#endif
}

}  // namespace flipless::cli
