// An OperatorContext for driving one InfluxDB sink writer outside a task:
// a real clock, and a mailbox whose yield() runs posted actions and due
// processing-time timers (as the task does), so the writer's retries and
// answers run exactly as in a job. Test thread only, except execute().
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "connectors/influxdb/influxdb_sink.h"
#include "engine/common/clock.h"
#include "engine/runtime/operator.h"

namespace sluice::influxdb::testing {

/// Runs posted actions and due timers when the test (or the writer) yields.
class TimerMailbox final : public runtime::MailboxExecutor {
 public:
  explicit TimerMailbox(runtime::ProcessingTimeService* pts) : pts_(pts) {}
  bool execute(Action action, std::string_view) override {
    {
      std::lock_guard lk(mu_);
      if (closed_) return false;
      queue_.push_back(std::move(action));
    }
    cv_.notify_all();
    return true;
  }
  /// Waits up to 10 s for something to run.
  bool yield() override { return run_for(std::chrono::seconds(10)); }
  bool try_yield() override { return run_once() > 0; }
  void set_input_suspended(bool s) override { suspended_ = s; }
  bool input_suspended() const override { return suspended_; }

  /// Runs actions and timers until one ran or `limit` passed; true if one ran.
  bool run_for(std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (run_once() > 0) return true;
      std::unique_lock lk(mu_);
      if (closed_) return false;
      auto until = std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(5));
      if (auto next = pts_->next_deadline()) {
        until = std::min(until, std::chrono::steady_clock::now() +
                                    std::chrono::milliseconds(std::max<int64_t>(0, *next - pts_->now_ms())));
      }
      cv_.wait_until(lk, until, [&] { return !queue_.empty(); });
      if (std::chrono::steady_clock::now() >= deadline && queue_.empty()) {
        lk.unlock();
        return run_once() > 0;
      }
    }
  }
  int run_once() {
    std::deque<Action> batch;
    {
      std::lock_guard lk(mu_);
      batch.swap(queue_);
    }
    for (auto& a : batch) a();
    return static_cast<int>(batch.size()) + pts_->fire_due();
  }
  void close() {
    std::lock_guard lk(mu_);
    closed_ = true;
    queue_.clear();
  }

 private:
  runtime::ProcessingTimeService* pts_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Action> queue_;
  bool closed_ = false;
  bool suspended_ = false;
};

/// Subtask `subtask` of `parallelism` of job "influx-test"; exactly-once
/// (a checkpoint directory in the job configuration) unless told otherwise.
class TestContext final : public runtime::OperatorContext {
 public:
  explicit TestContext(bool checkpointing = true, int subtask = 0, int parallelism = 1) {
    info_.job_name = "influx-test";
    info_.operator_name = "results";
    info_.uid = "results-sink";
    info_.subtask = subtask;
    info_.parallelism = parallelism;
    if (checkpointing) config_.set("checkpoint.dir", "/nonexistent/checkpoints");
  }
  const runtime::OperatorInfo& info() const override { return info_; }
  const Configuration& job_config() const override { return config_; }
  runtime::ProcessingTimeService& processing_time() override { return pts_; }
  runtime::MailboxExecutor& mailbox() override { return mailbox_; }
  state::KeyedStateBackend* keyed_backend() override { return nullptr; }
  void dead_letter(DeadLetter dl) override { dead_letters.push_back(std::move(dl)); }
  void fail(Status st) override { failures.push_back(std::move(st)); }
  runtime::OutputBase* side_output(std::string_view) override { return nullptr; }
  runtime::OperatorMetrics& metrics() override { return metrics_; }

  TimerMailbox& timer_mailbox() { return mailbox_; }
  /// Yields until `done()` or `limit` passed; the last value of done().
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      mailbox_.run_for(std::chrono::milliseconds(20));
    }
    return true;
  }

  std::vector<DeadLetter> dead_letters;
  std::vector<Status> failures;

 private:
  runtime::OperatorInfo info_;
  Configuration config_;
  runtime::ProcessingTimeService pts_{&SystemClock::instance()};
  TimerMailbox mailbox_{&pts_};
  runtime::OperatorMetrics metrics_;
};

/// A writer of T opened on its own context; closed on destruction.
template <class T>
struct OpenWriter {
  OpenWriter() = default;
  OpenWriter(OpenWriter&&) = default;
  std::unique_ptr<TestContext> ctx;
  std::unique_ptr<InfluxDbSinkWriter<T>> writer;
  ~OpenWriter() {
    if (writer) (void)writer->close();
  }
  InfluxWriterCore& core() { return writer->core(); }
};

/// Builds the sink from `uri` and opens subtask `subtask` of it, restored
/// from `restore` if given; ADD_FAILURE and a null writer on error.
template <class T>
OpenWriter<T> open_writer(const std::string& uri, bool checkpointing = true,
                          const runtime::OperatorRestore& restore = {}, int subtask = 0, int parallelism = 1) {
  OpenWriter<T> w;
  w.ctx = std::make_unique<TestContext>(checkpointing, subtask, parallelism);
  auto sink = InfluxDbSink<T>::from_uri(uri);
  if (!sink.is_ok()) {
    ADD_FAILURE() << sink.status().to_string();
    return w;
  }
  auto base = (*sink)->create_writer();
  w.writer.reset(static_cast<InfluxDbSinkWriter<T>*>(base.release()));
  Status st = w.writer->initialize_state(restore);
  if (st.is_ok()) st = w.writer->open(*w.ctx);
  if (!st.is_ok()) {
    ADD_FAILURE() << st.to_string();
    w.writer.reset();
  }
  return w;
}

}  // namespace sluice::influxdb::testing
