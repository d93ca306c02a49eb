// Configuration: string keys ("checkpoint.interval") to string values, with
// typed getters whose errors name the key and the accepted form.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "engine/common/status.h"
#include "engine/common/time.h"

namespace sluice {

/// An ordered set of key/value settings. Value type; not thread-safe.
/// Getters return the default when the key is absent and an error when the
/// value is present but malformed.
class Configuration {
 public:
  Configuration() = default;
  explicit Configuration(const std::map<std::string, std::string>& entries)
      : entries_(entries.begin(), entries.end()) {}

  void set(std::string key, std::string value) { entries_[std::move(key)] = std::move(value); }
  bool contains(std::string_view key) const { return entries_.find(key) != entries_.end(); }
  std::optional<std::string> get(std::string_view key) const;

  std::string get_string(std::string_view key, std::string_view fallback) const;
  Result<int64_t> get_int(std::string_view key, int64_t fallback) const;
  Result<double> get_double(std::string_view key, double fallback) const;
  Result<bool> get_bool(std::string_view key, bool fallback) const;
  Result<Duration> get_duration(std::string_view key, Duration fallback) const;
  Result<int64_t> get_bytes(std::string_view key, int64_t fallback) const;

  /// Copies every entry of `other` over this one (other wins).
  void merge_from(const Configuration& other);
  const std::map<std::string, std::string, std::less<>>& entries() const { return entries_; }

 private:
  std::map<std::string, std::string, std::less<>> entries_;
};

/// Parses "true/false/yes/no/1/0/on/off" (case-insensitive).
Result<bool> parse_bool(std::string_view text);
/// Parses a whole string as a signed 64-bit integer.
Result<int64_t> parse_int(std::string_view text);

}  // namespace sluice
