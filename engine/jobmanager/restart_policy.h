// When a failed job restarts, and when the jobmanager gives it up: an
// exponential backoff that goes back to its initial delay once the job has
// run for a stable period (Flink's exponential-delay strategy), and a
// failure-rate rule for giving up (Flink's failure-rate strategy: more than
// N failures within a period), so that a long-lived job survives any number
// of well-spaced faults while a crash loop still ends.
#pragma once

#include <cstdint>
#include <deque>
#include <string>

#include "engine/common/status.h"
#include "engine/common/time.h"

namespace sluice::jobmanager {

struct RestartPolicyOptions {
  /// Delay before the first restart after a stable period. Default 200 ms.
  Duration initial_backoff{200};
  /// The delay doubles per failure up to this. Default 10 s.
  Duration max_backoff{10'000};
  /// A job that has run this long since its last restart without failing
  /// is stable: its next failure restarts after initial_backoff again.
  /// Default 30 s.
  Duration reset_after{30'000};
  /// Give up when more than max_failures failures fall within
  /// failure_interval. Default 30 within 5 min.
  int max_failures = 30;
  Duration failure_interval{300'000};

  /// Checks the values (every duration > 0 except reset_after >= 0, max >= initial, max_failures >= 1).
  Status validate() const;
  /// "30/5m": max_failures and failure_interval from one flag value.
  Status parse_failure_rate(const std::string& text);
  std::string failure_rate_text() const;
};

/// The restart decisions of one job. Not thread-safe: the jobmanager calls
/// it under its own lock. Owned by the job's record in the jobmanager; lives
/// as long as the job (a restarted jobmanager starts a fresh one).
class RestartPolicy {
 public:
  explicit RestartPolicy(RestartPolicyOptions o = {}) : o_(o) {}

  struct Decision {
    bool restart = false;
    Duration delay{0};           // when restart: wait this long first
    int failures_in_interval = 0;  // this failure included
    std::string give_up_reason;  // when !restart: why, for the log, the status and the record
  };

  /// The job failed at `now_ms` (a steady clock): restart after a delay,
  /// or give up.
  Decision on_failure(int64_t now_ms);
  /// The job's next attempt is deployed and running at `now_ms`: the
  /// stable period is measured from here.
  void on_running(int64_t now_ms) { running_since_ms_ = now_ms; }
  /// The backoff the next failure would get if it came at `now_ms`.
  Duration next_backoff(int64_t now_ms) const;
  int failures_in_interval(int64_t now_ms) const;
  const RestartPolicyOptions& options() const { return o_; }

 private:
  void expire(int64_t now_ms);

  RestartPolicyOptions o_;
  std::deque<int64_t> failures_;  // steady ms, oldest first, within the interval
  int64_t backoff_ms_ = 0;        // the last delay given; 0 = none since the last reset
  int64_t running_since_ms_ = -1;  // -1: not running since the last failure
};

}  // namespace sluice::jobmanager
