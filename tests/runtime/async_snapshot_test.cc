// The asynchronous part of an operator's snapshot (a sink's fsync): the
// barrier moves on at once, the checkpoint is acknowledged only after the
// part finished, and a part that fails declines the checkpoint, so nothing
// it covered is committed.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "tests/runtime/test_job.h"

namespace sluice::rt_test {
namespace {

/// What the test sink's writer did; shared by the writer (task thread),
/// the asynchronous parts (snapshot threads) and the test.
struct SinkLog {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;           // asynchronous parts may finish
  std::set<int64_t> fail;         // the parts of these checkpoints fail
  int64_t records = 0;            // written so far
  std::map<int64_t, int64_t> records_at_barrier;
  std::set<int64_t> finished;     // asynchronous parts that returned
  std::vector<int64_t> committed; // notify_checkpoint_complete
  bool committed_before_finish = false;

  void open_gate() {
    {
      std::lock_guard lk(mu);
      release = true;
    }
    cv.notify_all();
  }
  /// Until a commit reached the writer (it follows the completion soon).
  void wait_for_commit() {
    std::unique_lock lk(mu);
    cv.wait_for(lk, kWait, [&] { return !committed.empty(); });
  }
  int64_t records_now() {
    std::lock_guard lk(mu);
    return records;
  }
};

/// A sink whose pre-commit has an asynchronous part that waits for the
/// test's gate (as an fsync waits for the disk) and fails on request.
class GatedSink final : public runtime::Sink<Event> {
 public:
  explicit GatedSink(std::shared_ptr<SinkLog> log) : log_(std::move(log)) {}
  std::string description() const override { return "gated"; }
  std::unique_ptr<runtime::SinkWriter<Event>> create_writer() const override {
    return std::make_unique<Writer>(log_);
  }

 private:
  class Writer final : public runtime::SinkWriter<Event> {
   public:
    explicit Writer(std::shared_ptr<SinkLog> log) : log_(std::move(log)) {}
    Status write(const Event&, EventTime) override {
      std::lock_guard lk(log_->mu);
      ++log_->records;
      return Status::ok();
    }
    Result<runtime::OperatorStateSnapshot> snapshot_state_async(CheckpointId id) override {
      runtime::OperatorStateSnapshot out;
      {
        std::lock_guard lk(log_->mu);
        log_->records_at_barrier[id.value()] = log_->records;
      }
      out.async = [log = log_, id]() -> Result<std::string> {
        std::unique_lock lk(log->mu);
        log->cv.wait_for(lk, kWait, [&] { return log->release; });
        log->finished.insert(id.value());
        if (log->fail.count(id.value())) return Status::io_error("disk on fire");
        return "cp-" + std::to_string(id.value());
      };
      return out;
    }
    Status notify_checkpoint_complete(CheckpointId id) override {
      {
        std::lock_guard lk(log_->mu);
        log_->committed.push_back(id.value());
        if (!log_->finished.count(id.value())) log_->committed_before_finish = true;
      }
      log_->cv.notify_all();
      return Status::ok();
    }

   private:
    std::shared_ptr<SinkLog> log_;
  };
  std::shared_ptr<SinkLog> log_;
};

std::string temp_dir() {
  std::string t = std::filesystem::temp_directory_path().string() + "/sluice-async-XXXXXX";
  char* p = ::mkdtemp(t.data());
  return p ? std::string(p) : std::string();
}

void build(TestJob& job, std::shared_ptr<SinkLog> log, const std::string& dir) {
  auto& env = job.env();
  env.config().set("checkpoint.dir", dir);
  env.config().set("checkpoint.interval", "20ms");
  auto endless = [](ReaderCtx& c) {
    if (c.seq % 64 == 63) std::this_thread::sleep_for(1ms);
    return Step<Event>::record(Event{"k", c.seq, c.seq});
  };
  env.from_source<Event>(std::make_shared<ScriptedSource<Event>>(endless), event_time(), "endless")
      .sink_to(std::make_shared<const GatedSink>(std::move(log)), "gated sink");
}

runtime::CheckpointStats wait_for_stats(runtime::LocalExecutor& ex,
                                        const std::function<bool(const runtime::CheckpointStats&)>& pred) {
  auto deadline = std::chrono::steady_clock::now() + kWait;
  runtime::CheckpointStats st;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto* c = ex.coordinator()) {
      st = c->stats();
      if (pred(st)) return st;
    }
    std::this_thread::sleep_for(5ms);
  }
  return st;
}

TEST(AsyncSnapshot, TheCheckpointIsAcknowledgedOnlyAfterTheSinksAsynchronousPartWhileRecordsFlowOn) {
  const std::string dir = temp_dir();
  auto log = std::make_shared<SinkLog>();
  TestJob job("async-ack");
  build(job, log, dir);
  ASSERT_TRUE(job.prepare(1).is_ok());
  job.start();
  int64_t at_barrier = -1;
  for (auto deadline = std::chrono::steady_clock::now() + kWait; at_barrier < 0;) {
    {
      std::lock_guard lk(log->mu);
      if (!log->records_at_barrier.empty()) at_barrier = log->records_at_barrier.begin()->second;
    }
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no barrier reached the sink";
    std::this_thread::sleep_for(2ms);
  }
  // The part is blocked: the task goes on writing, the checkpoint stays open.
  std::this_thread::sleep_for(150ms);
  EXPECT_GT(log->records_now(), at_barrier) << "records wait behind the asynchronous part";
  auto* coordinator = job.executor().coordinator();
  ASSERT_NE(coordinator, nullptr);
  EXPECT_EQ(coordinator->stats().completed, 0) << "acknowledged before the asynchronous part finished";
  log->open_gate();
  auto st = wait_for_stats(job.executor(), [](const auto& s) { return s.completed >= 2; });
  EXPECT_GE(st.completed, 2);
  EXPECT_EQ(st.failed, 0);
  log->wait_for_commit();
  job.executor().cancel();
  ASSERT_TRUE(job.wait());
  std::lock_guard lk(log->mu);
  EXPECT_FALSE(log->committed.empty());
  EXPECT_FALSE(log->committed_before_finish) << "a checkpoint was committed before its asynchronous part ended";
  std::filesystem::remove_all(dir);
}

TEST(AsyncSnapshot, AFailedAsynchronousPartDeclinesTheCheckpointAndItIsNeverCommitted) {
  const std::string dir = temp_dir();
  auto log = std::make_shared<SinkLog>();
  log->release = true;
  log->fail = {1, 2};
  TestJob job("async-fail");
  build(job, log, dir);
  ASSERT_TRUE(job.prepare(1).is_ok());
  job.start();
  auto st = wait_for_stats(job.executor(), [](const auto& s) { return s.failed >= 2 && s.completed >= 1; });
  EXPECT_GE(st.failed, 2);
  EXPECT_GE(st.completed, 1) << "later checkpoints complete";
  auto history = job.executor().coordinator()->history();
  // The commit of a completed checkpoint reaches the task's mailbox soon after.
  log->wait_for_commit();
  job.executor().cancel();
  ASSERT_TRUE(job.wait());
  {
    std::lock_guard lk(log->mu);
    EXPECT_EQ(std::count(log->committed.begin(), log->committed.end(), 1), 0) << "declined, yet committed";
    EXPECT_EQ(std::count(log->committed.begin(), log->committed.end(), 2), 0) << "declined, yet committed";
    EXPECT_FALSE(log->committed.empty());
  }
  auto first = std::find_if(history.begin(), history.end(), [](const auto& e) { return e.id == 1; });
  ASSERT_NE(first, history.end());
  EXPECT_EQ(first->outcome, runtime::CheckpointHistoryEntry::Outcome::kFailed);
  EXPECT_NE(first->failure.find("disk on fire"), std::string::npos) << first->failure;
  EXPECT_NE(first->failure.find("gated sink"), std::string::npos) << "names the operator: " << first->failure;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice::rt_test
