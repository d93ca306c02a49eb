// The input side of a task: its input channels, the decoding of the frames
// they carry, and the watermark valve that turns per-channel watermarks
// into the watermark of each logical input of the operators they feed.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/common/status.h"
#include "engine/common/time.h"
#include "engine/runtime/channel.h"
#include "engine/runtime/channel_state.h"
#include "engine/runtime/frames.h"
#include "engine/runtime/operator.h"
#include "engine/runtime/type_info.h"

namespace sluice::runtime {

/// An input of the task: an input of one of its operators fed by job
/// edges (the head's inputs; with chained two-input operators also an
/// input of a chained operator, e.g. the broadcast side of a broadcast
/// process function chained behind the head). Not owned.
struct InputTarget {
  StreamOperator* op = nullptr;
  int input = 0;  // the operator's input index
};

/// One input channel of a task as its gate tracks it. `input` is the
/// task's input (index into the gate's InputTargets) it feeds.
struct InputChannel {
  std::shared_ptr<Channel> channel;
  int edge = 0;
  int producer = 0;
  int input = 0;
  InputHandler* handler = nullptr;
  Buffer buffer;  // the buffer being processed (has_buffer), from `pos` on
  size_t pos = 0;
  bool has_buffer = false;
  bool data_ended = false;  // EndOfData received: no more records
  bool finished = false;    // EndOfPartition received: nothing more at all
  bool blocked = false;     // delivered the barrier of the pending aligned checkpoint
};

/// Flink's StatusWatermarkValve: the watermark of a logical input is the
/// minimum over its channels that are neither idle nor finished, and never
/// goes back; an input whose open channels are all idle is idle; an input
/// whose channels all finished is at EventTime::max(). Calls its target
/// operator's process_watermark_input / process_watermark_status_input
/// (an operator with several inputs combines them, see TwoInputOperator).
/// Task thread only; owned by the InputGate.
class WatermarkValve {
 public:
  /// `metric` (may be null) receives the minimum over the active inputs.
  WatermarkValve(std::vector<InputTarget> targets, std::atomic<int64_t>* metric);
  /// Registers channel number `channel` (0, 1, ... in order) of `input`.
  void add_channel(int input);
  void on_watermark(size_t channel, EventTime wm);
  void on_status(size_t channel, bool idle);
  void on_finished(size_t channel);

 private:
  struct ChannelState {
    int input = 0;
    EventTime watermark = EventTime::min();
    bool idle = false;
    bool finished = false;
  };
  struct InputState {
    EventTime emitted = EventTime::min();
    bool idle = false;
  };
  void recompute(int input);
  void update_metric();

  std::vector<InputTarget> targets_;
  std::atomic<int64_t>* metric_;
  std::vector<ChannelState> channels_;
  std::vector<InputState> inputs_;
};

class BarrierHandler;

/// Reads the task's input channels round-robin, one buffer at a time, and
/// hands on what the frames hold: records to the input
/// handlers, watermarks and idleness to the valve, barriers and channel
/// ends to the barrier handler. Task thread only; owned by the task.
class InputGate {
 public:
  enum class Progress { kProcessed, kNothing, kEnd };

  /// `failed` is the task's failure flag and `suspended` the number of
  /// operators that suspended their input (OperatorChain); both are checked
  /// after every record, so an operator at capacity gets no further record
  /// of a buffer (the rest of it waits, in order, with what follows it).
  InputGate(std::vector<InputChannel> channels, std::vector<InputTarget> targets,
            std::atomic<int64_t>* watermark_metric, const std::atomic<bool>* failed,
            const int* suspended);

  /// Processes the rest of the current buffer of one channel, or the next
  /// buffer of the next channel that has one.
  Result<Progress> poll(BarrierHandler& barriers);
  /// Recorded in-flight input of an unaligned checkpoint: processed before
  /// anything new on its channel.
  Status load_recorded(const std::vector<RecordedChannel>& recorded, const std::string& what);

  std::vector<InputChannel>& channels() { return channels_; }
  bool empty() const { return channels_.empty(); }
  size_t size() const { return channels_.size(); }
  /// Every channel delivered EndOfData (or ended).
  bool all_data_ended() const { return data_ended_ == channels_.size(); }
  /// Records processed since the last call.
  uint64_t take_records_in() { return std::exchange(records_in_, 0); }

 private:
  Status process_buffer(size_t ci, BarrierHandler& barriers);
  void mark_data_ended(InputChannel& ic) {
    if (ic.data_ended) return;
    ic.data_ended = true;
    ++data_ended_;
  }

  std::vector<InputChannel> channels_;
  WatermarkValve valve_;
  const std::atomic<bool>* failed_;
  const int* suspended_;
  size_t next_ = 0;
  size_t finished_ = 0;
  size_t data_ended_ = 0;
  uint64_t records_in_ = 0;
};

}  // namespace sluice::runtime
