// The fraud generator (`sluice gen --kind fraud`) against the brute-force
// reference of the rules (reference.h): the alerts the rules make on the
// generated streams are exactly the ground truth's alerting scenarios —
// background traffic triggers nothing, every scenario triggers its rule,
// no near miss triggers any — over seeds, densities and rule settings;
// and the output is seeded.
#include <gtest/gtest.h>

#include <string>

#include "jobs/gen/fraud.h"
#include "tests/fraud/reference.h"
#include "tests/integration/support.h"

namespace sluice::fraud_test {
namespace {

/// Generates into `dir`; returns the summary.
gen::FraudSummary generate(const it::TempDir& dir, const gen::FraudOptions& o) {
  std::vector<std::string> lines[3];
  std::vector<std::string> truth;
  auto r = gen::run_fraud(
      o,
      [&](gen::FraudStream s, const std::string& l) {
        lines[static_cast<int>(s)].push_back(l);
        return Status::ok();
      },
      [&](const std::string& l) {
        truth.push_back(l);
        return Status::ok();
      });
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  for (int s = 0; s < 3; ++s) {
    it::write_lines(dir.file(std::string(gen::fraud_stream_name(static_cast<gen::FraudStream>(s))) + ".ndjson"), lines[s]);
  }
  it::write_lines(dir.file("truth.ndjson"), truth);
  return r.is_ok() ? *r : gen::FraudSummary{};
}

void expect_truth_is_what_the_rules_decide(const gen::FraudOptions& o) {
  SCOPED_TRACE("seed " + std::to_string(o.seed) + ", " + std::to_string(o.count) + " events, " +
               std::to_string(o.users) + " users");
  it::TempDir dir;
  auto summary = generate(dir, o);
  const Inputs in = read_inputs(dir.path());
  EXPECT_EQ(in.malformed, summary.malformed);
  const auto truth = read_truth(dir.file("truth.ndjson"));
  ASSERT_EQ(truth.size(), static_cast<size_t>(8 * o.scenarios));
  Params p;
  p.fail_count = o.fail_count;
  p.amount_threshold = o.amount_threshold;
  const auto decisions = reference_decisions(in, p);
  EXPECT_EQ(diff(truth_alerts(truth), decisions), "");
  // Near misses: nothing decided about their would-be trigger.
  std::set<std::string> triggers;
  for (const auto& d : decisions) triggers.insert(d.trigger);
  for (const auto& t : truth) {
    if (!t.alert) EXPECT_EQ(triggers.count(t.trigger), 0u) << t.scenario << " " << t.variant << " " << t.user;
  }
}

TEST(FraudGenerator, GroundTruthIsExactlyWhatTheRulesDecide) {
  gen::FraudOptions o;
  o.count = 60'000;
  o.scenarios = 8;
  for (uint64_t seed : {1, 2, 3}) {
    o.seed = seed;
    expect_truth_is_what_the_rules_decide(o);
  }
}

TEST(FraudGenerator, DenseBackgroundOfFewUsersTriggersNoRule) {
  gen::FraudOptions o;
  o.count = 200'000;
  o.users = 40;  // 5,000 events per user over two hours: the limits are reached all the time
  o.scenarios = 0;
  o.malformed_fraction = 0;
  it::TempDir dir;
  generate(dir, o);
  EXPECT_EQ(diff({}, reference_decisions(read_inputs(dir.path()), Params{})), "");
}

TEST(FraudGenerator, OtherRuleSettingsMoveTheScenariosWithThem) {
  gen::FraudOptions o;
  o.count = 30'000;
  o.scenarios = 4;
  o.fail_count = 8;
  o.amount_threshold = 1500;
  o.seed = 11;
  expect_truth_is_what_the_rules_decide(o);
}

TEST(FraudGenerator, TriggersInRunFallInAShortRunAndTheTruthStillHolds) {
  gen::FraudOptions o;
  o.count = 30'000;
  o.duration = Duration(60'000);  // a one-minute live run: under the 25 minutes the scenarios span
  o.scenarios = 6;
  o.seed = 5;
  EXPECT_FALSE(o.validate().is_ok());
  o.triggers_in_run = true;
  ASSERT_TRUE(o.validate().is_ok());
  expect_truth_is_what_the_rules_decide(o);
  it::TempDir dir;
  generate(dir, o);
  for (const auto& t : read_truth(dir.file("truth.ndjson"))) {
    EXPECT_GE(t.ts, o.start_ts + 6'000) << t.trigger;  // the middle 80 % of the span
    EXPECT_LE(t.ts, o.start_ts + 54'000) << t.trigger;
  }
}

TEST(FraudGenerator, SameSeedSameLinesAndEventsArriveWithinTheirDelay) {
  gen::FraudOptions o;
  o.count = 20'000;
  it::TempDir a, b;
  generate(a, o);
  generate(b, o);
  for (const char* f : {"logins.ndjson", "api_errors.ndjson", "transactions.ndjson", "truth.ndjson"}) {
    EXPECT_EQ(it::read_lines(a.file(f)), it::read_lines(b.file(f))) << f;
  }
  // Per stream, no event arrives after one more than max_delay younger.
  const Inputs in = read_inputs(a.path());
  std::map<int, int64_t> max_ts;
  int64_t out_of_order = 0;
  for (const auto& e : in.events) {  // read_inputs keeps each stream's arrival order
    int64_t& m = max_ts[e.kind];
    EXPECT_GT(e.ts, m - o.max_delay.count() - 1) << e.id;
    if (e.ts < m) ++out_of_order;
    m = std::max(m, e.ts);
  }
  EXPECT_GT(out_of_order, 100);
}

TEST(FraudGenerator, RefusesOptionsThatCannotHoldTheScenarios) {
  gen::FraudOptions o;
  o.duration = Duration(20 * 60'000);
  EXPECT_FALSE(o.validate().is_ok());
  o = {};
  o.fail_count = 1;
  EXPECT_FALSE(o.validate().is_ok());
  o = {};
  o.malformed_fraction = 2;
  EXPECT_FALSE(o.validate().is_ok());
  EXPECT_TRUE(gen::FraudOptions{}.validate().is_ok());
}

}  // namespace
}  // namespace sluice::fraud_test
