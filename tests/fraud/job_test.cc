// The fraud job end to end through `sluice run-local` on generated
// streams: its alerts are exactly the ground truth and its audit trail
// exactly the reference's decisions, each once, at parallelism 1 (heap)
// and 4 (RocksDB); a rule update read mid-run judges events from its
// effective time on, in every subtask; a scorer that goes down or is slow
// (or fails, or refuses the token) leaves decisions unscored and loses none.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <stdlib.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "tests/async/support/http_test_server.h"
#include "tests/fraud/reference.h"
#include "tests/integration/support.h"

namespace sluice::fraud_test {
namespace {

using namespace std::chrono_literals;

struct Outputs {
  std::set<Decision> alerts;
  std::set<Decision> decisions;
  std::vector<AuditRow> audit;
  size_t dead_letters = 0;
};

/// Reads the outputs of a run; every alert and decision must be there once.
Outputs read_outputs(const std::string& out_dir) {
  Outputs o;
  std::vector<std::string> repeats;
  o.alerts = alerts_of(read_alerts(lines_of(it::files_with_prefix(out_dir, "alerts"))), &repeats);
  EXPECT_TRUE(repeats.empty()) << "alerts twice: " << repeats.front();
  repeats.clear();
  o.audit = read_audit(it::files_with_prefix(out_dir, "audit"));
  o.decisions = decisions_of(o.audit, &repeats);
  EXPECT_TRUE(repeats.empty()) << "decisions twice: " << repeats.front();
  o.dead_letters = lines_of(it::files_with_prefix(out_dir, "dlq")).size();
  return o;
}

std::set<Decision> alerting(const std::set<Decision>& decisions) {
  std::set<Decision> out;
  for (const auto& d : decisions)
    if (d.alert) out.insert(d);
  return out;
}

void run_job(const std::vector<std::string>& args) {
  auto r = it::run_sluice(args);
  ASSERT_EQ(r.exit_code, 0) << r.describe(args);
}

void expect_ground_truth(int parallelism, const std::string& backend, uint32_t seed) {
  it::TempDir in, out;
  generate(in.path(), {"--count", "20000", "--scenarios", "6", "--seed", std::to_string(seed), "--malformed", "0.002"});
  std::vector<std::string> args{"run-local", job_library(), "-p", std::to_string(parallelism), "--set",
                                "state.backend=" + backend};
  for (const auto& a : job_args(in.path(), out.path())) args.push_back(a);
  run_job(args);
  const Inputs inputs = read_inputs(in.path());
  const auto truth = read_truth(in.file("truth.ndjson"));
  Outputs o = read_outputs(out.path());
  EXPECT_EQ(diff(truth_alerts(truth), o.alerts), "");
  EXPECT_EQ(diff(reference_decisions(inputs, Params{}), o.decisions), "");
  EXPECT_EQ(o.alerts, alerting(o.decisions));
  EXPECT_EQ(o.dead_letters, static_cast<size_t>(inputs.malformed));
  EXPECT_GT(inputs.malformed, 0);
  for (const auto& r : o.audit) EXPECT_FALSE(r.scored) << "no scorer was given";
}

TEST(FraudJob, AlertsAreTheGroundTruthAtParallelismOneOnHeap) { expect_ground_truth(1, "heap", 5); }

TEST(FraudJob, AlertsAreTheGroundTruthAtParallelismFourOnRocksDb) { expect_ground_truth(4, "rocksdb", 6); }

// Version 1 of the rules, read about a second into a run paced over ~6 s,
// takes effect at an event time about three quarters through: from then on
// the positive scenarios' users are allow-listed (decided, not alerted)
// and error storms need 1000 errors (not decided at all). Decisions before
// it keep version 0, in all four subtasks.
TEST(FraudJob, RuleUpdateMidRunTakesEffectFromItsEventTimeInEverySubtask) {
  it::TempDir in, out;
  generate(in.path(), {"--count", "24000", "--scenarios", "8", "--seed", "8"});
  const auto truth = read_truth(in.file("truth.ndjson"));
  std::vector<int64_t> times;
  std::string allow;
  std::set<std::string> users;
  for (const auto& t : truth) {
    times.push_back(t.ts);
    if (t.alert) users.insert(t.user);
  }
  std::sort(times.begin(), times.end());
  const int64_t effective = times[times.size() * 3 / 4];
  Rules v1;
  v1.version = 1;
  v1.effective_ts = effective;
  v1.error_storm_count = 1000;
  v1.allow_users = users;
  std::string list;
  for (const auto& u : users) list += (list.empty() ? "\"" : ",\"") + u + "\"";
  it::write_lines(in.file("rules.ndjson"),
                  {"{\"version\":1,\"effective_ts\":" + std::to_string(effective) +
                   ",\"error_storm_count\":1000,\"allow_users\":[" + list + "]}",
                   "{\"version\":0,\"effective_ts\":0}"});  // refused: one dead letter
  std::vector<std::string> args{"run-local", job_library(), "-p", "4", "--arg", "rules=" + in.uri("rules.ndjson") + "?rate=1"};
  for (const auto& a : job_args(in.path(), out.path(), 4000)) args.push_back(a);
  run_job(args);
  const Inputs inputs = read_inputs(in.path());
  Outputs o = read_outputs(out.path());
  const auto expected = reference_decisions(inputs, Params{}, {Rules{}, v1});
  EXPECT_EQ(diff(expected, o.decisions), "");
  EXPECT_EQ(o.alerts, alerting(o.decisions));
  size_t before = 0, suppressed = 0;
  for (const auto& d : o.decisions) {
    before += d.rule_version == 0 && d.alert ? 1 : 0;
    suppressed += d.rule_version == 1 && !d.alert ? 1 : 0;
  }
  EXPECT_GT(before, 10u);
  EXPECT_GT(suppressed, 3u);
  EXPECT_EQ(o.dead_letters, static_cast<size_t>(inputs.malformed) + 1);
}

/// A scoring service on a loopback port: POST /v1/score with the bearer
/// token answers a fixed score; anything else 401/404. `fail(id,
/// attempt)` says which calls get a 503 instead.
std::unique_ptr<async_test::HttpTestServer> start_scorer(
    const std::string& token, std::function<bool(const std::string&, int)> fail = nullptr) {
  auto s = async_test::HttpTestServer::start({});
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  if (!s.is_ok()) return nullptr;
  auto attempts = std::make_shared<std::map<std::string, int>>();  // server thread only
  (*s)->set_handler([token, fail, attempts](const async_test::RecordedRequest& r) {
    if (r.uri != "/v1/score" || r.method != "POST") return async_test::ScriptedReply{404, "{}", {}};
    if (r.header("Authorization") != "Bearer " + token) return async_test::ScriptedReply{401, "{}", {}};
    simdjson::dom::parser p;
    simdjson::dom::element d;
    std::string_view id;
    if (p.parse(r.body).get(d) || d["request_id"].get(id) || !d["features"].is_object()) {
      return async_test::ScriptedReply{400, "{\"error\":\"bad request\"}", {}};
    }
    const int attempt = ++(*attempts)[std::string(id)];
    if (fail && fail(std::string(id), attempt)) return async_test::ScriptedReply{503, "{}", {}};
    return async_test::ScriptedReply{
        200, "{\"request_id\":\"" + std::string(id) + "\",\"score\":0.93,\"model_version\":\"test-1\"}", {}};
  });
  return std::move(*s);
}

struct ScoredRun {
  Outputs outputs;
  std::set<Decision> truth;
  std::set<Decision> reference;
};

/// Generates a small input and runs the job at p2 against `scorer_url`.
ScoredRun run_scored(const std::string& scorer_url, uint32_t seed) {
  ::setenv("FRAUD_TEST_SCORER_TOKEN", "s3cret", 1);
  it::TempDir in, out;
  generate(in.path(), {"--count", "8000", "--scenarios", "5", "--seed", std::to_string(seed)});
  // The overall timeout is far above three attempts (each fails fast or at
  // score_attempt_timeout, with 20–200 ms backoff): on a loaded machine the
  // task thread, which also runs enrich, CEP and the rule check, may be late
  // to handle a reply, and a retry must still fit.
  std::vector<std::string> args{"run-local", job_library(), "-p", "2", "--arg", "scorer=" + scorer_url, "--arg",
                                "scorer_token=env:FRAUD_TEST_SCORER_TOKEN", "--arg", "score_timeout=2s", "--arg",
                                "score_attempt_timeout=150ms"};
  for (const auto& a : job_args(in.path(), out.path())) args.push_back(a);
  run_job(args);
  return ScoredRun{read_outputs(out.path()), truth_alerts(read_truth(in.file("truth.ndjson"))),
                   reference_decisions(read_inputs(in.path()), Params{})};
}

void expect_complete(const ScoredRun& r) {
  EXPECT_EQ(diff(r.truth, r.outputs.alerts), "");
  EXPECT_EQ(diff(r.reference, r.outputs.decisions), "");
  EXPECT_FALSE(r.outputs.audit.empty());
}

// A third of the decisions get a 503 on every attempt, another third on
// the first only: those are scored on a retry, the first third go on
// unscored (after three attempts) — and every decision and alert is there.
TEST(FraudJob, ScorerErrorsAreRetriedAndWhatStillFailsGoesOnUnscored) {
  auto bucket = [](const std::string& id) { return std::hash<std::string>{}(id) % 3; };
  auto scorer = start_scorer("s3cret", [&](const std::string& id, int attempt) {
    return bucket(id) == 0 || (bucket(id) == 1 && attempt == 1);
  });
  ASSERT_TRUE(scorer);
  ScoredRun r = run_scored(scorer->url(""), 9);
  expect_complete(r);
  size_t retried_ok = 0;
  for (const auto& row : r.outputs.audit) {
    if (bucket(row.decision_id) == 0) {
      EXPECT_FALSE(row.scored) << row.decision_id;
      EXPECT_FALSE(row.score_error.empty());
      EXPECT_EQ(row.score, -1);
    } else {
      EXPECT_TRUE(row.scored) << row.decision_id << ": " << row.score_error;
      EXPECT_DOUBLE_EQ(row.score, 0.93);
      retried_ok += bucket(row.decision_id) == 1 ? 1 : 0;
    }
  }
  EXPECT_GT(retried_ok, 0u);
}

// No scorer on its port for the whole run, then a scorer slower than the
// job's timeout: decisions go on unscored, with the reason.
TEST(FraudJob, ScorerDownOrSlowerThanTheTimeoutLosesNoAlert) {
  const int nobody = it::free_loopback_port();
  ASSERT_GT(nobody, 0);
  ScoredRun down = run_scored("http://127.0.0.1:" + std::to_string(nobody), 12);
  expect_complete(down);
  for (const auto& row : down.outputs.audit) EXPECT_FALSE(row.scored);
  auto scorer = start_scorer("s3cret");
  ASSERT_TRUE(scorer);
  scorer->set_latency_us(600'000, 700'000);
  ScoredRun slow = run_scored(scorer->url(""), 13);
  expect_complete(slow);
  for (const auto& row : slow.outputs.audit) {
    EXPECT_FALSE(row.scored);
    EXPECT_FALSE(row.score_error.empty());
  }
  EXPECT_GT(scorer->requests(), 0u);
}

TEST(FraudJob, WrongScorerTokenIsRefusedAndDecisionsGoOnUnscored) {
  ::setenv("FRAUD_TEST_SCORER_TOKEN", "wrong", 1);
  auto scorer = start_scorer("right");
  ASSERT_TRUE(scorer);
  it::TempDir in, out;
  generate(in.path(), {"--count", "5000", "--scenarios", "2", "--seed", "10"});
  std::vector<std::string> args{"run-local", job_library(), "--arg", "scorer=" + scorer->url(""), "--arg",
                                "scorer_token=env:FRAUD_TEST_SCORER_TOKEN"};
  for (const auto& a : job_args(in.path(), out.path())) args.push_back(a);
  run_job(args);
  Outputs o = read_outputs(out.path());
  EXPECT_EQ(diff(truth_alerts(read_truth(in.file("truth.ndjson"))), o.alerts), "");
  ASSERT_FALSE(o.audit.empty());
  for (const auto& r : o.audit) {
    EXPECT_FALSE(r.scored);
    EXPECT_NE(r.score_error.find("refused"), std::string::npos) << r.score_error;
  }
  EXPECT_EQ(scorer->requests(), o.audit.size()) << "a refusal is not retried";
}

/// The plan's graph hash for the job with `extra` arguments (the sources'
/// watermark settings are part of their descriptions, so of the hash), or
/// the error output when the job is refused.
std::string plan_hash(const std::vector<std::string>& extra, int* exit_code = nullptr) {
  std::vector<std::string> args{"run-local", job_library(), "--plan"};
  for (const char* s : {"logins", "api_errors", "transactions"}) {
    args.insert(args.end(), {"--arg", std::string(s) + "=file:///nonexistent/" + s + ".ndjson"});
  }
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = it::run_sluice(args);
  if (exit_code) *exit_code = r.exit_code;
  auto at = r.out.find("(hash ");
  return r.exit_code == 0 && at != std::string::npos ? r.out.substr(at, 20) : r.err;
}

TEST(FraudJob, WatermarkBoundAndIdlenessPerSourceAreAppliedAndBadValuesRefused) {
  const std::string base = plan_hash({});
  ASSERT_NE(base.find("(hash "), std::string::npos) << base;
  // The job-wide default, given for one source: the same graph.
  EXPECT_EQ(plan_hash({"--arg", "logins_out_of_orderness=2s"}), base);
  // One source's bound or idleness: another graph, each its own.
  const std::string logins = plan_hash({"--arg", "logins_out_of_orderness=20ms"});
  const std::string errors = plan_hash({"--arg", "api_errors_out_of_orderness=20ms"});
  const std::string idle = plan_hash({"--arg", "api_errors_idleness=500ms"});
  for (const auto* h : {&logins, &errors, &idle}) EXPECT_NE(h->find("(hash "), std::string::npos) << *h;
  EXPECT_NE(logins, base);
  EXPECT_NE(errors, base);
  EXPECT_NE(logins, errors);
  EXPECT_NE(idle, base);
  // All three given one by one is the job-wide setting given once.
  EXPECT_EQ(plan_hash({"--arg", "logins_out_of_orderness=20ms", "--arg", "api_errors_out_of_orderness=20ms", "--arg",
                       "transactions_out_of_orderness=20ms"}),
            plan_hash({"--arg", "out_of_orderness=20ms"}));
  int code = 0;
  std::string err = plan_hash({"--arg", "transactions_out_of_orderness=-5ms"}, &code);
  EXPECT_NE(code, 0);
  EXPECT_NE(err.find("--arg transactions_out_of_orderness"), std::string::npos) << err;
  err = plan_hash({"--arg", "idleness=-1s"}, &code);
  EXPECT_NE(code, 0);
  EXPECT_NE(err.find("--arg idleness"), std::string::npos) << err;
  err = plan_hash({"--arg", "logins_idleness=soon"}, &code);
  EXPECT_NE(code, 0);
  EXPECT_NE(err.find("logins_idleness"), std::string::npos) << err;
  err = plan_hash({"--arg", "login_out_of_orderness=20ms"}, &code);  // a typo is refused, not ignored
  EXPECT_NE(code, 0);
  EXPECT_NE(err.find("login_out_of_orderness"), std::string::npos) << err;
}

}  // namespace
}  // namespace sluice::fraud_test
