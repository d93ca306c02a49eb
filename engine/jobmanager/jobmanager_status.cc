// The jobmanager's status views (CLI status, HTTP JSON, dashboard).
#include "engine/jobmanager/jobmanager_impl.h"

namespace sluice::jobmanager {

JobManager::Impl::CheckpointView JobManager::Impl::checkpoint_view(Job& j, bool with_history) {
  CheckpointView v;
  if (j.coordinator) {
    v.stats = j.coordinator->stats();
    if (v.stats.last_completed_id == 0) {
      // Restarted jobmanager: the stats start afresh, storage knows better.
      if (auto latest = j.coordinator->latest_completed()) v.stats.last_completed_id = latest->meta.id;
    }
    if (with_history) v.history = j.coordinator->history();
  } else {
    v.stats.last_completed_id = j.recovered_last_checkpoint;
  }
  return v;
}

proto::JobSummary JobManager::Impl::summary_locked(Job& j, const CheckpointView& cv) {
  proto::JobSummary s;
  s.set_job_id(j.rec.job_id());
  s.set_name(j.graph->name());
  s.set_state(j.rec.state());
  s.set_parallelism(j.rec.parallelism());
  s.set_submitted_ms(j.rec.submitted_ms());
  s.set_ended_ms(j.rec.ended_ms());
  s.set_restarts(j.rec.restarts());
  s.set_last_failure(j.rec.last_failure());
  s.set_graph_hash(j.graph->hash());
  s.set_last_checkpoint_id(cv.stats.last_completed_id);
  s.set_checkpoints_completed(cv.stats.completed);
  s.set_last_recovery_ms(j.last_recovery_ms);
  s.set_gave_up(j.rec.gave_up());
  s.set_recent_failures(j.policy.failures_in_interval(steady_ms()));
  return s;
}

proto::JobSummary JobManager::Impl::summary(Job& j) {
  auto cv = checkpoint_view(j, false);
  std::lock_guard lk(mu_);
  return summary_locked(j, cv);
}

proto::JobStatusResponse JobManager::Impl::status(Job& j) {
  proto::JobStatusResponse r;
  auto cv = checkpoint_view(j, true);
  auto* c = r.mutable_checkpoints();
  c->set_completed(cv.stats.completed);
  c->set_failed(cv.stats.failed);
  c->set_last_completed_id(cv.stats.last_completed_id);
  c->set_last_duration_ms(cv.stats.last_duration_ms);
  c->set_last_size_bytes(cv.stats.last_size_bytes);
  c->set_last_alignment_ms(cv.stats.last_alignment_ms);
  c->set_last_sync_ms(cv.stats.last_sync_ms);
  c->set_last_path(cv.stats.last_path);
  // The coordinator's clock is the system clock: trigger times are epoch ms.
  for (const auto& h : cv.history) {
    auto* e = c->add_history();
    e->set_id(h.id);
    e->set_savepoint(h.savepoint);
    e->set_status(std::string(runtime::checkpoint_outcome_name(h.outcome)));
    e->set_trigger_ms(h.trigger_ms);
    e->set_duration_ms(h.duration_ms);
    e->set_size_bytes(h.size_bytes);
    e->set_alignment_ms(h.alignment_ms);
    e->set_sync_ms(h.sync_ms);
    e->set_acknowledged(h.acknowledged);
    e->set_tasks(h.tasks);
    e->set_failure(h.failure);
    e->set_path(h.path);
    if (h.outcome == runtime::CheckpointHistoryEntry::Outcome::kInProgress) c->set_in_progress(h.id);
  }
  std::lock_guard lk(mu_);
  *r.mutable_job() = summary_locked(j, cv);
  r.set_checkpoint_dir(j.storage ? j.storage->job_dir() : "");
  for (const auto& rc : j.rec.restart_causes()) r.add_restart_causes(rc);
  if (j.rec.has_restored_from()) *r.mutable_restored_from() = j.rec.restored_from();
  *r.mutable_failures() = j.rec.failures();
  *r.mutable_job_graph() = *j.graph;
  r.set_library_name(j.rec.library_name());
  r.set_attempt(j.rec.attempt());
  for (const auto& [k, s] : j.subtasks) {
    auto* st = r.add_subtasks();
    st->set_vertex(k.first);
    st->set_vertex_name(j.graph->vertices(k.first).name());
    st->set_subtask(k.second);
    st->set_taskmanager_id(s.tm);
    st->set_state(std::string(subtask_state_name(s.state)));
    st->set_records_in(s.records_in);
    st->set_records_out(s.records_out);
    st->set_watermark_ms(s.watermark_ms);
    st->set_has_watermark(s.watermark_ms != INT64_MIN && s.watermark_ms != INT64_MAX);
    st->set_dead_letters(s.dead_letters);
    if (s.state == SubtaskState::kRunning) {
      auto rates = s.rates.rates();
      st->set_records_in_per_s(rates.records_in_per_s);
      st->set_records_out_per_s(rates.records_out_per_s);
      st->set_backpressure(rates.backpressure);
      st->set_busy(rates.busy);
    }
  }
  return r;
}

std::vector<proto::JobStatusResponse> JobManager::Impl::job_statuses() {
  std::vector<std::shared_ptr<Job>> jobs;
  {
    std::lock_guard lk(mu_);
    for (auto& [id, j] : jobs_) jobs.push_back(j);
  }
  std::vector<proto::JobStatusResponse> out;
  for (auto& j : jobs) out.push_back(status(*j));
  return out;
}

std::optional<proto::JobStatusResponse> JobManager::Impl::job_status(const std::string& id) {
  auto j = find(id);
  if (!j) return std::nullopt;
  return status(*j);
}

std::vector<proto::TaskManagerStatus> JobManager::Impl::taskmanager_statuses() {
  std::lock_guard lk(mu_);
  std::map<std::string, int> used, tasks;
  used_slots_locked(&used);
  for (const auto& [id, j] : jobs_) {
    if (state_of(j->rec) != JobState::kRunning) continue;
    for (const auto& [k, s] : j->subtasks) ++tasks[s.tm];
  }
  std::vector<proto::TaskManagerStatus> out;
  const int64_t now = steady_ms();
  for (const auto& [id, tm] : tms_) {
    proto::TaskManagerStatus t;
    t.set_id(id);
    t.set_control_address(tm.control_address);
    t.set_data_address(tm.data_address);
    t.set_slots(tm.slots);
    t.set_slots_used(used[id]);
    t.set_tasks(tasks[id]);
    t.set_last_heartbeat_ms_ago(now - tm.last_heartbeat);
    t.set_rss_bytes(tm.rss_bytes);
    t.set_inbound_connections(tm.inbound);
    t.set_outbound_connections(tm.outbound);
    out.push_back(std::move(t));
  }
  return out;
}

std::optional<std::string> JobManager::Impl::standby_of() const {
  if (leader_) return std::nullopt;
  auto l = election_ ? election_->current_leader() : std::nullopt;
  return l ? l->http : std::string();
}

}  // namespace sluice::jobmanager
