#include "flipless/cache/bulk_load.h"

#include <fmt/format.h>

#include <string_view>
#include <unordered_map>

#include "flipless/core/error.h"

namespace flipless::cache {

std::vector<CacheEntry> entries_from_predictions(const data::Dataset& dataset, const data::PredictionFile& old,
                                                 const data::PredictionFile* embeddings) {
  const auto logits = data::score_logits(old);
  const auto k = old.num_scores;
  auto index = [](const data::PredictionFile& f) {
    std::unordered_map<std::string_view, std::size_t> rows;
    for (std::size_t i = 0; i < f.size(); ++i) rows.emplace(f.ids[i], i);
    return rows;
  };
  const auto old_rows = index(old);
  std::unordered_map<std::string_view, std::size_t> embedding_rows;
  if (embeddings) {
    if (embeddings->dim == 0 || embeddings->embeddings.size() != embeddings->size() * embeddings->dim) {
      throw InputError(fmt::format("{}: rows need an 'embedding' array (the new model's pooled embedding)", embeddings->source));
    }
    embedding_rows = index(*embeddings);
  }
  std::vector<CacheEntry> out(dataset.size());
  for (std::size_t i = 0; i < dataset.size(); ++i) {
    const auto& e = dataset.examples[i];
    const auto o = old_rows.find(e.id);
    if (o == old_rows.end()) throw InputError(fmt::format("{}: no row with id '{}' of {}", old.source, e.id, dataset.name));
    auto& entry = out[i];
    entry.key = cache_key(e.text_a, e.text_b);
    entry.old_logits.assign(logits.begin() + static_cast<std::ptrdiff_t>(o->second * k), logits.begin() + static_cast<std::ptrdiff_t>((o->second + 1) * k));
    if (embeddings) {
      const auto m = embedding_rows.find(e.id);
      if (m == embedding_rows.end()) throw InputError(fmt::format("{}: no row with id '{}' of {}", embeddings->source, e.id, dataset.name));
      const auto d = embeddings->dim;
      entry.embedding.assign(embeddings->embeddings.begin() + static_cast<std::ptrdiff_t>(m->second * d),
                             embeddings->embeddings.begin() + static_cast<std::ptrdiff_t>((m->second + 1) * d));
    }
  }
  return out;
}

}  // namespace flipless::cache
