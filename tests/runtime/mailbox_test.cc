// The task mailbox and the MailboxExecutor operators get: the bounded
// queue on its own, then operators in real tasks that post from other
// threads, suspend their input, wait in finish() and get cancelled while
// they yield.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "engine/runtime/mailbox.h"
#include "tests/runtime/test_job.h"

namespace sluice::rt_test {
namespace {

using runtime::TaskMailbox;

// ---- the queue -------------------------------------------------------------------

TEST(TaskMailbox, ActionsFromSeveralThreadsRunInTheirPostingOrderOnTheTaskThread) {
  runtime::TaskSignal signal;
  TaskMailbox mb(&signal, 16);
  constexpr int kThreads = 3, kEach = 2000;
  std::vector<std::vector<int>> seen(kThreads);
  std::atomic<int> wrong_thread{0};
  std::atomic<int> done_posting{0};
  std::thread runner([&] {
    mb.set_task_thread(std::this_thread::get_id());
    const auto me = std::this_thread::get_id();
    size_t ran = 0;
    while (ran < size_t{kThreads} * kEach) {
      ran += mb.run();
      if (me != std::this_thread::get_id()) ++wrong_thread;
      signal.wait_until(std::chrono::steady_clock::now() + 1ms);
    }
  });
  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t) {
    posters.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        ASSERT_TRUE(mb.put([&, t, i, runner_id = runner.get_id()] {
          if (std::this_thread::get_id() != runner_id) ++wrong_thread;
          seen[t].push_back(i);
        }, 0));
      }
      ++done_posting;
    });
  }
  for (auto& p : posters) p.join();
  runner.join();
  EXPECT_EQ(wrong_thread.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(seen[t].size(), size_t{kEach});
    for (int i = 0; i < kEach; ++i) ASSERT_EQ(seen[t][i], i) << "thread " << t;
  }
}

TEST(TaskMailbox, AFullMailboxBlocksAForeignPosterUntilTheTaskThreadDrainsIt) {
  runtime::TaskSignal signal;
  TaskMailbox mb(&signal, 2);
  mb.set_task_thread(std::this_thread::get_id());
  int ran = 0;
  std::atomic<int> posted{0};
  std::thread poster([&] {
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(mb.put([&] { ++ran; }, 0));
      ++posted;
    }
  });
  // Two fit; the third waits for room.
  auto deadline = std::chrono::steady_clock::now() + kWait;
  while (posted.load() < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(posted.load(), 2) << "the third action was queued into a full mailbox";
  EXPECT_EQ(mb.run(), 2u);
  poster.join();
  EXPECT_EQ(posted.load(), 3);
  EXPECT_EQ(mb.run(), 1u);
  EXPECT_EQ(ran, 3);
}

TEST(TaskMailbox, TheTaskThreadAndControlActionsNeverBlockOnAFullMailbox) {
  runtime::TaskSignal signal;
  TaskMailbox mb(&signal, 1);
  mb.set_task_thread(std::this_thread::get_id());
  int ran = 0;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(mb.put([&] { ++ran; }, 0));  // would deadlock if it waited
  std::thread control([&] {
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(mb.put_control([&] { ++ran; }));
  });
  control.join();
  EXPECT_EQ(mb.run(), 10u);
  EXPECT_EQ(ran, 10);
}

TEST(TaskMailbox, CloseRefusesActionsDropsQueuedOnesAndReleasesBlockedPosters) {
  runtime::TaskSignal signal;
  TaskMailbox mb(&signal, 1);
  mb.set_task_thread(std::this_thread::get_id());
  auto token = std::make_shared<int>(0);
  ASSERT_TRUE(mb.put([token] {}, 0));
  std::atomic<int> result{-1};
  std::thread blocked([&] { result = mb.put([] {}, 0) ? 1 : 0; });
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(result.load(), -1);
  mb.close();
  blocked.join();
  EXPECT_EQ(result.load(), 0) << "a poster blocked on a closed mailbox must be refused";
  EXPECT_EQ(token.use_count(), 1) << "queued actions are dropped at close";
  EXPECT_FALSE(mb.put([] {}, 0));
  EXPECT_FALSE(mb.put_control([] {}));
  EXPECT_EQ(mb.run(), 0u);
}

TEST(TaskMailbox, AYieldRunsOnlyActionsOfItsOperatorAndThoseAfterIt) {
  runtime::TaskSignal signal;
  TaskMailbox mb(&signal, 16);
  mb.set_task_thread(std::this_thread::get_id());
  std::vector<std::string> ran;
  mb.put_control([&] { ran.push_back("checkpoint"); });
  mb.put([&] { ran.push_back("op0"); }, 0);
  mb.put([&] { ran.push_back("op2"); }, 2);
  mb.put([&] { ran.push_back("op1"); }, 1);
  EXPECT_EQ(mb.run(1), 2u);  // operator 1 yields
  EXPECT_EQ(ran, (std::vector<std::string>{"op2", "op1"}));
  EXPECT_EQ(mb.run(), 2u);  // the main loop runs the rest, in order
  EXPECT_EQ(ran, (std::vector<std::string>{"op2", "op1", "checkpoint", "op0"}));
}

// ---- operators in tasks ------------------------------------------------------------

/// What the test operators report (shared with the test thread).
struct OpLog {
  std::atomic<int> actions_run{0};
  std::atomic<int> off_task_thread{0};
  std::atomic<int> max_backlog{0};  // posted minus run, as seen by the actions
  std::atomic<int> posted{0};
  std::atomic<int> timer_fires{0};
  std::atomic<bool> suspended{false};
  std::atomic<bool> yielding{false};
  std::atomic<bool> release{false};  // set by the test
};

/// Passes records through; in open() starts a thread that posts `n`
/// actions, each emitting Event{"action", i}; finish() waits for them by
/// yielding. Each action takes `action_cost`.
class PostingOperator final : public runtime::OneInputOperator<Event> {
 public:
  PostingOperator(std::shared_ptr<OpLog> log, int n, std::chrono::microseconds action_cost)
      : log_(std::move(log)), n_(n), cost_(action_cost) {}
  Status open() override {
    out_ = static_cast<runtime::Output<Event>*>(outputs().at(0));
    task_thread_ = std::this_thread::get_id();
    auto& mb = context().mailbox();
    poster_ = std::thread([this, &mb] {
      for (int i = 0; i < n_; ++i) {
        bool ok = mb.execute([this, i] {
          int backlog = log_->posted.load() - log_->actions_run.load();
          int m = log_->max_backlog.load();
          while (backlog > m && !log_->max_backlog.compare_exchange_weak(m, backlog)) {}
          if (std::this_thread::get_id() != task_thread_) ++log_->off_task_thread;
          if (cost_.count() > 0) std::this_thread::sleep_for(cost_);
          out_->collect(Event{"action", i, i}, EventTime(i));
          ++log_->actions_run;
        });
        if (!ok) return;
        ++log_->posted;
      }
    });
    return Status::ok();
  }
  void process_element(const Event& v, EventTime ts) override { out_->collect(v, ts); }
  Status finish() override {
    while (log_->actions_run.load() < n_) {
      if (!context().mailbox().yield()) break;
    }
    return Status::ok();
  }
  void close() override {
    if (poster_.joinable()) poster_.join();
  }

 private:
  std::shared_ptr<OpLog> log_;
  int n_;
  std::chrono::microseconds cost_;
  runtime::Output<Event>* out_ = nullptr;
  std::thread::id task_thread_;
  std::thread poster_;
};

TEST(MailboxExecutor, ActionsPostedFromAnotherThreadRunOnTheTaskThreadInOrderAndFinishWaitsForThem) {
  auto log = std::make_shared<OpLog>();
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("posting");
  static constexpr int kActions = 300;
  job.env()
      .from_source<Event>(std::make_shared<VectorSource<Event>>(std::vector<Event>{{"record", 1, 1}}),
                          event_time(), "one record")
      .add_one_input<Event>("poster", "posting", [log] {
        return std::make_unique<PostingOperator>(log, kActions, std::chrono::microseconds(200));
      })
      .sink_to(collect_into(out));
  ASSERT_TRUE(job.prepare(1).is_ok());
  runtime::LocalRunOptions options;
  options.task.mailbox_capacity = 4;
  ASSERT_TRUE(job.run(options).is_ok());
  // The source ended long before the actions did: finish() waited.
  std::vector<int64_t> actions;
  for (const auto& e : out->values())
    if (e.key == "action") actions.push_back(e.value);
  ASSERT_EQ(actions.size(), size_t{kActions});
  for (int i = 0; i < kActions; ++i) ASSERT_EQ(actions[i], i);
  EXPECT_EQ(log->off_task_thread.load(), 0);
  // Actions take 200 us each, so the poster outruns the task: with room for
  // 4 it must have been held back. posted - run counts the queue (<= 4),
  // the batch the task took out of it (<= 4) and one racing poster.
  EXPECT_LE(log->max_backlog.load(), 9) << "the mailbox let a foreign thread queue past its capacity";
  EXPECT_GE(log->max_backlog.load(), 2) << "the poster never got ahead; the test shows nothing";
}

/// In a source task: suspends the input in open(); a processing-time timer
/// (every 10 ms) resumes it once the test sets `release`.
class SuspendingOperator final : public runtime::OneInputOperator<Event> {
 public:
  explicit SuspendingOperator(std::shared_ptr<OpLog> log) : log_(std::move(log)) {}
  Status open() override {
    out_ = static_cast<runtime::Output<Event>*>(outputs().at(0));
    context().mailbox().set_input_suspended(true);
    log_->suspended = true;
    schedule();
    return Status::ok();
  }
  void process_element(const Event& v, EventTime ts) override {
    if (log_->suspended) ++log_->off_task_thread;  // a record arrived while suspended
    out_->collect(v, ts);
  }

 private:
  void schedule() {
    auto& pts = context().processing_time();
    pts.schedule(pts.now_ms() + 10, [this](int64_t) {
      ++log_->timer_fires;
      if (log_->release) {
        log_->suspended = false;
        context().mailbox().set_input_suspended(false);
        return;
      }
      schedule();
    });
  }
  std::shared_ptr<OpLog> log_;
  runtime::Output<Event>* out_ = nullptr;
};

TEST(MailboxExecutor, ASuspendedInputLetsCheckpointsCompleteAndTimersFire) {
  std::string dir = std::filesystem::temp_directory_path().string() + "/sluice-mailbox-XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  auto log = std::make_shared<OpLog>();
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("suspended");
  auto& env = job.env();
  env.config().set("checkpoint.dir", dir);
  env.config().set("checkpoint.interval", "30ms");
  std::vector<Event> input;
  for (int i = 0; i < 100; ++i) input.push_back(Event{"k", i, i});
  env.from_source<Event>(std::make_shared<VectorSource<Event>>(input), event_time(), "source")
      .add_one_input<Event>("suspender", "suspending",
                            [log] { return std::make_unique<SuspendingOperator>(log); })
      .sink_to(collect_into(out));
  ASSERT_TRUE(job.prepare(1).is_ok());
  job.start();
  // While suspended: no record, but checkpoints and timers.
  int64_t completed = 0;
  auto deadline = std::chrono::steady_clock::now() + kWait;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto* c = job.executor().coordinator()) completed = c->stats().completed;
    if (completed >= 2 && log->timer_fires >= 3) break;
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_GE(completed, 2) << "checkpoints stalled while the input was suspended";
  EXPECT_GE(log->timer_fires.load(), 3) << "timers stalled while the input was suspended";
  EXPECT_EQ(out->size(), 0u) << "records flowed while the input was suspended";
  log->release = true;
  ASSERT_TRUE(job.wait());
  ASSERT_TRUE(job.result().is_ok());
  EXPECT_EQ(log->off_task_thread.load(), 0);
  EXPECT_EQ(out->size(), input.size());
  std::filesystem::remove_all(dir);
}

/// Yields forever on the first record (waiting for something that never comes).
class StuckOperator final : public runtime::OneInputOperator<Event> {
 public:
  explicit StuckOperator(std::shared_ptr<OpLog> log) : log_(std::move(log)) {}
  void process_element(const Event&, EventTime) override {
    log_->yielding = true;
    while (context().mailbox().yield()) {
    }
  }

 private:
  std::shared_ptr<OpLog> log_;
};

TEST(MailboxExecutor, ATaskCancelledWhileAnOperatorYieldsEndsPromptly) {
  auto log = std::make_shared<OpLog>();
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("stuck");
  job.env()
      .from_source<Event>(std::make_shared<VectorSource<Event>>(std::vector<Event>{{"k", 1, 1}}),
                          event_time(), "source")
      .rebalance()  // the stuck operator in a task of its own
      .add_one_input<Event>("stuck", "stuck", [log] { return std::make_unique<StuckOperator>(log); })
      .sink_to(collect_into(out));
  ASSERT_TRUE(job.prepare(1).is_ok());
  job.start();
  auto deadline = std::chrono::steady_clock::now() + kWait;
  while (!log->yielding && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(log->yielding);
  std::this_thread::sleep_for(50ms);
  auto t0 = std::chrono::steady_clock::now();
  job.executor().cancel();
  ASSERT_TRUE(job.wait(5s)) << "the yielding task did not end";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
}

}  // namespace
}  // namespace sluice::rt_test
