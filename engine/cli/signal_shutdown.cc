#include "engine/cli/signal_shutdown.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>

namespace sluice::cli {

namespace {
[[noreturn]] void exit_now() {
  spdlog::default_logger()->flush();
  std::_Exit(1);
}
}  // namespace

SignalShutdown::SignalShutdown(Duration bound) : bound_(bound) {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
}

void SignalShutdown::watch(std::function<void()> shutdown) {
  shutdown_ = std::move(shutdown);
  thread_ = std::thread([this] { run(); });
}

void SignalShutdown::finish() {
  finished_ = true;
  // Wakes the watcher at once instead of at its next tick (a process that
  // ends on its own, e.g. run-local of a bounded job, waited up to 200 ms).
  // SIGURG: ignored by default, so if it arrives before the watcher has
  // blocked it nothing happens and the tick still ends the wait.
  if (thread_.joinable()) {
    pthread_kill(thread_.native_handle(), kWake);
    thread_.join();
  }
}

void SignalShutdown::run() {
  sigset_t watched = set_;
  sigaddset(&watched, kWake);
  pthread_sigmask(SIG_BLOCK, &watched, nullptr);
  const timespec tick{0, 200'000'000};
  int sig = -1;
  while (!finished_ && (sig <= 0 || sig == kWake)) sig = sigtimedwait(&watched, nullptr, &tick);
  if (sig <= 0 || sig == kWake) return;
  signal_ = sig;
  spdlog::info("{}: shutting down (at most {})", sig == SIGTERM ? "SIGTERM" : "SIGINT", format_duration(bound_));
  std::atomic<bool> done{false};
  std::thread worker([&] {
    shutdown_();
    done = true;
  });
  const auto deadline = std::chrono::steady_clock::now() + bound_;
  while (!done) {
    if (sigtimedwait(&set_, nullptr, &tick) > 0) {
      spdlog::error("second signal during the shutdown: exiting now");
      exit_now();
    }
    if (std::chrono::steady_clock::now() >= deadline && !done) {
      spdlog::error("the shutdown did not finish within {}: exiting now", format_duration(bound_));
      exit_now();
    }
  }
  worker.join();
  spdlog::default_logger()->flush();
}

}  // namespace sluice::cli
