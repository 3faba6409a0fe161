// Fuzzes the safetensors header parser: any bytes must parse or throw flipless::Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "flipless/core/error.h"
#include "flipless/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto f = flipless::io::SafetensorsFile::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    for (const auto& t : f.tensors()) (void)f.data(t);
  } catch (const flipless::Error&) {
  }
  return 0;
}
