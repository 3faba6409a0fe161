#pragma once
// The one error hierarchy for user errors (bad files, flags, configs). Bugs abort through
// FLIPLESS_ASSERT instead (core/assert.h). Messages are one line and name the file, the
// line and the field where one applies, so the CLI can print them as they are.
#include <stdexcept>
#include <string>

namespace flipless {

// Base of every error a user can cause; the CLI maps it to exit code 2.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Malformed or inconsistent input data (rows, columns, ids, labels).
class InputError : public Error {
 public:
  using Error::Error;
};

// Bad options or configuration values.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// A model or checkpoint that cannot be used.
class ModelError : public Error {
 public:
  using Error::Error;
};

// A file that cannot be opened, read or written.
class IoError : public Error {
 public:
  using Error::Error;
};

}  // namespace flipless
