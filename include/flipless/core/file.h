#pragma once
// Whole-file input (memory-mapped, or decompressed when the name ends in .gz) and atomic
// output (write a temporary file beside the target, then rename over it).
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace flipless::core {

// The bytes of one input file, kept alive for as long as this object lives.
class InputFile {
 public:
  // Opens `path`; a name ending in ".gz" is decompressed with zlib. Throws IoError naming the
  // path when it cannot be opened or read.
  static InputFile open(const std::filesystem::path& path);
  // Wraps bytes already in memory (tests, fuzzers); `source` is the name errors use.
  static InputFile from_string(std::string bytes, std::string source);

  InputFile(InputFile&&) noexcept;
  InputFile& operator=(InputFile&&) noexcept;
  ~InputFile();

  std::string_view bytes() const { return bytes_; }
  const std::string& source() const { return source_; }

 private:
  InputFile() = default;
  struct Mapping;
  std::unique_ptr<Mapping> mapping_;
  std::string owned_;
  std::string_view bytes_;
  std::string source_;
};

// Writes `content` to `path` atomically: a temporary file in the same folder, flushed, then
// renamed over `path`, so readers see the old file or the whole new one, never half of it.
// Throws IoError naming the path on failure and leaves no temporary file behind.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

// Iterates the lines of a buffer with their 1-based numbers; strips a trailing "\r".
class LineCursor {
 public:
  explicit LineCursor(std::string_view bytes) : rest_(bytes) {}
  // Sets `line` to the next line and returns true, or returns false at the end.
  bool next(std::string_view& line);
  // The 1-based number of the line last returned.
  std::size_t line_number() const { return line_number_; }

 private:
  std::string_view rest_;
  std::size_t line_number_ = 0;
};

}  // namespace flipless::core
