#include "engine/jobmanager/restart_policy.h"

#include <gtest/gtest.h>

namespace sluice::jobmanager {
namespace {

RestartPolicyOptions opts() {
  RestartPolicyOptions o;
  o.initial_backoff = Duration(200);
  o.max_backoff = Duration(2000);
  o.reset_after = Duration(10'000);
  o.max_failures = 5;
  o.failure_interval = Duration(60'000);
  return o;
}

TEST(RestartPolicy, BackoffDoublesPerFailureUpToTheMaximum) {
  RestartPolicy p(opts());
  std::vector<int64_t> delays;
  int64_t t = 0;
  for (int i = 0; i < 5; ++i) {
    auto d = p.on_failure(t);
    ASSERT_TRUE(d.restart);
    delays.push_back(d.delay.count());
    t += d.delay.count() + 100;  // failed again 100 ms after running
    p.on_running(t - 100);
  }
  EXPECT_EQ(delays, (std::vector<int64_t>{200, 400, 800, 1600, 2000}));
}

TEST(RestartPolicy, BackoffGoesBackToTheInitialDelayAfterAStablePeriod) {
  auto o = opts();
  o.max_failures = 10;
  RestartPolicy p(o);
  int64_t t = 0;
  for (int i = 0; i < 4; ++i) {
    auto d = p.on_failure(t);
    t += d.delay.count();
    p.on_running(t);
    t += 50;
  }
  EXPECT_EQ(p.next_backoff(t).count(), 2000) << "four quick failures: at the maximum";
  // Running 10 s since the last restart: stable.
  t += 10'000;
  EXPECT_EQ(p.next_backoff(t).count(), 200);
  auto d = p.on_failure(t);
  ASSERT_TRUE(d.restart);
  EXPECT_EQ(d.delay.count(), 200);
  // Not yet running again: a failure of the restart itself keeps escalating.
  EXPECT_EQ(p.on_failure(t + 300).delay.count(), 400);
}

TEST(RestartPolicy, GivesUpOnlyWhenTheFailureRateIsExceeded) {
  RestartPolicy p(opts());
  // One failure every 20 s: never more than 3 within a minute, so never given up.
  int64_t t = 0;
  for (int i = 0; i < 50; ++i, t += 20'000) {
    auto d = p.on_failure(t);
    ASSERT_TRUE(d.restart) << "failure " << i + 1 << ": " << d.give_up_reason;
    EXPECT_LE(d.failures_in_interval, 3);
    p.on_running(t + d.delay.count());
  }
  // Six within a minute: the sixth gives up, saying why.
  RestartPolicy q(opts());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(q.on_failure(i * 1000).restart);
  auto d = q.on_failure(5000);
  EXPECT_FALSE(d.restart);
  EXPECT_EQ(d.failures_in_interval, 6);
  EXPECT_NE(d.give_up_reason.find("6 failures within 1m"), std::string::npos) << d.give_up_reason;
  EXPECT_NE(d.give_up_reason.find("--restart-failure-rate"), std::string::npos) << d.give_up_reason;
  EXPECT_EQ(q.failures_in_interval(5000), 6);
  EXPECT_EQ(q.failures_in_interval(61'500), 4) << "failures older than the interval no longer count";
}

TEST(RestartPolicy, FailureRateFlagIsCountSlashDuration) {
  RestartPolicyOptions o;
  ASSERT_TRUE(o.parse_failure_rate("12/90s").is_ok());
  EXPECT_EQ(o.max_failures, 12);
  EXPECT_EQ(o.failure_interval.count(), 90'000);
  EXPECT_EQ(o.failure_rate_text(), "12/90s");
  for (const char* bad : {"", "12", "/5m", "x/5m", "0/5m", "3/0s", "3/soon", "-1/5m"}) {
    RestartPolicyOptions b;
    EXPECT_FALSE(b.parse_failure_rate(bad).is_ok()) << bad;
  }
  RestartPolicyOptions v;
  v.max_backoff = Duration(10);
  EXPECT_FALSE(v.validate().is_ok()) << "max below initial";
  EXPECT_TRUE(RestartPolicyOptions{}.validate().is_ok());
}

}  // namespace
}  // namespace sluice::jobmanager
