// Test helpers of the async operator tests: a scripted AsyncFunction whose
// calls the test completes by hand, and harness shorthands.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "operators/async/async_wait_operator.h"
#include "tests/harness/operator_harness.h"

namespace sluice::async_io::async_testing {

using namespace std::chrono_literals;
using harness::HarnessOptions;
using harness::OneInputOperatorHarness;

/// The calls a ScriptedFn was asked to make, for the test to complete.
struct Calls {
  struct Call {
    int input;
    ResultFuture<std::string> result;
  };
  std::vector<Call> invoked;
  std::vector<int> timed_out;
  bool fallback_on_timeout = false;  // timeout() completes with "fallback:<n>"
  int opened = 0, closed = 0;

  /// Completes the i-th call with "r<input>".
  bool ok(size_t i) { return invoked.at(i).result.complete("r" + std::to_string(invoked.at(i).input)); }
  bool fail(size_t i, Status st = Status::unavailable("service down")) {
    return invoked.at(i).result.complete_exceptionally(std::move(st));
  }
};

/// Hands every call to the test through Calls. Throws for input -1
/// (InvalidRecord) and -2 (a bug).
class ScriptedFn final : public AsyncFunction<int, std::string> {
 public:
  explicit ScriptedFn(std::shared_ptr<Calls> c) : calls_(std::move(c)) {}
  Status open(basic::RuntimeContext&) override {
    ++calls_->opened;
    return Status::ok();
  }
  void close() override { ++calls_->closed; }
  void async_invoke(const int& in, ResultFuture<std::string> result) override {
    if (in == -1) throw InvalidRecord("negative input");
    if (in == -2) throw std::runtime_error("bug in the function");
    calls_->invoked.push_back({in, result});
  }
  void timeout(const int& in, ResultFuture<std::string> result) override {
    calls_->timed_out.push_back(in);
    if (calls_->fallback_on_timeout) result.complete("fallback:" + std::to_string(in));
    else AsyncFunction::timeout(in, result);
  }

 private:
  std::shared_ptr<Calls> calls_;  // shared with the test
};

using Op = AsyncWaitOperator<int, std::string>;
using Harness = OneInputOperatorHarness<int, std::string>;

inline AsyncOptions opts(OutputMode mode, int capacity = 100, Duration timeout = 1000ms) {
  AsyncOptions o;
  o.mode = mode;
  o.capacity = capacity;
  o.timeout = timeout;
  return o;
}

inline std::unique_ptr<Op> make_op(std::shared_ptr<Calls> c, AsyncOptions o, AsyncRetryStrategy<std::string> r = {}) {
  return std::make_unique<Op>(std::make_unique<ScriptedFn>(std::move(c)), o, std::move(r));
}

inline Op& op_of(Harness& h) { return static_cast<Op&>(h.op()); }

/// Records and watermarks of the output as strings: "r1", "W10".
inline std::vector<std::string> events(Harness& h) {
  std::vector<std::string> out;
  for (const auto& e : h.output().events()) {
    if (e.is_record()) out.push_back(*e.value);
    else if (e.is_watermark()) out.push_back("W" + std::to_string(e.ts.ms()));
  }
  return out;
}

}  // namespace sluice::async_io::async_testing
