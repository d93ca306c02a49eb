// The job attempts running here: job libraries (fetched, cached, checked),
// deploys, cancels, and reaping the attempts that ended.
#include "engine/taskmanager/taskmanager_impl.h"

namespace sluice::taskmanager {

std::shared_ptr<TaskManager::Impl::Attempt> TaskManager::Impl::find(const std::string& job, int attempt) {
  std::lock_guard lk(mu_);
  auto it = attempts_.find({job, attempt});
  return it == attempts_.end() ? nullptr : it->second;
}

Result<std::shared_ptr<api::JobLibrary>> TaskManager::Impl::library(const std::string& sha) {
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

void TaskManager::Impl::prefetch(const std::string& sha) {
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

Status TaskManager::Impl::deploy(const proto::DeployRequest& req) {
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

void TaskManager::Impl::wait_committed(const std::string& job, int attempt, int64_t id) {
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

void TaskManager::Impl::cancel_locked(Attempt& a) {
  a.ended = true;
  for (auto& t : a.tasks) t->cancel();
  if (a.channels) a.channels->close_all();
}

void TaskManager::Impl::cancel_matching(const std::string& job, int attempt) {
  {
    std::lock_guard lk(mu_);
    for (auto& [k, a] : attempts_) {
      if ((job.empty() || k.first == job) && (attempt < 0 || k.second == attempt)) cancel_locked(*a);
    }
  }
  wake_reaper();
}

void TaskManager::Impl::wake_reaper() {
  std::lock_guard lk(stop_mu_);
  reap_ = true;
  stop_cv_.notify_all();
}

void TaskManager::Impl::reap(bool all) {
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

}  // namespace sluice::taskmanager
