// The event-time guard at sources: records stamped far ahead of the wall
// clock (or before a floor) become dead letters with the reason instead of
// moving the watermark, so the valid records around them are all counted.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <tuple>

#include "engine/api/sluice.h"
#include "tests/runtime/test_job.h"

namespace sluice::rt_test {
namespace {

using runtime::EventTimeGuard;

TEST(EventTimeGuard, RefusesRecordsBeyondTheBoundAheadOfTheWallClock) {
  EventTimeGuard g;  // 1 h ahead, no floor
  const int64_t now = 1'700'000'000'000;
  EXPECT_EQ(g.check(now, now), "");
  EXPECT_EQ(g.check(now + 3'600'000, now), "") << "exactly the bound is allowed";
  std::string why = g.check(now + 3'600'001, now);
  EXPECT_NE(why.find("ahead of the wall clock"), std::string::npos) << why;
  EXPECT_NE(why.find("event-time.max-ahead (1h)"), std::string::npos) << why;
  const int64_t y2100 = *parse_timestamp_ms("2100-01-01");
  why = g.check(y2100, now);
  EXPECT_NE(why.find("2100-01-01T00:00:00Z"), std::string::npos) << why;
  EXPECT_EQ(g.check(0, now), "") << "no floor by default";
  EXPECT_EQ(g.check(INT64_MIN, now), "") << "a record without event time is never refused";
}

TEST(EventTimeGuard, FloorAndBoundComeFromTheJobSettingsUnlessTheStrategySetsThem) {
  Configuration job;
  job.set("event-time.max-ahead", "10m");
  job.set("event-time.floor", "2020-01-01");
  auto g = EventTimeGuard::resolve(std::nullopt, std::nullopt, job);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  EXPECT_EQ(g->max_ahead_ms, 600'000);
  EXPECT_EQ(g->floor_ms, 1'577'836'800'000);
  std::string why = g->check(1'577'836'799'999, 1'700'000'000'000);
  EXPECT_NE(why.find("before event-time.floor (2020-01-01T00:00:00Z)"), std::string::npos) << why;

  auto strategy = EventTimeGuard::resolve(Duration(0), int64_t{5}, job);
  ASSERT_TRUE(strategy.is_ok());
  EXPECT_EQ(strategy->max_ahead_ms, 0) << "0 = no bound";
  EXPECT_EQ(strategy->floor_ms, 5);
  EXPECT_EQ(strategy->check(INT64_MAX - 1, 0), "");

  Configuration bad;
  bad.set("event-time.floor", "yesterday");
  auto e = EventTimeGuard::resolve(std::nullopt, std::nullopt, bad);
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("event-time.floor"), std::string::npos) << e.status().to_string();
  bad = Configuration();
  bad.set("event-time.max-ahead", "-5s");
  EXPECT_FALSE(EventTimeGuard::resolve(std::nullopt, std::nullopt, bad).is_ok());
}

struct Count {
  std::string key;
  int64_t start = 0;
  int64_t n = 0;
  SLUICE_FIELDS(key, start, n)
  bool operator==(const Count&) const = default;
};

/// Per-key counts of 1 s tumbling windows over `events`, run through a
/// source with `strategy`; the dead letters it produced.
std::pair<std::map<std::pair<std::string, int64_t>, int64_t>, std::vector<DeadLetter>> run_counts(
    const std::vector<Event>& events, runtime::WatermarkStrategy<Event> strategy, Configuration config = {}) {
  auto out = std::make_shared<Collected<Count>>();
  auto dead = std::make_shared<Collected<DeadLetter>>();
  TestJob job("event-time-guard");
  auto& env = job.env();
  env.config().merge_from(config);
  env.set_dead_letter_sink(collect_into(dead));
  env.from_source<Event>(std::make_shared<VectorSource<Event>>(events), strategy, "events")
      .key_by([](const Event& e) { return e.key; })
      .window(window::TumblingEventTimeWindows::of(Duration(1000)))
      .count([](const std::string& k, const window::TimeWindow& w, int64_t n) { return Count{k, w.start, n}; },
             "count")
      .sink_to(collect_into(out));
  EXPECT_TRUE(job.prepare(1).is_ok());
  Status st = job.run();
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  std::map<std::pair<std::string, int64_t>, int64_t> counts;
  for (const auto& c : out->values()) counts[{c.key, c.start}] += c.n;
  return {counts, dead->values()};
}

// Seeded clicks around the present, out of order by up to 500 ms, with
// records stamped in 2100 and in 1971 sprinkled in; the job counts valid
// records per key and second. Reference: the same counts computed here from
// the valid records only. The same input without the guard loses counts
// (everything after the first 2100 record is late), which shows the test
// can fail.
TEST(EventTimeGuard, FarFutureAndFarPastRecordsAreDeadLettersAndEveryValidOneIsCounted) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const int64_t base = wall_clock_ms() - 600'000;  // ten minutes ago
  const int64_t y2100 = *parse_timestamp_ms("2100-06-01");
  const int64_t y1971 = *parse_timestamp_ms("1971-03-01");
  std::vector<Event> events;
  std::map<std::pair<std::string, int64_t>, int64_t> want;
  std::vector<int64_t> bad_values;
  for (int64_t i = 0; i < 4000; ++i) {
    Event e;
    e.key = "k" + std::to_string(rng() % 5);
    e.value = i;
    if (i > 100 && rng() % 150 == 0) {
      e.ts = rng() % 2 ? y2100 + static_cast<int64_t>(rng() % 1000) : y1971;
      bad_values.push_back(i);
    } else {
      e.ts = base + i * 25 - static_cast<int64_t>(rng() % 500);
      want[{e.key, e.ts - e.ts % 1000}] += 1;
    }
    events.push_back(e);
  }
  ASSERT_GE(bad_values.size(), 5u);
  Configuration config;
  config.set("event-time.floor", "2000-01-01");
  auto [got, dead] = run_counts(events, event_time(Duration(500)), config);
  EXPECT_EQ(got, want) << "every valid record counted exactly once";
  std::vector<int64_t> dead_values;
  for (const auto& dl : dead) {
    EXPECT_EQ(dl.operator_name, "events");
    EXPECT_EQ(dl.origin.rfind("source events", 0), 0u) << dl.origin;
    EXPECT_TRUE(dl.reason.find("ahead of the wall clock") != std::string::npos ||
                dl.reason.find("before event-time.floor") != std::string::npos)
        << dl.reason;
    auto v = dl.payload.find("\"value\":");
    ASSERT_NE(v, std::string::npos) << dl.payload;
    dead_values.push_back(std::stoll(dl.payload.substr(v + 8)));
  }
  std::sort(dead_values.begin(), dead_values.end());
  EXPECT_EQ(dead_values, bad_values) << "the far-off records, and only they, are dead letters";

  // Without the guard (and with no floor) the first 2100 record moves event time to 2100.
  auto [unguarded, late] = run_counts(events, event_time(Duration(500)).with_event_time_guard(Duration(0)));
  EXPECT_NE(unguarded, want);
  EXPECT_GT(late.size(), bad_values.size()) << "valid records after it were late";
}

}  // namespace
}  // namespace sluice::rt_test
