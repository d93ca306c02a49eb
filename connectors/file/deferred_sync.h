// Deferred fsyncs of the file sinks: what a sink must make durable for a
// checkpoint is captured at the barrier on the task thread (duplicated file
// descriptors, directories that got new entries) and synced in the
// checkpoint's asynchronous part on a snapshot thread, before the
// checkpoint is acknowledged. The barrier itself costs a dup() per file
// instead of an fsync, which under disk load takes seconds.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "engine/common/status.h"

namespace sluice::file {

/// The files and directories one sink writer still has to sync, in batches
/// (one per checkpoint). The task thread adds descriptors and directories
/// and seals a batch at every barrier; the checkpoint's asynchronous part
/// syncs every sealed batch up to its own, in order — also the batches of
/// earlier checkpoints whose part never ran (an abandoned checkpoint), so a
/// checkpoint that completes covers everything before it. The first failed
/// sync is kept: every later sync_through() returns it (after a failed
/// fsync the kernel may have dropped the pages: nothing written before is
/// trusted), and the writer fails its task with error().
///
/// Shared (shared_ptr) by the writer and the asynchronous parts of its
/// checkpoints, which may outlive it. add_*/seal: the writer's task thread;
/// sync_through and error: any thread. Descriptors still held when the last
/// owner goes are closed unsynced.
class DeferredSync {
 public:
  DeferredSync() = default;
  ~DeferredSync();
  DeferredSync(const DeferredSync&) = delete;
  DeferredSync& operator=(const DeferredSync&) = delete;

  /// Takes `fd` (a descriptor of `path`, e.g. a dup() of the one the writer
  /// goes on writing to): synced (fdatasync) and closed with the next batch.
  void add_file(int fd, std::string path);
  /// `dir` got a new entry (a file created or renamed): synced with the
  /// next batch. Repeats within a batch are synced once.
  void add_dir(const std::string& dir);
  /// At a barrier: what was added since the last seal() becomes a batch;
  /// returns its number (increasing from 1).
  uint64_t seal();
  /// Syncs and closes every sealed batch numbered up to `batch` not synced
  /// yet, oldest first. Returns the first error of any sync so far.
  Status sync_through(uint64_t batch);
  /// The first error of a sync so far (ok if none).
  Status error() const;
  bool failed() const { return failed_.load(std::memory_order_acquire); }

 private:
  struct Batch {
    uint64_t number = 0;
    std::vector<std::pair<int, std::string>> files;  // descriptor, path
    std::vector<std::string> dirs;
  };
  static void close_all(Batch& b);

  Batch open_;              // being filled; task thread only
  uint64_t sealed_ = 0;     // batches sealed; task thread only
  mutable std::mutex mu_;   // guards queue_ and error_ (held briefly)
  std::deque<Batch> queue_;
  Status error_;
  std::atomic<bool> failed_{false};
  std::mutex sync_mu_;      // one sync_through at a time, so batches sync in order
};

}  // namespace sluice::file
