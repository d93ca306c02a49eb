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
                                   bool rate_limited) {
  std::vector<std::string> a = {sluice_binary(), "run-local", cep_library(), "-p", std::to_string(parallelism),
                                "--set", "state.backend=" + backend,
                                "--arg", "source=" + dir.uri("in.ndjson") + (rate_limited ? "?rate=6000" : ""),
                                "--arg", "sink=" + dir.uri(out + "-alerts.ndjson"),
                                "--arg", "timeouts=" + dir.uri(out + "-timeouts.ndjson"),
                                "--arg", "dlq=" + dir.uri(out + "-dlq.ndjson")};
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

}  // namespace
}  // namespace sluice::it
