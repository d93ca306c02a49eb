// Driving a push sink in the operator harness against a real receiver:
// answers arrive on the HTTP client's thread, so the test runs the mailbox
// and moves the manual processing-time clock along with real time.
#pragma once

#include <chrono>
#include <string>
#include <thread>

#include "tests/harness/operator_harness.h"

namespace sluice::push_test {

inline harness::HarnessOptions sink_options(const std::string& name, const std::string& job) {
  harness::HarnessOptions o;
  o.operator_name = name;
  o.job_name = job;
  o.start_processing_time = 1'000'000;
  return o;
}

/// Runs answers and timers (the manual clock follows real time) until
/// `done` or 10 s.
template <class H, class F>
bool drive(H& h, F done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    h.mailbox_queue().run_pending();
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    h.advance_processing_time(5);
  }
  h.mailbox_queue().run_pending();
  return done();
}

/// Runs answers and timers for `ms` of real time.
template <class H>
void drive_for(H& h, int ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < until) {
    h.mailbox_queue().run_pending();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    h.advance_processing_time(5);
  }
}

}  // namespace sluice::push_test
