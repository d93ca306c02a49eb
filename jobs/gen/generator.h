// The click-event generator behind `sluice gen`: seeded, so the same
// options always produce the same events.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "engine/common/status.h"
#include "engine/common/time.h"

namespace sluice::gen {

struct GenOptions {
  int64_t count = 1000;          // events to produce (<0: unbounded, paced mode only)
  uint64_t seed = 42;
  int64_t users = 1000;
  int64_t pages = 100;
  double skew = 1.0;              // Zipf exponent of page popularity; 0 = uniform
  int64_t start_ts = 1'700'000'000'000;  // event time of the first event (epoch ms)
  double events_per_second = 1000;  // event-time density (ignored when paced)
  double out_of_order_fraction = 0.1;
  Duration max_delay{2000};      // out-of-order events are up to this much older
  double late_fraction = 0.0;
  Duration late_delay{300'000};  // late events are older by late_delay..2*late_delay
  double malformed_fraction = 0.0;
  /// > 0: paced mode, this many events per wall-clock second, ts = now.
  double rate = 0;
  Status validate() const;
};

/// What kind of line an event became (for tests and summaries).
enum class LineKind { kOnTime, kOutOfOrder, kLate, kMalformed };

/// Produces NDJSON click lines. One generator per thread.
class ClickGenerator {
 public:
  explicit ClickGenerator(GenOptions options);
  /// Writes the next line (without newline) into `out`; returns its kind.
  LineKind next(std::string& out);
  /// Event time of the base clock (before any delay) for the next event.
  int64_t produced() const { return produced_; }

 private:
  uint64_t next_u64() { return rng_(); }
  double uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }
  int64_t pick_page();
  void malformed(std::string& out, int64_t ts, const std::string& user, const std::string& page);

  GenOptions o_;
  std::mt19937_64 rng_;
  std::vector<double> page_cdf_;
  int64_t produced_ = 0;
};

/// Runs the generator to completion, handing each line to `emit`, pacing
/// to options.rate when set. Returns the count per LineKind.
struct GenSummary {
  int64_t on_time = 0, out_of_order = 0, late = 0, malformed = 0;
  int64_t total() const { return on_time + out_of_order + late + malformed; }
};
Result<GenSummary> run_generator(const GenOptions& options,
                                 const std::function<Status(const std::string& line)>& emit,
                                 const std::function<bool()>& stop = nullptr);

}  // namespace sluice::gen
