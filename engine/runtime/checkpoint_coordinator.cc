#include "engine/runtime/checkpoint_coordinator.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "engine/proto/jobgraph.pb.h"

namespace sluice::runtime {

Result<CheckpointConfig> CheckpointConfig::from(const Configuration& c) {
  CheckpointConfig cfg;
  SLUICE_ASSIGN_OR_RETURN(cfg.interval, c.get_duration("checkpoint.interval", cfg.interval));
  SLUICE_ASSIGN_OR_RETURN(cfg.timeout, c.get_duration("checkpoint.timeout", cfg.timeout));
  SLUICE_ASSIGN_OR_RETURN(cfg.min_pause, c.get_duration("checkpoint.min-pause", cfg.min_pause));
  SLUICE_ASSIGN_OR_RETURN(int64_t retained, c.get_int("checkpoint.retained", cfg.retained));
  SLUICE_ASSIGN_OR_RETURN(cfg.unaligned, c.get_bool("checkpoint.unaligned", cfg.unaligned));
  SLUICE_ASSIGN_OR_RETURN(cfg.alignment_timeout,
                          c.get_duration("checkpoint.alignment-timeout", cfg.alignment_timeout));
  if (retained < 1) return Status::invalid_argument("checkpoint.retained must be at least 1");
  if (cfg.interval.count() < 0 || cfg.timeout.count() <= 0) {
    return Status::invalid_argument("checkpoint.interval must be >= 0 and checkpoint.timeout > 0");
  }
  cfg.retained = static_cast<int>(retained);
  return cfg;
}

CheckpointCoordinator::CheckpointCoordinator(CheckpointConfig config,
                                             std::shared_ptr<const state::CheckpointStorage> storage,
                                             std::shared_ptr<const proto::JobGraph> job_graph,
                                             CheckpointGateway* gateway, const Clock* clock,
                                             int64_t first_id)
    : config_(config),
      storage_(std::move(storage)),
      job_graph_(std::move(job_graph)),
      gateway_(gateway),
      clock_(clock),
      next_id_(first_id) {
  for (const auto& v : job_graph_->vertices()) {
    expected_acks_ += static_cast<size_t>(v.parallelism());
    if (v.is_source()) source_tasks_ += static_cast<size_t>(v.parallelism());
  }
  next_trigger_ms_ = clock_->now_ms() + config_.interval.count();
}

CheckpointCoordinator::~CheckpointCoordinator() { stop(); }

void CheckpointCoordinator::start() {
  std::lock_guard lk(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { loop(); });
}

void CheckpointCoordinator::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    abort_locked(Status::cancelled("the job stopped"));
    for (auto& p : savepoint_requests_) p.set_value(Status::cancelled("the job stopped"));
    savepoint_requests_.clear();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status CheckpointCoordinator::adopt_existing() {
  SLUICE_RETURN_IF_ERROR(storage_->remove_incomplete());
  SLUICE_ASSIGN_OR_RETURN(auto list, storage_->list_completed());
  std::lock_guard lk(mu_);
  completed_ = std::move(list);
  return Status::ok();
}

void CheckpointCoordinator::reset_for_attempt(int attempt) {
  std::lock_guard lk(mu_);
  abort_locked(Status::cancelled("the job restarted"));
  attempt_ = attempt;
  ended_sources_.clear();
  final_done_ = false;
  next_trigger_ms_ = clock_->now_ms() + config_.interval.count();
}

bool CheckpointCoordinator::all_sources_ended_locked() const {
  return source_tasks_ > 0 && ended_sources_.size() >= source_tasks_;
}

Result<CheckpointId> CheckpointCoordinator::trigger_locked(bool savepoint) {
  if (pending_) return Status::unavailable("checkpoint " + std::to_string(pending_->id.value()) +
                                           " is still in progress");
  Pending p;
  p.id = CheckpointId(next_id_++);
  p.savepoint = savepoint;
  p.final_checkpoint = all_sources_ended_locked();
  p.trigger_ms = clock_->now_ms();
  pending_ = std::move(p);
  Barrier b;
  b.id = pending_->id;
  b.trigger_time_ms = pending_->trigger_ms;
  const bool final_cp = pending_->final_checkpoint;
  b.set(BarrierFlag::kSavepoint, savepoint)
      .set(BarrierFlag::kUnaligned, !savepoint && !final_cp && config_.unaligned)
      .set(BarrierFlag::kFinal, final_cp);
  gateway_->trigger_sources(b);
  return pending_->id;
}

Result<CheckpointId> CheckpointCoordinator::trigger_checkpoint() {
  std::lock_guard lk(mu_);
  return trigger_locked(false);
}

std::future<Result<state::StoredCheckpoint>> CheckpointCoordinator::trigger_savepoint(bool stop) {
  std::promise<Result<state::StoredCheckpoint>> promise;
  auto f = promise.get_future();
  {
    std::lock_guard lk(mu_);
    if (stopping_) {
      promise.set_value(Status::cancelled("the job is stopping"));
      return f;
    }
    if (stop) suspended_ = true;
    savepoint_requests_.push_back(std::move(promise));
  }
  cv_.notify_all();
  return f;
}

void CheckpointCoordinator::acknowledge(const TaskId& task, TaskSnapshot snapshot) {
  std::lock_guard lk(mu_);
  if (task.attempt != attempt_ || !pending_ || snapshot.id != pending_->id) return;  // stale
  pending_->acks[{task.vertex, task.subtask}] = std::move(snapshot);
  if (pending_->acks.size() == expected_acks_) {
    Pending p = std::move(*pending_);
    pending_.reset();
    complete_locked(p);
  }
}

void CheckpointCoordinator::decline(const TaskId& task, CheckpointId id, const Status& why) {
  std::lock_guard lk(mu_);
  if (task.attempt != attempt_ || !pending_ || id != pending_->id) return;
  spdlog::warn("checkpoint {} declined by {}: {}", id.value(), task.to_string(), why.to_string());
  abort_locked(why);
}

void CheckpointCoordinator::source_ended(const TaskId& task) {
  {
    std::lock_guard lk(mu_);
    if (task.attempt != attempt_) return;
    ended_sources_.insert({task.vertex, task.subtask});
  }
  cv_.notify_all();
}

std::string_view checkpoint_outcome_name(CheckpointHistoryEntry::Outcome o) {
  switch (o) {
    case CheckpointHistoryEntry::Outcome::kInProgress: return "IN_PROGRESS";
    case CheckpointHistoryEntry::Outcome::kCompleted: return "COMPLETED";
    case CheckpointHistoryEntry::Outcome::kFailed: return "FAILED";
  }
  return "?";
}

void CheckpointCoordinator::record_locked(CheckpointHistoryEntry e) {
  history_.push_back(std::move(e));
  while (history_.size() > kHistorySize) history_.pop_front();
}

void CheckpointCoordinator::abort_locked(const Status& why) {
  if (!pending_) return;
  CheckpointId id = pending_->id;
  ++stats_.failed;
  {
    CheckpointHistoryEntry e;
    e.id = id.value();
    e.savepoint = pending_->savepoint;
    e.outcome = CheckpointHistoryEntry::Outcome::kFailed;
    e.trigger_ms = pending_->trigger_ms;
    e.duration_ms = clock_->now_ms() - pending_->trigger_ms;
    e.acknowledged = static_cast<int>(pending_->acks.size());
    e.tasks = static_cast<int>(expected_acks_);
    e.failure = why.message().empty() ? why.to_string() : why.message();
    record_locked(std::move(e));
  }
  if (pending_->promise) pending_->promise->set_value(why);
  pending_.reset();
  last_end_ms_ = clock_->now_ms();
  gateway_->notify_aborted(id);
}

void CheckpointCoordinator::complete_locked(Pending& p) {
  state::CheckpointMetadata m;
  m.id = p.id.value();
  m.timestamp_ms = p.trigger_ms;
  m.savepoint = p.savepoint;
  m.job_name = job_graph_->name();
  m.graph_hash = job_graph_->hash();
  int64_t max_align = 0, max_sync = 0;
  for (const auto& v : job_graph_->vertices()) {
    for (int i = 0; i < v.operators_size(); ++i) {
      state::OperatorStateMeta om;
      om.uid = v.operators(i).uid();
      om.parallelism = v.parallelism();
      om.max_parallelism = v.max_parallelism();
      for (int s = 0; s < v.parallelism(); ++s) {
        auto it = p.acks.find({v.id(), s});
        if (it == p.acks.end() || i >= static_cast<int>(it->second.operators.size())) continue;
        auto& os = it->second.operators[i];
        state::SubtaskStateMeta sm;
        sm.subtask = s;
        sm.operator_state = std::move(os.operator_state);
        sm.keyed = std::move(os.keyed);
        om.subtasks.push_back(std::move(sm));
        max_align = std::max(max_align, it->second.alignment_ns);
        max_sync = std::max(max_sync, it->second.sync_ns);
      }
      m.operators.push_back(std::move(om));
    }
    for (int s = 0; s < v.parallelism(); ++s) {
      auto it = p.acks.find({v.id(), s});
      if (it == p.acks.end() || !it->second.channel_state) continue;
      state::ChannelStateMeta cm;
      cm.head_uid = v.operators(0).uid();
      cm.subtask = s;
      cm.parallelism = v.parallelism();
      cm.file = *it->second.channel_state;
      m.channels.push_back(std::move(cm));
    }
  }
  Status st = storage_->write_metadata(m);
  last_end_ms_ = clock_->now_ms();
  if (!st.is_ok()) {
    ++stats_.failed;
    CheckpointHistoryEntry e;
    e.id = m.id;
    e.savepoint = m.savepoint;
    e.outcome = CheckpointHistoryEntry::Outcome::kFailed;
    e.trigger_ms = p.trigger_ms;
    e.duration_ms = last_end_ms_ - p.trigger_ms;
    e.acknowledged = static_cast<int>(p.acks.size());
    e.tasks = static_cast<int>(expected_acks_);
    e.failure = "writing its metadata: " + st.to_string();
    record_locked(std::move(e));
    spdlog::error("checkpoint {} could not be completed: {}", m.id, st.to_string());
    if (p.promise) p.promise->set_value(st);
    gateway_->notify_aborted(p.id);
    return;
  }
  state::StoredCheckpoint stored;
  stored.meta = m;
  stored.dir = storage_->job_dir() + "/" + state::CheckpointStorage::dir_name(m.id, m.savepoint);
  stored.base_dir = m.savepoint ? stored.dir : storage_->job_dir();

  ++stats_.completed;
  stats_.last_completed_id = m.id;
  stats_.last_duration_ms = last_end_ms_ - p.trigger_ms;
  stats_.last_size_bytes = m.size_bytes();
  stats_.last_alignment_ms = max_align / 1'000'000;
  stats_.last_sync_ms = max_sync / 1'000'000;
  stats_.last_path = stored.dir;
  {
    CheckpointHistoryEntry e;
    e.id = m.id;
    e.savepoint = m.savepoint;
    e.outcome = CheckpointHistoryEntry::Outcome::kCompleted;
    e.trigger_ms = p.trigger_ms;
    e.duration_ms = stats_.last_duration_ms;
    e.size_bytes = stats_.last_size_bytes;
    e.alignment_ms = stats_.last_alignment_ms;
    e.sync_ms = stats_.last_sync_ms;
    e.acknowledged = static_cast<int>(p.acks.size());
    e.tasks = static_cast<int>(expected_acks_);
    e.path = stored.dir;
    record_locked(std::move(e));
  }
  spdlog::info("{} {} complete: {} bytes in {} ms ({})", m.savepoint ? "savepoint" : "checkpoint",
               m.id, stats_.last_size_bytes, stats_.last_duration_ms, stored.dir);

  if (!m.savepoint) {
    completed_.push_back(stored);
    while (static_cast<int>(completed_.size()) > config_.retained) {
      state::StoredCheckpoint old = std::move(completed_.front());
      completed_.erase(completed_.begin());
      std::set<std::string> keep;
      for (const auto& c : completed_) {
        auto files = c.meta.shared_files();
        keep.insert(files.begin(), files.end());
      }
      Status ds = storage_->discard(old, keep);
      if (!ds.is_ok()) spdlog::warn("discarding checkpoint {}: {}", old.meta.id, ds.to_string());
    }
  }
  if (p.final_checkpoint) final_done_ = true;
  gateway_->notify_complete(p.id, p.final_checkpoint);
  if (p.promise) p.promise->set_value(std::move(stored));
}

void CheckpointCoordinator::loop() {
  std::unique_lock lk(mu_);
  while (!stopping_) {
    int64_t now = clock_->now_ms();
    if (pending_ && now - pending_->trigger_ms > config_.timeout.count()) {
      spdlog::warn("checkpoint {} timed out after {}", pending_->id.value(),
                   format_duration(config_.timeout));
      abort_locked(Status::timeout("checkpoint timed out"));
    }
    bool paused = now - last_end_ms_ < config_.min_pause.count();
    if (!pending_ && !savepoint_requests_.empty()) {
      auto id = trigger_locked(true);
      if (id.is_ok()) {
        pending_->promise = std::move(savepoint_requests_.front());
      } else {
        savepoint_requests_.front().set_value(id.status());
      }
      savepoint_requests_.pop_front();
    } else if (suspended_) {
      // Stopping with a savepoint: nothing after it may commit.
    } else if (!pending_ && all_sources_ended_locked() && !final_done_) {
      (void)trigger_locked(false);  // the final checkpoint: nothing new will come
    } else if (!pending_ && !paused && config_.interval.count() > 0 && now >= next_trigger_ms_ &&
               !all_sources_ended_locked()) {
      (void)trigger_locked(false);
      next_trigger_ms_ = now + config_.interval.count();
    }
    cv_.wait_for(lk, std::chrono::milliseconds(20));
  }
}

void CheckpointCoordinator::resume_checkpoints() {
  {
    std::lock_guard lk(mu_);
    suspended_ = false;
  }
  cv_.notify_all();
}

std::optional<state::StoredCheckpoint> CheckpointCoordinator::latest_completed() const {
  std::lock_guard lk(mu_);
  if (completed_.empty()) return std::nullopt;
  return completed_.back();
}

CheckpointStats CheckpointCoordinator::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

std::vector<CheckpointHistoryEntry> CheckpointCoordinator::history() const {
  std::lock_guard lk(mu_);
  std::vector<CheckpointHistoryEntry> out(history_.begin(), history_.end());
  if (pending_) {
    CheckpointHistoryEntry e;
    e.id = pending_->id.value();
    e.savepoint = pending_->savepoint;
    e.trigger_ms = pending_->trigger_ms;
    e.duration_ms = clock_->now_ms() - pending_->trigger_ms;
    e.acknowledged = static_cast<int>(pending_->acks.size());
    e.tasks = static_cast<int>(expected_acks_);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace sluice::runtime
