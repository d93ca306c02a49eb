// The taskmanager's implementation (TaskManager::Impl), shared by the files
// that define it: taskmanager.cc (start, metrics, shutdown),
// taskmanager_rpc.cc (the gRPC service the jobmanager calls and the task
// listener's reports back), taskmanager_attempts.cc (job libraries, deploy,
// cancel, reaping) and taskmanager_link.cc (registration, heartbeats,
// following the leading jobmanager). Internal to engine/taskmanager.
#pragma once
#include "engine/taskmanager/taskmanager.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "engine/api/job_library.h"
#include "engine/common/auth.h"
#include "engine/common/clock.h"
#include "engine/common/http_server.h"
#include "engine/common/logging.h"
#include "engine/common/metrics.h"
#include "engine/common/sha256.h"
#include "engine/ha/leader_election.h"
#include "engine/proto/control.grpc.pb.h"
#include "engine/proto/rpc_auth.h"
#include "engine/runtime/async_executor.h"
#include "engine/runtime/data_plane.h"
#include "engine/runtime/restore.h"
#include "engine/runtime/snapshot_wire.h"
#include "engine/runtime/task.h"
#include "state/checkpoint_storage.h"

namespace sluice::taskmanager {

namespace fs = std::filesystem;
using runtime::Task;
using runtime::TaskId;
using runtime::TaskState;

inline std::string upper_state(TaskState s) { return std::string(runtime::task_state_name(s)); }

inline proto::TaskRef ref_of(const TaskId& id) {
  proto::TaskRef r;
  r.set_job_id(id.job_id);
  r.set_vertex(id.vertex);
  r.set_subtask(id.subtask);
  r.set_attempt(id.attempt);
  return r;
}

using state::read_file;

inline grpc::Status to_grpc(const Status& st, grpc::StatusCode code = grpc::StatusCode::INTERNAL) {
  return st.is_ok() ? grpc::Status::OK : grpc::Status(code, st.to_string());
}

inline bool is_sha256_hex(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

/// Job ids name directories here: the jobmanager makes them of [A-Za-z0-9_-].
inline bool is_job_id(const std::string& s) {
  if (s.empty() || s.size() > 200) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  return true;
}

/// The taskmanager process: the gRPC service the jobmanager calls, the task
/// listener of every subtask here, the heartbeat thread (which also reaps
/// ended attempts). Owned by TaskManager; start() once, shutdown() from any
/// thread (idempotent).
class TaskManager::Impl final : public proto::TaskManager::Service, public runtime::TaskListener {
 public:
  explicit Impl(TaskManagerOptions o) : o_(std::move(o)) {}
  ~Impl() override { shutdown(); }

  /// The subtasks of one job attempt that run here. Shared (shared_ptr) by
  /// the attempts map and the threads that cancel and reap it.
  struct Attempt {
    std::string job_id;
    int attempt = 0;
    api::PreparedJob job;  // keeps the library loaded while tasks run
    std::unique_ptr<runtime::NetworkChannelProvider> channels;
    std::vector<std::unique_ptr<Task>> tasks;
    int running = 0;
    /// Set when the jobmanager ended the attempt (or this process stops).
    /// Until then an attempt whose tasks all finished stays: its senders
    /// may still be delivering the last buffers to other taskmanagers.
    bool ended = false;
    std::string work_dir;  // <work_dir>/jobs/<job>-<attempt>: removed when the attempt is reaped
  };

  // ------------------------------------------------------------- lifecycle (taskmanager.cc)

  Status start();

  void wait();

  /// Stops heartbeating, tells the jobmanager (so that the jobs using this
  /// process restart elsewhere at once), cancels and joins every task,
  /// closes the data plane and the gRPC server.
  void shutdown();

  size_t attempt_count();

  const std::string& id() const { return o_.id; }
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }

  /// /metrics: the registry (Kafka lag, results sinks, latency), process
  /// metrics and, read from TaskMetrics at scrape time, every subtask here.
  Status start_metrics();

  // ------------------------------------------------------------- RPCs (taskmanager_rpc.cc)

  /// Checks a call from a jobmanager: the cluster secret, and an epoch no
  /// lower than the newest leader's this process has seen (a deposed
  /// leader is refused; a higher epoch is a newer leader).
  grpc::Status check_leader(grpc::ServerContext* ctx, const char* method);

  grpc::Status DeployTasks(grpc::ServerContext* ctx, const proto::DeployRequest* req, proto::Empty*) override;

  grpc::Status CancelTasks(grpc::ServerContext* ctx, const proto::CancelTasksRequest* req, proto::Empty*) override;

  grpc::Status TriggerCheckpoint(grpc::ServerContext* ctx, const proto::TriggerCheckpointRequest* req,
                                 proto::Empty*) override;

  grpc::Status NotifyCheckpoint(grpc::ServerContext* ctx, const proto::NotifyCheckpointRequest* req,
                                proto::Empty*) override;

  grpc::Status GetLog(grpc::ServerContext* ctx, const proto::LogRequest* req, proto::LogLines* resp) override;

  // ------------------------------------------------------------- TaskListener (taskmanager_rpc.cc)

  void on_task_state(const TaskId& id, TaskState state, const Status& cause) override;

  void on_checkpoint_ack(const TaskId& id, runtime::TaskSnapshot snapshot) override;

  void on_checkpoint_declined(const TaskId& id, CheckpointId cp, const Status& why) override;

  void on_end_of_input(const TaskId& id) override;

 private:
  // ------------------------------------------------------------- the jobmanager link (taskmanager_link.cc)

  /// Runs a call to the jobmanager, retrying briefly while it is unreachable.
  template <class F>
  void call(const char* method, F f) {
    for (int i = 0; i < 20; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
      rpc::sign(ctx, *auth_, method);
      grpc::Status st = f(&ctx);
      if (st.ok() || st.error_code() != grpc::StatusCode::UNAVAILABLE) return;
      if (stopping()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  }

  void send(std::function<void()> f) { reports_.submit(std::move(f)); }

  void connect_jobmanager(const std::string& address);
  std::shared_ptr<proto::JobManager::Stub> jobmanager();
  std::string jobmanager_address();
  /// Runs `f(stub)`; UNAVAILABLE while no jobmanager is known.
  template <class F>
  grpc::Status with_jobmanager(F f) {
    auto jm = jobmanager();
    if (!jm) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no jobmanager leads yet");
    return f(*jm);
  }
  void raise_leader_epoch(int64_t epoch);
  /// With standby jobmanagers: switches to a new leader once etcd names
  /// one (true: register with it; the old one's tasks are cancelled then).
  bool follow_leader();

  /// Tells the jobmanager this process is leaving (best effort, 2 s).
  void disconnect(const std::string& reason);

  void heartbeat_loop();

  bool stopping();

  // ------------------------------------------------------------- attempts (taskmanager_attempts.cc)

  std::shared_ptr<Attempt> find(const std::string& job, int attempt);

  /// The job library for `sha`, fetched from the jobmanager once and cached
  /// on disk; its bytes are checked against the sha256 on every load.
  static constexpr size_t kMaxLibraryBytes = size_t{512} << 20;

  Result<std::shared_ptr<api::JobLibrary>> library(const std::string& sha);

  /// Fetches and loads the library `sha` in the background if this process
  /// has not yet (heartbeat thread): the first deploy of a job here — a
  /// failover onto this taskmanager — then starts from the cache instead
  /// of downloading, writing and checking megabytes first. A failed fetch
  /// is tried again at a later heartbeat.
  static constexpr int kMaxPrefetch = 64;
  void prefetch(const std::string& sha);

  Status deploy(const proto::DeployRequest& req);

  /// Stop with a savepoint: waits (at most 30 s) until every running task
  /// of the attempt has processed the completion of checkpoint `id`.
  void wait_committed(const std::string& job, int attempt, int64_t id);

  void cancel_locked(Attempt& a);

  /// Cancels the attempts of `job` (every job if empty) with `attempt`
  /// (every attempt if < 0).
  void cancel_matching(const std::string& job, int attempt);

  void wake_reaper();

  /// Joins and forgets attempts whose tasks have all ended.
  void reap(bool all);
  void reap_all() { reap(true); }

  TaskManagerOptions o_;
  std::unique_ptr<runtime::DataPlane> plane_;
  std::unique_ptr<grpc::Server> server_;
  int control_port_ = 0;
  // The jobmanager (the leader, with standbys); replaced when another leads.
  std::mutex jm_mu_;
  std::shared_ptr<proto::JobManager::Stub> jm_;  // guarded by jm_mu_; shared: calls run on copies
  std::string jm_address_;                       // guarded by jm_mu_
  std::shared_ptr<grpc::ChannelCredentials> jm_creds_;
  std::unique_ptr<ha::LeaderRetriever> leader_;  // set with etcd://
  int64_t followed_epoch_ = 0;                   // heartbeat thread only
  std::atomic<int64_t> leader_epoch_{0};         // the newest leader epoch seen: calls of older ones are refused
  bool started_ = false;
  std::unique_ptr<auth::CallAuthenticator> auth_;  // set in start(), before any server
  std::string instance_;                           // random per process (registration)
  runtime::AsyncExecutor snapshots_{2};
  // Reports to the jobmanager, in order, off the task threads.
  runtime::AsyncExecutor reports_{1};

  std::mutex lib_mu_;
  std::map<std::string, std::shared_ptr<api::JobLibrary>> libraries_;
  std::mutex prefetch_mu_;
  std::set<std::string> prefetched_;  // guarded by prefetch_mu_: fetched or being fetched ahead of time
  runtime::AsyncExecutor prefetcher_{1};

  std::mutex mu_;  // guards attempts_
  std::map<std::pair<std::string, int>, std::shared_ptr<Attempt>> attempts_;

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopped_ = false;
  bool reap_ = false;
  std::thread heartbeat_;
  // Last: its scrape callback reads attempts_, so it stops first.
  std::unique_ptr<metrics::MetricsServer> metrics_;
};

}  // namespace sluice::taskmanager
