// WatermarkStrategy: how a source assigns event time and derives
// watermarks, as in Flink: bounded out-of-orderness (watermark = highest
// timestamp seen - bound - 1 ms), tracked per split (Kafka partition, file
// split) and combined as the minimum over active splits; a split with no
// records for the idleness timeout stops holding event time back.
//
// The event-time guard: one record stamped years ahead would move the
// watermark there, so that no window fires any more and every valid record
// after it is late. A record stamped further ahead of the wall clock than
// a bound (default 1 h), or before a floor, goes to the dead-letter output
// with the reason instead, and event time stays where the valid ones put it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "engine/common/config.h"
#include "engine/common/time.h"

namespace sluice::runtime {

template <class T>
struct WatermarkStrategy {
  /// Event time of a record, given the timestamp the source knows for it
  /// (Kafka record time; EventTime::min() if none). Unset: the source's
  /// timestamp is used.
  std::function<int64_t(const T&, int64_t source_ts)> timestamp_assigner;
  Duration out_of_orderness{0};
  /// 0 (default): a split never becomes idle.
  Duration idleness{0};
  /// false: no watermarks until the final one of a bounded input.
  bool emit_watermarks = true;
  /// Event-time guard (see EventTimeGuard). Unset: the job's settings
  /// `event-time.max-ahead` (default 1h; 0 = off) and `event-time.floor`
  /// (default none).
  std::optional<Duration> max_ahead;
  std::optional<int64_t> floor_ms;
  /// Watermark alignment (watermark_alignment.h): "" (default) = none; else
  /// the group whose sources this one keeps within `alignment_max_drift`.
  std::string alignment_group;
  Duration alignment_max_drift{0};

  static WatermarkStrategy for_bounded_out_of_orderness(Duration bound) {
    WatermarkStrategy s;
    s.out_of_orderness = bound;
    return s;
  }
  static WatermarkStrategy for_monotonous_timestamps() { return for_bounded_out_of_orderness({}); }
  static WatermarkStrategy no_watermarks() {
    WatermarkStrategy s;
    s.emit_watermarks = false;
    return s;
  }
  /// `f(const T&) -> int64_t` or `f(const T&, int64_t source_ts) -> int64_t`.
  template <class F>
  WatermarkStrategy with_timestamp_assigner(F f) const {
    WatermarkStrategy s = *this;
    if constexpr (std::is_invocable_v<F, const T&, int64_t>) {
      s.timestamp_assigner = std::move(f);
    } else {
      s.timestamp_assigner = [f = std::move(f)](const T& v, int64_t) { return f(v); };
    }
    return s;
  }
  WatermarkStrategy with_idleness(Duration timeout) const {
    WatermarkStrategy s = *this;
    s.idleness = timeout;
    return s;
  }
  /// Watermark alignment, as Flink's withWatermarkAlignment: the source
  /// stops reading while its watermark is more than `max_drift` (> 0)
  /// ahead of the lowest watermark of the sources in `group` (those of the
  /// same job in this process that are neither idle nor finished), so an
  /// input read faster than the others in event time does not pile up in
  /// the operators that wait for the watermark.
  WatermarkStrategy with_watermark_alignment(std::string group, Duration max_drift) const {
    WatermarkStrategy s = *this;
    s.alignment_group = std::move(group);
    s.alignment_max_drift = max_drift;
    return s;
  }
  /// Records stamped more than `ahead` past the wall clock (0 = no bound)
  /// or before `floor_ms` (epoch ms) go to the dead-letter output.
  WatermarkStrategy with_event_time_guard(Duration ahead, std::optional<int64_t> floor = std::nullopt) const {
    WatermarkStrategy s = *this;
    s.max_ahead = ahead;
    s.floor_ms = floor;
    return s;
  }
};

/// The bounds a source checks every record's event time against, resolved
/// at open() from the strategy and the job's settings. Plain value; used on
/// the source's task thread.
struct EventTimeGuard {
  static constexpr int64_t kDefaultMaxAheadMs = 3'600'000;  // 1 h
  int64_t max_ahead_ms = kDefaultMaxAheadMs;  // 0 = no bound ahead
  int64_t floor_ms = INT64_MIN;               // INT64_MIN = no floor

  /// The strategy's bounds where set, else the job's settings.
  static Result<EventTimeGuard> resolve(std::optional<Duration> max_ahead, std::optional<int64_t> floor,
                                        const Configuration& job) {
    EventTimeGuard g;
    if (max_ahead) {
      g.max_ahead_ms = max_ahead->count();
    } else {
      auto d = job.get_duration("event-time.max-ahead", Duration(kDefaultMaxAheadMs));
      if (!d.is_ok()) return d.status().with_context("event-time.max-ahead");
      g.max_ahead_ms = d->count();
    }
    if (g.max_ahead_ms < 0) return Status::invalid_argument("event-time.max-ahead must be >= 0 (0 = no bound)");
    if (floor) {
      g.floor_ms = *floor;
    } else if (auto f = job.get("event-time.floor"); f && !f->empty()) {
      auto ms = parse_timestamp_ms(*f);
      if (!ms.is_ok()) return ms.status().with_context("event-time.floor");
      g.floor_ms = *ms;
    }
    return g;
  }

  /// Empty if `ts` is acceptable at wall-clock time `now_ms`; else why not.
  /// A record without event time (INT64_MIN) is never refused.
  std::string check(int64_t ts, int64_t now_ms) const {
    if (ts == INT64_MIN) return {};
    if (max_ahead_ms > 0 && now_ms < INT64_MAX - max_ahead_ms && ts > now_ms + max_ahead_ms) {
      return "event time " + format_timestamp_ms(ts) + " is " + format_duration(Duration((ts - now_ms) / 1000 * 1000)) +
             " ahead of the wall clock, more than event-time.max-ahead (" + format_duration(Duration(max_ahead_ms)) +
             ")";
    }
    if (ts < floor_ms) {
      return "event time " + format_timestamp_ms(ts) + " is before event-time.floor (" + format_timestamp_ms(floor_ms) +
             ")";
    }
    return {};
  }
};

}  // namespace sluice::runtime
