#pragma once
// Two-class data the tiny test vocabulary (tests/golden/nn/tiny-*) covers: sentiment words
// decide the label, filler words pad the sentence. Deterministic for a seed.
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "flipless/data/example.h"

namespace flipless::testing {

inline data::Dataset words_dataset(std::size_t n, std::uint64_t seed) {
  const std::vector<std::string> pos = {"good", "great", "fun", "love"}, neg = {"bad", "boring", "hate", "not"};
  const std::vector<std::string> filler = {"the", "movie", "film", "plot", "story", "actors", "was", "very", "a", "it", "is"};
  std::mt19937_64 rng(seed);
  data::Dataset ds;
  ds.name = "words";
  ds.label_names = {"0", "1"};
  for (std::size_t i = 0; i < n; ++i) {
    const int label = static_cast<int>(i % 2);
    std::string text;
    for (int w = 0; w < 5; ++w) text += filler[rng() % filler.size()] + " ";
    text += (label ? pos : neg)[rng() % 4] + " " + filler[rng() % filler.size()];
    ds.examples.push_back({"w" + std::to_string(i), text, std::nullopt, label});
  }
  return ds;
}

}  // namespace flipless::testing
