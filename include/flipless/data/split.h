#pragma once
// The validation split carved from train for model selection, so dev stays the regression
// set and is never used to choose anything; subsamples and row subsets of a dataset.
#include <cstdint>
#include <vector>

#include "flipless/data/example.h"

namespace flipless::data {

struct TrainValidationSplit {
  Dataset train;
  Dataset validation;
};

// Stratified and deterministic: within each label, examples are ordered by a hash of
// (seed, id) and the first round(fraction * count) go to validation. The result depends only
// on the ids, labels and seed, not on file order. Throws ConfigError unless 0 < fraction < 1,
// and InputError for unlabelled data.
TrainValidationSplit split_train_validation(const Dataset& train, double validation_fraction,
                                            std::uint64_t seed);

// The first `n` examples in an order fixed by (seed, id), kept in their original order: a
// deterministic subsample. n = 0 or n >= size returns the dataset unchanged.
Dataset subsample(const Dataset& dataset, std::size_t n, std::uint64_t seed);

// The examples at `rows` (0-based indices into `dataset`), in that order, with its name and
// labels. Throws InputError for an index out of range.
Dataset rows_of(const Dataset& dataset, const std::vector<std::int64_t>& rows);

}  // namespace flipless::data
