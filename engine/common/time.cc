#include "engine/common/time.h"

#include <cctype>
#include <charconv>
#include <limits>

namespace sluice {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Splits "123unit" into number and unit; fails on anything else.
bool split_number(std::string_view text, int64_t& number, std::string& unit) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + i, number);
  if (ec != std::errc() || ptr != text.data() + i) return false;
  unit = lower(text.substr(i));
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  return true;
}

}  // namespace

Result<Duration> parse_duration(std::string_view text) {
  int64_t total = 0;
  std::string_view rest = text;
  if (rest.empty()) return Status::invalid_argument("empty duration; use e.g. 60s, 500ms, 2m");
  // Accept compound forms such as "1m30s".
  while (!rest.empty()) {
    size_t i = 0;
    while (i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i]))) ++i;
    size_t j = i;
    while (j < rest.size() && std::isalpha(static_cast<unsigned char>(rest[j]))) ++j;
    int64_t n = 0;
    std::string unit;
    if (!split_number(rest.substr(0, j), n, unit)) {
      return Status::invalid_argument("'" + std::string(text) +
                                      "' is not a duration; use e.g. 60s, 500ms, 2m, 1h");
    }
    int64_t factor = 0;
    if (unit.empty() || unit == "ms") factor = 1;
    else if (unit == "s" || unit == "sec") factor = 1000;
    else if (unit == "m" || unit == "min") factor = 60'000;
    else if (unit == "h") factor = 3'600'000;
    else if (unit == "d") factor = 86'400'000;
    else {
      return Status::invalid_argument("'" + std::string(text) + "' has unknown unit '" + unit +
                                      "'; use ms, s, m, h or d");
    }
    if (n > (std::numeric_limits<int64_t>::max() - total) / factor) {
      return Status::invalid_argument("'" + std::string(text) + "' is too long a duration");
    }
    total += n * factor;
    rest = rest.substr(j);
  }
  return Duration(total);
}

std::string format_duration(Duration d) {
  int64_t ms = d.count();
  if (ms == 0) return "0ms";
  if (ms % 86'400'000 == 0) return std::to_string(ms / 86'400'000) + "d";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

Result<int64_t> parse_bytes(std::string_view text) {
  int64_t n = 0;
  std::string unit;
  if (!split_number(text, n, unit)) {
    return Status::invalid_argument("'" + std::string(text) +
                                    "' is not a size; use e.g. 512mb, 1gb, 4096");
  }
  int64_t factor = 0;
  if (unit.empty() || unit == "b") factor = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib") factor = 1LL << 10;
  else if (unit == "m" || unit == "mb" || unit == "mib") factor = 1LL << 20;
  else if (unit == "g" || unit == "gb" || unit == "gib") factor = 1LL << 30;
  else {
    return Status::invalid_argument("'" + std::string(text) + "' has unknown unit '" + unit +
                                    "'; use b, kb, mb or gb");
  }
  if (n > std::numeric_limits<int64_t>::max() / factor) {
    return Status::invalid_argument("'" + std::string(text) + "' is too large a size");
  }
  return n * factor;
}

int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace sluice
