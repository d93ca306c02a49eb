// The jobmanager's scheduler: heartbeat checks, restarts when due, placement and deploys.
#include "engine/jobmanager/jobmanager_impl.h"

namespace sluice::jobmanager {

void JobManager::Impl::scheduler_loop() {
  for (;;) {
    {
      std::unique_lock lk(stop_mu_);
      stop_cv_.wait_for(lk, std::chrono::milliseconds(100), [&] { return stopped_ || wake_; });
      if (stopped_) return;
      wake_ = false;
    }
    std::vector<std::shared_ptr<Job>> due;
    std::vector<std::shared_ptr<CallQueue>> retired;
    {
      std::lock_guard lk(mu_);
      int64_t now = steady_ms();
      // The jobmanager itself stalled (a loaded machine, a slow disk under
      // the lock): heartbeats could not be taken meanwhile, so that time
      // does not count as the taskmanagers' silence.
      const int64_t stalled = now - last_check_ms_ - kStallSlackMs;
      if (last_check_ms_ > 0 && stalled > 0) {
        spdlog::warn("jobmanager stalled for {} ms: heartbeat deadlines moved by as much", stalled);
        for (auto& [id, tm] : tms_) tm.last_heartbeat += stalled;
      }
      last_check_ms_ = now;
      std::vector<std::string> lost;
      for (const auto& [id, tm] : tms_)
        if (now - tm.last_heartbeat > o_.heartbeat_timeout.count()) lost.push_back(id);
      for (const auto& id : lost) lose_tm_locked(id, "no heartbeat for " + format_duration(o_.heartbeat_timeout));
      for (auto& [id, j] : jobs_) {
        JobState s = state_of(j->rec);
        if (!cancels_settled_locked(*j)) continue;
        if ((s == JobState::kCreated || s == JobState::kRestarting) && now >= j->next_deploy_ms && !j->deploying) {
          j->deploying = true;
          due.push_back(j);
        }
      }
      retired.swap(retired_);
    }
    retired.clear();  // joins the threads of lost taskmanagers' queues
    for (auto& j : due) deployer_->submit([this, j] { deploy(j); });
  }
}

void JobManager::Impl::deploy(const std::shared_ptr<Job>& jp) {
  Job& j = *jp;
  std::string restore = j.rec.restore_path();
  proto::RestoreInfo from;  // what status says the attempt started from
  if (auto latest = j.coordinator->latest_completed()) {
    restore = latest->dir;
    from.set_checkpoint_id(latest->meta.id);
    from.set_savepoint(latest->meta.savepoint);
  } else if (!restore.empty()) {
    if (auto cp = state::CheckpointStorage::load(restore); cp.is_ok()) {
      from.set_checkpoint_id(cp->meta.id);
      from.set_savepoint(cp->meta.savepoint);
    }
  }
  from.set_path(restore);
  std::map<std::string, std::vector<proto::TaskRef>> per_tm;
  std::map<std::string, TmLink> links;
  proto::DeployRequest base;
  int attempt;
  {
    std::lock_guard lk(mu_);
    j.deploying = false;
    JobState s = state_of(j.rec);
    if (s != JobState::kCreated && s != JobState::kRestarting) return;
    int need = slots_needed(*j.graph);
    std::map<std::string, int> used;
    used_slots_locked(&used);
    std::vector<PlacementCandidate> candidates;
    const int64_t now = steady_ms();
    for (const auto& [id, tm] : tms_) {
      if (j.slow_cancel_tms.count(id)) continue;  // its old tasks may still run: not now
      candidates.push_back({id, tm.slots - used[id], suspects_.suspect(id, now)});
    }
    auto placed = place_slots(std::move(candidates), need);
    if (!placed.is_ok()) {
      if (j.rec.last_failure().empty()) j.rec.set_last_failure(placed.status().message());
      return;
    }
    const std::vector<std::string>& slot_tm = *placed;
    attempt = j.rec.attempt() + 1;
    j.rec.set_attempt(attempt);
    j.subtasks.clear();
    if (restore.empty()) {
      j.rec.clear_restored_from();
    } else {
      from.set_attempt(attempt);
      from.set_time_ms(now_ms());
      *j.rec.mutable_restored_from() = from;
    }
    base.set_job_id(j.rec.job_id());
    base.set_attempt(attempt);
    *base.mutable_job_graph() = *j.graph;
    base.set_library_sha256(j.rec.library_sha256());
    base.set_parallelism(j.rec.parallelism());
    base.set_restore_path(restore);
    std::set<std::string> source_tms;
    for (const auto& v : j.graph->vertices()) {
      for (int s = 0; s < v.parallelism(); ++s) {
        const std::string& tm = slot_tm[s];
        auto* p = base.add_placement();
        p->set_vertex(v.id());
        p->set_subtask(s);
        p->set_taskmanager_id(tm);
        p->set_data_address(tms_[tm].data_address);
        proto::TaskRef t;
        t.set_job_id(j.rec.job_id());
        t.set_vertex(v.id());
        t.set_subtask(s);
        t.set_attempt(attempt);
        per_tm[tm].push_back(t);
        j.subtasks[{v.id(), s}] = Job::Subtask{tm, SubtaskState::kDeploying};
        if (v.is_source()) source_tms.insert(tm);
      }
    }
    for (const auto& [tm, ts] : per_tm) links[tm] = TmLink{tms_[tm].stub, tms_[tm].calls};
    set_state(j.rec, JobState::kRunning);
    persist_locked(j);
    std::lock_guard gl(j.gw_mu);
    j.gw_attempt = attempt;
    j.gw_tms = links;
    j.gw_source_tms = source_tms;
    j.gw_ready = false;
    j.gw_held.clear();
  }
  j.coordinator->reset_for_attempt(attempt);
  spdlog::info("deploying job {} attempt {} on {} taskmanagers{}", j.rec_id, attempt, per_tm.size(),
               restore.empty() ? "" : " from " + restore);
  // Every taskmanager's deploy in parallel (each on its own queue).
  std::vector<std::pair<std::string, std::future<grpc::Status>>> calls;
  for (const auto& [tm, tasks] : per_tm) {
    proto::DeployRequest r = base;
    for (const auto& t : tasks) *r.add_tasks() = t;
    calls.emplace_back(tm, links[tm].calls->submit(
                               [stub = links[tm].stub, r = std::move(r), this](grpc::ClientContext& ctx) {
                                 sign_tm_call(ctx, "TaskManager/DeployTasks");
                                 proto::Empty e;
                                 return stub->DeployTasks(&ctx, r, &e);
                               },
                               Duration(60'000)));
  }
  for (auto& [tm, call] : calls) {
    grpc::Status st = call.get();
    if (st.ok()) continue;
    std::lock_guard lk(mu_);
    if (j.rec.attempt() != attempt || state_of(j.rec) != JobState::kRunning) return;
    std::string cause = "deploying to taskmanager " + tm + " failed: " + st.error_message();
    proto::FailureRecord f;
    f.set_vertex(-1);
    f.set_taskmanager_id(tm);
    f.set_message(cause);
    if (st.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      // The library or graph cannot run: restarting will not help.
      f.set_permanent(true);
      job_failed_locked(j, std::move(f), cause);
    } else if (unreachable(st) || st.error_code() == grpc::StatusCode::CANCELLED) {
      lose_tm_locked(tm, cause);
    } else {
      job_failed_locked(j, std::move(f), cause);
    }
    return;
  }
  {
    std::lock_guard lk(mu_);
    if (j.rec.attempt() != attempt || state_of(j.rec) != JobState::kRunning) return;
    const int64_t now = steady_ms();
    if (j.failed_at_ms >= 0) {
      j.last_recovery_ms = now - j.failed_at_ms;
      spdlog::info("job {} running again {} ms after the failure", j.rec_id, j.last_recovery_ms);
      j.failed_at_ms = -1;
    }
    // A placement message ("not enough slots") is no failure once running.
    j.rec.set_last_failure(j.rec.restarts() > 0 ? j.rec.last_failure() : "");
    j.policy.on_running(now);
    for (auto& [k, s] : j.subtasks)
      if (s.state == SubtaskState::kDeploying) s.state = SubtaskState::kRunning;
  }
  j.open_gateway(attempt);
}

}  // namespace sluice::jobmanager
