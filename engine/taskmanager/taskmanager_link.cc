// The taskmanager's link to the jobmanager: the stub (replaced when
// another jobmanager leads), registration and heartbeats, leaving.
#include "engine/taskmanager/taskmanager_impl.h"

namespace sluice::taskmanager {

void TaskManager::Impl::connect_jobmanager(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(512 * 1024 * 1024);
  auto stub = proto::JobManager::NewStub(grpc::CreateCustomChannel(address, jm_creds_, args));
  std::lock_guard lk(jm_mu_);
  jm_ = std::move(stub);
  jm_address_ = address;
}

std::shared_ptr<proto::JobManager::Stub> TaskManager::Impl::jobmanager() {
  std::lock_guard lk(jm_mu_);
  return jm_;
}

std::string TaskManager::Impl::jobmanager_address() {
  std::lock_guard lk(jm_mu_);
  return jm_address_;
}

void TaskManager::Impl::raise_leader_epoch(int64_t epoch) {
  int64_t known = leader_epoch_.load();
  while (epoch > known && !leader_epoch_.compare_exchange_weak(known, epoch)) {
  }
}

bool TaskManager::Impl::follow_leader() {
  if (!leader_) return false;
  auto l = leader_->leader();
  if (!l || (l->epoch == followed_epoch_ && l->address == jobmanager_address())) return false;
  spdlog::info("following jobmanager {} (leader epoch {})", l->address, l->epoch);
  raise_leader_epoch(l->epoch);
  followed_epoch_ = l->epoch;
  connect_jobmanager(l->address);
  return true;
}

bool TaskManager::Impl::stopping() {
  std::lock_guard lk(stop_mu_);
  return stopped_;
}

void TaskManager::Impl::disconnect(const std::string& reason) {
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

void TaskManager::Impl::heartbeat_loop() {
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

}  // namespace sluice::taskmanager
