// Broadcast state through the two-input harness: rules broadcast to a
// keyed stream apply to later events and, through apply_to_keyed_state,
// to state keyed before them; broadcast state is operator state that every
// subtask of a restored run (any parallelism) takes from old subtask 0,
// while keyed state follows its key groups. Heap and RocksDB.
#include "operators/join/broadcast_process.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "tests/harness/operator_harness.h"
#include "tests/integration/jobs/spend_rules.h"

namespace sluice::join {
namespace {

using harness::HarnessOptions;
using harness::OperatorSnapshot;
using harness::TwoInputOperatorHarness;

using it_jobs::Alert;
using it_jobs::kRules;
using it_jobs::Rule;
using it_jobs::Spend;
using it_jobs::Thresholds;

using ThresholdOp = KeyedBroadcastProcessOperator<std::string, Spend, Rule, Alert, Thresholds>;
using ThresholdHarness = TwoInputOperatorHarness<Spend, Rule, Alert>;

std::unique_ptr<runtime::StreamOperator> thresholds() {
  return std::make_unique<ThresholdOp>(
      std::make_shared<runtime::KeySelector<Spend, std::string>>([](const Spend& s) { return s.user; }),
      Thresholds{}, std::vector<std::string>{kRules.name});
}

class KeyedBroadcast : public ::testing::TestWithParam<state::BackendKind> {
 protected:
  HarnessOptions options(int32_t parallelism = 1, int32_t subtask = 0) {
    return HarnessOptions::keyed_subtask(parallelism, subtask).with_backend(GetParam());
  }
};

TEST_P(KeyedBroadcast, RulesApplyToLaterEventsAndToStateKeyedBeforeThem) {
  ThresholdHarness h(thresholds(), options());
  ASSERT_TRUE(h.open().is_ok());
  h.process_element1(Spend{"alice", "books", 30}, 1);
  h.process_element1(Spend{"bob", "books", 80}, 2);
  h.process_element1(Spend{"alice", "games", 10}, 3);
  EXPECT_TRUE(h.output().values().empty());
  h.process_element2(Rule{"r1", "books", 50}, 4);  // bob already spent 80
  EXPECT_EQ(h.output().values(), (std::vector<Alert>{{"bob", "r1", 80}}));
  h.process_element1(Spend{"alice", "books", 25}, 5);  // alice reaches 55
  h.process_element1(Spend{"alice", "books", 5}, 6);   // once only
  h.process_element1(Spend{"bob", "books", 1}, 7);
  h.process_element2(Rule{"r2", "games", 10}, 8);
  EXPECT_EQ(h.output().values(),
            (std::vector<Alert>{{"bob", "r1", 80}, {"alice", "r1", 55}, {"alice", "r2", 10}}));
  EXPECT_TRUE(h.failures().empty());
}

TEST_P(KeyedBroadcast, BroadcastStateAndKeyedStateAreRestoredAtAnyParallelism) {
  // Two subtasks: each gets every rule and the spends of its keys.
  const std::vector<std::string> users = {"ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal"};
  std::vector<OperatorSnapshot> parts;
  std::vector<Alert> before;
  for (int s = 0; s < 2; ++s) {
    ThresholdHarness h(thresholds(), options(2, s));
    ASSERT_TRUE(h.open().is_ok());
    h.process_element2(Rule{"r1", "books", 50}, 1);
    for (size_t i = 0; i < users.size(); ++i) {
      if (harness::subtask_for_key(users[i], 2) != s) continue;
      h.process_element1(Spend{users[i], "books", static_cast<int64_t>(10 * i)}, 2);
    }
    h.process_element2(Rule{"r2", "books", 20}, 3);
    for (const auto& a : h.output().values()) before.push_back(a);
    parts.push_back(h.snapshot());
  }
  OperatorSnapshot snap = OperatorSnapshot::merge(parts);

  // Three subtasks: 20 more for everyone; no rule is sent again.
  std::vector<Alert> after;
  for (int s = 0; s < 3; ++s) {
    auto h = ThresholdHarness::restored(thresholds(), options(3, s), snap);
    ASSERT_TRUE(h->open().is_ok());
    for (size_t i = 0; i < users.size(); ++i) {
      if (harness::subtask_for_key(users[i], 3) != s) continue;
      h->process_element1(Spend{users[i], "books", 20}, 4);
    }
    for (const auto& a : h->output().values()) after.push_back(a);
    EXPECT_TRUE(h->failures().empty());
  }
  // Before: r2 (20) for users 2..7 (>= 20), r1 (50) for users 5..7.
  // After (+20): r1 for users 3 and 4 (50, 60); r2 for user 1 (30).
  std::vector<Alert> expected_before, expected_after;
  for (size_t i = 0; i < users.size(); ++i) {
    int64_t t = static_cast<int64_t>(10 * i);
    if (t >= 50) expected_before.push_back({users[i], "r1", t});
    if (t >= 20) expected_before.push_back({users[i], "r2", t});
    if (t < 50 && t + 20 >= 50) expected_after.push_back({users[i], "r1", t + 20});
    if (t < 20 && t + 20 >= 20) expected_after.push_back({users[i], "r2", t + 20});
  }
  for (auto* v : {&before, &after, &expected_before, &expected_after}) std::sort(v->begin(), v->end());
  EXPECT_EQ(before, expected_before);
  EXPECT_EQ(after, expected_after) << "rules lost in the restore, or keyed totals/alerts not restored";
}

INSTANTIATE_TEST_SUITE_P(Backends, KeyedBroadcast,
                         ::testing::Values(state::BackendKind::kHeap, state::BackendKind::kRocksDB),
                         [](const auto& info) { return std::string(state::backend_kind_name(info.param)); });

// ---- non-keyed ------------------------------------------------------------------------

const state::MapStateDescriptor<std::string, std::string> kLabels{"labels", {}};

/// Labels categories from a broadcast dictionary ("?" when unknown).
class Labeler final : public BroadcastProcessFunction<Spend, Rule, std::string> {
 public:
  void process_element(const Spend& s, ReadOnlyContext& ctx, Collector<std::string>& out) override {
    const std::string* label = ctx.get_broadcast_state(kLabels).find(s.category);
    out.collect(s.user + ":" + (label ? *label : "?"));
  }
  void process_broadcast_element(const Rule& r, Context& ctx, Collector<std::string>&) override {
    if (r.threshold < 0) ctx.get_broadcast_state(kLabels).remove(r.category);
    else ctx.get_broadcast_state(kLabels).put(r.category, r.id);
  }
};

using LabelHarness = TwoInputOperatorHarness<Spend, Rule, std::string>;

std::unique_ptr<runtime::StreamOperator> labeler(std::vector<std::string> declared = {"labels"}) {
  return std::make_unique<BroadcastProcessOperator<Spend, Rule, std::string, Labeler>>(Labeler{},
                                                                                      std::move(declared));
}

TEST(BroadcastProcess, TheRecordSideReadsWhatTheBroadcastSideWroteAndARestoreKeepsIt) {
  LabelHarness h(labeler());
  ASSERT_TRUE(h.open().is_ok());
  h.process_element1(Spend{"a", "books"}, 1);
  h.process_element2(Rule{"Reading", "books", 0}, 2);
  h.process_element2(Rule{"Play", "games", 0}, 3);
  h.process_element1(Spend{"b", "books"}, 4);
  h.process_element2(Rule{"", "games", -1}, 5);  // removed
  h.process_element1(Spend{"c", "games"}, 6);
  EXPECT_EQ(h.output().values(), (std::vector<std::string>{"a:?", "b:Reading", "c:?"}));

  OperatorSnapshot snap = h.snapshot();
  for (int s = 0; s < 2; ++s) {
    HarnessOptions o;
    o.parallelism = 2;
    o.subtask = s;
    auto r = LabelHarness::restored(labeler(), o, snap);
    ASSERT_TRUE(r->open().is_ok());
    r->process_element1(Spend{"d", "books"}, 7);
    EXPECT_EQ(r->output().values(), (std::vector<std::string>{"d:Reading"})) << "subtask " << s;
  }
}

TEST(BroadcastProcess, AStateThatWasNotDeclaredFailsTheTaskWithAClearMessage) {
  LabelHarness h(labeler({"other"}));
  ASSERT_TRUE(h.open().is_ok());
  h.process_element2(Rule{"Reading", "books", 0}, 1);
  ASSERT_EQ(h.failures().size(), 1u);
  EXPECT_NE(h.failures()[0].message().find("'labels' was not declared"), std::string::npos)
      << h.failures()[0].to_string();
}

/// Reports, for each record, the broadcast input's watermark and idleness
/// and the operator's watermark.
class Progress final : public BroadcastProcessFunction<Spend, Rule, std::string> {
 public:
  void process_element(const Spend& s, ReadOnlyContext& ctx, Collector<std::string>& out) override {
    out.collect(s.user + " rules@" + str(ctx.broadcast_watermark()) + (ctx.broadcast_idle() ? " idle" : "") +
                " op@" + str(ctx.current_watermark()));
  }
  void process_broadcast_element(const Rule&, Context&, Collector<std::string>&) override {}

 private:
  static std::string str(int64_t t) {
    return t == EventTime::min().ms() ? "min" : t == EventTime::max().ms() ? "max" : std::to_string(t);
  }
};

TEST(BroadcastProcess, TheFunctionSeesTheBroadcastInputsOwnWatermarkAndIdlenessAndEventTimeNeverGoesBack) {
  LabelHarness h(std::make_unique<BroadcastProcessOperator<Spend, Rule, std::string, Progress>>(
      Progress{}, std::vector<std::string>{}));
  ASSERT_TRUE(h.open().is_ok());
  h.process_watermark1(50);
  h.process_element1(Spend{"a"}, 10);  // the broadcast side holds the operator back
  h.process_watermark2(20);
  h.set_idle2(true);  // idle: left out of the operator's watermark
  h.process_element1(Spend{"b"}, 30);
  h.set_idle2(false);  // active again, behind: the operator's watermark stays
  h.process_element1(Spend{"c"}, 40);
  h.process_watermark1(90);
  h.process_watermark2(70);
  h.process_element1(Spend{"d"}, 60);
  h.end_input2();
  h.process_element1(Spend{"e"}, 80);
  EXPECT_EQ(h.output().values(),
            (std::vector<std::string>{"a rules@min op@min", "b rules@20 idle op@50", "c rules@20 op@50",
                                      "d rules@70 op@70", "e rules@max op@90"}));
}

}  // namespace
}  // namespace sluice::join
