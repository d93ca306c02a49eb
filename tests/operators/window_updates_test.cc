// Window results that change after they were first seen: early firings
// (processing-time updates before and after the watermark passes a
// window), retractions of merged session windows, and the bounded FirstN
// accumulator. Driven through the operator harness; the randomized tests
// compare "latest result per window" and "changelog applied to a table"
// with the reference model of window_reference.h and a brute-force
// sessionization written here.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "operators/window/aggregates.h"
#include "operators/window/window_operator.h"
#include "tests/harness/operator_harness.h"
#include "tests/operators/window_reference.h"

namespace sluice::window {
namespace {

using harness::HarnessOptions;
using harness::OneInputOperatorHarness;
using window_test::ModelSpec;
using window_test::Step;

struct Click {
  std::string user;
  int64_t amount = 0;
  SLUICE_FIELDS(user, amount)
};

using Amounts = std::vector<int64_t>;

/// A window's result, or (retracted) the withdrawal of an earlier one.
struct Row {
  std::string key;
  int64_t start = 0;
  int64_t end = 0;
  Amounts amounts;
  bool retracted = false;
  SLUICE_FIELDS(key, start, end, amounts, retracted)
  bool operator==(const Row&) const = default;
};
void PrintTo(const Row& r, std::ostream* os) { *os << to_json(r); }

/// Every amount of the window, sorted (an order-insensitive result).
class CollectAmounts final : public AggregateFunction<Click, Amounts, Amounts> {
 public:
  Amounts create_accumulator() const override { return {}; }
  void add(Amounts& acc, const Click& c) const override {
    acc.insert(std::upper_bound(acc.begin(), acc.end(), c.amount), c.amount);
  }
  Amounts get_result(const Amounts& acc) const override { return acc; }
  void merge(Amounts& into, const Amounts& other) const override {
    Amounts all;
    std::merge(into.begin(), into.end(), other.begin(), other.end(), std::back_inserter(all));
    into = std::move(all);
  }
};

using Contents = AggregatingContents<Click, Amounts, Amounts>;
using Op = WindowOperator<std::string, Click, Contents, Row>;
using Harness = OneInputOperatorHarness<Click, Row>;

std::unique_ptr<runtime::StreamOperator> make_op(WindowAssigner assigner, int64_t lateness, int64_t early_ms,
                                                 bool retractions) {
  WindowSettings s;
  s.assigner = std::move(assigner);
  s.allowed_lateness = Duration(lateness);
  s.early_firing = Duration(early_ms);
  Op::WindowFn fn = [](const std::string& k, const TimeWindow& w, const Amounts& a,
                       basic::Collector<Row>& out) { out.collect(Row{k, w.start, w.end, a, false}); };
  Op::RetractFn rf;
  if (retractions) {
    // Rows are upserted by (key, start); every fired window a merge absorbs
    // is withdrawn (the merged window's row may take its place later).
    rf = [](const std::string& k, const TimeWindow& old, const Amounts& a, const TimeWindow&,
            basic::Collector<Row>& out) { out.collect(Row{k, old.start, old.end, a, true}); };
  }
  auto ks = std::make_shared<runtime::KeySelector<Click, std::string>>([](const Click& c) { return c.user; });
  return std::make_unique<Op>(ks, std::move(s), Contents(std::make_shared<const CollectAmounts>()), fn, rf);
}

std::unique_ptr<Harness> open_harness(std::unique_ptr<runtime::StreamOperator> op) {
  HarnessOptions o = HarnessOptions::keyed_subtask();
  o.operator_name = "window";
  auto h = std::make_unique<Harness>(std::move(op), std::move(o));
  EXPECT_TRUE(h->open().is_ok());
  return h;
}

using WindowKey = std::tuple<std::string, int64_t, int64_t>;  // key, start, end

// --- merge_window ------------------------------------------------------------

TEST(MergeWindow, ABridgingWindowAbsorbsBothNeighboursAndLeavesTheOthers) {
  const std::vector<TimeWindow> set{{0, 10}, {15, 25}, {40, 50}};
  WindowMerge m = merge_window(set, {8, 18});
  EXPECT_EQ(m.merged, (TimeWindow{0, 25}));
  EXPECT_EQ(m.absorbed, (std::vector<size_t>{0, 1}));
  m = merge_window(set, {30, 35});
  EXPECT_EQ(m.merged, (TimeWindow{30, 35}));
  EXPECT_TRUE(m.absorbed.empty());
  // Touching counts (sessions [0,10) and [10,20) are one), and so does a
  // chain reached only through the grown window.
  m = merge_window({{0, 10}, {20, 30}}, {10, 20});
  EXPECT_EQ(m.merged, (TimeWindow{0, 30}));
  EXPECT_EQ(m.absorbed.size(), 2u);
}

// --- early firing ---------------------------------------------------------------

TEST(WindowEarlyFiring, AChangedWindowFiresAtTheNextIntervalAndAnUnchangedOneDoesNot) {
  auto h = open_harness(make_op(WindowAssigner::tumbling(Duration(10)), 0, 100, false));
  h->set_processing_time(1'030);
  h->process_element({"ann", 1}, 1);
  h->process_element({"ann", 2}, 2);
  h->set_processing_time(1'099);
  EXPECT_EQ(h->output().record_count(), 0u);
  h->set_processing_time(1'100);  // aligned: the next multiple of 100 ms
  EXPECT_EQ(h->output().take_records(),
            (std::vector<harness::StreamRecord<Row>>{{{"ann", 0, 10, {1, 2}, false}, EventTime(9)}}));
  h->set_processing_time(1'500);
  EXPECT_EQ(h->output().record_count(), 0u) << "nothing changed, nothing fires";
  h->process_element({"ann", 3}, 5);
  h->process_element({"bob", 7}, 6);
  h->process_watermark(9);  // the on-time firing replaces the pending early one
  auto on_time = h->output().take_records();
  ASSERT_EQ(on_time.size(), 2u);
  h->set_processing_time(2'000);
  EXPECT_EQ(h->output().record_count(), 0u) << "the early firing was cancelled by the on-time one";
  EXPECT_TRUE(h->failures().empty());
}

TEST(WindowEarlyFiring, LateRecordsWithinTheLatenessShareOneFiringInsteadOfOneEach) {
  auto h = open_harness(make_op(WindowAssigner::tumbling(Duration(10)), 50, 100, false));
  h->process_element({"ann", 1}, 1);
  h->process_watermark(20);
  EXPECT_EQ(h->output().take_records().size(), 1u);
  for (int i = 2; i <= 6; ++i) h->process_element({"ann", i}, i);  // late, allowed
  EXPECT_EQ(h->output().record_count(), 0u);
  h->advance_processing_time(100);
  EXPECT_EQ(h->output().take_records(),
            (std::vector<harness::StreamRecord<Row>>{{{"ann", 0, 10, {1, 2, 3, 4, 5, 6}, false}, EventTime(9)}}));
  h->process_watermark(59);  // end - 1 + lateness: the window's state goes
  h->process_element({"ann", 9}, 9);
  EXPECT_EQ(h->dead_letters().size(), 1u) << "too late now";
  h->advance_processing_time(1'000);
  EXPECT_EQ(h->output().record_count(), 0u);
}

/// A script with processing time moving between the steps.
struct TimedStep {
  Step step;
  int64_t proc_advance = 0;
};

std::vector<TimedStep> timed(const std::vector<Step>& script, uint32_t seed) {
  std::mt19937 rng(seed * 7 + 1);
  std::vector<TimedStep> out;
  for (const Step& s : script) out.push_back({s, std::uniform_int_distribution<int64_t>(0, 40)(rng)});
  return out;
}

void run_timed(Harness& h, const std::vector<TimedStep>& script) {
  for (const TimedStep& t : script) {
    h.advance_processing_time(t.proc_advance);
    if (t.step.is_watermark) h.process_watermark(t.step.ts);
    else h.process_element(Click{t.step.key, t.step.amount}, t.step.ts);
  }
  h.advance_processing_time(10'000);
}

// With early firing the latest result of every window is its final result
// (the model's last firing), and no window ever shows a record that is not
// in its final result.
void expect_latest_equals_model(const ModelSpec& spec, uint32_t seed) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  const auto script = window_test::random_script(seed, 400, 6, 8);
  WindowAssigner a = spec.kind == ModelSpec::Kind::kSession ? WindowAssigner::session(Duration(spec.size))
                                                            : WindowAssigner::tumbling(Duration(spec.size));
  auto h = open_harness(make_op(a, spec.lateness, 30, false));
  run_timed(*h, timed(script, seed));
  const auto model = window_test::run_model(spec, script);
  std::map<WindowKey, Amounts> expected, latest;
  for (const auto& f : model.final_windows) expected[{f.key, f.start, f.end}] = f.amounts;
  size_t early = 0;
  for (const auto& r : h->output().records()) {
    latest[{r.value.key, r.value.start, r.value.end}] = r.value.amounts;
    auto it = expected.find({r.value.key, r.value.start, r.value.end});
    if (it == expected.end()) {
      // A session that was merged later: its records are all in one final session.
      ASSERT_EQ(spec.kind, ModelSpec::Kind::kSession) << "unexpected window [" << r.value.start << ", " << r.value.end << ")";
      continue;
    }
    ASSERT_TRUE(std::includes(it->second.begin(), it->second.end(), r.value.amounts.begin(), r.value.amounts.end())) << to_json(r.value) << " final " << to_json(it->second);
    early += r.value.amounts.size() < it->second.size() ? 1 : 0;
  }
  EXPECT_GT(early, 5u) << "the script should show windows before they are complete";
  for (const auto& [k, amounts] : expected) EXPECT_EQ(latest[k], amounts) << std::get<0>(k) << " [" << std::get<1>(k) << ", " << std::get<2>(k) << ")";
  EXPECT_EQ(h->dead_letters().size(), model.late.size());
  EXPECT_TRUE(h->failures().empty());
}

TEST(WindowEarlyFiring, LatestResultPerTumblingWindowIsTheModelsFinalOne) {
  for (uint32_t seed = 1; seed <= 5; ++seed) expect_latest_equals_model(ModelSpec::tumbling(10, 15), seed);
}

TEST(WindowEarlyFiring, EarlyFiringSurvivesSnapshotAndRestore) {
  auto h = open_harness(make_op(WindowAssigner::tumbling(Duration(10)), 0, 100, false));
  h->set_processing_time(1'000);
  h->process_element({"ann", 4}, 3);
  auto snap = h->snapshot();
  HarnessOptions o = HarnessOptions::keyed_subtask();
  o.start_processing_time = 1'000;
  auto r = Harness::restored(make_op(WindowAssigner::tumbling(Duration(10)), 0, 100, false), o, snap);
  ASSERT_TRUE(r->open().is_ok());
  r->set_processing_time(1'100);
  EXPECT_EQ(r->output().values(), (std::vector<Row>{{"ann", 0, 10, {4}, false}}));
}

// --- retractions of merged sessions --------------------------------------------

/// The output as an upsert consumer keyed by (key, start) sees it.
std::map<std::pair<std::string, int64_t>, Row> apply_changelog(const std::vector<Row>& rows, size_t* retractions) {
  std::map<std::pair<std::string, int64_t>, Row> table;
  for (const Row& r : rows) {
    if (r.retracted) {
      EXPECT_EQ(table.erase({r.key, r.start}), 1u) << "retraction of a row never written: " << to_json(r);
      ++*retractions;
    } else {
      table[{r.key, r.start}] = r;
    }
  }
  return table;
}

void expect_changelog_equals_sessions(int64_t early_ms, uint32_t seed) {
  SCOPED_TRACE("seed " + std::to_string(seed) + " early " + std::to_string(early_ms));
  const int64_t gap = 8, lateness = 30;
  const auto script = window_test::random_script(seed, 500, 12, 10);
  auto h = open_harness(make_op(WindowAssigner::session(Duration(gap)), lateness, early_ms, true));
  run_timed(*h, timed(script, seed));
  const auto model = window_test::run_model(ModelSpec::session(gap, lateness), script);
  ASSERT_GT(model.bridges, 0) << "no late record bridged two sessions";
  size_t retractions = 0;
  const auto table = apply_changelog(h->output().values(), &retractions);
  EXPECT_GT(retractions, 0u) << "the script should retract merged sessions";
  // The model's sessions as they were when their state was dropped; a
  // record arriving after its neighbour was dropped starts a session of its
  // own (Flink's semantics), which a plain sessionization would not show.
  std::map<std::pair<std::string, int64_t>, Row> expected;
  for (const auto& f : model.final_windows) expected[{f.key, f.start}] = Row{f.key, f.start, f.end, f.amounts, false};
  EXPECT_EQ(table.size(), expected.size());
  for (const auto& [k, r] : table) {
    if (!expected.count(k)) ADD_FAILURE() << "extra session " << to_json(r);
  }
  for (const auto& [k, r] : expected) {
    auto it = table.find(k);
    if (it == table.end()) {
      ADD_FAILURE() << "missing session " << to_json(r);
      continue;
    }
    EXPECT_EQ(it->second, r);
  }
  EXPECT_EQ(h->dead_letters().size(), model.late.size());
  EXPECT_TRUE(h->failures().empty());
}

TEST(WindowRetractions, MergedSessionsAreWithdrawnSoTheUpsertedTableEqualsTheReferenceSessions) {
  for (uint32_t seed = 1; seed <= 8; ++seed) expect_changelog_equals_sessions(0, seed);
}

TEST(WindowRetractions, WithEarlyFiringTooTheUpsertedTableEqualsTheReferenceSessions) {
  for (uint32_t seed = 1; seed <= 8; ++seed) expect_changelog_equals_sessions(20, seed);
}

TEST(WindowRetractions, ABridgingLateRecordWithdrawsBothFiredSessionsThenFiresTheMergedOne) {
  auto h = open_harness(make_op(WindowAssigner::session(Duration(10)), 100, 0, true));
  h->process_element({"ann", 1}, 0);    // [0, 10)
  h->process_element({"ann", 2}, 15);   // [15, 25)
  h->process_watermark(30);
  EXPECT_EQ(h->output().values(), (std::vector<Row>{{"ann", 0, 10, {1}, false}, {"ann", 15, 25, {2}, false}}));
  h->output().clear();
  h->process_element({"ann", 3}, 8);  // [8, 18) bridges both
  // Both are withdrawn, then the merged session fires at once (its end is
  // behind the watermark already).
  EXPECT_EQ(h->output().values(), (std::vector<Row>{{"ann", 0, 10, {1}, true},
                                                    {"ann", 15, 25, {2}, true},
                                                    {"ann", 0, 25, {1, 2, 3}, false}}));
}

// --- FirstN ------------------------------------------------------------------------

TEST(FirstN, KeepsTheEarliestValuesWhateverTheArrivalOrderAndMergeTree) {
  std::mt19937 rng(3);
  for (int round = 0; round < 200; ++round) {
    const size_t limit = std::uniform_int_distribution<size_t>(0, 6)(rng);
    std::vector<TimedValue<std::string>> all;
    const int n = std::uniform_int_distribution<int>(0, 20)(rng);
    for (int i = 0; i < n; ++i) {
      all.push_back({std::uniform_int_distribution<int64_t>(0, 9)(rng), "/p/" + std::to_string(rng() % 4)});
    }
    std::vector<TimedValue<std::string>> sorted = all;
    std::sort(sorted.begin(), sorted.end());
    // Split into random parts, add in a random order, merge in a random order.
    std::shuffle(all.begin(), all.end(), rng);
    std::vector<FirstN<std::string>> parts(1 + rng() % 4);
    for (const auto& v : all) parts[rng() % parts.size()].add(v.ts, v.value, limit);
    std::shuffle(parts.begin(), parts.end(), rng);
    FirstN<std::string> acc;
    for (const auto& p : parts) acc.merge(p, limit);
    const size_t keep = std::min(limit, sorted.size());
    EXPECT_EQ(acc.items, std::vector<TimedValue<std::string>>(sorted.begin(), sorted.begin() + static_cast<long>(keep)))
        << "round " << round;
    EXPECT_EQ(acc.more, static_cast<int64_t>(sorted.size() - keep));
  }
}

}  // namespace
}  // namespace sluice::window
