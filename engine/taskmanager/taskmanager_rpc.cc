// The gRPC service the jobmanager calls (deploy, cancel, trigger, notify, logs)
// and the reports of the tasks here back to the jobmanager (TaskListener).
#include "engine/taskmanager/taskmanager_impl.h"

namespace sluice::taskmanager {

grpc::Status TaskManager::Impl::check_leader(grpc::ServerContext* ctx, const char* method) {
  int64_t epoch = 0;
  if (auto st = rpc::check_fenced(ctx, *auth_, method, &epoch); !st.ok()) return st;
  raise_leader_epoch(epoch);
  int64_t known = leader_epoch_.load();
  if (epoch < known) {
    spdlog::warn("refused {} from {}: it comes from a deposed jobmanager (epoch {}, the leader's is {})", method,
                 ctx->peer(), epoch, known);
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "refused: epoch " + std::to_string(epoch) + " is older than the leader's (" +
                            std::to_string(known) + "); this jobmanager is no longer the leader");
  }
  return grpc::Status::OK;
}

grpc::Status TaskManager::Impl::DeployTasks(grpc::ServerContext* ctx, const proto::DeployRequest* req, proto::Empty*) {
  if (auto st = check_leader(ctx, "TaskManager/DeployTasks"); !st.ok()) return st;
  if (!is_sha256_hex(req->library_sha256()) || !is_job_id(req->job_id()) || req->attempt() < 0) {
    spdlog::warn("refused deploy from {}: malformed job id, attempt or library sha256", ctx->peer());
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "deploy needs a job id of [A-Za-z0-9_-], an attempt >= 0 and a library sha256 of 64 "
                        "lower-case hex digits");
  }
  Status st = deploy(*req);
  if (!st.is_ok()) {
    std::error_code ec;
    if (!find(req->job_id(), req->attempt())) {
      fs::remove_all(o_.work_dir + "/jobs/" + req->job_id() + "-" + std::to_string(req->attempt()), ec);
    }
    spdlog::error("deploy of job {} attempt {} refused: {}", req->job_id(), req->attempt(), st.to_string());
    // A library or graph that cannot run here will not run after a restart
    // either (FAILED_PRECONDITION ends the job); anything else is retried.
    auto code = st.code() == StatusCode::kFailedPrecondition || st.code() == StatusCode::kInvalidArgument
                    ? grpc::StatusCode::FAILED_PRECONDITION
                    : grpc::StatusCode::INTERNAL;
    return to_grpc(st, code);
  }
  return grpc::Status::OK;
}

grpc::Status TaskManager::Impl::CancelTasks(grpc::ServerContext* ctx, const proto::CancelTasksRequest* req, proto::Empty*) {
  if (auto st = check_leader(ctx, "TaskManager/CancelTasks"); !st.ok()) return st;
  if (req->committed_checkpoint() > 0) wait_committed(req->job_id(), req->attempt(), req->committed_checkpoint());
  cancel_matching(req->job_id(), req->attempt());
  return grpc::Status::OK;
}

grpc::Status TaskManager::Impl::TriggerCheckpoint(grpc::ServerContext* ctx, const proto::TriggerCheckpointRequest* req,
                                                 proto::Empty*) {
  if (auto st = check_leader(ctx, "TaskManager/TriggerCheckpoint"); !st.ok()) return st;
  auto a = find(req->job_id(), req->attempt());
  if (!a) return grpc::Status::OK;
  runtime::Barrier b;
  b.id = CheckpointId(req->checkpoint_id());
  b.trigger_time_ms = req->trigger_time_ms();
  b.flags = static_cast<uint8_t>(req->flags());
  std::lock_guard lk(mu_);
  for (auto& t : a->tasks)
    if (t->is_source()) t->trigger_checkpoint(b);
  return grpc::Status::OK;
}

grpc::Status TaskManager::Impl::NotifyCheckpoint(grpc::ServerContext* ctx, const proto::NotifyCheckpointRequest* req,
                                                proto::Empty*) {
  if (auto st = check_leader(ctx, "TaskManager/NotifyCheckpoint"); !st.ok()) return st;
  auto a = find(req->job_id(), req->attempt());
  if (!a) return grpc::Status::OK;
  std::lock_guard lk(mu_);
  for (auto& t : a->tasks) {
    if (req->aborted()) {
      t->notify_checkpoint_aborted(CheckpointId(req->checkpoint_id()));
    } else {
      t->notify_checkpoint_complete(CheckpointId(req->checkpoint_id()), req->final_checkpoint());
    }
  }
  return grpc::Status::OK;
}

grpc::Status TaskManager::Impl::GetLog(grpc::ServerContext* ctx, const proto::LogRequest* req, proto::LogLines* resp) {
  if (auto st = rpc::check(ctx, *auth_, "TaskManager/GetLog"); !st.ok()) return st;
  const size_t max = static_cast<size_t>(std::clamp(req->max_lines() <= 0 ? 500 : req->max_lines(), 1, 5000));
  resp->set_source(o_.id);
  for (auto& l : recent_log_lines(req->job_id(), max)) resp->add_lines(std::move(l));
  return grpc::Status::OK;
}

void TaskManager::Impl::on_task_state(const TaskId& id, TaskState state, const Status& cause) {
  proto::TaskStateReport r;
  r.set_taskmanager_id(o_.id);
  *r.mutable_task() = ref_of(id);
  r.set_state(upper_state(state));
  if (!cause.is_ok()) r.set_cause(cause.to_string());
  if (state == TaskState::kFailed) r.set_permanent(is_permanent_error(cause));
  if (state != TaskState::kRunning) {
    spdlog::info("task {} {}{}", id.to_string(), upper_state(state), cause.is_ok() ? "" : ": " + cause.to_string());
    std::lock_guard lk(mu_);
    auto it = attempts_.find({id.job_id, id.attempt});
    if (it != attempts_.end()) {
      --it->second->running;
      for (const auto& t : it->second->tasks) {
        if (t->id().vertex != id.vertex || t->id().subtask != id.subtask) continue;
        r.set_records_in(t->metrics().records_in.load(std::memory_order_relaxed));
        r.set_records_out(t->metrics().records_out.load(std::memory_order_relaxed));
      }
    }
  }
  send([this, r] {
    proto::Empty e;
    call("JobManager/ReportTaskState", [&](grpc::ClientContext* c) { return with_jobmanager([&](auto& jm) { return jm.ReportTaskState(c, r, &e); }); });
  });
  if (state != TaskState::kRunning) wake_reaper();
}

void TaskManager::Impl::on_checkpoint_ack(const TaskId& id, runtime::TaskSnapshot snapshot) {
  proto::CheckpointAck a;
  *a.mutable_task() = ref_of(id);
  a.set_checkpoint_id(snapshot.id.value());
  a.set_snapshot(runtime::encode_task_snapshot(snapshot));
  send([this, a] {
    proto::Empty e;
    call("JobManager/AcknowledgeCheckpoint",
         [&](grpc::ClientContext* c) { return with_jobmanager([&](auto& jm) { return jm.AcknowledgeCheckpoint(c, a, &e); }); });
  });
}

void TaskManager::Impl::on_checkpoint_declined(const TaskId& id, CheckpointId cp, const Status& why) {
  proto::CheckpointDecline d;
  *d.mutable_task() = ref_of(id);
  d.set_checkpoint_id(cp.value());
  d.set_reason(why.to_string());
  send([this, d] {
    proto::Empty e;
    call("JobManager/DeclineCheckpoint", [&](grpc::ClientContext* c) { return with_jobmanager([&](auto& jm) { return jm.DeclineCheckpoint(c, d, &e); }); });
  });
}

void TaskManager::Impl::on_end_of_input(const TaskId& id) {
  proto::TaskRef r = ref_of(id);
  send([this, r] {
    proto::Empty e;
    call("JobManager/ReportEndOfInput", [&](grpc::ClientContext* c) { return with_jobmanager([&](auto& jm) { return jm.ReportEndOfInput(c, r, &e); }); });
  });
}

}  // namespace sluice::taskmanager
