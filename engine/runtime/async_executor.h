// A small pool of threads for work that must not run on task threads:
// the asynchronous part of snapshots (writing state files).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sluice::runtime {

/// Runs submitted functions on its own threads, in submission order per
/// thread. Thread-safe. The destructor finishes queued work, then joins.
class AsyncExecutor {
 public:
  explicit AsyncExecutor(int threads = 1);
  ~AsyncExecutor();
  AsyncExecutor(const AsyncExecutor&) = delete;
  AsyncExecutor& operator=(const AsyncExecutor&) = delete;

  void submit(std::function<void()> fn);

 private:
  void loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace sluice::runtime
