#include "engine/runtime/input_gate.h"

#include <algorithm>

#include "engine/runtime/barrier_handler.h"

namespace sluice::runtime {

// --- watermark valve ------------------------------------------------------------

WatermarkValve::WatermarkValve(std::vector<InputTarget> targets, std::atomic<int64_t>* metric)
    : targets_(std::move(targets)), metric_(metric), inputs_(targets_.size()) {}

void WatermarkValve::add_channel(int input) { channels_.push_back(ChannelState{input}); }

void WatermarkValve::on_watermark(size_t channel, EventTime wm) {
  ChannelState& c = channels_[channel];
  if (wm > c.watermark) c.watermark = wm;
  recompute(c.input);
}

void WatermarkValve::on_status(size_t channel, bool idle) {
  channels_[channel].idle = idle;
  recompute(channels_[channel].input);
}

void WatermarkValve::on_finished(size_t channel) {
  channels_[channel].finished = true;
  recompute(channels_[channel].input);
}

void WatermarkValve::recompute(int input) {
  InputState& in = inputs_[static_cast<size_t>(input)];
  bool any_active = false, any_open = false;
  EventTime min_wm = EventTime::max();
  for (const auto& c : channels_) {
    if (c.input != input || c.finished) continue;
    any_open = true;
    if (c.idle) continue;
    any_active = true;
    min_wm = std::min(min_wm, c.watermark);
  }
  if (any_open && !any_active) {
    if (!in.idle) {
      in.idle = true;
      update_metric();
      targets_[static_cast<size_t>(input)].op->process_watermark_status_input(
          targets_[static_cast<size_t>(input)].input, true);
    }
    return;
  }
  if (in.idle) {
    in.idle = false;
    targets_[static_cast<size_t>(input)].op->process_watermark_status_input(
        targets_[static_cast<size_t>(input)].input, false);
  }
  if (!any_open) min_wm = EventTime::max();
  if (min_wm > in.emitted) {
    in.emitted = min_wm;
    update_metric();
    targets_[static_cast<size_t>(input)].op->process_watermark_input(targets_[static_cast<size_t>(input)].input,
                                                                      min_wm);
  }
}

void WatermarkValve::update_metric() {
  if (!metric_) return;
  EventTime m = EventTime::max();
  bool any = false;
  for (const auto& in : inputs_) {
    if (in.idle) continue;
    any = true;
    m = std::min(m, in.emitted);
  }
  if (any) metric_->store(m.ms(), std::memory_order_relaxed);
}

// --- input gate ------------------------------------------------------------------

InputGate::InputGate(std::vector<InputChannel> channels, std::vector<InputTarget> targets,
                     std::atomic<int64_t>* watermark_metric, const std::atomic<bool>* failed,
                     const int* suspended)
    : channels_(std::move(channels)),
      valve_(std::move(targets), watermark_metric),
      failed_(failed),
      suspended_(suspended) {
  for (const auto& ic : channels_) valve_.add_channel(ic.input);
}

Result<InputGate::Progress> InputGate::poll(BarrierHandler& barriers) {
  const size_t n = channels_.size();
  for (size_t k = 0; k < n; ++k) {
    size_t ci = (next_ + k) % n;
    InputChannel& ic = channels_[ci];
    if (!ic.finished && ic.channel->broken()) [[unlikely]] {
      // A network channel whose producer connection was lost mid-stream.
      return ic.channel->failure_status("input channel " + ic.channel->name());
    }
    if (ic.finished || ic.blocked) continue;
    if (!ic.has_buffer) {
      if (!ic.channel->try_pop(ic.buffer)) continue;
      ic.has_buffer = true;
      ic.pos = 0;
      barriers.on_buffer_taken(ci);
    }
    next_ = (ci + 1) % n;
    SLUICE_RETURN_IF_ERROR(process_buffer(ci, barriers));
    return Progress::kProcessed;
  }
  if (finished_ == n) return Progress::kEnd;
  return Progress::kNothing;
}

Status InputGate::process_buffer(size_t ci, BarrierHandler& barriers) {
  InputChannel& ic = channels_[ci];
  std::string_view data(ic.buffer.data);
  frames::Frame f;
  while (ic.pos < data.size()) {
    if (!frames::next(data, ic.pos, f)) {
      return Status::corruption("undecodable frame on input channel " + ic.channel->name());
    }
    switch (f.kind) {
      case FrameKind::kRecord:
        if (ic.data_ended) [[unlikely]] {
          return Status::corruption("record after end of data on channel " + ic.channel->name());
        }
        if (!ic.handler->process(f.payload, f.ts)) {
          return Status::corruption("undecodable record on input channel " + ic.channel->name());
        }
        ++records_in_;
        // Stop mid-buffer (keeping the position) when the task failed or an
        // operator suspended its input.
        if (failed_->load(std::memory_order_relaxed) || *suspended_ > 0) [[unlikely]] {
          return Status::ok();
        }
        break;
      case FrameKind::kWatermark:
        valve_.on_watermark(ci, f.ts);
        break;
      case FrameKind::kStatus:
        valve_.on_status(ci, f.idle);
        break;
      case FrameKind::kBarrier:
        barriers.on_barrier(ci, f.barrier);
        if (ic.blocked) return Status::ok();  // resume after alignment
        break;
      case FrameKind::kEndOfData:
        mark_data_ended(ic);
        break;
      case FrameKind::kEndOfPartition:
        // Without EndOfData first, the producer was stopped.
        mark_data_ended(ic);
        ic.finished = true;
        ++finished_;
        ic.has_buffer = false;
        valve_.on_finished(ci);
        barriers.on_channel_finished(ci);
        return Status::ok();
    }
  }
  ic.has_buffer = false;
  ic.buffer.data.clear();
  return Status::ok();
}

Status InputGate::load_recorded(const std::vector<RecordedChannel>& recorded,
                                const std::string& what) {
  for (const auto& rc : recorded) {
    bool placed = false;
    for (auto& ic : channels_) {
      if (ic.edge == rc.edge && ic.producer == rc.producer) {
        ic.buffer.data = rc.frames;
        ic.has_buffer = true;
        ic.pos = 0;
        placed = true;
      }
    }
    if (!placed) {
      return Status::failed_precondition("recorded in-flight data of edge " +
                                         std::to_string(rc.edge) + " in '" + what +
                                         "' has no channel in this job; restore with the same "
                                         "graph and parallelism");
    }
  }
  return Status::ok();
}

}  // namespace sluice::runtime
