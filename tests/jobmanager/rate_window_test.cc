// RateWindow: rates of a subtask from the running totals of its heartbeats.
#include "engine/jobmanager/rate_window.h"

#include <gtest/gtest.h>

namespace sluice::jobmanager {
namespace {

TEST(RateWindow, NoRateUntilTwoSamplesApart) {
  RateWindow w;
  EXPECT_EQ(w.rates().records_in_per_s, 0);
  w.add({1000, 10, 10, 0, 0});
  EXPECT_EQ(w.rates().records_out_per_s, 0);
  w.add({1050, 20, 20, 0, 0});
  EXPECT_EQ(w.rates().records_out_per_s, 0) << "50 ms apart is too little to say";
}

TEST(RateWindow, RatesAndSharesOverTheSpan) {
  RateWindow w(5000);
  // 1 s heartbeats: 1000 in/s, 500 out/s, busy 40 %, backpressured 25 %.
  for (int i = 0; i <= 10; ++i) {
    w.add({i * 1000, static_cast<uint64_t>(i) * 1000, static_cast<uint64_t>(i) * 500, i * 400'000'000LL,
           i * 250'000'000LL});
  }
  auto r = w.rates();
  EXPECT_DOUBLE_EQ(r.records_in_per_s, 1000);
  EXPECT_DOUBLE_EQ(r.records_out_per_s, 500);
  EXPECT_DOUBLE_EQ(r.busy, 0.4);
  EXPECT_DOUBLE_EQ(r.backpressure, 0.25);
}

TEST(RateWindow, OnlyTheLastSpanCounts) {
  RateWindow w(5000);
  for (int i = 0; i <= 10; ++i) w.add({i * 1000, static_cast<uint64_t>(i) * 100, 0, 0, 0});  // 100/s
  for (int i = 11; i <= 16; ++i) {
    w.add({i * 1000, 1000 + static_cast<uint64_t>(i - 10) * 2000, 0, 0, 0});  // then 2000/s
  }
  EXPECT_NEAR(w.rates().records_in_per_s, 2000, 1e-9) << "a change shows within the span";
}

TEST(RateWindow, TotalsGoingBackStartAgain) {
  RateWindow w;
  w.add({0, 5000, 5000, 0, 0});
  w.add({1000, 6000, 6000, 0, 0});
  w.add({2000, 100, 100, 0, 0});  // a new attempt of the task
  EXPECT_EQ(w.rates().records_in_per_s, 0) << "no negative or huge rate across a restart";
  w.add({3000, 1100, 1100, 0, 0});
  EXPECT_DOUBLE_EQ(w.rates().records_in_per_s, 1000);
}

TEST(RateWindow, SharesStayWithinZeroAndOne) {
  RateWindow w;
  w.add({0, 0, 0, 0, 0});
  w.add({1000, 0, 0, 3'000'000'000LL, 2'000'000'000LL});  // clocks disagree: more than the wall time
  EXPECT_EQ(w.rates().busy, 1.0);
  EXPECT_EQ(w.rates().backpressure, 1.0);
}

}  // namespace
}  // namespace sluice::jobmanager
