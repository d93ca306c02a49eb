// The jobmanager's calls to one taskmanager, in order, on a thread of their
// own: a taskmanager that hangs (stopped, partitioned) holds up only its
// own calls, never those to the others, and losing it drops what is queued
// for it and cancels the call in flight.
#pragma once

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>

#include "engine/common/time.h"

namespace sluice::jobmanager {

/// Whether a taskmanager whose call failed with `st` is lost: its
/// connection failed (UNAVAILABLE), or the call's deadline passed
/// (DEADLINE_EXCEEDED) and no heartbeat came from it since the call was
/// queued (`queued_ms` and `last_heartbeat_ms` on one steady clock). A
/// live taskmanager that is only slow to answer — a loaded machine — is
/// not: dropping it would fail every other job it runs, and leave the
/// cluster without it until it registers again.
bool lost_on_failed_call(const grpc::Status& st, int64_t queued_ms, int64_t last_heartbeat_ms);

/// One ordered sender per taskmanager (trigger N before notify N, cancel of
/// attempt N before deploy of N+1). Created when a taskmanager registers,
/// closed when it is lost; thread-safe; the destructor closes and joins.
class CallQueue {
 public:
  /// A call: runs the RPC with the context the queue made (deadline set;
  /// the queue may TryCancel it) and returns its status.
  using Call = std::function<grpc::Status(grpc::ClientContext&)>;

  /// `on_done` (optional) runs on the queue's thread after each call's
  /// future is set, e.g. to wake whoever polls the futures.
  explicit CallQueue(std::string name, std::function<void()> on_done = {});
  ~CallQueue();
  CallQueue(const CallQueue&) = delete;
  CallQueue& operator=(const CallQueue&) = delete;

  /// Queues `call` with a deadline; the future gets its status (CANCELLED
  /// if the queue is closed before or while it runs).
  std::future<grpc::Status> submit(Call call, Duration deadline);
  /// Fire and forget.
  void post(Call call, Duration deadline) { (void)submit(std::move(call), deadline); }
  /// Drops queued calls and cancels the one in flight. Later submits fail at once.
  void close();

 private:
  struct Item {
    Call call;
    Duration deadline;
    std::promise<grpc::Status> done;
  };
  void loop();

  const std::string name_;
  const std::function<void()> on_done_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  grpc::ClientContext* in_flight_ = nullptr;  // guarded by mu_
  bool closed_ = false;
  std::thread thread_;
};

}  // namespace sluice::jobmanager
