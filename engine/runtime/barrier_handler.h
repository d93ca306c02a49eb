// Checkpoint barriers on a task's inputs: aligned checkpoints (block each
// input that delivered barrier N until all have) and unaligned ones (take
// the snapshot as soon as barrier N is known, forward it at once, and
// record the input that precedes it on every channel).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/clock.h"
#include "engine/runtime/channel_state.h"
#include "engine/runtime/frames.h"
#include "engine/runtime/input_gate.h"
#include "engine/runtime/operator_chain.h"
#include "engine/runtime/task.h"

namespace sluice::runtime {

/// The synchronous part of a task's checkpoint, waiting for its
/// asynchronous parts (keyed-state files, operators' own asynchronous parts
/// such as a sink's fsync) and, when unaligned, for the recording of
/// in-flight input.
struct PendingSnapshot {
  Barrier barrier;
  std::shared_ptr<TaskSnapshot> snap;
  AsyncSnapshotParts async_parts;
};

/// What a barrier handler asks of its task. Task thread.
class CheckpointPerformer {
 public:
  virtual ~CheckpointPerformer() = default;
  /// The newest checkpoint this task snapshotted (0 if none).
  virtual int64_t last_checkpoint() const = 0;
  /// Snapshots every operator (synchronous part); false if that failed
  /// (the checkpoint is declined and the task is failing).
  virtual bool snapshot_operators(const Barrier& b, int64_t alignment_ns, PendingSnapshot& out) = 0;
  /// Sends `b` on every output.
  virtual void broadcast_barrier(const Barrier& b) = 0;
  /// Starts the asynchronous part, which acknowledges the checkpoint.
  virtual void complete_snapshot(PendingSnapshot snap, std::vector<RecordedChannel> recorded) = 0;
  virtual void decline(CheckpointId id, const Status& why) = 0;
};

/// Barrier alignment and unaligned checkpoints of one task (see the file
/// comment and engine/README.md). Task thread only; owned by the task,
/// which feeds it from its InputGate.
class BarrierHandler {
 public:
  struct Options {
    /// checkpoint.unaligned: take checkpoints announced as unaligned at once.
    bool unaligned = false;
    /// checkpoint.alignment-timeout: an aligned checkpoint whose alignment
    /// takes longer continues unaligned. 0 = never.
    int64_t alignment_timeout_ns = 0;
  };
  BarrierHandler(InputGate& gate, CheckpointPerformer& task, const Clock* clock, Options options);

  /// Barrier `b` reached the head of channel `ci`.
  void on_barrier(size_t ci, const Barrier& b);
  /// Channel `ci` ended (EndOfPartition): it no longer holds alignment back.
  void on_channel_finished(size_t ci);
  /// The gate took a new buffer from channel `ci`.
  void on_buffer_taken(size_t ci) {
    if (inflight_ && !inflight_->done[ci]) record_taken(ci);
  }
  /// Whether check_triggers() has anything to look at (cheap).
  bool needs_polling() const {
    return options_.unaligned || options_.alignment_timeout_ns > 0 || inflight_.has_value();
  }
  /// Starts an unaligned checkpoint announced on a channel (before its
  /// barrier is read), or one whose alignment timed out; gives up a
  /// recording overtaken by a newer checkpoint. Works while the input is
  /// suspended: it reads the channels' announcements and queues only.
  void check_triggers();
  /// An aligned checkpoint is waiting for barriers (the task polls more
  /// often to notice an alignment timeout).
  bool aligning() const { return pending_.has_value(); }

 private:
  void check_alignment();
  void start_unaligned(const Barrier& b, int trigger_channel);
  void record_taken(size_t ci);
  void channel_reached_barrier(size_t ci);
  void finish_unaligned();
  void abandon_inflight();
  void unblock_all();

  // An unaligned checkpoint whose in-flight input is still being recorded.
  struct InFlight {
    PendingSnapshot snapshot;
    std::vector<std::string> recorded;  // per input channel
    std::vector<bool> done;             // the channel's barrier was reached
    std::vector<size_t> peeked;         // queued buffers already recorded
    size_t remaining = 0;
  };

  InputGate& gate_;
  CheckpointPerformer& task_;
  const Clock* clock_;
  Options options_;
  std::optional<Barrier> pending_;  // aligned checkpoint being aligned
  int64_t alignment_start_ns_ = 0;
  std::optional<InFlight> inflight_;
};

/// The asynchronous part of a task's checkpoint: on `executor` (inline if
/// null) writes the keyed-state files and the recorded input (channel_state.h)
/// under `storage` and runs the operators' asynchronous parts (every one of
/// them, also after a failure, so each releases what it captured), then
/// acknowledges to `listener` if all succeeded, or declines with the first
/// error: a checkpoint is never acknowledged before its asynchronous work
/// is done, and a failed one is never committed.
void upload_snapshot(PendingSnapshot pending, std::vector<RecordedChannel> recorded,
                     const state::CheckpointStorage* storage, const std::string& channel_stem,
                     TaskListener* listener, const TaskId& id, AsyncExecutor* executor);

}  // namespace sluice::runtime
