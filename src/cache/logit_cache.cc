#include "flipless/cache/logit_cache.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <xxhash.h>
#include <fmt/ranges.h>
#include <sqlite3.h>
#include <utf8proc.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <shared_mutex>

#include "flipless/core/error.h"
#include "flipless/core/file.h"
#include "flipless/core/hash.h"

static_assert(std::endian::native == std::endian::little, "cache blobs are stored as little-endian float32");

namespace flipless::cache {
namespace {

constexpr const char* kFormat = "flipless-old-logit-cache";
// 2: keys are XXH3-128 (xxHash); version 1 keys were two FNV-1a passes, so a version 1 file's
// keys cannot be matched and it is refused (its texts are not stored: nothing to re-key).
constexpr int kFormatVersion = 2;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

struct DbClose {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalize {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Db = std::unique_ptr<sqlite3, DbClose>;
using Stmt = std::unique_ptr<sqlite3_stmt, StmtFinalize>;

std::vector<float> floats_of(const void* blob, int bytes) {
  std::vector<float> out(static_cast<std::size_t>(bytes) / sizeof(float));
  if (!out.empty()) std::memcpy(out.data(), blob, out.size() * sizeof(float));
  return out;
}

std::string now_utc() {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()));
}

}  // namespace

std::string normalize_text(std::string_view text) {
  utf8proc_uint8_t* composed = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                              &composed, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) throw InputError(fmt::format("cache key: input text is not valid UTF-8 ({})", utf8proc_errmsg(n)));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(composed, &std::free);
  std::string out;
  out.reserve(static_cast<std::size_t>(n));
  bool pending_space = false;
  for (utf8proc_ssize_t i = 0; i < n; ++i) {
    const char c = static_cast<char>(composed[i]);
    if (is_space(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

std::string cache_key(std::string_view text_a, const std::optional<std::string>& text_b) {
  std::string joined = text_b ? "2\x1f" : "1\x1f";
  joined += normalize_text(text_a);
  if (text_b) {
    joined += '\x1f';
    joined += normalize_text(*text_b);
  }
  const XXH128_hash_t h = XXH3_128bits(joined.data(), joined.size());
  return fmt::format("k{:016x}{:016x}", h.high64, h.low64);
}

std::string_view path_name(LookupPath path) {
  switch (path) {
    case LookupPath::kExact: return "exact";
    case LookupPath::kNear: return "near";
    case LookupPath::kMiss: return "miss";
  }
  return "miss";
}

struct OldLogitCache::Impl {
  std::filesystem::path path;
  CacheOptions options;
  std::size_t num_labels = 0;
  std::size_t dim = 0;
  Db db;
  mutable std::mutex db_mutex;  // one connection, statements used one at a time
  Stmt find_exact, find_by_id, upsert, version_by_tag, version_latest, latest_tag;

  // OldLogitCache::open's steps.
  std::pair<std::int64_t, std::vector<std::string>> read_schema();
  void create_schema(bool memory);
  void check_format();
  void prepare_statements();

  struct VersionIndex {
    std::unique_ptr<VectorIndex> index;
  };
  mutable std::shared_mutex index_mutex;
  mutable std::map<std::int64_t, VersionIndex> indexes;  // version id -> derived index

  [[noreturn]] void fail(std::string_view what) const {
    const int code = sqlite3_errcode(db.get());
    if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) {
      throw IoError(fmt::format(
          "{}: old-logit cache is damaged ({}: {}); restore it from a backup or rebuild it with 'flipless cache add'",
          path.string(), what, sqlite3_errmsg(db.get())));
    }
    throw IoError(fmt::format("{}: old-logit cache: {}: {}", path.string(), what, sqlite3_errmsg(db.get())));
  }

  // PRAGMA quick_check or integrity_check; throws IoError naming SQLite's first complaint.
  void check_integrity(IntegrityCheck check) const {
    if (check == IntegrityCheck::kNone) return;
    const char* pragma = check == IntegrityCheck::kFull ? "integrity_check" : "quick_check";
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db.get(), fmt::format("PRAGMA {}(1)", pragma).c_str(), -1, &raw, nullptr) != SQLITE_OK)
      fail(pragma);
    Stmt s(raw);
    const int rc = sqlite3_step(raw);
    if (rc != SQLITE_ROW) fail(pragma);
    std::string first = reinterpret_cast<const char*>(sqlite3_column_text(raw, 0));
    if (first != "ok") {
      std::replace(first.begin(), first.end(), '\n', ' ');  // one line: the CLI prints it as it is
      throw IoError(
          fmt::format("{}: old-logit cache is damaged (SQLite {}: {}); restore it from a backup or rebuild it with "
                      "'flipless cache add'",
                      path.string(), pragma, first));
    }
  }

  void exec(const char* sql) const {
    char* message = nullptr;
    if (sqlite3_exec(db.get(), sql, nullptr, nullptr, &message) != SQLITE_OK) {
      const std::string m = message ? message : "unknown error";
      sqlite3_free(message);
      throw IoError(fmt::format("{}: old-logit cache: {}", path.string(), m));
    }
  }

  Stmt prepare(const char* sql) const {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(db.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK) fail("prepare");
    return Stmt(s);
  }

  // Steps a statement expected to yield rows or finish; returns true on a row.
  bool step(sqlite3_stmt* s) const {
    const int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("query");
  }

  std::optional<std::string> meta(const char* name) const {
    Stmt s = prepare("SELECT value FROM meta WHERE name = ?");
    sqlite3_bind_text(s.get(), 1, name, -1, SQLITE_STATIC);
    if (!step(s.get())) return std::nullopt;
    return std::string(reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 0)));
  }

  std::size_t meta_size(const char* name) const {
    const auto v = meta(name);
    char* end = nullptr;
    const unsigned long long n = v ? std::strtoull(v->c_str(), &end, 10) : 0;
    if (!v || end == v->c_str() || *end != '\0' || n == 0) {
      throw IoError(fmt::format("{}: old-logit cache: meta field '{}' is missing or not a positive number", path.string(), name));
    }
    return static_cast<std::size_t>(n);
  }

  // (id, embedding_model) of a version (the latest when tag is empty); nullopt when unknown.
  std::optional<std::pair<std::int64_t, std::string>> version(std::string_view tag) const {
    // Run on every look-up: prepared once at open.
    sqlite3_stmt* s = tag.empty() ? version_latest.get() : version_by_tag.get();
    sqlite3_reset(s);
    if (!tag.empty()) sqlite3_bind_text(s, 1, tag.data(), static_cast<int>(tag.size()), SQLITE_TRANSIENT);
    if (!step(s)) return std::nullopt;
    std::pair out{sqlite3_column_int64(s, 0), std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, 1)))};
    sqlite3_reset(s);
    return out;
  }

  // A version's generation (bumped by every put into it).
  std::int64_t generation(std::int64_t version_id) const {
    Stmt s = prepare("SELECT generation FROM versions WHERE id = ?");
    sqlite3_bind_int64(s.get(), 1, version_id);
    if (!step(s.get())) fail("read a version");
    return sqlite3_column_int64(s.get(), 0);
  }

  // Where a version's HNSW snapshot lives: <cache>.index/v<id>.hnsw plus a .json that says which
  // generation it holds and the graph file's size and hash; none for in-memory caches.
  std::optional<std::filesystem::path> snapshot_of(std::int64_t version_id) const {
    if (path == ":memory:" || options.index.kind == "exact") return std::nullopt;
    return std::filesystem::path(path.string() + ".index") / fmt::format("v{}.hnsw", version_id);
  }

  // The snapshot of this generation, or null when there is none or it does not check out.
  std::unique_ptr<VectorIndex> load_snapshot(const std::filesystem::path& graph, std::int64_t gen) const {
    std::error_code ec;
    const auto card_path = std::filesystem::path(graph.string() + ".json");
    if (!std::filesystem::exists(card_path, ec) || !std::filesystem::exists(graph, ec)) return nullptr;
    try {
      std::ifstream in(card_path);
      const auto card = nlohmann::json::parse(in);
      if (card.at("generation").get<std::int64_t>() != gen || card.at("dim").get<std::size_t>() != dim ||
          card.at("bytes").get<std::uintmax_t>() != std::filesystem::file_size(graph) || card.at("hash").get<std::string>() != fmt::format("{:016x}", core::hash_file(graph))) {
        return nullptr;
      }
      return load_index(graph, dim, options.index);
    } catch (const std::exception&) {
      return nullptr;  // unreadable or stale: rebuild from the database
    }
  }

  // Best effort: a snapshot that cannot be written only costs the next start a rebuild.
  void save_snapshot(const VectorIndex& index, const std::filesystem::path& graph, std::int64_t gen) const {
    try {
      std::filesystem::create_directories(graph.parent_path());
      const auto tmp = std::filesystem::path(graph.string() + ".tmp");
      if (!index.save(tmp)) return;
      const nlohmann::json card = {{"generation", gen}, {"dim", dim}, {"bytes", std::filesystem::file_size(tmp)}, {"hash", fmt::format("{:016x}", core::hash_file(tmp))}};
      std::filesystem::rename(tmp, graph);
      core::write_file_atomic(graph.string() + ".json", card.dump());
    } catch (const std::exception&) {
    }
  }

  // The derived index of a version: a current snapshot when there is one, else built from the
  // database (and snapshotted when it is an HNSW graph). Callers hold index_mutex exclusively.
  VectorIndex& index_of(std::int64_t version_id) const {
    auto& slot = indexes[version_id];
    if (slot.index) return *slot.index;
    const auto snapshot = snapshot_of(version_id);
    std::int64_t gen = 0;
    {
      std::lock_guard db_lock(db_mutex);
      gen = generation(version_id);
    }
    if (snapshot && (slot.index = load_snapshot(*snapshot, gen))) return *slot.index;
    slot.index = make_index(dim, options.index);
    {
      std::lock_guard db_lock(db_mutex);
      Stmt s = prepare("SELECT id, embedding FROM entries WHERE version = ? AND embedding IS NOT NULL");
      sqlite3_bind_int64(s.get(), 1, version_id);
      std::vector<float> vectors;
      std::vector<std::int64_t> ids;
      constexpr std::size_t kChunk = 4096;
      while (step(s.get())) {
        const int bytes = sqlite3_column_bytes(s.get(), 1);
        if (static_cast<std::size_t>(bytes) != dim * sizeof(float)) {
          throw IoError(fmt::format("{}: old-logit cache: entry {} has a {}-byte embedding, want {}", path.string(),
                                    sqlite3_column_int64(s.get(), 0), bytes, dim * sizeof(float)));
        }
        const auto* blob = static_cast<const float*>(sqlite3_column_blob(s.get(), 1));
        vectors.insert(vectors.end(), blob, blob + dim);
        ids.push_back(sqlite3_column_int64(s.get(), 0));
        if (ids.size() == kChunk) {
          slot.index->add(vectors, ids);
          vectors.clear();
          ids.clear();
        }
      }
      slot.index->add(vectors, ids);
    }
    if (snapshot) save_snapshot(*slot.index, *snapshot, gen);
    return *slot.index;
  }

  std::vector<float> logits_blob(sqlite3_stmt* s, int column) const {
    const int bytes = sqlite3_column_bytes(s, column);
    if (static_cast<std::size_t>(bytes) != num_labels * sizeof(float)) {
      throw IoError(fmt::format("{}: old-logit cache: an entry has {} bytes of logits, want {}", path.string(), bytes,
                                num_labels * sizeof(float)));
    }
    auto out = floats_of(sqlite3_column_blob(s, column), bytes);
    for (const float v : out) {
      if (!std::isfinite(v)) {
        throw IoError(fmt::format(
            "{}: old-logit cache is damaged (an entry's logits are not finite); rebuild it with 'flipless cache add'",
            path.string()));
      }
    }
    return out;
  }
};

OldLogitCache::OldLogitCache(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
OldLogitCache::~OldLogitCache() = default;

// The application id and the table names; a file that is not an SQLite database fails here.
std::pair<std::int64_t, std::vector<std::string>> OldLogitCache::Impl::read_schema() {
  sqlite3* raw = db.get();
  std::int64_t application_id = 0;
  std::vector<std::string> tables;
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(raw, "PRAGMA application_id", -1, &s, nullptr) != SQLITE_OK) {
    throw IoError(fmt::format("{}: not a flipless old-logit cache ({})", path.string(), sqlite3_errmsg(raw)));
  }
  Stmt stmt(s);
  const int stepped = sqlite3_step(s);
  if (stepped == SQLITE_NOTADB)
    throw IoError(fmt::format("{}: not a flipless old-logit cache (not an SQLite database)", path.string()));
  if (stepped != SQLITE_ROW) fail("read the application id");
  application_id = sqlite3_column_int64(s, 0);
  s = nullptr;
  if (sqlite3_prepare_v2(
          raw, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name", -1,
          &s, nullptr) != SQLITE_OK) {
    throw IoError(fmt::format("{}: not a flipless old-logit cache ({})", path.string(), sqlite3_errmsg(raw)));
  }
  stmt.reset(s);
  while (step(s)) tables.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)));
  return {application_id, tables};
}

// A new cache: its application id, tables and meta rows, in one transaction.
void OldLogitCache::Impl::create_schema(bool memory) {
  if (!memory) exec("PRAGMA journal_mode = WAL");
  exec(fmt::format("PRAGMA application_id = {}", kCacheApplicationId).c_str());
  exec(
      "BEGIN IMMEDIATE;"
      "CREATE TABLE meta(name TEXT PRIMARY KEY, value TEXT NOT NULL);"
      "CREATE TABLE versions(id INTEGER PRIMARY KEY AUTOINCREMENT, tag TEXT NOT NULL UNIQUE,"
      " embedding_model TEXT NOT NULL, created TEXT NOT NULL, generation INTEGER NOT NULL DEFAULT 0);"
      "CREATE TABLE entries(id INTEGER PRIMARY KEY, version INTEGER NOT NULL REFERENCES versions(id), key TEXT NOT "
      "NULL,"
      " old_logits BLOB NOT NULL, embedding BLOB, UNIQUE(version, key));");
  const std::string insert_meta = fmt::format(
      "INSERT INTO meta VALUES ('format', '{}'), ('version', '{}'), ('num_labels', '{}'), ('dim', '{}'); COMMIT;",
      kFormat, kFormatVersion, options.num_labels, options.dim);
  exec(insert_meta.c_str());
}

// The meta table says flipless cache, format version this build reads.
void OldLogitCache::Impl::check_format() {
  const auto format = meta("format");
  if (format != kFormat) {
    throw IoError(fmt::format("{}: not a flipless old-logit cache (format '{}')", path.string(), format.value_or("")));
  }
  if (meta("version") == "1") {
    throw IoError(fmt::format("{}: old-logit cache format version 1 (keys hashed with FNV-1a) is not read by this build, whose keys are "
                              "XXH3-128: rebuild it with flipless cache add from the old model's predictions",
                              path.string()));
  }
  if (meta("version") != std::to_string(kFormatVersion)) {
    throw IoError(fmt::format("{}: old-logit cache format version '{}' is not supported (this build reads {})", path.string(),
                              meta("version").value_or(""), kFormatVersion));
  }
}

void OldLogitCache::Impl::prepare_statements() {
  find_exact = prepare("SELECT old_logits FROM entries WHERE version = ? AND key = ?");
  find_by_id = prepare("SELECT old_logits FROM entries WHERE id = ?");
  version_by_tag = prepare("SELECT id, embedding_model FROM versions WHERE tag = ?");
  version_latest = prepare("SELECT id, embedding_model FROM versions ORDER BY id DESC LIMIT 1");
  latest_tag = prepare("SELECT tag FROM versions ORDER BY id DESC LIMIT 1");
  if (!options.read_only) {
    upsert = prepare(
        "INSERT INTO entries(version, key, old_logits, embedding) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(version, key) DO UPDATE SET old_logits = excluded.old_logits, embedding = excluded.embedding RETURNING id");
  }
}

std::unique_ptr<OldLogitCache> OldLogitCache::open(const std::filesystem::path& path, const CacheOptions& options) {
  options.index.validate();
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->options = options;
  const bool memory = path == ":memory:";
  if (options.read_only && !memory && !std::filesystem::exists(path)) {
    throw IoError(fmt::format("{}: old-logit cache: no such file", path.string()));
  }
  const int flags = (options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_FULLMUTEX;
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.string().c_str(), &raw, flags, nullptr);
  impl->db.reset(raw);
  if (rc != SQLITE_OK) impl->fail("cannot open");
  sqlite3_busy_timeout(raw, 10000);
  // Reading the schema is the first access: a file that is not a database fails here.
  const auto [application_id, tables] = impl->read_schema();
  const auto has = [&](std::string_view t) { return std::find(tables.begin(), tables.end(), t) != tables.end(); };
  const bool ours = has("meta") && has("versions") && has("entries");
  if (application_id != 0 && application_id != kCacheApplicationId) {
    throw IoError(fmt::format(
        "{}: not a flipless old-logit cache (an SQLite database of another application, id {:#x}); nothing was written",
        path.string(), application_id));
  }
  if (!tables.empty() && !ours) {
    throw IoError(
        fmt::format("{}: not a flipless old-logit cache (an SQLite database with tables {}); nothing was written",
                    path.string(), fmt::join(tables, ", ")));
  }
  if (tables.empty()) {
    if (application_id == kCacheApplicationId) {
      throw IoError(
          fmt::format("{}: old-logit cache is damaged (its tables are missing); rebuild it with 'flipless cache add'",
                      path.string()));
    }
    if (options.read_only)
      throw IoError(fmt::format("{}: not a flipless old-logit cache (an empty database)", path.string()));
    if (options.num_labels == 0 || options.dim == 0) {
      throw ConfigError(fmt::format("{}: a new old-logit cache needs num_labels and dim", path.string()));
    }
    impl->create_schema(memory);
  } else if (!memory) {
    impl->check_integrity(options.check);
  }
  if (!memory && !options.read_only) impl->exec("PRAGMA journal_mode = WAL");
  // WAL + NORMAL: a committed transaction survives a killed process (not a power cut mid-sync).
  impl->exec("PRAGMA synchronous = NORMAL");
  impl->check_format();
  // A cache written before the application id: mark it, now that its meta table says it is one.
  if (application_id == 0 && !options.read_only)
    impl->exec(fmt::format("PRAGMA application_id = {}", kCacheApplicationId).c_str());
  impl->num_labels = impl->meta_size("num_labels");
  impl->dim = impl->meta_size("dim");
  if (options.num_labels != 0 && options.num_labels != impl->num_labels) {
    throw ConfigError(fmt::format("{}: the cache holds {} labels per entry, not {}", path.string(), impl->num_labels, options.num_labels));
  }
  if (options.dim != 0 && options.dim != impl->dim) {
    throw ConfigError(fmt::format("{}: the cache holds {}-d embeddings, not {}-d", path.string(), impl->dim, options.dim));
  }
  impl->prepare_statements();
  return std::unique_ptr<OldLogitCache>(new OldLogitCache(std::move(impl)));
}

std::size_t OldLogitCache::num_labels() const { return impl_->num_labels; }
std::size_t OldLogitCache::dim() const { return impl_->dim; }
const std::filesystem::path& OldLogitCache::path() const { return impl_->path; }

void OldLogitCache::put(std::string_view tag, std::span<const CacheEntry> entries, std::string_view embedding_model) {
  auto& m = *impl_;
  if (m.options.read_only) throw ConfigError(fmt::format("{}: the cache was opened read-only", m.path.string()));
  if (tag.empty()) throw InputError("old-logit cache: a version tag must not be empty");
  for (const auto& e : entries) {
    if (e.key.empty()) throw InputError("old-logit cache: an entry has an empty key");
    if (e.old_logits.size() != m.num_labels) {
      throw InputError(fmt::format("old-logit cache: entry {} has {} logits, the cache holds {}", e.key, e.old_logits.size(), m.num_labels));
    }
    if (!e.embedding.empty() && e.embedding.size() != m.dim) {
      throw InputError(fmt::format("old-logit cache: entry {} has a {}-d embedding, the cache holds {}-d", e.key, e.embedding.size(), m.dim));
    }
    for (const float v : e.old_logits) {
      if (!std::isfinite(v))
        throw InputError(fmt::format("old-logit cache: entry {} has a logit that is not finite ({})", e.key, v));
    }
    for (const float v : e.embedding) {
      if (!std::isfinite(v))
        throw InputError(
            fmt::format("old-logit cache: entry {} has an embedding value that is not finite ({})", e.key, v));
    }
  }
  std::int64_t version_id = 0;
  std::vector<std::int64_t> ids(entries.size());
  {
    std::lock_guard lock(m.db_mutex);
    m.exec("BEGIN IMMEDIATE");
    try {
      auto v = m.version(tag);
      if (!v) {
        Stmt s = m.prepare("INSERT INTO versions(tag, embedding_model, created) VALUES (?, ?, ?)");
        const std::string created = now_utc();
        sqlite3_bind_text(s.get(), 1, tag.data(), static_cast<int>(tag.size()), SQLITE_TRANSIENT);
        sqlite3_bind_text(s.get(), 2, embedding_model.data(), static_cast<int>(embedding_model.size()), SQLITE_TRANSIENT);
        sqlite3_bind_text(s.get(), 3, created.c_str(), -1, SQLITE_TRANSIENT);
        m.step(s.get());
        version_id = sqlite3_last_insert_rowid(m.db.get());
      } else {
        version_id = v->first;
      }
      {
        // Every change of a version's entries bumps its generation: a saved index snapshot of an
        // older generation is stale.
        Stmt bump = m.prepare("UPDATE versions SET generation = generation + 1 WHERE id = ?");
        sqlite3_bind_int64(bump.get(), 1, version_id);
        m.step(bump.get());
      }
      sqlite3_stmt* s = m.upsert.get();
      for (std::size_t i = 0; i < entries.size(); ++i) {
        const auto& e = entries[i];
        sqlite3_reset(s);
        sqlite3_bind_int64(s, 1, version_id);
        sqlite3_bind_text(s, 2, e.key.data(), static_cast<int>(e.key.size()), SQLITE_STATIC);
        sqlite3_bind_blob(s, 3, e.old_logits.data(), static_cast<int>(e.old_logits.size() * sizeof(float)), SQLITE_STATIC);
        if (e.embedding.empty()) {
          sqlite3_bind_null(s, 4);
        } else {
          sqlite3_bind_blob(s, 4, e.embedding.data(), static_cast<int>(e.embedding.size() * sizeof(float)), SQLITE_STATIC);
        }
        if (!m.step(s)) m.fail("insert");
        ids[i] = sqlite3_column_int64(s, 0);
        while (m.step(s)) {
        }
      }
      sqlite3_reset(s);
      m.exec("COMMIT");
    } catch (...) {
      sqlite3_reset(m.upsert.get());
      sqlite3_exec(m.db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
  // Committed: keep a built index current (an unbuilt one reads the database when first used).
  std::unique_lock lock(m.index_mutex);
  const auto it = m.indexes.find(version_id);
  if (it == m.indexes.end() || !it->second.index) return;
  std::vector<float> vectors;
  std::vector<std::int64_t> with_embedding;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].embedding.empty()) continue;
    vectors.insert(vectors.end(), entries[i].embedding.begin(), entries[i].embedding.end());
    with_embedding.push_back(ids[i]);
  }
  it->second.index->add(vectors, with_embedding);
}

void OldLogitCache::prepare(std::string_view tag) const {
  auto& m = *impl_;
  std::int64_t version_id = 0;
  {
    std::lock_guard lock(m.db_mutex);
    const auto v = m.version(tag);
    if (!v) return;
    version_id = v->first;
  }
  std::unique_lock exclusive(m.index_mutex);
  m.index_of(version_id);
}

std::vector<VersionInfo> OldLogitCache::versions() const {
  auto& m = *impl_;
  std::lock_guard lock(m.db_mutex);
  Stmt s = m.prepare(
      "SELECT v.tag, v.embedding_model, v.created, (SELECT count(*) FROM entries e WHERE e.version = v.id) FROM versions v ORDER BY v.id");
  std::vector<VersionInfo> out;
  while (m.step(s.get())) {
    out.push_back({reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 0)), reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 1)),
                   reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 2)), static_cast<std::size_t>(sqlite3_column_int64(s.get(), 3))});
  }
  return out;
}

std::optional<std::string> OldLogitCache::latest_version() const {
  auto& m = *impl_;
  std::lock_guard lock(m.db_mutex);
  sqlite3_stmt* s = m.latest_tag.get();
  sqlite3_reset(s);
  if (!m.step(s)) return std::nullopt;
  std::string tag = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  sqlite3_reset(s);
  return tag;
}

std::vector<CacheEntry> OldLogitCache::entries_with_embeddings(std::string_view tag) const {
  auto& m = *impl_;
  std::lock_guard lock(m.db_mutex);
  const auto v = m.version(tag);
  if (!v) return {};
  Stmt s = m.prepare("SELECT key, old_logits, embedding FROM entries WHERE version = ? AND embedding IS NOT NULL ORDER BY id");
  sqlite3_bind_int64(s.get(), 1, v->first);
  std::vector<CacheEntry> out;
  while (m.step(s.get())) {
    CacheEntry e;
    const auto* key = sqlite3_column_text(s.get(), 0);
    e.key = key ? reinterpret_cast<const char*>(key) : "";
    e.old_logits = m.logits_blob(s.get(), 1);
    const int bytes = sqlite3_column_bytes(s.get(), 2);
    if (static_cast<std::size_t>(bytes) != m.dim * sizeof(float)) {
      throw IoError(fmt::format("{}: old-logit cache: entry '{}' has a {}-byte embedding, want {}", m.path.string(), e.key, bytes, m.dim * sizeof(float)));
    }
    e.embedding = floats_of(sqlite3_column_blob(s.get(), 2), bytes);
    for (const float x : e.embedding) {
      if (!std::isfinite(x)) {
        throw IoError(fmt::format("{}: old-logit cache is damaged (entry '{}' has an embedding value that is not finite)", m.path.string(), e.key));
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::size_t OldLogitCache::size(std::string_view tag) const {
  auto& m = *impl_;
  std::lock_guard lock(m.db_mutex);
  const auto v = m.version(tag);
  if (!v) return 0;
  Stmt s = m.prepare("SELECT count(*) FROM entries WHERE version = ?");
  sqlite3_bind_int64(s.get(), 1, v->first);
  m.step(s.get());
  return static_cast<std::size_t>(sqlite3_column_int64(s.get(), 0));
}

std::vector<Lookup> OldLogitCache::lookup(std::span<const std::string> keys, std::span<const float> embeddings,
                                          const LookupOptions& options) const {
  auto& m = *impl_;
  if (!embeddings.empty() && embeddings.size() != keys.size() * m.dim) {
    throw InputError(fmt::format("old-logit cache: {} embedding floats for {} inputs of {} dimensions", embeddings.size(), keys.size(), m.dim));
  }
  std::vector<Lookup> out(keys.size());
  std::int64_t version_id = 0;
  std::vector<std::size_t> missed;
  {
    std::lock_guard lock(m.db_mutex);
    const auto v = m.version(options.version);
    if (!v) {
      if (options.version.empty()) return out;  // an empty cache: everything misses
      throw InputError(fmt::format("{}: the cache has no version '{}'", m.path.string(), options.version));
    }
    version_id = v->first;
    sqlite3_stmt* s = m.find_exact.get();
    for (std::size_t i = 0; i < keys.size(); ++i) {
      sqlite3_reset(s);
      sqlite3_bind_int64(s, 1, version_id);
      sqlite3_bind_text(s, 2, keys[i].data(), static_cast<int>(keys[i].size()), SQLITE_STATIC);
      if (m.step(s)) {
        out[i].path = LookupPath::kExact;
        out[i].old_logits = m.logits_blob(s, 0);
      } else {
        missed.push_back(i);
      }
    }
    sqlite3_reset(s);
  }
  if (missed.empty() || embeddings.empty() || !options.nearest) return out;
  std::vector<float> queries;
  queries.reserve(missed.size() * m.dim);
  for (const auto i : missed) queries.insert(queries.end(), embeddings.begin() + static_cast<std::ptrdiff_t>(i * m.dim),
                                             embeddings.begin() + static_cast<std::ptrdiff_t>((i + 1) * m.dim));
  std::vector<std::vector<Neighbour>> found;
  {
    std::shared_lock shared(m.index_mutex);
    const auto it = m.indexes.find(version_id);
    if (it != m.indexes.end() && it->second.index) {
      found = it->second.index->search(queries, 1);
    } else {
      shared.unlock();
      std::unique_lock exclusive(m.index_mutex);
      found = m.index_of(version_id).search(queries, 1);
    }
  }
  std::lock_guard lock(m.db_mutex);
  sqlite3_stmt* s = m.find_by_id.get();
  for (std::size_t j = 0; j < missed.size(); ++j) {
    if (found[j].empty()) continue;
    const auto& nb = found[j].front();
    if (options.max_distance && nb.distance > *options.max_distance) continue;
    sqlite3_reset(s);
    sqlite3_bind_int64(s, 1, nb.id);
    if (!m.step(s)) continue;  // replaced since the search
    auto& r = out[missed[j]];
    r.path = LookupPath::kNear;
    r.old_logits = m.logits_blob(s, 0);
    r.distance = nb.distance;
  }
  sqlite3_reset(s);
  return out;
}

}  // namespace flipless::cache
