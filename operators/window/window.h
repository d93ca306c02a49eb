// Windows and the assigners that put records into them: on event time (the
// record's timestamp, fired by the watermark) or on processing time (the
// subtask's clock when the record arrives, fired by that clock).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/serde.h"
#include "engine/common/time.h"

namespace sluice::window {

/// The half-open interval [start, end) of event time, in epoch ms.
struct TimeWindow {
  int64_t start = 0;
  int64_t end = 0;
  SLUICE_FIELDS(start, end)

  /// The last timestamp inside the window; it fires when the watermark
  /// reaches it.
  int64_t max_timestamp() const { return end - 1; }
  /// Session semantics: windows that overlap or touch merge.
  bool intersects(const TimeWindow& o) const { return start <= o.end && o.start <= end; }
  TimeWindow cover(const TimeWindow& o) const {
    return {std::min(start, o.start), std::max(end, o.end)};
  }
  bool operator==(const TimeWindow&) const = default;
  auto operator<=>(const TimeWindow&) const = default;

  /// 16 bytes, big-endian: the state namespace of the window.
  void encode(std::string& out) const;
  static bool decode(std::string_view bytes, TimeWindow& out);
};

/// Assigns a record's timestamp to windows. Value type; immutable.
class WindowAssigner {
 public:
  enum class Kind { kTumbling, kSliding, kSession };

  static WindowAssigner tumbling(Duration size, Duration offset = Duration(0));
  static WindowAssigner sliding(Duration size, Duration slide, Duration offset = Duration(0));
  static WindowAssigner session(Duration gap);
  /// The same windows on processing time: a record belongs to the windows
  /// of the subtask's clock when it arrives (its event time is not used),
  /// and they fire when that clock passes their end. Tumbling and sliding
  /// only (throws std::invalid_argument for sessions).
  WindowAssigner on_processing_time() const;

  Kind kind() const { return kind_; }
  bool is_merging() const { return kind_ == Kind::kSession; }
  bool is_processing_time() const { return processing_time_; }
  /// Appends the windows `ts` belongs to (cleared first).
  void assign(int64_t ts, std::vector<TimeWindow>& out) const;
  /// The timestamps around `ts` that belong to exactly the windows of `ts`
  /// (as a half-open [start, end), end saturated at INT64_MAX): a caller
  /// that assigned `ts` may reuse its windows for any timestamp inside it
  /// (the local combiner does, instead of assigning every record).
  TimeWindow pane(int64_t ts) const;
  std::string description() const;
  Duration size() const { return size_; }
  Duration slide() const { return slide_; }
  Duration gap() const { return size_; }

 private:
  std::string kind_description() const;
  WindowAssigner(Kind k, Duration size, Duration slide, Duration offset)
      : kind_(k), size_(size), slide_(slide), offset_(offset) {}
  Kind kind_;
  Duration size_;   // window size, or the session gap
  Duration slide_;  // sliding only
  Duration offset_;
  bool processing_time_ = false;
};

/// Adding one window to the windows of a merging assigner (sessions): the
/// windows of `set` (which never touch each other) that `added` overlaps or
/// touches, directly or through another one, merge with it into `merged`.
/// `absorbed` lists their indexes in `set`, ascending; every other window
/// of the set stays as it is. Pure; Flink's MergingWindowSet without state.
struct WindowMerge {
  TimeWindow merged;
  std::vector<size_t> absorbed;
};
WindowMerge merge_window(const std::vector<TimeWindow>& set, const TimeWindow& added);

/// Flink-style names for the assigners.
struct TumblingEventTimeWindows {
  static WindowAssigner of(Duration size, Duration offset = Duration(0)) {
    return WindowAssigner::tumbling(size, offset);
  }
};
struct SlidingEventTimeWindows {
  static WindowAssigner of(Duration size, Duration slide, Duration offset = Duration(0)) {
    return WindowAssigner::sliding(size, slide, offset);
  }
};
struct EventTimeSessionWindows {
  static WindowAssigner with_gap(Duration gap) { return WindowAssigner::session(gap); }
};
struct TumblingProcessingTimeWindows {
  static WindowAssigner of(Duration size, Duration offset = Duration(0)) {
    return WindowAssigner::tumbling(size, offset).on_processing_time();
  }
};
struct SlidingProcessingTimeWindows {
  static WindowAssigner of(Duration size, Duration slide, Duration offset = Duration(0)) {
    return WindowAssigner::sliding(size, slide, offset).on_processing_time();
  }
};

}  // namespace sluice::window
