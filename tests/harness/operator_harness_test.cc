// Tests of the operator test harness itself, with a probe operator whose
// behaviour is spelled out here (so a harness bug cannot hide behind an
// operator bug).
#include "tests/harness/operator_harness.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "state/state_factory.h"

namespace sluice::harness {
namespace {

/// Echoes each record doubled, counts records in operator state, sends odd
/// values to side output "odd", negative values to the dead letters, zero
/// to fail(), and values >= 1000 back out at processing time `value`.
class ProbeOperator final : public runtime::OneInputOperator<int64_t> {
 public:
  Status initialize_state(const runtime::OperatorRestore& restore) override {
    restored_ = restore.restored;
    old_parallelism_ = restore.old_parallelism;
    for (const auto& s : restore.states) restored_count_ += std::stoll(s);
    ++initialize_calls_;
    return Status::ok();
  }
  Status open() override {
    out_ = static_cast<runtime::Output<int64_t>*>(outputs().at(0));
    odd_ = static_cast<runtime::Output<int64_t>*>(context().side_output("odd"));
    open_after_initialize_ = initialize_calls_ == 1;
    return Status::ok();
  }
  void process_element(const int64_t& v, EventTime ts) override {
    ++count_;
    if (v < 0) {
      DeadLetter dl;
      dl.reason = "negative";
      dl.payload = std::to_string(v);
      context().dead_letter(std::move(dl));
      return;
    }
    if (v == 0) {
      context().fail(Status::internal("zero"));
      return;
    }
    if (v >= 1000) {
      context().processing_time().schedule(v, [this, v](int64_t now) {
        out_->collect(v, EventTime(now));
      });
      return;
    }
    out_->collect(v * 2, ts);
    if (odd_ && v % 2 == 1) odd_->collect(v, ts);
  }
  Result<std::string> snapshot_state(CheckpointId) override {
    return std::to_string(restored_count_ + count_);
  }
  Status finish() override {
    out_->collect(-1, EventTime::max());
    return Status::ok();
  }
  void close() override { ++*close_calls_; }

  bool restored_ = false;
  int32_t old_parallelism_ = 0;
  int64_t restored_count_ = 0;
  int64_t count_ = 0;
  int initialize_calls_ = 0;
  bool open_after_initialize_ = false;
  std::shared_ptr<int> close_calls_ = std::make_shared<int>(0);

 private:
  runtime::Output<int64_t>* out_ = nullptr;
  runtime::Output<int64_t>* odd_ = nullptr;
};

using ProbeHarness = OneInputOperatorHarness<int64_t, int64_t>;

/// A probe operator with its harness (which owns it).
struct Probe {
  std::unique_ptr<ProbeHarness> harness;
  ProbeOperator* op;
};

Probe make_probe(HarnessOptions options = {}) {
  auto op = std::make_unique<ProbeOperator>();
  auto* raw = op.get();
  return {std::make_unique<ProbeHarness>(std::move(op), std::move(options)), raw};
}

TEST(OperatorHarness, InitializesStateBeforeOpenOnAFreshStart) {
  auto [h, op] = make_probe();
  ASSERT_TRUE(h->open().is_ok());
  EXPECT_EQ(op->initialize_calls_, 1);
  EXPECT_TRUE(op->open_after_initialize_);
  EXPECT_FALSE(op->restored_);
}

TEST(OperatorHarness, CapturesRecordsAndWatermarksInOrder) {
  auto [h, op] = make_probe();
  ASSERT_TRUE(h->open().is_ok());
  h->process_element(1, 10);
  h->process_watermark(10);
  h->process_element(2, 5);
  h->process_watermark(20);
  const auto& ev = h->output().events();
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_TRUE(ev[0].is_record());
  EXPECT_EQ(*ev[0].value, 2);
  EXPECT_EQ(ev[0].ts, EventTime(10));
  EXPECT_TRUE(ev[1].is_watermark());
  EXPECT_EQ(ev[1].ts, EventTime(10));
  EXPECT_EQ(*ev[2].value, 4);
  EXPECT_EQ(ev[2].ts, EventTime(5));
  EXPECT_EQ(ev[3].ts, EventTime(20));
  EXPECT_EQ(h->output().watermarks(), (std::vector<EventTime>{EventTime(10), EventTime(20)}));
  EXPECT_EQ(h->output().take_records(),
            (std::vector<StreamRecord<int64_t>>{{2, EventTime(10)}, {4, EventTime(5)}}));
  EXPECT_TRUE(h->output().events().empty());
}

TEST(OperatorHarness, SideOutputsExistOnlyWhenRegistered) {
  auto [plain, plain_op] = make_probe();
  ASSERT_TRUE(plain->open().is_ok());
  plain->process_element(3, 1);  // the probe must not crash on a null side output
  EXPECT_EQ(plain->output().record_count(), 1u);
  EXPECT_THROW(plain->captured_side_output<int64_t>("odd"), HarnessError);

  auto [h, op] = make_probe();
  auto& odd = h->register_side_output<int64_t>("odd");
  ASSERT_TRUE(h->open().is_ok());
  h->process_element(3, 7);
  h->process_element(4, 8);
  h->process_watermark(9);
  EXPECT_EQ(odd.records(), (std::vector<StreamRecord<int64_t>>{{3, EventTime(7)}}));
  // Like the runtime, watermarks reach every output.
  EXPECT_EQ(odd.watermarks(), std::vector<EventTime>{EventTime(9)});
  EXPECT_EQ(&h->captured_side_output<int64_t>("odd"), &odd);
  EXPECT_THROW(h->captured_side_output<std::string>("odd"), HarnessError);
}

TEST(OperatorHarness, FillsInDeadLettersAndCountsThem) {
  HarnessOptions o;
  o.operator_name = "probe";
  o.job_name = "probe-job";
  o.start_processing_time = 5'000;
  auto [h, op] = make_probe(o);
  ASSERT_TRUE(h->open().is_ok());
  h->process_element(-4, 1);
  ASSERT_EQ(h->dead_letters().size(), 1u);
  const DeadLetter& dl = h->dead_letters()[0];
  EXPECT_EQ(dl.reason, "negative");
  EXPECT_EQ(dl.payload, "-4");
  EXPECT_EQ(dl.operator_name, "probe");
  EXPECT_EQ(dl.job, "probe-job");
  EXPECT_EQ(dl.time_ms, 5'000);
  EXPECT_EQ(h->metrics().dead_letters.load(), 1u);
  EXPECT_TRUE(h->output().events().empty());
}

TEST(OperatorHarness, KeepsEveryFailure) {
  auto [h, op] = make_probe();
  ASSERT_TRUE(h->open().is_ok());
  h->process_element(0, 1);
  h->process_element(0, 2);
  ASSERT_EQ(h->failures().size(), 2u);
  EXPECT_EQ(h->failures()[0].message(), "zero");
}

TEST(OperatorHarness, ProcessingTimeCallbacksRunWhenTheClockReachesThem) {
  auto [h, op] = make_probe();
  ASSERT_TRUE(h->open().is_ok());
  h->process_element(1500, 1);
  h->process_element(1200, 2);
  h->set_processing_time(1199);
  EXPECT_EQ(h->output().record_count(), 0u);
  h->set_processing_time(2000);
  // Both due: run in deadline order, each told the current time.
  EXPECT_EQ(h->output().records(),
            (std::vector<StreamRecord<int64_t>>{{1200, EventTime(2000)}, {1500, EventTime(2000)}}));
  EXPECT_THROW(h->set_processing_time(10), HarnessError);
}

TEST(OperatorHarness, EndInputCallsFinishAndDestructorCloses) {
  auto [h, op] = make_probe();
  auto closes = op->close_calls_;
  ASSERT_TRUE(h->open().is_ok());
  ASSERT_TRUE(h->end_input().is_ok());
  EXPECT_EQ(h->output().records(), (std::vector<StreamRecord<int64_t>>{{-1, EventTime::max()}}));
  h.reset();
  EXPECT_EQ(*closes, 1);
}

TEST(OperatorHarness, RestoredHarnessSeesTheUnionOfOperatorStates) {
  std::vector<OperatorSnapshot> parts;
  for (int32_t i = 0; i < 2; ++i) {
    HarnessOptions o;
    o.parallelism = 2;
    o.subtask = i;
    auto [h, op] = make_probe(o);
    ASSERT_TRUE(h->open().is_ok());
    for (int n = 0; n <= i; ++n) h->process_element(1, n);  // subtask i sees i + 1 records
    parts.push_back(h->snapshot());
  }
  OperatorSnapshot all = OperatorSnapshot::merge(parts);
  EXPECT_EQ(all.operator_states.size(), 2u);
  EXPECT_THROW(OperatorSnapshot::merge({parts[0], parts[0]}), HarnessError);

  auto op = std::make_unique<ProbeOperator>();
  auto* raw = op.get();
  auto h = ProbeHarness::restored(std::move(op), {}, all);
  ASSERT_TRUE(h->open().is_ok());
  EXPECT_TRUE(raw->restored_);
  EXPECT_EQ(raw->old_parallelism_, 2);
  EXPECT_EQ(raw->restored_count_, 1 + 2);
}

/// Keyed: remembers the last value per key; emits the previous one.
class LastValueOperator final : public runtime::OneInputOperator<std::pair<std::string, int64_t>> {
 public:
  using In = std::pair<std::string, int64_t>;
  Status open() override {
    out_ = static_cast<runtime::Output<int64_t>*>(outputs().at(0));
    backend_ = context().keyed_backend();
    if (!backend_) return Status::internal("not keyed");
    last_ = state::get_value_state(*backend_, state::ValueStateDescriptor<int64_t>{"last", {}});
    return Status::ok();
  }
  void process_element(const In& v, EventTime ts) override {
    std::string key = serialize(v.first);
    KeyGroup kg = state::key_group_for_key(key, backend_->max_parallelism());
    if (!backend_->key_group_range().contains(kg)) {
      context().fail(Status::internal("foreign key " + v.first));
      return;
    }
    backend_->set_current_key(key, kg);
    out_->collect(last_->value().value_or(-1), ts);
    last_->update(v.second);
  }

 private:
  runtime::Output<int64_t>* out_ = nullptr;
  state::KeyedStateBackend* backend_ = nullptr;
  state::ValueState<int64_t>* last_ = nullptr;
};

using LastHarness = OneInputOperatorHarness<LastValueOperator::In, int64_t>;

TEST(OperatorHarness, KeyedBackendOwnsTheSubtasksKeyGroups) {
  auto h = std::make_unique<LastHarness>(std::make_unique<LastValueOperator>(),
                                         HarnessOptions::keyed_subtask(3, 1, 64));
  ASSERT_NE(h->heap_backend(), nullptr);
  EXPECT_EQ(h->heap_backend()->key_group_range(), state::key_group_range_for_subtask(64, 3, 1));
  LastHarness plain(std::make_unique<LastValueOperator>());
  EXPECT_EQ(plain.keyed_backend(), nullptr);
  EXPECT_FALSE(plain.open().is_ok());
}

TEST(OperatorHarness, KeyedStateMovesWithItsKeyGroupsWhenRescaling) {
  const std::vector<std::string> keys{"a", "b", "c", "d", "e", "f", "g", "h"};
  // Parallelism 2: each key's value lives on the subtask that owns it.
  std::vector<OperatorSnapshot> parts;
  for (int32_t i = 0; i < 2; ++i) {
    LastHarness h(std::make_unique<LastValueOperator>(), HarnessOptions::keyed_subtask(2, i));
    ASSERT_TRUE(h.open().is_ok());
    for (size_t k = 0; k < keys.size(); ++k) {
      if (subtask_for_key(keys[k], 2) == i) h.process_element({keys[k], int64_t(k) * 10}, 1);
    }
    EXPECT_TRUE(h.failures().empty());
    parts.push_back(h.snapshot());
  }
  OperatorSnapshot all = OperatorSnapshot::merge(parts);
  EXPECT_EQ(all.key_groups.size(), 128u);
  // Parallelism 3: every key finds its value on its new owner.
  std::vector<int64_t> seen(keys.size(), -2);
  for (int32_t i = 0; i < 3; ++i) {
    auto h = LastHarness::restored(std::make_unique<LastValueOperator>(),
                                   HarnessOptions::keyed_subtask(3, i), all);
    ASSERT_TRUE(h->open().is_ok());
    for (size_t k = 0; k < keys.size(); ++k) {
      if (subtask_for_key(keys[k], 3) != i) continue;
      h->process_element({keys[k], 0}, 2);
      seen[k] = h->output().values().back();
    }
    EXPECT_TRUE(h->failures().empty());
  }
  for (size_t k = 0; k < keys.size(); ++k) EXPECT_EQ(seen[k], int64_t(k) * 10) << keys[k];
}

TEST(OperatorHarness, RejectsSnapshotsOfAnotherMaxParallelism) {
  LastHarness a(std::make_unique<LastValueOperator>(), HarnessOptions::keyed_subtask(1, 0, 64));
  ASSERT_TRUE(a.open().is_ok());
  OperatorSnapshot snap = a.snapshot();
  LastHarness b(std::make_unique<LastValueOperator>(), HarnessOptions::keyed_subtask(1, 0, 128));
  EXPECT_FALSE(b.restore(snap).is_ok());
}

}  // namespace
}  // namespace sluice::harness
