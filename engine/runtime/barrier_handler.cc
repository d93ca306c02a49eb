#include "engine/runtime/barrier_handler.h"

#include <spdlog/spdlog.h>

namespace sluice::runtime {

BarrierHandler::BarrierHandler(InputGate& gate, CheckpointPerformer& task, const Clock* clock,
                               Options options)
    : gate_(gate), task_(task), clock_(clock), options_(options) {}

void BarrierHandler::unblock_all() {
  for (auto& ic : gate_.channels()) ic.blocked = false;
}

// --- aligned ---------------------------------------------------------------------

void BarrierHandler::on_barrier(size_t ci, const Barrier& b) {
  if (b.id.value() <= task_.last_checkpoint()) {
    // Already snapshotted (unaligned) or stale (an aborted checkpoint).
    if (inflight_ && inflight_->snapshot.barrier.id == b.id && !inflight_->done[ci]) {
      channel_reached_barrier(ci);
    }
    return;
  }
  if (inflight_) abandon_inflight();  // a newer checkpoint: the old one was aborted
  if (pending_ && b.id.value() > pending_->id.value()) {
    // A newer checkpoint overtook the pending one: give that one up.
    task_.decline(pending_->id, Status::cancelled("subsumed by a newer checkpoint"));
    unblock_all();
    pending_.reset();
  }
  if (b.is_unaligned() && !b.must_align()) {
    start_unaligned(b, static_cast<int>(ci));
    return;
  }
  if (!pending_) {
    pending_ = b;
    alignment_start_ns_ = monotonic_ns();
  }
  if (b.id.value() == pending_->id.value()) gate_.channels()[ci].blocked = true;
  check_alignment();
}

void BarrierHandler::on_channel_finished(size_t ci) {
  if (inflight_ && !inflight_->done[ci]) channel_reached_barrier(ci);
  check_alignment();
}

void BarrierHandler::check_alignment() {
  if (!pending_) return;
  for (const auto& ic : gate_.channels())
    if (!ic.finished && !ic.blocked) return;
  Barrier b = *pending_;
  pending_.reset();
  unblock_all();
  PendingSnapshot snap;
  int64_t alignment_ns = monotonic_ns() - alignment_start_ns_;
  if (!task_.snapshot_operators(b, alignment_ns, snap)) return;
  task_.broadcast_barrier(b);
  task_.complete_snapshot(std::move(snap), {});
}

// --- unaligned ---------------------------------------------------------------------
//
// The task snapshots as soon as it learns of barrier N (its first barrier,
// an announcement on any channel, or an aligned checkpoint whose alignment
// timed out), forwards the barrier at once and records, per channel, the
// input that precedes that channel's barrier N: it is before the checkpoint
// for the producer but not in this task's snapshot, so it is stored with
// the checkpoint and replayed first on restore. Nothing blocks.

void BarrierHandler::abandon_inflight() {
  task_.decline(inflight_->snapshot.barrier.id, Status::cancelled("subsumed by a newer checkpoint"));
  inflight_.reset();
}

void BarrierHandler::check_triggers() {
  if (inflight_) {
    for (const auto& ic : gate_.channels()) {
      if (ic.channel->announced_barrier() > inflight_->snapshot.barrier.id.value()) {
        abandon_inflight();
        break;
      }
    }
    if (inflight_) return;
  }
  if (pending_) {
    // Savepoints stay aligned: they must not depend on in-flight records.
    if (options_.alignment_timeout_ns > 0 && !pending_->must_align() &&
        monotonic_ns() - alignment_start_ns_ > options_.alignment_timeout_ns) {
      Barrier b = *pending_;
      spdlog::debug("alignment of checkpoint {} timed out; continuing unaligned", b.id.value());
      start_unaligned(b, -1);
    }
    return;
  }
  if (!options_.unaligned) return;
  for (const auto& ic : gate_.channels()) {
    int64_t a = ic.channel->announced_barrier();
    if (a > task_.last_checkpoint()) {
      Barrier b;
      b.id = CheckpointId(a);
      b.trigger_time_ms = clock_->now_ms();
      b.set(BarrierFlag::kUnaligned);
      start_unaligned(b, -1);
      return;
    }
  }
}

void BarrierHandler::start_unaligned(const Barrier& b_in, int trigger_channel) {
  Barrier b = b_in;
  b.set(BarrierFlag::kUnaligned);
  auto& channels = gate_.channels();
  const size_t n = channels.size();
  InFlight f;
  f.recorded.assign(n, std::string());
  f.done.assign(n, false);
  f.peeked.assign(n, 0);
  int64_t alignment_ns = pending_ ? monotonic_ns() - alignment_start_ns_ : 0;
  if (!task_.snapshot_operators(b, alignment_ns, f.snapshot)) return;
  for (size_t ci = 0; ci < n; ++ci) {
    InputChannel& ic = channels[ci];
    // Channels blocked by the alignment already delivered the barrier.
    if (static_cast<int>(ci) == trigger_channel || ic.finished || ic.blocked) {
      f.done[ci] = true;
      continue;
    }
    if (ic.has_buffer) {
      size_t at = 0;
      if (frames::find_barrier(ic.buffer.data, ic.pos, b.id, at)) {
        f.recorded[ci].append(ic.buffer.data, ic.pos, at - ic.pos);
        f.done[ci] = true;
        continue;
      }
      f.recorded[ci].append(ic.buffer.data, ic.pos, std::string::npos);
    }
    bool found = false;
    f.peeked[ci] = ic.channel->peek_until_barrier(b.id, f.recorded[ci], found);
    if (found) f.done[ci] = true;
  }
  unblock_all();
  pending_.reset();
  f.remaining = 0;
  for (bool d : f.done) f.remaining += d ? 0 : 1;
  inflight_ = std::move(f);
  task_.broadcast_barrier(b);
  if (inflight_->remaining == 0) finish_unaligned();
}

void BarrierHandler::record_taken(size_t ci) {
  InFlight& f = *inflight_;
  if (f.peeked[ci] > 0) {  // recorded when the checkpoint started
    --f.peeked[ci];
    return;
  }
  const std::string& data = gate_.channels()[ci].buffer.data;
  size_t at = 0;
  if (frames::find_barrier(data, 0, f.snapshot.barrier.id, at)) {
    f.recorded[ci].append(data, 0, at);
    channel_reached_barrier(ci);
  } else {
    f.recorded[ci].append(data);
  }
}

void BarrierHandler::channel_reached_barrier(size_t ci) {
  InFlight& f = *inflight_;
  if (f.done[ci]) return;
  f.done[ci] = true;
  if (--f.remaining == 0) finish_unaligned();
}

void BarrierHandler::finish_unaligned() {
  InFlight f = std::move(*inflight_);
  inflight_.reset();
  std::vector<RecordedChannel> recorded;
  auto& channels = gate_.channels();
  for (size_t ci = 0; ci < f.recorded.size(); ++ci) {
    if (f.recorded[ci].empty()) continue;
    recorded.push_back(
        RecordedChannel{channels[ci].edge, channels[ci].producer, std::move(f.recorded[ci])});
  }
  task_.complete_snapshot(std::move(f.snapshot), std::move(recorded));
}

// --- the asynchronous part ------------------------------------------------------

void upload_snapshot(PendingSnapshot pending, std::vector<RecordedChannel> recorded,
                     const state::CheckpointStorage* storage, const std::string& channel_stem,
                     TaskListener* listener, const TaskId& id, AsyncExecutor* executor) {
  const bool savepoint = pending.barrier.is_savepoint();
  std::string channel_file;
  std::string channel_bytes;
  if (!recorded.empty() && storage) {
    channel_bytes = encode_channel_state(recorded);
    auto target = storage->target(pending.snap->id.value(), savepoint, channel_stem);
    channel_file = target.job_dir + "/" + target.own_dir + "/" + target.file_stem + ".channels";
  }
  std::string base = storage ? storage->job_dir() : "";
  auto work = [snap = std::move(pending.snap), parts = std::move(pending.async_parts), listener, id,
               channel_file, channel_bytes = std::move(channel_bytes), base, savepoint]() mutable {
    Status failed;
    for (auto& [index, part] : parts.keyed) {
      auto handle = part();
      if (!handle.is_ok()) {
        failed = handle.status();
        break;
      }
      snap->operators[index].keyed = std::move(*handle);
    }
    // Operators' parts hold resources (file descriptors to sync and close):
    // each runs, whatever failed before it.
    for (auto& [index, part] : parts.operator_state) {
      auto blob = part();
      part = nullptr;  // what it captured goes now, not with the checkpoint
      if (!blob.is_ok()) {
        if (failed.is_ok()) failed = blob.status();
        continue;
      }
      snap->operators[index].operator_state = std::move(*blob);
    }
    if (!failed.is_ok()) {
      if (listener) listener->on_checkpoint_declined(id, snap->id, failed);
      return;
    }
    if (!channel_file.empty()) {
      Status st = state::write_file_atomic(channel_file, channel_bytes);
      if (!st.is_ok()) {
        if (listener) listener->on_checkpoint_declined(id, snap->id, st);
        return;
      }
      // Relative to what the checkpoint's handles resolve against.
      std::string rel = channel_file;
      std::string prefix = savepoint ? "" : base + "/";
      if (savepoint) {
        rel = channel_file.substr(channel_file.find_last_of('/') + 1);
      } else if (rel.rfind(prefix, 0) == 0) {
        rel = rel.substr(prefix.size());
      }
      snap->channel_state = state::StateFile{rel, static_cast<int64_t>(channel_bytes.size()), false};
    }
    if (listener) listener->on_checkpoint_ack(id, std::move(*snap));
  };
  if (executor) executor->submit(std::move(work));
  else work();
}

}  // namespace sluice::runtime
