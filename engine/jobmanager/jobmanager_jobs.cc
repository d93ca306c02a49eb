// The jobmanager's jobs: records, submit, recovery at start, and failover (cancel, fail, lose a taskmanager).
#include "engine/jobmanager/jobmanager_impl.h"

namespace sluice::jobmanager {

void JobManager::Impl::sign_tm_call(grpc::ClientContext& ctx, const char* method) const {
  rpc::sign_fenced(ctx, *auth_, method, epoch_.load());
}

grpc::Status JobManager::Impl::authorize(grpc::ServerContext* ctx, const std::string& token, const char* what) {
  // Constant-time compare: the token is a secret.
  if (auth_->token_matches(token)) return grpc::Status::OK;
  spdlog::warn("refused {} from {}: {}", what, ctx->peer(), token.empty() ? "no token" : "wrong token");
  if (token.empty()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, missing_token_message(what, token_location()));
  }
  // PERMISSION_DENIED: a token was sent, and it is not this cluster's.
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      std::string(what) + " refused: the token sent is not this cluster's token; the token is " +
                          token_location());
}

grpc::Status JobManager::Impl::unknown_job(const std::string& id) {
  return grpc::Status(grpc::StatusCode::NOT_FOUND,
                      "unknown job id '" + id + "'; `sluice list` shows the jobs");
}

std::shared_ptr<JobManager::Impl::Job> JobManager::Impl::find(const std::string& id) {
  std::lock_guard lk(mu_);
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second;
}

int JobManager::Impl::free_slots_locked() const {
  int total = 0;
  for (const auto& [id, tm] : tms_) total += tm.slots;
  return total - used_slots_locked(nullptr);
}

int JobManager::Impl::used_slots_locked(std::map<std::string, int>* per_tm) const {
  int used = 0;
  for (const auto& [id, j] : jobs_) {
    if (state_of(j->rec) != JobState::kRunning) continue;
    std::map<std::string, std::set<int>> slots;  // tm -> slot indices (subtask index = slot)
    for (const auto& [k, s] : j->subtasks) slots[s.tm].insert(k.second);
    for (const auto& [tm, set] : slots) {
      used += static_cast<int>(set.size());
      if (per_tm) (*per_tm)[tm] += static_cast<int>(set.size());
    }
  }
  return used;
}

int JobManager::Impl::slots_needed(const proto::JobGraph& g) {
  int n = 0;
  for (const auto& v : g.vertices()) n = std::max(n, v.parallelism());
  return n;
}

Status JobManager::Impl::write_record_locked(const Job& j) {
  // A deposed leader leaves the shared records to the new one.
  if (election_ && !election_->is_leader()) return Status::failed_precondition("no longer the leader");
  std::string bytes;
  j.rec.SerializeToString(&bytes);
  Status st = write_file_atomic(job_dir(j.rec.job_id()) + "/job.pb", bytes);
  if (!st.is_ok()) spdlog::error("cannot persist job {}: {}", j.rec.job_id(), st.to_string());
  return st;
}

Status JobManager::Impl::make_coordinator(Job& j, int64_t committed_up_to) {
  Configuration cfg;
  for (const auto& [k, v] : j.graph->config()) cfg.set(k, v);
  SLUICE_ASSIGN_OR_RETURN(runtime::CheckpointConfig cc, runtime::CheckpointConfig::from(cfg));
  j.storage = std::make_shared<state::CheckpointStorage>(j.rec.checkpoint_root(), j.rec.job_id());
  int64_t first = j.storage->highest_id() + 1;
  if (!j.rec.restore_path().empty()) {
    auto sp = state::CheckpointStorage::load(j.rec.restore_path());
    if (sp.is_ok()) first = std::max(first, sp->meta.id + 1);
  }
  j.coordinator = std::make_unique<CheckpointCoordinator>(cc, j.storage, j.graph, &j, &SystemClock::instance(), first);
  Status st = j.coordinator->adopt_existing(committed_up_to);
  if (!st.is_ok()) spdlog::warn("job {}: cannot read earlier checkpoints: {}", j.rec.job_id(), st.to_string());
  j.coordinator->start();
  return Status::ok();
}

Status JobManager::Impl::submit(const proto::SubmitJobRequest& req, proto::SubmitJobResponse* resp) {
  const auto& g = req.job_graph();
  if (g.vertices_size() == 0) return Status::invalid_argument("the job graph has no vertices");
  for (int i = 0; i < g.vertices_size(); ++i) {
    const auto& v = g.vertices(i);
    if (v.id() != i) return Status::invalid_argument("job graph vertices are not numbered 0..n-1");
    if (v.parallelism() < 1) return Status::invalid_argument("vertex '" + v.name() + "' has parallelism < 1");
    if (v.operators_size() == 0) return Status::invalid_argument("vertex '" + v.name() + "' has no operator");
  }
  for (const auto& e : g.edges()) {
    if (e.source_vertex() < 0 || e.source_vertex() >= g.vertices_size() || e.target_vertex() < 0 ||
        e.target_vertex() >= g.vertices_size()) {
      return Status::invalid_argument("job graph edge " + std::to_string(e.id()) + " names an unknown vertex");
    }
  }
  if (sha256_hex(req.library()) != req.library_sha256()) {
    return Status::invalid_argument("the uploaded library does not match its sha256; upload it again");
  }
  int need = slots_needed(g);
  {
    std::lock_guard lk(mu_);
    int free = free_slots_locked();
    if (free < need) {
      return Status::resource_exhausted("not enough slots: the job needs " + std::to_string(need) +
                                        ", the cluster has " + std::to_string(free) +
                                        " free (" + std::to_string(tms_.size()) +
                                        " taskmanagers); start more taskmanagers or lower --parallelism");
    }
  }
  if (!req.restore_path().empty()) {
    auto cp = state::CheckpointStorage::load(req.restore_path());
    if (!cp.is_ok()) return cp.status().with_context("--restore");
    SLUICE_RETURN_IF_ERROR(runtime::check_restore_compatible(*cp, g).with_context("--restore"));
  }
  auto job = std::make_shared<Job>();
  job->jm = this;
  job->policy = RestartPolicy(o_.restart);
  auto& r = job->rec;
  std::string id = g.name() + "-" + random_hex(4);
  for (char& c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '_';
  r.set_job_id(id);
  job->rec_id = id;
  *r.mutable_job_graph() = g;
  auto& cfg = *r.mutable_job_graph()->mutable_config();
  if (!cfg.count("checkpoint.dir")) cfg["checkpoint.dir"] = o_.checkpoint_dir;
  if (!cfg.count("checkpoint.interval")) cfg["checkpoint.interval"] = o_.checkpoint_interval;
  // A checkpoint lost with a taskmanager must not hold back the next ones for long.
  if (!cfg.count("checkpoint.timeout")) cfg["checkpoint.timeout"] = "2m";
  r.set_checkpoint_root(cfg["checkpoint.dir"]);
  r.set_library_sha256(req.library_sha256());
  r.set_library_name(req.library_name());
  r.set_parallelism(req.parallelism());
  r.set_restore_path(req.restore_path());
  set_state(r, JobState::kCreated);
  r.set_attempt(-1);
  r.set_submitted_ms(now_ms());
  job->graph = std::make_shared<const proto::JobGraph>(r.job_graph());

  std::error_code ec;
  fs::create_directories(job_dir(id), ec);
  if (ec) return Status::io_error("cannot create " + job_dir(id) + ": " + ec.message());
  if (!fs::exists(artifact_path(req.library_sha256()))) {
    SLUICE_RETURN_IF_ERROR(write_file_atomic(artifact_path(req.library_sha256()), req.library()));
  }
  SLUICE_RETURN_IF_ERROR(make_coordinator(*job));
  {
    std::lock_guard lk(mu_);
    SLUICE_RETURN_IF_ERROR(write_record_locked(*job));
    jobs_[id] = job;
  }
  spdlog::info("job {} submitted ({} subtasks in {} slots)", id, subtask_count(g), need);
  resp->set_job_id(id);
  wake_scheduler();
  return Status::ok();
}

int JobManager::Impl::subtask_count(const proto::JobGraph& g) {
  int n = 0;
  for (const auto& v : g.vertices()) n += v.parallelism();
  return n;
}

Status JobManager::Impl::recover_jobs() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(store_ + "/jobs", ec)) {
    auto bytes = read_file(entry.path().string() + "/job.pb");
    if (!bytes.is_ok()) continue;
    auto job = std::make_shared<Job>();
    job->jm = this;
    job->policy = RestartPolicy(o_.restart);
    if (!job->rec.ParseFromString(*bytes)) {
      spdlog::error("ignoring unreadable job record {}", entry.path().string());
      continue;
    }
    job->rec_id = job->rec.job_id();
    job->graph = std::make_shared<const proto::JobGraph>(job->rec.job_graph());
    if (!is_terminal(state_of(job->rec))) {
      int64_t up_to = INT64_MAX;
      if (election_) {
        // Only checkpoints the leaders recorded in etcd may have committed.
        SLUICE_ASSIGN_OR_RETURN(up_to, committed_checkpoint(job->rec_id));
      }
      Status st = make_coordinator(*job, up_to);
      if (!st.is_ok()) {
        set_state(job->rec, JobState::kFailed);
        job->rec.set_last_failure("cannot recover: " + st.to_string());
      } else {
        set_state(job->rec, JobState::kRestarting);
        job->rec.add_restart_causes(election_ ? "jobmanager failover (leader epoch " + std::to_string(epoch_.load()) + ")"
                                              : std::string("jobmanager restarted"));
        job->rec.set_restarts(job->rec.restarts() + 1);
        job->next_deploy_ms = 0;
        spdlog::info("recovering job {} (last attempt {})", job->rec.job_id(), job->rec.attempt());
      }
    } else if (!job->rec.checkpoint_root().empty()) {
      job->recovered_last_checkpoint =
          std::max<int64_t>(0, state::CheckpointStorage(job->rec.checkpoint_root(), job->rec.job_id()).highest_id());
    }
    std::lock_guard lk(mu_);
    persist_locked(*job);
    jobs_[job->rec.job_id()] = job;
  }
  return Status::ok();
}

Result<int64_t> JobManager::Impl::committed_checkpoint(const std::string& job) {
  Status last;
  for (int i = 0; i < 5; ++i) {
    auto v = election_->get(ha_->checkpoint_key(job));
    if (v.is_ok()) {
      if (!*v) return int64_t{0};
      simdjson::dom::parser p;
      simdjson::dom::element doc;
      int64_t id = 0;
      if (p.parse(**v).get(doc) != simdjson::SUCCESS || doc["id"].get(id) != simdjson::SUCCESS) {
        return Status::corruption("the checkpoint pointer of job " + job + " in etcd is not {\"id\":…}");
      }
      return id;
    }
    last = v.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return last;
}

CallQueue::Call JobManager::Impl::cancel_call(std::shared_ptr<TmStub> stub, proto::CancelTasksRequest r) {
  return [stub = std::move(stub), r = std::move(r), this](grpc::ClientContext& ctx) {
    sign_tm_call(ctx, "TaskManager/CancelTasks");
    proto::Empty e;
    return stub->CancelTasks(&ctx, r, &e);
  };
}

void JobManager::Impl::cancel_tasks_locked(Job& j, int64_t committed_checkpoint) {
  std::set<std::string> tms;
  for (const auto& [k, s] : j.subtasks) tms.insert(s.tm);
  for (const auto& tm : tms) {
    auto it = tms_.find(tm);
    if (it == tms_.end()) continue;
    proto::CancelTasksRequest r;
    r.set_job_id(j.rec.job_id());
    r.set_attempt(j.rec.attempt());
    r.set_committed_checkpoint(committed_checkpoint);
    // Stop-with-savepoint waits (bounded) for the sinks to commit; a
    // cancel after a failure returns at once unless the taskmanager hangs.
    Duration deadline(committed_checkpoint > 0 ? 35'000 : 2'000);
    auto done = it->second.calls->submit(cancel_call(it->second.stub, r), deadline);
    j.cancels.push_back({tm, it->second.instance, done.share(), steady_ms(), j.rec.attempt()});
  }
  std::lock_guard gl(j.gw_mu);
  j.gw_tms.clear();
  j.gw_source_tms.clear();
  j.gw_ready = false;
  j.gw_held.clear();
}

void JobManager::Impl::end_job_locked(Job& j, JobState state, const std::string& failure,
                    int64_t committed_checkpoint) {
  cancel_tasks_locked(j, committed_checkpoint);
  set_state(j.rec, state);
  if (is_terminal(state) && j.rec.ended_ms() == 0) j.rec.set_ended_ms(now_ms());
  if (!failure.empty()) j.rec.set_last_failure(failure);
  for (auto& [k, s] : j.subtasks)
    if (s.state != SubtaskState::kFinished)
      s.state = state == JobState::kFinished ? SubtaskState::kFinished : SubtaskState::kCanceled;
  j.failed_at_ms = -1;
  persist_locked(j);
}

void JobManager::Impl::job_failed_locked(Job& j, proto::FailureRecord f, std::string cause) {
  if (state_of(j.rec) != JobState::kRunning) return;
  f.set_time_ms(now_ms());
  f.set_attempt(j.rec.attempt());
  // The far end of a lost data-plane connection may be alive yet
  // unreachable from its peers: the next attempt avoids it if it can.
  // The failure names its address; say which taskmanager that is.
  std::map<std::string, std::string> data;
  for (const auto& [id, tm] : tms_) data[id] = tm.data_address;
  for (const auto& tm : suspects_.implicate(cause, data, steady_ms())) {
    spdlog::info("job {}: taskmanager {} is suspect for {} (named by the failure)", j.rec.job_id(), tm,
                 format_duration(o_.suspect_period));
    const std::string named = " (" + data[tm] + " is taskmanager " + tm + ")";
    cause += named;
    f.set_message(f.message() + named);
  }
  if (f.permanent() && !j.stopping) {
    spdlog::error("job {} attempt {} failed permanently: {}", j.rec.job_id(), j.rec.attempt(), cause);
    end_job_locked(j, JobState::kFailed, cause + " (a permanent error: not restarted)");
  } else {
    fail_attempt_locked(j, cause);
  }
  f.set_restarted(state_of(j.rec) == JobState::kRestarting);
  *j.rec.add_failures() = std::move(f);
  while (j.rec.failures_size() > kFailureHistory) j.rec.mutable_failures()->DeleteSubrange(0, 1);
  persist_locked(j);
}

void JobManager::Impl::fail_attempt_locked(Job& j, const std::string& cause) {
  if (state_of(j.rec) != JobState::kRunning) return;
  const int64_t now = steady_ms();
  spdlog::warn("job {} attempt {} failed: {}", j.rec.job_id(), j.rec.attempt(), cause);
  cancel_tasks_locked(j);
  j.rec.set_last_failure(cause);
  if (j.stopping) {
    end_job_locked(j, JobState::kFinished, "");
    return;
  }
  RestartPolicy::Decision d = j.policy.on_failure(now);
  if (!d.restart) {
    std::string why = d.give_up_reason + "; last failure: " + cause;
    spdlog::error("job {} FAILED: {}", j.rec.job_id(), why);
    j.rec.set_gave_up(true);
    end_job_locked(j, JobState::kFailed, why);
    return;
  }
  j.rec.set_restarts(j.rec.restarts() + 1);
  j.rec.add_restart_causes(cause);
  // The causes are for people reading the status: keep the latest 100.
  if (j.rec.restart_causes_size() > 100) j.rec.mutable_restart_causes()->DeleteSubrange(0, 1);
  if (j.failed_at_ms < 0) j.failed_at_ms = now;
  j.next_deploy_ms = now + d.delay.count();
  set_state(j.rec, JobState::kRestarting);
  spdlog::info("job {} restarts in {} ({} failures within {})", j.rec.job_id(), format_duration(d.delay),
               d.failures_in_interval, format_duration(o_.restart.failure_interval));
  persist_locked(j);
  wake_scheduler();
}

void JobManager::Impl::lose_tm_locked(const std::string& tm_id, const std::string& why) {
  auto it = tms_.find(tm_id);
  if (it == tms_.end()) return;
  spdlog::warn("taskmanager {} lost: {}", tm_id, why);
  // Its queued calls are dropped and the one in flight cancelled; the
  // queue's thread is joined by the scheduler, outside the lock.
  it->second.calls->close();
  retired_.push_back(std::move(it->second.calls));
  tms_.erase(it);
  suspects_.forget(tm_id);
  for (auto& [id, j] : jobs_) {
    if (state_of(j->rec) != JobState::kRunning) continue;
    bool uses = std::any_of(j->subtasks.begin(), j->subtasks.end(),
                            [&](const auto& kv) { return kv.second.tm == tm_id; });
    if (uses) {
      proto::FailureRecord f;
      f.set_vertex(-1);
      f.set_taskmanager_id(tm_id);
      f.set_message("taskmanager " + tm_id + " lost (" + why + ")");
      job_failed_locked(*j, f, "taskmanager " + tm_id + " lost (" + why + ")");
    }
  }
}

void JobManager::Impl::wake_scheduler() {
  std::lock_guard lk(stop_mu_);
  wake_ = true;
  stop_cv_.notify_all();
}

bool JobManager::Impl::cancels_settled_locked(Job& j) {
  bool settled = true;
  const int64_t now = steady_ms();
  j.slow_cancel_tms.clear();
  for (auto it = j.cancels.begin(); it != j.cancels.end();) {
    if (it->done.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      if (now - it->since_ms < kCancelGraceMs) {
        settled = false;
      } else {
        j.slow_cancel_tms.insert(it->tm);
      }
      ++it;
      continue;
    }
    grpc::Status st = it->done.get();
    auto tm = tms_.find(it->tm);
    if (unreachable(st) && tm != tms_.end() && tm->second.instance == it->instance) {
      if (lost_on_failed_call(st, it->since_ms, tm->second.last_heartbeat)) {
        lose_tm_locked(it->tm, "cancel failed: " + st.error_message());
      } else {
        // Alive (it heartbeats) but slow to answer on a loaded machine:
        // it keeps its place and its other jobs; the cancel (idempotent)
        // goes again, in case this one never reached it.
        spdlog::warn("taskmanager {}: cancel of job {} attempt {} unanswered ({}) while it heartbeats; sent again",
                     it->tm, j.rec.job_id(), it->attempt, st.error_message());
        proto::CancelTasksRequest r;
        r.set_job_id(j.rec.job_id());
        r.set_attempt(it->attempt);
        tm->second.calls->post(cancel_call(tm->second.stub, r), Duration(10'000));
      }
    }
    it = j.cancels.erase(it);
  }
  return settled;
}

}  // namespace sluice::jobmanager
