// AsyncUnaryClient: asynchronous unary gRPC calls on any generated stub,
// completed on one grpc::CompletionQueue thread owned by the client, with a
// deadline per call — what an AsyncFunction needs to score records on a
// gRPC service without blocking its task thread.
//
//   auto channel = grpc::CreateChannel("127.0.0.1:50051", grpc::InsecureChannelCredentials());
//   auto stub = Scorer::NewStub(channel);
//   AsyncUnaryClient client({.name = "scorer"});
//   client.call(*stub, &Scorer::Stub::PrepareAsyncScore, request, 200ms,
//               [](const grpc::Status& st, ScoreReply&& reply) { ... });  // on the client's thread
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "engine/common/status.h"
#include "engine/common/time.h"

namespace sluice::grpc_client {

/// Value type. Defaults in brackets.
struct AsyncUnaryClientOptions {
  /// ["grpc"] names the completion-queue thread ("grpc-<name>", cut to 15 chars).
  std::string name = "grpc";
  /// [10'000] calls started and not yet called back; more are refused.
  size_t max_pending = 10'000;
};

/// Turns a failed grpc::Status into a Status of the same meaning
/// (DEADLINE_EXCEEDED -> kTimeout, UNAVAILABLE -> kUnavailable, ...).
Status from_grpc(const grpc::Status& st);

namespace detail {
/// One call in flight; owned by the completion queue thread once started.
class CallBase {
 public:
  virtual ~CallBase() = default;
  virtual void complete(bool ok) = 0;
  grpc::ClientContext context;
};
}  // namespace detail

/// Runs one CompletionQueue on its own thread. call() is thread-safe; the
/// callback runs on the queue's thread exactly once per accepted call.
/// Destruction cancels the calls still running (their callbacks get
/// CANCELLED) and waits for every callback. Owned by its user, e.g. the
/// AsyncFunction that created it in open(); stubs and channels stay the
/// user's and must outlive the calls made on them (destroy the client
/// first).
class AsyncUnaryClient {
 public:
  explicit AsyncUnaryClient(AsyncUnaryClientOptions options = {});
  ~AsyncUnaryClient();
  AsyncUnaryClient(const AsyncUnaryClient&) = delete;
  AsyncUnaryClient& operator=(const AsyncUnaryClient&) = delete;

  /// A generated stub's PrepareAsync<Method>.
  template <class Stub, class Req, class Resp>
  using Prepare = std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>> (Stub::*)(grpc::ClientContext*, const Req&,
                                                                                  grpc::CompletionQueue*);

  /// Starts `method(request)` on `stub` with `deadline` from now. OK: `done`
  /// will be called once with the call's status and (if OK) the reply. An
  /// error (kResourceExhausted at max_pending, kCancelled once stopping):
  /// `done` is dropped without being called. `metadata` is sent with the
  /// call (e.g. {"authorization", "Bearer <token>"}; keys lower-case).
  template <class Stub, class Req, class Resp>
  Status call(Stub& stub, Prepare<Stub, Req, Resp> method, const Req& request, Duration deadline,
              std::function<void(const grpc::Status&, Resp&&)> done,
              const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
    auto c = std::make_unique<Call<Resp>>();
    c->done = std::move(done);
    c->context.set_deadline(std::chrono::system_clock::now() + deadline);
    for (const auto& [k, v] : metadata) c->context.AddMetadata(k, v);
    SLUICE_RETURN_IF_ERROR(admit(c.get()));
    c->reader = (stub.*method)(&c->context, request, &cq_);
    c->reader->StartCall();
    auto* raw = c.release();
    raw->reader->Finish(&raw->reply, &raw->status, static_cast<detail::CallBase*>(raw));
    return Status::ok();
  }

  size_t pending() const { return pending_.load(std::memory_order_relaxed); }
  uint64_t completed() const { return completed_.load(std::memory_order_relaxed); }

 private:
  template <class Resp>
  struct Call final : detail::CallBase {
    std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>> reader;
    Resp reply;
    grpc::Status status;
    std::function<void(const grpc::Status&, Resp&&)> done;
    void complete(bool ok) override {
      if (!ok && status.ok()) status = grpc::Status(grpc::StatusCode::CANCELLED, "call did not complete");
      done(status, std::move(reply));
    }
  };

  Status admit(detail::CallBase* c);
  void loop();

  AsyncUnaryClientOptions opts_;
  grpc::CompletionQueue cq_;
  std::thread thread_;
  std::mutex mu_;  // guards active_, stopping_
  std::unordered_set<detail::CallBase*> active_;
  bool stopping_ = false;
  std::atomic<size_t> pending_{0};
  std::atomic<uint64_t> completed_{0};
};

}  // namespace sluice::grpc_client
