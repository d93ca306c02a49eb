// Failover over a job's whole life, on a real cluster (processes on
// loopback): 20+ taskmanager kills, each costing one restart and results
// again within 5 s, the last as fast as the first; clean shutdown of a
// taskmanager and of the jobmanager on SIGTERM. Output equal to the
// reference every time (exactly once).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "tests/cluster/cluster_harness.h"

namespace sluice::it {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

/// The job as the jobmanager's HTTP status shows it.
struct Snapshot {
  bool ok = false;
  std::string state;
  int64_t restarts = 0, last_checkpoint = 0, last_recovery_ms = 0;
  bool gave_up = false;
  std::set<std::string> taskmanagers;
};

Snapshot snapshot(Cluster& c, const std::string& job) {
  Snapshot s;
  auto r = c.http_get("/jobs/" + job);
  if (r.exit_code != 0) return s;
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  if (p.parse(r.out).get(doc) != simdjson::SUCCESS) return s;
  std::string_view st;
  if (doc["state"].get(st) == simdjson::SUCCESS) s.state = std::string(st);
  if (doc["restarts"].get(s.restarts)) {
  }
  if (doc["last_recovery_ms"].get(s.last_recovery_ms)) {
  }
  if (doc["gave_up"].get(s.gave_up)) {
  }
  if (doc["checkpoints"]["last_completed_id"].get(s.last_checkpoint)) {
  }
  simdjson::dom::array subtasks;
  if (doc["subtasks"].get(subtasks) == simdjson::SUCCESS) {
    for (auto t : subtasks) {
      std::string_view tm;
      if (t["taskmanager"].get(tm) == simdjson::SUCCESS) s.taskmanagers.insert(std::string(tm));
    }
  }
  s.ok = true;
  return s;
}

/// Clicks whose event time runs three times as fast as the paced source
/// reads them (1000 per event second, read at 3000/s), so that 1 s windows
/// close, and rows are committed, several times per second.
std::string paced_input(const TempDir& dir, int64_t count, uint64_t seed) {
  std::string path = dir.file("clicks.ndjson");
  auto r = run_sluice({"gen", "--count", std::to_string(count), "--seed", std::to_string(seed), "--events-per-second",
                       "1000", "--pages", "20", "--late", "0", "--output", path});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return path;
}

std::string submit(Cluster& c, const TempDir& dir, const std::string& input, int rate, int parallelism) {
  std::vector<std::string> args = {"submit", clickstream_library(), "--parallelism", std::to_string(parallelism),
                                   "--arg", "source=file://" + input + "?rate=" + std::to_string(rate),
                                   "--arg", "sink=" + dir.uri("counts.ndjson"), "--arg", "dlq=" + dir.uri("dlq.ndjson"),
                                   "--arg", "window=1s"};
  auto r = c.sluice(args);
  EXPECT_EQ(r.exit_code, 0) << r.describe(args) << c.logs();
  std::string id = r.out;
  while (!id.empty() && id.back() == '\n') id.pop_back();
  return id;
}

struct Recovery {
  std::string victim;
  int64_t to_running_ms = -1;  // kill -> the job RUNNING again (a new attempt deployed)
  int64_t to_rows_ms = -1;     // kill -> rows committed by a checkpoint of the new attempt
};

/// Kills `victim` with SIGKILL and measures the recovery. Rows count once a
/// checkpoint completed after the job was RUNNING again has committed
/// output (earlier checkpoints may still commit what the old attempt did).
Recovery kill_and_measure(Cluster& c, const TempDir& dir, const std::string& job, const std::string& victim,
                          int64_t restarts_before) {
  Recovery r;
  r.victim = victim;
  const auto t0 = Clock::now();
  c.taskmanager(victim).kill(SIGKILL);
  int64_t running_checkpoint = -1;
  while (ms_since(t0) < 30'000) {
    if (r.to_running_ms < 0) {
      Snapshot s = snapshot(c, job);
      if (s.ok && s.state == "RUNNING" && s.restarts > restarts_before && !s.taskmanagers.count(victim)) {
        r.to_running_ms = ms_since(t0);
        running_checkpoint = s.last_checkpoint;
      } else if (s.ok && (s.state == "FAILED" || s.state == "FINISHED")) {
        break;
      }
    } else {
      auto [cp, len] = commit_marker(dir.file("counts.ndjson"));
      if (cp > running_checkpoint && len > 0) {
        r.to_rows_ms = ms_since(t0);
        break;
      }
    }
    std::this_thread::sleep_for(20ms);
  }
  return r;
}

/// One job's life with `kills` taskmanager kills, each after the job ran
/// `stable` (so the backoff resets), with the jobmanager's `jm_extra` flags.
void kill_series(int kills, std::vector<std::string> jm_extra, std::chrono::milliseconds stable, int64_t events,
                 int rate, int events_per_second) {
  TempDir dir;
  std::string input = dir.file("clicks.ndjson");
  auto g = run_sluice({"gen", "--count", std::to_string(events), "--seed", "23", "--events-per-second",
                       std::to_string(events_per_second), "--pages", "20", "--late", "0", "--output", input});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  Cluster c(dir);
  c.start_jobmanager("127.0.0.1:0", jm_extra);
  for (const char* id : {"tm-a", "tm-b", "tm-c"}) c.start_taskmanager(id);
  ASSERT_TRUE(c.wait_for_taskmanagers(3)) << c.logs();

  std::string job = submit(c, dir, input, rate, 2);
  ASSERT_FALSE(job.empty());
  JobView v = c.wait_for_checkpoints(job, 3);
  ASSERT_EQ(v.state, "RUNNING") << v.raw << c.logs();
  // The taskmanager the job does not use has its library already: a
  // failover onto it does not wait for the download.
  for (const char* id : {"tm-a", "tm-b", "tm-c"}) {
    if (snapshot(c, job).taskmanagers.count(id)) continue;
    EXPECT_TRUE(wait_until(
        [&] { return c.taskmanager(id).log().find("fetched and loaded ahead of any deploy") != std::string::npos; },
        10s))
        << id << " did not fetch the job's library ahead of time:\n" << c.taskmanager(id).log();
  }

  std::vector<Recovery> recoveries;
  for (int k = 0; k < kills; ++k) {
    Snapshot s = snapshot(c, job);
    ASSERT_EQ(s.state, "RUNNING") << "before kill " << k + 1 << " (input too short?)" << c.logs();
    ASSERT_EQ(s.restarts, k) << "each kill cost exactly one restart so far" << c.logs();
    ASSERT_FALSE(s.taskmanagers.empty());
    // A taskmanager that runs part of the job, taking turns.
    std::vector<std::string> busy(s.taskmanagers.begin(), s.taskmanagers.end());
    std::string victim = busy[k % busy.size()];
    Recovery r = kill_and_measure(c, dir, job, victim, s.restarts);
    recoveries.push_back(r);
    ASSERT_GE(r.to_rows_ms, 0) << "kill " << k + 1 << " of " << victim << ": no new rows within 30 s" << c.logs();
    // The killed process comes back (same id) and is placeable again.
    c.start_taskmanager(victim);
    ASSERT_TRUE(c.wait_for_taskmanagers(3)) << c.logs();
    std::this_thread::sleep_for(stable);
  }

  std::printf("kill  victim  kill->RUNNING  kill->rows\n");
  for (size_t k = 0; k < recoveries.size(); ++k) {
    std::printf("%4zu  %-6s  %10lld ms  %7lld ms\n", k + 1, recoveries[k].victim.c_str(),
                static_cast<long long>(recoveries[k].to_running_ms), static_cast<long long>(recoveries[k].to_rows_ms));
  }
  for (size_t k = 0; k < recoveries.size(); ++k) {
    EXPECT_LT(recoveries[k].to_rows_ms, 5000) << "kill " << k + 1;
  }
  // The last as fast as the first: every restart waited the initial
  // backoff (a kill -> rows time on a loaded machine varies by a second
  // with the checkpoints and windows alone, so the delay itself is checked).
  std::vector<std::string> delays;
  std::istringstream jm_log(c.jobmanager().log());
  for (std::string line; std::getline(jm_log, line);) {
    const std::string key = "job " + job + " restarts in ";
    auto at = line.find(key);
    if (at != std::string::npos) delays.push_back(line.substr(at + key.size(), line.find(' ', at + key.size()) - at - key.size()));
  }
  ASSERT_EQ(delays.size(), static_cast<size_t>(kills)) << c.jobmanager().log();
  for (size_t k = 0; k < delays.size(); ++k) EXPECT_EQ(delays[k], "200ms") << "restart " << k + 1 << ": the backoff grew";
  std::printf("first kill -> rows %lld ms, last %lld ms; every restart after 200ms\n",
              static_cast<long long>(recoveries.front().to_rows_ms), static_cast<long long>(recoveries.back().to_rows_ms));

  v = c.wait_for_end(job, 600s);
  ASSERT_EQ(v.state, "FINISHED") << v.raw << c.logs();
  Snapshot end = snapshot(c, job);
  EXPECT_EQ(end.restarts, kills) << "one restart per kill, never a second one on the dead taskmanager";
  EXPECT_FALSE(end.gave_up);
  Counts got = counts_of(read_page_counts(dir.file("counts.ndjson")));  // a duplicate row fails here
  Counts want = expected_counts(input, 1000);
  EXPECT_EQ(diff_counts(want, got), "") << c.logs();
}

// The backoff resets after 1 s of stable running (default 30 s), so that
// kills ~4.5 s apart each start from the initial backoff; the failure rate
// is the default (30 within 5 min), which 20 kills stay within only because
// each kill costs one failure. Input at 3000/s, event time 3x as fast: 1 s
// windows close several times a second.
//
// CI: three kills (~25 s).
TEST(Failover, ThreeTaskManagerKillsEachCostOneRestartAndTheLastRecoversAsFastAsTheFirst) {
  kill_series(3, {"--restart-backoff-reset", "1s"}, 1500ms, 72'000, 3000, 1000);
}

// slow (failover_slow_test): twenty kills over one job's life (~95 s).
TEST(Failover, DISABLED_TwentyTaskManagerKillsEachCostOneRestartAndTheLastRecoversAsFastAsTheFirst) {
  kill_series(20, {"--restart-backoff-reset", "1s"}, 1500ms, 240'000, 3000, 1000);
}

// slow (failover_slow_test): default restart settings, 25 kills 35 s apart
// (past the default 30 s stable period), about 16 minutes of one job.
TEST(Failover, DISABLED_TwentyFiveKillsWithDefaultSettingsOverFifteenMinutes) {
  kill_series(25, {}, 35s, 1'000'000, 1000, 250);
}

TEST(Failover, AJobFailingFasterThanTheFailureRateIsGivenUpWithAnError) {
  TempDir dir;
  std::string input = paced_input(dir, 200'000, 29);
  Cluster c(dir);
  c.start_jobmanager("127.0.0.1:0", {"--restart-failure-rate", "2/1m", "--restart-backoff", "100ms"});
  for (const char* id : {"tm-a", "tm-b", "tm-c", "tm-d"}) c.start_taskmanager(id);
  ASSERT_TRUE(c.wait_for_taskmanagers(4)) << c.logs();
  std::string job = submit(c, dir, input, 3000, 2);
  ASSERT_FALSE(job.empty());
  for (int k = 0; k < 3; ++k) {
    JobView v = c.wait_for_checkpoints(job, 1);
    ASSERT_EQ(v.state, "RUNNING") << v.raw << c.logs();
    c.taskmanager(*v.taskmanagers.begin()).kill(SIGKILL);
    ASSERT_TRUE(wait_until([&] { return c.status(job).restarts > k || c.status(job).state == "FAILED"; }, 20s));
  }
  JobView v = c.wait_for_end(job, 30s);
  ASSERT_EQ(v.state, "FAILED") << v.raw;
  Snapshot s = snapshot(c, job);
  EXPECT_TRUE(s.gave_up);
  auto status = c.sluice({"status", job, "-o", "json"}, false);
  EXPECT_NE(status.out.find("gave up: 3 failures within 1m"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("\"gave_up\":true"), std::string::npos) << status.out;
  std::string log = slurp(dir.file("jobmanager.log"));
  const size_t at = log.find("FAILED: gave up");
  ASSERT_NE(at, std::string::npos) << log.substr(log.size() > 4000 ? log.size() - 4000 : 0);
  const size_t bol = log.rfind('\n', at) == std::string::npos ? 0 : log.rfind('\n', at) + 1;
  EXPECT_NE(log.substr(bol, at - bol).find(" error "), std::string::npos)
      << "giving up is logged at level error: " << log.substr(bol, log.find('\n', at) - bol);
  auto metrics = run_command({"/usr/bin/curl", "-sf", "http://" + slurp(c.data_dir() + "/metrics.address") + "/metrics"}, 5s);
  EXPECT_NE(metrics.out.find("sluice_job_gave_up{job=\"clickstream\",job_id=\"" + job + "\"} 1"), std::string::npos)
      << metrics.out.substr(0, 3000);
}

TEST(Failover, SigtermedTaskManagerLeavesCleanlyAndTheJobMovesOnAtOnce) {
  TempDir dir;
  std::string input = paced_input(dir, 18'000, 31);
  Cluster c(dir);
  // A long heartbeat timeout: the job must not wait for it.
  c.start_jobmanager("127.0.0.1:0", {"--heartbeat-timeout", "20s"});
  for (const char* id : {"tm-a", "tm-b", "tm-c"}) c.start_taskmanager(id);
  ASSERT_TRUE(c.wait_for_taskmanagers(3)) << c.logs();
  std::string job = submit(c, dir, input, 3000, 2);
  JobView v = c.wait_for_checkpoints(job, 2);
  ASSERT_EQ(v.state, "RUNNING") << v.raw << c.logs();
  std::string victim = *v.taskmanagers.begin();

  auto t0 = Clock::now();
  int code = c.taskmanager(victim).terminate(SIGTERM, 25s);
  const int64_t exit_ms = ms_since(t0);
  EXPECT_EQ(code, 0) << "a clean exit" << c.logs();
  EXPECT_LT(exit_ms, 10'000);
  std::string tm_log = c.taskmanager(victim).log();
  EXPECT_NE(tm_log.find("SIGTERM: shutting down"), std::string::npos) << tm_log;
  EXPECT_NE(tm_log.find("leaving the jobmanager"), std::string::npos) << tm_log;
  EXPECT_NE(tm_log.find("taskmanager " + victim + " stopped"), std::string::npos) << tm_log;
  ASSERT_TRUE(wait_until([&] { auto s = snapshot(c, job); return s.state == "RUNNING" && s.restarts == 1 &&
                                                                 !s.taskmanagers.count(victim); }, 5s))
      << "restarted elsewhere well before the 20 s heartbeat timeout" << c.logs();
  std::string jm_log = slurp(dir.file("jobmanager.log"));
  EXPECT_NE(jm_log.find("taskmanager " + victim + " lost: it shut down"), std::string::npos) << jm_log;

  v = c.wait_for_end(job, 120s);
  ASSERT_EQ(v.state, "FINISHED") << v.raw << c.logs();
  EXPECT_EQ(v.restarts, 1);
  EXPECT_EQ(diff_counts(expected_counts(input, 1000), counts_of(read_page_counts(dir.file("counts.ndjson")))), "");
}

TEST(Failover, SigtermedJobManagerStopsCleanlyAndItsSuccessorResumesTheJob) {
  TempDir dir;
  std::string input = paced_input(dir, 18'000, 37);
  Cluster c(dir);
  c.start_jobmanager();
  for (const char* id : {"tm-a", "tm-b"}) c.start_taskmanager(id);
  ASSERT_TRUE(c.wait_for_taskmanagers(2)) << c.logs();
  std::string job = submit(c, dir, input, 3000, 2);
  JobView v = c.wait_for_checkpoints(job, 2);
  ASSERT_EQ(v.state, "RUNNING") << v.raw << c.logs();
  std::string address = c.address();

  auto t0 = Clock::now();
  int code = c.jobmanager().terminate(SIGTERM, 25s);
  EXPECT_EQ(code, 0) << c.logs();
  EXPECT_LT(ms_since(t0), 5000);
  std::string log = slurp(dir.file("jobmanager.log"));
  EXPECT_NE(log.find("SIGTERM: shutting down"), std::string::npos) << log;
  EXPECT_NE(log.find("jobmanager stopped"), std::string::npos) << log;
  for (const char* id : {"tm-a", "tm-b"}) EXPECT_TRUE(c.taskmanager(id).running()) << id << " outlives the jobmanager";

  c.start_jobmanager(address);
  v = c.wait_for_end(job, 180s);
  ASSERT_EQ(v.state, "FINISHED") << v.raw << c.logs();
  EXPECT_EQ(diff_counts(expected_counts(input, 1000), counts_of(read_page_counts(dir.file("counts.ndjson")))), "");
}

}  // namespace
}  // namespace sluice::it
