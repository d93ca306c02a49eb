// Rates of one subtask from the running totals its taskmanager reports in
// every heartbeat: records in/out per second, and the share of wall time
// the task spent busy and blocked on full output channels (backpressure).
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>

namespace sluice::jobmanager {

/// The totals of one heartbeat.
struct TaskTotals {
  int64_t at_ms = 0;  // when the jobmanager received them (steady clock)
  uint64_t records_in = 0, records_out = 0;
  int64_t busy_ns = 0, backpressured_ns = 0;
};

/// Rates over the samples of the last `span_ms` (default 5 s): smooth
/// enough for a dashboard, recent enough to show a change within seconds.
/// A value type guarded by whoever owns it (the jobmanager's lock).
class RateWindow {
 public:
  explicit RateWindow(int64_t span_ms = 5000) : span_ms_(span_ms) {}

  /// Adds a heartbeat's totals. Totals that go backwards (a new attempt of
  /// the task) start the window again.
  void add(const TaskTotals& t) {
    if (!samples_.empty()) {
      const auto& last = samples_.back();
      if (t.records_in < last.records_in || t.records_out < last.records_out || t.busy_ns < last.busy_ns ||
          t.at_ms < last.at_ms) {
        samples_.clear();
      }
    }
    samples_.push_back(t);
    // Keep one sample at or before the start of the span, so the window
    // covers all of it.
    while (samples_.size() > 2 && t.at_ms - samples_[1].at_ms >= span_ms_) samples_.pop_front();
  }

  struct Rates {
    double records_in_per_s = 0, records_out_per_s = 0;
    double busy = 0, backpressure = 0;  // 0..1
  };
  /// Zero until two samples at least 100 ms apart exist.
  Rates rates() const {
    Rates r;
    if (samples_.size() < 2) return r;
    const auto& a = samples_.front();
    const auto& b = samples_.back();
    const int64_t dt_ms = b.at_ms - a.at_ms;
    if (dt_ms < 100) return r;
    const double secs = static_cast<double>(dt_ms) / 1000.0;
    r.records_in_per_s = static_cast<double>(b.records_in - a.records_in) / secs;
    r.records_out_per_s = static_cast<double>(b.records_out - a.records_out) / secs;
    const double ns = static_cast<double>(dt_ms) * 1e6;
    r.busy = std::clamp(static_cast<double>(b.busy_ns - a.busy_ns) / ns, 0.0, 1.0);
    r.backpressure = std::clamp(static_cast<double>(b.backpressured_ns - a.backpressured_ns) / ns, 0.0, 1.0);
    return r;
  }
  const TaskTotals* latest() const { return samples_.empty() ? nullptr : &samples_.back(); }

 private:
  int64_t span_ms_;
  std::deque<TaskTotals> samples_;
};

}  // namespace sluice::jobmanager
