// Processing time. Everything that reads the wall clock for timers or
// timeouts takes a Clock, so tests can drive time by hand.
#pragma once

#include <atomic>
#include <cstdint>

namespace sluice {

/// Source of processing time in epoch milliseconds. Implementations are
/// thread-safe; the runtime owns one per task (tests share a ManualClock).
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t now_ms() const = 0;
  /// True if time moves by itself (the task loop may sleep until a deadline).
  virtual bool is_real_time() const { return true; }
};

/// The system clock.
class SystemClock final : public Clock {
 public:
  int64_t now_ms() const override;
  static SystemClock& instance();
};

/// A clock that only moves when told to (tests, operator harness).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms = 0) : now_(start_ms) {}
  int64_t now_ms() const override { return now_.load(std::memory_order_acquire); }
  bool is_real_time() const override { return false; }
  void set(int64_t ms) { now_.store(ms, std::memory_order_release); }
  void advance(int64_t ms) { now_.fetch_add(ms, std::memory_order_acq_rel); }

 private:
  std::atomic<int64_t> now_;
};

/// Monotonic nanoseconds for measuring durations (not epoch based).
int64_t monotonic_ns();

}  // namespace sluice
