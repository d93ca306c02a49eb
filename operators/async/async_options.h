// How an async I/O operator waits: output order, capacity, timeouts, what
// happens to errors, and when to retry (Flink's AsyncRetryStrategies).
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/status.h"
#include "engine/common/time.h"

namespace sluice::async_io {

/// kOrdered: results leave in input order. kUnordered: a result leaves as
/// soon as its call completes, but never across a watermark (records before
/// a watermark leave before it, records after it leave after it).
enum class OutputMode { kOrdered, kUnordered };

/// What a failed call (after its retries) does to its record.
enum class OnError {
  kDeadLetter,  ///< the record goes to the dead-letter output with the error (default)
  kFailJob,     ///< the task fails; the job restarts from its last checkpoint (Flink's behaviour)
};

/// Value type, copied into every subtask.
struct AsyncOptions {
  OutputMode mode = OutputMode::kOrdered;
  /// Default 30 s: from the first call of a record until it must be done,
  /// retries and backoff included; then AsyncFunction::timeout() decides.
  Duration timeout{30'000};
  /// Default 0 (none): a limit for each attempt; an attempt past it counts
  /// as a failed attempt with a kTimeout error (retried if the strategy
  /// retries that error, otherwise the record goes to timeout()).
  Duration attempt_timeout{0};
  /// Default 100: records in the operator at once (in flight, waiting for a
  /// retry, or done and waiting for their turn to leave). At capacity the
  /// operator suspends its task's input (backpressure); records already
  /// handed to the operator in the current input batch are still accepted.
  int capacity = 100;
  OnError on_error = OnError::kDeadLetter;

  /// Throws std::invalid_argument saying what to fix (at job build time).
  void validate() const {
    if (capacity <= 0) throw std::invalid_argument("async I/O capacity must be positive");
    if (timeout.count() <= 0) throw std::invalid_argument("async I/O timeout must be positive");
    if (attempt_timeout.count() < 0) throw std::invalid_argument("async I/O attempt timeout must not be negative");
  }
};

/// When and after how long a failed or unsatisfying attempt is repeated.
/// Value type; predicates are copied into every subtask and called on its
/// task thread. Default-constructed: no retries.
///
///   AsyncRetryStrategy<Score>::exponential_backoff(5, 100ms, 2s)
///       .retry_if_result([](const std::vector<Score>& r) { return r.empty(); })
///       .retry_if_error([](const Status& e) { return e.code() != StatusCode::kInvalidArgument; });
template <class OUT>
class AsyncRetryStrategy {
 public:
  using ResultPredicate = std::function<bool(const std::vector<OUT>&)>;
  using ErrorPredicate = std::function<bool(const Status&)>;

  AsyncRetryStrategy() = default;

  /// At most `max_attempts` calls per record (the first one included),
  /// `delay` apart. Retries every error; results are kept.
  static AsyncRetryStrategy fixed_delay(int max_attempts, Duration delay) {
    return make(max_attempts, delay, delay, 1.0);
  }
  /// At most `max_attempts` calls; the n-th retry waits
  /// min(initial * multiplier^(n-1), max_delay). Retries every error.
  static AsyncRetryStrategy exponential_backoff(int max_attempts, Duration initial, Duration max_delay,
                                                double multiplier = 2.0) {
    if (multiplier < 1.0) throw std::invalid_argument("backoff multiplier must be at least 1");
    if (max_delay < initial) throw std::invalid_argument("max backoff must not be below the initial backoff");
    return make(max_attempts, initial, max_delay, multiplier);
  }
  static AsyncRetryStrategy no_retry() { return AsyncRetryStrategy(); }

  /// Retry an attempt whose results satisfy `p` (e.g. empty); when no
  /// attempt is left the last results are emitted. Default: never.
  AsyncRetryStrategy retry_if_result(ResultPredicate p) const {
    AsyncRetryStrategy s = *this;
    s.result_pred_ = std::move(p);
    return s;
  }
  /// Retry errors that satisfy `p`. Default: every error. nullptr: none.
  AsyncRetryStrategy retry_if_error(ErrorPredicate p) const {
    AsyncRetryStrategy s = *this;
    s.error_pred_ = std::move(p);
    s.retry_all_errors_ = false;
    return s;
  }

  int max_attempts() const { return max_attempts_; }
  /// Whether another attempt may follow `attempts_made` attempts.
  bool has_attempt_left(int attempts_made) const { return attempts_made < max_attempts_; }
  /// Wait before retry number `retry` (1 = the second attempt).
  Duration delay_before_retry(int retry) const {
    double d = static_cast<double>(initial_.count()) * std::pow(multiplier_, std::max(0, retry - 1));
    d = std::min(d, static_cast<double>(max_delay_.count()));
    return Duration(static_cast<int64_t>(d));
  }
  bool should_retry_result(const std::vector<OUT>& r) const { return result_pred_ && result_pred_(r); }
  bool should_retry_error(const Status& e) const {
    if (retry_all_errors_) return max_attempts_ > 1;
    return error_pred_ && error_pred_(e);
  }
  std::string describe() const {
    if (max_attempts_ <= 1) return "no retry";
    return std::to_string(max_attempts_) + " attempts, backoff " + format_duration(initial_) +
           (multiplier_ > 1.0 ? " x" + std::to_string(multiplier_).substr(0, 4) + " up to " + format_duration(max_delay_)
                              : "");
  }

 private:
  static AsyncRetryStrategy make(int max_attempts, Duration initial, Duration max_delay, double multiplier) {
    if (max_attempts < 1) throw std::invalid_argument("a retry strategy needs at least one attempt");
    if (initial.count() < 0) throw std::invalid_argument("retry delay must not be negative");
    AsyncRetryStrategy s;
    s.max_attempts_ = max_attempts;
    s.initial_ = initial;
    s.max_delay_ = max_delay;
    s.multiplier_ = multiplier;
    s.retry_all_errors_ = true;
    return s;
  }

  int max_attempts_ = 1;
  Duration initial_{0};
  Duration max_delay_{0};
  double multiplier_ = 1.0;
  bool retry_all_errors_ = false;
  ResultPredicate result_pred_;
  ErrorPredicate error_pred_;
};

}  // namespace sluice::async_io
