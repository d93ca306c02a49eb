// What the async I/O and sink operators rely on in a real task: input
// suspended between two records of one buffer, blocked posters released
// as soon as the task stops, completions posted in batches, and commit
// work of a completed checkpoint waited for before the task ends.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "engine/runtime/mailbox.h"
#include "tests/runtime/test_job.h"

namespace sluice::rt_test {
namespace {

using runtime::TaskMailbox;

TEST(TaskMailbox, RefuseReleasesBlockedPostersAndKeepsQueuedActionsAndControlActions) {
  runtime::TaskSignal signal;
  TaskMailbox mb(&signal, 1);
  mb.set_task_thread(std::this_thread::get_id());
  int ran = 0;
  ASSERT_TRUE(mb.put([&] { ++ran; }, 0));
  std::atomic<int> result{-1};
  std::thread blocked([&] { result = mb.put([&] { ++ran; }, 0) ? 1 : 0; });
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(result.load(), -1) << "the poster did not wait for room";
  mb.refuse();  // the task was cancelled or failed
  blocked.join();
  EXPECT_EQ(result.load(), 0) << "a poster blocked on a stopping task must be refused";
  EXPECT_FALSE(mb.put([&] { ++ran; }, 0));
  EXPECT_TRUE(mb.put_control([&] { ++ran; }));
  EXPECT_EQ(mb.run(), 2u) << "queued and control actions still run";
  EXPECT_EQ(ran, 2);
}

/// Shared with the test thread.
struct SuspendLog {
  std::atomic<int> records{0};
  std::atomic<int> while_suspended{0};
  std::atomic<int> batches_run{0};
  std::atomic<int> batch_order_errors{0};
};

/// Suspends its input on every record; a client thread resumes it with a
/// batch of three actions (execute_batch), as an async operator at
/// capacity 1 whose completions arrive together.
class OneAtATimeOperator final : public runtime::OneInputOperator<Event> {
 public:
  explicit OneAtATimeOperator(std::shared_ptr<SuspendLog> log) : log_(std::move(log)) {}
  Status open() override {
    out_ = static_cast<runtime::Output<Event>*>(outputs().at(0));
    return Status::ok();
  }
  void process_element(const Event& v, EventTime ts) override {
    if (context().mailbox().input_suspended()) ++log_->while_suspended;
    ++log_->records;
    context().mailbox().set_input_suspended(true);
    if (client_.joinable()) client_.join();
    client_ = std::thread([this, v, ts] {
      std::vector<runtime::MailboxExecutor::Action> batch;
      auto step = std::make_shared<int>(0);
      for (int i = 0; i < 3; ++i) {
        batch.push_back([this, step, i] {
          if (*step != i) ++log_->batch_order_errors;
          ++*step;
        });
      }
      batch.push_back([this, step, v, ts] {
        if (*step != 3) ++log_->batch_order_errors;
        ++log_->batches_run;
        out_->collect(v, ts);
        context().mailbox().set_input_suspended(false);
      });
      (void)context().mailbox().execute_batch(std::move(batch), "completion");
    });
  }
  Status finish() override {
    while (context().mailbox().input_suspended())
      if (!context().mailbox().yield()) break;
    return Status::ok();
  }
  void close() override {
    if (client_.joinable()) client_.join();
  }

 private:
  std::shared_ptr<SuspendLog> log_;
  runtime::Output<Event>* out_ = nullptr;
  std::thread client_;
};

TEST(MailboxExecutor, ASuspendedInputGetsNoFurtherRecordOfTheBufferBeingRead) {
  auto log = std::make_shared<SuspendLog>();
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("one-at-a-time");
  std::vector<Event> input;
  for (int i = 0; i < 500; ++i) input.push_back(Event{"k", i, i});
  job.env()
      .from_source<Event>(std::make_shared<VectorSource<Event>>(input), event_time(), "source")
      .rebalance()  // records arrive in channel buffers of many records
      .add_one_input<Event>("one", "one-at-a-time", [log] { return std::make_unique<OneAtATimeOperator>(log); })
      .sink_to(collect_into(out));
  ASSERT_TRUE(job.prepare(1).is_ok());
  ASSERT_TRUE(job.run().is_ok());
  EXPECT_EQ(log->while_suspended.load(), 0) << "records were handed to an operator that suspended its input";
  EXPECT_EQ(log->records.load(), 500);
  EXPECT_EQ(log->batches_run.load(), 500);
  EXPECT_EQ(log->batch_order_errors.load(), 0) << "a batch's actions ran out of order";
  ASSERT_EQ(out->size(), input.size());
  auto got = out->values();
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i].value, static_cast<int64_t>(i));
}

/// Shared with the test thread.
struct CommitLog {
  std::atomic<int> started{0};
  std::atomic<int> done{0};
  std::atomic<int> in_progress_when_closed{0};
};

/// A sink-like operator whose commit of a completed checkpoint finishes
/// 200 ms later on a processing-time timer (as a sink retrying a write).
class SlowCommitOperator final : public runtime::OneInputOperator<Event> {
 public:
  explicit SlowCommitOperator(std::shared_ptr<CommitLog> log) : log_(std::move(log)) {}
  void process_element(const Event&, EventTime) override {}
  Status notify_checkpoint_complete(CheckpointId) override {
    if (committing_) return Status::ok();
    committing_ = true;
    ++log_->started;
    auto& pts = context().processing_time();
    pts.schedule(pts.now_ms() + 200, [this](int64_t) {
      committing_ = false;
      ++log_->done;
    });
    return Status::ok();
  }
  bool commit_in_progress() const override { return committing_; }
  void close() override {
    if (committing_) ++log_->in_progress_when_closed;
  }

 private:
  std::shared_ptr<CommitLog> log_;
  bool committing_ = false;
};

TEST(MailboxExecutor, ATaskEndsAfterItsFinalCheckpointOnlyOnceCommitWorkIsDone) {
  std::string dir = std::filesystem::temp_directory_path().string() + "/sluice-commit-XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  auto log = std::make_shared<CommitLog>();
  TestJob job("slow-commit");
  auto& env = job.env();
  env.config().set("checkpoint.dir", dir);
  env.config().set("checkpoint.interval", "50ms");
  std::vector<Event> input;
  for (int i = 0; i < 100; ++i) input.push_back(Event{"k", i, i});
  env.from_source<Event>(std::make_shared<VectorSource<Event>>(input), event_time(), "source")
      .rebalance()
      .add_one_input<Event>("committer", "slow-commit", [log] { return std::make_unique<SlowCommitOperator>(log); })
      .sink_to(collect_into(std::make_shared<Collected<Event>>()));
  ASSERT_TRUE(job.prepare(1).is_ok());
  ASSERT_TRUE(job.run().is_ok());
  EXPECT_GE(log->started.load(), 1) << "no checkpoint completed; the test shows nothing";
  EXPECT_EQ(log->in_progress_when_closed.load(), 0) << "the task ended with a commit still running";
  EXPECT_EQ(log->done.load(), log->started.load());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice::rt_test
