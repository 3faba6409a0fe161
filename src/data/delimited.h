#pragma once
// Splits delimited text into records. TSV mode never treats quotes specially (GLUE files hold
// bare '"' characters); CSV mode follows RFC 4180: quoted fields may hold the delimiter, "" and
// line breaks.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace flipless::data::detail {

struct DelimitedSyntaxError {
  std::size_t line;
  std::string message;
};

class DelimitedReader {
 public:
  DelimitedReader(std::string_view bytes, char delimiter, bool quoting)
      : rest_(bytes), delimiter_(delimiter), quoting_(quoting) {}

  // Reads the next non-blank record into `fields`; returns false at the end of input.
  // `line()` is then the 1-based line the record starts on. Throws DelimitedSyntaxError.
  bool next(std::vector<std::string>& fields);
  std::size_t line() const { return record_line_; }

 private:
  std::string_view rest_;
  char delimiter_;
  bool quoting_;
  std::size_t next_line_ = 1;
  std::size_t record_line_ = 0;
};

}  // namespace flipless::data::detail
