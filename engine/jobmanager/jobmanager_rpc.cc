// The jobmanager's gRPC services (CLI and taskmanager calls) and the actions they share with HTTP.
#include "engine/jobmanager/jobmanager_impl.h"

namespace sluice::jobmanager {

grpc::Status JobManager::Impl::SubmitJob(grpc::ServerContext* ctx, const proto::SubmitJobRequest* req,
                       proto::SubmitJobResponse* resp) {
  if (auto st = require_leader(); !st.ok()) return st;
  if (auto st = authorize(ctx, req->token(), "submit"); !st.ok()) return st;
  Status st = submit(*req, resp);
  if (!st.is_ok()) spdlog::warn("submit refused: {}", st.to_string());
  return to_grpc(st);
}

grpc::Status JobManager::Impl::ListJobs(grpc::ServerContext* ctx, const proto::ListJobsRequest* req,
                      proto::ListJobsResponse* resp) {
  if (auto st = require_leader(); !st.ok()) return st;
  if (!o_.open_read_access) {
    if (auto st = authorize(ctx, req->token(), "list"); !st.ok()) return st;
  }
  std::vector<std::shared_ptr<Job>> jobs;
  {
    std::lock_guard lk(mu_);
    for (auto& [id, j] : jobs_) jobs.push_back(j);
  }
  for (auto& j : jobs) *resp->add_jobs() = summary(*j);
  return grpc::Status::OK;
}

grpc::Status JobManager::Impl::GetJobStatus(grpc::ServerContext* ctx, const proto::JobRequest* req,
                          proto::JobStatusResponse* resp) {
  if (auto st = require_leader(); !st.ok()) return st;
  if (!o_.open_read_access) {
    if (auto st = authorize(ctx, req->token(), "status"); !st.ok()) return st;
  }
  auto j = find(req->job_id());
  if (!j) return unknown_job(req->job_id());
  *resp = status(*j);
  return grpc::Status::OK;
}

grpc::Status JobManager::Impl::CancelJob(grpc::ServerContext* ctx, const proto::JobRequest* req, proto::Empty*) {
  if (auto st = require_leader(); !st.ok()) return st;
  if (auto st = authorize(ctx, req->token(), "cancel"); !st.ok()) return st;
  return to_grpc(cancel_job(req->job_id()));
}

grpc::Status JobManager::Impl::TriggerSavepoint(grpc::ServerContext* ctx, const proto::SavepointRequest* req,
                              proto::SavepointResponse* resp) {
  if (auto st = require_leader(); !st.ok()) return st;
  if (auto st = authorize(ctx, req->token(), req->stop() ? "stop" : "savepoint"); !st.ok()) return st;
  auto r = savepoint(req->job_id(), req->path(), req->stop());
  if (!r.is_ok()) return to_grpc(r.status());
  *resp = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status JobManager::Impl::DisposeSavepoint(grpc::ServerContext* ctx, const proto::DisposeSavepointRequest* req,
                              proto::Empty*) {
  if (auto st = authorize(ctx, req->token(), "dispose-savepoint"); !st.ok()) return st;
  Status st = dispose_savepoint(req->path());
  if (!st.is_ok()) spdlog::warn("savepoint {} not disposed: {}", req->path(), st.to_string());
  return to_grpc(st);
}

grpc::Status JobManager::Impl::GetLogs(grpc::ServerContext* ctx, const proto::LogRequest* req, proto::LogResponse* resp) {
  if (!o_.open_read_access) {
    if (auto st = authorize(ctx, req->token(), "logs"); !st.ok()) return st;
  }
  auto r = logs(*req);
  if (!r.is_ok()) return to_grpc(r.status());
  *resp = std::move(*r);
  return grpc::Status::OK;
}

Status JobManager::Impl::cancel_job(const std::string& job_id) {
  auto j = find(job_id);
  if (!j) return Status::not_found("unknown job id '" + job_id + "'; `sluice list` shows the jobs");
  {
    std::lock_guard lk(mu_);
    if (is_terminal(state_of(j->rec))) {
      return Status::failed_precondition("job " + job_id + " has already ended (" + j->rec.state() + ")");
    }
    end_job_locked(*j, JobState::kCanceled, "");
  }
  if (j->coordinator) j->coordinator->stop();
  spdlog::info("job {} cancelled", job_id);
  return Status::ok();
}

Result<proto::SavepointResponse> JobManager::Impl::savepoint(const std::string& job_id, const std::string& dir, bool stop) {
  auto j = find(job_id);
  if (!j) return Status::not_found("unknown job id '" + job_id + "'; `sluice list` shows the jobs");
  {
    std::lock_guard lk(mu_);
    if (state_of(j->rec) != JobState::kRunning) {
      return Status::failed_precondition("job " + job_id + " is " + j->rec.state() +
                                         "; savepoints are taken of running jobs");
    }
    if (stop) j->stopping = true;
  }
  auto fut = j->coordinator->trigger_savepoint(stop);
  if (fut.wait_for(std::chrono::minutes(5)) != std::future_status::ready) {
    j->coordinator->resume_checkpoints();
    std::lock_guard lk(mu_);
    j->stopping = false;
    return Status::timeout("the savepoint did not complete in 5 min");
  }
  auto sp = fut.get();
  if (!sp.is_ok()) {
    j->coordinator->resume_checkpoints();
    std::lock_guard lk(mu_);
    j->stopping = false;
    return sp.status().with_context("savepoint failed");
  }
  std::string path = sp->dir;
  if (!dir.empty()) {
    std::error_code ec;
    std::string dest = dir + "/" + fs::path(sp->dir).filename().string();
    fs::create_directories(dir, ec);
    fs::copy(sp->dir, dest, fs::copy_options::recursive | fs::copy_options::overwrite_existing, ec);
    if (ec) return Status::io_error("savepoint " + sp->dir + " taken but not copied to " + dest + ": " + ec.message());
    path = dest;
  }
  proto::SavepointResponse resp;
  resp.set_checkpoint_id(sp->meta.id);
  resp.set_path(path);
  if (stop) {
    {
      std::lock_guard lk(mu_);
      if (!is_terminal(state_of(j->rec))) end_job_locked(*j, JobState::kFinished, "", sp->meta.id);
    }
    j->coordinator->stop();
    spdlog::info("job {} stopped with savepoint {}", job_id, path);
  }
  return resp;
}

Status JobManager::Impl::dispose_savepoint(const std::string& path) {
  if (path.empty()) return Status::invalid_argument("dispose needs the savepoint's path");
  std::error_code ec;
  std::string canonical = fs::weakly_canonical(path, ec).string();
  auto cp = state::CheckpointStorage::load(canonical);
  if (!cp.is_ok()) return cp.status().with_context("'" + path + "' is not a savepoint this jobmanager can read");
  if (!cp->meta.savepoint) {
    return Status::failed_precondition("'" + path + "' is a checkpoint, not a savepoint: checkpoints are "
                                       "discarded by their job (checkpoint.retained)");
  }
  std::vector<std::shared_ptr<Job>> jobs;
  {
    std::lock_guard lk(mu_);
    for (auto& [id, j] : jobs_) {
      if (is_terminal(state_of(j->rec))) continue;
      const auto& from = j->rec.has_restored_from() ? j->rec.restored_from().path() : j->rec.restore_path();
      if (!from.empty() && fs::weakly_canonical(from, ec).string() == canonical) jobs.push_back(j);
    }
  }
  for (auto& j : jobs) {
    if (!j->coordinator || !j->coordinator->latest_completed()) {
      return Status::failed_precondition("job " + j->rec_id + " was started from this savepoint and has not "
                                         "completed a checkpoint of its own yet; dispose of it later");
    }
  }
  fs::remove_all(canonical, ec);
  if (ec) return Status::io_error("cannot remove " + canonical + ": " + ec.message());
  spdlog::info("savepoint {} (id {}) disposed", canonical, cp->meta.id);
  return Status::ok();
}

Result<proto::LogResponse> JobManager::Impl::logs(const proto::LogRequest& req) {
  const int max_lines = req.max_lines() <= 0 ? 500 : std::min(req.max_lines(), 5000);
  std::map<std::string, std::shared_ptr<TmStub>> ask;
  if (!req.job_id().empty() && !find(req.job_id())) {
    return Status::not_found("unknown job id '" + req.job_id() + "'; `sluice list` shows the jobs");
  }
  {
    std::lock_guard lk(mu_);
    if (!req.taskmanager_id().empty()) {
      auto it = tms_.find(req.taskmanager_id());
      if (it == tms_.end()) return Status::not_found("no taskmanager '" + req.taskmanager_id() + "' is registered");
      ask[it->first] = it->second.stub;
    } else if (!req.job_id().empty()) {
      auto j = jobs_.find(req.job_id());
      for (const auto& [k, st] : j->second->subtasks) {
        auto it = tms_.find(st.tm);
        if (it != tms_.end()) ask[it->first] = it->second.stub;
      }
    } else {
      for (const auto& [id, tm] : tms_) ask[id] = tm.stub;
    }
  }
  proto::LogResponse resp;
  if (req.taskmanager_id().empty()) {
    auto* own = resp.add_logs();
    own->set_source("jobmanager");
    for (auto& l : recent_log_lines(req.job_id(), static_cast<size_t>(max_lines))) own->add_lines(std::move(l));
  }
  for (const auto& [id, stub] : ask) {
    proto::LogRequest r;
    r.set_job_id(req.job_id());
    r.set_max_lines(max_lines);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    rpc::sign(ctx, *auth_, "TaskManager/GetLog");
    proto::LogLines lines;
    grpc::Status st = stub->GetLog(&ctx, r, &lines);
    if (!st.ok()) lines.set_error("cannot ask taskmanager " + id + ": " + st.error_message());
    lines.set_source(id);
    *resp.add_logs() = std::move(lines);
  }
  return resp;
}

grpc::Status JobManager::Impl::RegisterTaskManager(grpc::ServerContext* ctx, const proto::RegisterRequest* req,
                                 proto::RegisterResponse* resp) {
  if (auto st = require_leader(); !st.ok()) return st;
  if (auto st = rpc::check(ctx, *auth_, "JobManager/RegisterTaskManager"); !st.ok()) return st;
  if (req->taskmanager_id().empty() || req->taskmanager_id().size() > 256 || req->slots() < 1 ||
      req->slots() > 4096 || req->data_address().empty() || req->control_address().empty() ||
      req->instance().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "registration needs an id, 1..4096 slots, addresses and an instance id");
  }
  auto channel = grpc::CreateChannel(req->control_address(), tm_creds_);
  std::lock_guard lk(mu_);
  if (auto it = tms_.find(req->taskmanager_id()); it != tms_.end()) {
    if (!auth::constant_time_equal(it->second.instance, req->instance())) {
      // Another process claims a live id: only its holder may register it again.
      spdlog::warn("refused registration of taskmanager {} from {}: the id is held by a live taskmanager",
                   req->taskmanager_id(), ctx->peer());
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                          "taskmanager id " + req->taskmanager_id() +
                              " is registered by another live process; it is free again once that one has "
                              "been silent for the heartbeat timeout");
    }
    lose_tm_locked(req->taskmanager_id(), "taskmanager registered again");
  }
  TaskManagerInfo tm;
  tm.instance = req->instance();
  tm.id = req->taskmanager_id();
  tm.control_address = req->control_address();
  tm.data_address = req->data_address();
  tm.slots = req->slots();
  tm.last_heartbeat = steady_ms();
  tm.stub = std::shared_ptr<TmStub>(proto::TaskManager::NewStub(channel).release());
  tm.calls = std::make_shared<CallQueue>(tm.id, [this] { wake_scheduler(); });
  tms_[tm.id] = std::move(tm);
  resp->set_heartbeat_interval_ms(o_.heartbeat_interval.count());
  resp->set_leader_epoch(epoch_.load());
  spdlog::info("taskmanager {} registered: {} slots, control {}, data {}", req->taskmanager_id(),
               req->slots(), req->control_address(), req->data_address());
  return grpc::Status::OK;
}

grpc::Status JobManager::Impl::Heartbeat(grpc::ServerContext* ctx, const proto::HeartbeatRequest* req,
                       proto::HeartbeatResponse* resp) {
  if (auto st = require_leader(); !st.ok()) return st;
  if (auto st = rpc::check(ctx, *auth_, "JobManager/Heartbeat"); !st.ok()) return st;
  // When it arrived, not when the lock was free: a jobmanager busy under
  // its lock must not count its own delay against the taskmanager.
  const int64_t now = steady_ms();
  std::lock_guard lk(mu_);
  auto it = tms_.find(req->taskmanager_id());
  if (it == tms_.end() || it->second.instance != req->instance()) {
    resp->set_registered(false);
    return grpc::Status::OK;
  }
  it->second.last_heartbeat = std::max(it->second.last_heartbeat, now);
  it->second.rss_bytes = req->rss_bytes();
  it->second.inbound = req->inbound_connections();
  it->second.outbound = req->outbound_connections();
  for (const auto& m : req->tasks()) {
    auto j = jobs_.find(m.task().job_id());
    if (j == jobs_.end() || j->second->rec.attempt() != m.task().attempt()) continue;
    auto st = j->second->subtasks.find({m.task().vertex(), m.task().subtask()});
    if (st == j->second->subtasks.end()) continue;
    st->second.records_in = m.records_in();
    st->second.records_out = m.records_out();
    st->second.watermark_ms = m.watermark_ms();
    st->second.dead_letters = m.dead_letters();
    st->second.rates.add({now, m.records_in(), m.records_out(), m.busy_ns(), m.backpressured_ns()});
  }
  resp->set_registered(true);
  std::set<std::string> artifacts;
  for (const auto& [id, j] : jobs_)
    if (!is_terminal(state_of(j->rec))) artifacts.insert(j->rec.library_sha256());
  for (const auto& a : artifacts) resp->add_artifacts(a);
  return grpc::Status::OK;
}

grpc::Status JobManager::Impl::DisconnectTaskManager(grpc::ServerContext* ctx, const proto::DisconnectRequest* req,
                                   proto::Empty*) {
  if (auto st = require_leader(); !st.ok()) return st;
  if (auto st = rpc::check(ctx, *auth_, "JobManager/DisconnectTaskManager"); !st.ok()) return st;
  std::lock_guard lk(mu_);
  auto it = tms_.find(req->taskmanager_id());
  if (it == tms_.end() || !auth::constant_time_equal(it->second.instance, req->instance())) return grpc::Status::OK;
  lose_tm_locked(req->taskmanager_id(), "it shut down (" + req->reason().substr(0, 200) + ")");
  wake_scheduler();
  return grpc::Status::OK;
}

grpc::Status JobManager::Impl::ReportTaskState(grpc::ServerContext* ctx, const proto::TaskStateReport* req, proto::Empty*) {
  if (auto st = require_leader(); !st.ok()) return st;
  if (auto st = rpc::check(ctx, *auth_, "JobManager/ReportTaskState"); !st.ok()) return st;
  auto j = find(req->task().job_id());
  if (!j) return grpc::Status::OK;
  bool finished = false;
  {
    std::lock_guard lk(mu_);
    if (req->task().attempt() != j->rec.attempt() || state_of(j->rec) != JobState::kRunning) return grpc::Status::OK;
    auto it = j->subtasks.find({req->task().vertex(), req->task().subtask()});
    if (it == j->subtasks.end()) return grpc::Status::OK;
    if (it->second.tm != req->taskmanager_id()) {
      spdlog::warn("ignored state {} of job {} subtask {}/{} from {}: it runs on {}", req->state(),
                   req->task().job_id(), req->task().vertex(), req->task().subtask(), req->taskmanager_id(),
                   it->second.tm);
      return grpc::Status::OK;
    }
    auto reported = parse_subtask_state(req->state());
    if (!reported) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "unknown task state '" + req->state() + "'");
    it->second.state = *reported;
    if (*reported != SubtaskState::kRunning) {
      it->second.records_in = std::max(it->second.records_in, req->records_in());
      it->second.records_out = std::max(it->second.records_out, req->records_out());
    }
    if (*reported == SubtaskState::kFailed) {
      const auto& v = j->graph->vertices(req->task().vertex());
      proto::FailureRecord f;
      f.set_task(v.name() + " (" + std::to_string(req->task().subtask() + 1) + "/" +
                 std::to_string(v.parallelism()) + ")");
      f.set_vertex(req->task().vertex());
      f.set_subtask(req->task().subtask());
      f.set_taskmanager_id(req->taskmanager_id());
      f.set_message(req->cause());
      f.set_permanent(req->permanent());
      std::string cause = "task " + f.task() + " on " + req->taskmanager_id() + " failed: " + req->cause();
      job_failed_locked(*j, std::move(f), cause);
    } else if (*reported == SubtaskState::kFinished) {
      finished = std::all_of(j->subtasks.begin(), j->subtasks.end(),
                             [](const auto& kv) { return kv.second.state == SubtaskState::kFinished; });
      if (finished) end_job_locked(*j, JobState::kFinished, "");
    }
  }
  if (finished) {
    if (j->coordinator) j->coordinator->stop();
    spdlog::info("job {} finished", j->rec_id);
  }
  return grpc::Status::OK;
}

grpc::Status JobManager::Impl::AcknowledgeCheckpoint(grpc::ServerContext* ctx, const proto::CheckpointAck* req, proto::Empty*) {
  if (auto st = require_leader(); !st.ok()) return st;
  if (auto st = rpc::check(ctx, *auth_, "JobManager/AcknowledgeCheckpoint"); !st.ok()) return st;
  auto j = find(req->task().job_id());
  if (!j || !j->coordinator) return grpc::Status::OK;
  auto snap = runtime::decode_task_snapshot(req->snapshot());
  runtime::TaskId id{req->task().job_id(), req->task().vertex(), req->task().subtask(), req->task().attempt()};
  if (!snap.is_ok()) {
    j->coordinator->decline(id, CheckpointId(req->checkpoint_id()), snap.status());
    return grpc::Status::OK;
  }
  j->coordinator->acknowledge(id, std::move(*snap));
  return grpc::Status::OK;
}

grpc::Status JobManager::Impl::DeclineCheckpoint(grpc::ServerContext* ctx, const proto::CheckpointDecline* req, proto::Empty*) {
  if (auto st = require_leader(); !st.ok()) return st;
  if (auto st = rpc::check(ctx, *auth_, "JobManager/DeclineCheckpoint"); !st.ok()) return st;
  auto j = find(req->task().job_id());
  if (!j || !j->coordinator) return grpc::Status::OK;
  runtime::TaskId id{req->task().job_id(), req->task().vertex(), req->task().subtask(), req->task().attempt()};
  j->coordinator->decline(id, CheckpointId(req->checkpoint_id()), Status::internal(req->reason()));
  return grpc::Status::OK;
}

grpc::Status JobManager::Impl::ReportEndOfInput(grpc::ServerContext* ctx, const proto::TaskRef* req, proto::Empty*) {
  if (auto st = require_leader(); !st.ok()) return st;
  if (auto st = rpc::check(ctx, *auth_, "JobManager/ReportEndOfInput"); !st.ok()) return st;
  auto j = find(req->job_id());
  if (!j || !j->coordinator) return grpc::Status::OK;
  j->coordinator->source_ended({req->job_id(), req->vertex(), req->subtask(), req->attempt()});
  return grpc::Status::OK;
}

grpc::Status JobManager::Impl::FetchArtifact(grpc::ServerContext* ctx, const proto::FetchArtifactRequest* req,
                           grpc::ServerWriter<proto::ArtifactChunk>* writer) {
  if (auto st = require_leader(); !st.ok()) return st;
  if (auto st = rpc::check(ctx, *auth_, "JobManager/FetchArtifact"); !st.ok()) return st;
  const std::string& sha = req->sha256();
  if (sha.size() != 64 || sha.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "not a sha256");
  }
  auto bytes = read_file(artifact_path(sha));
  if (!bytes.is_ok()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no artifact " + sha);
  constexpr size_t kChunk = 1 << 20;
  for (size_t off = 0; off < bytes->size(); off += kChunk) {
    proto::ArtifactChunk c;
    c.set_data(bytes->substr(off, kChunk));
    if (!writer->Write(c)) break;
  }
  return grpc::Status::OK;
}

}  // namespace sluice::jobmanager
