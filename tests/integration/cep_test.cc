// CEP end to end through `sluice run-local` (tests/integration/jobs/cep_job.cc:
// three failed logins then a purchase >= 500 within 60 s, per user, with
// timed-out partial matches on a second output):
//  - killed with SIGKILL at random moments mid-stream (checkpoints every
//    300 ms, heap state) and restarted with --restore latest each time;
//  - stopped at parallelism 2 with a savepoint and restored at
//    parallelism 3 (RocksDB state);
// both must end with exactly the alerts and timeouts of an undisturbed run
// (every row once: the file sinks are exactly-once). Partial matches,
// buffered events and the shared buffer live across the kills in keyed
// state; deadlines in the timers.
#include <gtest/gtest.h>
#include <signal.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "tests/integration/support.h"

namespace sluice::it {
namespace {

std::vector<std::string> sorted_lines(const std::string& path) {
  auto l = read_lines(path);
  std::sort(l.begin(), l.end());
  return l;
}

std::vector<std::string> job_args(const TempDir& dir, const std::string& out, int parallelism, const std::string& backend,
                                   bool rate_limited, const std::string& pattern = "simple") {
  std::vector<std::string> a = {sluice_binary(), "run-local", cep_library(), "-p", std::to_string(parallelism),
                                "--set", "state.backend=" + backend,
                                "--arg", "source=" + dir.uri("in.ndjson") + (rate_limited ? "?rate=6000" : ""),
                                "--arg", "sink=" + dir.uri(out + "-alerts.ndjson"),
                                "--arg", "timeouts=" + dir.uri(out + "-timeouts.ndjson"),
                                "--arg", "dlq=" + dir.uri(out + "-dlq.ndjson"),
                                "--arg", "pattern=" + pattern};
  if (backend == "rocksdb") {
    a.insert(a.end(), {"--set", "state.rocksdb.local-dir=" + dir.file("local"), "--set", "state.rocksdb.memory=64mb"});
  }
  return a;
}

/// The outputs of an undisturbed run at parallelism 2 (heap).
struct Outputs {
  std::vector<std::string> alerts, timeouts;
};
Outputs undisturbed(const TempDir& dir) {
  auto r = run_command(job_args(dir, "plain", 2, "heap", false), std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 0) << r.describe(job_args(dir, "plain", 2, "heap", false));
  Outputs o{sorted_lines(dir.file("plain-alerts.ndjson")), sorted_lines(dir.file("plain-timeouts.ndjson"))};
  EXPECT_GT(o.alerts.size(), 100u);
  EXPECT_GT(o.timeouts.size(), 100u);
  EXPECT_TRUE(read_lines(dir.file("plain-dlq.ndjson")).empty());
  return o;
}

TEST(CepEndToEnd, KilledAndRestoredRunsEmitExactlyTheUndisturbedMatches) {
  TempDir dir;
  write_cep_activity(dir.file("in.ndjson"), 60'000, 42);
  const Outputs want = undisturbed(dir);

  const std::string log = dir.file("kills.log");
  const char* seed_env = std::getenv("SLUICE_KILL_SEED");
  const uint32_t seed = seed_env ? static_cast<uint32_t>(std::strtoul(seed_env, nullptr, 10)) : std::random_device{}();
  SCOPED_TRACE("kill schedule seed " + std::to_string(seed) + " (replay with SLUICE_KILL_SEED); log " + log);
  std::mt19937 rng(seed);
  auto args = [&](bool restore) {
    auto a = job_args(dir, "killed", 2, "heap", true);
    a.insert(a.end(), {"--checkpoint-dir", dir.file("chk"), "--checkpoint-interval", "300ms"});
    if (restore) a.insert(a.end(), {"--restore", "latest"});
    return a;
  };
  constexpr int kKills = 4;
  for (int k = 0; k < kKills; ++k) {
    int pid = start_process(args(k > 0), log);
    ASSERT_GT(pid, 0);
    const int wait_ms = std::uniform_int_distribution<int>(700, 2000)(rng);
    ASSERT_EQ(wait_process(pid, std::chrono::milliseconds(wait_ms)), -1) << "ended before the kill; see " << log;
    ::kill(pid, SIGKILL);
    ASSERT_EQ(wait_process(pid, std::chrono::seconds(10)), 128 + SIGKILL);
  }
  int pid = start_process(args(true), log);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(wait_process(pid, std::chrono::seconds(90)), 0) << "see " << log;

  EXPECT_EQ(sorted_lines(dir.file("killed-alerts.ndjson")), want.alerts);
  EXPECT_EQ(sorted_lines(dir.file("killed-timeouts.ndjson")), want.timeouts);
  EXPECT_TRUE(read_lines(dir.file("killed-dlq.ndjson")).empty());
}

TEST(CepEndToEnd, RescaleTwoToThreeFromASavepointEmitsExactlyTheUndisturbedMatches) {
  TempDir dir;
  write_cep_activity(dir.file("in.ndjson"), 60'000, 42);
  const Outputs want = undisturbed(dir);

  const std::string log = dir.file("rescale.log");
  auto a2 = job_args(dir, "rescaled", 2, "rocksdb", true);
  a2.insert(a2.end(), {"--checkpoint-dir", dir.file("chk"), "--savepoint-on-exit"});
  int pid = start_process(a2, log);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(wait_process(pid, std::chrono::milliseconds(3000)), -1) << "ended before it was stopped; see " << log;
  ::kill(pid, SIGTERM);
  ASSERT_EQ(wait_process(pid, std::chrono::seconds(30)), 0) << "see " << log;
  const std::string out = [&] {
    std::string s;
    for (const auto& l : read_lines(log)) s += l + "\n";
    return s;
  }();
  const std::string key = "stopped with savepoint ";
  size_t p = out.find(key);
  ASSERT_NE(p, std::string::npos) << out;
  size_t colon = out.find(": ", p);
  const std::string savepoint = out.substr(colon + 2, out.find('\n', colon) - colon - 2);
  const size_t alerts_at_stop = read_lines(dir.file("rescaled-alerts.ndjson")).size();
  EXPECT_LT(alerts_at_stop, want.alerts.size()) << "the stop was not mid-stream";

  auto a3 = job_args(dir, "rescaled", 3, "rocksdb", false);
  a3.insert(a3.end(), {"--checkpoint-dir", dir.file("chk"), "--restore", savepoint});
  auto r = run_command(a3, std::chrono::seconds(90));
  ASSERT_EQ(r.exit_code, 0) << r.describe(a3);
  EXPECT_NE((r.out + r.err).find("restoring from savepoint"), std::string::npos) << r.out << r.err;

  EXPECT_EQ(sorted_lines(dir.file("rescaled-alerts.ndjson")), want.alerts);
  EXPECT_EQ(sorted_lines(dir.file("rescaled-timeouts.ndjson")), want.timeouts);
}

// The fraud team's pattern (five or more failed logins, then a purchase of
// at least 900 from a device none of them used, within 10 minutes; event
// time, keyed by user) at parallelism 1 on the heap and at parallelism 4 on
// RocksDB with checkpoints every 300 ms: the same alerts and timeouts, and
// every alert obeys the pattern (checked here from the alert's own fields).
TEST(CepEndToEnd, FraudPatternGivesTheSameAlertsAtParallelismOneAndFour) {
  TempDir dir;
  // 1,000 users, ~15 ms apart: ~20 events per user in 10 minutes.
  write_cep_activity(dir.file("in.ndjson"), 40'000, 11, 1000, 30);
  auto p1 = job_args(dir, "p1", 1, "heap", false, "fraud");
  auto r1 = run_command(p1, std::chrono::seconds(90));
  ASSERT_EQ(r1.exit_code, 0) << r1.describe(p1);
  auto p4 = job_args(dir, "p4", 4, "rocksdb", false, "fraud");
  p4.insert(p4.end(), {"--checkpoint-dir", dir.file("chk"), "--checkpoint-interval", "300ms"});
  auto r4 = run_command(p4, std::chrono::seconds(90));
  ASSERT_EQ(r4.exit_code, 0) << r4.describe(p4);

  const auto alerts = sorted_lines(dir.file("p1-alerts.ndjson"));
  const auto timeouts = sorted_lines(dir.file("p1-timeouts.ndjson"));
  EXPECT_GT(alerts.size(), 20u);
  EXPECT_GT(timeouts.size(), 100u);
  EXPECT_EQ(sorted_lines(dir.file("p4-alerts.ndjson")), alerts);
  EXPECT_EQ(sorted_lines(dir.file("p4-timeouts.ndjson")), timeouts);
  EXPECT_TRUE(read_lines(dir.file("p1-dlq.ndjson")).empty());
  EXPECT_TRUE(read_lines(dir.file("p4-dlq.ndjson")).empty());

  simdjson::dom::parser parser;
  for (const std::string& line : alerts) {
    simdjson::dom::element a;
    ASSERT_FALSE(parser.parse(line).get(a)) << line;
    std::vector<int64_t> fails, devices;
    for (int64_t v : a["fails"].get_array()) fails.push_back(v);
    for (int64_t v : a["fail_devices"].get_array()) devices.push_back(v);
    const int64_t buy_ts = a["buy_ts"].get_int64(), amount = a["amount"].get_int64();
    const int64_t device = a["device"].get_int64();
    ASSERT_GE(fails.size(), 5u) << line;
    EXPECT_TRUE(std::is_sorted(fails.begin(), fails.end())) << line;
    EXPECT_LT(buy_ts - fails.front(), 600'000) << line;
    EXPECT_GE(buy_ts, fails.back()) << line;
    EXPECT_GE(amount, 900) << line;
    EXPECT_EQ(std::count(devices.begin(), devices.end(), device), 0) << "purchase from a device of the logins: " << line;
  }
}

}  // namespace
}  // namespace sluice::it
