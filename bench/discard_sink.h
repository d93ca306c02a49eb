// DiscardSink: drops every record (a blackhole sink, as Flink's Nexmark
// runs use). Its sink operator still records
// sluice_end_to_end_latency_seconds, so a discard sink chained behind a
// source measures the delay up to the source (workload 4's probe).
#pragma once

#include <memory>
#include <string>

#include "engine/api/sluice.h"

namespace sluice_bench {

/// Drops every record: the job's cost without the output's. Stateless, so
/// trivially exactly-once. Immutable, shared by the job graph; each sink
/// subtask gets its own (empty) writer on its task thread.
template <class T>
class DiscardSink final : public sluice::runtime::Sink<T> {
  class Writer final : public sluice::runtime::SinkWriter<T> {
   public:
    sluice::Status write(const T&, sluice::EventTime) override { return sluice::Status::ok(); }
  };

 public:
  std::string description() const override { return "discard"; }
  std::unique_ptr<sluice::runtime::SinkWriter<T>> create_writer() const override {
    return std::make_unique<Writer>();
  }
};

}  // namespace sluice_bench
