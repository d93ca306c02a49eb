// What an async I/O user function sees: AsyncFunction (issue a request per
// record, say how to handle a timeout) and ResultFuture (complete that
// request from any thread, exactly once). Flink's AsyncFunction/ResultFuture.
//
//   class Score final : public AsyncFunction<Txn, Scored> {
//     void async_invoke(const Txn& t, ResultFuture<Scored> result) override {
//       client_->submit(request_for(t), [t, result](Result<Response> r) mutable {
//         if (!r.is_ok()) { result.complete_exceptionally(r.status()); return; }
//         result.complete(Scored{t.id, parse(r->body)});
//       });
//     }
//   };
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/status.h"
#include "engine/runtime/mailbox_executor.h"
#include "operators/basic/functions.h"

namespace sluice::async_io {

namespace detail {

/// How one attempt ended.
template <class OUT>
struct Outcome {
  enum class Kind : uint8_t { kResults, kError, kDeadLetter };
  Kind kind = Kind::kResults;
  std::vector<OUT> results;  // kResults
  Status error;              // kError
  std::string reason;        // kDeadLetter
};

/// The door from completing threads into one operator's task thread. Shared
/// (shared_ptr) by the operator and every ResultFuture it handed out, since
/// a future may be completed after the operator is gone; close() (task
/// thread, in the operator's close) shuts it, after which completions are
/// dropped. post() is thread-safe; many threads may post at once.
class CompletionGate {
 public:
  explicit CompletionGate(runtime::MailboxExecutor* mailbox) : mailbox_(mailbox) {}
  bool post(runtime::MailboxExecutor::Action action) {
    std::shared_lock lk(mu_);
    if (!open_.load(std::memory_order_relaxed)) return false;
    return mailbox_->execute(std::move(action), "async completion");
  }
  void close() {
    std::unique_lock lk(mu_);
    open_.store(false, std::memory_order_relaxed);
  }
  /// Task thread: whether a posted action may still touch the operator.
  bool is_open() const { return open_.load(std::memory_order_relaxed); }

 private:
  std::shared_mutex mu_;
  std::atomic<bool> open_{true};
  runtime::MailboxExecutor* mailbox_;
};

/// Receives finished attempts on the task thread (the operator).
template <class OUT>
class AttemptTarget {
 public:
  virtual ~AttemptTarget() = default;
  virtual void on_attempt_done(uint64_t entry, uint32_t attempt, Outcome<OUT>&& outcome) = 0;
};

/// One attempt of one record, shared by its ResultFuture copies and the
/// operator. `done` makes the first completion win on any thread.
template <class OUT>
struct Attempt {
  std::atomic<bool> done{false};
  std::shared_ptr<CompletionGate> gate;
  AttemptTarget<OUT>* target = nullptr;  // used on the task thread only, while the gate is open
  uint64_t entry = 0;
  uint32_t attempt = 0;
};

}  // namespace detail

/// The handle through which one request reports back. Cheap to copy (a
/// shared pointer): capture it in the client's callback. Every method is
/// thread-safe; the first completion of an attempt wins and the others
/// return false, as do completions of an attempt the operator gave up on
/// (timed out, superseded by a retry, operator closed). The results are
/// emitted on the task thread with the input record's timestamp.
template <class OUT>
class ResultFuture {
 public:
  ResultFuture() = default;
  explicit ResultFuture(std::shared_ptr<detail::Attempt<OUT>> a) : attempt_(std::move(a)) {}

  /// Completes with any number of results (none: the record yields nothing).
  bool complete(std::vector<OUT> results) {
    detail::Outcome<OUT> o;
    o.results = std::move(results);
    return finish(std::move(o));
  }
  bool complete(OUT result) {
    std::vector<OUT> v;
    v.push_back(std::move(result));
    return complete(std::move(v));
  }
  /// The call failed: retried if the retry strategy says so, otherwise the
  /// record goes to the dead-letter output (or fails the job, see
  /// AsyncOptions::on_error).
  bool complete_exceptionally(Status error) {
    detail::Outcome<OUT> o;
    o.kind = detail::Outcome<OUT>::Kind::kError;
    o.error = error.is_ok() ? Status::internal("completed exceptionally with an OK status") : std::move(error);
    return finish(std::move(o));
  }
  /// The record itself is bad (e.g. the service answered 400): it goes to
  /// the dead-letter output with `reason`, without retries.
  bool dead_letter(std::string reason) {
    detail::Outcome<OUT> o;
    o.kind = detail::Outcome<OUT>::Kind::kDeadLetter;
    o.reason = std::move(reason);
    return finish(std::move(o));
  }
  /// True once this attempt was completed (by anyone).
  bool done() const { return !attempt_ || attempt_->done.load(std::memory_order_acquire); }

 private:
  bool finish(detail::Outcome<OUT>&& o) {
    if (!attempt_ || attempt_->done.exchange(true, std::memory_order_acq_rel)) return false;
    auto a = attempt_;
    return a->gate->post([a, o = std::move(o)]() mutable {
      if (a->gate->is_open()) a->target->on_attempt_done(a->entry, a->attempt, std::move(o));
    });
  }
  std::shared_ptr<detail::Attempt<OUT>> attempt_;
};

/// A user function that issues one asynchronous request per record. The
/// operator copies it once per subtask; open() and close() run on the task
/// thread of that subtask, and so do async_invoke() and timeout(). The
/// ResultFuture may be completed from any thread (typically a client's
/// callback thread). async_invoke must not block: waiting belongs in the
/// client. Throwing InvalidRecord sends the record to the dead-letter
/// output; any other exception fails the task.
template <class IN, class OUT>
class AsyncFunction {
 public:
  using Input = IN;
  using Output = OUT;
  virtual ~AsyncFunction() = default;

  /// Create clients here (not in the constructor: the job's build function
  /// also runs in `sluice submit`). An error fails the task.
  virtual Status open(basic::RuntimeContext& ctx) { return Status::ok(); }
  /// After every completion was delivered or given up; stop clients here.
  virtual void close() {}

  virtual void async_invoke(const IN& input, ResultFuture<OUT> result) = 0;

  /// The record's overall timeout passed (or its last attempt timed out
  /// with no retry left). Complete `result` with a fallback, an error or a
  /// dead letter. Default: the dead-letter output, with the reason and the
  /// attempts made — the job goes on.
  virtual void timeout(const IN& input, ResultFuture<OUT> result) { result.dead_letter("async call timed out"); }
};

}  // namespace sluice::async_io
