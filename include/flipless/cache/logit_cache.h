#pragma once
// OldLogitCache: the old model's logits for inputs it already served, kept after the old model
// is retired (SPEC.md, "Inference with a cache"; the paper's section 3.3), persistent in SQLite.
//
// On disk, one SQLite database in WAL mode (every put() is one transaction; an entry is
// acknowledged once its transaction commits and survives a killed process), marked with
// PRAGMA application_id = 0x464C5043 ("FLPC") so other SQLite files are told apart before
// anything is written to them (files from before the mark, with format version 1 in meta and an
// application_id of 0, are read as they are and marked when next opened for writing):
//   meta(name TEXT PRIMARY KEY, value TEXT)    format = "flipless-old-logit-cache", version = 1,
//                                              num_labels, dim
//   versions(id INTEGER PRIMARY KEY, tag TEXT UNIQUE, embedding_model TEXT, created TEXT,
//            generation INTEGER)               one row per legacy model ("v1", "served-2026-11");
//                                              generation counts the puts into it
//   entries(id INTEGER PRIMARY KEY, version INTEGER, key TEXT, old_logits BLOB, embedding BLOB,
//           UNIQUE(version, key))              logits: num_labels float32, embedding: dim float32,
//                                              little-endian
// The database is the source of truth. The nearest-neighbour index over each version's
// embeddings is derived: built in memory from the entries when first needed, kept current by
// put(). An HNSW graph (minutes to build at 1M entries) is also saved beside the database as
// <cache>.index/v<id>.hnsw with a .json naming the generation it holds and the file's size and
// hash; a later open loads it when all three match and rebuilds it otherwise, so deleting the
// folder is always safe. `key` is cache_key() of the input, so the same text finds its entry
// whatever its id.
//
// Opening a file runs SQLite's PRAGMA quick_check (page structure; a full integrity_check, which
// also matches indexes against their tables, on request): a damaged cache is refused with one
// IoError, never served. Logits and embeddings must be finite 32-bit floats.
//
// Several legacy versions live side by side (the paper's section 6, a chain of upgrades);
// look-ups use the latest version unless told otherwise. `embedding_model` names the model whose
// pooled embedding was stored: nearest-neighbour look-ups only make sense in that model's space.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "flipless/cache/vector_index.h"

namespace flipless::cache {

// The normalised form of one input text: Unicode NFC, runs of whitespace as one space, trimmed.
// Throws InputError on invalid UTF-8.
std::string normalize_text(std::string_view text);

// The cache key of an input (a text or a text pair): "k" + 32 hex digits, the XXH3-128 hash
// (xxHash) of the normalised text(s). Inputs that differ only in whitespace or Unicode composition share a key.
std::string cache_key(std::string_view text_a, const std::optional<std::string>& text_b = std::nullopt);

struct CacheEntry {
  std::string key;                // cache_key() of the input
  std::vector<float> old_logits;  // (num_labels,)
  std::vector<float> embedding;   // (dim,) the new model's pooled embedding; empty: exact look-ups only
};

struct VersionInfo {
  std::string tag;
  std::string embedding_model;
  std::string created;      // ISO 8601, UTC
  std::size_t entries = 0;
};

enum class LookupPath { kExact, kNear, kMiss };
// "exact", "near", "miss".
std::string_view path_name(LookupPath path);

struct LookupOptions {
  std::string version;                  // empty: the latest version
  bool nearest = true;                  // false: exact look-ups only (a miss otherwise)
  std::optional<float> max_distance;    // a neighbour farther than this (Euclidean) is a miss
};

struct Lookup {
  LookupPath path = LookupPath::kMiss;
  std::vector<float> old_logits;  // (num_labels,) empty on a miss
  float distance = 0;             // Euclidean distance to the neighbour used (0 on an exact hit)
};

// How much of an existing cache file open() checks: kQuick is SQLite's quick_check (every
// page's structure, in one pass over the file); kFull its integrity_check (also every index
// against its table: slower).
enum class IntegrityCheck { kNone, kQuick, kFull };

struct CacheOptions {
  std::size_t num_labels = 0;  // for a new cache; 0: take it from the existing one
  std::size_t dim = 0;         // embedding width for a new cache; 0: take it from the existing one
  IndexOptions index;          // how nearest-neighbour look-ups search
  bool read_only = false;      // open an existing cache without writing
  IntegrityCheck check = IntegrityCheck::kQuick;  // run on open for a file (not ":memory:")
};

// The SQLite application_id of a flipless cache file ("FLPC").
inline constexpr std::int32_t kCacheApplicationId = 0x464C5043;

class OldLogitCache {
 public:
  // Opens (or creates, unless read_only) the cache at `path`; ":memory:" gives a private
  // in-memory cache. A new cache is only created in a missing or empty file. Throws IoError for
  // an unreadable or damaged file or one that is not a flipless cache (another SQLite database
  // is refused before anything is written to it), ConfigError when num_labels/dim disagree with
  // an existing cache.
  static std::unique_ptr<OldLogitCache> open(const std::filesystem::path& path, const CacheOptions& options = {});
  ~OldLogitCache();
  OldLogitCache(const OldLogitCache&) = delete;
  OldLogitCache& operator=(const OldLogitCache&) = delete;

  std::size_t num_labels() const;
  std::size_t dim() const;
  const std::filesystem::path& path() const;

  // Adds or replaces entries of version `tag` in one transaction (the version is created with
  // `embedding_model` when new). Returns once committed. Throws InputError on a wrong width or
  // a logit or embedding value that is not finite.
  void put(std::string_view tag, std::span<const CacheEntry> entries, std::string_view embedding_model = "");

  // Every version, oldest first.
  std::vector<VersionInfo> versions() const;
  // The newest version's tag, or nullopt for an empty cache.
  std::optional<std::string> latest_version() const;

  // One look-up per input: keys (n,), embeddings (n, dim) row-major, or empty for exact
  // look-ups only. Exact hit: that entry's logits; else the nearest entry's logits when
  // `options.nearest` and it is within max_distance; else a miss. Thread-safe.
  std::vector<Lookup> lookup(std::span<const std::string> keys, std::span<const float> embeddings,
                             const LookupOptions& options = {}) const;

  // Builds (or loads from its snapshot) the nearest-neighbour index of a version (the latest
  // when empty) now rather than at the first look-up that needs it.
  void prepare(std::string_view tag = "") const;

  // Every entry of a version (the latest when empty) that has an embedding, in insertion order:
  // what an old-model emulator is fitted on (cache/old_emulator.h). Empty for an unknown tag.
  // Throws IoError for a damaged entry.
  std::vector<CacheEntry> entries_with_embeddings(std::string_view tag = "") const;

  // Number of entries of a version (the latest when empty); 0 for an unknown tag.
  std::size_t size(std::string_view tag = "") const;

 private:
  struct Impl;
  explicit OldLogitCache(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace flipless::cache
