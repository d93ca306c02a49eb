#include "operators/async/async_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include "engine/common/metrics.h"

namespace sluice::async_io {

struct AsyncMetrics::Series {
  prometheus::Family<prometheus::Counter>* family;
  prometheus::Counter* counter;
};

namespace {

using Labels = std::map<std::string, std::string>;

Labels labels_of(const runtime::OperatorInfo& info) {
  return {{"job", info.job_name},
          {"job_id", info.job_id},
          {"operator", info.operator_name},
          {"subtask", std::to_string(info.subtask)}};
}

struct CounterSpec {
  const char* name;
  const char* help;
};
constexpr CounterSpec kCounters[] = {
    {"sluice_async_requests_total", "Async calls started (first attempts and retries)"},
    {"sluice_async_retries_total", "Async calls that were retries"},
    {"sluice_async_completed_total", "Records that left the async operator with their results"},
    {"sluice_async_errors_total", "Async attempts that failed (errors and attempt timeouts)"},
    {"sluice_async_timeouts_total", "Records whose async timeout passed"},
    {"sluice_async_dead_letters_total", "Records the async operator sent to the dead-letter output"},
    {"sluice_async_input_suspended_seconds_total", "Time the async operator held its input suspended at capacity"},
};

prometheus::Family<prometheus::Gauge>* gauge_family(const char* name, const char* help) {
  return &prometheus::BuildGauge().Name(name).Help(help).Register(metrics::registry());
}

}  // namespace

AsyncMetrics::AsyncMetrics(const runtime::OperatorInfo& info, int capacity) {
  Labels l = labels_of(info);
  for (const auto& c : kCounters) {
    auto* fam = &prometheus::BuildCounter().Name(c.name).Help(c.help).Register(metrics::registry());
    counters_.push_back({fam, &fam->Add(l)});
  }
  auto add_gauge = [&](const char* name, const char* help) {
    auto* fam = gauge_family(name, help);
    auto* g = &fam->Add(l);
    gauges_.push_back({fam, g});
    return g;
  };
  in_flight_ = add_gauge("sluice_async_in_flight", "Records in the async operator now");
  capacity_ = add_gauge("sluice_async_capacity", "Capacity of the async operator");
  suspended_ = add_gauge("sluice_async_input_suspended", "1 while the async operator holds its input suspended");
  capacity_->Set(capacity);
}

AsyncMetrics::~AsyncMetrics() {
  for (auto& s : counters_) s.family->Remove(s.counter);
  for (auto& [fam, g] : gauges_) fam->Remove(g);
}

void AsyncMetrics::publish(const AsyncStats& s) {
  const uint64_t now[] = {s.requests, s.retries, s.completed, s.errors, s.timeouts, s.dead_letters, 0};
  const uint64_t before[] = {published_.requests, published_.retries,  published_.completed,
                             published_.errors,   published_.timeouts, published_.dead_letters, 0};
  for (size_t i = 0; i + 1 < counters_.size(); ++i) {
    if (now[i] > before[i]) counters_[i].counter->Increment(static_cast<double>(now[i] - before[i]));
  }
  if (s.suspended_ns > published_.suspended_ns) {
    counters_.back().counter->Increment(static_cast<double>(s.suspended_ns - published_.suspended_ns) / 1e9);
  }
  in_flight_->Set(static_cast<double>(s.in_flight));
  suspended_->Set(s.suspended ? 1 : 0);
  published_ = s;
}

}  // namespace sluice::async_io
