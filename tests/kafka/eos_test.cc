// The exactly-once Kafka sink under an injected crash before and after
// every step of its protocol (commit and recovery), against
// `sluice dev-kafka`.
//
// What the dev broker (librdkafka's mock) can and cannot show, and how
// these tests deal with it (see connectors/kafka/README.md):
//  - It acknowledges transactional offset commits but does not store them,
//    so the marker is kept by MemoryMarkerStore below, which still sends
//    the real send_offsets_to_transaction request and applies the marker
//    exactly when commit_transaction succeeds, as Kafka does atomically.
//  - It writes no abort markers: records of an aborted (or abandoned)
//    transaction stay visible even to read_committed consumers. Each case
//    states how often the crashed checkpoint's records appear on the mock
//    (`copies_on_mock`); on real Kafka a read_committed reader sees each
//    record once in every case.
//  - It does not fence an older producer of the same transactional id, so
//    zombie fencing is not observable here.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "connectors/kafka/kafka.h"
#include "engine/common/json_read.h"
#include "tests/kafka/kafka_test_util.h"
#include "tests/kafka/test_record.h"

namespace sluice::kafka {
namespace {

using namespace sluice::kafka::testing;

/// A crash point: at `step`/`phase` of checkpoint `checkpoint` (0: the
/// recovery steps), and how many copies of that checkpoint's records the
/// mock then shows.
struct CrashCase {
  EosStep step;
  EosPhase phase;
  int copies_on_mock;
  std::string name() const {
    return std::string(phase == EosPhase::kBefore ? "Before_" : "After_") + std::string(eos_step_name(step));
  }
};

std::vector<CrashCase> commit_cases() {
  return {
      {EosStep::kBeginTransaction, EosPhase::kBefore, 1},
      {EosStep::kBeginTransaction, EosPhase::kAfter, 1},
      {EosStep::kProduce, EosPhase::kBefore, 1},
      // From here the crashed transaction holds the records: aborted on
      // real Kafka, visible on the mock.
      {EosStep::kProduce, EosPhase::kAfter, 2},
      {EosStep::kSendMarker, EosPhase::kBefore, 2},
      {EosStep::kSendMarker, EosPhase::kAfter, 2},
      {EosStep::kCommitTransaction, EosPhase::kBefore, 2},
      // Committed with its marker: recovery must skip it.
      {EosStep::kCommitTransaction, EosPhase::kAfter, 1},
  };
}

std::vector<CrashCase> recovery_cases();

class KafkaEosTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::vector<std::string> topics;
    for (const auto& c : commit_cases()) topics.push_back("eos_" + c.name() + ":1");
    for (const auto& c : recovery_cases()) topics.push_back("eosr_" + c.name() + ":1");
    for (auto s : {"eos_rescale:2", "eos_twice:1", "eos_job_in:4", "eos_job_out:2"}) topics.push_back(s);
    broker_ = DevKafka::start(topics).release();
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(broker_->stop(), 0);
    delete broker_;
  }
  static const std::string& bs() { return broker_->bootstrap(); }

  // A writer of subtask `subtask`/`parallelism` with the test marker store
  // and a crash hook that fires once at (step, phase, checkpoint).
  struct Crash {
    EosStep step;
    EosPhase phase;
    int64_t checkpoint;
  };
  std::unique_ptr<runtime::SinkWriter<TestRecord>> writer(const std::string& topic, int subtask,
                                                          int parallelism,
                                                          std::optional<Crash> crash = std::nullopt) {
    KafkaSinkHooks hooks;
    hooks.marker_store = markers_;
    if (crash) {
      auto fired = std::make_shared<bool>(false);
      hooks.on_step = [c = *crash, fired](EosStep s, EosPhase ph, int64_t cp) -> Status {
        if (*fired || s != c.step || ph != c.phase || cp != c.checkpoint) return Status::ok();
        *fired = true;
        return Status::internal("injected crash " + std::string(ph == EosPhase::kBefore ? "before " : "after ") +
                                std::string(eos_step_name(s)));
      };
    }
    auto sink = KafkaSink<TestRecord>::from_uri(
        "kafka://" + bs() + "/" + topic + "?delivery=exactly-once&transactional_id_prefix=t-" + topic,
        nullptr, nullptr, hooks);
    EXPECT_TRUE(sink.is_ok()) << sink.status().message();
    contexts_.push_back(std::make_unique<FakeContext>(
        subtask, parallelism, Configuration({{"checkpoint.dir", "/unused"}, {"checkpoint.interval", "1s"}})));
    last_ctx_ = contexts_.back().get();
    return (*sink)->create_writer();
  }
  static void write_range(runtime::SinkWriter<TestRecord>& w, int64_t first, int64_t n) {
    for (int64_t i = first; i < first + n; ++i) ASSERT_TRUE(w.write(TestRecord{i, "b"}, EventTime::min()).is_ok());
  }
  static std::map<int64_t, int> copies(const std::string& topic) {
    std::map<int64_t, int> out;
    JsonParser p;
    for (const auto& m : read_topic(bs(), topic)) {
      TestRecord r;
      EXPECT_EQ(p.parse(m.value.value_or(""), r), "");
      ++out[r.id];
    }
    return out;
  }
  static void expect_copies(const std::map<int64_t, int>& got, int64_t first, int64_t n, int want) {
    for (int64_t i = first; i < first + n; ++i) {
      auto it = got.find(i);
      ASSERT_NE(it, got.end()) << "record " << i << " is missing";
      ASSERT_EQ(it->second, want) << "record " << i;
    }
  }

  std::shared_ptr<MemoryMarkerStore> markers_ = std::make_shared<MemoryMarkerStore>();
  std::vector<std::unique_ptr<FakeContext>> contexts_;
  FakeContext* last_ctx_ = nullptr;
  static inline DevKafka* broker_ = nullptr;
};

class KafkaEosCommitCrashTest : public KafkaEosTest, public ::testing::WithParamInterface<CrashCase> {};

// Checkpoint 1 commits; the commit of checkpoint 2 crashes at the step;
// a new writer restores the state of checkpoint 2 (the latest completed)
// while the crashed one is still alive, then runs checkpoint 3.
TEST_P(KafkaEosCommitCrashTest, RecoveryCommitsEveryCheckpointOnce) {
  const CrashCase c = GetParam();
  const std::string topic = "eos_" + c.name();
  const std::string group = "t-" + topic + "-0";
  auto a = writer(topic, 0, 1, Crash{c.step, c.phase, 2});
  ASSERT_TRUE(a->initialize_state({}).is_ok());
  ASSERT_TRUE(a->open(*last_ctx_).is_ok());
  write_range(*a, 1, 50);
  ASSERT_TRUE(a->snapshot_state(CheckpointId(1)).is_ok());
  ASSERT_TRUE(a->notify_checkpoint_complete(CheckpointId(1)).is_ok());
  write_range(*a, 51, 50);
  auto state2 = a->snapshot_state(CheckpointId(2));
  ASSERT_TRUE(state2.is_ok());
  Status crash = a->notify_checkpoint_complete(CheckpointId(2));
  ASSERT_FALSE(crash.is_ok());
  EXPECT_NE(crash.message().find("injected crash"), std::string::npos) << crash.message();
  const bool committed_before_crash = c.step == EosStep::kCommitTransaction && c.phase == EosPhase::kAfter;
  ASSERT_EQ(markers_->get(group).has_value(), true);
  EXPECT_EQ(markers_->get(group)->checkpoint, committed_before_crash ? 2 : 1);

  // The restarted subtask (the crashed writer lingers as a zombie).
  auto b = writer(topic, 0, 1);
  ASSERT_TRUE(b->initialize_state({true, 1, {*state2}}).is_ok());
  Status st = b->open(*last_ctx_);
  ASSERT_TRUE(st.is_ok()) << st.message();
  EXPECT_EQ(markers_->get(group)->checkpoint, 2);  // committed by now, by one of them
  write_range(*b, 101, 50);
  ASSERT_TRUE(b->snapshot_state(CheckpointId(3)).is_ok());
  ASSERT_TRUE(b->notify_checkpoint_complete(CheckpointId(3)).is_ok());
  ASSERT_TRUE(b->close().is_ok());
  a.reset();

  auto got = copies(topic);
  EXPECT_EQ(got.size(), 150u);
  expect_copies(got, 1, 50, 1);
  expect_copies(got, 51, 50, c.copies_on_mock);
  expect_copies(got, 101, 50, 1);
}

INSTANTIATE_TEST_SUITE_P(Steps, KafkaEosCommitCrashTest, ::testing::ValuesIn(commit_cases()),
                         [](const auto& info) { return info.param.name(); });

// A crash in the middle of recovery, then a second recovery from the same
// checkpoint: the batch is still committed exactly once.
class KafkaEosRecoveryCrashTest : public KafkaEosTest, public ::testing::WithParamInterface<CrashCase> {};

TEST_P(KafkaEosRecoveryCrashTest, ASecondRecoveryFinishesTheJob) {
  const CrashCase c = GetParam();
  const std::string topic = "eosr_" + c.name();
  // Checkpoint 1 completes but its commit never ran (crash before begin).
  auto a = writer(topic, 0, 1, Crash{EosStep::kBeginTransaction, EosPhase::kBefore, 1});
  ASSERT_TRUE(a->initialize_state({}).is_ok());
  ASSERT_TRUE(a->open(*last_ctx_).is_ok());
  write_range(*a, 1, 40);
  auto state1 = a->snapshot_state(CheckpointId(1));
  ASSERT_TRUE(state1.is_ok());
  ASSERT_FALSE(a->notify_checkpoint_complete(CheckpointId(1)).is_ok());
  a.reset();
  // Recovery 1 crashes at the step (checkpoint 1's commit, or init/read).
  int64_t cp = (c.step == EosStep::kInitTransactions || c.step == EosStep::kReadMarker) ? 0 : 1;
  auto b = writer(topic, 0, 1, Crash{c.step, c.phase, cp});
  ASSERT_TRUE(b->initialize_state({true, 1, {*state1}}).is_ok());
  Status st = b->open(*last_ctx_);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("injected crash"), std::string::npos) << st.message();
  // Recovery 2 from the same checkpoint.
  auto r2 = writer(topic, 0, 1);
  ASSERT_TRUE(r2->initialize_state({true, 1, {*state1}}).is_ok());
  st = r2->open(*last_ctx_);
  ASSERT_TRUE(st.is_ok()) << st.message();
  ASSERT_TRUE(r2->close().is_ok());
  b.reset();
  auto got = copies(topic);
  EXPECT_EQ(got.size(), 40u);
  expect_copies(got, 1, 40, c.copies_on_mock);
}

std::vector<CrashCase> recovery_cases() {
  std::vector<CrashCase> v = {
      {EosStep::kInitTransactions, EosPhase::kBefore, 1},
      {EosStep::kInitTransactions, EosPhase::kAfter, 1},
      {EosStep::kReadMarker, EosPhase::kBefore, 1},
      {EosStep::kReadMarker, EosPhase::kAfter, 1},
  };
  for (const auto& c : commit_cases()) v.push_back(c);
  return v;
}

INSTANTIATE_TEST_SUITE_P(Steps, KafkaEosRecoveryCrashTest, ::testing::ValuesIn(recovery_cases()),
                         [](const auto& info) { return info.param.name(); });

TEST_F(KafkaEosTest, ARescaledRestoreCommitsEveryOldSubtasksBatchUnderItsOwnId) {
  // Two subtasks each hold a completed checkpoint's batch; subtask 1 had
  // committed it before the crash, subtask 0 had not.
  auto a0 = writer("eos_rescale", 0, 2, Crash{EosStep::kBeginTransaction, EosPhase::kBefore, 5});
  ASSERT_TRUE(a0->initialize_state({}).is_ok());
  ASSERT_TRUE(a0->open(*last_ctx_).is_ok());
  auto a1 = writer("eos_rescale", 1, 2, Crash{EosStep::kCommitTransaction, EosPhase::kAfter, 5});
  ASSERT_TRUE(a1->initialize_state({}).is_ok());
  ASSERT_TRUE(a1->open(*last_ctx_).is_ok());
  write_range(*a0, 1, 30);
  write_range(*a1, 31, 30);
  auto s0 = a0->snapshot_state(CheckpointId(5));
  auto s1 = a1->snapshot_state(CheckpointId(5));
  ASSERT_TRUE(s0.is_ok() && s1.is_ok());
  ASSERT_FALSE(a0->notify_checkpoint_complete(CheckpointId(5)).is_ok());
  ASSERT_FALSE(a1->notify_checkpoint_complete(CheckpointId(5)).is_ok());
  a0.reset();
  a1.reset();
  // One subtask now: it commits old subtask 0's batch and skips old 1's.
  auto b = writer("eos_rescale", 0, 1);
  ASSERT_TRUE(b->initialize_state({true, 2, {*s0, *s1}}).is_ok());
  Status st = b->open(*last_ctx_);
  ASSERT_TRUE(st.is_ok()) << st.message();
  ASSERT_TRUE(b->close().is_ok());
  EXPECT_EQ(markers_->get("t-eos_rescale-0")->checkpoint, 5);
  EXPECT_EQ(markers_->get("t-eos_rescale-1")->checkpoint, 5);
  auto got = copies("eos_rescale");
  EXPECT_EQ(got.size(), 60u);
  expect_copies(got, 1, 60, 1);
}

TEST_F(KafkaEosTest, ABatchOfAnotherRunWithTheSameCheckpointIdIsNotSkipped) {
  // Run A commits checkpoint 3. Run B (a fresh start, ids from 1 again)
  // holds checkpoint 3 uncommitted: the marker (A, 3) must not hide it.
  auto a = writer("eos_twice", 0, 1);
  ASSERT_TRUE(a->initialize_state({}).is_ok());
  ASSERT_TRUE(a->open(*last_ctx_).is_ok());
  write_range(*a, 1, 10);
  ASSERT_TRUE(a->snapshot_state(CheckpointId(3)).is_ok());
  ASSERT_TRUE(a->notify_checkpoint_complete(CheckpointId(3)).is_ok());
  ASSERT_TRUE(a->close().is_ok());
  auto b = writer("eos_twice", 0, 1, Crash{EosStep::kBeginTransaction, EosPhase::kBefore, 3});
  ASSERT_TRUE(b->initialize_state({}).is_ok());
  ASSERT_TRUE(b->open(*last_ctx_).is_ok());
  write_range(*b, 11, 10);
  auto sb = b->snapshot_state(CheckpointId(3));
  ASSERT_TRUE(sb.is_ok());
  ASSERT_FALSE(b->notify_checkpoint_complete(CheckpointId(3)).is_ok());
  b.reset();
  auto r = writer("eos_twice", 0, 1);
  ASSERT_TRUE(r->initialize_state({true, 1, {*sb}}).is_ok());
  ASSERT_TRUE(r->open(*last_ctx_).is_ok());
  ASSERT_TRUE(r->close().is_ok());
  auto got = copies("eos_twice");
  EXPECT_EQ(got.size(), 20u);
  expect_copies(got, 1, 20, 1);
}

}  // namespace
}  // namespace sluice::kafka
