#include "engine/taskmanager/taskmanager.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
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

namespace {

std::string upper_state(TaskState s) { return std::string(runtime::task_state_name(s)); }

proto::TaskRef ref_of(const TaskId& id) {
  proto::TaskRef r;
  r.set_job_id(id.job_id);
  r.set_vertex(id.vertex);
  r.set_subtask(id.subtask);
  r.set_attempt(id.attempt);
  return r;
}

using state::read_file;

grpc::Status to_grpc(const Status& st, grpc::StatusCode code = grpc::StatusCode::INTERNAL) {
  return st.is_ok() ? grpc::Status::OK : grpc::Status(code, st.to_string());
}

bool is_sha256_hex(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

/// Job ids name directories here: the jobmanager makes them of [A-Za-z0-9_-].
bool is_job_id(const std::string& s) {
  if (s.empty() || s.size() > 200) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  return true;
}

}  // namespace

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

  Status start() {
    if (o_.jobmanager.empty()) return Status::invalid_argument("--jobmanager host:port is required");
    if (o_.slots < 1) return Status::invalid_argument("--slots must be at least 1");
    if (o_.secret.empty()) {
      return Status::invalid_argument(
          "the taskmanager needs the cluster secret: --token-file PATH (the jobmanager's <data-dir>/token) or "
          "SLUICE_TOKEN");
    }
    auth_ = std::make_unique<auth::CallAuthenticator>(o_.secret);
    instance_ = auth::random_hex(16);
    // This process's gRPC server: TLS when it has a certificate, mutual
    // (the jobmanager must present one signed by the CA) when a CA is set.
    rpc::TlsFiles server_tls{o_.tls_cert, o_.tls_key, o_.tls_cert.empty() ? "" : o_.tls_ca};
    SLUICE_ASSIGN_OR_RETURN(auto server_creds, rpc::server_credentials(server_tls));
    // The data plane: mutual TLS whenever this process has a certificate
    // (then the CA is required too: every peer must present one it signed).
    runtime::DataPlaneOptions plane_options{o_.secret, {}};
    if (!o_.tls_cert.empty() || !o_.tls_key.empty()) plane_options.tls = {o_.tls_cert, o_.tls_key, o_.tls_ca};
    else if (!o_.tls_ca.empty()) spdlog::warn("the data plane is not encrypted: it needs --tls-cert and --tls-key too");
    SLUICE_ASSIGN_OR_RETURN(plane_, runtime::DataPlane::start(o_.bind_host, o_.data_port, plane_options));
    grpc::ServerBuilder b;
    b.AddListeningPort(o_.bind_host + ":" + std::to_string(o_.control_port), server_creds, &control_port_);
    b.RegisterService(this);
    b.SetMaxReceiveMessageSize(64 * 1024 * 1024);
    server_ = b.BuildAndStart();
    if (!server_ || control_port_ == 0) {
      return Status::unavailable("cannot listen on " + o_.bind_host + ":" + std::to_string(o_.control_port));
    }
    if (o_.id.empty()) {
      o_.id = "tm-" + o_.bind_host + "-" + std::to_string(control_port_) + "-" + std::to_string(::getpid());
    }
    if (o_.work_dir.empty()) {
      const char* run = std::getenv("XDG_RUNTIME_DIR");
      o_.work_dir = std::string(run && *run ? run : "/tmp") + "/sluice-taskmanager-" + o_.id;
    }
    std::error_code ec;
    const bool fresh = !fs::exists(o_.work_dir);
    fs::create_directories(o_.work_dir + "/artifacts", ec);
    if (ec) return Status::io_error("cannot create " + o_.work_dir + ": " + ec.message());
    // Job libraries and state: private to this process's user.
    if (fresh) ::chmod(o_.work_dir.c_str(), 0700);
    ::chmod((o_.work_dir + "/artifacts").c_str(), 0700);
    // Attempts of an earlier run of this process (killed before it could clean up).
    fs::remove_all(o_.work_dir + "/jobs", ec);
    fs::create_directories(o_.work_dir + "/jobs", ec);
    ::chmod((o_.work_dir + "/jobs").c_str(), 0700);
    SLUICE_ASSIGN_OR_RETURN(jm_creds_, rpc::channel_credentials({o_.tls_cert, o_.tls_key, o_.tls_ca}));
    if (ha::HaConfig::is_ha_uri(o_.jobmanager)) {
      // Standby jobmanagers: follow whichever leads (engine/ha).
      SLUICE_ASSIGN_OR_RETURN(auto ha, ha::HaConfig::parse(o_.jobmanager));
      leader_ = std::make_unique<ha::LeaderRetriever>(ha);
      leader_->start();
    } else {
      connect_jobmanager(o_.jobmanager);
    }
    started_ = true;
    SLUICE_RETURN_IF_ERROR(start_metrics());
    heartbeat_ = std::thread([this] { heartbeat_loop(); });
    spdlog::info("taskmanager {} with {} slots: control {}:{}, data {}:{}, jobmanager {}", o_.id, o_.slots,
                 o_.bind_host, control_port_, o_.bind_host, plane_->port(), o_.jobmanager);
    return Status::ok();
  }

  void wait() {
    std::unique_lock lk(stop_mu_);
    stop_cv_.wait(lk, [&] { return stopped_; });
  }

  /// Stops heartbeating, tells the jobmanager (so that the jobs using this
  /// process restart elsewhere at once), cancels and joins every task,
  /// closes the data plane and the gRPC server.
  void shutdown() {
    {
      std::lock_guard lk(stop_mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    stop_cv_.notify_all();
    if (heartbeat_.joinable()) heartbeat_.join();
    if (started_) {
      spdlog::info("taskmanager {} shutting down: leaving the jobmanager, cancelling {} attempts", o_.id,
                   attempt_count());
      disconnect("shutdown");
    }
    cancel_matching("", -1);
    reap_all();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    plane_.reset();
    if (leader_) leader_->stop();
    if (started_) spdlog::info("taskmanager {} stopped", o_.id);
  }

  size_t attempt_count() {
    std::lock_guard lk(mu_);
    return attempts_.size();
  }

  /// Tells the jobmanager this process is leaving (best effort, 2 s).
  void disconnect(const std::string& reason) {
    proto::DisconnectRequest r;
    r.set_taskmanager_id(o_.id);
    r.set_instance(instance_);
    r.set_reason(reason);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    rpc::sign(ctx, *auth_, "JobManager/DisconnectTaskManager");
    proto::Empty e;
    grpc::Status st = with_jobmanager([&](auto& jm) { return jm.DisconnectTaskManager(&ctx, r, &e); });
    if (!st.ok()) spdlog::warn("could not tell the jobmanager that this taskmanager leaves: {}", st.error_message());
  }

  /// Checks a call from a jobmanager: the cluster secret, and an epoch no
  /// lower than the newest leader's this process has seen (a deposed
  /// leader is refused; a higher epoch is a newer leader).
  grpc::Status check_leader(grpc::ServerContext* ctx, const char* method) {
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

  const std::string& id() const { return o_.id; }
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }

  /// /metrics: the registry (Kafka lag, results sinks, latency), process
  /// metrics and, read from TaskMetrics at scrape time, every subtask here.
  Status start_metrics() {
    if (o_.metrics_bind.empty()) return Status::ok();
    HttpServerOptions h;
    h.bind = o_.metrics_bind;
    h.tls_cert = o_.tls_cert;
    h.tls_key = o_.tls_key;
    h.tls_ca = o_.tls_cert.empty() ? "" : o_.tls_ca;
    if (!o_.open_read_access) h.bearer_token = o_.secret;
    auto m = metrics::MetricsServer::start(h);
    if (!m.is_ok()) return m.status().with_context("--metrics-bind");
    metrics_ = std::move(*m);
    metrics_->add(std::make_shared<metrics::CallbackCollectable>([this] {
      std::vector<metrics::TaskSample> samples;
      {
        std::lock_guard lk(mu_);
        for (const auto& [k, a] : attempts_) {
          const auto& g = *a->job.instance->job_graph;
          for (const auto& t : a->tasks) {
            const auto& m = t->metrics();
            metrics::TaskSample s;
            s.job = g.name();
            s.job_id = a->job_id;
            s.vertex = t->id().vertex < g.vertices_size() ? g.vertices(t->id().vertex).name() : "";
            s.subtask = t->id().subtask;
            s.records_in = m.records_in.load(std::memory_order_relaxed);
            s.records_out = m.records_out.load(std::memory_order_relaxed);
            s.bytes_out = m.bytes_out.load(std::memory_order_relaxed);
            s.dead_letters = m.dead_letters.load(std::memory_order_relaxed);
            s.busy_ns = m.busy_ns.load(std::memory_order_relaxed);
            s.backpressured_ns = m.backpressured_ns.load(std::memory_order_relaxed);
            s.watermark_ms = m.watermark_ms.load(std::memory_order_relaxed);
            samples.push_back(std::move(s));
          }
        }
      }
      return metrics::task_families(samples, SystemClock::instance().now_ms());
    }));
    SLUICE_RETURN_IF_ERROR(state::write_file_atomic(o_.work_dir + "/metrics.address", metrics_->address() + "\n"));
    spdlog::info("taskmanager {} metrics at http://{}/metrics", o_.id, metrics_->address());
    return Status::ok();
  }

  // ------------------------------------------------------------- RPCs

  grpc::Status DeployTasks(grpc::ServerContext* ctx, const proto::DeployRequest* req, proto::Empty*) override {
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

  grpc::Status CancelTasks(grpc::ServerContext* ctx, const proto::CancelTasksRequest* req, proto::Empty*) override {
    if (auto st = check_leader(ctx, "TaskManager/CancelTasks"); !st.ok()) return st;
    if (req->committed_checkpoint() > 0) wait_committed(req->job_id(), req->attempt(), req->committed_checkpoint());
    cancel_matching(req->job_id(), req->attempt());
    return grpc::Status::OK;
  }

  grpc::Status TriggerCheckpoint(grpc::ServerContext* ctx, const proto::TriggerCheckpointRequest* req,
                                 proto::Empty*) override {
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

  grpc::Status NotifyCheckpoint(grpc::ServerContext* ctx, const proto::NotifyCheckpointRequest* req,
                                proto::Empty*) override {
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

  grpc::Status GetLog(grpc::ServerContext* ctx, const proto::LogRequest* req, proto::LogLines* resp) override {
    if (auto st = rpc::check(ctx, *auth_, "TaskManager/GetLog"); !st.ok()) return st;
    const size_t max = static_cast<size_t>(std::clamp(req->max_lines() <= 0 ? 500 : req->max_lines(), 1, 5000));
    resp->set_source(o_.id);
    for (auto& l : recent_log_lines(req->job_id(), max)) resp->add_lines(std::move(l));
    return grpc::Status::OK;
  }

  // ------------------------------------------------------------- TaskListener

  void on_task_state(const TaskId& id, TaskState state, const Status& cause) override {
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

  void on_checkpoint_ack(const TaskId& id, runtime::TaskSnapshot snapshot) override {
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

  void on_checkpoint_declined(const TaskId& id, CheckpointId cp, const Status& why) override {
    proto::CheckpointDecline d;
    *d.mutable_task() = ref_of(id);
    d.set_checkpoint_id(cp.value());
    d.set_reason(why.to_string());
    send([this, d] {
      proto::Empty e;
      call("JobManager/DeclineCheckpoint", [&](grpc::ClientContext* c) { return with_jobmanager([&](auto& jm) { return jm.DeclineCheckpoint(c, d, &e); }); });
    });
  }

  void on_end_of_input(const TaskId& id) override {
    proto::TaskRef r = ref_of(id);
    send([this, r] {
      proto::Empty e;
      call("JobManager/ReportEndOfInput", [&](grpc::ClientContext* c) { return with_jobmanager([&](auto& jm) { return jm.ReportEndOfInput(c, r, &e); }); });
    });
  }

 private:
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

  void connect_jobmanager(const std::string& address) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(512 * 1024 * 1024);
    auto stub = proto::JobManager::NewStub(grpc::CreateCustomChannel(address, jm_creds_, args));
    std::lock_guard lk(jm_mu_);
    jm_ = std::move(stub);
    jm_address_ = address;
  }
  std::shared_ptr<proto::JobManager::Stub> jobmanager() {
    std::lock_guard lk(jm_mu_);
    return jm_;
  }
  std::string jobmanager_address() {
    std::lock_guard lk(jm_mu_);
    return jm_address_;
  }
  /// Runs `f(stub)`; UNAVAILABLE while no jobmanager is known.
  template <class F>
  grpc::Status with_jobmanager(F f) {
    auto jm = jobmanager();
    if (!jm) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no jobmanager leads yet");
    return f(*jm);
  }
  void raise_leader_epoch(int64_t epoch) {
    int64_t known = leader_epoch_.load();
    while (epoch > known && !leader_epoch_.compare_exchange_weak(known, epoch)) {
    }
  }
  /// With standby jobmanagers: switches to a new leader once etcd names
  /// one (true: register with it; the old one's tasks are cancelled then).
  bool follow_leader() {
    if (!leader_) return false;
    auto l = leader_->leader();
    if (!l || (l->epoch == followed_epoch_ && l->address == jobmanager_address())) return false;
    spdlog::info("following jobmanager {} (leader epoch {})", l->address, l->epoch);
    raise_leader_epoch(l->epoch);
    followed_epoch_ = l->epoch;
    connect_jobmanager(l->address);
    return true;
  }

  bool stopping() {
    std::lock_guard lk(stop_mu_);
    return stopped_;
  }

  std::shared_ptr<Attempt> find(const std::string& job, int attempt) {
    std::lock_guard lk(mu_);
    auto it = attempts_.find({job, attempt});
    return it == attempts_.end() ? nullptr : it->second;
  }

  /// The job library for `sha`, fetched from the jobmanager once and cached
  /// on disk; its bytes are checked against the sha256 on every load.
  static constexpr size_t kMaxLibraryBytes = size_t{512} << 20;

  Result<std::shared_ptr<api::JobLibrary>> library(const std::string& sha) {
    if (!is_sha256_hex(sha)) return Status::invalid_argument("library sha256 '" + sha + "' is not 64 hex digits");
    std::lock_guard lk(lib_mu_);
    std::string path = o_.work_dir + "/artifacts/" + sha + ".so";
    if (!fs::exists(path)) {
      proto::FetchArtifactRequest r;
      r.set_sha256(sha);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
      rpc::sign(ctx, *auth_, "JobManager/FetchArtifact");
      auto jm = jobmanager();
      if (!jm) return Status::unavailable("no jobmanager leads: cannot fetch job library " + sha);
      auto reader = jm->FetchArtifact(&ctx, r);
      std::string bytes;
      proto::ArtifactChunk c;
      while (reader->Read(&c)) {
        bytes += c.data();
        if (bytes.size() > kMaxLibraryBytes) {
          ctx.TryCancel();
          return Status::resource_exhausted("job library " + sha + " is larger than " +
                                            std::to_string(kMaxLibraryBytes >> 20) + " MiB");
        }
      }
      grpc::Status st = reader->Finish();
      if (!st.ok()) return Status::unavailable("cannot fetch job library " + sha + ": " + st.error_message());
      if (sha256_hex(bytes) != sha) {
        return Status::failed_precondition("the job library fetched from the jobmanager does not match its sha256 " + sha);
      }
      SLUICE_RETURN_IF_ERROR(state::write_file_atomic(path, bytes));
    }
    SLUICE_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
    if (sha256_hex(bytes) != sha) {
      fs::remove(path);
      return Status::failed_precondition("job library " + path + " does not match the sha256 " + sha +
                                         " that was submitted (tampered with?); refusing to load it");
    }
    auto it = libraries_.find(sha);
    if (it != libraries_.end()) return it->second;
    SLUICE_ASSIGN_OR_RETURN(auto lib, api::JobLibrary::load(path));
    libraries_[sha] = lib;
    return lib;
  }

  /// Fetches and loads the library `sha` in the background if this process
  /// has not yet (heartbeat thread): the first deploy of a job here — a
  /// failover onto this taskmanager — then starts from the cache instead
  /// of downloading, writing and checking megabytes first. A failed fetch
  /// is tried again at a later heartbeat.
  static constexpr int kMaxPrefetch = 64;
  void prefetch(const std::string& sha) {
    if (!is_sha256_hex(sha)) return;
    {
      std::lock_guard lk(prefetch_mu_);
      if (!prefetched_.insert(sha).second) return;
    }
    prefetcher_.submit([this, sha] {
      if (stopping()) return;
      auto lib = library(sha);
      if (lib.is_ok()) {
        spdlog::info("job library {} fetched and loaded ahead of any deploy", sha.substr(0, 12));
        return;
      }
      spdlog::warn("fetching job library {} ahead of time: {}", sha.substr(0, 12), lib.status().to_string());
      std::lock_guard lk(prefetch_mu_);
      prefetched_.erase(sha);
    });
  }

  Status deploy(const proto::DeployRequest& req) {
    SLUICE_ASSIGN_OR_RETURN(auto lib, library(req.library_sha256()));
    api::PrepareOptions po;
    po.job_id = req.job_id();
    po.parallelism = req.parallelism();
    for (const auto& [k, v] : req.job_graph().args()) po.args[k] = v;
    for (const auto& [k, v] : req.job_graph().config()) po.config.set(k, v);
    // The attempt's working files (RocksDB instances) live under this
    // process's private work dir and go with the attempt.
    std::string work = o_.work_dir + "/jobs/" + req.job_id() + "-" + std::to_string(req.attempt());
    std::error_code ec;
    fs::create_directories(work, ec);
    if (ec) return Status::io_error("cannot create " + work + ": " + ec.message());
    if (!req.job_graph().config().count("state.rocksdb.local-dir")) po.config.set("state.rocksdb.local-dir", work + "/rocksdb");
    SLUICE_ASSIGN_OR_RETURN(api::PreparedJob job, api::prepare_job(lib, po));
    if (job.instance->job_graph->hash() != req.job_graph().hash()) {
      return Status::failed_precondition(
          "graph hash mismatch: the library rebuilt here gives " + job.instance->job_graph->hash().substr(0, 12) +
          ", the submitted graph is " + req.job_graph().hash().substr(0, 12) +
          " (a different build of the job, or a build function that depends on more than its arguments)");
    }
    std::optional<state::StoredCheckpoint> restore;
    if (!req.restore_path().empty()) {
      SLUICE_ASSIGN_OR_RETURN(auto cp, state::CheckpointStorage::load(req.restore_path()));
      restore = std::move(cp);
    }
    std::map<std::pair<int, int>, std::string> remote;
    for (const auto& p : req.placement()) {
      remote[{p.vertex(), p.subtask()}] = p.taskmanager_id() == o_.id ? "" : p.data_address();
    }
    auto a = std::make_shared<Attempt>();
    a->job_id = req.job_id();
    a->attempt = req.attempt();
    a->work_dir = work;
    a->job = std::move(job);
    a->channels = std::make_unique<runtime::NetworkChannelProvider>(
        req.job_id(), req.attempt(), static_cast<size_t>(o_.channel_capacity), *plane_, a->job.instance->job_graph,
        [remote](int vertex, int subtask) {
          auto it = remote.find({vertex, subtask});
          return it == remote.end() ? std::string() : it->second;
        });
    runtime::TaskServices services{&SystemClock::instance(), this, &snapshots_};
    runtime::TaskOptions to;
    to.channel_capacity = static_cast<size_t>(o_.channel_capacity);
    for (const auto& t : req.tasks()) {
      TaskId id{req.job_id(), t.vertex(), t.subtask(), req.attempt()};
      std::optional<runtime::TaskRestore> r;
      if (restore) r = runtime::build_task_restore(*restore, *a->job.instance->job_graph, t.vertex(), t.subtask());
      a->tasks.push_back(std::make_unique<Task>(id, a->job.instance, *a->channels, services, to, std::move(r)));
    }
    {
      std::lock_guard lk(mu_);
      // An older attempt of the same job still here is obsolete.
      for (auto& [k, other] : attempts_) {
        if (k.first == req.job_id() && k.second < req.attempt()) cancel_locked(*other);
      }
      a->running = static_cast<int>(a->tasks.size());
      attempts_[{req.job_id(), req.attempt()}] = a;
      for (auto& t : a->tasks) t->start();
    }
    spdlog::info("job {} attempt {}: started {} subtasks", req.job_id(), req.attempt(), a->tasks.size());
    return Status::ok();
  }

  /// Stop with a savepoint: waits (at most 30 s) until every running task
  /// of the attempt has processed the completion of checkpoint `id`.
  void wait_committed(const std::string& job, int attempt, int64_t id) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      bool all = true;
      {
        std::lock_guard lk(mu_);
        for (const auto& [k, a] : attempts_) {
          if (k.first != job || (attempt >= 0 && k.second != attempt)) continue;
          for (const auto& t : a->tasks) {
            if (t->state() == TaskState::kRunning &&
                t->metrics().committed_checkpoint.load(std::memory_order_acquire) < id) {
              all = false;
            }
          }
        }
      }
      if (all) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    spdlog::warn("job {}: tasks did not confirm savepoint {} within 30 s; cancelling anyway", job, id);
  }

  void cancel_locked(Attempt& a) {
    a.ended = true;
    for (auto& t : a.tasks) t->cancel();
    if (a.channels) a.channels->close_all();
  }

  /// Cancels the attempts of `job` (every job if empty) with `attempt`
  /// (every attempt if < 0).
  void cancel_matching(const std::string& job, int attempt) {
    {
      std::lock_guard lk(mu_);
      for (auto& [k, a] : attempts_) {
        if ((job.empty() || k.first == job) && (attempt < 0 || k.second == attempt)) cancel_locked(*a);
      }
    }
    wake_reaper();
  }

  void wake_reaper() {
    std::lock_guard lk(stop_mu_);
    reap_ = true;
    stop_cv_.notify_all();
  }

  /// Joins and forgets attempts whose tasks have all ended.
  void reap(bool all) {
    std::vector<std::shared_ptr<Attempt>> done;
    {
      std::lock_guard lk(mu_);
      for (auto it = attempts_.begin(); it != attempts_.end();) {
        if ((it->second->running <= 0 && it->second->ended) || all) {
          done.push_back(it->second);
          it = attempts_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& a : done) {
      for (auto& t : a->tasks) t->cancel();
      for (auto& t : a->tasks) t->join();
      if (a->channels) a->channels->close_all();
      a->tasks.clear();
      a->channels.reset();
      std::error_code ec;
      if (!a->work_dir.empty()) fs::remove_all(a->work_dir, ec);
    }
  }
  void reap_all() { reap(true); }

  void heartbeat_loop() {
    bool registered = false;
    int64_t interval_ms = 1000;
    auto next = std::chrono::steady_clock::now();
    for (;;) {
      {
        std::unique_lock lk(stop_mu_);
        stop_cv_.wait_until(lk, next, [&] { return stopped_ || reap_; });
        if (stopped_) return;
        if (reap_) {
          reap_ = false;
          lk.unlock();
          reap(false);
          if (std::chrono::steady_clock::now() < next) continue;
        }
      }
      next = std::chrono::steady_clock::now() + std::chrono::milliseconds(registered ? interval_ms : 500);
      if (follow_leader()) {
        registered = false;
        next = std::chrono::steady_clock::now();
      }
      if (!registered) {
        proto::RegisterRequest r;
        r.set_taskmanager_id(o_.id);
        r.set_control_address(o_.bind_host + ":" + std::to_string(control_port_));
        r.set_data_address(o_.bind_host + ":" + std::to_string(plane_->port()));
        r.set_slots(o_.slots);
        r.set_instance(instance_);
        proto::RegisterResponse resp;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
        rpc::sign(ctx, *auth_, "JobManager/RegisterTaskManager");
        grpc::Status st = with_jobmanager([&](auto& jm) { return jm.RegisterTaskManager(&ctx, r, &resp); });
        if (st.ok()) {
          raise_leader_epoch(resp.leader_epoch());
          // A (re)registration starts a new session: whatever this process
          // ran for an earlier session of the jobmanager is obsolete.
          cancel_matching("", -1);
          registered = true;
          interval_ms = std::max<int64_t>(100, resp.heartbeat_interval_ms());
          spdlog::info("registered with jobmanager {}", jobmanager_address());
        } else if (st.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
                   st.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
          spdlog::warn("jobmanager {} refused the registration: {}", o_.jobmanager, st.error_message());
        } else {
          spdlog::debug("jobmanager {} not reachable: {}", o_.jobmanager, st.error_message());
        }
        continue;
      }
      proto::HeartbeatRequest hb;
      hb.set_taskmanager_id(o_.id);
      hb.set_instance(instance_);
      {
        std::lock_guard lk(mu_);
        for (const auto& [k, a] : attempts_) {
          for (const auto& t : a->tasks) {
            auto* m = hb.add_tasks();
            *m->mutable_task() = ref_of(t->id());
            m->set_records_in(t->metrics().records_in.load(std::memory_order_relaxed));
            m->set_records_out(t->metrics().records_out.load(std::memory_order_relaxed));
            m->set_watermark_ms(t->metrics().watermark_ms.load(std::memory_order_relaxed));
            m->set_state(upper_state(t->state()));
            m->set_busy_ns(t->metrics().busy_ns.load(std::memory_order_relaxed));
            m->set_backpressured_ns(t->metrics().backpressured_ns.load(std::memory_order_relaxed));
            m->set_dead_letters(t->metrics().dead_letters.load(std::memory_order_relaxed));
          }
        }
      }
      hb.set_rss_bytes(metrics::process_rss_bytes());
      hb.set_inbound_connections(static_cast<int64_t>(plane_->num_inbound()));
      hb.set_outbound_connections(static_cast<int64_t>(plane_->num_outbound()));
      proto::HeartbeatResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      rpc::sign(ctx, *auth_, "JobManager/Heartbeat");
      grpc::Status st = with_jobmanager([&](auto& jm) { return jm.Heartbeat(&ctx, hb, &resp); });
      if (st.ok() && resp.registered()) {
        for (int i = 0; i < std::min(resp.artifacts_size(), kMaxPrefetch); ++i) prefetch(resp.artifacts(i));
      }
      if (st.ok() && !resp.registered()) {
        spdlog::warn("the jobmanager does not know this taskmanager any more; registering again");
        registered = false;
        next = std::chrono::steady_clock::now();
      } else if (!st.ok()) {
        spdlog::warn("heartbeat to {} failed: {}", jobmanager_address(), st.error_message());
      }
    }
  }

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

TaskManager::TaskManager(TaskManagerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
TaskManager::~TaskManager() = default;
Status TaskManager::start() { return impl_->start(); }
void TaskManager::wait() { impl_->wait(); }
void TaskManager::shutdown() { impl_->shutdown(); }
const std::string& TaskManager::id() const { return impl_->id(); }
int TaskManager::metrics_port() const { return impl_->metrics_port(); }

}  // namespace sluice::taskmanager
