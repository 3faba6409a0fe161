// The old-logit cache (cache/logit_cache.h): the same SQLite files `flipless cache` and
// `flipless serve` read and write.
#include <fmt/format.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bindings.h"
#include "flipless/cache/logit_cache.h"
#include "flipless/core/error.h"

namespace flipless::python {
namespace {

using namespace nb::literals;

class Cache {
 public:
  explicit Cache(std::unique_ptr<cache::OldLogitCache> cache) : cache_(std::move(cache)) {}
  cache::OldLogitCache& get() const {
    if (!cache_) throw IoError("the cache is closed");
    return *cache_;
  }
  void close() { cache_.reset(); }
  bool closed() const { return !cache_; }

 private:
  std::unique_ptr<cache::OldLogitCache> cache_;
};

Cache open(const std::string& path, std::size_t num_labels, std::size_t dim, bool read_only, const std::string& index,
           std::size_t exact_threshold, std::size_t ef_search) {
  cache::CacheOptions options;
  options.num_labels = num_labels;
  options.dim = dim;
  options.read_only = read_only;
  options.index.kind = index;
  options.index.exact_threshold = exact_threshold;
  options.index.hnsw.ef_search = ef_search;
  options.index.validate();
  nb::gil_scoped_release release;
  return Cache(cache::OldLogitCache::open(path, options));
}

void put(const Cache& self, const std::string& tag, const std::vector<std::string>& keys,
         const In<float, nb::ndim<2>>& old_logits, const nb::object& embeddings, const std::string& embedding_model) {
  const std::size_t n = keys.size();
  if (old_logits.shape(0) != n) {
    throw InputError(fmt::format("old_logits: {} rows for {} inputs", old_logits.shape(0), n));
  }
  const std::size_t k = old_logits.shape(1);
  std::optional<In<float, nb::ndim<2>>> emb;
  if (!embeddings.is_none()) {
    emb = nb::cast<In<float, nb::ndim<2>>>(embeddings, false);
    if (emb->shape(0) != n) throw InputError(fmt::format("embeddings: {} rows for {} inputs", emb->shape(0), n));
  }
  std::vector<cache::CacheEntry> entries(n);
  for (std::size_t i = 0; i < n; ++i) {
    entries[i].key = keys[i];
    entries[i].old_logits.assign(old_logits.data() + i * k, old_logits.data() + (i + 1) * k);
    for (const float v : entries[i].old_logits) {
      if (!std::isfinite(v)) throw InputError(fmt::format("old_logits: row {} holds a value that is not finite", i));
    }
    if (emb) {
      const std::size_t d = emb->shape(1);
      entries[i].embedding.assign(emb->data() + i * d, emb->data() + (i + 1) * d);
    }
  }
  nb::gil_scoped_release release;
  self.get().put(tag, entries, embedding_model);
}

// (paths (n,), old_logits (n, k) with NaN rows for misses, distances (n,)).
nb::tuple lookup(const Cache& self, const std::vector<std::string>& keys, const nb::object& embeddings,
                 const std::string& version, bool nearest, std::optional<float> max_distance) {
  std::optional<In<float, nb::ndim<2>>> emb;
  std::span<const float> queries;
  if (!embeddings.is_none()) {
    emb = nb::cast<In<float, nb::ndim<2>>>(embeddings, false);
    if (emb->shape(0) != keys.size()) {
      throw InputError(fmt::format("embeddings: {} rows for {} inputs", emb->shape(0), keys.size()));
    }
    queries = {emb->data(), emb->size()};
  }
  cache::LookupOptions options;
  options.version = version;
  options.nearest = nearest;
  options.max_distance = max_distance;
  std::vector<cache::Lookup> found;
  std::size_t k = 0;
  {
    nb::gil_scoped_release release;
    found = self.get().lookup(keys, queries, options);
    k = self.get().num_labels();
  }
  const std::size_t n = found.size();
  std::vector<float> logits(n * k, std::numeric_limits<float>::quiet_NaN());
  std::vector<float> distances(n, std::numeric_limits<float>::quiet_NaN());
  nb::list paths;
  for (std::size_t i = 0; i < n; ++i) {
    paths.append(std::string(cache::path_name(found[i].path)));
    if (found[i].path == cache::LookupPath::kMiss) continue;
    std::copy(found[i].old_logits.begin(), found[i].old_logits.end(),
              logits.begin() + static_cast<std::ptrdiff_t>(i * k));
    distances[i] = found[i].distance;
  }
  return nb::make_tuple(paths, to_numpy(std::move(logits), n, k), to_numpy(std::move(distances), n));
}

}  // namespace

void bind_cache(nb::module_& m) {
  nb::class_<Cache>(m, "OldLogitCache", "An old-logit cache file (SQLite); see flipless.OldLogitCache.")
      .def_prop_ro(
          "num_labels", [](const Cache& c) { return c.get().num_labels(); }, "Logits per entry.")
      .def_prop_ro(
          "dim", [](const Cache& c) { return c.get().dim(); }, "Embedding width; 0 when the cache holds none.")
      .def_prop_ro(
          "path", [](const Cache& c) { return c.get().path().string(); }, "The cache file.")
      .def_prop_ro("closed", &Cache::closed, "True once close() has run.")
      .def("put", &put, "tag"_a, "keys"_a, "old_logits"_a.noconvert(), "embeddings"_a.none(), "embedding_model"_a,
           "Adds or replaces entries (keys (n,), float32 old_logits (n, k), float32 embeddings (n, d) or None) of "
           "version "
           "tag in one transaction.")
      .def("lookup", &lookup, "keys"_a, "embeddings"_a.none(), "version"_a, "nearest"_a, "max_distance"_a.none(),
           "Exact, then nearest look-ups: (paths, old_logits with NaN rows on a miss, distances).")
      .def(
          "versions",
          [](const Cache& c) {
            nb::list out;
            for (const auto& v : c.get().versions()) {
              nb::dict d;
              d["tag"] = v.tag;
              d["embedding_model"] = v.embedding_model;
              d["created"] = v.created;
              d["entries"] = v.entries;
              out.append(d);
            }
            return out;
          },
          "Every version, oldest first, as dicts (tag, embedding_model, created, entries).")
      .def(
          "latest_version", [](const Cache& c) { return c.get().latest_version(); },
          "The newest version's tag, or None.")
      .def(
          "size", [](const Cache& c, const std::string& tag) { return c.get().size(tag); }, "tag"_a = "",
          "Entries of a version (the latest when empty); 0 for an unknown tag.")
      .def(
          "prepare",
          [](const Cache& c, const std::string& tag) {
            nb::gil_scoped_release release;
            c.get().prepare(tag);
          },
          "tag"_a = "", "Builds (or loads) a version's nearest-neighbour index now.")
      .def("close", &Cache::close, "Closes the database; later calls raise IoError.");
  m.def("open_cache", &open, "path"_a, "num_labels"_a = 0, "dim"_a = 0, "read_only"_a = false, "index"_a = "auto",
        "exact_threshold"_a = 20000, "ef_search"_a = 256, "Opens (or creates) an old-logit cache.");
  m.def(
      "cache_key",
      [](const std::string& text, const std::optional<std::string>& text_pair) {
        return cache::cache_key(text, text_pair);
      },
      "text"_a, "text_pair"_a.none() = nb::none(),
      "The cache key of an input: \"k\" + 32 hex digits of a 128-bit hash of the normalised text(s).");
  m.def(
      "cache_keys",
      [](const std::vector<std::string>& texts, const std::optional<std::vector<std::string>>& pairs) {
        if (pairs && pairs->size() != texts.size()) {
          throw InputError(fmt::format("text_pairs: {} texts for {} inputs", pairs->size(), texts.size()));
        }
        std::vector<std::string> keys(texts.size());
        for (std::size_t i = 0; i < texts.size(); ++i) {
          keys[i] = cache::cache_key(texts[i], pairs ? std::optional<std::string>((*pairs)[i]) : std::nullopt);
        }
        return keys;
      },
      "texts"_a, "text_pairs"_a.none() = nb::none(), "cache_key of each text (and its pair).");
  m.def("normalize_text", &cache::normalize_text, "text"_a,
        "The normalised form of a text: Unicode NFC, runs of whitespace as one space, trimmed.");
}

}  // namespace flipless::python
