// Metrics of one async I/O operator subtask: counted on the task thread in
// plain integers, handed to the process's Prometheus registry now and then
// (publish()), so the hot path pays no atomics.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/runtime/operator.h"

namespace prometheus {
class Counter;
class Gauge;
template <typename T>
class Family;
}  // namespace prometheus

namespace sluice::async_io {

/// What an async operator has done so far. Task thread only; read it in
/// tests through AsyncWaitOperator::stats().
struct AsyncStats {
  uint64_t requests = 0;      ///< attempts started (first calls and retries)
  uint64_t retries = 0;       ///< attempts that were retries
  uint64_t completed = 0;     ///< records that left with results (possibly none)
  uint64_t errors = 0;        ///< attempts that failed (error or attempt timeout)
  uint64_t timeouts = 0;      ///< records whose overall timeout passed (sent to timeout())
  uint64_t dead_letters = 0;  ///< records sent to the dead-letter output
  uint64_t in_flight = 0;     ///< records in the operator now
  int64_t suspended_ns = 0;   ///< total time the operator held its input suspended at capacity
  bool suspended = false;     ///< suspended right now
};

/// The operator's families in metrics::registry(), labelled {job, job_id,
/// operator, subtask}:
///   sluice_async_requests_total, sluice_async_retries_total,
///   sluice_async_completed_total, sluice_async_errors_total,
///   sluice_async_timeouts_total, sluice_async_dead_letters_total,
///   sluice_async_input_suspended_seconds_total (counters);
///   sluice_async_in_flight, sluice_async_capacity,
///   sluice_async_input_suspended (0/1) (gauges).
/// Created in the operator's open(), removed from the registry when
/// destroyed (the subtask's series disappear from the next scrape). Task
/// thread only.
class AsyncMetrics {
 public:
  AsyncMetrics(const runtime::OperatorInfo& info, int capacity);
  ~AsyncMetrics();
  AsyncMetrics(const AsyncMetrics&) = delete;
  AsyncMetrics& operator=(const AsyncMetrics&) = delete;

  /// Brings the registry up to `s`.
  void publish(const AsyncStats& s);

 private:
  struct Series;
  std::vector<Series> counters_;
  std::vector<std::pair<prometheus::Family<prometheus::Gauge>*, prometheus::Gauge*>> gauges_;
  prometheus::Gauge* in_flight_ = nullptr;
  prometheus::Gauge* capacity_ = nullptr;
  prometheus::Gauge* suspended_ = nullptr;
  AsyncStats published_;
};

}  // namespace sluice::async_io
