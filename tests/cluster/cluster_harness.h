// The multi-process cluster harness of the cluster and security tests: a
// real jobmanager and taskmanagers as child processes on loopback, driven
// through the `sluice` CLI and the HTTP status.
#pragma once

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

#include "tests/integration/support.h"

extern char** environ;

namespace sluice::it {

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
  pid_t pid() const { return pid_; }
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

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  std::string t = s.str();
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t;
}

inline bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
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

  /// `extra`: more flags for the jobmanager (and, in tm_extra_args(), for
  /// every taskmanager started later), e.g. TLS files.
  void start_jobmanager(const std::string& bind = "127.0.0.1:0", std::vector<std::string> extra = {}) {
    std::filesystem::create_directories(data_dir());
    std::filesystem::remove(data_dir() + "/jobmanager.address");
    std::vector<std::string> argv{sluice_binary(), "jobmanager", "--bind", bind, "--http-bind", "127.0.0.1:0",
                                  "--data-dir", data_dir(), "--heartbeat-timeout", "2s", "--checkpoint-interval",
                                  "300ms", "--metrics-bind", "127.0.0.1:0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    jm_ = std::make_unique<Child>(argv, dir_.file("jobmanager.log"));
    ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(data_dir() + "/jobmanager.address"); }, 20s))
        << slurp(dir_.file("jobmanager.log"));
    address_ = slurp(data_dir() + "/jobmanager.address");
    token_file_ = data_dir() + "/token";
  }
  Child& jobmanager() { return *jm_; }

  void start_taskmanager(const std::string& id, int slots = 2) {
    std::vector<std::string> argv{sluice_binary(), "taskmanager", "--jobmanager", address_, "--slots",
                                  std::to_string(slots), "--id", id, "--work-dir", dir_.file("tm-" + id),
                                  "--token-file", token_file_};
    argv.insert(argv.end(), tm_extra_args.begin(), tm_extra_args.end());
    tms_[id] = std::make_unique<Child>(argv, dir_.file(id + ".log"));
  }
  /// Flags added to every taskmanager started after they are set.
  std::vector<std::string> tm_extra_args;
  /// Flags added to every CLI call (e.g. TLS client files); curl_args() likewise for curl.
  std::vector<std::string> cli_extra_args;
  std::vector<std::string> curl_extra_args;
  std::string http_scheme = "http";
  const std::string& token_file() const { return token_file_; }
  std::string http_address() const { return slurp(data_dir() + "/http.address"); }
  /// GET of the jobmanager's HTTP status (curl, 5 s at most).
  CommandResult http_get(const std::string& path, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{"/usr/bin/curl", "-sf", "-m", "5"};
    argv.insert(argv.end(), curl_extra_args.begin(), curl_extra_args.end());
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(http_scheme + "://" + http_address() + path);
    return run_command(argv, 10s);
  }
  Child& taskmanager(const std::string& id) { return *tms_.at(id); }

  /// Waits until `n` taskmanagers are registered (HTTP status).
  bool wait_for_taskmanagers(size_t n) {
    return wait_until([&] { return registered() >= n; }, 20s);
  }
  size_t registered() {
    std::vector<std::string> args{"list", "--jobmanager", address_, "--token-file", token_file_};  // reachability first
    args.insert(args.end(), cli_extra_args.begin(), cli_extra_args.end());
    auto r = run_sluice(args);
    if (r.exit_code != 0) return 0;
    auto c = http_get("/taskmanagers");
    if (c.exit_code != 0) return 0;
    size_t n = 0;
    for (size_t p = 0; (p = c.out.find("\"id\":", p)) != std::string::npos; ++p) ++n;
    return n;
  }

  CommandResult sluice(std::vector<std::string> args, bool with_token = true) {
    args.insert(args.end(), {"--jobmanager", address_});
    if (with_token) args.insert(args.end(), {"--token-file", token_file_});
    args.insert(args.end(), cli_extra_args.begin(), cli_extra_args.end());
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
inline std::string make_input(const TempDir& dir, int64_t count, uint64_t seed = 7) {
  std::string path = dir.file("clicks.ndjson");
  auto r = run_sluice({"gen", "--count", std::to_string(count), "--seed", std::to_string(seed), "--output", path});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return path;
}

inline Counts expected_counts(const std::string& input, int64_t window_ms) {
  std::vector<Click> clicks;
  for (const auto& l : read_input(input))
    if (l.click) clicks.push_back(*l.click);
  return reference_counts(clicks, window_ms);
}

/// Submits clickstream with a file sink (exactly-once with checkpoints).
inline std::string submit_clickstream(Cluster& c, const TempDir& dir, const std::string& source, int parallelism,
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

}  // namespace sluice::it
