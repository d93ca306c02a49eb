// End to end: the clickstream job on the RocksDB backend, checkpointing
// every 300 ms, is killed with SIGKILL at random moments and restarted with
// --restore latest each time; the exactly-once file sink must end with the
// counts of an uninterrupted run — computed here from the input, not by
// Sluice — every (window, page) once.
//
// Runs the built `sluice` binary and job library from $SLUICE_BUILD_DIR.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <simdjson.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <dirent.h>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace {

std::string build_dir() {
  const char* d = std::getenv("SLUICE_BUILD_DIR");
  return d ? d : "";
}

class TempDir {
 public:
  TempDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/sluice-rocks-e2e-XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    if (!std::getenv("SLUICE_IT_KEEP")) {
      std::string cmd = "rm -rf '" + path_ + "'";
      (void)std::system(cmd.c_str());
    }
  }
  std::string file(const std::string& n) const { return path_ + "/" + n; }

 private:
  std::string path_;
};

/// Starts `argv` with stdout and stderr appended to `log`.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

/// Waits up to `timeout` for `pid`; its exit code, or -1 if it is still running.
int wait_for(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

bool has_completed_checkpoint(const std::string& job_dir) {
  DIR* d = ::opendir(job_dir.c_str());
  if (!d) return false;
  bool found = false;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.rfind("chk-", 0) == 0 && ::access((job_dir + "/" + n + "/_metadata").c_str(), R_OK) == 0) {
      found = true;
    }
  }
  ::closedir(d);
  return found;
}

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  return out;
}

using Counts = std::map<std::pair<int64_t, std::string>, int64_t>;  // (window start, page) -> n

constexpr int64_t kWindowMs = 60'000;

/// Clicks per (tumbling 60 s window, page), read from the generated input.
Counts reference(const std::string& input) {
  Counts c;
  simdjson::dom::parser parser;
  std::ifstream in(input);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    simdjson::dom::element doc;
    if (parser.parse(line).get(doc)) continue;
    std::string_view page;
    int64_t ts;
    if (doc["page_url"].get(page) || doc["ts"].get(ts) || page.empty() || ts <= 0) continue;
    c[{ts - ts % kWindowMs, std::string(page)}] += 1;
  }
  return c;
}

TEST(RocksDBKillRestore, ClickstreamKilledAndRestoredMatchesTheReference) {
  const std::string build = build_dir();
  ASSERT_FALSE(build.empty()) << "SLUICE_BUILD_DIR is not set (run through ctest)";
  const std::string sluice = build + "/sluice";
  const std::string job = build + "/jobs/clickstream/libclickstream.so";
  TempDir dir;
  const std::string input = dir.file("clicks.ndjson");
  const std::string out = dir.file("counts.ndjson");
  const std::string log = dir.file("runs.log");

  pid_t gen = spawn({sluice, "gen", "--count", "100000", "--seed", "7", "--pages", "1000",
                     "--events-per-second", "200", "--out-of-order", "0.2", "--output", input},
                    log);
  ASSERT_GT(gen, 0);
  ASSERT_EQ(wait_for(gen, std::chrono::seconds(30)), 0);
  const Counts expected = reference(input);
  ASSERT_GT(expected.size(), 1000u);

  auto run = [&](bool restore) {
    std::vector<std::string> argv = {
        sluice, "run-local", job, "-p", "2",
        "--set", "state.backend=rocksdb",
        "--set", "state.rocksdb.local-dir=" + dir.file("local"),
        "--set", "state.rocksdb.memory=64mb",
        "--checkpoint-dir", dir.file("chk"), "--checkpoint-interval", "300ms",
        "--arg", "source=file://" + input + "?rate=12000",
        "--arg", "sink=file://" + out};
    if (restore) {
      argv.push_back("--restore");
      argv.push_back("latest");
    }
    std::ofstream(log, std::ios::app) << "---- run" << (restore ? " --restore latest" : "") << "\n";
    return spawn(argv, log);
  };

  std::mt19937 rng(::testing::UnitTest::GetInstance()->random_seed());
  std::uniform_int_distribution<int> delay_ms(700, 1800);
  int kills = 0, restores = 0;
  bool finished = false;
  for (int attempt = 0; attempt < 6 && !finished; ++attempt) {
    bool restore = has_completed_checkpoint(dir.file("chk/clickstream"));
    restores += restore ? 1 : 0;
    pid_t pid = run(restore);
    ASSERT_GT(pid, 0);
    int code = wait_for(pid, std::chrono::milliseconds(delay_ms(rng)));
    if (code == -1) {
      ::kill(pid, SIGKILL);
      ASSERT_EQ(wait_for(pid, std::chrono::seconds(10)), 128 + SIGKILL);
      ++kills;
    } else {
      ASSERT_EQ(code, 0) << "see " << log;
      finished = true;
    }
  }
  if (!finished) {
    bool restore = has_completed_checkpoint(dir.file("chk/clickstream"));
    restores += restore ? 1 : 0;
    pid_t pid = run(restore);
    ASSERT_GT(pid, 0);
    ASSERT_EQ(wait_for(pid, std::chrono::seconds(60)), 0) << "see " << log;
  }
  EXPECT_GE(kills, 3) << "the job finished too fast to be killed; see " << log;
  EXPECT_GE(restores, 3) << "too few runs restored from a checkpoint; see " << log;

  // The state went through RocksDB's incremental checkpoints.
  int ssts = 0;
  for (const auto& n : entries(dir.file("chk/clickstream/shared"))) ssts += n.size() > 4 && n.substr(n.size() - 4) == ".sst";
  EXPECT_GT(ssts, 0);
  // Killed runs left working directories behind; the last run removed them.
  EXPECT_TRUE(entries(dir.file("local")).empty());

  Counts actual;
  size_t rows = 0;
  simdjson::dom::parser parser;
  std::ifstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    simdjson::dom::element doc;
    ASSERT_FALSE(parser.parse(line).get(doc)) << "bad output line: " << line;
    int64_t start, count;
    std::string_view page;
    ASSERT_FALSE(doc["window_start"].get(start) || doc["page_url"].get(page) || doc["count"].get(count))
        << line;
    auto [it, fresh] = actual.emplace(std::make_pair(start, std::string(page)), count);
    EXPECT_TRUE(fresh) << "duplicate row: " << line;
    ++rows;
  }
  EXPECT_EQ(rows, expected.size());
  size_t shown = 0;
  for (const auto& [k, n] : expected) {
    auto it = actual.find(k);
    int64_t got = it == actual.end() ? 0 : it->second;
    if (got != n && shown++ < 10) {
      ADD_FAILURE() << "window " << k.first << " page " << k.second << ": expected " << n << ", got " << got;
    }
  }
  for (const auto& [k, n] : actual) {
    if (!expected.count(k) && shown++ < 10) ADD_FAILURE() << "unexpected row for " << k.second;
  }
  std::cerr << kills << " kills, " << restores << " restores" << std::endl;
}

}  // namespace
