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

namespace {

int64_t now_ms() { return SystemClock::instance().now_ms(); }
int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

using auth::random_hex;

using state::read_file;
using state::write_file_atomic;

grpc::Status to_grpc(const Status& st) {
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
JobState state_of(const proto::JobRecord& r) { return parse_job_state(r.state()).value_or(JobState::kFailed); }
void set_state(proto::JobRecord& r, JobState s) { r.set_state(std::string(job_state_name(s))); }

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

bool unreachable(const grpc::Status& st) {
  return st.error_code() == grpc::StatusCode::UNAVAILABLE || st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

/// Failures kept in a job's record (status, dashboard).
constexpr int kFailureHistory = 50;

}  // namespace

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

  Status start() {
    if (o_.data_dir.empty()) return Status::invalid_argument("--data-dir is required");
    if (!o_.ha.empty()) {
      if (o_.ha_dir.empty()) {
        return Status::invalid_argument(
            "--ha needs --ha-dir: the directory every jobmanager of the cluster shares (job records and libraries)");
      }
      SLUICE_ASSIGN_OR_RETURN(auto cfg, ha::HaConfig::parse(o_.ha));
      cfg.lease_ttl = o_.ha_lease_ttl;
      ha_ = cfg;
    }
    store_ = ha_ ? o_.ha_dir : o_.data_dir;
    leader_ = !ha_;  // the only jobmanager serves from the start (as before standbys existed)
    std::error_code ec;
    for (const auto& dir : {o_.data_dir, store_}) {
      const bool fresh = !fs::exists(dir);
      fs::create_directories(dir, ec);
      // Job records hold graphs with their source and sink URIs, artifacts
      // the job code: private to the jobmanager's user (the data dir itself
      // too when it is created here; an existing one keeps its mode).
      if (ec) return Status::io_error("cannot create " + dir + ": " + ec.message());
      if (fresh) ::chmod(dir.c_str(), 0700);
    }
    for (const char* d : {"/jobs", "/artifacts"}) {
      fs::create_directories(store_ + d, ec);
      if (ec) return Status::io_error("cannot create " + store_ + d + ": " + ec.message());
      ::chmod((store_ + d).c_str(), 0700);
    }
    if (o_.checkpoint_dir.empty()) o_.checkpoint_dir = store_ + "/checkpoints";
    if (o_.token.empty()) {
      SLUICE_ASSIGN_OR_RETURN(o_.token, load_or_create_token(store_ + "/token"));
      spdlog::info("client token in {}/token (pass it with --token-file or SLUICE_TOKEN)", store_);
    }
    auth_ = std::make_unique<auth::CallAuthenticator>(o_.token);
    rpc::TlsFiles tls{o_.tls_cert, o_.tls_key, o_.tls_ca};
    // Calls to taskmanagers go over TLS (presenting this certificate) when a
    // CA to check theirs is given; without one, TLS is on the server only.
    SLUICE_ASSIGN_OR_RETURN(tm_creds_, rpc::channel_credentials(o_.tls_ca.empty() ? rpc::TlsFiles{} : tls));
    auto ivl = parse_duration(o_.checkpoint_interval);
    if (!ivl.is_ok()) return Status::invalid_argument("--checkpoint-interval: " + ivl.status().message());

    grpc::ServerBuilder b;
    SLUICE_ASSIGN_OR_RETURN(auto creds, rpc::server_credentials(tls));
    b.AddListeningPort(o_.bind, creds, &port_);
    b.RegisterService(this);
    b.SetMaxReceiveMessageSize(512 * 1024 * 1024);
    b.SetMaxSendMessageSize(64 * 1024 * 1024);
    server_ = b.BuildAndStart();
    if (!server_ || port_ == 0) {
      return Status::unavailable("cannot listen on " + o_.bind + " (in use, or not a host:port?)");
    }
    if (!o_.http_bind.empty()) {
      auto http = HttpServer::create(http_options(o_.http_bind, "status"));
      if (!http.is_ok()) return http.status().with_context("--http-bind");
      http_ = std::move(*http);
      add_http_api(*http_, *this);
      http_->start();
    }
    {
      // Tools and scripts find a jobmanager bound to port 0 here.
      std::string host = o_.bind.substr(0, o_.bind.rfind(':'));
      SLUICE_RETURN_IF_ERROR(write_file_atomic(o_.data_dir + "/jobmanager.address",
                                               host + ":" + std::to_string(port_) + "\n"));
      if (http_) {
        std::string hh = o_.http_bind.substr(0, o_.http_bind.rfind(':'));
        SLUICE_RETURN_IF_ERROR(write_file_atomic(o_.data_dir + "/http.address",
                                                 hh + ":" + std::to_string(http_->port()) + "\n"));
      }
    }
    SLUICE_RETURN_IF_ERROR(start_metrics());
    if (ha_) {
      std::string host = o_.bind.substr(0, o_.bind.rfind(':'));
      ha::LeaderInfo self{host + ":" + std::to_string(port_),
                          http_ ? o_.http_bind.substr(0, o_.http_bind.rfind(':')) + ":" + std::to_string(http_->port())
                                : std::string()};
      election_ = std::make_unique<ha::LeaderElection>(*ha_, self);
      spdlog::info("jobmanager listening on {} (port {}), standby for cluster '{}' until elected (etcd {})", o_.bind,
                   port_, ha_->cluster, ha_->endpoints.front());
      // Taking the jobs over runs on a thread of its own: the election's
      // thread must keep renewing the lease meanwhile.
      election_->start([this](int64_t epoch) { takeover_ = std::thread([this, epoch] { become_leader(epoch); }); },
                       [this](const std::string& why) { leadership_lost(why); });
    } else {
      SLUICE_RETURN_IF_ERROR(recover_jobs());
      spdlog::info("jobmanager listening on {} (port {}), data dir {}", o_.bind, port_, o_.data_dir);
    }
    scheduler_ = std::thread([this] { scheduler_loop(); });
    return Status::ok();
  }

  /// The cluster secret in `path`, or a new random one written there (mode
  /// 0600). Standby jobmanagers share the file: the first to start creates
  /// it (link(2) fails for the others, who read the winner's).
  static Result<std::string> load_or_create_token(const std::string& path) {
    for (int i = 0; i < 2; ++i) {
      auto existing = read_file(path);
      if (existing.is_ok() && !existing->empty()) {
        std::string t = *existing;
        while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
        return t;
      }
      std::string tmp = path + ".new-" + random_hex(4);
      SLUICE_RETURN_IF_ERROR(write_file_atomic(tmp, random_hex(16) + "\n", 0600));
      const int rc = ::link(tmp.c_str(), path.c_str());
      ::unlink(tmp.c_str());
      if (rc != 0 && errno != EEXIST) return Status::from_errno("cannot create " + path, errno);
    }
    return Status::io_error("cannot read the token in " + path);
  }

  /// Elected (on the election's thread): take the jobs over from the shared
  /// directory, each from the checkpoint etcd names.
  void become_leader(int64_t epoch) {
    epoch_.store(epoch);
    {
      std::lock_guard lk(stop_mu_);
      if (stopped_) return;
    }
    Status st = recover_jobs();
    if (!st.is_ok()) {
      leadership_lost("cannot recover the jobs: " + st.to_string());
      return;
    }
    leader_ = true;
    spdlog::info("jobmanager leads cluster '{}' (epoch {}): {} jobs, waiting for taskmanagers", ha_->cluster, epoch,
                 jobs_count());
    wake_scheduler();
  }

  size_t jobs_count() {
    std::lock_guard lk(mu_);
    return jobs_.size();
  }

  /// The election can no longer prove this process leads: stop acting at
  /// once; the process ends (a supervisor starts it again as a standby).
  void leadership_lost(const std::string& why) {
    leader_ = false;
    spdlog::error("jobmanager stops: no longer the leader ({})", why);
    std::lock_guard lk(stop_mu_);
    lost_leadership_ = true;
    stop_cv_.notify_all();
  }

  /// Refuses calls while this jobmanager is a standby.
  grpc::Status require_leader() {
    if (leader_) return grpc::Status::OK;
    std::string who;
    if (election_) {
      auto l = election_->current_leader();
      who = l ? "; the leader is " + l->address : "";
    }
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "this jobmanager is a standby" + who + " (clients and taskmanagers can follow the leader "
                        "with --jobmanager " + o_.ha + ")");
  }

  /// The HTTP settings of this process: TLS (mutual with a CA) as on the
  /// gRPC server, and the bearer token unless read access is open.
  HttpServerOptions http_options(const std::string& bind, const char* name) const {
    HttpServerOptions h;
    h.bind = bind;
    h.name = name;
    h.tls_cert = o_.tls_cert;
    h.tls_key = o_.tls_key;
    h.tls_ca = o_.tls_ca;
    if (!o_.open_read_access) h.bearer_token = o_.token;
    return h;
  }

  int port() const { return port_; }
  int http_port() const { return http_ ? http_->port() : 0; }
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }

  /// /metrics: process metrics and, read at scrape time, every job's
  /// restarts and checkpoint stats and the cluster's taskmanagers and slots.
  Status start_metrics() {
    if (o_.metrics_bind.empty()) return Status::ok();
    auto m = metrics::MetricsServer::start(http_options(o_.metrics_bind, "metrics"));
    if (!m.is_ok()) return m.status().with_context("--metrics-bind");
    metrics_ = std::move(*m);
    metrics_->add(std::make_shared<metrics::CallbackCollectable>([this] {
      std::vector<std::shared_ptr<Job>> jobs;
      metrics::FamilyBuilder cluster;
      {
        std::lock_guard lk(mu_);
        for (auto& [id, j] : jobs_) jobs.push_back(j);
        std::map<std::string, int> used;
        used_slots_locked(&used);
        int slots = 0, busy = 0;
        for (const auto& [id, tm] : tms_) slots += tm.slots, busy += used[id];
        cluster.gauge("sluice_jobmanager_taskmanagers", "Registered taskmanagers", {}, static_cast<double>(tms_.size()));
        cluster.gauge("sluice_jobmanager_leader", "1 while this jobmanager serves (the only one, or the elected leader)",
                      {}, leader_ ? 1 : 0);
        cluster.gauge("sluice_jobmanager_slots", "Slots offered by registered taskmanagers", {}, slots);
        cluster.gauge("sluice_jobmanager_slots_used", "Slots running subtasks", {}, busy);
      }
      std::vector<metrics::JobSample> samples;
      for (auto& j : jobs) {
        metrics::JobSample s;
        if (j->coordinator) {
          auto st = j->coordinator->stats();  // its own lock; never under mu_
          s.checkpoints_completed = st.completed;
          s.checkpoints_failed = st.failed;
          s.last_checkpoint_id = st.last_completed_id;
          s.last_duration_ms = st.last_duration_ms;
          s.last_size_bytes = st.last_size_bytes;
          s.last_alignment_ms = st.last_alignment_ms;
          s.last_sync_ms = st.last_sync_ms;
        }
        std::lock_guard lk(mu_);
        s.job = j->graph->name();
        s.job_id = j->rec.job_id();
        s.state = j->rec.state();  // the name
        s.restarts = j->rec.restarts();
        s.gave_up = j->rec.gave_up();
        s.recent_failures = j->policy.failures_in_interval(steady_ms());
        s.last_recovery_ms = j->last_recovery_ms;
        samples.push_back(std::move(s));
      }
      auto out = metrics::job_families(samples);
      for (auto& f : cluster.take()) out.push_back(std::move(f));
      return out;
    }));
    SLUICE_RETURN_IF_ERROR(write_file_atomic(o_.data_dir + "/metrics.address", metrics_->address() + "\n"));
    spdlog::info("jobmanager metrics at http://{}/metrics", metrics_->address());
    return Status::ok();
  }

  void wait() {
    std::unique_lock lk(stop_mu_);
    stop_cv_.wait(lk, [&] { return stopped_ || lost_leadership_; });
  }
  bool lost_leadership() {
    std::lock_guard lk(stop_mu_);
    return lost_leadership_;
  }

  void shutdown() {
    {
      std::lock_guard lk(stop_mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    stop_cv_.notify_all();
    spdlog::info("jobmanager shutting down: no new calls, jobs stay as they are for the next jobmanager");
    if (scheduler_.joinable()) scheduler_.join();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    http_.reset();
    std::vector<std::shared_ptr<Job>> jobs;
    {
      std::lock_guard lk(mu_);
      for (auto& [id, j] : jobs_) jobs.push_back(j);
    }
    for (auto& j : jobs)
      if (j->coordinator) j->coordinator->stop();
    std::vector<std::shared_ptr<CallQueue>> queues;
    {
      std::lock_guard lk(mu_);
      for (auto& [id, tm] : tms_) {
        tm.calls->close();
        queues.push_back(tm.calls);
      }
      for (auto& q : retired_) queues.push_back(std::move(q));
      retired_.clear();
    }
    deployer_.reset();  // deploys under way end at once: their calls were cancelled
    queues.clear();
    leader_ = false;
    if (election_) election_->resign();  // a standby takes over now, not after the lease TTL
    if (takeover_.joinable()) takeover_.join();
    spdlog::info("jobmanager stopped");
  }

  // ------------------------------------------------------------- CLI RPCs

  grpc::Status SubmitJob(grpc::ServerContext* ctx, const proto::SubmitJobRequest* req,
                         proto::SubmitJobResponse* resp) override {
    if (auto st = require_leader(); !st.ok()) return st;
    if (auto st = authorize(ctx, req->token(), "submit"); !st.ok()) return st;
    Status st = submit(*req, resp);
    if (!st.is_ok()) spdlog::warn("submit refused: {}", st.to_string());
    return to_grpc(st);
  }

  grpc::Status ListJobs(grpc::ServerContext* ctx, const proto::ListJobsRequest* req,
                        proto::ListJobsResponse* resp) override {
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

  grpc::Status GetJobStatus(grpc::ServerContext* ctx, const proto::JobRequest* req,
                            proto::JobStatusResponse* resp) override {
    if (auto st = require_leader(); !st.ok()) return st;
    if (!o_.open_read_access) {
      if (auto st = authorize(ctx, req->token(), "status"); !st.ok()) return st;
    }
    auto j = find(req->job_id());
    if (!j) return unknown_job(req->job_id());
    *resp = status(*j);
    return grpc::Status::OK;
  }

  grpc::Status CancelJob(grpc::ServerContext* ctx, const proto::JobRequest* req, proto::Empty*) override {
    if (auto st = require_leader(); !st.ok()) return st;
    if (auto st = authorize(ctx, req->token(), "cancel"); !st.ok()) return st;
    return to_grpc(cancel_job(req->job_id()));
  }

  grpc::Status TriggerSavepoint(grpc::ServerContext* ctx, const proto::SavepointRequest* req,
                                proto::SavepointResponse* resp) override {
    if (auto st = require_leader(); !st.ok()) return st;
    if (auto st = authorize(ctx, req->token(), req->stop() ? "stop" : "savepoint"); !st.ok()) return st;
    auto r = savepoint(req->job_id(), req->path(), req->stop());
    if (!r.is_ok()) return to_grpc(r.status());
    *resp = std::move(*r);
    return grpc::Status::OK;
  }

  grpc::Status DisposeSavepoint(grpc::ServerContext* ctx, const proto::DisposeSavepointRequest* req,
                                proto::Empty*) override {
    if (auto st = authorize(ctx, req->token(), "dispose-savepoint"); !st.ok()) return st;
    Status st = dispose_savepoint(req->path());
    if (!st.is_ok()) spdlog::warn("savepoint {} not disposed: {}", req->path(), st.to_string());
    return to_grpc(st);
  }

  grpc::Status GetLogs(grpc::ServerContext* ctx, const proto::LogRequest* req, proto::LogResponse* resp) override {
    if (!o_.open_read_access) {
      if (auto st = authorize(ctx, req->token(), "logs"); !st.ok()) return st;
    }
    auto r = logs(*req);
    if (!r.is_ok()) return to_grpc(r.status());
    *resp = std::move(*r);
    return grpc::Status::OK;
  }

  // ------------------------------------------------------------- actions (gRPC and HTTP)

  Status cancel_job(const std::string& job_id) override {
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

  Result<proto::SavepointResponse> savepoint(const std::string& job_id, const std::string& dir, bool stop) override {
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

  /// Removes a savepoint directory: only one whose metadata says it is a
  /// savepoint, and not while a job that has not ended was started from
  /// it and has not completed a checkpoint of its own since.
  Status dispose_savepoint(const std::string& path) {
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

  /// The latest log lines about a job (or of one taskmanager): the
  /// jobmanager's own, and those of each taskmanager asked, fetched over
  /// gRPC (3 s at most each; a taskmanager that does not answer is named).
  Result<proto::LogResponse> logs(const proto::LogRequest& req) override {
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

  // ------------------------------------------------------------- taskmanager RPCs

  grpc::Status RegisterTaskManager(grpc::ServerContext* ctx, const proto::RegisterRequest* req,
                                   proto::RegisterResponse* resp) override {
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

  grpc::Status Heartbeat(grpc::ServerContext* ctx, const proto::HeartbeatRequest* req,
                         proto::HeartbeatResponse* resp) override {
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

  grpc::Status DisconnectTaskManager(grpc::ServerContext* ctx, const proto::DisconnectRequest* req,
                                     proto::Empty*) override {
    if (auto st = require_leader(); !st.ok()) return st;
    if (auto st = rpc::check(ctx, *auth_, "JobManager/DisconnectTaskManager"); !st.ok()) return st;
    std::lock_guard lk(mu_);
    auto it = tms_.find(req->taskmanager_id());
    if (it == tms_.end() || !auth::constant_time_equal(it->second.instance, req->instance())) return grpc::Status::OK;
    lose_tm_locked(req->taskmanager_id(), "it shut down (" + req->reason().substr(0, 200) + ")");
    wake_scheduler();
    return grpc::Status::OK;
  }

  grpc::Status ReportTaskState(grpc::ServerContext* ctx, const proto::TaskStateReport* req, proto::Empty*) override {
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

  grpc::Status AcknowledgeCheckpoint(grpc::ServerContext* ctx, const proto::CheckpointAck* req, proto::Empty*) override {
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

  grpc::Status DeclineCheckpoint(grpc::ServerContext* ctx, const proto::CheckpointDecline* req, proto::Empty*) override {
    if (auto st = require_leader(); !st.ok()) return st;
    if (auto st = rpc::check(ctx, *auth_, "JobManager/DeclineCheckpoint"); !st.ok()) return st;
    auto j = find(req->task().job_id());
    if (!j || !j->coordinator) return grpc::Status::OK;
    runtime::TaskId id{req->task().job_id(), req->task().vertex(), req->task().subtask(), req->task().attempt()};
    j->coordinator->decline(id, CheckpointId(req->checkpoint_id()), Status::internal(req->reason()));
    return grpc::Status::OK;
  }

  grpc::Status ReportEndOfInput(grpc::ServerContext* ctx, const proto::TaskRef* req, proto::Empty*) override {
    if (auto st = require_leader(); !st.ok()) return st;
    if (auto st = rpc::check(ctx, *auth_, "JobManager/ReportEndOfInput"); !st.ok()) return st;
    auto j = find(req->job_id());
    if (!j || !j->coordinator) return grpc::Status::OK;
    j->coordinator->source_ended({req->job_id(), req->vertex(), req->subtask(), req->attempt()});
    return grpc::Status::OK;
  }

  grpc::Status FetchArtifact(grpc::ServerContext* ctx, const proto::FetchArtifactRequest* req,
                             grpc::ServerWriter<proto::ArtifactChunk>* writer) override {
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

 private:
  friend class JobManager;

  /// Signs a call to a taskmanager with the cluster secret and this jobmanager's epoch.
  void sign_tm_call(grpc::ClientContext& ctx, const char* method) const {
    rpc::sign_fenced(ctx, *auth_, method, epoch_.load());
  }

  grpc::Status authorize(grpc::ServerContext* ctx, const std::string& token, const char* what) {
    // Constant-time compare: the token is a secret.
    if (auth_->token_matches(token)) return grpc::Status::OK;
    spdlog::warn("refused {} from {}: {}", what, ctx->peer(), token.empty() ? "no token" : "wrong token");
    if (token.empty()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          std::string(what) + " needs the cluster token: pass --token-file PATH or set SLUICE_TOKEN "
                          "(the jobmanager writes it to <data-dir>/token)");
    }
    // PERMISSION_DENIED: a token was sent, and it is not this cluster's.
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        std::string(what) + " refused: the token sent is not this cluster's token (use the "
                        "jobmanager's <data-dir>/token, or the secret it was started with)");
  }

  grpc::Status unknown_job(const std::string& id) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        "unknown job id '" + id + "'; `sluice list` shows the jobs");
  }

  std::shared_ptr<Job> find(const std::string& id) {
    std::lock_guard lk(mu_);
    auto it = jobs_.find(id);
    return it == jobs_.end() ? nullptr : it->second;
  }

  std::string artifact_path(const std::string& sha) const { return store_ + "/artifacts/" + sha + ".so"; }
  std::string job_dir(const std::string& id) const { return store_ + "/jobs/" + id; }

  int free_slots_locked() const {
    int total = 0;
    for (const auto& [id, tm] : tms_) total += tm.slots;
    return total - used_slots_locked(nullptr);
  }
  int used_slots_locked(std::map<std::string, int>* per_tm) const {
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
  static int slots_needed(const proto::JobGraph& g) {
    int n = 0;
    for (const auto& v : g.vertices()) n = std::max(n, v.parallelism());
    return n;
  }

  /// Writes the job record; errors are logged (the job goes on in memory).
  void persist_locked(const Job& j) { (void)write_record_locked(j); }
  Status write_record_locked(const Job& j) {
    // A deposed leader leaves the shared records to the new one.
    if (election_ && !election_->is_leader()) return Status::failed_precondition("no longer the leader");
    std::string bytes;
    j.rec.SerializeToString(&bytes);
    Status st = write_file_atomic(job_dir(j.rec.job_id()) + "/job.pb", bytes);
    if (!st.is_ok()) spdlog::error("cannot persist job {}: {}", j.rec.job_id(), st.to_string());
    return st;
  }

  Status make_coordinator(Job& j, int64_t committed_up_to = INT64_MAX) {
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

  Status submit(const proto::SubmitJobRequest& req, proto::SubmitJobResponse* resp) {
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

  static int subtask_count(const proto::JobGraph& g) {
    int n = 0;
    for (const auto& v : g.vertices()) n += v.parallelism();
    return n;
  }

  Status recover_jobs() {
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

  /// The id of the last checkpoint of `job` a leader recorded in etcd (0: none).
  Result<int64_t> committed_checkpoint(const std::string& job) {
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

  /// Cancels the tasks of the job's current attempt on every taskmanager.
  /// The next attempt deploys once every taskmanager has answered (or was
  /// found unreachable and dropped): old tasks never overlap new ones.
  void cancel_tasks_locked(Job& j, int64_t committed_checkpoint = 0) {
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
      auto done = it->second.calls->submit(
          [stub = it->second.stub, r, this](grpc::ClientContext& ctx) {
            sign_tm_call(ctx, "TaskManager/CancelTasks");
            proto::Empty e;
            return stub->CancelTasks(&ctx, r, &e);
          },
          deadline);
      j.cancels.push_back({tm, it->second.instance, done.share(), steady_ms()});
    }
    std::lock_guard gl(j.gw_mu);
    j.gw_tms.clear();
    j.gw_source_tms.clear();
    j.gw_ready = false;
    j.gw_held.clear();
  }

  void end_job_locked(Job& j, JobState state, const std::string& failure,
                      int64_t committed_checkpoint = 0) {
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

  /// A failure of the current attempt: kept in the job's failure history,
  /// then the attempt fails — and the job with it when the failure is
  /// permanent (the cause will not go away by restarting), else it restarts
  /// under the restart policy (fail_attempt_locked).
  void job_failed_locked(Job& j, proto::FailureRecord f, std::string cause) {
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

  /// A task failed or its taskmanager was lost: cancel the attempt and
  /// schedule a restart from the latest completed checkpoint — or give the
  /// job up when the restart policy's failure rate is exceeded.
  void fail_attempt_locked(Job& j, const std::string& cause) {
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

  void lose_tm_locked(const std::string& tm_id, const std::string& why) {
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

  void wake_scheduler() {
    std::lock_guard lk(stop_mu_);
    wake_ = true;
    stop_cv_.notify_all();
  }

  /// Whether the next attempt of `j` may be deployed: every cancel of the
  /// last attempt answered — or unanswered for kCancelGraceMs: a live but
  /// slow taskmanager (a loaded machine) then only keeps the next attempt
  /// off itself (`slow_cancel_tms`) instead of holding it up until its
  /// call's deadline. A taskmanager that could not be reached is dropped at
  /// once: it is not placed again until it registers again.
  bool cancels_settled_locked(Job& j) {
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
        lose_tm_locked(it->tm, "cancel failed: " + st.error_message());
      }
      it = j.cancels.erase(it);
    }
    return settled;
  }

  void scheduler_loop() {
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

  /// Places and deploys the next attempt of `j` if enough slots are free.
  /// Runs on the deployer; `j.deploying` is set while it does.
  void deploy(const std::shared_ptr<Job>& jp) {
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

  /// The coordinator's numbers, read without mu_ (it has its own lock).
  struct CheckpointView {
    runtime::CheckpointStats stats;
    std::vector<runtime::CheckpointHistoryEntry> history;
  };
  CheckpointView checkpoint_view(Job& j, bool with_history) {
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

  proto::JobSummary summary_locked(Job& j, const CheckpointView& cv) {
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

  proto::JobSummary summary(Job& j) {
    auto cv = checkpoint_view(j, false);
    std::lock_guard lk(mu_);
    return summary_locked(j, cv);
  }

  proto::JobStatusResponse status(Job& j) {
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

  // ------------------------------------------------------------- JobManagerView (HTTP)

  std::vector<proto::JobStatusResponse> job_statuses() override {
    std::vector<std::shared_ptr<Job>> jobs;
    {
      std::lock_guard lk(mu_);
      for (auto& [id, j] : jobs_) jobs.push_back(j);
    }
    std::vector<proto::JobStatusResponse> out;
    for (auto& j : jobs) out.push_back(status(*j));
    return out;
  }

  std::optional<proto::JobStatusResponse> job_status(const std::string& id) override {
    auto j = find(id);
    if (!j) return std::nullopt;
    return status(*j);
  }

  std::vector<proto::TaskManagerStatus> taskmanager_statuses() override {
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

  bool token_matches(std::string_view token) const override { return auth_->token_matches(token); }

  std::optional<std::string> standby_of() const override {
    if (leader_) return std::nullopt;
    auto l = election_ ? election_->current_leader() : std::nullopt;
    return l ? l->http : std::string();
  }

  JobManagerOptions o_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<auth::CallAuthenticator> auth_;  // set in start(), before any server
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

JobManager::JobManager(JobManagerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
JobManager::~JobManager() = default;
Status JobManager::start() { return impl_->start(); }
int JobManager::port() const { return impl_->port(); }
int JobManager::http_port() const { return impl_->http_port(); }
int JobManager::metrics_port() const { return impl_->metrics_port(); }
void JobManager::wait() { impl_->wait(); }
void JobManager::shutdown() { impl_->shutdown(); }
bool JobManager::lost_leadership() const { return impl_->lost_leadership(); }

}  // namespace sluice::jobmanager
