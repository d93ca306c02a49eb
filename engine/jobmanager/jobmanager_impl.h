// The jobmanager's implementation (JobManager::Impl), shared by the files
// that define it: jobmanager.cc (start, leadership, metrics, shutdown),
// jobmanager_rpc.cc (the gRPC services and the HTTP actions),
// jobmanager_jobs.cc (job records, submit, recovery, failover),
// jobmanager_scheduler.cc (heartbeat checks, placement, deploys) and
// jobmanager_status.cc (status views). Internal to engine/jobmanager.
#pragma once
#include "engine/jobmanager/jobmanager.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "engine/common/auth.h"
#include "engine/common/clock.h"
#include "engine/common/http_server.h"
#include "engine/common/job_state.h"
#include "engine/common/json.h"
#include "engine/common/logging.h"
#include "engine/common/metrics.h"
#include "engine/common/sha256.h"
#include "engine/ha/leader_election.h"
#include "engine/jobmanager/call_queue.h"
#include "engine/jobmanager/http_api.h"
#include "engine/jobmanager/placement.h"
#include "engine/jobmanager/rate_window.h"
#include "engine/proto/control.grpc.pb.h"
#include "engine/proto/rpc_auth.h"
#include "engine/runtime/async_executor.h"
#include "engine/runtime/checkpoint_coordinator.h"
#include "engine/runtime/restore.h"
#include "engine/runtime/snapshot_wire.h"
#include "state/checkpoint_storage.h"

namespace sluice::jobmanager {

namespace fs = std::filesystem;
using runtime::CheckpointCoordinator;

inline int64_t now_ms() { return SystemClock::instance().now_ms(); }
inline int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

using auth::random_hex;

using state::read_file;
using state::write_file_atomic;

inline grpc::Status to_grpc(const Status& st) {
  using C = grpc::StatusCode;
  C c = C::UNKNOWN;
  switch (st.code()) {
    case StatusCode::kOk: return grpc::Status::OK;
    case StatusCode::kInvalidArgument: c = C::INVALID_ARGUMENT; break;
    case StatusCode::kNotFound: c = C::NOT_FOUND; break;
    case StatusCode::kAlreadyExists: c = C::ALREADY_EXISTS; break;
    case StatusCode::kPermissionDenied: c = C::PERMISSION_DENIED; break;
    case StatusCode::kFailedPrecondition: c = C::FAILED_PRECONDITION; break;
    case StatusCode::kResourceExhausted: c = C::RESOURCE_EXHAUSTED; break;
    case StatusCode::kUnavailable: c = C::UNAVAILABLE; break;
    case StatusCode::kTimeout: c = C::DEADLINE_EXCEEDED; break;
    case StatusCode::kCancelled: c = C::CANCELLED; break;
    default: c = C::INTERNAL; break;
  }
  return grpc::Status(c, st.message());
}

// Job records keep the state's name (job_state.h); unknown names are from a
// newer jobmanager and are treated as failed.
inline JobState state_of(const proto::JobRecord& r) { return parse_job_state(r.state()).value_or(JobState::kFailed); }
inline void set_state(proto::JobRecord& r, JobState s) { r.set_state(std::string(job_state_name(s))); }

using TmStub = proto::TaskManager::Stub;

struct TaskManagerInfo {
  std::string id;
  std::string control_address;
  std::string data_address;
  std::string instance;  // the registering process's random id
  int slots = 0;
  int64_t last_heartbeat = 0;  // steady ms
  std::shared_ptr<TmStub> stub;  // shared: calls run on the call queue while the map changes
  // Calls to this taskmanager, in order. Shared with the jobs' gateways;
  // never captured by a call running on it (its destructor joins its thread).
  std::shared_ptr<CallQueue> calls;
  int64_t rss_bytes = 0;  // last heartbeat
  int64_t inbound = 0, outbound = 0;
};

/// What a job's gateway needs to reach one taskmanager.
struct TmLink {
  std::shared_ptr<TmStub> stub;
  std::shared_ptr<CallQueue> calls;
};

inline bool unreachable(const grpc::Status& st) {
  return st.error_code() == grpc::StatusCode::UNAVAILABLE || st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

/// Failures kept in a job's record (status, dashboard).
inline constexpr int kFailureHistory = 50;

class JobManager::Impl final : public proto::JobManager::Service, public JobManagerView {
 public:
  explicit Impl(JobManagerOptions o) : o_(std::move(o)) {}
  ~Impl() override { shutdown(); }

  // ------------------------------------------------------------- jobs

  /// One submitted job. Shared (shared_ptr) between the jobs map and the
  /// handlers that use it outside the jobmanager lock.
  struct Job final : runtime::CheckpointGateway {
    Impl* jm = nullptr;
    proto::JobRecord rec;  // guarded by jm->mu_
    std::shared_ptr<const proto::JobGraph> graph;
    std::shared_ptr<state::CheckpointStorage> storage;
    std::unique_ptr<CheckpointCoordinator> coordinator;
    struct Subtask {
      std::string tm;
      SubtaskState state = SubtaskState::kDeploying;
      uint64_t records_in = 0, records_out = 0;  // last heartbeat
      int64_t watermark_ms = INT64_MIN;
      uint64_t dead_letters = 0;
      RateWindow rates;
    };
    std::map<std::pair<int, int>, Subtask> subtasks;  // current attempt; guarded by jm->mu_
    int64_t next_deploy_ms = 0;                        // steady; RESTARTING/CREATED
    bool stopping = false;  // stop-with-savepoint: ends FINISHED, not restarted
    // Failover (guarded by jm->mu_): the restart policy, the cancels of the
    // failed attempt (the next one deploys once every taskmanager answered
    // or was found unreachable), a deploy under way, recovery timing.
    RestartPolicy policy;
    struct PendingCancel {
      std::string tm, instance;
      std::shared_future<grpc::Status> done;
      int64_t since_ms = 0;  // steady
      int attempt = 0;       // the attempt cancelled
    };
    std::vector<PendingCancel> cancels;
    // Taskmanagers whose cancel is still unanswered after kCancelGraceMs:
    // the next attempt is placed on the others if they have room.
    std::set<std::string> slow_cancel_tms;
    bool deploying = false;
    int64_t failed_at_ms = -1;  // steady; -1: not recovering
    int64_t last_recovery_ms = 0;
    int64_t recovered_last_checkpoint = 0;  // ended jobs read back at start (no coordinator)

    // Gateway view of the current attempt (own lock: the coordinator calls
    // in holding its own lock, and must never wait for jm->mu_).
    std::mutex gw_mu;
    int gw_attempt = -1;
    std::map<std::string, TmLink> gw_tms;  // every tm of the attempt
    std::set<std::string> gw_source_tms;
    // Until every taskmanager has the attempt's tasks, a trigger would be
    // dropped by the ones still loading: it waits here instead.
    bool gw_ready = false;
    std::vector<runtime::Barrier> gw_held;

    void trigger_sources(const runtime::Barrier& b) override {
      std::lock_guard lk(gw_mu);
      if (!gw_ready) {
        gw_held.push_back(b);
        return;
      }
      send_trigger_locked(b);
    }
    /// The attempt is fully deployed: let held triggers through.
    void open_gateway(int attempt) {
      std::lock_guard lk(gw_mu);
      if (gw_attempt != attempt) return;
      gw_ready = true;
      for (const auto& b : gw_held) send_trigger_locked(b);
      gw_held.clear();
    }
    void send_trigger_locked(const runtime::Barrier& b) {
      for (const auto& tm : gw_source_tms) {
        const TmLink& link = gw_tms[tm];
        if (!link.calls) continue;
        proto::TriggerCheckpointRequest r;
        r.set_job_id(rec_id);
        r.set_attempt(gw_attempt);
        r.set_checkpoint_id(b.id.value());
        r.set_trigger_time_ms(b.trigger_time_ms);
        r.set_flags(b.flags);
        link.calls->post(
            [stub = link.stub, r, jm = jm](grpc::ClientContext& ctx) {
              jm->sign_tm_call(ctx, "TaskManager/TriggerCheckpoint");
              proto::Empty e;
              return stub->TriggerCheckpoint(&ctx, r, &e);
            },
            Duration(3000));
      }
    }
    void notify(CheckpointId id, bool final_cp, bool aborted) {
      std::lock_guard lk(gw_mu);
      for (const auto& [tm, link] : gw_tms) {
        proto::NotifyCheckpointRequest r;
        r.set_job_id(rec_id);
        r.set_attempt(gw_attempt);
        r.set_checkpoint_id(id.value());
        r.set_final_checkpoint(final_cp);
        r.set_aborted(aborted);
        link.calls->post(
            [stub = link.stub, r, jm = jm](grpc::ClientContext& ctx) {
              jm->sign_tm_call(ctx, "TaskManager/NotifyCheckpoint");
              proto::Empty e;
              return stub->NotifyCheckpoint(&ctx, r, &e);
            },
            Duration(3000));
      }
    }
    void notify_complete(CheckpointId id, bool final_cp) override { notify(id, final_cp, false); }
    void notify_aborted(CheckpointId id) override { notify(id, false, true); }
    /// With standby jobmanagers, a checkpoint is complete once the leader
    /// has recorded it in etcd (fenced by its epoch): a new leader restores
    /// from exactly the checkpoints whose sinks may have committed.
    Status commit_point(const state::StoredCheckpoint& cp) override {
      if (!jm->election_) return Status::ok();
      std::string v = "{\"id\":" + std::to_string(cp.meta.id) + ",\"dir\":";
      json_append_string(v, cp.dir);
      return jm->election_->put_as_leader(jm->ha_->checkpoint_key(rec_id), v + "}");
    }

    std::string rec_id;  // immutable copy of rec.job_id for the gateway
  };

  Status start();

  /// The cluster secret in `path`, or a new random one written there (mode
  /// 0600). Standby jobmanagers share the file: the first to start creates
  /// it (link(2) fails for the others, who read the winner's).
  static Result<std::string> load_or_create_token(const std::string& path);

  /// Elected (on the election's thread): take the jobs over from the shared
  /// directory, each from the checkpoint etcd names.
  void become_leader(int64_t epoch);

  size_t jobs_count();

  /// The election can no longer prove this process leads: stop acting at
  /// once; the process ends (a supervisor starts it again as a standby).
  void leadership_lost(const std::string& why);

  /// Refuses calls while this jobmanager is a standby.
  grpc::Status require_leader();

  /// The HTTP settings of this process: TLS (mutual with a CA) as on the
  /// gRPC server, and the bearer token unless read access is open.
  HttpServerOptions http_options(const std::string& bind, const char* name) const;

  int port() const { return port_; }
  int http_port() const { return http_ ? http_->port() : 0; }
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }

  /// /metrics: process metrics and, read at scrape time, every job's
  /// restarts and checkpoint stats and the cluster's taskmanagers and slots.
  Status start_metrics();

  void wait();
  bool lost_leadership();

  void shutdown();

  // ------------------------------------------------------------- CLI RPCs

  grpc::Status SubmitJob(grpc::ServerContext* ctx, const proto::SubmitJobRequest* req,
                         proto::SubmitJobResponse* resp) override;

  grpc::Status ListJobs(grpc::ServerContext* ctx, const proto::ListJobsRequest* req,
                        proto::ListJobsResponse* resp) override;

  grpc::Status GetJobStatus(grpc::ServerContext* ctx, const proto::JobRequest* req,
                            proto::JobStatusResponse* resp) override;

  grpc::Status CancelJob(grpc::ServerContext* ctx, const proto::JobRequest* req, proto::Empty*) override;

  grpc::Status TriggerSavepoint(grpc::ServerContext* ctx, const proto::SavepointRequest* req,
                                proto::SavepointResponse* resp) override;

  grpc::Status DisposeSavepoint(grpc::ServerContext* ctx, const proto::DisposeSavepointRequest* req,
                                proto::Empty*) override;

  grpc::Status GetLogs(grpc::ServerContext* ctx, const proto::LogRequest* req, proto::LogResponse* resp) override;

  // ------------------------------------------------------------- actions (gRPC and HTTP)

  Status cancel_job(const std::string& job_id) override;

  Result<proto::SavepointResponse> savepoint(const std::string& job_id, const std::string& dir, bool stop) override;

  /// Removes a savepoint directory: only one whose metadata says it is a
  /// savepoint, and not while a job that has not ended was started from
  /// it and has not completed a checkpoint of its own since.
  Status dispose_savepoint(const std::string& path);

  /// The latest log lines about a job (or of one taskmanager): the
  /// jobmanager's own, and those of each taskmanager asked, fetched over
  /// gRPC (3 s at most each; a taskmanager that does not answer is named).
  Result<proto::LogResponse> logs(const proto::LogRequest& req) override;

  // ------------------------------------------------------------- taskmanager RPCs

  grpc::Status RegisterTaskManager(grpc::ServerContext* ctx, const proto::RegisterRequest* req,
                                   proto::RegisterResponse* resp) override;

  grpc::Status Heartbeat(grpc::ServerContext* ctx, const proto::HeartbeatRequest* req,
                         proto::HeartbeatResponse* resp) override;

  grpc::Status DisconnectTaskManager(grpc::ServerContext* ctx, const proto::DisconnectRequest* req,
                                     proto::Empty*) override;

  grpc::Status ReportTaskState(grpc::ServerContext* ctx, const proto::TaskStateReport* req, proto::Empty*) override;

  grpc::Status AcknowledgeCheckpoint(grpc::ServerContext* ctx, const proto::CheckpointAck* req, proto::Empty*) override;

  grpc::Status DeclineCheckpoint(grpc::ServerContext* ctx, const proto::CheckpointDecline* req, proto::Empty*) override;

  grpc::Status ReportEndOfInput(grpc::ServerContext* ctx, const proto::TaskRef* req, proto::Empty*) override;

  grpc::Status FetchArtifact(grpc::ServerContext* ctx, const proto::FetchArtifactRequest* req,
                             grpc::ServerWriter<proto::ArtifactChunk>* writer) override;

 private:
  friend class JobManager;

  /// Signs a call to a taskmanager with the cluster secret and this jobmanager's epoch.
  void sign_tm_call(grpc::ClientContext& ctx, const char* method) const;

  grpc::Status authorize(grpc::ServerContext* ctx, const std::string& token, const char* what);

  grpc::Status unknown_job(const std::string& id);

  std::shared_ptr<Job> find(const std::string& id);

  std::string artifact_path(const std::string& sha) const { return store_ + "/artifacts/" + sha + ".so"; }
  std::string job_dir(const std::string& id) const { return store_ + "/jobs/" + id; }

  int free_slots_locked() const;
  int used_slots_locked(std::map<std::string, int>* per_tm) const;
  static int slots_needed(const proto::JobGraph& g);

  /// Writes the job record; errors are logged (the job goes on in memory).
  void persist_locked(const Job& j) { (void)write_record_locked(j); }
  Status write_record_locked(const Job& j);

  Status make_coordinator(Job& j, int64_t committed_up_to = INT64_MAX);

  Status submit(const proto::SubmitJobRequest& req, proto::SubmitJobResponse* resp);

  static int subtask_count(const proto::JobGraph& g);

  Status recover_jobs();

  /// The id of the last checkpoint of `job` a leader recorded in etcd (0: none).
  Result<int64_t> committed_checkpoint(const std::string& job);

  /// Cancels the tasks of the job's current attempt on every taskmanager.
  /// The next attempt deploys once every taskmanager has answered (or was
  /// found unreachable and dropped): old tasks never overlap new ones.
  void cancel_tasks_locked(Job& j, int64_t committed_checkpoint = 0);
  /// The CancelTasks call `r` to `stub`, signed, for a taskmanager's CallQueue.
  CallQueue::Call cancel_call(std::shared_ptr<TmStub> stub, proto::CancelTasksRequest r);

  void end_job_locked(Job& j, JobState state, const std::string& failure,
                      int64_t committed_checkpoint = 0);

  /// A failure of the current attempt: kept in the job's failure history,
  /// then the attempt fails — and the job with it when the failure is
  /// permanent (the cause will not go away by restarting), else it restarts
  /// under the restart policy (fail_attempt_locked).
  void job_failed_locked(Job& j, proto::FailureRecord f, std::string cause);

  /// A task failed or its taskmanager was lost: cancel the attempt and
  /// schedule a restart from the latest completed checkpoint — or give the
  /// job up when the restart policy's failure rate is exceeded.
  void fail_attempt_locked(Job& j, const std::string& cause);

  void lose_tm_locked(const std::string& tm_id, const std::string& why);

  void wake_scheduler();

  /// Whether the next attempt of `j` may be deployed: every cancel of the
  /// last attempt answered — or unanswered for kCancelGraceMs: a live but
  /// slow taskmanager (a loaded machine) then only keeps the next attempt
  /// off itself (`slow_cancel_tms`) instead of holding it up until its
  /// call's deadline. A taskmanager that could not be reached is dropped at
  /// once: it is not placed again until it registers again; one whose
  /// cancel timed out while it kept heartbeating stays (lost_on_failed_call)
  /// and is sent the cancel again.
  bool cancels_settled_locked(Job& j);

  void scheduler_loop();

  /// Places and deploys the next attempt of `j` if enough slots are free.
  /// Runs on the deployer; `j.deploying` is set while it does.
  void deploy(const std::shared_ptr<Job>& jp);

  /// The coordinator's numbers, read without mu_ (it has its own lock).
  struct CheckpointView {
    runtime::CheckpointStats stats;
    std::vector<runtime::CheckpointHistoryEntry> history;
  };
  CheckpointView checkpoint_view(Job& j, bool with_history);

  proto::JobSummary summary_locked(Job& j, const CheckpointView& cv);

  proto::JobSummary summary(Job& j);

  proto::JobStatusResponse status(Job& j);

  // ------------------------------------------------------------- JobManagerView (HTTP)

  std::vector<proto::JobStatusResponse> job_statuses() override;

  std::optional<proto::JobStatusResponse> job_status(const std::string& id) override;

  std::vector<proto::TaskManagerStatus> taskmanager_statuses() override;

  bool token_matches(std::string_view token) const override { return auth_->token_matches(token); }

  std::string token_location() const override { return token_location_text(token_in_data_dir_); }

  std::optional<std::string> standby_of() const override;

  JobManagerOptions o_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<auth::CallAuthenticator> auth_;  // set in start(), before any server
  bool token_in_data_dir_ = false;                  // set in start(): the token is <data-dir>/token
  std::shared_ptr<grpc::ChannelCredentials> tm_creds_;  // for calls to taskmanagers
  // Calls to taskmanagers go through each one's CallQueue (TaskManagerInfo):
  // the coordinator and the handlers post there instead of calling out
  // while they hold locks. Deploys run here, off the scheduler thread, so
  // that a hanging taskmanager never stops heartbeat checks.
  std::unique_ptr<runtime::AsyncExecutor> deployer_ = std::make_unique<runtime::AsyncExecutor>(2);
  // The fencing epoch signed into every call to taskmanagers (0: no election).
  std::atomic<int64_t> epoch_{0};

  std::mutex mu_;  // guards tms_, jobs_, suspects_, retired_, last_check_ms_ and every Job's rec/subtasks/failover fields
  // The scheduler checks heartbeats every 100 ms; a gap longer than this
  // slack between checks is a stall of the jobmanager (scheduler thread only).
  static constexpr int64_t kStallSlackMs = 400;
  // A cancel unanswered this long keeps the next attempt off its
  // taskmanager instead of holding the attempt up (cancels_settled_locked).
  static constexpr int64_t kCancelGraceMs = 700;
  int64_t last_check_ms_ = 0;
  std::map<std::string, TaskManagerInfo> tms_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  Suspects suspects_;
  std::vector<std::shared_ptr<CallQueue>> retired_;  // closed queues of lost taskmanagers, joined by the scheduler

  // Standby jobmanagers (engine/ha): unset/null with one jobmanager.
  std::optional<ha::HaConfig> ha_;
  std::unique_ptr<ha::LeaderElection> election_;
  std::thread takeover_;  // become_leader(), once elected
  std::atomic<bool> leader_{false};  // serving: the only jobmanager, or elected
  std::string store_;                // jobs/ and artifacts/: the data dir, or the shared --ha-dir

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopped_ = false;
  bool lost_leadership_ = false;
  bool wake_ = false;
  std::thread scheduler_;
  // Last: its scrape callback reads jobs_ and tms_, so it stops first.
  std::unique_ptr<metrics::MetricsServer> metrics_;
};

}  // namespace sluice::jobmanager
