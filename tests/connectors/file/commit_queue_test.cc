// The exactly-once file sinks commit on a thread of their own
// (connectors/file/commit_queue.h): records and barriers keep flowing while
// a commit waits for the disk, commits apply in checkpoint order, a failed
// commit fails the task, a queue far behind suspends the input, and a
// commit that never ran (a crash) is done by the restore, exactly once.
#include "connectors/file/commit_queue.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "connectors/file/ndjson.h"
#include "connectors/file/partitioned.h"
#include "tests/connectors/file/lake_support.h"
#include "tests/connectors/file/temp_dir.h"
#include "tests/harness/operator_harness.h"

namespace sluice::file {
namespace {

using file_test::TempDir;
using file_test::Visit;
using file_test::visits;
using SinkHarness = harness::OneInputOperatorHarness<Visit, Visit>;

harness::HarnessOptions checkpointing(int64_t max_pending = kDefaultMaxPendingCommits) {
  harness::HarnessOptions o;
  o.job_config.set("checkpoint.dir", "/tmp/unused");
  o.job_config.set("sink.file.max-pending-commits", std::to_string(max_pending));
  o.start_processing_time = 1'000'000;
  return o;
}

std::unique_ptr<runtime::StreamOperator> ndjson_op(const std::string& path) {
  return std::make_unique<runtime::SinkOperator<Visit>>(NdjsonSink<Visit>::to_file(path));
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::vector<std::string> json_lines(const std::vector<Visit>& vs, size_t from, size_t to) {
  std::vector<std::string> out;
  for (size_t i = from; i < to; ++i) out.push_back(to_json(vs[i]));
  return out;
}

/// Holds the commit of one checkpoint on the commit thread until released,
/// and records the order in which commits start. Installed for its scope.
class HeldCommit {
 public:
  explicit HeldCommit(int64_t hold) : hold_(hold) {
    CommitQueue::set_hook_for_tests([this](const std::string&, int64_t checkpoint) {
      std::unique_lock lk(mu_);
      started_.push_back(checkpoint);
      cv_.notify_all();
      if (checkpoint == hold_) cv_.wait(lk, [&] { return released_; });
    });
  }
  ~HeldCommit() {
    release();
    CommitQueue::set_hook_for_tests(nullptr);
  }
  void release() {
    std::lock_guard lk(mu_);
    released_ = true;
    cv_.notify_all();
  }
  /// Waits until the held commit has started (and is being held).
  bool wait_held() {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, std::chrono::seconds(10),
                        [&] { return std::find(started_.begin(), started_.end(), hold_) != started_.end(); });
  }
  std::vector<int64_t> started() {
    std::lock_guard lk(mu_);
    return started_;
  }

 private:
  const int64_t hold_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int64_t> started_;
  bool released_ = false;
};

/// Runs the mailbox (as the task does between records) until no commit is
/// in progress or the operator failed.
void wait_for_commits(SinkHarness& h) {
  while (h.op().commit_in_progress() && h.failures().empty())
    if (!h.mailbox_queue().yield()) break;
}

TEST(FileSinkCommits, RecordsAndCheckpointsFlowWhileACommitIsHeldAndCommitsApplyInCheckpointOrder) {
  TempDir dir;
  const std::string target = dir.path() + "/out.ndjson";
  const auto in = visits(400, 7);
  HeldCommit held(1);
  SinkHarness h(ndjson_op(target), checkpointing());
  ASSERT_TRUE(h.open().is_ok());
  for (size_t i = 0; i < 100; ++i) h.process_element(in[i], in[i].ts);
  h.snapshot(CheckpointId(1));
  ASSERT_TRUE(h.notify_checkpoint_complete(CheckpointId(1)).is_ok()) << "returns without waiting for the disk";
  ASSERT_TRUE(held.wait_held());
  // The commit of checkpoint 1 is stuck on the disk: the task goes on.
  for (size_t i = 100; i < 200; ++i) h.process_element(in[i], in[i].ts);
  h.snapshot(CheckpointId(2));
  ASSERT_TRUE(h.notify_checkpoint_complete(CheckpointId(2)).is_ok());
  for (size_t i = 200; i < 300; ++i) h.process_element(in[i], in[i].ts);
  h.snapshot(CheckpointId(3));
  ASSERT_TRUE(h.notify_checkpoint_complete(CheckpointId(3)).is_ok());
  for (size_t i = 300; i < 400; ++i) h.process_element(in[i], in[i].ts);
  EXPECT_TRUE(h.op().commit_in_progress());
  EXPECT_FALSE(h.mailbox_queue().input_suspended()) << "3 commits queued, below the bound of 4";
  EXPECT_TRUE(lines_of(target).empty()) << "nothing is committed while checkpoint 1's commit is held";
  held.release();
  wait_for_commits(h);
  EXPECT_FALSE(h.op().commit_in_progress());
  EXPECT_EQ(held.started(), (std::vector<int64_t>{1, 2, 3})) << "one commit per completed checkpoint, in order";
  EXPECT_EQ(lines_of(target), json_lines(in, 0, 300)) << "checkpoints 1..3 exactly, in order";
  EXPECT_TRUE(h.failures().empty());
}

TEST(FileSinkCommits, AQueueFarBehindSuspendsTheInputUntilItCatchesUp) {
  TempDir dir;
  const std::string target = dir.path() + "/out.ndjson";
  const auto in = visits(30, 8);
  HeldCommit held(1);
  SinkHarness h(ndjson_op(target), checkpointing(/*max_pending=*/2));
  ASSERT_TRUE(h.open().is_ok());
  for (int cp = 1; cp <= 2; ++cp) {
    for (size_t i = (cp - 1) * 10; i < cp * 10u; ++i) h.process_element(in[i], in[i].ts);
    h.snapshot(CheckpointId(cp));
    ASSERT_TRUE(h.notify_checkpoint_complete(CheckpointId(cp)).is_ok());
    EXPECT_EQ(h.mailbox_queue().input_suspended(), cp == 2) << "after checkpoint " << cp;
  }
  ASSERT_TRUE(held.wait_held());
  held.release();
  wait_for_commits(h);
  EXPECT_FALSE(h.mailbox_queue().input_suspended()) << "resumed once the queue caught up";
  EXPECT_EQ(lines_of(target), json_lines(in, 0, 20));
}

TEST(FileSinkCommits, AFailedCommitFailsTheTaskAndNoLaterCommitRuns) {
  TempDir dir;
  const std::string target = dir.path() + "/out.ndjson";
  const auto in = visits(30, 9);
  HeldCommit held(1);
  SinkHarness h(ndjson_op(target), checkpointing());
  ASSERT_TRUE(h.open().is_ok());
  for (size_t i = 0; i < 10; ++i) h.process_element(in[i], in[i].ts);
  h.snapshot(CheckpointId(1));
  ASSERT_TRUE(h.notify_checkpoint_complete(CheckpointId(1)).is_ok());
  ASSERT_TRUE(held.wait_held());
  for (size_t i = 10; i < 20; ++i) h.process_element(in[i], in[i].ts);
  h.snapshot(CheckpointId(2));
  ASSERT_TRUE(h.notify_checkpoint_complete(CheckpointId(2)).is_ok());
  // The disk loses checkpoint 1's part before its commit runs.
  const std::string part1 = dir.path() + "/.out.ndjson.part-1";
  ASSERT_EQ(::unlink(part1.c_str()), 0);
  held.release();
  wait_for_commits(h);
  ASSERT_EQ(h.failures().size(), 1u) << "the task fails (once)";
  EXPECT_NE(h.failures()[0].message().find("part-1"), std::string::npos) << h.failures()[0].to_string();
  EXPECT_EQ(held.started(), (std::vector<int64_t>{1})) << "checkpoint 2 is not committed after a failed 1";
  EXPECT_TRUE(lines_of(target).empty());
  EXPECT_TRUE(h.op().commit_in_progress()) << "never reported committed";
  // Everything after it fails as well, naming the cause.
  EXPECT_FALSE(h.notify_checkpoint_complete(CheckpointId(3)).is_ok());
  h.process_element(in[20], in[20].ts);
  ASSERT_EQ(h.failures().size(), 2u);
  EXPECT_NE(h.failures()[1].message().find("part-1"), std::string::npos) << h.failures()[1].to_string();
}

TEST(FileSinkCommits, ACommitThatNeverRanIsDoneByTheRestoreAndALateOneChangesNothing) {
  TempDir dir;
  const std::string target = dir.path() + "/out.ndjson";
  const auto in = visits(300, 10);
  HeldCommit held(1);
  SinkHarness h(ndjson_op(target), checkpointing());
  ASSERT_TRUE(h.open().is_ok());
  for (size_t i = 0; i < 100; ++i) h.process_element(in[i], in[i].ts);
  h.snapshot(CheckpointId(1));
  ASSERT_TRUE(h.notify_checkpoint_complete(CheckpointId(1)).is_ok());
  ASSERT_TRUE(held.wait_held());
  for (size_t i = 100; i < 200; ++i) h.process_element(in[i], in[i].ts);
  // Checkpoint 2 lists its own part and checkpoint 1's, whose commit is not done.
  harness::OperatorSnapshot snap = h.snapshot(CheckpointId(2));
  ASSERT_TRUE(h.notify_checkpoint_complete(CheckpointId(2)).is_ok());
  for (size_t i = 200; i < 250; ++i) h.process_element(in[i], in[i].ts);
  // The process "dies" with both commits undone (the held one is a zombie
  // that wakes up later); the job restores from checkpoint 2.
  EXPECT_TRUE(lines_of(target).empty());
  auto r = SinkHarness::restored(ndjson_op(target), checkpointing(), snap);
  ASSERT_TRUE(r->open().is_ok());
  EXPECT_EQ(lines_of(target), json_lines(in, 0, 200)) << "the restore commits checkpoints 1 and 2";
  // The old run's held commit goes ahead after all: it finds checkpoint 1
  // committed and must change nothing.
  held.release();
  wait_for_commits(h);
  EXPECT_TRUE(h.failures().empty()) << h.failures()[0].to_string();
  h.close();
  EXPECT_EQ(lines_of(target), json_lines(in, 0, 200)) << "nothing twice";
  for (size_t i = 200; i < 300; ++i) r->process_element(in[i], in[i].ts);
  r->snapshot(CheckpointId(3));
  ASSERT_TRUE(r->notify_checkpoint_complete(CheckpointId(3)).is_ok());
  wait_for_commits(*r);
  EXPECT_EQ(lines_of(target), json_lines(in, 0, 300)) << "every record once, in order";
}

TEST(FileSinkCommits, ThePartitionedSinkPublishesOffTheTaskThreadAndKeepsUnpublishedFilesInItsState) {
  TempDir dir;
  const std::string uri = "file://" + dir.path() + "/?roll_size=1KB";
  const auto in = visits(200, 11);
  auto published = [&] {
    size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
      if (e.path().filename().string()[0] != '.') ++n;
    return n;
  };
  HeldCommit held(1);
  auto sink = PartitionedFileSink<Visit>::from_uri(uri);
  ASSERT_TRUE(sink.is_ok()) << sink.status().to_string();
  SinkHarness h(std::make_unique<runtime::SinkOperator<Visit>>(*sink), checkpointing());
  ASSERT_TRUE(h.open().is_ok());
  for (size_t i = 0; i < 100; ++i) h.process_element(in[i], in[i].ts);  // rolls by size
  h.snapshot(CheckpointId(1));
  ASSERT_TRUE(h.notify_checkpoint_complete(CheckpointId(1)).is_ok());
  ASSERT_TRUE(held.wait_held());
  EXPECT_EQ(published(), 0u);
  for (size_t i = 100; i < 200; ++i) h.process_element(in[i], in[i].ts);
  harness::OperatorSnapshot snap = h.snapshot(CheckpointId(2));  // lists checkpoint 1's files too
  held.release();
  wait_for_commits(h);
  const size_t after_1 = published();
  EXPECT_GT(after_1, 0u);
  h.op().close();
  // Restored from checkpoint 2: its files and checkpoint 1's, once each.
  auto r = SinkHarness::restored(std::make_unique<runtime::SinkOperator<Visit>>(*sink), checkpointing(), snap);
  ASSERT_TRUE(r->open().is_ok());
  std::vector<std::string> got;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    if (e.path().filename().string()[0] == '.') continue;
    for (auto& l : lines_of(e.path().string())) got.push_back(std::move(l));
  }
  std::sort(got.begin(), got.end());
  auto expected = json_lines(in, 0, in.size());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(got, expected) << "every record in exactly one published file";
}

}  // namespace
}  // namespace sluice::file
