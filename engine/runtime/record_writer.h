// RecordWriter: the producing end of one job edge for one subtask. Holds a
// pending buffer per consumer channel; records are serialized straight into
// it and the buffer is handed to the channel when it is full, when an event
// must go out (barrier, end of partition), or when the task flushes (input
// idle or the buffer timeout passed).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/runtime/channel.h"
#include "engine/runtime/frames.h"

namespace sluice::runtime {

/// Counters a writer keeps for metrics (task thread only).
struct WriterStats {
  uint64_t records = 0;
  uint64_t bytes = 0;
  int64_t blocked_ns = 0;  // time spent waiting for channel space (backpressure)
};

/// Used only by the task thread that owns it.
class RecordWriter {
 public:
  /// Default flush threshold of a pending buffer.
  static constexpr size_t kDefaultBufferBytes = 32 * 1024;

  /// `failed` (may be null): the task's failure flag. Once it is set the
  /// writer sends nothing more — not the records after the failing one,
  /// not a later watermark or barrier; what is pending is dropped (the
  /// restart replays it).
  RecordWriter(std::vector<std::shared_ptr<Channel>> channels, const CancelFlag* cancel,
               size_t buffer_bytes = kDefaultBufferBytes, const std::atomic<bool>* failed = nullptr);
  RecordWriter(const RecordWriter&) = delete;
  RecordWriter& operator=(const RecordWriter&) = delete;

  int num_channels() const { return static_cast<int>(channels_.size()); }

  /// The pending buffer of channel `ch`, to append one record frame to.
  std::string& buffer(int ch) { return pending_[ch]; }
  /// Call after appending one record to buffer(ch).
  void record_appended(int ch) {
    ++stats_.records;
    if (pending_[ch].size() >= buffer_bytes_) flush(ch);
  }

  /// Appends the watermark to every channel; sends the buffers at once when
  /// flush-on-watermark is set (the default), else only full ones.
  void broadcast_watermark(EventTime wm);
  void set_flush_on_watermark(bool on) { flush_on_watermark_ = on; }
  void broadcast_status(bool idle);
  /// Barriers overtake nothing: they follow the records already written.
  void broadcast_barrier(const Barrier& b);
  /// No more records will follow (barriers still may).
  void broadcast_end_of_data();
  /// Flushes everything and marks the end of this producer's stream.
  void broadcast_end_of_partition();

  void flush(int ch);
  void flush_all();
  bool has_pending() const;

  const WriterStats& stats() const { return stats_; }
  /// True once a push failed because the task was cancelled or the consumer
  /// closed the channel.
  bool broken() const { return broken_; }

 private:
  std::vector<std::shared_ptr<Channel>> channels_;
  std::vector<std::string> pending_;
  bool stopped() const { return failed_ && failed_->load(std::memory_order_relaxed); }
  /// Empties every pending buffer; true if the task failed (send nothing).
  bool drop_if_stopped();

  const CancelFlag* cancel_;
  const std::atomic<bool>* failed_;
  const size_t buffer_bytes_;
  WriterStats stats_;
  bool broken_ = false;
  bool flush_on_watermark_ = true;
};

}  // namespace sluice::runtime
