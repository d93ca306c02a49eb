// Two-input operators through the two-input harness: the combined
// watermark (minimum of the inputs, idle and finished inputs excluded),
// and keyed co-process functions whose keyed state and timers serve both
// inputs, snapshotted and restored at another parallelism, on the heap and
// the RocksDB backend.
#include "operators/join/co_process.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "state/state_factory.h"
#include "tests/harness/operator_harness.h"

namespace sluice::join {
namespace {

using harness::HarnessOptions;
using harness::OperatorSnapshot;
using harness::TwoInputOperatorHarness;

// ---- the combined watermark -------------------------------------------------------

TEST(InputWatermarks, TheCombinedWatermarkIsTheMinimumOfTheActiveInputsAndNeverGoesBack) {
  runtime::InputWatermarks w(2);
  EXPECT_FALSE(w.on_watermark(0, EventTime(10)));  // input 1 has none yet
  EXPECT_EQ(w.on_watermark(1, EventTime(5)), EventTime(5));
  EXPECT_EQ(w.on_watermark(1, EventTime(20)), EventTime(10));
  EXPECT_FALSE(w.on_watermark(1, EventTime(15)));  // an input's watermark does not go back
  std::optional<EventTime> advanced;
  EXPECT_FALSE(w.on_status(0, true, advanced));  // one idle input: not idle as a whole
  EXPECT_EQ(advanced, EventTime(20)) << "an idle input must not hold the watermark back";
  EXPECT_TRUE(w.on_status(1, true, advanced));
  EXPECT_TRUE(w.idle());
  EXPECT_TRUE(w.on_status(0, false, advanced));
  EXPECT_FALSE(w.idle());
  EXPECT_FALSE(advanced) << "input 1 is back at 10: the combined watermark stays at 20";
  EXPECT_EQ(w.combined(), EventTime(20));
}

/// Forwards nothing but the watermark; reports it.
class Silent final : public CoProcessFunction<int64_t, std::string, std::string> {
 public:
  void process_element1(const int64_t&, Context& ctx, Collector<std::string>& out) override {
    out.collect("wm " + std::to_string(ctx.current_watermark()));
  }
  void process_element2(const std::string& s, Context&, Collector<std::string>& out) override {
    out.collect(s);
  }
};

using SilentHarness = TwoInputOperatorHarness<int64_t, std::string, std::string>;

std::unique_ptr<runtime::StreamOperator> silent() {
  return std::make_unique<CoProcessOperator<int64_t, std::string, std::string, Silent>>(Silent{});
}

std::vector<int64_t> watermarks_of(SilentHarness& h) {
  std::vector<int64_t> out;
  for (auto wm : h.output().watermarks()) out.push_back(wm.ms());
  return out;
}

TEST(TwoInputOperator, SeesTheMinimumOfItsInputsWatermarks) {
  SilentHarness h(silent());
  ASSERT_TRUE(h.open().is_ok());
  h.process_watermark1(10);
  EXPECT_TRUE(watermarks_of(h).empty()) << "input 2 has no watermark yet";
  h.process_watermark2(5);
  h.process_watermark2(20);
  h.process_watermark1(30);
  EXPECT_EQ(watermarks_of(h), (std::vector<int64_t>{5, 10, 20}));
  h.process_element1(1, 25);
  EXPECT_EQ(h.output().values().back(), "wm 20");
}

TEST(TwoInputOperator, AnIdleInputDoesNotHoldTheWatermarkBackAndBothIdleIsIdle) {
  SilentHarness h(silent());
  ASSERT_TRUE(h.open().is_ok());
  h.process_watermark1(10);
  h.set_idle2(true);
  h.process_watermark1(40);
  EXPECT_EQ(watermarks_of(h), (std::vector<int64_t>{10, 40}));
  h.set_idle1(true);
  const auto& ev = h.output().events();
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back().kind, harness::OutputEvent<std::string>::Kind::kWatermarkStatus);
  EXPECT_TRUE(ev.back().idle) << "both inputs idle: the operator's output is idle";
  h.set_idle2(false);
  EXPECT_FALSE(h.output().events().back().idle);
  h.process_watermark2(30);  // behind the combined watermark: nothing goes back
  h.process_watermark2(50);
  EXPECT_EQ(watermarks_of(h), (std::vector<int64_t>{10, 40, 50}));
}

TEST(TwoInputOperator, AFinishedInputDoesNotHoldTheWatermarkBack) {
  SilentHarness h(silent());
  ASSERT_TRUE(h.open().is_ok());
  h.process_watermark1(10);
  h.end_input2();
  h.process_watermark1(25);
  EXPECT_EQ(watermarks_of(h), (std::vector<int64_t>{10, 25}));
  h.end_input1();
  EXPECT_EQ(h.output().watermarks().back(), EventTime::max());
}

// ---- keyed co-process --------------------------------------------------------------

struct Order {
  std::string user;
  int64_t amount = 0;
  SLUICE_FIELDS(user, amount)
};
struct Payment {
  std::string user;
  int64_t amount = 0;
  SLUICE_FIELDS(user, amount)
};
struct Balance {
  std::string user;
  int64_t ordered = 0;
  int64_t paid = 0;
  std::string timer;  // "event" | "processing"
  int64_t at = 0;
  SLUICE_FIELDS(user, ordered, paid, timer, at)
  bool operator==(const Balance&) const = default;
  auto operator<=>(const Balance&) const = default;
};

/// Orders add to "ordered" and set an event-time timer 100 ms after the
/// order; payments add to "paid" and set a processing-time timer 50 ms
/// later. Every timer reports the key's balance.
class Ledger final : public KeyedCoProcessFunction<std::string, Order, Payment, Balance> {
 public:
  void open(RuntimeContext& rc) override {
    ordered_ = rc.get_state(state::ValueStateDescriptor<int64_t>{"ordered", {}});
    paid_ = rc.get_state(state::ValueStateDescriptor<int64_t>{"paid", {}});
  }
  void process_element1(const Order& o, Context& ctx, Collector<Balance>& out) override {
    if (ctx.current_key() != o.user) throw std::logic_error("wrong current key");
    ordered_->update(ordered_->value_or(0) + o.amount);
    ctx.timer_service().register_event_time_timer(ctx.timestamp() + 100);
  }
  void process_element2(const Payment& p, Context& ctx, Collector<Balance>& out) override {
    if (ctx.current_key() != p.user) throw std::logic_error("wrong current key");
    paid_->update(paid_->value_or(0) + p.amount);
    ctx.timer_service().register_processing_time_timer(ctx.timer_service().current_processing_time() + 50);
  }
  void on_timer(int64_t ts, OnTimerContext& ctx, Collector<Balance>& out) override {
    out.collect(Balance{ctx.current_key(), ordered_->value_or(0), paid_->value_or(0),
                        ctx.time_domain() == TimeDomain::kEventTime ? "event" : "processing", ts});
  }

 private:
  state::ValueState<int64_t>* ordered_ = nullptr;
  state::ValueState<int64_t>* paid_ = nullptr;
};

using LedgerOp = KeyedCoProcessOperator<std::string, Order, Payment, Balance, Ledger>;
using LedgerHarness = TwoInputOperatorHarness<Order, Payment, Balance>;

std::unique_ptr<runtime::StreamOperator> ledger() {
  return std::make_unique<LedgerOp>(
      std::make_shared<runtime::KeySelector<Order, std::string>>([](const Order& o) { return o.user; }),
      std::make_shared<runtime::KeySelector<Payment, std::string>>([](const Payment& p) { return p.user; }),
      Ledger{});
}

class KeyedCoProcess : public ::testing::TestWithParam<state::BackendKind> {
 protected:
  HarnessOptions options(int32_t parallelism = 1, int32_t subtask = 0) {
    return HarnessOptions::keyed_subtask(parallelism, subtask).with_backend(GetParam());
  }
};

TEST_P(KeyedCoProcess, BothInputsShareTheKeysStateAndTimers) {
  LedgerHarness h(ledger(), options());
  ASSERT_TRUE(h.open().is_ok());
  h.process_element1(Order{"a", 10}, 0);
  h.process_element2(Payment{"a", 4}, 5);  // processing timer at 0 + 50
  h.process_element1(Order{"b", 7}, 20);
  h.advance_processing_time(60);
  EXPECT_EQ(h.output().values(), (std::vector<Balance>{{"a", 10, 4, "processing", 50}}));
  h.output().clear();
  h.process_watermark1(150);
  h.process_watermark2(90);  // combined 90: a's timer (100) and b's (120) wait
  EXPECT_TRUE(h.output().values().empty());
  h.process_watermark2(130);
  EXPECT_EQ(h.output().values(),
            (std::vector<Balance>{{"a", 10, 4, "event", 100}, {"b", 7, 0, "event", 120}}));
  std::vector<int64_t> wms;
  for (auto wm : h.output().watermarks()) wms.push_back(wm.ms());
  EXPECT_EQ(wms, (std::vector<int64_t>{90, 130}));
  EXPECT_TRUE(h.failures().empty());
}

TEST_P(KeyedCoProcess, StateTimersAndWatermarkSurviveARestoreAtAnotherParallelism) {
  // Subtask 0 of 1 sees everything; restored into 3 subtasks, each fires
  // the timers of its own keys with the balances from before the snapshot.
  LedgerHarness h(ledger(), options());
  ASSERT_TRUE(h.open().is_ok());
  std::map<std::string, std::pair<int64_t, int64_t>> balance;
  std::map<std::string, std::vector<int64_t>> event_timers;
  for (int i = 0; i < 40; ++i) {
    std::string user = "u" + std::to_string(i % 13);
    int64_t ts = 10 * i;
    if (i % 3 == 2) {
      h.process_element2(Payment{user, i}, ts);
      balance[user].second += i;
    } else {
      h.process_element1(Order{user, i}, ts);
      balance[user].first += i;
      event_timers[user].push_back(ts + 100);
    }
  }
  h.process_watermark1(150);
  h.process_watermark2(150);  // fires the event timers at <= 150 now
  size_t fired_before = h.output().record_count();
  OperatorSnapshot snap = h.snapshot();

  std::vector<Balance> after;
  for (int s = 0; s < 3; ++s) {
    auto r = LedgerHarness::restored(ledger(), options(3, s), snap);
    ASSERT_TRUE(r->open().is_ok());
    r->process_watermark1(150);  // the restored watermark: nothing fires twice
    r->process_watermark2(150);
    EXPECT_EQ(r->output().record_count(), 0u) << "subtask " << s;
    r->end_input1();
    r->end_input2();
    r->advance_processing_time(1000);
    for (const auto& b : r->output().values()) {
      EXPECT_EQ(harness::subtask_for_key(b.user, 3), s) << b.user;
      after.push_back(b);
    }
    EXPECT_TRUE(r->failures().empty());
  }
  std::vector<Balance> expected;
  for (const auto& [user, ts_list] : event_timers) {
    for (int64_t t : ts_list) {
      if (t <= 150) continue;
      // Several orders of a key in one 10 ms slot share a timer.
      Balance b{user, balance[user].first, balance[user].second, "event", t};
      if (std::find(expected.begin(), expected.end(), b) == expected.end()) expected.push_back(b);
    }
  }
  for (const auto& [user, bp] : balance) {
    // Payments were made at processing time 0: one timer per key at 50.
    if (bp.second > 0) expected.push_back(Balance{user, bp.first, bp.second, "processing", 50});
  }
  std::sort(expected.begin(), expected.end());
  std::sort(after.begin(), after.end());
  EXPECT_EQ(after, expected);
  EXPECT_GT(fired_before, 0u);
}

INSTANTIATE_TEST_SUITE_P(Backends, KeyedCoProcess,
                         ::testing::Values(state::BackendKind::kHeap, state::BackendKind::kRocksDB),
                         [](const auto& info) { return std::string(state::backend_kind_name(info.param)); });

}  // namespace
}  // namespace sluice::join
