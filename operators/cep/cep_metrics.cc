#include "operators/cep/cep_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>

#include <map>
#include <mutex>

#include "engine/common/metrics.h"

namespace sluice::cep {
namespace {

struct Families {
  prometheus::Family<prometheus::Counter>& matches;
  prometheus::Family<prometheus::Counter>& timeouts;
  prometheus::Family<prometheus::Counter>& dropped;
  prometheus::Family<prometheus::Counter>& late;
  prometheus::Family<prometheus::Gauge>& partial;
  prometheus::Family<prometheus::Gauge>& shared;
  prometheus::Family<prometheus::Gauge>& buffered;
};

Families& families() {
  static Families* f = [] {
    auto& r = metrics::registry();
    return new Families{
        prometheus::BuildCounter().Name("sluice_cep_matches_total").Help("Matches emitted by CEP operators").Register(r),
        prometheus::BuildCounter()
            .Name("sluice_cep_timeouts_total")
            .Help("Partial matches of CEP operators that ran out of time (within)")
            .Register(r),
        prometheus::BuildCounter()
            .Name("sluice_cep_partial_matches_dropped_total")
            .Help("Partial matches dropped to the dead-letter output at the per-key cap")
            .Register(r),
        prometheus::BuildCounter()
            .Name("sluice_cep_late_records_total")
            .Help("Records that reached a CEP operator behind its watermark")
            .Register(r),
        prometheus::BuildGauge()
            .Name("sluice_cep_partial_matches")
            .Help("Live partial matches of a CEP operator subtask (with matches held back for ordering)")
            .Register(r),
        prometheus::BuildGauge()
            .Name("sluice_cep_shared_buffer_events")
            .Help("Events a CEP operator subtask keeps for its partial matches")
            .Register(r),
        prometheus::BuildGauge()
            .Name("sluice_cep_buffered_events")
            .Help("Records a CEP operator subtask holds until the watermark passes them")
            .Register(r),
    };
  }();
  return *f;
}

// Two operator instances of one process can have the same labels (two
// attempts overlapping, two jobs of one name, tests): they share the series,
// which lives until the last of them is gone. Gauges move by deltas so the
// instances add up.
std::mutex registry_mu;
std::map<std::map<std::string, std::string>, int>& users() {
  static auto* m = new std::map<std::map<std::string, std::string>, int>();
  return *m;
}

}  // namespace

CepMetrics::CepMetrics(const std::string& job, const std::string& op, int32_t subtask)
    : labels_{{"job", job}, {"operator", op}, {"subtask", std::to_string(subtask)}} {
  std::lock_guard lk(registry_mu);
  Families& f = families();
  ++users()[labels_];
  matches_ = &f.matches.Add(labels_);
  timeouts_ = &f.timeouts.Add(labels_);
  dropped_ = &f.dropped.Add(labels_);
  late_ = &f.late.Add(labels_);
  partial_ = &f.partial.Add(labels_);
  shared_ = &f.shared.Add(labels_);
  buffered_ = &f.buffered.Add(labels_);
}

CepMetrics::~CepMetrics() {
  std::lock_guard lk(registry_mu);
  publish(CepStats{published_.matches, published_.timeouts, published_.dropped, published_.late, 0, 0, 0, 0, 0});
  if (--users()[labels_] > 0) return;
  users().erase(labels_);
  Families& f = families();
  f.matches.Remove(matches_);
  f.timeouts.Remove(timeouts_);
  f.dropped.Remove(dropped_);
  f.late.Remove(late_);
  f.partial.Remove(partial_);
  f.shared.Remove(shared_);
  f.buffered.Remove(buffered_);
}

void CepMetrics::publish(const CepStats& s) {
  matches_->Increment(static_cast<double>(s.matches - published_.matches));
  timeouts_->Increment(static_cast<double>(s.timeouts - published_.timeouts));
  dropped_->Increment(static_cast<double>(s.dropped - published_.dropped));
  late_->Increment(static_cast<double>(s.late - published_.late));
  partial_->Increment(static_cast<double>((s.partial_matches + s.held) - (published_.partial_matches + published_.held)));
  shared_->Increment(static_cast<double>(s.shared_events - published_.shared_events));
  buffered_->Increment(static_cast<double>(s.buffered - published_.buffered));
  published_ = s;
}

}  // namespace sluice::cep
