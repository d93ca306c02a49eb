// Event time and durations.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "engine/common/status.h"

namespace sluice {

using Duration = std::chrono::milliseconds;

/// A point in event time: epoch milliseconds carried by a record or a
/// watermark. `EventTime::min()` means "no timestamp" / "no watermark yet";
/// `EventTime::max()` is the final watermark of a bounded input.
class EventTime {
 public:
  constexpr EventTime() = default;
  constexpr explicit EventTime(int64_t ms) : ms_(ms) {}
  static constexpr EventTime min() { return EventTime(std::numeric_limits<int64_t>::min()); }
  static constexpr EventTime max() { return EventTime(std::numeric_limits<int64_t>::max()); }

  constexpr int64_t ms() const { return ms_; }
  constexpr bool is_min() const { return ms_ == std::numeric_limits<int64_t>::min(); }
  constexpr auto operator<=>(const EventTime&) const = default;
  constexpr bool operator==(const EventTime&) const = default;

  /// Saturating arithmetic: min/max stay put, nothing overflows.
  constexpr EventTime operator+(Duration d) const { return EventTime(sat_add(ms_, d.count())); }
  constexpr EventTime operator-(Duration d) const {
    // -min does not exist: subtracting it saturates like adding max.
    if (d.count() == std::numeric_limits<int64_t>::min()) {
      return EventTime(sat_add(ms_, std::numeric_limits<int64_t>::max()));
    }
    return EventTime(sat_add(ms_, -d.count()));
  }

 private:
  static constexpr int64_t sat_add(int64_t a, int64_t b) {
    constexpr int64_t lo = std::numeric_limits<int64_t>::min();
    constexpr int64_t hi = std::numeric_limits<int64_t>::max();
    if (a == lo || a == hi) return a;
    if (b > 0 && a > hi - b) return hi;
    if (b < 0 && a < lo - b) return lo;
    return a + b;
  }
  int64_t ms_ = std::numeric_limits<int64_t>::min();
};

/// Parses "60s", "500ms", "2m", "1h", "1d", "1500" (bare number = ms).
Result<Duration> parse_duration(std::string_view text);
/// The largest whole unit that divides d: "90s", "2m", "1h", "250ms".
/// parse_duration reads it back.
std::string format_duration(Duration d);
/// Parses "64mb", "1gb", "512kb", "4096" (bytes); case-insensitive.
Result<int64_t> parse_bytes(std::string_view text);

/// Parses a point in time to epoch milliseconds: digits are epoch ms
/// ("1700000000000"); otherwise RFC 3339 / ISO 8601 in UTC unless an offset
/// is given: "2026-12-05" (midnight UTC), "2026-12-05T10:15",
/// "2026-12-05T10:15:30Z", "2026-12-05 10:15:30.250+01:00".
Result<int64_t> parse_timestamp_ms(std::string_view text);
/// "2026-12-05T10:15:30.250Z" (UTC; milliseconds only when not zero).
std::string format_timestamp_ms(int64_t ms);

/// Milliseconds since the epoch on the wall clock.
int64_t wall_clock_ms();

}  // namespace sluice
