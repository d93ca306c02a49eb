#include "engine/runtime/record_writer.h"

namespace sluice::runtime {

RecordWriter::RecordWriter(std::vector<std::shared_ptr<Channel>> channels,
                           const CancelFlag* cancel, size_t buffer_bytes, const std::atomic<bool>* failed)
    : channels_(std::move(channels)),
      pending_(channels_.size()),
      cancel_(cancel),
      failed_(failed),
      buffer_bytes_(buffer_bytes) {
  for (auto& p : pending_) p.reserve(buffer_bytes_ + 256);
}

bool RecordWriter::drop_if_stopped() {
  if (!stopped()) [[likely]] return false;
  for (auto& p : pending_) p.clear();
  return true;
}

void RecordWriter::flush(int ch) {
  std::string& p = pending_[ch];
  if (p.empty() || drop_if_stopped()) return;
  stats_.bytes += p.size();
  Buffer b{std::move(p)};
  p = std::string();
  p.reserve(buffer_bytes_ + 256);
  if (!channels_[ch]->push(std::move(b), cancel_, &stats_.blocked_ns)) broken_ = true;
}

void RecordWriter::flush_all() {
  for (int ch = 0; ch < num_channels(); ++ch) flush(ch);
}

bool RecordWriter::has_pending() const {
  for (const auto& p : pending_)
    if (!p.empty()) return true;
  return false;
}

void RecordWriter::broadcast_watermark(EventTime wm) {
  for (int ch = 0; ch < num_channels(); ++ch) {
    frames::append_watermark(pending_[ch], wm);
    if (flush_on_watermark_ || pending_[ch].size() >= buffer_bytes_) flush(ch);
  }
}

void RecordWriter::broadcast_status(bool idle) {
  for (int ch = 0; ch < num_channels(); ++ch) frames::append_status(pending_[ch], idle);
  flush_all();
}

void RecordWriter::broadcast_barrier(const Barrier& b) {
  if (drop_if_stopped()) return;
  for (int ch = 0; ch < num_channels(); ++ch) {
    std::string& p = pending_[ch];
    frames::append_barrier(p, b);
    stats_.bytes += p.size();
    // Never blocks: a barrier must get out even when the consumer lags
    // (the channel may go one buffer over its capacity).
    channels_[ch]->push_unbounded(Buffer{std::move(p)});
    p = std::string();
    p.reserve(buffer_bytes_ + 256);
    channels_[ch]->announce_barrier(b);
  }
}

void RecordWriter::broadcast_end_of_data() {
  for (int ch = 0; ch < num_channels(); ++ch) frames::append_end_of_data(pending_[ch]);
  flush_all();
}

void RecordWriter::broadcast_end_of_partition() {
  for (int ch = 0; ch < num_channels(); ++ch) {
    frames::append_end_of_partition(pending_[ch]);
    std::string& p = pending_[ch];
    stats_.bytes += p.size();
    // Unbounded: a producer that is done must not block on a consumer that
    // may itself be waiting for the end of this stream.
    channels_[ch]->push_unbounded(Buffer{std::move(p)});
    p = std::string();
  }
}

}  // namespace sluice::runtime
