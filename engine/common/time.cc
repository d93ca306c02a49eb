#include "engine/common/time.h"

#include <cctype>
#include <charconv>
#include <cstdio>
#include <ctime>
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

namespace {

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

Result<int64_t> parse_timestamp_ms(std::string_view text) {
  const Status bad = Status::invalid_argument(
      "'" + std::string(text) + "' is not a point in time; use epoch ms, 2024-05-01 or 2024-05-01T12:30:00Z");
  if (text.empty()) return bad;
  auto digits = [&](size_t at, size_t n, int& out) {
    if (at + n > text.size()) return false;
    out = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      out = out * 10 + (text[i] - '0');
    }
    return true;
  };
  if (text.size() < 10 || text[4] != '-') {
    size_t i = text[0] == '-' ? 1 : 0;
    if (i == text.size() || text.size() > 19 + i) return bad;
    int64_t v = 0;
    for (; i < text.size(); ++i) {
      if (text[i] < '0' || text[i] > '9') return bad;
      v = v * 10 + (text[i] - '0');
    }
    return text[0] == '-' ? -v : v;
  }
  int y, mo, d, h = 0, mi = 0, se = 0, ms = 0;
  if (!digits(0, 4, y) || text[4] != '-' || !digits(5, 2, mo) || text[7] != '-' || !digits(8, 2, d)) return bad;
  size_t at = 10;
  if (at < text.size()) {
    if (text[at] != 'T' && text[at] != ' ') return bad;
    if (!digits(at + 1, 2, h) || text.size() < at + 9 || text[at + 3] != ':' || !digits(at + 4, 2, mi) ||
        text[at + 6] != ':' || !digits(at + 7, 2, se))
      return bad;
    at += 9;
    if (at < text.size() && text[at] == '.') {
      if (!digits(at + 1, 3, ms)) return bad;
      at += 4;
    }
    if (at < text.size() && text[at] == 'Z') ++at;
    if (at != text.size()) return bad;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return bad;
  int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return ((days * 24 + h) * 60 + mi) * 60'000 + int64_t{se} * 1000 + ms;
}

std::string format_timestamp_ms(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  int64_t frac = ((ms % 1000) + 1000) % 1000;
  std::snprintf(buf + n, sizeof buf - n, ".%03lldZ", static_cast<long long>(frac));
  return buf;
}

}  // namespace sluice
