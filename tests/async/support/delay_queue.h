// DelayQueue: runs actions on its own thread once their delay passed. The
// test servers use it to answer after a (random) latency; the async
// benchmark uses it as an in-process "service" with no network at all.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace sluice::async_test {

/// One thread; after() is thread-safe. flush() runs everything pending now
/// and makes later after() calls run at once (server shutdown). Destruction
/// flushes, then joins. Actions run on the queue's thread.
class DelayQueue {
 public:
  using Action = std::function<void()>;
  explicit DelayQueue(const char* thread_name = "delay-queue");
  ~DelayQueue();
  DelayQueue(const DelayQueue&) = delete;
  DelayQueue& operator=(const DelayQueue&) = delete;

  void after(int64_t delay_us, Action a);
  /// Runs every pending action now (on the queue's thread) and waits for them.
  void flush();
  /// Undoes flush(): delays count again.
  void resume();
  /// CPU time of the queue's thread so far.
  int64_t cpu_ns() const;

 private:
  struct Item {
    int64_t at_ns;
    uint64_t seq;
    Action action;
    bool operator>(const Item& o) const { return at_ns != o.at_ns ? at_ns > o.at_ns : seq > o.seq; }
  };
  void loop();

  mutable std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> items_;
  uint64_t seq_ = 0;
  bool flushing_ = false;
  bool stop_ = false;
  bool running_action_ = false;
  const char* name_;
  std::thread thread_;
  pthread_t handle_{};
};

}  // namespace sluice::async_test
