#include "engine/common/clock.h"

#include <chrono>

#include "engine/common/time.h"

namespace sluice {

int64_t SystemClock::now_ms() const { return wall_clock_ms(); }

SystemClock& SystemClock::instance() {
  static SystemClock clock;
  return clock;
}

int64_t monotonic_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace sluice
