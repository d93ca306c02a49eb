// Running a command as a child process and capturing what it says.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace sluice::it {

/// What a finished child process left behind.
struct CommandResult {
  int exit_code = -1;      // the child's exit status; 128 + signal if it was killed by one
  bool timed_out = false;  // it ran past the deadline and was killed (SIGKILL)
  std::string out;         // everything it wrote to stdout
  std::string err;         // everything it wrote to stderr
  /// One line for test failure messages: the command, code and stderr tail.
  std::string describe(const std::vector<std::string>& argv) const;
};

/// Runs argv[0] (a path, not searched on PATH) with argv, stdin from
/// /dev/null, and waits for it, reading stdout and stderr concurrently so a
/// chatty child never blocks on a full pipe. A child still running after
/// `timeout` is killed. Errors of the harness itself (fork, pipe, exec)
/// are reported as exit code 127 with the reason in `err`.
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(60));

/// Starts argv[0] with argv in the background, stdin from /dev/null,
/// stdout and stderr appended to `log`. Returns its pid, -1 on failure.
/// The caller must reap it (wait_process) and kill it if it stays. With
/// `die_with_parent` the kernel kills it (SIGKILL) if the thread that
/// started it ends first, e.g. when a test binary crashes: for servers.
int start_process(const std::vector<std::string>& argv, const std::string& log, bool die_with_parent = false);

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and
/// released), for servers a test starts; -1 if none could be bound.
int free_loopback_port();

/// Waits up to `timeout` for child `pid`: its exit code (128 + signal if a
/// signal ended it), or -1 if it is still running.
int wait_process(int pid, std::chrono::milliseconds timeout);

}  // namespace sluice::it
