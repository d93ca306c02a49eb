// The checkpoint coordinator with real tasks: checkpoints under
// backpressure, timeouts, retention.
#include <gtest/gtest.h>
#include <dirent.h>

#include <algorithm>
#include <filesystem>

#include "state/checkpoint_storage.h"
#include "tests/runtime/test_job.h"

namespace sluice::rt_test {
namespace {

std::string temp_dir() {
  std::string t = std::filesystem::temp_directory_path().string() + "/sluice-cp-XXXXXX";
  char* p = ::mkdtemp(t.data());
  return p ? std::string(p) : std::string();
}

/// An endless source into a sink that takes 1 ms a record: with 32 KiB
/// buffers the channel holds thousands of records, many seconds of work.
void build_backpressured(TestJob& job, std::shared_ptr<Collected<Event>> out, const std::string& dir,
                         bool unaligned, const std::string& timeout = "10min", const std::string& interval = "100ms") {
  auto& env = job.env();
  env.config().set("checkpoint.dir", dir);
  env.config().set("checkpoint.interval", interval);
  env.config().set("checkpoint.unaligned", unaligned ? "true" : "false");
  env.config().set("checkpoint.timeout", timeout);
  auto endless = [](ReaderCtx& c) { return Step<Event>::record(Event{"k", c.seq, c.seq}); };
  env.from_source<Event>(std::make_shared<ScriptedSource<Event>>(endless), event_time(), "endless")
      .rebalance()
      .sink_to(collect_into(out, std::chrono::milliseconds(1)), "slow sink");
}

runtime::CheckpointStats wait_for_stats(runtime::LocalExecutor& ex,
                                        const std::function<bool(const runtime::CheckpointStats&)>& pred,
                                        std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  runtime::CheckpointStats st;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto* c = ex.coordinator()) {
      st = c->stats();
      if (pred(st)) return st;
    }
    std::this_thread::sleep_for(10ms);
  }
  return st;
}

// Under backpressure a barrier waits behind at most a full channel (bounded
// buffers), so checkpoints keep completing, aligned or unaligned. (Unaligned
// barriers do not yet overtake a producer blocked on a full channel: the
// producer cannot run its mailbox while it waits; see engine/README.md.)
TEST(Checkpoints, CheckpointsKeepCompletingWhileASlowSinkBackpressuresTheSource) {
  for (bool unaligned : {false, true}) {
    SCOPED_TRACE(unaligned ? "unaligned" : "aligned");
    std::string dir = temp_dir();
    auto out = std::make_shared<Collected<Event>>();
    TestJob job(unaligned ? "bp-unaligned" : "bp-aligned");
    build_backpressured(job, out, dir, unaligned);
    ASSERT_TRUE(job.prepare(1).is_ok());
    runtime::LocalRunOptions options;
    options.task.channel_capacity = 2;
    options.task.buffer_bytes = 256;  // a few records per buffer
    job.start(options);
    ASSERT_TRUE(out->wait_for_size(10));
    auto st = wait_for_stats(job.executor(), [](const auto& s) { return s.completed >= 2; }, 8s);
    EXPECT_GE(st.completed, 2) << "checkpoints stalled under backpressure";
    EXPECT_EQ(st.failed, 0);
    job.executor().cancel();
    ASSERT_TRUE(job.wait());
    std::filesystem::remove_all(dir);
  }
}

TEST(Checkpoints, ACheckpointPastItsTimeoutIsAbortedAndCountedAndTheJobKeepsRunning) {
  std::string dir = temp_dir();
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("timeout");
  // Aligned: the barrier waits behind seconds of records, longer than 300 ms.
  build_backpressured(job, out, dir, /*unaligned=*/false, "300ms");
  ASSERT_TRUE(job.prepare(1).is_ok());
  job.start();
  ASSERT_TRUE(out->wait_for_size(10));
  auto st = wait_for_stats(job.executor(), [](const auto& s) { return s.failed >= 1; }, 5s);
  EXPECT_GE(st.failed, 1) << "the checkpoint that exceeded its timeout was not aborted";
  size_t before = out->size();
  std::this_thread::sleep_for(300ms);
  EXPECT_GT(out->size(), before) << "the job must keep running after an aborted checkpoint";
  EXPECT_FALSE(job.wait(1ms)) << "the job ended";
  // The history (status pages) names the failed one and why.
  auto history = job.executor().coordinator()->history();
  auto failed = std::find_if(history.begin(), history.end(), [](const runtime::CheckpointHistoryEntry& e) {
    return e.outcome == runtime::CheckpointHistoryEntry::Outcome::kFailed;
  });
  ASSERT_NE(failed, history.end());
  EXPECT_NE(failed->failure.find("timed out"), std::string::npos) << failed->failure;
  EXPECT_GE(failed->duration_ms, 300);
  EXPECT_LT(failed->acknowledged, failed->tasks);
  std::filesystem::remove_all(dir);
}

TEST(Checkpoints, OnlyTheLastRetainedCheckpointsAreKept) {
  std::string dir = temp_dir();
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("retained");
  auto& env = job.env();
  env.config().set("checkpoint.dir", dir);
  env.config().set("checkpoint.interval", "50ms");
  env.config().set("checkpoint.retained", "2");
  auto endless = [](ReaderCtx& c) {
    if (c.seq % 64 == 63) std::this_thread::sleep_for(1ms);
    return Step<Event>::record(Event{"k", c.seq, c.seq});
  };
  env.from_source<Event>(std::make_shared<ScriptedSource<Event>>(endless), event_time(), "endless")
      .sink_to(collect_into(out), "sink");
  ASSERT_TRUE(job.prepare(1).is_ok());
  job.start();
  auto st = wait_for_stats(job.executor(), [](const auto& s) { return s.completed >= 6; }, 10s);
  ASSERT_GE(st.completed, 6);
  // Every completed checkpoint is in the history, in order, with its size and path.
  auto history = job.executor().coordinator()->history();
  int64_t completed = 0, last_id = 0;
  for (const auto& e : history) {
    EXPECT_GT(e.id, last_id) << "oldest first";
    last_id = e.id;
    if (e.outcome != runtime::CheckpointHistoryEntry::Outcome::kCompleted) continue;
    ++completed;
    EXPECT_EQ(e.acknowledged, e.tasks);
    EXPECT_NE(e.path.find(dir), std::string::npos) << e.path;
  }
  EXPECT_GE(completed, 6);
  EXPECT_LE(history.size(), runtime::CheckpointCoordinator::kHistorySize + 1);
  job.executor().cancel();
  ASSERT_TRUE(job.wait());
  state::CheckpointStorage storage(dir, "retained");
  auto list = storage.list_completed();
  ASSERT_TRUE(list.is_ok()) << list.status().to_string();
  EXPECT_EQ(list->size(), 2u) << "retained = 2";
  ASSERT_FALSE(list->empty());
  EXPECT_EQ(list->back().meta.id, st.last_completed_id >= list->back().meta.id ? list->back().meta.id : -1);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sluice::rt_test
