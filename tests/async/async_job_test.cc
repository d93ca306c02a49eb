// End to end: the it_async_score job under `sluice run-local` against a
// real HTTP server and a real gRPC server in this test process, with
// seeded random latency and failures. Every record's expected score is
// computed here (scoring.h), not asked of Sluice.
//
//  - unordered over HTTP with failures and retries: every record once;
//  - ordered over gRPC: output in input order;
//  - SIGKILL at random moments with requests in flight, --restore latest:
//    the exactly-once file sink holds every record exactly once (heap and
//    RocksDB backends);
//  - an outage longer than the timeout (HTTP and gRPC): the records it
//    hits go to the dead-letter output as timed out, the others are
//    scored, none is lost or doubled.
#include <gtest/gtest.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/async/support/grpc_test_server.h"
#include "tests/async/support/http_test_server.h"
#include "tests/async/support/scoring.h"
#include "tests/integration/process.h"
#include "tests/integration/support.h"

namespace sluice::async_test {
namespace {

using namespace std::chrono_literals;

std::string job_library() { return it::build_dir() + "/tests/async/libit_async_score_job.so"; }

/// N transactions, ids 0..N-1, one every 10 ms of event time.
void write_input(const std::string& path, int n) {
  std::vector<std::string> lines;
  lines.reserve(n);
  for (int i = 0; i < n; ++i) {
    lines.push_back("{\"id\":" + std::to_string(i) + ",\"user\":\"u" + std::to_string(i % 50) +
                    "\",\"amount\":" + std::to_string(i % 1000) + ".5,\"ts\":" + std::to_string(1'700'000'000'000LL + i * 10) +
                    "}");
  }
  it::write_lines(path, lines);
}

struct Row {
  int64_t id;
  double score;
};

/// The scored rows in file order; a bad row fails the test.
std::vector<Row> read_rows(const std::string& path) {
  std::vector<Row> rows;
  simdjson::dom::parser parser;
  for (const auto& line : it::read_lines(path)) {
    simdjson::dom::element doc;
    Row r{};
    if (parser.parse(line).get(doc) || doc["id"].get(r.id) || doc["score"].get(r.score)) {
      ADD_FAILURE() << "bad output line in " << path << ": " << line;
      continue;
    }
    rows.push_back(r);
  }
  return rows;
}

/// Every id of 0..n-1 exactly once across `rows` and `dead` (dead-letter
/// payloads), with the right score.
void expect_each_once(const std::vector<Row>& rows, const std::vector<int64_t>& dead, int n) {
  std::map<int64_t, int> seen;
  for (const auto& r : rows) {
    ++seen[r.id];
    EXPECT_DOUBLE_EQ(r.score, expected_score(r.id)) << "id " << r.id;
  }
  for (int64_t id : dead) ++seen[id];
  int missing = 0, doubled = 0;
  for (int i = 0; i < n; ++i) {
    int c = seen.count(i) ? seen[i] : 0;
    if (c == 0 && missing++ < 5) ADD_FAILURE() << "id " << i << " lost";
    if (c > 1 && doubled++ < 5) ADD_FAILURE() << "id " << i << " emitted " << c << " times";
  }
  EXPECT_EQ(missing, 0);
  EXPECT_EQ(doubled, 0);
  EXPECT_EQ(seen.size(), static_cast<size_t>(n)) << "ids that were never input";
}

/// Ids of the dead letters (their payload is the record as JSON).
std::vector<int64_t> dead_ids(const std::string& path, const std::string& must_contain) {
  std::vector<int64_t> ids;
  simdjson::dom::parser parser, inner;
  for (const auto& dl : it::read_dead_letters(path)) {
    EXPECT_NE(dl.reason.find(must_contain), std::string::npos) << dl.reason;
    simdjson::dom::element doc;
    int64_t id;
    if (inner.parse(dl.payload).get(doc) || doc["id"].get(id)) {
      ADD_FAILURE() << "dead letter without the record: " << dl.payload;
      continue;
    }
    ids.push_back(id);
  }
  return ids;
}

std::vector<std::string> run_args(const std::string& input, const std::string& out, const std::string& dlq,
                                  const std::vector<std::string>& job_args, int p = 2) {
  std::vector<std::string> argv = {it::sluice_binary(), "run-local", job_library(), "-p", std::to_string(p),
                                   "--arg", "source=file://" + input, "--arg", "sink=file://" + out,
                                   "--arg", "dlq=file://" + dlq};
  for (const auto& a : job_args) {
    argv.push_back("--arg");
    argv.push_back(a);
  }
  return argv;
}

TEST(AsyncJob, UnorderedOverHttpWithFailuresAndRetriesScoresEveryRecordOnce) {
  HttpServerOptions so;
  so.seed = 11;
  so.min_latency_us = 1'000;
  so.max_latency_us = 20'000;
  so.failure_rate = 0.1;
  auto server = HttpTestServer::start(so);
  ASSERT_TRUE(server.is_ok()) << server.status().to_string();
  it::TempDir dir;
  constexpr int kN = 3000;
  write_input(dir.file("in.ndjson"), kN);
  auto argv = run_args(dir.file("in.ndjson"), dir.file("out.ndjson"), dir.file("dlq.ndjson"),
                       {"protocol=http", "endpoint=" + (*server)->url("/score"), "mode=unordered", "capacity=200",
                        "attempts=8", "backoff=5ms", "timeout=20s"});
  auto r = it::run_command(argv, 120s);
  ASSERT_EQ(r.exit_code, 0) << r.describe(argv);
  auto rows = read_rows(dir.file("out.ndjson"));
  expect_each_once(rows, dead_ids(dir.file("dlq.ndjson"), ""), kN);
  EXPECT_EQ(rows.size(), static_cast<size_t>(kN));
  EXPECT_GT((*server)->failed(), 100u);  // the retries were needed
  // Completion order is not input order, which unordered mode allows.
  EXPECT_FALSE(std::is_sorted(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.id < b.id; }));
}

TEST(AsyncJob, OrderedOverGrpcKeepsTheInputOrder) {
  GrpcServerOptions so;
  so.seed = 12;
  so.min_latency_us = 0;
  so.max_latency_us = 10'000;
  so.failure_rate = 0.05;
  auto server = GrpcTestServer::start(so);
  ASSERT_TRUE(server.is_ok()) << server.status().to_string();
  it::TempDir dir;
  constexpr int kN = 2000;
  write_input(dir.file("in.ndjson"), kN);
  auto argv = run_args(dir.file("in.ndjson"), dir.file("out.ndjson"), dir.file("dlq.ndjson"),
                       {"protocol=grpc", "endpoint=" + (*server)->address(), "mode=ordered", "capacity=100",
                        "attempts=8", "backoff=5ms", "timeout=20s"},
                       1);
  auto r = it::run_command(argv, 120s);
  ASSERT_EQ(r.exit_code, 0) << r.describe(argv);
  auto rows = read_rows(dir.file("out.ndjson"));
  ASSERT_EQ(rows.size(), static_cast<size_t>(kN));
  for (int i = 0; i < kN; ++i) {
    ASSERT_EQ(rows[i].id, i) << "output not in input order at row " << i;
    EXPECT_DOUBLE_EQ(rows[i].score, expected_score(i));
  }
  EXPECT_GT((*server)->failed(), 20u);
}

class AsyncKillRestore : public ::testing::TestWithParam<std::string> {};

TEST_P(AsyncKillRestore, KilledWithRequestsInFlightAndRestoredEmitsEveryRecordExactlyOnce) {
  const std::string backend = GetParam();
  HttpServerOptions so;
  so.seed = 13;
  so.min_latency_us = 20'000;
  so.max_latency_us = 60'000;
  so.failure_rate = 0.02;
  auto server = HttpTestServer::start(so);
  ASSERT_TRUE(server.is_ok()) << server.status().to_string();
  it::TempDir dir;
  // 4 s of input at 3,000/s: more than three killed runs of at most 1 s get
  // through, so the job is still running at every kill.
  constexpr int kN = 12000;
  write_input(dir.file("in.ndjson"), kN);
  const std::string log = dir.file("runs.log");
  // 3,000 records/s against 20-60 ms answers: ~100 requests in flight all
  // the time, so every kill and every checkpoint has some.
  auto argv = run_args(dir.file("in.ndjson") + "?rate=3000", dir.file("out.ndjson"), dir.file("dlq.ndjson"),
                       {"protocol=http", "endpoint=" + (*server)->url("/score"), "mode=unordered", "capacity=300",
                        "attempts=8", "backoff=5ms", "timeout=20s"});
  argv.insert(argv.end(), {"--checkpoint-dir", dir.file("chk"), "--checkpoint-interval", "200ms", "--set",
                           "state.backend=" + backend});
  if (backend == "rocksdb") argv.insert(argv.end(), {"--set", "state.rocksdb.local-dir=" + dir.file("local")});
  const char* seed_env = std::getenv("SLUICE_KILL_SEED");
  const uint32_t seed = seed_env ? static_cast<uint32_t>(std::strtoul(seed_env, nullptr, 10)) : std::random_device{}();
  SCOPED_TRACE("kill schedule seed " + std::to_string(seed) + " (replay with SLUICE_KILL_SEED); see " + log);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(400, 900);
  struct stat st {};
  for (int kill_no = 0; kill_no < 3; ++kill_no) {
    auto args = argv;
    if (::stat(dir.file("chk/it_async_score").c_str(), &st) == 0) args.insert(args.end(), {"--restore", "latest"});
    int pid = it::start_process(args, log);
    ASSERT_GT(pid, 0);
    int code = it::wait_process(pid, std::chrono::milliseconds(delay_ms(rng)));
    ASSERT_EQ(code, -1) << "run " << kill_no << " ended (exit " << code << ") before it was killed";
    ::kill(pid, SIGKILL);
    ASSERT_EQ(it::wait_process(pid, 10s), 128 + SIGKILL);
  }
  auto args = argv;
  args.insert(args.end(), {"--restore", "latest"});
  int pid = it::start_process(args, log);
  ASSERT_GT(pid, 0);
  int code = it::wait_process(pid, 90s);
  if (code == -1) ::kill(pid, SIGKILL), it::wait_process(pid, 10s);
  ASSERT_EQ(code, 0) << "the last run did not finish";
  auto rows = read_rows(dir.file("out.ndjson"));
  expect_each_once(rows, dead_ids(dir.file("dlq.ndjson"), ""), kN);
  // Records in flight at a checkpoint were called again after the restore.
  EXPECT_GT((*server)->requests(), static_cast<uint64_t>(kN));
}

INSTANTIATE_TEST_SUITE_P(Backends, AsyncKillRestore, ::testing::Values("heap", "rocksdb"),
                         [](const auto& info) { return info.param; });

class AsyncOutage : public ::testing::TestWithParam<std::string> {};

TEST_P(AsyncOutage, AnOutageLongerThanTheTimeoutSendsRecordsToTheTimeoutPathAndLosesNone) {
  const std::string protocol = GetParam();
  std::unique_ptr<HttpTestServer> http;
  std::unique_ptr<GrpcTestServer> grpc;
  std::string endpoint;
  if (protocol == "http") {
    HttpServerOptions so;
    so.seed = 14;
    so.min_latency_us = 1'000;
    so.max_latency_us = 5'000;
    auto s = HttpTestServer::start(so);
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    http = std::move(s).value();
    endpoint = http->url("/score");
  } else {
    GrpcServerOptions so;
    so.seed = 14;
    so.min_latency_us = 1'000;
    so.max_latency_us = 5'000;
    auto s = GrpcTestServer::start(so);
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    grpc = std::move(s).value();
    endpoint = grpc->address();
  }
  it::TempDir dir;
  constexpr int kN = 5000;  // 2.5 s at 2,000/s
  write_input(dir.file("in.ndjson"), kN);
  auto argv = run_args(dir.file("in.ndjson") + "?rate=2000", dir.file("out.ndjson"), dir.file("dlq.ndjson"),
                       {"protocol=" + protocol, "endpoint=" + endpoint, "mode=ordered", "capacity=2000",
                        "attempts=100", "backoff=10ms", "timeout=400ms", "attempt_timeout=100ms"});
  const std::string log = dir.file("run.log");
  int pid = it::start_process(argv, log);
  ASSERT_GT(pid, 0);
  std::this_thread::sleep_for(700ms);
  // Down for 1.2 s: three times the records' timeout.
  if (http) http->down();
  else grpc->down();
  std::this_thread::sleep_for(1200ms);
  Status up = http ? http->up() : grpc->up();
  ASSERT_TRUE(up.is_ok()) << up.to_string();
  int code = it::wait_process(pid, 60s);
  if (code == -1) ::kill(pid, SIGKILL), it::wait_process(pid, 10s);
  ASSERT_EQ(code, 0) << "see " << log;
  auto rows = read_rows(dir.file("out.ndjson"));
  auto dead = dead_ids(dir.file("dlq.ndjson"), "timed out");
  expect_each_once(rows, dead, kN);
  EXPECT_GT(dead.size(), 500u) << "the outage hit too few records";
  EXPECT_GT(rows.size(), 1000u);
}

INSTANTIATE_TEST_SUITE_P(Protocols, AsyncOutage, ::testing::Values("http", "grpc"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace sluice::async_test
