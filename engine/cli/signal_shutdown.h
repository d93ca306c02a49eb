// SIGTERM/SIGINT of a long-running `sluice` process (jobmanager,
// taskmanager, run-local, dev-kafka, dev-receiver): a clean shutdown
// within a bound.
#pragma once

#include <signal.h>

#include <atomic>
#include <functional>
#include <thread>

#include "engine/common/time.h"

namespace sluice::cli {

/// Construct it first, before any other thread exists: it blocks SIGINT
/// and SIGTERM in the calling thread, so every thread started later
/// inherits the mask and none is killed by the default action. watch()
/// starts one watcher thread; the first signal logs "SIGTERM: shutting
/// down (at most …)" and runs `shutdown` on a thread of its own; if that
/// has not returned within `bound`, or a second signal comes, the process
/// logs why, flushes the log and exits at once with code 1. finish() (or
/// the destructor) waits for a shutdown under way, then stops watching.
/// Owned by the command's run function; not copyable.
class SignalShutdown {
 public:
  explicit SignalShutdown(Duration bound);
  ~SignalShutdown() { finish(); }
  SignalShutdown(const SignalShutdown&) = delete;
  SignalShutdown& operator=(const SignalShutdown&) = delete;

  /// Starts watching; `shutdown` runs at the first signal.
  void watch(std::function<void()> shutdown);
  /// Waits for a shutdown under way, then stops watching.
  void finish();
  /// The signal that started the shutdown (0: none yet).
  int signal() const { return signal_.load(); }

 private:
  void run();

  /// Sent by finish() to the watcher thread only, to end its wait.
  static constexpr int kWake = SIGURG;

  std::function<void()> shutdown_;
  const Duration bound_;
  sigset_t set_;
  std::atomic<bool> finished_{false};
  std::atomic<int> signal_{0};
  std::thread thread_;
};

}  // namespace sluice::cli
