// The exactly-once protocol under an injected crash before and after every
// step of a batch commit, in normal operation and during recovery; a
// rescaled restore; a fresh run reusing checkpoint ids; and two writers
// (a zombie and its replacement) committing the same batch at once; a
// zombie frozen inside its commit does not hold its replacement up.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <map>
#include <optional>
#include <thread>

#include "tests/postgres/test_env.h"

namespace sluice::postgres::testing {
namespace {

struct Crash {
  PgStep step;
  PgPhase phase;
  int64_t checkpoint;
};

std::string case_name(PgStep s, PgPhase p) {
  return std::string(p == PgPhase::kBefore ? "Before_" : "After_") + std::string(pg_step_name(s));
}

std::vector<std::pair<PgStep, PgPhase>> all_steps() {
  std::vector<std::pair<PgStep, PgPhase>> out;
  for (auto s : {PgStep::kLockProgress, PgStep::kWriteRows, PgStep::kUpdateProgress, PgStep::kCommit})
    for (auto p : {PgPhase::kBefore, PgPhase::kAfter}) out.emplace_back(s, p);
  return out;
}

class Harness {
 public:
  explicit Harness(std::string table) : table_(std::move(table)) {}

  std::unique_ptr<runtime::SinkWriter<Row>> writer(int subtask, int parallelism, std::optional<Crash> crash = {},
                                                   const std::string& extra = "", PostgresSinkHooks hooks = {}) {
    if (crash) {
      auto fired = std::make_shared<bool>(false);
      hooks.on_step = [c = *crash, fired](PgStep s, PgPhase ph, int64_t cp) -> Status {
        if (*fired || s != c.step || ph != c.phase || cp != c.checkpoint) return Status::ok();
        *fired = true;
        return Status::internal("injected crash " + case_name(s, ph));
      };
    }
    auto sink = PostgresSink<Row>::from_uri(uri("table=" + table_ + "&create_table=true" + extra), hooks);
    EXPECT_TRUE(sink.is_ok()) << sink.status().message();
    contexts_.push_back(std::make_unique<FakeContext>(subtask, parallelism));
    ctx = contexts_.back().get();
    return (*sink)->create_writer();
  }
  static void write_range(runtime::SinkWriter<Row>& w, int64_t first, int64_t n) {
    for (int64_t i = first; i < first + n; ++i) ASSERT_TRUE(w.write(Row{i, "r"}, EventTime::min()).is_ok());
  }
  /// id -> copies in the table.
  std::map<int64_t, int64_t> copies() {
    std::map<int64_t, int64_t> out;
    for (const auto& r : server().sql("SELECT id, count(*) FROM " + table_ + " GROUP BY id").rows)
      out[std::stoll(*r[0])] = std::stoll(*r[1]);
    return out;
  }
  void expect_once(int64_t first, int64_t last) {
    auto got = copies();
    EXPECT_EQ(got.size(), static_cast<size_t>(last - first + 1));
    int shown = 0;
    for (int64_t i = first; i <= last; ++i) {
      int64_t n = got.count(i) ? got[i] : 0;
      if (n != 1 && shown++ < 5) ADD_FAILURE() << "row " << i << " appears " << n << " times";
    }
  }
  int64_t progress(int writer) {
    return server().scalar("SELECT checkpoint FROM sluice_sink_progress WHERE sink_id = 'pg-test/sink-uid' AND writer = " +
                           std::to_string(writer));
  }
  FakeContext* ctx = nullptr;

 private:
  std::string table_;
  std::vector<std::unique_ptr<FakeContext>> contexts_;
};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

class PgEosCommitCrash : public ::testing::TestWithParam<std::pair<PgStep, PgPhase>> {};

TEST_P(PgEosCommitCrash, RecoveryCommitsTheCompletedCheckpointExactlyOnce) {
  auto [step, phase] = GetParam();
  Harness h("eos_" + lower(case_name(step, phase)));
  // Checkpoint 1 commits; the commit of checkpoint 2 crashes at the step.
  auto a = h.writer(0, 1, Crash{step, phase, 2});
  ASSERT_TRUE(a->initialize_state({}).is_ok());
  ASSERT_TRUE(a->open(*h.ctx).is_ok());
  Harness::write_range(*a, 1, 10);
  ASSERT_TRUE(a->snapshot_state(CheckpointId(1)).is_ok());
  ASSERT_TRUE(a->notify_checkpoint_complete(CheckpointId(1)).is_ok());
  Harness::write_range(*a, 11, 10);
  auto s2 = a->snapshot_state(CheckpointId(2));
  ASSERT_TRUE(s2.is_ok());
  ASSERT_FALSE(a->notify_checkpoint_complete(CheckpointId(2)).is_ok());
  // The crashed writer's rows after the barrier never reach the table.
  for (int64_t i = 1000; i < 1005; ++i) EXPECT_FALSE(a->write(Row{i, "zombie"}, EventTime::min()).is_ok());
  EXPECT_FALSE(a->snapshot_state(CheckpointId(3)).is_ok());
  EXPECT_FALSE(a->notify_checkpoint_complete(CheckpointId(3)).is_ok());
  // A new writer restores checkpoint 2 (the old one still exists, as a zombie would).
  auto b = h.writer(0, 1);
  ASSERT_TRUE(b->initialize_state({true, 1, {*s2}}).is_ok());
  Status st = b->open(*h.ctx);
  ASSERT_TRUE(st.is_ok()) << st.message();
  EXPECT_EQ(h.progress(0), 2);
  Harness::write_range(*b, 21, 10);
  ASSERT_TRUE(b->snapshot_state(CheckpointId(3)).is_ok());
  ASSERT_TRUE(b->notify_checkpoint_complete(CheckpointId(3)).is_ok());
  ASSERT_TRUE(b->close().is_ok());
  h.expect_once(1, 30);
  EXPECT_EQ(h.progress(0), 3);
}

INSTANTIATE_TEST_SUITE_P(Steps, PgEosCommitCrash, ::testing::ValuesIn(all_steps()),
                         [](const auto& info) { return case_name(info.param.first, info.param.second); });

class PgEosRecoveryCrash : public ::testing::TestWithParam<std::pair<PgStep, PgPhase>> {};

TEST_P(PgEosRecoveryCrash, ASecondRecoveryFinishesTheJob) {
  auto [step, phase] = GetParam();
  Harness h("eosr_" + lower(case_name(step, phase)));
  // Checkpoint 2 completes but its commit never starts.
  auto a = h.writer(0, 1, Crash{PgStep::kLockProgress, PgPhase::kBefore, 2});
  ASSERT_TRUE(a->initialize_state({}).is_ok());
  ASSERT_TRUE(a->open(*h.ctx).is_ok());
  Harness::write_range(*a, 1, 10);
  ASSERT_TRUE(a->snapshot_state(CheckpointId(1)).is_ok());
  ASSERT_TRUE(a->notify_checkpoint_complete(CheckpointId(1)).is_ok());
  Harness::write_range(*a, 11, 10);
  auto s2 = a->snapshot_state(CheckpointId(2));
  ASSERT_TRUE(s2.is_ok());
  ASSERT_FALSE(a->notify_checkpoint_complete(CheckpointId(2)).is_ok());
  a.reset();
  // The first recovery crashes at the step, the second one finishes.
  auto b = h.writer(0, 1, Crash{step, phase, 2});
  ASSERT_TRUE(b->initialize_state({true, 1, {*s2}}).is_ok());
  ASSERT_FALSE(b->open(*h.ctx).is_ok());
  b.reset();
  auto c = h.writer(0, 1);
  ASSERT_TRUE(c->initialize_state({true, 1, {*s2}}).is_ok());
  Status st = c->open(*h.ctx);
  ASSERT_TRUE(st.is_ok()) << st.message();
  ASSERT_TRUE(c->close().is_ok());
  h.expect_once(1, 20);
  EXPECT_EQ(h.progress(0), 2);
}

INSTANTIATE_TEST_SUITE_P(Steps, PgEosRecoveryCrash, ::testing::ValuesIn(all_steps()),
                         [](const auto& info) { return case_name(info.param.first, info.param.second); });

TEST(PgEos, ARescaledRestoreCommitsEveryOldSubtasksBatchUnderItsOwnRow) {
  Harness h("eos_rescale");
  // Two subtasks hold checkpoint 5's batch; subtask 1 committed it before
  // the crash, subtask 0 did not.
  auto a0 = h.writer(0, 2, Crash{PgStep::kLockProgress, PgPhase::kBefore, 5});
  ASSERT_TRUE(a0->initialize_state({}).is_ok());
  ASSERT_TRUE(a0->open(*h.ctx).is_ok());
  auto a1 = h.writer(1, 2, Crash{PgStep::kCommit, PgPhase::kAfter, 5});
  ASSERT_TRUE(a1->initialize_state({}).is_ok());
  ASSERT_TRUE(a1->open(*h.ctx).is_ok());
  Harness::write_range(*a0, 1, 30);
  Harness::write_range(*a1, 31, 30);
  auto s0 = a0->snapshot_state(CheckpointId(5));
  auto s1 = a1->snapshot_state(CheckpointId(5));
  ASSERT_TRUE(s0.is_ok() && s1.is_ok());
  ASSERT_FALSE(a0->notify_checkpoint_complete(CheckpointId(5)).is_ok());
  ASSERT_FALSE(a1->notify_checkpoint_complete(CheckpointId(5)).is_ok());
  a0.reset();
  a1.reset();
  // One subtask now: it commits old subtask 0's batch and skips old 1's.
  auto b = h.writer(0, 1);
  ASSERT_TRUE(b->initialize_state({true, 2, {*s0, *s1}}).is_ok());
  Status st = b->open(*h.ctx);
  ASSERT_TRUE(st.is_ok()) << st.message();
  ASSERT_TRUE(b->close().is_ok());
  EXPECT_EQ(h.progress(0), 5);
  EXPECT_EQ(h.progress(1), 5);
  h.expect_once(1, 60);
}

TEST(PgEos, ScaledUpRestoreLeavesEachOldBatchToOneNewSubtask) {
  Harness h("eos_scale_up");
  auto a = h.writer(0, 1, Crash{PgStep::kLockProgress, PgPhase::kBefore, 4});
  ASSERT_TRUE(a->initialize_state({}).is_ok());
  ASSERT_TRUE(a->open(*h.ctx).is_ok());
  Harness::write_range(*a, 1, 20);
  auto s = a->snapshot_state(CheckpointId(4));
  ASSERT_TRUE(s.is_ok());
  ASSERT_FALSE(a->notify_checkpoint_complete(CheckpointId(4)).is_ok());
  a.reset();
  for (int i = 0; i < 3; ++i) {
    auto b = h.writer(i, 3);
    ASSERT_TRUE(b->initialize_state({true, 1, {*s}}).is_ok());
    ASSERT_TRUE(b->open(*h.ctx).is_ok());
    Harness::write_range(*b, 100 + 10 * i, 10);
    ASSERT_TRUE(b->snapshot_state(CheckpointId(5)).is_ok());
    ASSERT_TRUE(b->notify_checkpoint_complete(CheckpointId(5)).is_ok());
  }
  auto got = h.copies();
  EXPECT_EQ(got.size(), 50u);
  for (const auto& [id, n] : got) EXPECT_EQ(n, 1) << id;
}

TEST(PgEos, ABatchOfAnotherRunWithTheSameCheckpointIdIsNotSkipped) {
  Harness h("eos_twice");
  auto a = h.writer(0, 1);
  ASSERT_TRUE(a->initialize_state({}).is_ok());
  ASSERT_TRUE(a->open(*h.ctx).is_ok());
  Harness::write_range(*a, 1, 10);
  ASSERT_TRUE(a->snapshot_state(CheckpointId(3)).is_ok());
  ASSERT_TRUE(a->notify_checkpoint_complete(CheckpointId(3)).is_ok());
  ASSERT_TRUE(a->close().is_ok());
  // A fresh run (ids from 1 again) holds checkpoint 3 uncommitted.
  auto b = h.writer(0, 1, Crash{PgStep::kLockProgress, PgPhase::kBefore, 3});
  ASSERT_TRUE(b->initialize_state({}).is_ok());
  ASSERT_TRUE(b->open(*h.ctx).is_ok());
  Harness::write_range(*b, 11, 10);
  auto sb = b->snapshot_state(CheckpointId(3));
  ASSERT_TRUE(sb.is_ok());
  ASSERT_FALSE(b->notify_checkpoint_complete(CheckpointId(3)).is_ok());
  b.reset();
  auto r = h.writer(0, 1);
  ASSERT_TRUE(r->initialize_state({true, 1, {*sb}}).is_ok());
  ASSERT_TRUE(r->open(*h.ctx).is_ok());
  h.expect_once(1, 20);
}

TEST(PgEos, AZombieAndItsReplacementCommittingTheSameBatchAtOnceWriteItOnce) {
  Harness h("eos_zombie");
  auto a = h.writer(0, 1, Crash{PgStep::kLockProgress, PgPhase::kBefore, 2});
  ASSERT_TRUE(a->initialize_state({}).is_ok());
  ASSERT_TRUE(a->open(*h.ctx).is_ok());
  Harness::write_range(*a, 1, 2000);
  auto s = a->snapshot_state(CheckpointId(2));
  ASSERT_TRUE(s.is_ok());
  ASSERT_FALSE(a->notify_checkpoint_complete(CheckpointId(2)).is_ok());
  for (int round = 0; round < 3; ++round) {
    std::vector<std::unique_ptr<runtime::SinkWriter<Row>>> ws;
    std::vector<FakeContext*> ctxs;
    for (int i = 0; i < 4; ++i) {
      ws.push_back(h.writer(0, 1));
      ctxs.push_back(h.ctx);
      ASSERT_TRUE(ws.back()->initialize_state({true, 1, {*s}}).is_ok());
    }
    std::vector<Status> results(ws.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < ws.size(); ++i)
      threads.emplace_back([&, i] { results[i] = ws[i]->open(*ctxs[i]); });
    for (auto& t : threads) t.join();
    for (const auto& st : results) EXPECT_TRUE(st.is_ok()) << st.message();
  }
  h.expect_once(1, 2000);
}

// A writer frozen (SIGSTOP, a cut-off process) inside its commit, holding
// the progress row lock: the server ends its idle transaction after 2 s
// (idle_in_transaction_session_timeout), so the restored writer commits
// within a few seconds instead of waiting out the 10 s lock_timeout; the
// batch is in the table once, and the zombie, woken, commits nothing.
TEST(PgEos, AZombieFrozenInsideItsCommitDoesNotHoldItsReplacementUp) {
  Harness h("eos_frozen_zombie");
  std::promise<void> frozen, wake;
  std::shared_future<void> woken = wake.get_future().share();
  PostgresSinkHooks hooks;
  hooks.on_step = [&frozen, woken, once = std::make_shared<bool>(false)](PgStep s, PgPhase ph, int64_t cp) -> Status {
    if (s == PgStep::kLockProgress && ph == PgPhase::kAfter && cp == 2 && !*once) {
      *once = true;
      frozen.set_value();
      woken.wait();
    }
    return Status::ok();
  };
  auto a = h.writer(0, 1, {}, "", hooks);
  ASSERT_TRUE(a->initialize_state({}).is_ok());
  ASSERT_TRUE(a->open(*h.ctx).is_ok());
  Harness::write_range(*a, 1, 10);
  auto s2 = a->snapshot_state(CheckpointId(2));
  ASSERT_TRUE(s2.is_ok());
  std::thread zombie([&] { (void)a->notify_checkpoint_complete(CheckpointId(2)); });
  frozen.get_future().wait();  // it holds the row lock now, idle in its transaction
  auto b = h.writer(0, 1);
  ASSERT_TRUE(b->initialize_state({true, 1, {*s2}}).is_ok());
  const auto t0 = std::chrono::steady_clock::now();
  Status st = b->open(*h.ctx);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  wake.set_value();
  zombie.join();
  ASSERT_TRUE(st.is_ok()) << st.message();
  EXPECT_LT(ms, 6000) << "the replacement waited for the frozen zombie's lock";
  std::printf("replacement committed %lld ms after it started, past a frozen zombie\n", static_cast<long long>(ms));
  ASSERT_TRUE(b->close().is_ok());
  h.expect_once(1, 10);
  EXPECT_EQ(h.progress(0), 2);
}

}  // namespace
}  // namespace sluice::postgres::testing
