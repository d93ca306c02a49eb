#include "tests/integration/kill_restore.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "tests/integration/process.h"

namespace sluice::it {

CheckpointDirs read_checkpoint_dirs(const std::string& job_dir) {
  CheckpointDirs c;
  if (DIR* d = ::opendir(job_dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.rfind("chk-", 0) != 0) continue;
      const int64_t id = std::atoll(n.c_str() + 4);
      if (::access((job_dir + "/" + n + "/_metadata").c_str(), F_OK) == 0) {
        c.latest_completed = std::max(c.latest_completed, id);
      } else {
        c.incomplete.push_back(id);
      }
    }
    ::closedir(d);
  }
  return c;
}

uint32_t kill_seed() {
  const char* s = std::getenv("SLUICE_KILL_SEED");
  return s ? static_cast<uint32_t>(std::strtoul(s, nullptr, 10)) : std::random_device{}();
}

namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// How long a run may take to complete its first checkpoint before it is
// killed anyway (then the next run cannot restore from it: the test says so).
constexpr int kFirstCheckpointWaitS = 60;

// A checkpoint newer than every completed one and than the leftovers of
// earlier runs is being written.
bool checkpoint_in_progress(const std::string& job_dir, int64_t leftover_max) {
  CheckpointDirs c = read_checkpoint_dirs(job_dir);
  for (int64_t id : c.incomplete)
    if (id > c.latest_completed && id > leftover_max) return true;
  return false;
}

}  // namespace

KillRun run_with_kills(const std::vector<std::string>& argv, const std::string& job_dir, const std::string& log_path,
                       int kills, uint32_t seed, int final_timeout_s) {
  KillRun out;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(0, 300);
  auto start = [&](bool restore) {
    std::vector<std::string> a = argv;
    if (restore) {
      a.push_back("--restore");
      a.push_back("latest");
    }
    std::ofstream(log_path, std::ios::app) << "---- run" << (restore ? " --restore latest" : "") << "\n";
    return start_process(a, log_path);
  };
  for (int k = 0; k < kills; ++k) {
    const CheckpointDirs before = read_checkpoint_dirs(job_dir);
    const bool restore = before.latest_completed >= 0;
    out.restores += restore ? 1 : 0;
    int64_t leftover = -1;
    for (int64_t id : before.incomplete) leftover = std::max(leftover, id);
    const int pid = start(restore);
    if (pid <= 0) break;
    // Not a fixed delay from the start: on a loaded machine starting the
    // process and its first checkpoint take seconds, and a run killed
    // before it completed one leaves nothing to restore. Each run first
    // completes a checkpoint of its own, so every restart restores.
    const auto started = std::chrono::steady_clock::now();
    int code = -1;
    bool checkpointed = false;
    while (code == -1 && std::chrono::steady_clock::now() - started < std::chrono::seconds(kFirstCheckpointWaitS)) {
      if (read_checkpoint_dirs(job_dir).latest_completed > before.latest_completed) {
        checkpointed = true;
        break;
      }
      code = wait_process(pid, std::chrono::milliseconds(2));
    }
    bool during = false;
    if (code == -1 && k % 2 == 1) {
      // As soon as the next checkpoint is being written.
      const auto since = std::chrono::steady_clock::now();
      const int64_t completed = read_checkpoint_dirs(job_dir).latest_completed;
      while (code == -1 && std::chrono::steady_clock::now() - since < std::chrono::seconds(10)) {
        if (checkpoint_in_progress(job_dir, std::max(leftover, completed))) {
          during = true;
          break;
        }
        code = wait_process(pid, std::chrono::milliseconds(0));
        std::this_thread::sleep_for(std::chrono::microseconds(300));
      }
    } else if (code == -1) {
      // Anywhere between checkpoints (or in one).
      code = wait_process(pid, std::chrono::milliseconds(delay_ms(rng)));
    }
    if (code != -1) {  // it ended before the kill: nothing more to kill
      out.final_exit = code;
      out.log = read_all(log_path);
      return out;
    }
    ::kill(pid, SIGKILL);
    wait_process(pid, std::chrono::seconds(10));
    ++out.kills;
    out.kills_during_checkpoint += during ? 1 : 0;
    std::ofstream(log_path, std::ios::app)
        << "---- SIGKILL" << (during ? " during a checkpoint" : "")
        << (checkpointed ? "" : " (no checkpoint completed in " + std::to_string(kFirstCheckpointWaitS) + " s)")
        << "\n";
  }
  const bool restore = read_checkpoint_dirs(job_dir).latest_completed >= 0;
  out.restores += restore ? 1 : 0;
  const int pid = start(restore);
  out.final_exit = pid > 0 ? wait_process(pid, std::chrono::seconds(final_timeout_s)) : -1;
  if (out.final_exit == -1 && pid > 0) {
    ::kill(pid, SIGKILL);
    wait_process(pid, std::chrono::seconds(10));
  }
  out.log = read_all(log_path);
  return out;
}

}  // namespace sluice::it
