// The jobmanager: start, leadership (standby mode), metrics, shutdown.
#include "engine/jobmanager/jobmanager_impl.h"

namespace sluice::jobmanager {

Status JobManager::Impl::start() {
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
    token_in_data_dir_ = true;
    SLUICE_ASSIGN_OR_RETURN(o_.token, load_or_create_token(store_ + "/token"));
    spdlog::info("client token in {}/token (clients pass it with --token-file, SLUICE_TOKEN_FILE or SLUICE_TOKEN)", store_);
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

Result<std::string> JobManager::Impl::load_or_create_token(const std::string& path) {
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

void JobManager::Impl::become_leader(int64_t epoch) {
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

size_t JobManager::Impl::jobs_count() {
  std::lock_guard lk(mu_);
  return jobs_.size();
}

void JobManager::Impl::leadership_lost(const std::string& why) {
  leader_ = false;
  spdlog::error("jobmanager stops: no longer the leader ({})", why);
  std::lock_guard lk(stop_mu_);
  lost_leadership_ = true;
  stop_cv_.notify_all();
}

grpc::Status JobManager::Impl::require_leader() {
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

HttpServerOptions JobManager::Impl::http_options(const std::string& bind, const char* name) const {
  HttpServerOptions h;
  h.bind = bind;
  h.name = name;
  h.tls_cert = o_.tls_cert;
  h.tls_key = o_.tls_key;
  h.tls_ca = o_.tls_ca;
  if (!o_.open_read_access) h.bearer_token = o_.token;
  return h;
}

Status JobManager::Impl::start_metrics() {
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

void JobManager::Impl::wait() {
  std::unique_lock lk(stop_mu_);
  stop_cv_.wait(lk, [&] { return stopped_ || lost_leadership_; });
}

bool JobManager::Impl::lost_leadership() {
  std::lock_guard lk(stop_mu_);
  return lost_leadership_;
}

void JobManager::Impl::shutdown() {
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
