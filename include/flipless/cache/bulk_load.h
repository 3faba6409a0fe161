#pragma once
// Filling an OldLogitCache from files: the old model's prediction file (its logits) and the new
// model's embeddings (a prediction file with "embedding" arrays), matched to a dataset by id.
#include <vector>

#include "flipless/cache/logit_cache.h"
#include "flipless/data/example.h"
#include "flipless/data/predictions.h"

namespace flipless::cache {

// One entry per example of `dataset`: its cache_key, the old logits of the row with its id in
// `old` (read with keep_scores; probabilities become log-probabilities) and, when `embeddings`
// is given (read with keep_embeddings), that file's embedding for the id. Throws InputError
// naming the file and the id when a row is missing.
std::vector<CacheEntry> entries_from_predictions(const data::Dataset& dataset, const data::PredictionFile& old,
                                                 const data::PredictionFile* embeddings = nullptr);

}  // namespace flipless::cache
