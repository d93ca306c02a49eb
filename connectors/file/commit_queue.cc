#include "connectors/file/commit_queue.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <utility>

#include "engine/common/clock.h"

namespace sluice::file {

namespace {

std::mutex hook_mu;
CommitQueue::Hook& hook() {
  static CommitQueue::Hook h;
  return h;
}

}  // namespace

// The queue a posted action reaches, while it lives; reset by stop() on
// the task thread, where the actions run too.
struct CommitQueue::Shared {
  CommitQueue* queue = nullptr;
};

void CommitQueue::set_hook_for_tests(Hook h) {
  std::lock_guard lk(hook_mu);
  hook() = std::move(h);
}

CommitQueue::CommitQueue(std::string what) : what_(std::move(what)), shared_(std::make_shared<Shared>()) {
  shared_->queue = this;
}

CommitQueue::~CommitQueue() { stop(); }

Status CommitQueue::open(runtime::OperatorContext& ctx) {
  ctx_ = &ctx;
  SLUICE_ASSIGN_OR_RETURN(max_pending_,
                          ctx.job_config().get_int("sink.file.max-pending-commits", kDefaultMaxPendingCommits));
  if (max_pending_ < 1) {
    return Status::invalid_argument("sink.file.max-pending-commits must be at least 1 (default " +
                                    std::to_string(kDefaultMaxPendingCommits) + ")");
  }
  return Status::ok();
}

void CommitQueue::submit(int64_t checkpoint, Work work) {
  if (!thread_.joinable()) {
    thread_ = std::thread([this] {
      ::pthread_setname_np(::pthread_self(), "file commit");
      run();
    });
  }
  {
    std::lock_guard lk(mu_);
    queue_.push_back(Item{checkpoint, std::move(work)});
  }
  cv_.notify_one();
  ++submitted_;
  submitted_through_ = checkpoint;
  if (ctx_ && !suspended_ && submitted_ - done_.load(std::memory_order_acquire) >= max_pending_) {
    suspended_ = true;
    suspended_at_ns_ = monotonic_ns();
    ctx_->mailbox().set_input_suspended(true);
  }
}

void CommitQueue::run() {
  while (true) {
    Item item;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    if (!failed()) {
      Hook h;
      {
        std::lock_guard lk(hook_mu);
        h = hook();
      }
      if (h) h(what_, item.checkpoint);
      Status st = item.work();
      if (st.is_ok()) {
        committed_.store(item.checkpoint, std::memory_order_release);
      } else {
        std::lock_guard lk(mu_);
        error_ = st.with_context(what_ + ": committing checkpoint " + std::to_string(item.checkpoint));
        failed_.store(true, std::memory_order_release);
      }
    }
    done_.fetch_add(1, std::memory_order_acq_rel);
    // Wakes the task (it reports the checkpoint committed once nothing is
    // in progress), resumes the input, or fails the task. Refused once the
    // task is shutting down: nothing is left to tell then.
    if (ctx_) {
      ctx_->mailbox().execute(
          [s = shared_] {
            if (s->queue) s->queue->after_commit();
          },
          "file sink commit done");
    }
  }
}

void CommitQueue::after_commit() {
  if (failed()) {
    if (!reported_) ctx_->fail(error());  // the job restores and commits again
    reported_ = true;
    return;
  }
  if (suspended_ && submitted_ - done_.load(std::memory_order_acquire) < max_pending_) {
    suspended_ = false;
    ctx_->mailbox().set_input_suspended(false);
    spdlog::warn("{}: input suspended for {} ms: {} commits were pending (sink.file.max-pending-commits), the "
                 "disk is behind", what_, (monotonic_ns() - suspended_at_ns_) / 1'000'000, max_pending_);
  }
}

Status CommitQueue::error() const {
  std::lock_guard lk(mu_);
  return error_;
}

void CommitQueue::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  shared_->queue = nullptr;
}

}  // namespace sluice::file
