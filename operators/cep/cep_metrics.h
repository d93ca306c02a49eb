// The CEP operator's metrics in sluice::metrics::registry(), per operator
// subtask {job, operator, subtask}:
//   sluice_cep_matches_total                 counter  matches emitted
//   sluice_cep_timeouts_total                counter  partial matches that ran out of time
//   sluice_cep_partial_matches_dropped_total counter  partial matches dropped at the per-key cap
//   sluice_cep_late_records_total            counter  records behind the watermark
//   sluice_cep_partial_matches               gauge    live partial matches (and held matches)
//   sluice_cep_shared_buffer_events          gauge    events held by partial matches
//   sluice_cep_buffered_events               gauge    records waiting for the watermark
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "engine/common/serde.h"

namespace prometheus {
class Counter;
class Gauge;
}  // namespace prometheus

namespace sluice::cep {

/// What one CEP operator subtask has done and holds. Plain numbers,
/// written by the task thread.
struct CepStats {
  uint64_t matches = 0, timeouts = 0, dropped = 0, late = 0;
  /// Events that no condition of the pattern accepted (neither buffered
  /// nor processed).
  uint64_t skipped = 0;
  int64_t partial_matches = 0, held = 0, shared_events = 0, buffered = 0;
};

/// The operator subtask's series in the registry; removed when destroyed.
/// publish() is called on the task thread (now and then, not per record).
class CepMetrics {
 public:
  CepMetrics(const std::string& job, const std::string& op, int32_t subtask);
  ~CepMetrics();
  CepMetrics(const CepMetrics&) = delete;
  CepMetrics& operator=(const CepMetrics&) = delete;
  void publish(const CepStats& s);

 private:
  std::map<std::string, std::string> labels_;
  prometheus::Counter *matches_, *timeouts_, *dropped_, *late_;
  prometheus::Gauge *partial_, *shared_, *buffered_;
  CepStats published_;
};

}  // namespace sluice::cep
