// One pattern over one key's events, run either by the NFA on the
// in-memory store or by the CEP operator in the operator harness on the
// heap or RocksDB backend: the per-feature tests run on all three.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "operators/cep/cep_operator.h"
#include "tests/connectors/file/temp_dir.h"
#include "tests/harness/operator_harness.h"
#include "tests/operators/cep_test_support.h"

namespace sluice::cep::testing {

enum class Where { kMemory, kHeap, kRocksDB };

inline std::string where_name(Where w) {
  return w == Where::kMemory ? "memory" : w == Where::kHeap ? "heap" : "rocksdb";
}

/// What a driver saw: matches and timeouts rendered as in RecordingHost.
struct Seen {
  std::vector<std::string> matches, timeouts;
};

class Driver {
 public:
  virtual ~Driver() = default;
  /// Processes (event, ts) pairs in order; throws std::runtime_error if the
  /// NFA or the task fails.
  virtual Driver& run(const std::vector<std::pair<Ev, int64_t>>& events) = 0;
  /// Every deadline <= t passes.
  virtual Driver& time(int64_t t) = 0;
  Driver& end() { return time(kNoTime - 1); }
  virtual const Seen& seen() = 0;
};

class MemoryDriver final : public Driver {
 public:
  MemoryDriver(const Pattern<Ev>& p, NfaLimits limits) : d_(p, limits) {}
  Driver& run(const std::vector<std::pair<Ev, int64_t>>& events) override {
    d_.run(events);
    return *this;
  }
  Driver& time(int64_t t) override {
    d_.time(t);
    return *this;
  }
  const Seen& seen() override {
    seen_.matches = d_.host().matches;
    seen_.timeouts = d_.host().timeouts;
    return seen_;
  }

 private:
  NfaDriver d_;
  Seen seen_;
};

/// Renders into a Seen shared with the test (the operator copies the function).
class SeenFunction final : public PatternProcessFunction<Ev, std::string> {
 public:
  explicit SeenFunction(std::shared_ptr<Seen> seen) : seen_(std::move(seen)) {}
  void process_match(const Match<Ev>& m, Context&, basic::Collector<std::string>& out) override {
    seen_->matches.push_back(render(m));
  }
  void process_timed_out_match(const Match<Ev>& m, Context& ctx) override {
    seen_->timeouts.push_back(render(m) + " @" + std::to_string(ctx.timestamp()));
  }

 private:
  // shared: the test reads what the operator's copy of the function writes.
  std::shared_ptr<Seen> seen_;
};

/// The CEP operator in event time; a record at ts is followed by the
/// watermark ts, time(t) is the watermark t - 1 (deadlines <= wm + 1 pass).
class HarnessDriver final : public Driver {
 public:
  HarnessDriver(const Pattern<Ev>& p, NfaLimits limits, state::BackendKind backend)
      : seen_(std::make_shared<Seen>()) {
    auto ks = std::make_shared<const runtime::KeySelector<Ev, std::string>>(
        std::function<std::string(const Ev&)>([](const Ev& e) { return e.key; }));
    CepOptions o;
    o.max_partial_matches = limits.max_partial_matches;
    o.max_events = limits.max_events;
    o.policy = limits.policy;
    harness::HarnessOptions h = harness::HarnessOptions::keyed_subtask();
    h.backend = backend;
    harness_ = std::make_unique<harness::OneInputOperatorHarness<Ev, std::string>>(
        std::make_unique<CepOperator<std::string, Ev, std::string, SeenFunction>>(
            ks, CompiledPattern<Ev>::compile(p), o, SeenFunction(seen_)),
        h);
    Status st = harness_->open();
    if (!st.is_ok()) throw std::runtime_error(st.to_string());
  }
  Driver& run(const std::vector<std::pair<Ev, int64_t>>& events) override {
    for (const auto& [e, ts] : events) {
      harness_->process_element(e, ts);
      harness_->process_watermark(ts);
      check();
    }
    return *this;
  }
  Driver& time(int64_t t) override {
    harness_->process_watermark(t >= kNoTime - 1 ? kNoTime : t - 1);
    check();
    return *this;
  }
  const Seen& seen() override { return *seen_; }

 private:
  void check() {
    if (!harness_->failures().empty()) throw std::runtime_error(harness_->failures().front().to_string());
  }
  file_test::TempDir dir_;
  std::shared_ptr<Seen> seen_;
  std::unique_ptr<harness::OneInputOperatorHarness<Ev, std::string>> harness_;
};

inline std::unique_ptr<Driver> make_driver(Where w, const Pattern<Ev>& p, NfaLimits limits = {}) {
  if (w == Where::kMemory) return std::make_unique<MemoryDriver>(p, limits);
  return std::make_unique<HarnessDriver>(p, limits,
                                         w == Where::kHeap ? state::BackendKind::kHeap : state::BackendKind::kRocksDB);
}

}  // namespace sluice::cep::testing
