// Rescaling from savepoints, end to end through the CLI: the clickstream
// job reads a rate-limited file at parallelism 2, is stopped with SIGTERM
// and `--savepoint-on-exit`, restored from that savepoint (`--restore
// PATH`) at parallelism 3, stopped the same way, and restored at
// parallelism 1, which reads the rest and finishes. The exactly-once file
// sink must then hold exactly the counts the test computes from the input
// (every (window, page) once, no count lost or doubled by the two
// redistributions of key groups and file shares), and the dead-letter file
// every malformed line once.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/support.h"

extern char** environ;

namespace sluice::it {
namespace {

constexpr int64_t kStartTs = 1'700'000'000'000;
constexpr int64_t kWindowMs = 60'000;

/// A `sluice` child process whose stdout and stderr go to a file.
class Child {
 public:
  Child(const std::vector<std::string>& args, std::string log) : log_(std::move(log)) {
    std::vector<std::string> argv = {sluice_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    if (::posix_spawn(&pid_, cargv[0], &fa, nullptr, cargv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Child() {
    if (pid_ > 0 && code_ == -1) {
      ::kill(pid_, SIGKILL);
      (void)wait(std::chrono::seconds(10));
    }
  }
  bool started() const { return pid_ > 0; }
  /// True while it runs; false once it has exited (see code()).
  bool running() {
    poll();
    return code_ == -1;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  /// The exit code (128 + signal when killed by one), or -1 after `timeout`.
  int wait(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return code_;
  }
  std::string output() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  void poll() {
    if (pid_ <= 0 || code_ != -1) return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
  }
  std::string log_;
  pid_t pid_ = -1;
  int code_ = -1;
};

/// The savepoint directory from run-local's "stopped with savepoint N: DIR".
std::string savepoint_dir(const std::string& output) {
  const std::string key = "stopped with savepoint ";
  size_t p = output.find(key);
  if (p == std::string::npos) return "";
  size_t colon = output.find(": ", p);
  size_t eol = output.find('\n', colon);
  if (colon == std::string::npos) return "";
  return output.substr(colon + 2, eol == std::string::npos ? std::string::npos : eol - colon - 2);
}

TEST(RescaleFromSavepoints, TwoThenThreeThenOneKeepsEveryCount) {
  TempDir dir;
  const std::string input = dir.file("clicks.ndjson");
  // 60,000 lines, 600 s of event time (10 one-minute windows), out of order
  // within the job's 2 s bound (so none is late), some malformed.
  std::vector<std::string> gen = {"gen", "--count", "60000", "--seed", "23", "--users", "2000",
                                  "--pages", "300", "--start-ts", std::to_string(kStartTs),
                                  "--events-per-second", "100", "--out-of-order", "0.2",
                                  "--max-delay", "2s", "--malformed", "0.005", "--output", input};
  auto g = run_sluice(gen);
  ASSERT_EQ(g.exit_code, 0) << g.describe(gen);

  const std::vector<InputLine> lines = read_input(input);
  std::vector<Click> valid;
  size_t malformed = 0;
  for (const auto& l : lines) {
    if (is_blank(l.text)) continue;
    if (l.click && !l.click->page_url.empty() && l.click->ts > 0) {
      valid.push_back(*l.click);
    } else {
      ++malformed;
    }
  }
  ASSERT_GT(malformed, 0u);
  const Counts expected = reference_counts(valid, kWindowMs);
  ASSERT_GT(expected.size(), 1000u);

  // 6,000 lines/s over all source subtasks: ~10 s for the whole file, so
  // each stopped run ends mid-stream.
  auto args = [&](int parallelism, const std::string& restore, bool savepoint) {
    std::vector<std::string> a = {"run-local", clickstream_library(), "--parallelism",
                                  std::to_string(parallelism), "--checkpoint-dir", dir.file("chk"),
                                  "--set", "state.backend=rocksdb",
                                  "--set", "state.rocksdb.local-dir=" + dir.file("local"),
                                  "--arg", "source=" + dir.uri("clicks.ndjson") + "?rate=6000",
                                  "--arg", "sink=" + dir.uri("counts.ndjson"),
                                  "--arg", "dlq=" + dir.uri("dead.ndjson")};
    if (!restore.empty()) {
      a.push_back("--restore");
      a.push_back(restore);
    }
    if (savepoint) a.push_back("--savepoint-on-exit");
    return a;
  };
  // Runs at `parallelism`, SIGTERM after `run_for`; returns the savepoint.
  auto run_and_stop = [&](int parallelism, const std::string& restore, const std::string& name) {
    Child c(args(parallelism, restore, true), dir.file(name + ".log"));
    EXPECT_TRUE(c.started());
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    EXPECT_TRUE(c.running()) << name << " finished before it was stopped:\n" << c.output();
    c.signal(SIGTERM);
    int code = c.wait(std::chrono::seconds(30));
    std::string out = c.output();
    EXPECT_EQ(code, 0) << name << ":\n" << out;
    if (!restore.empty()) {
      EXPECT_NE(out.find("restoring from savepoint"), std::string::npos) << name << ":\n" << out;
    }
    std::string sp = savepoint_dir(out);
    EXPECT_FALSE(sp.empty()) << name << " printed no savepoint:\n" << out;
    return sp;
  };

  const std::string sp2 = run_and_stop(2, "", "p2");
  ASSERT_FALSE(sp2.empty());
  const size_t rows_after_p2 = read_lines(dir.file("counts.ndjson")).size();
  const std::string sp3 = run_and_stop(3, sp2, "p3");
  ASSERT_FALSE(sp3.empty());
  ASSERT_NE(sp3, sp2);
  const size_t rows_after_p3 = read_lines(dir.file("counts.ndjson")).size();

  Child last(args(1, sp3, false), dir.file("p1.log"));
  ASSERT_TRUE(last.started());
  int code = last.wait(std::chrono::seconds(40));
  std::string out = last.output();
  ASSERT_EQ(code, 0) << "p1:\n" << out;
  EXPECT_NE(out.find("restoring from savepoint"), std::string::npos) << out;

  // The stops were mid-stream: the input was not done before the last run.
  EXPECT_LT(rows_after_p2, expected.size());
  EXPECT_LE(rows_after_p2, rows_after_p3);
  EXPECT_LT(rows_after_p3, expected.size());

  const auto rows = read_page_counts(dir.file("counts.ndjson"));
  EXPECT_EQ(diff_counts(expected, counts_of(rows)), "");
  EXPECT_EQ(rows.size(), expected.size());
  EXPECT_EQ(read_dead_letters(dir.file("dead.ndjson")).size(), malformed);
  std::cerr << "rows committed after p2: " << rows_after_p2 << ", after p3: " << rows_after_p3
            << ", at the end: " << rows.size() << std::endl;
}

// Broadcast state across a rescale: spending alerts from rules broadcast to
// a keyed stream (it_rules_job) run at parallelism 2, stopped mid-stream
// with a savepoint, restored at parallelism 3 and run to the end. Every
// (user, rule) whose final total reaches the threshold must be alerted
// exactly once: a rule that reached the first run only and was lost in the
// restore (broadcast state not taken into each new subtask) would miss the
// alerts of later spends; keyed totals lost would miss or repeat them.
TEST(RescaleFromSavepoints, BroadcastRulesSurviveARescaleFromTwoToThree) {
  TempDir dir;
  const auto expected = write_rules_input(dir.file("spends.ndjson"), dir.file("rules.ndjson"),
                                          /*spends=*/12'000, /*users=*/300, /*rules=*/30, /*seed=*/5);
  ASSERT_GT(expected.size(), 100u);
  auto args = [&](int parallelism, const std::string& restore) {
    std::vector<std::string> a = {"run-local", rules_library(), "--parallelism", std::to_string(parallelism),
                                  "--checkpoint-dir", dir.file("chk"),
                                  "--arg", "spends=" + dir.uri("spends.ndjson") + "?rate=3000",
                                  "--arg", "rules=" + dir.uri("rules.ndjson") + "?rate=8",
                                  "--arg", "sink=" + dir.uri("alerts.ndjson"),
                                  "--arg", "dlq=" + dir.uri("dead.ndjson")};
    if (restore.empty()) a.push_back("--savepoint-on-exit");
    else a.insert(a.end(), {"--restore", restore});
    return a;
  };
  std::string sp;
  {
    Child first(args(2, ""), dir.file("p2.log"));
    ASSERT_TRUE(first.started());
    std::this_thread::sleep_for(std::chrono::milliseconds(2000));
    ASSERT_TRUE(first.running()) << "finished before it was stopped:\n" << first.output();
    first.signal(SIGTERM);
    ASSERT_EQ(first.wait(std::chrono::seconds(30)), 0) << first.output();
    sp = savepoint_dir(first.output());
    ASSERT_FALSE(sp.empty()) << first.output();
  }
  const size_t alerts_after_p2 = read_alerts(dir.file("alerts.ndjson")).size();
  Child second(args(3, sp), dir.file("p3.log"));
  ASSERT_TRUE(second.started());
  ASSERT_EQ(second.wait(std::chrono::seconds(60)), 0) << second.output();
  EXPECT_NE(second.output().find("restoring from savepoint"), std::string::npos) << second.output();

  std::multiset<std::pair<std::string, std::string>> got;
  for (const auto& a : read_alerts(dir.file("alerts.ndjson"))) got.insert({a.user, a.rule});
  std::vector<std::string> problems;
  for (const auto& e : expected)
    if (got.count(e) != 1) problems.push_back(e.first + "/" + e.second + " x" + std::to_string(got.count(e)));
  for (const auto& g : got)
    if (!expected.count(g)) problems.push_back("unexpected " + g.first + "/" + g.second);
  EXPECT_TRUE(problems.empty()) << problems.size() << " wrong, e.g. " << problems.front();
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_GT(alerts_after_p2, 0u);
  EXPECT_LT(alerts_after_p2, expected.size()) << "the first run was not stopped mid-stream";
  EXPECT_TRUE(read_lines(dir.file("dead.ndjson")).empty());
}

}  // namespace
}  // namespace sluice::it
