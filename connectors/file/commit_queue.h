// Commits of the exactly-once file sinks off the task thread: what a
// completed checkpoint publishes (a part appended to its target and the
// commit marker, or files renamed to their final names, with their fsyncs)
// runs on a thread of the sink writer's own, in checkpoint order, so that
// the task thread never waits for the disk when a checkpoint completes.
// A commit is idempotent and stays in the writer's checkpoint state until
// it is done, so a crash before or during it is repaired by the restore,
// which commits again what the restored checkpoint lists.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "engine/common/status.h"
#include "engine/runtime/operator.h"

namespace sluice::file {

/// Commits queued and not yet done, beyond which a file sink suspends its
/// input (job setting `sink.file.max-pending-commits`): a disk far behind
/// backpressures the job instead of piling up part files and memory.
inline constexpr int64_t kDefaultMaxPendingCommits = 4;

/// One file sink writer's commits, run in the order they were submitted on
/// a thread started at the first one. Lifecycle: open (task thread, in the
/// writer's open) -> submit* -> stop (the writer's close or destructor).
/// After each commit the thread posts a mailbox action that wakes the task
/// (which then reports the checkpoint committed), resumes the input if
/// the queue had suspended it, and fails the task if the commit failed. A
/// failed commit stops the queue: nothing after it runs (commits must
/// apply in order), and every later call sees the error.
///
/// Owned by the writer; submit/open/stop/in_progress: task thread;
/// committed_through/error/failed: any thread.
class CommitQueue {
 public:
  using Work = std::function<Status()>;
  /// Called on the commit thread before each commit (tests hold a commit
  /// here to model a slow disk); null: none. Process-wide.
  using Hook = std::function<void(const std::string& what, int64_t checkpoint)>;

  /// `what` names the sink in errors.
  explicit CommitQueue(std::string what);
  ~CommitQueue();
  CommitQueue(const CommitQueue&) = delete;
  CommitQueue& operator=(const CommitQueue&) = delete;

  /// Reads `sink.file.max-pending-commits` from the job's settings and
  /// keeps `ctx` for its mailbox and fail().
  Status open(runtime::OperatorContext& ctx);
  /// Queues the commit of everything up to checkpoint `checkpoint`
  /// (increasing from call to call). Suspends the writer's input while
  /// the queue holds max-pending-commits or more.
  void submit(int64_t checkpoint, Work work);
  /// Submitted commits not done yet (StreamOperator::commit_in_progress).
  bool in_progress() const { return committed_through() < submitted_through_; }
  /// The newest checkpoint whose commit is done (0 if none): its parts
  /// may leave the writer's checkpoint state.
  int64_t committed_through() const { return committed_.load(std::memory_order_acquire); }
  Status error() const;
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  /// Lets the commit running now finish (another run of the job must not
  /// find it half done while it recovers the same files) and drops the
  /// queued ones: the restore commits them. Idempotent.
  void stop();

  static void set_hook_for_tests(Hook hook);

 private:
  struct Item {
    int64_t checkpoint = 0;
    Work work;
  };
  /// State the commit thread and posted mailbox actions share with the
  /// queue; the actions may run after stop() (then they do nothing).
  struct Shared;
  void run();
  /// Task thread, after a commit (a mailbox action).
  void after_commit();

  const std::string what_;
  runtime::OperatorContext* ctx_ = nullptr;
  int64_t max_pending_ = kDefaultMaxPendingCommits;
  int64_t submitted_ = 0;           // task thread
  int64_t submitted_through_ = 0;   // task thread
  bool suspended_ = false;          // task thread: this queue suspended the input
  bool reported_ = false;           // task thread: the failure went to fail()
  int64_t suspended_at_ns_ = 0;     // task thread
  std::atomic<int64_t> done_{0};    // commits done (or dropped after a failure)
  std::atomic<int64_t> committed_{0};
  std::atomic<bool> failed_{false};
  mutable std::mutex mu_;  // guards queue_, stopping_, error_
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  Status error_;
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

}  // namespace sluice::file
