// The fraud job killed with scoring calls in flight: through `sluice
// run-local` SIGKILLed three times (some kills while a checkpoint is
// written) and restored with --restore latest, and on a cluster of three
// taskmanagers one of which is SIGKILLed mid-run. The alerts (exactly-once
// file sink) and the audit trail (partitioned data-lake sink, exactly-once)
// hold every expected record once: the ground truth's alerts and the
// reference's decisions.
#include <gtest/gtest.h>
#include <signal.h>

#include <string>

#include "tests/async/support/http_test_server.h"
#include "tests/cluster/cluster_harness.h"
#include "tests/fraud/reference.h"
#include "tests/integration/kill_restore.h"
#include "tests/integration/support.h"
#include "tests/scorer/support/delay_proxy.h"

namespace sluice::fraud_test {
namespace {

using namespace std::chrono_literals;

/// A scorer that answers every call after 100..300 ms, so calls are in
/// flight when the job is killed.
std::unique_ptr<async_test::HttpTestServer> slow_scorer() {
  async_test::HttpServerOptions o;
  o.min_latency_us = 100'000;
  o.max_latency_us = 300'000;
  auto s = async_test::HttpTestServer::start(o);
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  if (!s.is_ok()) return nullptr;
  (*s)->set_handler([](const async_test::RecordedRequest& r) {
    if (r.uri != "/v1/score") return async_test::ScriptedReply{404, "{}", {}};
    return async_test::ScriptedReply{200, "{\"request_id\":\"x\",\"score\":0.5,\"model_version\":\"kill-test\"}", {}};
  });
  return std::move(*s);
}

std::string lake_uri(const it::TempDir& out) { return "file://" + out.file("audit") + "/?partition=dt:ts:date,hour:ts:hour"; }

/// Alerts and audit are the expected ones, each once; returns how many
/// decisions were scored.
size_t expect_exactly_once(const it::TempDir& in, const it::TempDir& out) {
  std::vector<std::string> repeats;
  auto alerts = alerts_of(read_alerts(lines_of(it::files_with_prefix(out.path(), "alerts"))), &repeats);
  EXPECT_TRUE(repeats.empty()) << repeats.size() << " alerts twice, e.g. " << repeats.front();
  EXPECT_EQ(diff(truth_alerts(read_truth(in.file("truth.ndjson"))), alerts), "");
  repeats.clear();
  auto audit = read_audit(it::published_files(out.file("audit")));
  auto decisions = decisions_of(audit, &repeats);
  EXPECT_TRUE(repeats.empty()) << repeats.size() << " decisions twice, e.g. " << repeats.front();
  EXPECT_EQ(diff(reference_decisions(read_inputs(in.path()), Params{}), decisions), "");
  size_t scored = 0;
  for (const auto& r : audit) scored += r.scored ? 1 : 0;
  return scored;
}

// The real scorer over gRPC, behind a proxy that holds every call 100 ms.
TEST(FraudKill, KilledAndRestoredWithScoringInFlightWritesAlertsAndAuditExactlyOnce) {
  it::TempDir in, out;
  ScorerProcess scorer(out.path(), "kill-test-token");
  ASSERT_TRUE(scorer.ok());
  auto proxy = scorer_test::DelayProxy::start(scorer.grpc());
  ASSERT_TRUE(proxy.is_ok()) << proxy.status().to_string();
  (*proxy)->set_delay(100ms);
  generate(in.path(), {"--count", "30000", "--scenarios", "10", "--seed", "21"});
  std::vector<std::string> argv{it::sluice_binary(), "run-local", job_library(), "-p", "2", "--checkpoint-dir", out.file("chk"), "--checkpoint-interval",
                                "300ms", "--arg", "scorer=grpc://" + (*proxy)->address(), "--arg",
                                "scorer_token=file:" + out.file("scorer-token"), "--arg", "score_timeout=5s",
                                "--arg", "score_attempt_timeout=2s"};
  for (const auto& a : job_args(in.path(), out.path(), 6000, lake_uri(out))) argv.push_back(a);
  const uint32_t seed = it::kill_seed();
  SCOPED_TRACE("kill schedule seed " + std::to_string(seed) + " (replay with SLUICE_KILL_SEED)");
  it::KillRun run = it::run_with_kills(argv, out.file("chk/fraud"), out.file("runs.log"), 3, seed);
  EXPECT_EQ(run.final_exit, 0) << run.log;
  EXPECT_EQ(run.kills, 3) << run.log;
  EXPECT_GE(run.restores, 2) << run.log;
  const size_t scored = expect_exactly_once(in, out);
  EXPECT_GT(scored, 0u);
}

// On the cluster: parallelism 4 over three taskmanagers, one killed after
// two checkpoints while scoring calls are in flight; the job restarts from
// its checkpoint (in-flight calls are part of it and are made again).
TEST(FraudKill, TaskManagerKilledWithScoringInFlightOnTheClusterLosesAndRepeatsNothing) {
  auto scorer = slow_scorer();
  ASSERT_TRUE(scorer);
  it::TempDir in, out;
  generate(in.path(), {"--count", "30000", "--scenarios", "10", "--seed", "22"});
  ::setenv("FRAUD_TEST_SCORER_TOKEN", "cluster-token", 1);  // the taskmanagers inherit it
  it::Cluster c(out);
  c.start_jobmanager();
  for (const char* id : {"tm-a", "tm-b", "tm-c"}) c.start_taskmanager(id, 2);
  ASSERT_TRUE(c.wait_for_taskmanagers(3)) << c.logs();
  std::vector<std::string> args{"submit", job_library(), "--parallelism", "4", "--arg", "scorer=" + scorer->url(""),
                                "--arg", "scorer_token=env:FRAUD_TEST_SCORER_TOKEN", "--arg", "score_timeout=5s",
                                "--arg", "score_attempt_timeout=2s"};
  for (const auto& a : job_args(in.path(), out.path(), 5000, lake_uri(out))) args.push_back(a);
  auto r = c.sluice(args);
  ASSERT_EQ(r.exit_code, 0) << r.describe(args) << c.logs();
  const std::string job = r.out.substr(0, r.out.find('\n'));
  it::JobView v = c.wait_for_checkpoints(job, 2);
  ASSERT_TRUE(v.state == "RUNNING" && v.completed_checkpoints >= 2) << v.raw << c.logs();
  // Kill once decisions are being scored (calls take 100..300 ms each).
  it::wait_until([&] { return scorer->requests() > 3; }, 60s);
  const uint64_t calls_before_kill = scorer->requests();
  c.taskmanager(*v.taskmanagers.begin()).kill(SIGKILL);
  v = c.wait_for_end(job, 180s);
  ASSERT_EQ(v.state, "FINISHED") << v.raw << c.logs();
  EXPECT_GE(v.restarts, 1);
  EXPECT_GT(calls_before_kill, 3u) << "too few scoring calls before the kill: make the input longer";
  EXPECT_GT(expect_exactly_once(in, out), 0u);
}

}  // namespace
}  // namespace sluice::fraud_test
