// Fuzzes the jsonl dataset reader (and the GLUE reader on the same bytes for tsv): any input
// must parse or throw flipless::Error, never crash, hang or leak.
#include <cstddef>
#include <cstdint>
#include <string>

#include "flipless/core/error.h"
#include "flipless/data/glue.h"
#include "flipless/data/readers.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace flipless;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const auto file = core::InputFile::from_string(bytes, "fuzz.jsonl");
  const data::ColumnSpec columns{.text = "text", .text_pair = "b", .label = "label", .id = "id", .label_names = {}};
  try {
    data::read_table(file, data::TableFormat::kJsonl, columns);
  } catch (const Error&) {
  }
  try {
    data::read_table(file, data::TableFormat::kJsonl, data::ColumnSpec{});
  } catch (const Error&) {
  }
  return 0;
}
