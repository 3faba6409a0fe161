#pragma once
// Fields of a JSON object read from a file, each checked for presence and type, with the file and
// the field's path in every error ("RUN/x/result.json: field 'chosen.setting': missing").
// `Error` is the flipless error to throw (InputError for run folders, ModelError for model cards).
#include <fmt/format.h>

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace flipless::core {

// The fields of one JSON object of a file, read with the file and the field's path in errors.
template <typename Error>
class JsonFields {
 public:
  JsonFields(const nlohmann::json& object, const std::filesystem::path& file, std::string prefix = "") : j_(object), file_(file), prefix_(std::move(prefix)) {
    if (!j_.is_object()) fail("", "expected an object");
  }

  [[noreturn]] void fail(const std::string& key, const std::string& why) const {
    const auto name = key.empty() ? prefix_ : prefix_.empty() ? key : prefix_ + "." + key;
    if (name.empty()) throw Error(fmt::format("{}: {}", file_.string(), why));
    throw Error(fmt::format("{}: field '{}': {}", file_.string(), name, why));
  }

  bool has(const char* key) const { return j_.contains(key); }

  const nlohmann::json& at(const char* key) const {
    const auto it = j_.find(key);
    if (it == j_.end()) fail(key, "missing");
    return *it;
  }

  JsonFields object(const char* key) const { return JsonFields(at(key), file_, prefix_.empty() ? key : prefix_ + "." + key); }

  std::string text(const char* key) const {
    const nlohmann::json& v = at(key);
    if (!v.is_string()) fail(key, "expected a string");
    return v.get<std::string>();
  }
  double number(const char* key) const {
    const nlohmann::json& v = at(key);
    if (!v.is_number()) fail(key, v.is_null() ? "expected a number, found null (not finite when written?)" : "expected a number");
    return v.get<double>();
  }
  std::int64_t integer(const char* key) const {
    const nlohmann::json& v = at(key);
    if (!v.is_number_integer()) fail(key, "expected an integer");
    return v.get<std::int64_t>();
  }
  std::uint64_t count(const char* key) const {
    const nlohmann::json& v = at(key);
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0)) fail(key, "expected a non-negative integer");
    return v.get<std::uint64_t>();
  }
  bool flag(const char* key) const {
    const nlohmann::json& v = at(key);
    if (!v.is_boolean()) fail(key, "expected true or false");
    return v.get<bool>();
  }
  std::vector<std::string> texts(const char* key) const {
    const nlohmann::json& v = at(key);
    if (!v.is_array()) fail(key, "expected a list of strings");
    std::vector<std::string> out;
    for (const auto& e : v) {
      if (!e.is_string()) fail(key, "expected a list of strings");
      out.push_back(e.get<std::string>());
    }
    return out;
  }
  std::vector<std::uint64_t> counts(const char* key) const {
    const nlohmann::json& v = at(key);
    if (!v.is_array()) fail(key, "expected a list of non-negative integers");
    std::vector<std::uint64_t> out;
    for (const auto& e : v) {
      if (!e.is_number_unsigned() && !(e.is_number_integer() && e.get<std::int64_t>() >= 0)) fail(key, "expected a list of non-negative integers");
      out.push_back(e.get<std::uint64_t>());
    }
    return out;
  }

  template <typename T, typename Read>
  std::optional<T> optional(const char* key, Read read) const {
    if (!has(key)) return std::nullopt;
    return (this->*read)(key);
  }

  const std::filesystem::path& file() const { return file_; }
  const std::string& prefix() const { return prefix_; }
  const nlohmann::json& value() const { return j_; }

 private:
  const nlohmann::json& j_;
  const std::filesystem::path& file_;
  std::string prefix_;
};

}  // namespace flipless::core
