// AsyncWaitOperator through the operator harness: the test completes every
// call itself (in order, out of order, late, twice, from another thread)
// and moves processing time by hand, so each case is deterministic.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/common/metrics.h"
#include "operators/async/async_wait_operator.h"
#include "tests/async/scripted_fn.h"
#include "tests/harness/operator_harness.h"

namespace sluice::async_io {
namespace {

using namespace async_testing;
using harness::HarnessOptions;

using V = std::vector<std::string>;

TEST(AsyncWaitOperator, OrderedEmitsInInputOrderWhenCallsCompleteOutOfOrder) {
  auto calls = std::make_shared<Calls>();
  Harness h(make_op(calls, opts(OutputMode::kOrdered)));
  ASSERT_TRUE(h.open().is_ok());
  for (int i = 1; i <= 3; ++i) h.process_element(i, i * 10);
  ASSERT_EQ(calls->invoked.size(), 3u);
  calls->ok(2);
  calls->ok(1);
  h.mailbox_queue().run_pending();
  EXPECT_TRUE(events(h).empty());  // 1 is not done yet
  calls->ok(0);
  h.mailbox_queue().run_pending();
  EXPECT_EQ(events(h), (V{"r1", "r2", "r3"}));
  // Results keep the input's timestamp.
  EXPECT_EQ(h.output().records()[1].ts, EventTime(20));
  EXPECT_EQ(op_of(h).in_flight(), 0u);
}

TEST(AsyncWaitOperator, OrderedHoldsAWatermarkUntilEveryEarlierRecordLeft) {
  auto calls = std::make_shared<Calls>();
  Harness h(make_op(calls, opts(OutputMode::kOrdered)));
  ASSERT_TRUE(h.open().is_ok());
  h.process_watermark(5);  // nothing in flight: passes at once
  h.process_element(1, 10);
  h.process_watermark(15);
  h.process_watermark(18);  // merges with 15: nothing between them
  h.process_element(2, 20);
  EXPECT_EQ(events(h), (V{"W5"}));
  calls->ok(1);
  h.mailbox_queue().run_pending();
  EXPECT_EQ(events(h), (V{"W5"}));
  calls->ok(0);
  h.mailbox_queue().run_pending();
  EXPECT_EQ(events(h), (V{"W5", "r1", "W18", "r2"}));
}

TEST(AsyncWaitOperator, UnorderedEmitsResultsAsTheyComplete) {
  auto calls = std::make_shared<Calls>();
  Harness h(make_op(calls, opts(OutputMode::kUnordered)));
  ASSERT_TRUE(h.open().is_ok());
  for (int i = 1; i <= 3; ++i) h.process_element(i, i);
  calls->ok(2);
  h.mailbox_queue().run_pending();
  calls->ok(0);
  h.mailbox_queue().run_pending();
  calls->ok(1);
  h.mailbox_queue().run_pending();
  EXPECT_EQ(events(h), (V{"r3", "r1", "r2"}));
}

TEST(AsyncWaitOperator, UnorderedResultsNeverCrossAWatermark) {
  auto calls = std::make_shared<Calls>();
  Harness h(make_op(calls, opts(OutputMode::kUnordered)));
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(1, 1);
  h.process_element(2, 2);
  h.process_watermark(10);
  h.process_element(3, 11);
  h.process_element(4, 12);
  h.process_watermark(20);
  h.process_element(5, 21);
  // Everything after the first watermark completes first: held back,
  // while record 2 (before it) may overtake record 1.
  calls->ok(4);
  calls->ok(3);
  calls->ok(2);
  calls->ok(1);
  h.mailbox_queue().run_pending();
  EXPECT_EQ(events(h), (V{"r2"}));
  calls->ok(0);
  h.mailbox_queue().run_pending();
  EXPECT_EQ(events(h), (V{"r2", "r1", "W10", "r4", "r3", "W20", "r5"}));
  // Nothing in flight: a watermark passes at once.
  h.process_watermark(30);
  EXPECT_EQ(events(h).back(), "W30");
}

TEST(AsyncWaitOperator, SuspendsInputAtCapacityAndResumesWhenARecordLeaves) {
  auto calls = std::make_shared<Calls>();
  Harness h(make_op(calls, opts(OutputMode::kOrdered, 2)));
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(1, 1);
  EXPECT_FALSE(h.mailbox_queue().input_suspended());
  h.process_element(2, 2);
  EXPECT_TRUE(h.mailbox_queue().input_suspended());
  EXPECT_TRUE(op_of(h).stats().suspended);
  // Done but waiting behind record 1: still in the operator, still full.
  calls->ok(1);
  h.mailbox_queue().run_pending();
  EXPECT_TRUE(h.mailbox_queue().input_suspended());
  calls->ok(0);
  h.mailbox_queue().run_pending();
  EXPECT_FALSE(h.mailbox_queue().input_suspended());
  EXPECT_FALSE(op_of(h).stats().suspended);
  EXPECT_GT(op_of(h).stats().suspended_ns, 0);
  EXPECT_EQ(events(h), (V{"r1", "r2"}));
}

TEST(AsyncWaitOperator, CapacityMetricsAreExportedToTheRegistry) {
  auto calls = std::make_shared<Calls>();
  HarnessOptions ho;
  ho.operator_name = "metrics-probe";
  Harness h(make_op(calls, opts(OutputMode::kOrdered, 1)), ho);
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(1, 1);
  ASSERT_TRUE(h.mailbox_queue().input_suspended());
  (void)h.snapshot();  // publishes
  auto value = [](const std::string& name) {
    for (const auto& fam : metrics::registry().Collect()) {
      if (fam.name != name) continue;
      for (const auto& m : fam.metric) {
        for (const auto& l : m.label)
          if (l.name == "operator" && l.value == "metrics-probe") return m.gauge.value + m.counter.value;
      }
    }
    return -1.0;
  };
  EXPECT_EQ(value("sluice_async_in_flight"), 1.0);
  EXPECT_EQ(value("sluice_async_input_suspended"), 1.0);
  EXPECT_EQ(value("sluice_async_capacity"), 1.0);
  EXPECT_EQ(value("sluice_async_requests_total"), 1.0);
  h.close();
  EXPECT_EQ(value("sluice_async_in_flight"), -1.0);  // removed with the subtask
}

TEST(AsyncWaitOperator, ATimedOutRecordGoesToTheDeadLetterOutputByDefault) {
  auto calls = std::make_shared<Calls>();
  Harness h(make_op(calls, opts(OutputMode::kOrdered, 10, 500ms)));
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(7, 1);
  h.process_element(8, 2);
  h.advance_processing_time(499);
  EXPECT_TRUE(calls->timed_out.empty());
  h.advance_processing_time(1);
  EXPECT_EQ(calls->timed_out, (std::vector<int>{7, 8}));
  h.mailbox_queue().run_pending();
  ASSERT_EQ(h.dead_letters().size(), 2u);
  EXPECT_NE(h.dead_letters()[0].reason.find("timed out"), std::string::npos) << h.dead_letters()[0].reason;
  EXPECT_NE(h.dead_letters()[0].reason.find("500ms"), std::string::npos) << h.dead_letters()[0].reason;
  EXPECT_EQ(h.dead_letters()[0].payload, "7");
  EXPECT_TRUE(h.failures().empty());
  // The service answers after all: too late, ignored.
  EXPECT_FALSE(calls->ok(0));
  h.mailbox_queue().run_pending();
  EXPECT_TRUE(events(h).empty());
  EXPECT_EQ(op_of(h).stats().timeouts, 2u);
  EXPECT_EQ(op_of(h).in_flight(), 0u);
}

TEST(AsyncWaitOperator, ATimeoutHandlerCanCompleteWithAFallback) {
  auto calls = std::make_shared<Calls>();
  calls->fallback_on_timeout = true;
  Harness h(make_op(calls, opts(OutputMode::kOrdered, 10, 100ms)));
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(1, 1);
  h.process_element(2, 2);
  calls->ok(1);
  h.mailbox_queue().run_pending();
  h.advance_processing_time(100);
  h.mailbox_queue().run_pending();
  EXPECT_EQ(events(h), (V{"fallback:1", "r2"}));
  EXPECT_TRUE(h.dead_letters().empty());
}

TEST(AsyncWaitOperator, OnlyTheFirstCompletionOfACallCounts) {
  auto calls = std::make_shared<Calls>();
  Harness h(make_op(calls, opts(OutputMode::kUnordered)));
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(1, 1);
  EXPECT_TRUE(calls->ok(0));
  EXPECT_FALSE(calls->ok(0));
  EXPECT_FALSE(calls->fail(0));
  h.mailbox_queue().run_pending();
  EXPECT_EQ(events(h), (V{"r1"}));
}

TEST(AsyncWaitOperator, FixedDelayRetriesAFailedCallAfterTheDelay) {
  auto calls = std::make_shared<Calls>();
  Harness h(make_op(calls, opts(OutputMode::kOrdered), AsyncRetryStrategy<std::string>::fixed_delay(3, 50ms)));
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(1, 1);
  calls->fail(0);
  h.mailbox_queue().run_pending();
  h.advance_processing_time(49);
  EXPECT_EQ(calls->invoked.size(), 1u);
  h.advance_processing_time(1);
  ASSERT_EQ(calls->invoked.size(), 2u);
  calls->ok(1);
  h.mailbox_queue().run_pending();
  EXPECT_EQ(events(h), (V{"r1"}));
  EXPECT_EQ(op_of(h).stats().retries, 1u);
  EXPECT_EQ(op_of(h).stats().errors, 1u);
  EXPECT_EQ(op_of(h).stats().requests, 2u);
}

TEST(AsyncWaitOperator, ExponentialBackoffDoublesTheDelayUpToItsMaximum) {
  auto calls = std::make_shared<Calls>();
  Harness h(make_op(calls, opts(OutputMode::kOrdered, 10, 10s),
                    AsyncRetryStrategy<std::string>::exponential_backoff(5, 100ms, 250ms)));
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(1, 1);
  std::vector<int64_t> issued_at = {0};
  for (int retry = 1; retry <= 4; ++retry) {
    calls->fail(calls->invoked.size() - 1);
    h.mailbox_queue().run_pending();
    size_t before = calls->invoked.size();
    while (calls->invoked.size() == before) h.advance_processing_time(1);
    issued_at.push_back(h.clock().now_ms());
  }
  EXPECT_EQ(issued_at, (std::vector<int64_t>{0, 100, 300, 550, 800}));
  // The fifth attempt fails too: no attempt left, the record is a dead letter.
  calls->fail(4, Status::unavailable("still down"));
  h.mailbox_queue().run_pending();
  ASSERT_EQ(h.dead_letters().size(), 1u);
  EXPECT_NE(h.dead_letters()[0].reason.find("after 5 attempts"), std::string::npos) << h.dead_letters()[0].reason;
  EXPECT_NE(h.dead_letters()[0].reason.find("still down"), std::string::npos);
}

TEST(AsyncWaitOperator, RetriesOnAResultPredicateAndEmitsTheLastResultWhenAttemptsRunOut) {
  auto calls = std::make_shared<Calls>();
  auto retry = AsyncRetryStrategy<std::string>::fixed_delay(2, 10ms).retry_if_result(
      [](const std::vector<std::string>& r) { return r.empty(); });
  Harness h(make_op(calls, opts(OutputMode::kOrdered), retry));
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(1, 1);
  calls->invoked[0].result.complete(std::vector<std::string>{});
  h.mailbox_queue().run_pending();
  h.advance_processing_time(10);
  ASSERT_EQ(calls->invoked.size(), 2u);
  calls->invoked[1].result.complete(std::vector<std::string>{});
  h.mailbox_queue().run_pending();
  EXPECT_EQ(calls->invoked.size(), 2u);
  EXPECT_EQ(op_of(h).in_flight(), 0u);  // left with no results
  EXPECT_TRUE(h.dead_letters().empty());
}

TEST(AsyncWaitOperator, ErrorsTheStrategyDoesNotRetryGoStraightToTheDeadLetterOutput) {
  auto calls = std::make_shared<Calls>();
  auto retry = AsyncRetryStrategy<std::string>::fixed_delay(5, 10ms).retry_if_error(
      [](const Status& e) { return e.code() == StatusCode::kUnavailable; });
  Harness h(make_op(calls, opts(OutputMode::kOrdered), retry));
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(1, 1);
  calls->fail(0, Status::invalid_argument("bad amount"));
  h.mailbox_queue().run_pending();
  ASSERT_EQ(h.dead_letters().size(), 1u);
  EXPECT_NE(h.dead_letters()[0].reason.find("after 1 attempt: "), std::string::npos) << h.dead_letters()[0].reason;
  EXPECT_EQ(calls->invoked.size(), 1u);
}

TEST(AsyncWaitOperator, FailJobPolicyFailsTheTaskAndKeepsTheRecordForTheCheckpoint) {
  auto calls = std::make_shared<Calls>();
  AsyncOptions o = opts(OutputMode::kOrdered);
  o.on_error = OnError::kFailJob;
  Harness h(make_op(calls, o));
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(1, 1);
  calls->fail(0);
  h.mailbox_queue().run_pending();
  ASSERT_EQ(h.failures().size(), 1u);
  EXPECT_NE(h.failures()[0].message().find("service down"), std::string::npos);
  EXPECT_TRUE(h.dead_letters().empty());
  EXPECT_FALSE(h.snapshot().operator_states.at(0).empty());
}

TEST(AsyncWaitOperator, AnAttemptTimeoutIsRetriedAndItsLateAnswerIgnored) {
  auto calls = std::make_shared<Calls>();
  AsyncOptions o = opts(OutputMode::kOrdered, 10, 1000ms);
  o.attempt_timeout = 100ms;
  Harness h(make_op(calls, o, AsyncRetryStrategy<std::string>::fixed_delay(3, 0ms)));
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(1, 1);
  h.advance_processing_time(100);  // attempt 1 times out, attempt 2 starts at once
  h.advance_processing_time(0);
  ASSERT_EQ(calls->invoked.size(), 2u);
  EXPECT_FALSE(calls->ok(0));  // the first attempt's late answer
  calls->invoked[1].result.complete("second");
  h.mailbox_queue().run_pending();
  EXPECT_EQ(events(h), (V{"second"}));
  EXPECT_EQ(op_of(h).stats().errors, 1u);
  EXPECT_EQ(op_of(h).stats().timeouts, 0u);
}

TEST(AsyncWaitOperator, TheOverallTimeoutAlsoEndsARecordWaitingForARetry) {
  auto calls = std::make_shared<Calls>();
  Harness h(make_op(calls, opts(OutputMode::kOrdered, 10, 300ms),
                    AsyncRetryStrategy<std::string>::fixed_delay(10, 200ms)));
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(1, 1);
  calls->fail(0, Status::unavailable("connection refused"));
  h.mailbox_queue().run_pending();
  h.advance_processing_time(200);
  ASSERT_EQ(calls->invoked.size(), 2u);
  calls->fail(1, Status::unavailable("connection refused"));
  h.mailbox_queue().run_pending();
  h.advance_processing_time(100);  // t = 300: timeout while waiting for attempt 3
  h.mailbox_queue().run_pending();
  ASSERT_EQ(h.dead_letters().size(), 1u);
  EXPECT_NE(h.dead_letters()[0].reason.find("2 attempts; last error: "), std::string::npos)
      << h.dead_letters()[0].reason;
  h.advance_processing_time(500);
  EXPECT_EQ(calls->invoked.size(), 2u);  // the pending retry never runs
}

TEST(AsyncWaitOperator, ExceptionsOfTheFunctionFollowTheExceptionBoundary) {
  auto calls = std::make_shared<Calls>();
  Harness h(make_op(calls, opts(OutputMode::kOrdered)));
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(-1, 1);
  ASSERT_EQ(h.dead_letters().size(), 1u);
  EXPECT_EQ(h.dead_letters()[0].reason, "negative input");
  EXPECT_EQ(op_of(h).in_flight(), 0u);
  h.process_element(-2, 2);
  ASSERT_EQ(h.failures().size(), 1u);
  EXPECT_NE(h.failures()[0].message().find("bug in the function"), std::string::npos);
}

TEST(AsyncWaitOperator, CallsInFlightAreInTheSnapshotAndMadeAgainAfterRestore) {
  for (OutputMode mode : {OutputMode::kOrdered, OutputMode::kUnordered}) {
    SCOPED_TRACE(mode == OutputMode::kOrdered ? "ordered" : "unordered");
    auto calls = std::make_shared<Calls>();
    harness::OperatorSnapshot snap;
    {
      Harness h(make_op(calls, opts(mode)));
      ASSERT_TRUE(h.open().is_ok());
      h.process_element(1, 1);
      h.process_element(2, 2);
      h.process_watermark(5);
      h.process_element(3, 6);
      calls->ok(1);  // done, but (ordered) waiting behind 1 / (unordered) emitted
      h.mailbox_queue().run_pending();
      snap = h.snapshot();
      h.close();
      EXPECT_EQ(calls->closed, 1);
    }
    auto after = std::make_shared<Calls>();
    auto h2 = Harness::restored(make_op(after, opts(mode)), {}, snap);
    ASSERT_TRUE(h2->open().is_ok());
    std::vector<int> reissued;
    for (const auto& c : after->invoked) reissued.push_back(c.input);
    if (mode == OutputMode::kOrdered) {
      EXPECT_EQ(reissued, (std::vector<int>{1, 2, 3}));
    } else {
      EXPECT_EQ(reissued, (std::vector<int>{1, 3}));
    }
    for (size_t i = 0; i < after->invoked.size(); ++i) after->ok(i);
    h2->mailbox_queue().run_pending();
    if (mode == OutputMode::kOrdered) EXPECT_EQ(events(*h2), (V{"r1", "r2", "W5", "r3"}));
    else EXPECT_EQ(events(*h2), (V{"r1", "W5", "r3"}));
  }
}

TEST(AsyncWaitOperator, RestoringAtAnotherParallelismCallsEveryRecordExactlyOnce) {
  std::vector<harness::OperatorSnapshot> parts;
  for (int s = 0; s < 2; ++s) {
    auto calls = std::make_shared<Calls>();
    Harness h(make_op(calls, opts(OutputMode::kUnordered)), HarnessOptions::keyed_subtask(2, s));
    ASSERT_TRUE(h.open().is_ok());
    for (int i = 0; i < 7; ++i) h.process_element(s * 100 + i, i);
    parts.push_back(h.snapshot());
  }
  auto merged = harness::OperatorSnapshot::merge(parts);
  std::multiset<int> reissued;
  for (int s = 0; s < 3; ++s) {
    auto calls = std::make_shared<Calls>();
    auto h = Harness::restored(make_op(calls, opts(OutputMode::kUnordered)), HarnessOptions::keyed_subtask(3, s),
                               merged);
    ASSERT_TRUE(h->open().is_ok());
    EXPECT_GE(calls->invoked.size(), 4u);
    for (const auto& c : calls->invoked) reissued.insert(c.input);
  }
  std::multiset<int> expected;
  for (int s = 0; s < 2; ++s)
    for (int i = 0; i < 7; ++i) expected.insert(s * 100 + i);
  EXPECT_EQ(reissued, expected);
}

TEST(AsyncWaitOperator, FinishWaitsForCallsCompletedOnAnotherThread) {
  auto calls = std::make_shared<Calls>();
  Harness h(make_op(calls, opts(OutputMode::kOrdered)));
  ASSERT_TRUE(h.open().is_ok());
  for (int i = 1; i <= 50; ++i) h.process_element(i, i);
  h.process_watermark(EventTime::max());
  std::thread completer([calls] {
    for (size_t i = calls->invoked.size(); i-- > 0;) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      calls->ok(i);
    }
  });
  ASSERT_TRUE(h.end_input().is_ok());
  completer.join();
  auto ev = events(h);
  ASSERT_EQ(ev.size(), 51u);
  EXPECT_EQ(ev.front(), "r1");
  EXPECT_EQ(ev[49], "r50");
  EXPECT_EQ(ev.back(), "W" + std::to_string(EventTime::max().ms()));
}

TEST(AsyncWaitOperator, ACompletionAfterCloseIsDropped) {
  auto calls = std::make_shared<Calls>();
  auto h = std::make_unique<Harness>(make_op(calls, opts(OutputMode::kOrdered)));
  ASSERT_TRUE(h->open().is_ok());
  h->process_element(1, 1);
  h->close();
  EXPECT_FALSE(calls->ok(0));  // the gate is shut: nothing is posted
  EXPECT_EQ(h->mailbox_queue().pending(), 0u);
  h.reset();
  EXPECT_FALSE(calls->invoked[0].result.complete("x"));  // and nothing dangles
}

}  // namespace
}  // namespace sluice::async_io
