// Job arguments: the `--arg key=value` pairs a job's build function reads.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/common/status.h"
#include "engine/common/time.h"

namespace sluice::api {

/// A job argument was missing or malformed; the message says which and
/// what form it needs. Thrown inside the build function only; the
/// SLUICE_JOB entry point turns it into an error for the CLI.
class JobArgError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// The value of `r` (e.g. a sink made from the URI of `--arg key`), or a
/// JobArgError naming the argument and what is wrong with it.
template <class T>
T arg_value(Result<T> r, const std::string& key) {
  if (!r.is_ok()) throw JobArgError("--arg " + key + ": " + r.status().message());
  return std::move(r).value();
}

/// Typed access to the job's arguments. Every key read is remembered, so
/// arguments the job never reads (typos) can be refused after the build.
class JobArgs {
 public:
  JobArgs() = default;
  explicit JobArgs(std::map<std::string, std::string> values) : values_(std::move(values)) {}

  bool has(const std::string& key) const;
  std::string get(const std::string& key, const std::string& fallback) const;
  /// Throws JobArgError naming the key and `what` it should hold.
  std::string require(const std::string& key, const std::string& what) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_double(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key, bool fallback) const;
  Duration get_duration(const std::string& key, Duration fallback) const;

  const std::map<std::string, std::string>& values() const { return values_; }
  /// Keys given but never read.
  std::vector<std::string> unread() const;
  /// Keys read so far (for messages).
  std::vector<std::string> read_keys() const { return {read_.begin(), read_.end()}; }

 private:
  const std::string* find(const std::string& key) const;
  std::map<std::string, std::string> values_;
  mutable std::set<std::string> read_;
};

/// The value of `r`; otherwise throws JobArgError naming `--arg key` (for
/// build functions turning e.g. a bad source URI into an argument error).
template <class T>
T or_arg_error(Result<T> r, const std::string& key) {
  if (!r.is_ok()) throw JobArgError("--arg " + key + ": " + r.status().message());
  return std::move(r).value();
}

/// Parses "key=value" (the form of --arg); false if there is no '=' or the
/// key is empty.
bool parse_key_value(const std::string& text, std::string& key, std::string& value);

}  // namespace sluice::api
