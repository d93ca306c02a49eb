// WatermarkStrategy: how a source assigns event time and derives
// watermarks, as in Flink: bounded out-of-orderness (watermark = highest
// timestamp seen - bound - 1 ms), tracked per split (Kafka partition, file
// split) and combined as the minimum over active splits; a split with no
// records for the idleness timeout stops holding event time back.
#pragma once

#include <functional>
#include <utility>

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
};

}  // namespace sluice::runtime
