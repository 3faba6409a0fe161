// Fuzzes the prediction-file readers (JSONL and CSV):
// any input must parse or throw flipless::Error, never crash, hang or leak.
#include <cstddef>
#include <cstdint>
#include <string>

#include "flipless/core/error.h"
#include "flipless/data/predictions.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace flipless;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  for (const char* name : {"fuzz.jsonl", "fuzz.csv"}) {
    try {
      data::read_predictions(core::InputFile::from_string(bytes, name), {.keep_scores = true});
    } catch (const Error&) {
    }
  }
  return 0;
}
