#include "delimited.h"

namespace flipless::data::detail {

bool DelimitedReader::next(std::vector<std::string>& fields) {
  fields.clear();
  // Skip blank lines (a trailing newline, or empty lines between records).
  while (!rest_.empty() && (rest_.front() == '\n' || rest_.substr(0, 2) == "\r\n")) {
    rest_.remove_prefix(rest_.front() == '\n' ? 1 : 2);
    ++next_line_;
  }
  if (rest_.empty()) return false;
  record_line_ = next_line_;

  if (!quoting_) {
    std::size_t end = rest_.find('\n');
    std::string_view line = rest_.substr(0, end);
    rest_.remove_prefix(end == std::string_view::npos ? rest_.size() : end + 1);
    ++next_line_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    for (;;) {
      const std::size_t tab = line.find(delimiter_);
      fields.emplace_back(line.substr(0, tab));
      if (tab == std::string_view::npos) break;
      line.remove_prefix(tab + 1);
    }
    return true;
  }

  std::string field;
  std::size_t i = 0;
  const std::size_t n = rest_.size();
  for (;;) {
    field.clear();
    if (i < n && rest_[i] == '"') {
      ++i;
      for (;;) {
        if (i >= n) throw DelimitedSyntaxError{record_line_, "unterminated quoted field"};
        const char c = rest_[i];
        if (c == '"') {
          if (i + 1 < n && rest_[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        if (c == '\n') ++next_line_;
        field += c;
        ++i;
      }
      if (i < n && rest_[i] != delimiter_ && rest_[i] != '\n' && rest_[i] != '\r') {
        throw DelimitedSyntaxError{next_line_, "text after a closing quote"};
      }
    } else {
      while (i < n && rest_[i] != delimiter_ && rest_[i] != '\n') {
        if (rest_[i] == '"') throw DelimitedSyntaxError{next_line_, "quote inside an unquoted field"};
        field += rest_[i];
        ++i;
      }
      if (!field.empty() && field.back() == '\r' && (i >= n || rest_[i] == '\n')) field.pop_back();
    }
    if (i < n && rest_[i] == '\r' && i + 1 < n && rest_[i + 1] == '\n') ++i;
    fields.push_back(field);
    if (i >= n) {
      rest_ = {};
      ++next_line_;
      return true;
    }
    if (rest_[i] == '\n') {
      rest_.remove_prefix(i + 1);
      ++next_line_;
      return true;
    }
    ++i;  // delimiter
  }
}

}  // namespace flipless::data::detail
