// The taskmanager process: start, metrics, shutdown; the TaskManager facade.
#include "engine/taskmanager/taskmanager_impl.h"

namespace sluice::taskmanager {

Status TaskManager::Impl::start() {
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

void TaskManager::Impl::wait() {
  std::unique_lock lk(stop_mu_);
  stop_cv_.wait(lk, [&] { return stopped_; });
}

void TaskManager::Impl::shutdown() {
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

size_t TaskManager::Impl::attempt_count() {
  std::lock_guard lk(mu_);
  return attempts_.size();
}

Status TaskManager::Impl::start_metrics() {
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

TaskManager::TaskManager(TaskManagerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
TaskManager::~TaskManager() = default;
Status TaskManager::start() { return impl_->start(); }
void TaskManager::wait() { impl_->wait(); }
void TaskManager::shutdown() { impl_->shutdown(); }
const std::string& TaskManager::id() const { return impl_->id(); }
int TaskManager::metrics_port() const { return impl_->metrics_port(); }

}  // namespace sluice::taskmanager
