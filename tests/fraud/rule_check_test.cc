// The fraud job's rule check (jobs/fraud/detect.h) alone, through the
// two-input operator harness: a signal waits until the rules stream's
// watermark has passed its event time (or that stream is idle), so an
// update on the stream governs exactly the events from its effective time
// on; a user's later signals keep their order behind waiting ones; waiting
// signals survive a snapshot and restore; an update that arrives after its
// idle rules stream let event time past it is late: applied from its
// arrival on (nothing decided is revisited), logged and counted.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/common/metrics.h"
#include "jobs/fraud/detect.h"
#include "tests/harness/operator_harness.h"

namespace sluice::fraud {
namespace {

using harness::HarnessOptions;
using CheckOp = join::KeyedBroadcastProcessOperator<std::string, Signal, RuleUpdate, Decision, RuleCheck>;
using CheckHarness = harness::TwoInputOperatorHarness<Signal, RuleUpdate, Decision>;

std::unique_ptr<runtime::StreamOperator> rule_check() {
  return std::make_unique<CheckOp>(
      std::make_shared<runtime::KeySelector<Signal, std::string>>([](const Signal& s) { return s.activity.user; }),
      RuleCheck(RuleSet{}), std::vector<std::string>{RuleCheck::rules_state().name});
}

HarnessOptions options(const std::string& name) {
  HarnessOptions o = HarnessOptions::keyed_subtask();
  o.operator_name = name;
  return o;
}

/// A small purchase (card testing counts them) of `user` at `ts`.
Signal purchase(const std::string& user, const std::string& id, int64_t ts) {
  Signal s;
  s.activity.kind = Activity::kTransaction;
  s.activity.id = id;
  s.activity.user = user;
  s.activity.ts = ts;
  s.activity.amount = 1.0;
  return s;
}

/// Card testing counts 3 purchases from `effective` on (5 before).
RuleUpdate three_from(int64_t effective) {
  RuleUpdate u;
  u.version = 1;
  u.effective_ts = effective;
  u.card_test_count = 3;
  return u;
}

/// "trigger@version" of each decision, in output order.
std::vector<std::string> decided(CheckHarness& h) {
  std::vector<std::string> out;
  for (const auto& d : h.output().values()) out.push_back(d.trigger_id + "@v" + std::to_string(d.rule_version));
  return out;
}

void feed_purchases(CheckHarness& h, const std::string& user, int from, int to) {
  for (int i = from; i <= to; ++i) h.process_element1(purchase(user, "p" + std::to_string(i), 100 * i), 100 * i);
}

double late_updates() {
  double n = 0;
  for (const auto& f : metrics::registry().Collect()) {
    if (f.name != "sluice_fraud_rule_updates_late_total") continue;
    for (const auto& m : f.metric) n += m.counter.value;
  }
  return n;
}

TEST(RuleCheck, SignalsWaitForTheRulesStreamsWatermarkSoAnUpdateGovernsFromItsEventTime) {
  CheckHarness h(rule_check(), options("rule-check-wait"));
  ASSERT_TRUE(h.open().is_ok());
  feed_purchases(h, "u1", 1, 6);  // p1..p6 at 100..600; v0 would decide p5
  EXPECT_TRUE(decided(h).empty()) << "the rules stream has not passed any of them";
  h.process_element2(three_from(250), 250);
  h.process_watermark2(249);
  h.process_watermark1(700);  // the operator's watermark: 249, p1 and p2 go (v0, no decision)
  EXPECT_TRUE(decided(h).empty());
  h.end_input2();  // the rules stream ended: everything goes
  EXPECT_EQ(decided(h), (std::vector<std::string>{"p3@v1", "p6@v1"}));
  EXPECT_TRUE(h.failures().empty());
  EXPECT_TRUE(h.dead_letters().empty());
}

TEST(RuleCheck, AUsersLaterSignalsKeepTheirOrderBehindWaitingOnesAndWaitingSurvivesARestore) {
  harness::OperatorSnapshot snap;
  {
    CheckHarness h(rule_check(), options("rule-check-restore"));
    ASSERT_TRUE(h.open().is_ok());
    h.process_watermark2(250);
    feed_purchases(h, "u1", 1, 3);  // p3 (300) waits for the rules stream
    h.process_watermark2(1000);      // ahead of p4..p5, but p3 is still waiting: they queue behind it
    feed_purchases(h, "u1", 4, 5);
    feed_purchases(h, "u2", 1, 2);  // another user with nothing waiting goes at once
    EXPECT_TRUE(decided(h).empty());
    snap = h.snapshot();
  }
  auto h = CheckHarness::restored(rule_check(), options("rule-check-restore"), snap);
  ASSERT_TRUE(h->open().is_ok());
  h->process_watermark2(1000);
  h->process_watermark1(600);
  EXPECT_EQ(decided(*h), (std::vector<std::string>{"p5@v0"})) << "p1..p5 of u1 judged once each, in order";
  EXPECT_TRUE(h->failures().empty());
}

TEST(RuleCheck, AnIdleRulesStreamHoldsNothingBackAndALateUpdateAppliesFromItsArrival) {
  const double late_before = late_updates();
  CheckHarness h(rule_check(), options("rule-check-late"));
  ASSERT_TRUE(h.open().is_ok());
  h.set_idle2(true);
  feed_purchases(h, "u1", 1, 5);
  EXPECT_EQ(decided(h), (std::vector<std::string>{"p5@v0"})) << "an idle rules stream does not hold decisions";
  // The rules stream wakes up with an update behind what was decided.
  h.set_idle2(false);
  h.process_element2(three_from(250), 250);
  h.process_watermark2(249);
  EXPECT_EQ(late_updates() - late_before, 1.0);
  EXPECT_EQ(decided(h), (std::vector<std::string>{"p5@v0"})) << "nothing decided is revisited";
  h.set_idle2(true);
  feed_purchases(h, "u1", 6, 8);
  EXPECT_EQ(decided(h), (std::vector<std::string>{"p5@v0", "p8@v1"})) << "from its arrival on, version 1 judges";
  // An update ahead of everything decided is not late.
  RuleUpdate v2 = three_from(10'000);
  v2.version = 2;
  h.set_idle2(false);
  h.process_element2(v2, 10'000);
  EXPECT_EQ(late_updates() - late_before, 1.0);
  EXPECT_TRUE(h.failures().empty());
}

}  // namespace
}  // namespace sluice::fraud
