// End to end: the clickstream job, checkpointing every 300 ms, is killed
// with SIGKILL at 10 or more random moments and restarted with
// --restore latest each time; the exactly-once file sink must end with the
// counts of an uninterrupted run — computed here from the input, not by
// Sluice — every (window, page) once. Every other kill waits until a
// checkpoint is being written (a chk-N directory newer than the latest
// completed one, without _metadata yet) and kills right then. Runs on the
// RocksDB backend and on the heap backend.
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

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <dirent.h>
#include <fstream>
#include <iostream>
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

/// Checkpoint ids under `job_dir`: the completed ones (chk-N/_metadata
/// exists) and those still being written (chk-N without _metadata).
struct CheckpointDirs {
  int64_t latest_completed = -1;
  std::vector<int64_t> incomplete;
};

CheckpointDirs checkpoint_dirs(const std::string& job_dir) {
  CheckpointDirs out;
  DIR* d = ::opendir(job_dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.rfind("chk-", 0) != 0) continue;
    char* end = nullptr;
    long long id = std::strtoll(n.c_str() + 4, &end, 10);
    if (end == n.c_str() + 4 || *end != '\0') continue;
    if (::access((job_dir + "/" + n + "/_metadata").c_str(), F_OK) == 0) {
      out.latest_completed = std::max<int64_t>(out.latest_completed, id);
    } else {
      out.incomplete.push_back(id);
    }
  }
  ::closedir(d);
  return out;
}

bool has_completed_checkpoint(const std::string& job_dir) {
  return checkpoint_dirs(job_dir).latest_completed >= 0;
}

/// A checkpoint newer than every completed one is being written, and it is
/// not one a killed run left behind (ids at or below `leftover_max`).
/// (A retained checkpoint being discarded also lacks _metadata for a
/// moment, but its id is below the latest completed one.)
bool checkpoint_in_progress(const std::string& job_dir, int64_t leftover_max) {
  CheckpointDirs c = checkpoint_dirs(job_dir);
  for (int64_t id : c.incomplete)
    if (id > c.latest_completed && id > leftover_max) return true;
  return false;
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

class KillRestore : public ::testing::TestWithParam<std::string> {};

TEST_P(KillRestore, ClickstreamKilledTenTimesAndRestoredMatchesTheReference) {
  const std::string backend = GetParam();
  const std::string build = build_dir();
  ASSERT_FALSE(build.empty()) << "SLUICE_BUILD_DIR is not set (run through ctest)";
  const std::string sluice = build + "/sluice";
  const std::string job = build + "/jobs/clickstream/libclickstream.so";
  TempDir dir;
  const std::string input = dir.file("clicks.ndjson");
  const std::string out = dir.file("counts.ndjson");
  const std::string log = dir.file("runs.log");
  const std::string job_dir = dir.file("chk/clickstream");

  pid_t gen = spawn({sluice, "gen", "--count", "100000", "--seed", "7", "--pages", "1000",
                     "--events-per-second", "200", "--out-of-order", "0.2", "--output", input},
                    log);
  ASSERT_GT(gen, 0);
  ASSERT_EQ(wait_for(gen, std::chrono::seconds(30)), 0);
  const Counts expected = reference(input);
  ASSERT_GT(expected.size(), 1000u);

  // 100,000 lines at 6,000/s: ~17 s of input, more than ten killed runs of
  // at most 1.5 s each can get through, so the job is still running at
  // every kill.
  auto run = [&](bool restore) {
    std::vector<std::string> argv = {
        sluice, "run-local", job, "-p", "2",
        "--set", "state.backend=" + backend,
        "--checkpoint-dir", dir.file("chk"), "--checkpoint-interval", "300ms",
        "--arg", "source=file://" + input + "?rate=6000",
        "--arg", "sink=file://" + out};
    if (backend == "rocksdb") {
      for (std::string s : {"state.rocksdb.local-dir=" + dir.file("local"), std::string("state.rocksdb.memory=64mb")}) {
        argv.push_back("--set");
        argv.push_back(s);
      }
    }
    if (restore) {
      argv.push_back("--restore");
      argv.push_back("latest");
    }
    std::ofstream(log, std::ios::app) << "---- run" << (restore ? " --restore latest" : "") << "\n";
    return spawn(argv, log);
  };

  constexpr int kKills = 10;
  // A fresh schedule every run; SLUICE_KILL_SEED=<n> replays one.
  const char* seed_env = std::getenv("SLUICE_KILL_SEED");
  const uint32_t seed = seed_env ? static_cast<uint32_t>(std::strtoul(seed_env, nullptr, 10)) : std::random_device{}();
  SCOPED_TRACE("kill schedule seed " + std::to_string(seed) + " (replay with SLUICE_KILL_SEED)");
  std::ofstream(log, std::ios::app) << "---- kill schedule seed " << seed << "\n";
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(500, 1500);     // plain kills
  std::uniform_int_distribution<int> min_delay_ms(400, 900);  // kills during a checkpoint
  int kills = 0, kills_in_checkpoint = 0, restores = 0;
  for (int run_no = 0; kills < kKills; ++run_no) {
    ASSERT_LT(run_no, kKills + 2) << "see " << log;
    bool restore = has_completed_checkpoint(job_dir);
    restores += restore ? 1 : 0;
    const int64_t leftover_max = [&] {
      int64_t m = -1;
      for (int64_t id : checkpoint_dirs(job_dir).incomplete) m = std::max(m, id);
      return m;
    }();
    const auto started = std::chrono::steady_clock::now();
    pid_t pid = run(restore);
    ASSERT_GT(pid, 0);
    int code = -1;
    bool in_checkpoint = false;
    if (run_no % 2 == 1) {
      // Wait a random while, then kill as soon as a checkpoint is being
      // written (or at 1.5 s, counted as a plain kill).
      code = wait_for(pid, std::chrono::milliseconds(min_delay_ms(rng)));
      while (code == -1 && std::chrono::steady_clock::now() - started < std::chrono::milliseconds(1500)) {
        if (checkpoint_in_progress(job_dir, leftover_max)) {
          in_checkpoint = true;
          break;
        }
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
          code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          break;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    } else {
      code = wait_for(pid, std::chrono::milliseconds(delay_ms(rng)));
    }
    if (run_no == 0) {
      // Every later run must find a checkpoint to restore from, however
      // slowly this (shared) machine starts the first one.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (code == -1 && !has_completed_checkpoint(job_dir) &&
             std::chrono::steady_clock::now() < deadline) {
        code = wait_for(pid, std::chrono::milliseconds(50));
      }
    }
    ASSERT_EQ(code, -1) << "run " << run_no << " ended (exit " << code << ") before it was killed; see "
                        << log;
    ::kill(pid, SIGKILL);
    ASSERT_EQ(wait_for(pid, std::chrono::seconds(10)), 128 + SIGKILL);
    ++kills;
    kills_in_checkpoint += in_checkpoint ? 1 : 0;
    std::ofstream(log, std::ios::app) << "---- SIGKILL after "
                                      << std::chrono::duration_cast<std::chrono::milliseconds>(
                                             std::chrono::steady_clock::now() - started)
                                             .count()
                                      << " ms" << (in_checkpoint ? ", during a checkpoint" : "") << "\n";
  }
  {
    bool restore = has_completed_checkpoint(job_dir);
    restores += restore ? 1 : 0;
    pid_t pid = run(restore);
    ASSERT_GT(pid, 0);
    ASSERT_EQ(wait_for(pid, std::chrono::seconds(60)), 0) << "see " << log;
  }
  EXPECT_GE(kills, kKills);
  EXPECT_GE(kills_in_checkpoint, 2) << "too few kills hit a checkpoint being written; see " << log;
  EXPECT_GE(restores, kKills - 1) << "too few runs restored from a checkpoint; see " << log;

  if (backend == "rocksdb") {
    // The state went through RocksDB's incremental checkpoints.
    int ssts = 0;
    for (const auto& n : entries(dir.file("chk/clickstream/shared"))) ssts += n.size() > 4 && n.substr(n.size() - 4) == ".sst";
    EXPECT_GT(ssts, 0);
    // Killed runs left working directories behind; the last run removed them.
    EXPECT_TRUE(entries(dir.file("local")).empty());
  }

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
  std::cerr << backend << ": " << kills << " kills (" << kills_in_checkpoint << " during a checkpoint), "
            << restores << " restores" << std::endl;
}

INSTANTIATE_TEST_SUITE_P(Backends, KillRestore, ::testing::Values("rocksdb", "heap"),
                         [](const auto& info) { return info.param; });

}  // namespace
