// The distributed runtime end to end: a real jobmanager and taskmanagers,
// each its own process on loopback, started and stopped by the test; jobs
// submitted with `sluice submit`; output compared with a reference computed
// here from the input. Failures are real: kill -9 of a taskmanager or of
// the jobmanager mid-run.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <simdjson.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/async/support/http_test_server.h"
#include "tests/async/support/scoring.h"
#include "tests/cluster/cluster_harness.h"
#include "tests/integration/join_reference.h"

namespace sluice::it {
namespace {

using namespace std::chrono_literals;

/// `sluice stop JOB --savepoint --path DIR`: the savepoint's path, or ""
/// (after a test failure) if the stop failed.
std::string stop_with_savepoint(Cluster& c, const std::string& job, const std::string& dir) {
  auto stop = c.sluice({"stop", job, "--savepoint", "--path", dir, "-o", "json"});
  EXPECT_EQ(stop.exit_code, 0) << stop.err;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string_view path;
  if (parser.parse(stop.out).get(doc) != simdjson::SUCCESS || doc["path"].get(path) != simdjson::SUCCESS) {
    ADD_FAILURE() << "no savepoint path in: " << stop.out;
    return "";
  }
  return std::string(path);
}

TEST(Cluster, ClickstreamOverThreeTaskManagersMatchesTheReference) {
  TempDir dir;
  std::string input = make_input(dir, 100'000);
  Cluster c(dir);
  c.start_jobmanager();
  for (const char* id : {"tm-a", "tm-b", "tm-c"}) c.start_taskmanager(id);
  ASSERT_TRUE(c.wait_for_taskmanagers(3)) << c.logs();

  std::string job = submit_clickstream(c, dir, "file://" + input, 4);
  ASSERT_FALSE(job.empty());
  JobView v = c.wait_for_end(job);
  ASSERT_EQ(v.state, "FINISHED") << v.raw << c.logs();
  EXPECT_GE(v.taskmanagers.size(), 2u) << "subtasks should spread over taskmanagers: " << v.raw;
  EXPECT_EQ(v.restarts, 0);

  Counts got = counts_of(read_page_counts(dir.file("counts.ndjson")));
  Counts want = expected_counts(input, 10'000);
  EXPECT_EQ(diff_counts(want, got), "");

  // The jobmanager's HTTP status says the same, as JSON.
  auto http = run_command({"/usr/bin/curl", "-sf", "http://" + slurp(c.data_dir() + "/http.address") + "/jobs/" + job}, 5s);
  ASSERT_EQ(http.exit_code, 0) << http.err;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(http.out).get(doc), simdjson::SUCCESS) << http.out;
  std::string_view state;
  ASSERT_EQ(doc["state"].get(state), simdjson::SUCCESS);
  EXPECT_EQ(state, "FINISHED");
  simdjson::dom::array subtasks;
  ASSERT_EQ(doc["subtasks"].get(subtasks), simdjson::SUCCESS);
  EXPECT_EQ(subtasks.size(), 10u) << "1 dead-letter + 4 sources + 4 windows + 1 sink";

  auto list = c.sluice({"list"}, false);
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_NE(list.out.find(job), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("FINISHED"), std::string::npos) << list.out;
}

TEST(Cluster, KilledTaskManagerRestartsTheJobFromItsCheckpointExactlyOnce) {
  TempDir dir;
  std::string input = make_input(dir, 60'000, 11);
  Cluster c(dir);
  c.start_jobmanager();
  for (const char* id : {"tm-a", "tm-b", "tm-c"}) c.start_taskmanager(id);
  ASSERT_TRUE(c.wait_for_taskmanagers(3)) << c.logs();

  // Paced so that the kill lands mid-run, after checkpoints completed.
  std::string job = submit_clickstream(c, dir, "file://" + input + "?rate=2500", 4);
  ASSERT_FALSE(job.empty());
  JobView v = c.wait_for_checkpoints(job, 2);
  ASSERT_TRUE(v.state == "RUNNING" && v.completed_checkpoints >= 2) << v.raw << c.logs();
  // Kill a taskmanager that runs part of the job.
  std::string victim = *v.taskmanagers.begin();
  c.taskmanager(victim).kill(SIGKILL);

  v = c.wait_for_end(job, 180s);
  ASSERT_EQ(v.state, "FINISHED") << v.raw << c.logs();
  EXPECT_GE(v.restarts, 1);
  EXPECT_EQ(v.taskmanagers.count(victim), 0u) << "restarted on the remaining taskmanagers: " << v.raw;
  ASSERT_FALSE(v.restart_causes.empty());
  EXPECT_NE(v.restart_causes[0].find("fail"), std::string::npos) << v.restart_causes[0];

  Counts got = counts_of(read_page_counts(dir.file("counts.ndjson")));  // a duplicate row fails here
  Counts want = expected_counts(input, 10'000);
  EXPECT_EQ(diff_counts(want, got), "") << c.logs();
}

TEST(Cluster, RestartedJobManagerResumesTheJobFromItsCheckpoint) {
  TempDir dir;
  std::string input = make_input(dir, 40'000, 13);
  Cluster c(dir);
  c.start_jobmanager();
  for (const char* id : {"tm-a", "tm-b"}) c.start_taskmanager(id);
  ASSERT_TRUE(c.wait_for_taskmanagers(2)) << c.logs();

  std::string job = submit_clickstream(c, dir, "file://" + input + "?rate=2500", 2);
  ASSERT_FALSE(job.empty());
  JobView v = c.wait_for_checkpoints(job, 2);
  ASSERT_TRUE(v.state == "RUNNING" && v.completed_checkpoints >= 2) << v.raw << c.logs();
  std::string address = c.address();
  c.jobmanager().kill(SIGKILL);
  std::this_thread::sleep_for(500ms);
  c.start_jobmanager(address);  // same data dir, same address: the taskmanagers come back

  v = c.wait_for_end(job, 180s);
  ASSERT_EQ(v.state, "FINISHED") << v.raw << c.logs();
  Counts got = counts_of(read_page_counts(dir.file("counts.ndjson")));
  Counts want = expected_counts(input, 10'000);
  EXPECT_EQ(diff_counts(want, got), "") << c.logs();
}

TEST(Cluster, StopWithSavepointAndRestoreAtAnotherParallelismKeepsEveryCount) {
  TempDir dir;
  std::string input = make_input(dir, 30'000, 17);
  Cluster c(dir);
  c.start_jobmanager();
  for (const char* id : {"tm-a", "tm-b"}) c.start_taskmanager(id);
  ASSERT_TRUE(c.wait_for_taskmanagers(2)) << c.logs();

  std::string job = submit_clickstream(c, dir, "file://" + input + "?rate=3000", 2);
  ASSERT_FALSE(job.empty());
  JobView v = c.wait_for_checkpoints(job, 1);
  ASSERT_TRUE(v.state == "RUNNING" && v.completed_checkpoints >= 1) << v.raw << c.logs();
  auto sp = c.sluice({"savepoint", job});
  ASSERT_EQ(sp.exit_code, 0) << sp.err << c.logs();
  EXPECT_NE(sp.out.find("savepoint-"), std::string::npos) << sp.out;

  std::string path = stop_with_savepoint(c, job, dir.file("savepoints"));
  ASSERT_EQ(path.rfind(dir.file("savepoints"), 0), 0u) << path << c.logs();
  EXPECT_EQ(c.status(job).state, "FINISHED");

  // Not all input was read before the stop; the rest comes after the restore.
  std::string job2 = submit_clickstream(c, dir, "file://" + input, 3, {"--restore", path});
  ASSERT_FALSE(job2.empty());
  v = c.wait_for_end(job2);
  ASSERT_EQ(v.state, "FINISHED") << v.raw << c.logs();
  Counts got = counts_of(read_page_counts(dir.file("counts.ndjson")));
  Counts want = expected_counts(input, 10'000);
  EXPECT_EQ(diff_counts(want, got), "") << c.logs();
}

// Broadcast state on the cluster: rules broadcast to a keyed stream
// (it_rules_job, see tests/integration/rescale_test.cc for run-local),
// stopped with a savepoint at parallelism 2 and restored at 3 on two
// taskmanagers: every due alert exactly once.
TEST(Cluster, BroadcastRulesSurviveStopWithSavepointAndRestoreFromTwoToThree) {
  TempDir dir;
  const auto expected = write_rules_input(dir.file("spends.ndjson"), dir.file("rules.ndjson"),
                                          /*spends=*/12'000, /*users=*/300, /*rules=*/30, /*seed=*/11);
  Cluster c(dir);
  c.start_jobmanager();
  for (const char* id : {"tm-a", "tm-b"}) c.start_taskmanager(id);
  ASSERT_TRUE(c.wait_for_taskmanagers(2)) << c.logs();
  auto submit = [&](int parallelism, std::vector<std::string> extra) {
    std::vector<std::string> args = {"submit", rules_library(), "--parallelism", std::to_string(parallelism),
                                     "--arg", "spends=" + dir.uri("spends.ndjson") + "?rate=3000",
                                     "--arg", "rules=" + dir.uri("rules.ndjson") + "?rate=8",
                                     "--arg", "sink=" + dir.uri("alerts.ndjson"),
                                     "--arg", "dlq=" + dir.uri("dlq.ndjson")};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = c.sluice(args);
    EXPECT_EQ(r.exit_code, 0) << r.describe(args) << c.logs();
    return r.out.substr(0, r.out.find('\n'));
  };
  std::string job = submit(2, {});
  JobView v = c.wait_for_checkpoints(job, 2);
  ASSERT_TRUE(v.state == "RUNNING" && v.completed_checkpoints >= 2) << v.raw << c.logs();
  std::string path = stop_with_savepoint(c, job, dir.file("savepoints"));
  ASSERT_FALSE(path.empty()) << c.logs();
  const size_t alerts_before = read_alerts(dir.file("alerts.ndjson")).size();

  std::string job2 = submit(3, {"--restore", path});
  v = c.wait_for_end(job2);
  ASSERT_EQ(v.state, "FINISHED") << v.raw << c.logs();
  std::multiset<std::pair<std::string, std::string>> got;
  for (const auto& a : read_alerts(dir.file("alerts.ndjson"))) got.insert({a.user, a.rule});
  size_t wrong = 0;
  for (const auto& e : expected) wrong += got.count(e) == 1 ? 0 : 1;
  for (const auto& g : got) wrong += expected.count(g) ? 0 : 1;
  EXPECT_EQ(wrong, 0u) << "of " << expected.size() << " alerts";
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_LT(alerts_before, expected.size()) << "the first job was not stopped mid-stream";
}

TEST(Cluster, IntervalAndLeftOuterSessionJoinsAtParallelismFourMatchNestedLoopJoins) {
  TempDir dir;
  std::mt19937 rng(20);
  const auto left = random_events(rng, 3000, 50, 0);
  const auto right = random_events(rng, 3000, 50, 1'000'000);
  write_events(dir.file("left.ndjson"), left);
  write_events(dir.file("right.ndjson"), right);
  Cluster c(dir);
  c.start_jobmanager();
  for (const char* id : {"tm-a", "tm-b"}) c.start_taskmanager(id);
  ASSERT_TRUE(c.wait_for_taskmanagers(2)) << c.logs();
  Spec interval;
  Spec sessions;
  sessions.mode = "left-outer";
  sessions.window = "session";
  for (const Spec& spec : {interval, sessions}) {
    SCOPED_TRACE(spec.name());
    const std::string out = dir.file("rows-" + spec.mode + ".ndjson");
    std::vector<std::string> args = {"submit", join_library(), "--parallelism", "4",
                                     "--arg", "left=" + dir.uri("left.ndjson"), "--arg", "right=" + dir.uri("right.ndjson"),
                                     "--arg", "sink=file://" + out};
    for (const auto& a : spec.args()) args.push_back(a);
    auto r = c.sluice(args);
    ASSERT_EQ(r.exit_code, 0) << r.describe(args) << c.logs();
    std::string job = r.out.substr(0, r.out.find('\n'));
    JobView v = c.wait_for_end(job);
    ASSERT_EQ(v.state, "FINISHED") << v.raw << c.logs();
    const auto want = reference(spec, left, right);
    const auto got = read_rows(out);
    ASSERT_GT(want.size(), 100u);
    EXPECT_TRUE(got == want) << diff(want, got);
  }
}

TEST(Cluster, SlowSinkBackpressuresTheSourcesWithoutLosingRecords) {
  TempDir dir;
  std::string input = make_input(dir, 60'000, 19);
  Cluster c(dir);
  c.start_jobmanager();
  for (const char* id : {"tm-a", "tm-b"}) c.start_taskmanager(id, 1);  // so the sink's inputs cross the network
  ASSERT_TRUE(c.wait_for_taskmanagers(2)) << c.logs();
  std::vector<std::string> args = {"submit", build_dir() + "/tests/cluster/jobs/libit_slow_sink_job.so",
                                   "--parallelism", "2", "--arg", "source=file://" + input,
                                   "--arg", "sink=" + dir.uri("out.ndjson"), "--arg", "dlq=" + dir.uri("dlq.ndjson"),
                                   "--arg", "delay_us=200"};
  auto r = c.sluice(args);
  ASSERT_EQ(r.exit_code, 0) << r.describe(args) << c.logs();
  std::string job = r.out.substr(0, r.out.find('\n'));

  // A fast source alone reads 60k lines in well under a second; held back by
  // the sink (< 5k records/s) it is still far from done after two seconds,
  // and what it has emitted beyond what the sink took is bounded by the
  // channels' buffers (a few dozen 32 KiB buffers).
  std::this_thread::sleep_for(2500ms);
  auto st = run_command({"/usr/bin/curl", "-sf", "http://" + slurp(c.data_dir() + "/http.address") + "/jobs/" + job}, 5s);
  ASSERT_EQ(st.exit_code, 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(st.out).get(doc), simdjson::SUCCESS) << st.out;
  int64_t emitted = 0, sunk = 0;
  int64_t source_vertex = -1, sink_vertex = -1;
  simdjson::dom::array vertices;
  ASSERT_EQ(doc["vertices"].get(vertices), simdjson::SUCCESS);
  for (auto vx : vertices) {
    int64_t id = 0;
    std::string_view name;
    if (vx["id"].get(id) != simdjson::SUCCESS) continue;
    if (vx["name"].get(name) != simdjson::SUCCESS) continue;
    if (name == "clicks") source_vertex = id;
    if (name == "slow sink") sink_vertex = id;
  }
  ASSERT_GE(source_vertex, 0) << st.out;
  ASSERT_GE(sink_vertex, 0) << st.out;
  simdjson::dom::array subtasks;
  ASSERT_EQ(doc["subtasks"].get(subtasks), simdjson::SUCCESS);
  for (auto t : subtasks) {
    int64_t vertex = 0, in = 0, out = 0;
    if (t["vertex"].get(vertex) != simdjson::SUCCESS) continue;
    if (t["records_in"].get(in) != simdjson::SUCCESS) continue;
    if (t["records_out"].get(out) != simdjson::SUCCESS) continue;
    if (vertex == source_vertex) emitted += out;
    if (vertex == sink_vertex) sunk += in;
  }
  EXPECT_LT(emitted, 45'000) << "the sources were not held back: " << st.out;
  EXPECT_GT(sunk, 0) << st.out;
  EXPECT_LT(emitted - sunk, 25'000) << "more in flight than the channels hold: " << st.out;

  JobView v = c.wait_for_end(job, 120s);
  ASSERT_EQ(v.state, "FINISHED") << v.raw << c.logs();
  std::vector<Click> want;
  for (const auto& l : read_input(input))
    if (l.click) want.push_back(*l.click);
  std::vector<Click> got = read_clicks(dir.file("out.ndjson"));
  std::vector<Click> missing;
  auto extra = multiset_minus(got, want, &missing);
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(missing.empty()) << missing.size() << " records lost";
  EXPECT_TRUE(extra.empty()) << extra.size() << " records duplicated";
}

TEST(Cluster, SettingsComeFromAConfigFileAndTheEnvironmentWithFlagsWinning) {
  TempDir dir;
  Cluster c(dir);
  c.start_jobmanager();
  // The taskmanager's slots from a file, its id from the environment; the
  // flag --slots given too wins over the file.
  write_file(dir.file("tm.toml"), "slots = 3\nwork-dir = \"" + dir.file("tm-work") + "\"\n");
  setenv("SLUICE_JOBMANAGER", c.address().c_str(), 1);
  std::string token = c.data_dir() + "/token";
  Child tm({sluice_binary(), "taskmanager", "--config", dir.file("tm.toml"), "--id", "tm-cfg", "--token-file", token},
           dir.file("cfg.log"));
  Child tm2({sluice_binary(), "taskmanager", "--config", dir.file("tm.toml"), "--slots", "1", "--id", "tm-flag",
             "--token-file", token},
            dir.file("flag.log"));
  unsetenv("SLUICE_JOBMANAGER");
  ASSERT_TRUE(c.wait_for_taskmanagers(2)) << tm.log() << tm2.log();
  auto http = run_command({"/usr/bin/curl", "-sf", "http://" + slurp(c.data_dir() + "/http.address") + "/taskmanagers"}, 5s);
  EXPECT_NE(http.out.find("\"id\":\"tm-cfg\",\"control_address\""), std::string::npos) << http.out;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(http.out).get(doc), simdjson::SUCCESS) << http.out;
  std::map<std::string, int64_t> slots;
  for (auto t : doc.get_array()) {
    std::string_view id;
    int64_t n = 0;
    if (t["id"].get(id) != simdjson::SUCCESS) continue;
    if (t["slots"].get(n) != simdjson::SUCCESS) continue;
    slots[std::string(id)] = n;
  }
  EXPECT_EQ(slots["tm-cfg"], 3);
  EXPECT_EQ(slots["tm-flag"], 1);
  EXPECT_TRUE(std::filesystem::exists(dir.file("tm-work"))) << "work-dir came from the file";
}

TEST(Cluster, SubmitWithoutTheTokenIsRefused) {
  TempDir dir;
  std::string input = make_input(dir, 100);
  Cluster c(dir);
  c.start_jobmanager();
  c.start_taskmanager("tm-a");
  ASSERT_TRUE(c.wait_for_taskmanagers(1)) << c.logs();
  std::vector<std::string> args = {"submit", clickstream_library(), "--arg", "source=file://" + input,
                                   "--jobmanager", c.address()};
  // The message says what to fix: every way to give the token, where it
  // is, and (when deploy/local's env file exists) which file to source.
  ::setenv("SLUICE_LOCAL_DIR", dir.path().c_str(), 1);
  write_file(dir.file("env"), "export SLUICE_TOKEN_FILE=" + c.data_dir() + "/token\n");
  auto r = run_sluice(args);
  ::unsetenv("SLUICE_LOCAL_DIR");
  EXPECT_EQ(r.exit_code, 3) << r.describe(args);
  for (const char* fix : {"none was sent", "--token-file PATH", "SLUICE_TOKEN_FILE=PATH", "SLUICE_TOKEN=<token>",
                          "jobmanager's --data-dir"}) {
    EXPECT_NE(r.err.find(fix), std::string::npos) << "names " << fix << ": " << r.err;
  }
  EXPECT_NE(r.err.find(". " + dir.file("env")), std::string::npos) << "names the env file: " << r.err;

  write_file(dir.file("wrong-token"), "not-the-token\n");
  args.insert(args.end(), {"--token-file", dir.file("wrong-token")});
  r = run_sluice(args);
  EXPECT_EQ(r.exit_code, 3) << r.describe(args);
  EXPECT_NE(r.err.find("not this cluster's token"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("token from --token-file " + dir.file("wrong-token")), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("deploy/local"), std::string::npos) << "a token was sent: no env-file hint\n" << r.err;

  auto list = c.sluice({"list", "-o", "json"}, false);
  EXPECT_EQ(list.out, "[]\n") << "nothing was submitted";
  EXPECT_NE(slurp(dir.file("jobmanager.log")).find("refused submit"), std::string::npos) << "refusals are logged";
}

TEST(Cluster, TamperedLibraryIsRefusedByTheTaskManager) {
  TempDir dir;
  std::string input = make_input(dir, 1000);
  Cluster c(dir);
  c.start_jobmanager();
  c.start_taskmanager("tm-a");
  ASSERT_TRUE(c.wait_for_taskmanagers(1)) << c.logs();
  std::string job = submit_clickstream(c, dir, "file://" + input, 1);
  ASSERT_EQ(c.wait_for_end(job).state, "FINISHED") << c.logs();

  // Change the library the taskmanager cached: the next job using it must not load it.
  std::string cached;
  for (const auto& e : std::filesystem::directory_iterator(dir.file("tm-tm-a") + "/artifacts")) cached = e.path();
  ASSERT_FALSE(cached.empty());
  {
    std::fstream f(cached, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);
    f.put('\x7f');
  }
  std::string job2 = submit_clickstream(c, dir, "file://" + input, 1);
  JobView v = c.wait_for_end(job2, 60s);
  EXPECT_EQ(v.state, "FAILED") << v.raw;
  EXPECT_NE(v.raw.find("sha256"), std::string::npos) << v.raw;
}

TEST(Cluster, CommandsSayWhatToDoWhenTheyCannotBeCarriedOut) {
  TempDir dir;
  auto r = run_sluice({"list", "--jobmanager", "127.0.0.1:1"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("unreachable"), std::string::npos) << r.err;

  Cluster c(dir);
  c.start_jobmanager();
  c.start_taskmanager("tm-a", 1);
  ASSERT_TRUE(c.wait_for_taskmanagers(1)) << c.logs();
  r = c.sluice({"status", "no-such-job"}, false);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("unknown job id"), std::string::npos) << r.err;

  std::string input = make_input(dir, 100);
  r = c.sluice({"submit", clickstream_library(), "--parallelism", "3", "--arg", "source=file://" + input});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("not enough slots"), std::string::npos) << r.err;

  r = c.sluice({"submit", dir.file("missing.so"), "--arg", "source=file://" + input});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("missing.so"), std::string::npos) << r.err;

  // An exactly-once Kafka sink whose transactions would time out before a
  // checkpoint completes is refused at submission, before anything runs.
  r = c.sluice({"submit", clickstream_library(), "--checkpoint-interval", "2m", "--arg", "source=file://" + input,
                "--arg", "sink=kafka://127.0.0.1:1/out?delivery=exactly-once&transaction.timeout=30s"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("transaction.timeout"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("checkpoint.interval"), std::string::npos) << r.err;
  auto list = c.sluice({"list", "-o", "json"}, false);
  EXPECT_EQ(list.out, "[]\n") << "nothing was submitted";
}

// Async I/O on the cluster: the it_async_score job (tests/async) calls a
// real HTTP server in this process with ~100 requests in flight; a
// taskmanager running part of it is killed; after the restart from the
// checkpoint (which holds the records in flight) every transaction is in
// the exactly-once output once, with its score.
TEST(Cluster, AsyncIoJobSurvivesAKilledTaskManagerWithRequestsInFlightExactlyOnce) {
  async_test::HttpServerOptions so;
  so.seed = 21;
  so.min_latency_us = 20'000;
  so.max_latency_us = 60'000;
  auto server = async_test::HttpTestServer::start(so);
  ASSERT_TRUE(server.is_ok()) << server.status().to_string();
  TempDir dir;
  constexpr int kN = 10'000;
  std::vector<std::string> lines;
  for (int i = 0; i < kN; ++i) {
    lines.push_back("{\"id\":" + std::to_string(i) + ",\"user\":\"u\",\"amount\":1.5,\"ts\":" +
                    std::to_string(1'700'000'000'000LL + i) + "}");
  }
  write_lines(dir.file("txns.ndjson"), lines);
  Cluster c(dir);
  c.start_jobmanager();
  for (const char* id : {"tm-a", "tm-b", "tm-c"}) c.start_taskmanager(id, 1);
  ASSERT_TRUE(c.wait_for_taskmanagers(3)) << c.logs();
  std::vector<std::string> args = {"submit", build_dir() + "/tests/async/libit_async_score_job.so",
                                   "--parallelism", "2", "--arg", "source=" + dir.uri("txns.ndjson") + "?rate=2500",
                                   "--arg", "sink=" + dir.uri("out.ndjson"), "--arg", "dlq=" + dir.uri("dlq.ndjson"),
                                   "--arg", "protocol=http", "--arg", "endpoint=" + (*server)->url("/score"),
                                   "--arg", "capacity=300", "--arg", "timeout=30s"};
  auto r = c.sluice(args);
  ASSERT_EQ(r.exit_code, 0) << r.describe(args) << c.logs();
  std::string job = r.out.substr(0, r.out.find('\n'));
  JobView v = c.wait_for_checkpoints(job, 2);
  ASSERT_TRUE(v.state == "RUNNING" && v.completed_checkpoints >= 2) << v.raw << c.logs();
  std::string victim = *v.taskmanagers.begin();
  c.taskmanager(victim).kill(SIGKILL);
  v = c.wait_for_end(job, 180s);
  ASSERT_EQ(v.state, "FINISHED") << v.raw << c.logs();
  EXPECT_GE(v.restarts, 1);

  std::map<int64_t, int> seen;
  simdjson::dom::parser parser;
  for (const auto& line : read_lines(dir.file("out.ndjson"))) {
    simdjson::dom::element doc;
    int64_t id;
    double score;
    ASSERT_FALSE(parser.parse(line).get(doc) || doc["id"].get(id) || doc["score"].get(score)) << line;
    ++seen[id];
    EXPECT_DOUBLE_EQ(score, async_test::expected_score(id));
  }
  int lost = 0, doubled = 0;
  for (int i = 0; i < kN; ++i) {
    lost += seen.count(i) ? 0 : 1;
    doubled += seen.count(i) && seen[i] > 1 ? 1 : 0;
  }
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(doubled, 0);
  EXPECT_TRUE(read_lines(dir.file("dlq.ndjson")).empty());
  EXPECT_GT((*server)->requests(), static_cast<uint64_t>(kN));  // in-flight records called again after the restart
}

// CEP on the cluster: the fraud pattern of it_cep_job (five or more failed
// logins, then a purchase from a new device, within 10 minutes) at
// parallelism 4 over three taskmanagers, one killed mid-run after
// checkpoints; the job restarts from its checkpoint (partial matches,
// buffered events, deadlines) and its exactly-once sinks end with the alerts
// and timeouts of an undisturbed run-local run at parallelism 2.
TEST(Cluster, CepJobSurvivesAKilledTaskManagerWithTheUndisturbedMatches) {
  TempDir dir;
  write_cep_activity(dir.file("in.ndjson"), 40'000, 7, 1000, 30);
  auto job_args = [&](const std::string& out, int parallelism) {
    return std::vector<std::string>{"--parallelism", std::to_string(parallelism), "--arg", "pattern=fraud",
                                    "--arg", "sink=" + dir.uri(out + "-alerts.ndjson"),
                                    "--arg", "timeouts=" + dir.uri(out + "-timeouts.ndjson"),
                                    "--arg", "dlq=" + dir.uri(out + "-dlq.ndjson")};
  };
  std::vector<std::string> local = {"run-local", cep_library(), "--arg", "source=" + dir.uri("in.ndjson")};
  for (const auto& a : job_args("plain", 2)) local.push_back(a);
  auto plain = run_sluice(local);
  ASSERT_EQ(plain.exit_code, 0) << plain.describe(local);
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  const auto want_alerts = sorted(read_lines(dir.file("plain-alerts.ndjson")));
  const auto want_timeouts = sorted(read_lines(dir.file("plain-timeouts.ndjson")));
  ASSERT_GT(want_alerts.size(), 20u);

  Cluster c(dir);
  c.start_jobmanager();
  for (const char* id : {"tm-a", "tm-b", "tm-c"}) c.start_taskmanager(id, 2);
  ASSERT_TRUE(c.wait_for_taskmanagers(3)) << c.logs();
  std::vector<std::string> args = {"submit", cep_library(), "--arg", "source=" + dir.uri("in.ndjson") + "?rate=2000"};
  for (const auto& a : job_args("cluster", 4)) args.push_back(a);
  auto r = c.sluice(args);
  ASSERT_EQ(r.exit_code, 0) << r.describe(args) << c.logs();
  std::string job = r.out.substr(0, r.out.find('\n'));
  JobView v = c.wait_for_checkpoints(job, 2);
  ASSERT_TRUE(v.state == "RUNNING" && v.completed_checkpoints >= 2) << v.raw << c.logs();
  c.taskmanager(*v.taskmanagers.begin()).kill(SIGKILL);
  v = c.wait_for_end(job, 180s);
  ASSERT_EQ(v.state, "FINISHED") << v.raw << c.logs();
  EXPECT_GE(v.restarts, 1);
  EXPECT_EQ(sorted(read_lines(dir.file("cluster-alerts.ndjson"))), want_alerts);
  EXPECT_EQ(sorted(read_lines(dir.file("cluster-timeouts.ndjson"))), want_timeouts);
  EXPECT_TRUE(read_lines(dir.file("cluster-dlq.ndjson")).empty());
}

}  // namespace
}  // namespace sluice::it
