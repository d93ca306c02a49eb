// Event-time session windows end to end (tests/integration/jobs/
// sessions_job.cc through `sluice run-local`): sessions bridged by an
// out-of-order event that arrives later merge, the others stay apart.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "tests/integration/support.h"

namespace sluice::it {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;

/// An input event and when it arrives: the file is sorted by arrival, so an
/// event with arrival > ts comes after events that are newer than it.
struct Arrival {
  std::string user;
  int64_t ts;
  int64_t arrival;
};

/// Writes the events in arrival order (stable) and returns (user, ts) pairs.
std::vector<std::pair<std::string, int64_t>> write_arrivals(std::vector<Arrival> events,
                                                            const std::string& path) {
  std::stable_sort(events.begin(), events.end(),
                   [](const Arrival& a, const Arrival& b) { return a.arrival < b.arrival; });
  std::vector<std::string> lines;
  std::vector<std::pair<std::string, int64_t>> pairs;
  for (const auto& e : events) {
    lines.push_back(R"({"user_id":")" + e.user + R"(","page_url":"/p","ts":)" +
                    std::to_string(e.ts) + "}");
    pairs.emplace_back(e.user, e.ts);
  }
  write_lines(path, lines);
  return pairs;
}

::testing::AssertionResult run_sessions(const TempDir& dir, const std::string& input,
                                        int parallelism, const std::string& gap,
                                        const std::string& bound, std::vector<SessionRow>& rows,
                                        std::vector<DeadLetterRow>& dead) {
  const std::string tag = "p" + std::to_string(parallelism);
  std::vector<std::string> args = {"run-local",     sessions_library(),
                                   "--parallelism", std::to_string(parallelism),
                                   "--arg",         "source=file://" + input,
                                   "--arg",         "sink=" + dir.uri(tag + "-sessions.ndjson"),
                                   "--arg",         "dlq=" + dir.uri(tag + "-dlq.ndjson"),
                                   "--arg",         "gap=" + gap,
                                   "--arg",         "out_of_orderness=" + bound};
  auto r = run_sluice(args);
  if (r.exit_code != 0) return ::testing::AssertionFailure() << r.describe(args);
  rows = read_sessions(dir.file(tag + "-sessions.ndjson"));
  dead = read_dead_letters(dir.file(tag + "-dlq.ndjson"));
  std::sort(rows.begin(), rows.end());
  return ::testing::AssertionSuccess();
}

std::string describe(const std::vector<SessionRow>& rows, size_t limit = 20) {
  std::string s;
  for (size_t i = 0; i < rows.size() && i < limit; ++i) s += "\n  " + to_string(rows[i]);
  if (rows.size() > limit) s += "\n  ... (" + std::to_string(rows.size()) + " rows)";
  return s;
}

/// Differences between two sorted session lists, for failure messages.
std::string diff_sessions(const std::vector<SessionRow>& expected,
                          const std::vector<SessionRow>& actual) {
  std::vector<SessionRow> missing, extra;
  std::set_difference(expected.begin(), expected.end(), actual.begin(), actual.end(),
                      std::back_inserter(missing));
  std::set_difference(actual.begin(), actual.end(), expected.begin(), expected.end(),
                      std::back_inserter(extra));
  if (missing.empty() && extra.empty()) return {};
  return "missing:" + describe(missing) + "\nunexpected:" + describe(extra);
}

/// Events that, in file order, join two sessions built from the events
/// before them.
int count_bridges(const std::vector<std::pair<std::string, int64_t>>& in_file_order,
                  int64_t gap_ms) {
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> sessions;  // [start, end)
  int bridges = 0;
  for (const auto& [user, ts] : in_file_order) {
    auto& list = sessions[user];
    std::pair<int64_t, int64_t> merged{ts, ts + gap_ms};
    int touched = 0;
    std::vector<std::pair<int64_t, int64_t>> kept;
    for (const auto& w : list) {
      if (w.first <= merged.second && merged.first <= w.second) {
        ++touched;
        merged = {std::min(merged.first, w.first), std::max(merged.second, w.second)};
      } else {
        kept.push_back(w);
      }
    }
    if (touched >= 2) ++bridges;
    kept.push_back(merged);
    list = std::move(kept);
  }
  return bridges;
}

class SessionWindows : public ::testing::TestWithParam<int> {};

TEST_P(SessionWindows, BridgedByALaterOutOfOrderEventMergeAndOthersStayApart) {
  const int parallelism = GetParam();
  auto s = [](double seconds) { return kT0 + static_cast<int64_t>(seconds * 1000); };
  // gap 10 s, watermark bound 15 s: every delayed event below arrives less
  // than 15 s after its time, so it is never behind the watermark and no
  // session it touches has fired yet.
  std::vector<Arrival> events;
  auto on_time = [&](const std::string& user, double t) { events.push_back({user, s(t), s(t)}); };
  auto delayed = [&](const std::string& user, double t, double arrives) {
    events.push_back({user, s(t), s(arrives)});
  };
  // A clock user, one event every 10 ms, moves the watermark along while
  // the file is read (sources emit watermarks between batches of lines, so
  // a short file would be read before any watermark and fire nothing early).
  for (int64_t t = 0; t <= 130'000; t += 10) events.push_back({"clock", kT0 + t, kT0 + t});
  // alice: {0, 3} and {20, 22} are 17 s apart; 12 arrives after 22 and bridges them.
  on_time("alice", 0), on_time("alice", 3), on_time("alice", 20), on_time("alice", 22);
  delayed("alice", 12, 24);
  // carol: 30, 45, 60 are 15 s apart; 38 (arrives at 51) and 52 (arrives at 64)
  // bridge all three into one session.
  on_time("carol", 30), on_time("carol", 45), on_time("carol", 60);
  delayed("carol", 38, 51), delayed("carol", 52, 64);
  // bob: 40 and 70; 55 arrives at 69, between them but more than a gap from
  // each: three sessions.
  on_time("bob", 40), on_time("bob", 70);
  delayed("bob", 55, 69);
  // dave: 80, 85; 72 arrives at 86 and extends the session backwards.
  on_time("dave", 80), on_time("dave", 85);
  delayed("dave", 72, 86);
  // erin: 90, 95, 98; 93 arrives at 99, inside the session.
  on_time("erin", 90), on_time("erin", 95), on_time("erin", 98);
  delayed("erin", 93, 99);
  // frank: 112 arrives before 100 (at 113); 12 s apart: two sessions.
  on_time("frank", 112);
  delayed("frank", 100, 113);

  TempDir dir;
  const std::string input = dir.file("events.ndjson");
  const auto pairs = write_arrivals(events, input);
  const int64_t gap = 10'000;
  const auto expected = reference_sessions(pairs, gap);

  // The construction does what the comments say.
  auto sessions_of = [&](const std::string& user) {
    std::vector<SessionRow> out;
    for (const auto& r : expected)
      if (r.user_id == user) out.push_back(r);
    return out;
  };
  ASSERT_EQ(sessions_of("alice"), (std::vector<SessionRow>{{"alice", s(0), s(32), 5}}));
  ASSERT_EQ(sessions_of("carol"), (std::vector<SessionRow>{{"carol", s(30), s(70), 5}}));
  ASSERT_EQ(sessions_of("bob"),
            (std::vector<SessionRow>{
                {"bob", s(40), s(50), 1}, {"bob", s(55), s(65), 1}, {"bob", s(70), s(80), 1}}));
  ASSERT_EQ(sessions_of("dave"), (std::vector<SessionRow>{{"dave", s(72), s(95), 3}}));
  ASSERT_EQ(sessions_of("erin"), (std::vector<SessionRow>{{"erin", s(90), s(108), 4}}));
  ASSERT_EQ(sessions_of("frank"),
            (std::vector<SessionRow>{{"frank", s(100), s(110), 1}, {"frank", s(112), s(122), 1}}));

  std::vector<SessionRow> rows;
  std::vector<DeadLetterRow> dead;
  ASSERT_TRUE(run_sessions(dir, input, parallelism, "10s", "15s", rows, dead));
  EXPECT_EQ(diff_sessions(expected, rows), "") << "output:" << describe(rows, 40);
  EXPECT_TRUE(dead.empty()) << dead.size() << " dead letters, first: "
                            << (dead.empty() ? "" : dead.front().reason);
}

TEST_P(SessionWindows, ManyUsersWithOutOfOrderEventsEqualTheReference) {
  const int parallelism = GetParam();
  // 300 users; within a session events are 1 ms .. gap-1 ms apart, between
  // sessions gap+1 ms .. 3 gaps (never exactly a gap: the test does not rely
  // on whether touching sessions merge). A third of the events arrive up to
  // bound-1 ms late, so bridges, extensions and near misses all happen.
  const int64_t gap = 5'000, bound = 4'000;
  std::mt19937_64 rng(7);
  auto uniform = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  std::vector<Arrival> events;
  for (int u = 0; u < 300; ++u) {
    const std::string user = "user" + std::to_string(u);
    int64_t ts = kT0 + uniform(0, 60'000);
    const int n = static_cast<int>(uniform(20, 80));
    for (int i = 0; i < n; ++i) {
      ts += uniform(0, 9) < 8 ? uniform(1, gap - 1) : uniform(gap + 1, 3 * gap);
      const int64_t delay = uniform(0, 2) == 0 ? uniform(1, bound - 1) : 0;
      events.push_back({user, ts, ts + delay});
    }
  }
  TempDir dir;
  const std::string input = dir.file("events.ndjson");
  const auto pairs = write_arrivals(events, input);
  const auto expected = reference_sessions(pairs, gap);
  ASSERT_GT(expected.size(), 1000u);
  ASSERT_GT(count_bridges(pairs, gap), 50) << "the input should hold bridging events";

  std::vector<SessionRow> rows;
  std::vector<DeadLetterRow> dead;
  ASSERT_TRUE(run_sessions(dir, input, parallelism, "5s", "4s", rows, dead));
  EXPECT_EQ(rows.size(), expected.size());
  EXPECT_EQ(diff_sessions(expected, rows), "");
  EXPECT_TRUE(dead.empty()) << dead.size() << " dead letters, first: "
                            << (dead.empty() ? "" : dead.front().reason);
}

TEST(SessionWindowsOneReader, EventTooLateForItsSessionIsADeadLetterNotAMerge) {
  // One reader, so the watermark follows the file: an event that arrives
  // long after its session ended (beyond the 15 s bound) must not reopen or
  // extend it; with no late output it becomes a dead letter.
  auto s = [](double seconds) { return kT0 + static_cast<int64_t>(seconds * 1000); };
  std::vector<Arrival> events;
  for (int64_t t = 0; t <= 200'000; t += 10) events.push_back({"clock", kT0 + t, kT0 + t});
  events.push_back({"zed", s(50), s(50)});
  events.push_back({"zed", s(55), s(57)});
  events.push_back({"zed", s(58), s(190)});  // touches [50, 65) but 132 s after it
  TempDir dir;
  const std::string input = dir.file("events.ndjson");
  write_arrivals(events, input);

  std::vector<SessionRow> rows;
  std::vector<DeadLetterRow> dead;
  ASSERT_TRUE(run_sessions(dir, input, 1, "10s", "15s", rows, dead));
  std::vector<SessionRow> zed;
  for (const auto& r : rows)
    if (r.user_id == "zed") zed.push_back(r);
  EXPECT_EQ(zed, (std::vector<SessionRow>{{"zed", s(50), s(65), 2}}))
      << "output:" << describe(rows);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_NE(dead[0].payload.find("zed"), std::string::npos) << dead[0].payload;
  EXPECT_NE(dead[0].reason.find("late"), std::string::npos) << dead[0].reason;
}

INSTANTIATE_TEST_SUITE_P(Parallelism, SessionWindows, ::testing::Values(1, 4),
                         [](const auto& info) { return "p" + std::to_string(info.param); });

}  // namespace
}  // namespace sluice::it
