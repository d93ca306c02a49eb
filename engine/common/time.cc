#include "engine/common/time.h"

#include <cctype>
#include <cstdio>
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

namespace {

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool digits(std::string_view s, size_t at, size_t n, int& out) {
  if (at + n > s.size()) return false;
  out = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

}  // namespace

Result<int64_t> parse_timestamp_ms(std::string_view text) {
  auto bad = [&] {
    return Status::invalid_argument("'" + std::string(text) +
                                    "' is not a time: use epoch milliseconds (1700000000000) or a UTC date/time "
                                    "such as 2026-12-05 or 2026-12-05T10:15:30Z");
  };
  if (text.empty()) return bad();
  if (text.find_first_not_of("0123456789") == std::string_view::npos) {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || p != text.data() + text.size()) return bad();
    return v;
  }
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, ms = 0;
  if (!digits(text, 0, 4, y) || text.size() < 10 || text[4] != '-' || !digits(text, 5, 2, mo) || text[7] != '-' ||
      !digits(text, 8, 2, d)) {
    return bad();
  }
  size_t at = 10;
  int64_t offset_min = 0;
  if (at < text.size() && (text[at] == 'T' || text[at] == 't' || text[at] == ' ')) {
    if (!digits(text, at + 1, 2, h) || at + 3 >= text.size() || text[at + 3] != ':' || !digits(text, at + 4, 2, mi)) {
      return bad();
    }
    at += 6;
    if (at < text.size() && text[at] == ':') {
      if (!digits(text, at + 1, 2, sec)) return bad();
      at += 3;
      if (at < text.size() && text[at] == '.') {
        size_t n = 0;
        ++at;
        while (at < text.size() && std::isdigit(static_cast<unsigned char>(text[at]))) {
          if (n < 3) ms = ms * 10 + (text[at] - '0');
          ++n, ++at;
        }
        if (n == 0) return bad();
        for (; n < 3; ++n) ms *= 10;
      }
    }
    if (at < text.size()) {
      if (text[at] == 'Z' || text[at] == 'z') {
        ++at;
      } else if (text[at] == '+' || text[at] == '-') {
        int oh = 0, om = 0;
        if (!digits(text, at + 1, 2, oh) || at + 3 >= text.size() || text[at + 3] != ':' ||
            !digits(text, at + 4, 2, om)) {
          return bad();
        }
        offset_min = (text[at] == '-' ? -1 : 1) * (oh * 60 + om);
        at += 6;
      }
    }
  }
  if (at != text.size() || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return bad();
  const int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return ((days * 24 + h) * 60 + mi - offset_min) * 60'000 + sec * 1000 + ms;
}

std::string format_timestamp_ms(int64_t ms) {
  const int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  const int64_t rem = ms - secs * 1000;
  int64_t z = (secs >= 0 ? secs : secs - 86399) / 86400;
  const int64_t sod = secs - z * 86400;
  // civil_from_days
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2);
  char buf[48];
  if (rem) {
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ", static_cast<long long>(y), m, d,
                  static_cast<long long>(sod / 3600), static_cast<long long>(sod / 60 % 60),
                  static_cast<long long>(sod % 60), static_cast<long long>(rem));
  } else {
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lldZ", static_cast<long long>(y), m, d,
                  static_cast<long long>(sod / 3600), static_cast<long long>(sod / 60 % 60),
                  static_cast<long long>(sod % 60));
  }
  return buf;
}

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
