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
#include "tests/integration/support.h"

extern char** environ;

namespace sluice::it {
namespace {

using namespace std::chrono_literals;

/// A background child process with stdout+stderr in a log file. Killed
/// (SIGKILL) when the object goes, if still running.
class Child {
 public:
  Child(std::vector<std::string> argv, std::string log) : argv_(std::move(argv)), log_(std::move(log)) { start(); }
  ~Child() { kill(SIGKILL); }
  void start() {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    std::vector<char*> args;
    for (auto& a : argv_) args.push_back(a.data());
    args.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) pid_ = -1;
  }
  /// Sends `sig` and reaps the child.
  void kill(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }
  bool running() {
    if (pid_ <= 0) return false;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }
  std::string log() const {
    std::ifstream in(log_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  std::vector<std::string> argv_;
  std::string log_;
  pid_t pid_ = -1;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  std::string t = s.str();
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t;
}

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return cond();
}

/// What `sluice status JOB -o json` says, read with simdjson.
struct JobView {
  bool ok = false;
  std::string state;
  int64_t restarts = 0;
  int64_t completed_checkpoints = 0;
  std::set<std::string> taskmanagers;  // where subtasks run
  std::vector<std::string> restart_causes;
  std::string raw;
};

/// A jobmanager and taskmanagers in one scratch directory.
class Cluster {
 public:
  explicit Cluster(const TempDir& dir) : dir_(dir) {}

  std::string data_dir() const { return dir_.file("jm"); }
  const std::string& address() const { return address_; }

  void start_jobmanager(const std::string& bind = "127.0.0.1:0") {
    std::filesystem::create_directories(data_dir());
    std::filesystem::remove(data_dir() + "/jobmanager.address");
    jm_ = std::make_unique<Child>(
        std::vector<std::string>{sluice_binary(), "jobmanager", "--bind", bind, "--http-bind", "127.0.0.1:0",
                                 "--data-dir", data_dir(), "--heartbeat-timeout", "2s", "--checkpoint-interval",
                                 "300ms"},
        dir_.file("jobmanager.log"));
    ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(data_dir() + "/jobmanager.address"); }, 20s))
        << slurp(dir_.file("jobmanager.log"));
    address_ = slurp(data_dir() + "/jobmanager.address");
    token_file_ = data_dir() + "/token";
  }
  Child& jobmanager() { return *jm_; }

  void start_taskmanager(const std::string& id, int slots = 2) {
    tms_[id] = std::make_unique<Child>(
        std::vector<std::string>{sluice_binary(), "taskmanager", "--jobmanager", address_, "--slots",
                                 std::to_string(slots), "--id", id, "--work-dir", dir_.file("tm-" + id)},
        dir_.file(id + ".log"));
  }
  Child& taskmanager(const std::string& id) { return *tms_.at(id); }

  /// Waits until `n` taskmanagers are registered (HTTP status).
  bool wait_for_taskmanagers(size_t n) {
    return wait_until([&] { return registered() >= n; }, 20s);
  }
  size_t registered() {
    auto r = run_sluice({"list", "--jobmanager", address_});  // reachability first
    if (r.exit_code != 0) return 0;
    std::string http = slurp(data_dir() + "/http.address");
    auto c = run_command({"/usr/bin/curl", "-sf", "http://" + http + "/taskmanagers"}, 5s);
    if (c.exit_code != 0) return 0;
    size_t n = 0;
    for (size_t p = 0; (p = c.out.find("\"id\":", p)) != std::string::npos; ++p) ++n;
    return n;
  }

  CommandResult sluice(std::vector<std::string> args, bool with_token = true) {
    args.insert(args.end(), {"--jobmanager", address_});
    if (with_token) args.insert(args.end(), {"--token-file", token_file_});
    return run_sluice(args);
  }

  JobView status(const std::string& job) {
    JobView v;
    auto r = sluice({"status", job, "-o", "json"}, false);
    if (r.exit_code != 0) return v;
    v.raw = r.out;
    simdjson::dom::parser p;
    simdjson::dom::element doc;
    if (p.parse(r.out).get(doc) != simdjson::SUCCESS) return v;
    std::string_view s;
    if (doc["job"]["state"].get(s) == simdjson::SUCCESS) v.state = std::string(s);
    int64_t n = 0;
    if (doc["job"]["restarts"].get(n) == simdjson::SUCCESS) v.restarts = n;
    if (doc["checkpoints"]["completed"].get(n) == simdjson::SUCCESS) v.completed_checkpoints = n;
    simdjson::dom::array subtasks;
    if (doc["subtasks"].get(subtasks) == simdjson::SUCCESS) {
      for (auto t : subtasks) {
        std::string_view tm;
        if (t["taskmanager"].get(tm) == simdjson::SUCCESS) v.taskmanagers.insert(std::string(tm));
      }
    }
    simdjson::dom::array causes;
    if (doc["restart_causes"].get(causes) == simdjson::SUCCESS) {
      for (auto c : causes) {
        std::string_view cs;
        if (c.get(cs) == simdjson::SUCCESS) v.restart_causes.emplace_back(cs);
      }
    }
    v.ok = true;
    return v;
  }

  /// Waits until the job runs and has completed `n` checkpoints.
  JobView wait_for_checkpoints(const std::string& job, int64_t n, std::chrono::milliseconds timeout = 60s) {
    JobView v;
    wait_until(
        [&] {
          v = status(job);
          return v.state == "RUNNING" && v.completed_checkpoints >= n;
        },
        timeout);
    return v;
  }

  /// Waits until the job is in a terminal state; returns the last view.
  JobView wait_for_end(const std::string& job, std::chrono::milliseconds timeout = 120s) {
    JobView v;
    wait_until(
        [&] {
          v = status(job);
          return v.state == "FINISHED" || v.state == "FAILED" || v.state == "CANCELED";
        },
        timeout);
    return v;
  }

  std::string logs() {
    std::string out = "--- jobmanager\n" + slurp(dir_.file("jobmanager.log"));
    for (auto& [id, tm] : tms_) out += "\n--- " + id + "\n" + tm->log();
    return out.size() > 20000 ? out.substr(out.size() - 20000) : out;
  }

 private:
  const TempDir& dir_;
  std::unique_ptr<Child> jm_;
  std::map<std::string, std::unique_ptr<Child>> tms_;
  std::string address_;
  std::string token_file_;
};

/// Generated clicks with out-of-order events and malformed lines.
std::string make_input(const TempDir& dir, int64_t count, uint64_t seed = 7) {
  std::string path = dir.file("clicks.ndjson");
  auto r = run_sluice({"gen", "--count", std::to_string(count), "--seed", std::to_string(seed), "--output", path});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return path;
}

Counts expected_counts(const std::string& input, int64_t window_ms) {
  std::vector<Click> clicks;
  for (const auto& l : read_input(input))
    if (l.click) clicks.push_back(*l.click);
  return reference_counts(clicks, window_ms);
}

/// Submits clickstream with a file sink (exactly-once with checkpoints).
std::string submit_clickstream(Cluster& c, const TempDir& dir, const std::string& source, int parallelism,
                               std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"submit",
                                   clickstream_library(),
                                   "--parallelism",
                                   std::to_string(parallelism),
                                   "--arg",
                                   "source=" + source,
                                   "--arg",
                                   "sink=" + dir.uri("counts.ndjson"),
                                   "--arg",
                                   "dlq=" + dir.uri("dlq.ndjson"),
                                   "--arg",
                                   "window=10s"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = c.sluice(args);
  EXPECT_EQ(r.exit_code, 0) << r.describe(args) << c.logs();
  std::string id = r.out;
  while (!id.empty() && id.back() == '\n') id.pop_back();
  return id;
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

  auto stop = c.sluice({"stop", job, "--savepoint", "--path", dir.file("savepoints"), "-o", "json"});
  ASSERT_EQ(stop.exit_code, 0) << stop.err << c.logs();
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(stop.out).get(doc), simdjson::SUCCESS) << stop.out;
  std::string_view path;
  ASSERT_EQ(doc["path"].get(path), simdjson::SUCCESS) << stop.out;
  ASSERT_EQ(path.rfind(dir.file("savepoints"), 0), 0u) << path;
  EXPECT_EQ(c.status(job).state, "FINISHED");

  // Not all input was read before the stop; the rest comes after the restore.
  std::string job2 = submit_clickstream(c, dir, "file://" + input, 3, {"--restore", std::string(path)});
  ASSERT_FALSE(job2.empty());
  v = c.wait_for_end(job2);
  ASSERT_EQ(v.state, "FINISHED") << v.raw << c.logs();
  Counts got = counts_of(read_page_counts(dir.file("counts.ndjson")));
  Counts want = expected_counts(input, 10'000);
  EXPECT_EQ(diff_counts(want, got), "") << c.logs();
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
  Child tm({sluice_binary(), "taskmanager", "--config", dir.file("tm.toml"), "--id", "tm-cfg"}, dir.file("cfg.log"));
  Child tm2({sluice_binary(), "taskmanager", "--config", dir.file("tm.toml"), "--slots", "1", "--id", "tm-flag"},
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
  auto r = run_sluice(args);
  EXPECT_EQ(r.exit_code, 3) << r.describe(args);
  EXPECT_NE(r.err.find("token"), std::string::npos) << r.err;

  write_file(dir.file("wrong-token"), "not-the-token\n");
  args.insert(args.end(), {"--token-file", dir.file("wrong-token")});
  r = run_sluice(args);
  EXPECT_EQ(r.exit_code, 3) << r.describe(args);

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

// CEP on the cluster: the fraud pattern of it_cep_job over three
// taskmanagers, one killed mid-run after checkpoints; the job restarts from
// its checkpoint (partial matches, buffered events, deadlines) and its
// exactly-once sinks end with the alerts and timeouts of an undisturbed
// run-local run.
TEST(Cluster, CepJobSurvivesAKilledTaskManagerWithTheUndisturbedMatches) {
  TempDir dir;
  write_cep_activity(dir.file("in.ndjson"), 40'000, 7);
  auto job_args = [&](const std::string& out) {
    return std::vector<std::string>{"--parallelism", "2", "--arg", "sink=" + dir.uri(out + "-alerts.ndjson"),
                                    "--arg", "timeouts=" + dir.uri(out + "-timeouts.ndjson"),
                                    "--arg", "dlq=" + dir.uri(out + "-dlq.ndjson")};
  };
  std::vector<std::string> local = {"run-local", cep_library(), "--arg", "source=" + dir.uri("in.ndjson")};
  for (const auto& a : job_args("plain")) local.push_back(a);
  auto plain = run_sluice(local);
  ASSERT_EQ(plain.exit_code, 0) << plain.describe(local);
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  const auto want_alerts = sorted(read_lines(dir.file("plain-alerts.ndjson")));
  const auto want_timeouts = sorted(read_lines(dir.file("plain-timeouts.ndjson")));
  ASSERT_GT(want_alerts.size(), 50u);

  Cluster c(dir);
  c.start_jobmanager();
  for (const char* id : {"tm-a", "tm-b", "tm-c"}) c.start_taskmanager(id, 2);
  ASSERT_TRUE(c.wait_for_taskmanagers(3)) << c.logs();
  std::vector<std::string> args = {"submit", cep_library(), "--arg", "source=" + dir.uri("in.ndjson") + "?rate=4000"};
  for (const auto& a : job_args("cluster")) args.push_back(a);
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
