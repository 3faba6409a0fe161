// The old-logit cache: keys, the vector indexes (HNSW against the exact oracle), the SQLite
// store (look-up paths, versions, persistence, corrupt files) and durability under SIGKILL.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "../test_util.h"
#include "flipless/cache/bulk_load.h"
#include "flipless/cache/logit_cache.h"
#include "flipless/cache/old_emulator.h"
#include "flipless/cache/vector_index.h"
#include "flipless/core/error.h"
#include "flipless/data/predictions.h"

namespace flipless::cache {
namespace {

using flipless::testing::error_of;
using flipless::testing::TempDir;

std::vector<float> random_vectors(std::size_t n, std::size_t dim, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(n * dim);
  for (auto& x : v) x = normal(rng);
  return v;
}

std::vector<std::int64_t> iota_ids(std::size_t n, std::int64_t first = 0) {
  std::vector<std::int64_t> ids(n);
  for (std::size_t i = 0; i < n; ++i) ids[i] = first + static_cast<std::int64_t>(i);
  return ids;
}

TEST(CacheKey, NormalisesWhitespaceAndUnicodeComposition) {
  EXPECT_EQ(normalize_text("  a \t great\n\nfilm  "), "a great film");
  // "é" precomposed (U+00E9) and as e + combining acute (U+0301) are one key.
  EXPECT_EQ(cache_key("caf\xc3\xa9"), cache_key("cafe\xcc\x81"));
  EXPECT_EQ(cache_key("a  b"), cache_key(" a b "));
  EXPECT_NE(cache_key("A b"), cache_key("a b"));  // case matters: cased models see it
  EXPECT_NE(cache_key("ab", std::string("c")), cache_key("a", std::string("bc")));
  EXPECT_NE(cache_key("ab"), cache_key("ab", std::string("")));
  EXPECT_EQ(cache_key("x").size(), 33u);
  EXPECT_EQ(cache_key("x").front(), 'k');
  // XXH3-128 (xxHash) of the kind-tagged normalised text, high half first (cache format 2).
  const std::string tagged = "1\x1fx";
  const XXH128_hash_t h = XXH3_128bits(tagged.data(), tagged.size());
  EXPECT_EQ(cache_key(" x "), fmt::format("k{:016x}{:016x}", h.high64, h.low64));
  EXPECT_THROW(cache_key("bad \xff byte"), InputError);
}

TEST(ExactIndex, FindsHandCheckedNeighboursAndReplacesVectors) {
  ExactIndex index(2);
  const std::vector<float> v = {0, 0, 3, 4, 10, 0};
  index.add(v, iota_ids(3, 7));
  const std::vector<float> q = {2.9f, 4.1f, 9, 0};
  const auto r = index.search(q, 2);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0][0].id, 8);
  EXPECT_NEAR(r[0][0].distance, std::sqrt(0.02f), 1e-5);
  EXPECT_EQ(r[0][1].id, 7);
  EXPECT_NEAR(r[0][1].distance, 5.0f, 0.2f);
  EXPECT_EQ(r[1][0].id, 9);
  EXPECT_FLOAT_EQ(r[1][0].distance, 1.0f);
  // Id 9 moves next to the origin; the size stays 3.
  const std::vector<float> moved = {0.5f, 0};
  const std::vector<std::int64_t> id9 = {9};
  index.add(moved, id9);
  EXPECT_EQ(index.size(), 3u);
  EXPECT_EQ(index.search(std::vector<float>{0.6f, 0}, 1)[0][0].id, 9);
  EXPECT_EQ(index.search(q, 10)[0].size(), 3u);  // k above the size: every entry
  EXPECT_THROW(index.add(std::vector<float>{1, 2, 3}, id9), InputError);
}

TEST(HnswIndex, RecallAgainstExactSearchIsHigh) {
  constexpr std::size_t kDim = 32, kN = 3000, kQueries = 200;
  const auto vectors = random_vectors(kN, kDim, 1);
  const auto queries = random_vectors(kQueries, kDim, 2);
  ExactIndex exact(kDim);
  HnswIndex hnsw(kDim);
  exact.add(vectors, iota_ids(kN));
  hnsw.add(vectors, iota_ids(kN));
  EXPECT_EQ(hnsw.size(), kN);
  const auto want = exact.search(queries, 1), got = hnsw.search(queries, 1);
  std::size_t same = 0;
  for (std::size_t q = 0; q < kQueries; ++q) {
    ASSERT_EQ(got[q].size(), 1u);
    same += got[q][0].id == want[q][0].id;
    // Whatever it returns, the distance it reports is that entry's true distance.
    const auto id = static_cast<std::size_t>(got[q][0].id);
    float d = 0;
    for (std::size_t j = 0; j < kDim; ++j) d += std::pow(queries[q * kDim + j] - vectors[id * kDim + j], 2.0f);
    EXPECT_NEAR(got[q][0].distance, std::sqrt(d), 1e-3);
  }
  EXPECT_GE(static_cast<double>(same) / kQueries, 0.95);
}

TEST(MakeIndex, AutoSwitchesToHnswAtTheThresholdAndKeepsEveryEntry) {
  IndexOptions options;
  options.exact_threshold = 100;
  auto index = make_index(8, options);
  const auto vectors = random_vectors(150, 8, 3);
  index->add(std::span<const float>(vectors).first(99 * 8), iota_ids(99));
  EXPECT_EQ(index->describe().substr(0, 5), "exact");
  index->add(std::span<const float>(vectors).subspan(99 * 8), iota_ids(51, 99));
  EXPECT_EQ(index->describe().substr(0, 4), "hnsw");
  EXPECT_EQ(index->size(), 150u);
  // Every stored vector finds itself.
  const auto r = index->search(vectors, 1);
  for (std::size_t i = 0; i < 150; ++i) EXPECT_EQ(r[i][0].id, static_cast<std::int64_t>(i));
  options.kind = "annoy";
  EXPECT_EQ(error_of<ConfigError>([&] { make_index(8, options); }), "index kind must be auto, exact or hnsw, got 'annoy'");
}

CacheOptions sized(std::size_t labels, std::size_t dim) {
  CacheOptions o;
  o.num_labels = labels;
  o.dim = dim;
  return o;
}
CacheOptions read_only() {
  CacheOptions o;
  o.read_only = true;
  return o;
}
LookupOptions within(float distance) {
  LookupOptions o;
  o.max_distance = distance;
  return o;
}
LookupOptions exact_only() {
  LookupOptions o;
  o.nearest = false;
  return o;
}
LookupOptions of_version(std::string tag) {
  LookupOptions o;
  o.version = std::move(tag);
  return o;
}
data::PredictionReadOptions with_scores() {
  data::PredictionReadOptions o;
  o.keep_scores = true;
  return o;
}
data::PredictionReadOptions with_embeddings() {
  data::PredictionReadOptions o;
  o.keep_embeddings = true;
  return o;
}

CacheEntry entry(const std::string& text, std::vector<float> logits, std::vector<float> embedding) {
  return {cache_key(text), std::move(logits), std::move(embedding)};
}

TEST(OldLogitCache, ExactNearAndMissLookups) {
  TempDir dir;
  const auto path = dir.path() / "cache.sqlite";
  auto c = OldLogitCache::open(path, sized(2, 2));
  const std::vector<CacheEntry> entries = {entry("a fine film", {1, -1}, {0, 0}), entry("a dull film", {-2, 2}, {10, 0})};
  c->put("v1", entries, "space-a");
  EXPECT_EQ(c->size(), 2u);
  const std::vector<std::string> keys = {cache_key("  a fine   film"), cache_key("something else"), cache_key("far away")};
  const std::vector<float> embeddings = {5, 5, 9, 1, 100, 100};
  auto r = c->lookup(keys, embeddings);
  EXPECT_EQ(r[0].path, LookupPath::kExact);
  EXPECT_EQ(r[0].old_logits, (std::vector<float>{1, -1}));
  EXPECT_FLOAT_EQ(r[0].distance, 0);
  EXPECT_EQ(r[1].path, LookupPath::kNear);
  EXPECT_EQ(r[1].old_logits, (std::vector<float>{-2, 2}));
  EXPECT_NEAR(r[1].distance, std::sqrt(2.0f), 1e-5);
  EXPECT_EQ(r[2].path, LookupPath::kNear);
  // A distance threshold turns the far neighbour into a miss; nearest off misses both.
  r = c->lookup(keys, embeddings, within(5.0f));
  EXPECT_EQ(r[1].path, LookupPath::kNear);
  EXPECT_EQ(r[2].path, LookupPath::kMiss);
  EXPECT_TRUE(r[2].old_logits.empty());
  r = c->lookup(keys, embeddings, exact_only());
  EXPECT_EQ(r[0].path, LookupPath::kExact);
  EXPECT_EQ(r[1].path, LookupPath::kMiss);
  // Without embeddings only exact look-ups are possible.
  r = c->lookup(keys, {});
  EXPECT_EQ(r[1].path, LookupPath::kMiss);
  EXPECT_EQ(path_name(LookupPath::kNear), "near");
}

TEST(OldLogitCache, VersionsLatestByDefaultAndPersistAcrossReopen) {
  TempDir dir;
  const auto path = dir.path() / "cache.sqlite";
  {
    auto c = OldLogitCache::open(path, sized(2, 2));
    EXPECT_EQ(c->latest_version(), std::nullopt);
    const std::vector<std::string> none = {cache_key("x")};
    EXPECT_EQ(c->lookup(none, std::vector<float>{0, 0})[0].path, LookupPath::kMiss);  // empty cache: all miss
    c->put("v1", std::vector<CacheEntry>{entry("x", {1, 0}, {0, 0})}, "space-a");
    // The near index is built now; a later put must show up in it.
    EXPECT_EQ(c->lookup(std::vector<std::string>{cache_key("y")}, std::vector<float>{0, 1})[0].path, LookupPath::kNear);
    c->put("v1", std::vector<CacheEntry>{entry("x", {5, 0}, {0, 0}), entry("y", {0, 1}, {3, 3})}, "space-a");
    EXPECT_EQ(c->lookup(std::vector<std::string>{cache_key("z")}, std::vector<float>{3, 2.9f})[0].old_logits, (std::vector<float>{0, 1}));
    c->put("v2", std::vector<CacheEntry>{entry("x", {0, 9}, {})}, "space-b");
  }
  auto c = OldLogitCache::open(path, read_only());
  EXPECT_EQ(c->num_labels(), 2u);
  EXPECT_EQ(c->dim(), 2u);
  const auto versions = c->versions();
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(versions[0].tag, "v1");
  EXPECT_EQ(versions[0].entries, 2u);
  EXPECT_EQ(versions[0].embedding_model, "space-a");
  EXPECT_EQ(versions[1].tag, "v2");
  EXPECT_EQ(versions[1].created.size(), 20u);  // 2026-11-26T21:00:00Z
  EXPECT_EQ(c->latest_version(), "v2");
  const std::vector<std::string> x = {cache_key("x")};
  EXPECT_EQ(c->lookup(x, {})[0].old_logits, (std::vector<float>{0, 9}));                       // latest
  EXPECT_EQ(c->lookup(x, {}, of_version("v1"))[0].old_logits, (std::vector<float>{5, 0}));   // replaced in v1
  EXPECT_EQ(error_of<InputError>([&] { c->lookup(x, {}, of_version("v9")); }),
            fmt::format("{}: the cache has no version 'v9'", (dir.path() / "cache.sqlite").string()));
  EXPECT_THROW(c->put("v3", std::vector<CacheEntry>{entry("q", {0, 0}, {})}), ConfigError);  // read-only
}

TEST(OldLogitCache, HnswSnapshotIsReusedWhileCurrentAndRebuiltWhenStaleOrDamaged) {
  TempDir dir;
  const auto path = dir.path() / "cache.sqlite";
  CacheOptions co = sized(2, 16);
  co.index.kind = "hnsw";
  const auto emb = random_vectors(500, 16, 8);
  std::vector<CacheEntry> entries;
  for (int i = 0; i < 500; ++i) {
    entries.push_back(entry(fmt::format("t{}", i), {float(i), 0}, std::vector<float>(emb.begin() + i * 16, emb.begin() + (i + 1) * 16)));
  }
  const auto queries = random_vectors(50, 16, 9);
  const std::vector<std::string> keys(50, cache_key("not cached"));
  auto firsts = [&](OldLogitCache& c) {
    std::vector<float> out;
    for (const auto& r : c.lookup(keys, queries)) out.push_back(r.old_logits.at(0));
    return out;
  };
  const auto graph = dir.path() / "cache.sqlite.index" / "v1.hnsw";
  const auto card = dir.path() / "cache.sqlite.index" / "v1.hnsw.json";
  auto generation = [&] { return nlohmann::json::parse(std::ifstream(card))["generation"].get<int>(); };
  std::vector<float> want;
  {
    auto c = OldLogitCache::open(path, co);
    c->put("v1", entries);
    c->prepare();
    want = firsts(*c);
  }
  ASSERT_TRUE(std::filesystem::exists(graph));
  EXPECT_EQ(generation(), 1);
  const auto written = std::filesystem::last_write_time(graph);
  {
    auto c = OldLogitCache::open(path, co);
    EXPECT_EQ(firsts(*c), want);  // the same graph, loaded
  }
  EXPECT_EQ(std::filesystem::last_write_time(graph), written);
  {
    auto c = OldLogitCache::open(path, co);
    c->put("v1", std::vector<CacheEntry>{entry("extra", {-1, 0}, std::vector<float>(16, 0.0f))});
  }
  {
    auto c = OldLogitCache::open(path, co);
    c->prepare();  // generation 2: the snapshot of 1 is stale and rebuilt
    EXPECT_EQ(c->lookup(std::vector<std::string>{cache_key("near zero")}, std::vector<float>(16, 0.01f))[0].old_logits[0], -1.0f);
  }
  EXPECT_EQ(generation(), 2);
  // A damaged graph file is rebuilt, not trusted.
  std::filesystem::resize_file(graph, std::filesystem::file_size(graph) / 3);
  {
    auto c = OldLogitCache::open(path, co);
    EXPECT_EQ(c->lookup(std::vector<std::string>{cache_key("near zero")}, std::vector<float>(16, 0.01f))[0].old_logits[0], -1.0f);
  }
  EXPECT_GT(std::filesystem::file_size(graph), 1000u);
}

TEST(OldLogitCache, RefusesWrongWidthsAndFilesThatAreNotCaches) {
  TempDir dir;
  const auto path = dir.path() / "cache.sqlite";
  auto c = OldLogitCache::open(path, sized(3, 4));
  EXPECT_EQ(error_of<InputError>([&] { c->put("v1", std::vector<CacheEntry>{entry("a", {1, 2}, {})}); }),
            fmt::format("old-logit cache: entry {} has 2 logits, the cache holds 3", cache_key("a")));
  EXPECT_THROW(c->put("v1", std::vector<CacheEntry>{entry("a", {1, 2, 3}, {1})}), InputError);
  EXPECT_THROW(c->put("", std::vector<CacheEntry>{entry("a", {1, 2, 3}, {})}), InputError);
  EXPECT_EQ(c->size(), 0u);  // nothing half-written
  c.reset();
  EXPECT_EQ(error_of<ConfigError>([&] { OldLogitCache::open(path, sized(2, 0)); }),
            fmt::format("{}: the cache holds 3 labels per entry, not 2", path.string()));
  const auto text = dir.write("notes.txt", std::string(4096, 'x'));
  EXPECT_NE(error_of<IoError>([&] { OldLogitCache::open(text); }).find("not a flipless old-logit cache"), std::string::npos);
  EXPECT_THROW(OldLogitCache::open(dir.path() / "missing.sqlite", read_only()), IoError);
  EXPECT_THROW(OldLogitCache::open(dir.path() / "new.sqlite"), ConfigError);  // a new cache needs its widths
}

// Runs one SQL statement on a database file outside the cache; returns the first column of the
// first row ("" when none).
std::string sql(const std::filesystem::path& path, const std::string& statement) {
  sqlite3* raw = nullptr;
  EXPECT_EQ(sqlite3_open(path.string().c_str(), &raw), SQLITE_OK);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
  sqlite3_stmt* s = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(raw, statement.c_str(), -1, &s, nullptr), SQLITE_OK) << sqlite3_errmsg(raw);
  std::string out;
  if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) != nullptr)
    out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  while (sqlite3_step(s) == SQLITE_ROW) {
  }
  sqlite3_finalize(s);
  return out;
}

// A cache of format version 1 (FNV-1a keys) cannot be matched by this build's XXH3-128 keys and
// holds no texts to re-key: refused with what to do, not read with keys that never hit.
TEST(OldLogitCache, AVersionOneCacheIsRefusedWithWhatToDo) {
  TempDir dir;
  const auto path = dir.path() / "v1.sqlite";
  OldLogitCache::open(path, sized(2, 2)).reset();
  EXPECT_EQ(sql(path, "SELECT value FROM meta WHERE name = 'version'"), "2");
  sql(path, "UPDATE meta SET value = '1' WHERE name = 'version'");
  const auto message = error_of<IoError>([&] { OldLogitCache::open(path, read_only()); });
  EXPECT_EQ(message.rfind(path.string() + ": old-logit cache format version 1 (keys hashed with FNV-1a) is not read by this build", 0), 0u)
      << message;
  EXPECT_NE(message.find("rebuild it with flipless cache add"), std::string::npos);
}

// Issue 14, 10: another SQLite database is refused before anything is written to it.
TEST(OldLogitCache, OtherSqliteDatabasesAreRefusedUntouched) {
  TempDir dir;
  const auto other = dir.path() / "other.sqlite";
  sql(other, "CREATE TABLE t(x)");
  const auto before = std::filesystem::file_size(other);
  EXPECT_EQ(
      error_of<IoError>([&] { OldLogitCache::open(other, sized(2, 2)); }),
      other.string() + ": not a flipless old-logit cache (an SQLite database with tables t); nothing was written");
  EXPECT_EQ(sql(other, "SELECT group_concat(name) FROM sqlite_schema"), "t");
  EXPECT_EQ(std::filesystem::file_size(other), before);
  const auto app = dir.path() / "app.sqlite";
  sql(app, "PRAGMA application_id = 1234");
  EXPECT_EQ(error_of<IoError>([&] { OldLogitCache::open(app, sized(2, 2)); }),
            app.string() +
                ": not a flipless old-logit cache (an SQLite database of another application, id 0x4d2); nothing was "
                "written");
  // A new cache carries the mark; one written before it (application_id 0) is read as it is
  // and marked when opened for writing.
  const auto path = dir.path() / "cache.sqlite";
  OldLogitCache::open(path, sized(2, 2))->put("v1", std::vector<CacheEntry>{entry("a", {1, 2}, {0, 0})});
  EXPECT_EQ(sql(path, "PRAGMA application_id"), std::to_string(kCacheApplicationId));
  sql(path, "PRAGMA application_id = 0");
  EXPECT_EQ(OldLogitCache::open(path, read_only())->size(), 1u);
  EXPECT_EQ(sql(path, "PRAGMA application_id"), "0");
  EXPECT_EQ(OldLogitCache::open(path)->size(), 1u);
  EXPECT_EQ(sql(path, "PRAGMA application_id"), std::to_string(kCacheApplicationId));
}

// Issue 14, 9: a cache with damaged pages is refused on open (read-only or for writing), with
// one line naming the file and SQLite's complaint.
TEST(OldLogitCache, DamagedFilesAreRefusedOnOpen) {
  TempDir dir;
  const auto path = dir.path() / "cache.sqlite";
  std::vector<CacheEntry> entries;
  const auto emb = random_vectors(2000, 64, 5);
  for (int i = 0; i < 2000; ++i) {
    entries.push_back(entry(fmt::format("text {}", i), {float(i), 0},
                            std::vector<float>(emb.begin() + i * 64, emb.begin() + (i + 1) * 64)));
  }
  OldLogitCache::open(path, sized(2, 64))->put("v1", entries);  // closed: checkpointed into the file
  CacheOptions full = read_only();
  full.check = IntegrityCheck::kFull;
  EXPECT_EQ(OldLogitCache::open(path, full)->size(), 2000u);  // healthy: both checks pass
  // 64 bytes over the head of a page in the middle of the file.
  const auto pages = std::filesystem::file_size(path) / 4096;
  ASSERT_GT(pages, 20u);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(pages / 2 * 4096));
    const std::string junk(64, '\xA5');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  for (const bool writable : {false, true}) {
    CacheOptions o = read_only();
    o.read_only = !writable;
    const auto message = error_of<IoError>([&] { OldLogitCache::open(path, o); });
    EXPECT_EQ(message.rfind(path.string() + ": old-logit cache is damaged (SQLite quick_check: ", 0), 0u) << message;
    EXPECT_NE(message.find("restore it from a backup or rebuild it with 'flipless cache add'"), std::string::npos)
        << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

// Issue 14, 8: logits that are not finite are refused, not stored as infinity.
TEST(OldLogitCache, NonFiniteLogitsAndEmbeddingsAreRefused) {
  auto c = OldLogitCache::open(":memory:", sized(2, 2));
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(error_of<InputError>([&] {
              c->put("v1", std::vector<CacheEntry>{entry("a", {inf, 0}, {})});
            }),
            fmt::format("old-logit cache: entry {} has a logit that is not finite (inf)", cache_key("a")));
  EXPECT_THROW(c->put("v1", std::vector<CacheEntry>{entry("a", {0, 0}, {std::nanf(""), 0})}), InputError);
  EXPECT_EQ(c->size("v1"), 0u);
}

TEST(OldLogitCache, TruncatedFileThrowsInsteadOfCrashing) {
  TempDir dir;
  const auto path = dir.path() / "cache.sqlite";
  std::vector<CacheEntry> entries;
  const auto emb = random_vectors(2000, 64, 4);
  for (int i = 0; i < 2000; ++i) {
    entries.push_back(entry(fmt::format("text {}", i), {float(i), 0}, std::vector<float>(emb.begin() + i * 64, emb.begin() + (i + 1) * 64)));
  }
  OldLogitCache::open(path, sized(2, 64))->put("v1", entries);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  std::vector<std::string> keys;
  for (const auto& e : entries) keys.push_back(e.key);
  EXPECT_THROW(
      {
        auto c = OldLogitCache::open(path, read_only());
        c->lookup(keys, emb);
      },
      IoError);
}

TEST(OldLogitCache, EveryAcknowledgedEntrySurvivesSigkill) {
  TempDir dir;
  const auto path = dir.path() / "cache.sqlite";
  OldLogitCache::open(path, sized(2, 8)).reset();
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  constexpr int kPerBatch = 50;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // the writer: acknowledges each batch once put() returns (committed)
    close(pipe_fds[0]);
    auto c = OldLogitCache::open(path);
    for (int b = 0;; ++b) {
      std::vector<CacheEntry> batch;
      for (int i = 0; i < kPerBatch; ++i) {
        const int n = b * kPerBatch + i;
        batch.push_back(entry(fmt::format("input {}", n), {float(n), -float(n)}, std::vector<float>(8, float(n))));
      }
      c->put("v1", batch);
      if (write(pipe_fds[1], &b, sizeof b) != sizeof b) _exit(1);
    }
  }
  close(pipe_fds[1]);
  int acked = -1, b = 0;
  while (acked < 40 && read(pipe_fds[0], &b, sizeof b) == sizeof b) acked = b;
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  close(pipe_fds[0]);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_GE(acked, 40);
  auto c = OldLogitCache::open(path, read_only());
  const std::size_t want = static_cast<std::size_t>(acked + 1) * kPerBatch;
  EXPECT_GE(c->size(), want);
  EXPECT_EQ(c->size() % kPerBatch, 0u);  // whole batches only: one transaction each
  std::vector<std::string> keys;
  for (std::size_t n = 0; n < want; ++n) keys.push_back(cache_key(fmt::format("input {}", n)));
  const auto r = c->lookup(keys, {});
  for (std::size_t n = 0; n < want; ++n) {
    ASSERT_EQ(r[n].path, LookupPath::kExact) << "entry " << n;
    EXPECT_EQ(r[n].old_logits[0], float(n));
  }
}

TEST(BulkLoad, EntriesFromPredictionFilesMatchedById) {
  TempDir dir;
  const auto old_path = dir.write("old.jsonl",
                                  "{\"id\":\"b\",\"probs\":[0.25,0.75]}\n"
                                  "{\"id\":\"a\",\"probs\":[0.5,0.5]}\n");
  const auto emb_path = dir.write("new.jsonl",
                                  "{\"id\":\"a\",\"logits\":[0,1],\"embedding\":[1,2,3]}\n"
                                  "{\"id\":\"b\",\"logits\":[0,1],\"embedding\":[4,5,6]}\n");
  data::Dataset ds;
  ds.name = "tiny";
  ds.label_names = {"0", "1"};
  ds.examples = {{"a", "first text", std::nullopt, 0}, {"b", "second", std::string("pair"), 1}};
  const auto old = data::read_predictions_file(old_path, with_scores());
  const auto emb = data::read_predictions_file(emb_path, with_embeddings());
  const auto entries = entries_from_predictions(ds, old, &emb);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].key, cache_key("first text"));
  EXPECT_EQ(entries[1].key, cache_key("second", std::string("pair")));
  EXPECT_NEAR(entries[1].old_logits[1], std::log(0.75f), 1e-6);
  EXPECT_EQ(entries[1].embedding, (std::vector<float>{4, 5, 6}));
  ds.examples.push_back({"c", "third", std::nullopt, 0});
  EXPECT_EQ(error_of<InputError>([&] { entries_from_predictions(ds, old, &emb); }), fmt::format("{}: no row with id 'c' of tiny", old_path.string()));
  const auto bad = dir.write("bad.jsonl", "{\"id\":\"a\",\"logits\":[0,1],\"embedding\":[1,2]}\n{\"id\":\"b\",\"logits\":[0,1],\"embedding\":[1]}\n");
  EXPECT_EQ(error_of<InputError>([&] { data::read_predictions_file(bad, with_embeddings()); }),
            fmt::format("{}:2: field 'embedding': expected 2 numbers as in the first row, found 1", bad.string()));
}

// n rows of d-dimensional embeddings drawn from N(0, 1) with seed `seed`.
std::vector<float> gaussian_rows(std::size_t n, std::size_t d, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0, 1);
  std::vector<float> out(n * d);
  for (auto& v : out) v = g(rng);
  return out;
}

TEST(OldEmulator, RecoversALinearOldModelAndPicksTheWeakestRidge) {
  const std::size_t n = 200, d = 8, k = 3;
  const auto x = gaussian_rows(n, d, 1);
  const auto w = gaussian_rows(d, k, 2);
  const std::vector<float> b = {0.5f, -1, 2};
  std::vector<float> y(n * k);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t c = 0; c < k; ++c) {
      float v = b[c];
      for (std::size_t j = 0; j < d; ++j) v += x[i * d + j] * w[j * k + c];
      y[i * k + c] = v;
    }
  }
  const auto e = fit_old_emulator(x, y, d, k);
  EXPECT_EQ(e.rows, n);
  EXPECT_DOUBLE_EQ(e.relative_lambda, EmulatorFitOptions{}.relative_lambdas.front());  // noiseless: the least shrinkage
  EXPECT_GT(e.held_out_agreement, 0.97);
  const auto fresh = gaussian_rows(5, d, 3);
  const auto got = e.predict_rows(fresh);
  for (std::size_t i = 0; i < 5; ++i) {
    for (std::size_t c = 0; c < k; ++c) {
      float want = b[c];
      for (std::size_t j = 0; j < d; ++j) want += fresh[i * d + j] * w[j * k + c];
      EXPECT_NEAR(got[i * k + c], want, 2e-2) << i << "," << c;
    }
  }
  // One row alone gives the same as the batch.
  const auto one = e.predict(std::span<const float>(fresh.data() + d, d));
  EXPECT_EQ(one, std::vector<float>(got.begin() + k, got.begin() + 2 * k));
}

TEST(OldEmulator, LogitsUnrelatedToTheEmbeddingShrinkToTheirMean) {
  const std::size_t n = 100, d = 16, k = 2;
  const auto x = gaussian_rows(n, d, 4);
  const auto y = gaussian_rows(n, k, 5);  // independent of x
  const auto e = fit_old_emulator(x, y, d, k);
  EXPECT_DOUBLE_EQ(e.relative_lambda, EmulatorFitOptions{}.relative_lambdas.back());  // cross-validation picks the strongest
}

TEST(OldEmulator, SavedAndLoadedPredictsTheSameAndBadFilesAreRefused) {
  TempDir dir;
  const std::size_t n = 40, d = 4, k = 2;
  const auto x = gaussian_rows(n, d, 6);
  auto y = gaussian_rows(n, k, 7);
  for (std::size_t i = 0; i < n; ++i) y[i * k] += 3 * x[i * d];
  auto e = fit_old_emulator(x, y, d, k);
  e.embedding_space = "model:abc";
  e.cache_version = "v1";
  const auto path = dir.path() / "old_emulator.safetensors";
  e.save(path);
  const auto back = OldEmulator::load(path);
  EXPECT_EQ(back.predict_rows(x), e.predict_rows(x));
  EXPECT_EQ(back.rows, n);
  EXPECT_EQ(back.embedding_space, "model:abc");
  EXPECT_EQ(back.cache_version, "v1");
  EXPECT_DOUBLE_EQ(back.held_out_agreement, e.held_out_agreement);
  EXPECT_DOUBLE_EQ(back.relative_lambda, e.relative_lambda);
  // The last 4 bytes are the last weight: make it a NaN.
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-4, std::ios::end);
    const std::uint32_t nan_bits = 0x7fc00000u;
    f.write(reinterpret_cast<const char*>(&nan_bits), 4);
  }
  EXPECT_EQ(error_of<ModelError>([&] { OldEmulator::load(path); }), path.string() + ": old-model emulator has a value that is not finite");
  const auto other = dir.write("other.safetensors", "");
  EXPECT_NE(error_of<ModelError>([&] { OldEmulator::load(other); }).find(other.string()), std::string::npos);
  // Too few rows, inconsistent sizes and non-finite inputs are InputErrors.
  EXPECT_EQ(error_of<InputError>([&] { fit_old_emulator(std::span<const float>(x.data(), 10 * d), std::span<const float>(y.data(), 10 * k), d, k); }),
            "old-model emulator: 10 cached entries; at least 20 are needed to fit and check one");
  EXPECT_NE(error_of<InputError>([&] { fit_old_emulator(x, std::span<const float>(y.data(), 3), d, k); }).find("old logit values"), std::string::npos);
  auto bad = x;
  bad[5] = std::nanf("");
  EXPECT_EQ(error_of<InputError>([&] { fit_old_emulator(bad, y, d, k); }), "old-model emulator: an embedding value is not finite");
}

TEST(OldEmulator, CacheEntriesWithEmbeddingsComeBackInOrder) {
  CacheOptions co;
  co.num_labels = 2;
  co.dim = 2;
  auto c = OldLogitCache::open(":memory:", co);
  const std::vector<CacheEntry> v1 = {{"k1", {1, 2}, {0.5f, 1}}, {"k2", {3, 4}, {}}, {"k3", {5, 6}, {2, 3}}};
  c->put("v1", v1, "space-a");
  c->put("v2", std::vector<CacheEntry>{{"k9", {7, 8}, {9, 9}}}, "space-a");
  const auto got = c->entries_with_embeddings("v1");
  ASSERT_EQ(got.size(), 2u);  // k2 has no embedding
  EXPECT_EQ(got[0].key, "k1");
  EXPECT_EQ(got[1].key, "k3");
  EXPECT_EQ(got[1].old_logits, (std::vector<float>{5, 6}));
  EXPECT_EQ(got[1].embedding, (std::vector<float>{2, 3}));
  EXPECT_EQ(c->entries_with_embeddings().size(), 1u);  // the latest version
  EXPECT_TRUE(c->entries_with_embeddings("nope").empty());
}

}  // namespace
}  // namespace flipless::cache
