#pragma once
// Shape checks shared by the vector indexes (exact and HNSW).
#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "flipless/core/error.h"

namespace flipless::cache::detail {

// vectors (n, dim) for ids (n,). Throws InputError.
inline void check_rows(std::span<const float> vectors, std::span<const std::int64_t> ids, std::size_t dim) {
  if (vectors.size() != ids.size() * dim) {
    throw InputError(fmt::format("vector index: {} floats for {} ids of {} dimensions (want {})", vectors.size(), ids.size(), dim,
                                 ids.size() * dim));
  }
}

// queries (n, dim). Throws InputError.
inline void check_queries(std::span<const float> queries, std::size_t dim) {
  if (queries.size() % dim != 0) {
    throw InputError(fmt::format("vector index: {} query floats is not a multiple of the {} dimensions", queries.size(), dim));
  }
}

}  // namespace flipless::cache::detail
