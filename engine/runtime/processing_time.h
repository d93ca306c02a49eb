// Processing-time callbacks of one operator (timers, periodic watermarks,
// flushes). The task keeps one per chained operator and fires them in time
// order; owned by the task (or the operator test harness); used only on
// the task thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <queue>
#include <vector>

#include "engine/common/clock.h"

namespace sluice::runtime {

/// A processing-time timer queue on a Clock (see the file comment).
class ProcessingTimeService {
 public:
  using Callback = std::function<void(int64_t now_ms)>;

  explicit ProcessingTimeService(const Clock* clock) : clock_(clock) {}
  int64_t now_ms() const { return clock_->now_ms(); }
  const Clock& clock() const { return *clock_; }

  /// Runs `cb` on the task thread once processing time reaches `at_ms`.
  void schedule(int64_t at_ms, Callback cb);
  std::optional<int64_t> next_deadline() const;
  /// Runs every callback that is due; returns how many ran.
  int fire_due();
  /// Runs the earliest callback if it is due at `now_ms`; false if none is.
  bool fire_next_due(int64_t now_ms);
  size_t pending() const { return queue_.size(); }
  /// Drops every pending callback (task shutdown).
  void clear();

 private:
  struct Item {
    int64_t at;
    uint64_t seq;
    Callback cb;
    bool operator>(const Item& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  const Clock* clock_;
  uint64_t seq_ = 0;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> queue_;
};

}  // namespace sluice::runtime
