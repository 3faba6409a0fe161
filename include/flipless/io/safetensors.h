#pragma once
// The safetensors format (Hugging Face), read and written without any ML library:
//
//   bytes 0-7   N, the header length, unsigned 64-bit little-endian
//   bytes 8..   N bytes of JSON: {"NAME": {"dtype": "F32", "shape": [2, 3],
//               "data_offsets": [BEGIN, END]}, ..., "__metadata__": {"key": "value"}}
//   then        the data buffer; each tensor's bytes are [BEGIN, END) of it, row-major,
//               little-endian, and END - BEGIN = product(shape) * sizeof(dtype).
//
// The reader memory-maps the file and checks every offset, size and shape before handing
// out bytes, so a truncated or hostile file throws ModelError instead of reading past the end.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace flipless::io {

enum class DType { kBool, kU8, kI8, kI16, kI32, kI64, kF16, kBF16, kF32, kF64 };

// "F32", "BF16", ... as written in safetensors headers.
std::string_view dtype_name(DType dtype);
// Bytes per element.
std::size_t dtype_size(DType dtype);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;
  std::size_t begin = 0;  // offset into the data buffer
  std::size_t end = 0;
  std::int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Opens and validates `path`. Throws ModelError naming the file and the problem.
  static SafetensorsFile open(const std::filesystem::path& path);
  // Parses bytes already in memory (tests, fuzzing); `source` names them in errors.
  static SafetensorsFile parse(std::string bytes, std::string source);

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // The tensor called `name`, or nullptr.
  const TensorInfo* find(std::string_view name) const;
  // The raw bytes of a tensor from this file.
  std::span<const std::byte> data(const TensorInfo& info) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& source() const { return source_; }

  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile();

 private:
  SafetensorsFile() = default;
  void parse_header();
  struct Storage;
  std::unique_ptr<Storage> storage_;
  std::string source_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
  std::string_view buffer_;  // the data buffer after the header
};

// A tensor to write: its bytes are copied as they are.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> bytes;
};

// Serialises tensors (sorted by name, 8-byte aligned header) and metadata.
std::string serialize_safetensors(const std::vector<TensorView>& tensors, const std::map<std::string, std::string>& metadata = {});
// Writes a safetensors file atomically (temporary file, then rename).
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace flipless::io
