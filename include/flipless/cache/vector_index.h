#pragma once
// Nearest-neighbour search over the new model's pooled embeddings, Euclidean as in the paper
// (SPEC.md, "Inference with a cache"). One interface, two indexes: `ExactIndex` (brute force,
// the test oracle and the choice for small caches) and `HnswIndex` (hnswlib's HNSW graph).
// `make_index` picks exact search below a size threshold and switches to HNSW above it.
//
// Vectors and queries are row-major (n, dim) float arrays; ids are caller-chosen int64 values.
// Adding an id again replaces its vector. Not thread-safe for writes: callers serialise add()
// against search() (OldLogitCache holds a shared mutex); concurrent searches are safe.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace flipless::cache {

struct Neighbour {
  std::int64_t id = -1;
  float distance = 0;  // Euclidean (not squared)
};

class VectorIndex {
 public:
  virtual ~VectorIndex() = default;
  virtual std::size_t dim() const = 0;
  virtual std::size_t size() const = 0;
  // Adds vectors (n, dim) under ids (n,). Throws InputError on a size mismatch.
  virtual void add(std::span<const float> vectors, std::span<const std::int64_t> ids) = 0;
  // The k nearest entries of each query (n, dim), closest first; fewer when the index is small.
  virtual std::vector<std::vector<Neighbour>> search(std::span<const float> queries, std::size_t k) const = 0;
  // "exact, 1200 entries" / "hnsw M=16 ef=64, 1000000 entries".
  virtual std::string describe() const = 0;
  // Writes a snapshot that load_index() reads back, when this index is worth one (an HNSW
  // graph: minutes to rebuild at 1M entries); false when it is not. Throws IoError.
  virtual bool save(const std::filesystem::path&) const { return false; }
};

// Brute force over every stored vector: exact, O(n·dim) per query.
class ExactIndex final : public VectorIndex {
 public:
  explicit ExactIndex(std::size_t dim);
  std::size_t dim() const override { return dim_; }
  std::size_t size() const override { return ids_.size(); }
  void add(std::span<const float> vectors, std::span<const std::int64_t> ids) override;
  std::vector<std::vector<Neighbour>> search(std::span<const float> queries, std::size_t k) const override;
  std::string describe() const override;
  // The stored vectors (size, dim) and ids (size,), in insertion order (HNSW is built from them).
  std::span<const float> vectors() const { return vectors_; }
  std::span<const std::int64_t> ids() const { return ids_; }

 private:
  std::size_t dim_;
  std::vector<float> vectors_;
  std::vector<std::int64_t> ids_;
  std::unordered_map<std::int64_t, std::size_t> slot_of_;  // id -> row, so adding an id again replaces it
};

struct HnswOptions {
  std::size_t m = 16;                // graph degree (hnswlib's M)
  std::size_t ef_construction = 200; // candidate list while inserting
  std::size_t ef_search = 256;       // candidate list while searching: 256 finds the true nearest MiniLM
                                     // neighbour 90% of the time at 60k, 64 only 83% (bench/cache_bench)
  std::uint64_t seed = 100;          // level generator seed: same inserts, same graph (with 1 thread)
  std::size_t threads = 1;           // threads inserting a large add() (hnswlib locks per node)
  void validate() const;             // throws ConfigError
};

// hnswlib's HierarchicalNSW with the L2 space; grows its capacity by doubling.
class HnswIndex final : public VectorIndex {
 public:
  HnswIndex(std::size_t dim, HnswOptions options = {});
  ~HnswIndex() override;
  HnswIndex(const HnswIndex&) = delete;
  HnswIndex& operator=(const HnswIndex&) = delete;
  std::size_t dim() const override { return dim_; }
  std::size_t size() const override;
  void add(std::span<const float> vectors, std::span<const std::int64_t> ids) override;
  std::vector<std::vector<Neighbour>> search(std::span<const float> queries, std::size_t k) const override;
  std::string describe() const override;
  bool save(const std::filesystem::path& path) const override;
  // Reads a graph save() wrote. Throws IoError.
  static std::unique_ptr<HnswIndex> load(const std::filesystem::path& path, std::size_t dim, HnswOptions options = {});
  // The search-time candidate list (recall against speed); the graph stays as it is.
  void set_ef_search(std::size_t ef);

 private:
  struct State;
  std::size_t dim_;
  HnswOptions options_;
  std::unique_ptr<State> state_;
};

struct IndexOptions {
  std::string kind = "auto";           // "auto" | "exact" | "hnsw"
  std::size_t exact_threshold = 20000; // auto: exact search below this many entries, HNSW from it
  HnswOptions hnsw;
  void validate() const;               // throws ConfigError
};

// A new, empty index of `dim` dimensions as `options` asks.
std::unique_ptr<VectorIndex> make_index(std::size_t dim, const IndexOptions& options);

// An index as `options` asks, holding the HNSW graph saved at `path` (kind auto or hnsw).
std::unique_ptr<VectorIndex> load_index(const std::filesystem::path& path, std::size_t dim, const IndexOptions& options);

}  // namespace flipless::cache
