#include "operators/async/grpc/grpc_client.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

namespace sluice::grpc_client {

Status from_grpc(const grpc::Status& st) {
  if (st.ok()) return Status::ok();
  std::string msg = "gRPC " + std::to_string(static_cast<int>(st.error_code())) + ": " + st.error_message();
  switch (st.error_code()) {
    case grpc::StatusCode::DEADLINE_EXCEEDED: return Status::timeout(msg);
    case grpc::StatusCode::UNAVAILABLE: return Status::unavailable(msg);
    case grpc::StatusCode::CANCELLED: return Status::cancelled(msg);
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE: return Status::invalid_argument(msg);
    case grpc::StatusCode::NOT_FOUND: return Status::not_found(msg);
    case grpc::StatusCode::ALREADY_EXISTS: return Status::already_exists(msg);
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED: return Status::permission_denied(msg);
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return Status::resource_exhausted(msg);
    case grpc::StatusCode::FAILED_PRECONDITION: return Status::failed_precondition(msg);
    case grpc::StatusCode::UNIMPLEMENTED: return Status::unimplemented(msg);
    default: return Status::internal(msg);
  }
}

AsyncUnaryClient::AsyncUnaryClient(AsyncUnaryClientOptions options) : opts_(std::move(options)) {
  thread_ = std::thread([this] { loop(); });
}

AsyncUnaryClient::~AsyncUnaryClient() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    for (auto* c : active_) c->context.TryCancel();
  }
  cq_.Shutdown();  // Next() drains the cancelled calls, then returns false
  thread_.join();
}

Status AsyncUnaryClient::admit(detail::CallBase* c) {
  if (pending_.fetch_add(1, std::memory_order_acq_rel) >= opts_.max_pending) {
    pending_.fetch_sub(1, std::memory_order_acq_rel);
    return Status::resource_exhausted("gRPC client '" + opts_.name + "': " + std::to_string(opts_.max_pending) +
                                      " calls pending");
  }
  std::lock_guard lk(mu_);
  if (stopping_) {
    pending_.fetch_sub(1, std::memory_order_acq_rel);
    return Status::cancelled("gRPC client '" + opts_.name + "' is stopping");
  }
  active_.insert(c);
  return Status::ok();
}

void AsyncUnaryClient::loop() {
  std::string tname = ("grpc-" + opts_.name).substr(0, 15);
  ::pthread_setname_np(::pthread_self(), tname.c_str());
  void* tag = nullptr;
  bool ok = false;
  while (cq_.Next(&tag, &ok)) {
    std::unique_ptr<detail::CallBase> c(static_cast<detail::CallBase*>(tag));
    {
      std::lock_guard lk(mu_);
      active_.erase(c.get());
    }
    pending_.fetch_sub(1, std::memory_order_acq_rel);
    completed_.fetch_add(1, std::memory_order_relaxed);
    try {
      c->complete(ok);
    } catch (const std::exception& e) {
      spdlog::error("gRPC client '{}': callback threw: {}", opts_.name, e.what());
    } catch (...) {
      spdlog::error("gRPC client '{}': callback threw", opts_.name);
    }
  }
}

}  // namespace sluice::grpc_client
