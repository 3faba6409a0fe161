#pragma once
// Datasets addressed by name. Bundled data ships with flipless (SST-2 and MRPC, train and dev,
// gzip-compressed, with provenance); anything else is read from a path the user gives.
//
// Spec forms:
//   sst2:dev, mrpc:train            bundled splits
//   qnli:/data/QNLI/dev.tsv         a GLUE task file at a path
//   /data/reviews.jsonl             a generic CSV/TSV/JSONL file (columns from ColumnSpec)
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "flipless/data/example.h"
#include "flipless/data/readers.h"

namespace flipless::data {

// The folder holding bundled data: $FLIPLESS_DATA_DIR if set, else <prefix>/share/flipless/data
// beside the running binary (an install), else the source tree's data/bundled (a build tree).
// Throws IoError when none exists.
std::filesystem::path bundled_data_dir();

// Names of the bundled datasets ("sst2:train", "sst2:dev", ...).
std::vector<std::string> bundled_dataset_names();

// Loads a dataset from a spec (see above). `columns` applies to generic files only.
Dataset load_dataset(std::string_view spec, const ColumnSpec& columns = {});

}  // namespace flipless::data
