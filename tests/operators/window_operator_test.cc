// The event-time window operator driven through the operator harness.
//
// Hand-written scenarios state their expected results as literals; the
// randomized ones compare with the reference model of window_reference.h.
// Snapshot/restore tests compare a run cut by a snapshot with the same run
// uninterrupted (and with the model).
#include "operators/window/window_operator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "operators/window/aggregates.h"
#include "tests/harness/operator_harness.h"
#include "tests/operators/window_reference.h"

namespace sluice::window {
namespace {

using harness::HarnessOptions;
using harness::OneInputOperatorHarness;
using harness::OperatorSnapshot;
using harness::OutputEvent;
using harness::StreamRecord;
using window_test::Firing;
using window_test::ModelSpec;
using window_test::Step;

/// The input record of these tests.
struct Click {
  std::string user;
  int64_t amount = 0;
  SLUICE_FIELDS(user, amount)
  bool operator==(const Click&) const = default;
};

/// What the test window functions emit: the key, the window and a value.
template <class V>
struct Result {
  std::string key;
  int64_t start = 0;
  int64_t end = 0;
  V value{};
  SLUICE_FIELDS(key, start, end, value)
  bool operator==(const Result&) const = default;
  auto operator<=>(const Result&) const = default;
};

std::string click_json(const std::string& user, int64_t amount) {
  return R"({"user":")" + user + R"(","amount":)" + std::to_string(amount) + "}";
}

std::shared_ptr<const runtime::KeySelector<Click, std::string>> by_user() {
  return std::make_shared<runtime::KeySelector<Click, std::string>>(
      [](const Click& c) { return c.user; });
}

WindowSettings settings(WindowAssigner assigner, int64_t lateness = 0,
                        std::optional<std::string> late_tag = std::nullopt) {
  WindowSettings s;
  s.assigner = std::move(assigner);
  s.allowed_lateness = Duration(lateness);
  s.late_tag = std::move(late_tag);
  return s;
}

WindowAssigner assigner_for(const ModelSpec& spec) {
  switch (spec.kind) {
    case ModelSpec::Kind::kTumbling:
      return WindowAssigner::tumbling(Duration(spec.size));
    case ModelSpec::Kind::kSliding:
      return WindowAssigner::sliding(Duration(spec.size), Duration(spec.slide));
    case ModelSpec::Kind::kSession:
      return WindowAssigner::session(Duration(spec.size));
  }
  return WindowAssigner::tumbling(Duration(1));
}

/// A window operator with incremental aggregation AGG over Click.
template <class AGG>
std::unique_ptr<runtime::StreamOperator> aggregate_op(WindowSettings s, AGG agg) {
  using ACC = typename AGG::Accumulator;
  using OUT = typename AGG::Output;
  using Contents = AggregatingContents<Click, ACC, OUT>;
  using Op = WindowOperator<std::string, Click, Contents, Result<OUT>>;
  typename Op::WindowFn fn = [](const std::string& k, const TimeWindow& w, const OUT& v,
                                basic::Collector<Result<OUT>>& out) {
    out.collect(Result<OUT>{k, w.start, w.end, v});
  };
  return std::make_unique<Op>(by_user(), std::move(s),
                              Contents(std::make_shared<const AGG>(std::move(agg))), fn);
}

CountAggregate<Click> count_agg() { return {}; }
SumAggregate<Click, int64_t> sum_agg() {
  return SumAggregate<Click, int64_t>([](const Click& c) { return c.amount; });
}
MinAggregate<Click, int64_t> min_agg() {
  return MinAggregate<Click, int64_t>([](const Click& c) { return c.amount; });
}
MaxAggregate<Click, int64_t> max_agg() {
  return MaxAggregate<Click, int64_t>([](const Click& c) { return c.amount; });
}
AvgAggregate<Click> avg_agg() {
  return AvgAggregate<Click>([](const Click& c) { return static_cast<double>(c.amount); });
}

using Amounts = std::vector<int64_t>;

/// Full-window function: the window's amounts, sorted, and how many records.
class CollectAmounts final : public ProcessWindowFunction<Click, Result<Amounts>, std::string> {
 public:
  void process(const std::string& key, const TimeWindow& window, const std::vector<Click>& elements,
               basic::Collector<Result<Amounts>>& out) override {
    Amounts a;
    for (const Click& c : elements) {
      EXPECT_EQ(c.user, key);
      a.push_back(c.amount);
    }
    std::sort(a.begin(), a.end());
    out.collect({key, window.start, window.end, a});
  }
};

std::unique_ptr<runtime::StreamOperator> process_op(WindowSettings s) {
  using Contents = ListContents<Click>;
  using Op = WindowOperator<std::string, Click, Contents, Result<Amounts>>;
  auto f = std::make_shared<CollectAmounts>();  // shared: captured by the window fn copy
  typename Op::WindowFn fn = [f](const std::string& k, const TimeWindow& w,
                                 const std::vector<Click>& v,
                                 basic::Collector<Result<Amounts>>& out) { f->process(k, w, v, out); };
  return std::make_unique<Op>(by_user(), std::move(s), Contents(), fn);
}

template <class OUT>
using WindowHarness = OneInputOperatorHarness<Click, Result<OUT>>;

HarnessOptions keyed(int32_t parallelism = 1, int32_t subtask = 0) {
  HarnessOptions o = HarnessOptions::keyed_subtask(parallelism, subtask);
  o.operator_name = "window";
  return o;
}

template <class OUT>
std::unique_ptr<WindowHarness<OUT>> open_harness(std::unique_ptr<runtime::StreamOperator> op,
                                                 HarnessOptions o = keyed(),
                                                 std::optional<std::string> late_tag = std::nullopt) {
  auto h = std::make_unique<WindowHarness<OUT>>(std::move(op), std::move(o));
  if (late_tag) h->template register_side_output<Click>(*late_tag);
  EXPECT_TRUE(h->open().is_ok());
  return h;
}

template <class H>
void feed(H& h, const std::vector<Step>& script, size_t from, size_t to) {
  for (size_t i = from; i < to; ++i) {
    const Step& s = script[i];
    if (s.is_watermark) h.process_watermark(s.ts);
    else h.process_element(Click{s.key, s.amount}, s.ts);
  }
}

/// Results between consecutive watermarks (each segment sorted); every
/// result must carry the timestamp end - 1 of its window.
template <class OUT>
std::vector<std::vector<Result<OUT>>> segments_of(const std::vector<OutputEvent<Result<OUT>>>& events) {
  std::vector<std::vector<Result<OUT>>> out(1);
  for (const auto& e : events) {
    if (e.is_watermark()) {
      std::sort(out.back().begin(), out.back().end());
      out.emplace_back();
    } else if (e.is_record()) {
      EXPECT_EQ(e.ts, EventTime(e.value->end - 1)) << "result timestamp of [" << e.value->start
                                                   << ", " << e.value->end << ")";
      out.back().push_back(*e.value);
    }
  }
  std::sort(out.back().begin(), out.back().end());
  return out;
}

/// The model's firings as the results a window function computing `fold`
/// over the amounts must produce.
template <class OUT>
std::vector<std::vector<Result<OUT>>> expected_segments(
    const window_test::ModelResult& model, const std::function<OUT(const Amounts&)>& fold) {
  std::vector<std::vector<Result<OUT>>> out;
  for (const auto& seg : model.segments) {
    out.emplace_back();
    for (const Firing& f : seg) out.back().push_back({f.key, f.start, f.end, fold(f.amounts)});
    std::sort(out.back().begin(), out.back().end());
  }
  return out;
}

int64_t fold_count(const Amounts& a) { return static_cast<int64_t>(a.size()); }
int64_t fold_sum(const Amounts& a) { return std::accumulate(a.begin(), a.end(), int64_t{0}); }
int64_t fold_min(const Amounts& a) { return *std::min_element(a.begin(), a.end()); }
int64_t fold_max(const Amounts& a) { return *std::max_element(a.begin(), a.end()); }
double fold_avg(const Amounts& a) {
  return static_cast<double>(fold_sum(a)) / static_cast<double>(a.size());
}
Amounts fold_all(const Amounts& a) { return a; }

std::vector<std::string> late_payloads(const std::vector<Step>& late) {
  std::vector<std::string> out;
  for (const Step& s : late) out.push_back(click_json(s.key, s.amount));
  return out;
}
std::vector<std::string> dead_letter_payloads(const std::vector<DeadLetter>& dls) {
  std::vector<std::string> out;
  for (const DeadLetter& dl : dls) out.push_back(dl.payload);
  return out;
}

/// Runs `script` through one operator and the model; everything must agree:
/// results per watermark segment, late records (dead letters), the counter.
template <class OUT, class MakeOp>
void expect_matches_model(const ModelSpec& spec, MakeOp make_op,
                          const std::function<OUT(const Amounts&)>& fold, uint32_t seed) {
  const std::vector<Step> script = window_test::random_script(seed, 400, 6, 8);
  auto h = open_harness<OUT>(make_op(settings(assigner_for(spec), spec.lateness)));
  feed(*h, script, 0, script.size());
  const auto model = window_test::run_model(spec, script);
  const auto expected = expected_segments<OUT>(model, fold);
  size_t firings = 0;
  for (const auto& s : expected) firings += s.size();
  ASSERT_GT(firings, 20u) << "the script should fire plenty of windows";
  ASSERT_FALSE(model.late.empty()) << "the script should contain late records";
  if (spec.lateness > 0) {
    ASSERT_GT(model.late_firings, 0) << "the script should fire late windows";
  }
  if (spec.kind == ModelSpec::Kind::kSession) {
    ASSERT_GT(model.bridges, 0) << "no session was bridged";
  }
  EXPECT_EQ(segments_of<OUT>(h->output().events()), expected);
  EXPECT_EQ(dead_letter_payloads(h->dead_letters()), late_payloads(model.late));
  EXPECT_EQ(h->metrics().late_records_dropped.load(), model.late.size());
  EXPECT_TRUE(h->failures().empty());
}

// --- tumbling windows: when they fire --------------------------------------

TEST(WindowOperator, TumblingCountFiresWhenTheWatermarkPassesTheWindowEndAndNotBefore) {
  auto h = open_harness<int64_t>(aggregate_op(settings(WindowAssigner::tumbling(Duration(10))),
                                              count_agg()));
  h->process_element({"ann", 1}, 1);
  h->process_element({"ann", 1}, 5);
  h->process_element({"bob", 1}, 7);
  h->process_element({"ann", 1}, 12);
  h->process_watermark(8);
  EXPECT_EQ(h->output().record_count(), 0u);
  h->process_watermark(9);  // = end - 1 of [0, 10)
  auto first = h->output().take_records();
  std::sort(first.begin(), first.end(), [](auto& a, auto& b) { return a.value < b.value; });
  EXPECT_EQ(first, (std::vector<StreamRecord<Result<int64_t>>>{{{"ann", 0, 10, 2}, EventTime(9)},
                                                               {{"bob", 0, 10, 1}, EventTime(9)}}));
  h->process_watermark(18);
  EXPECT_EQ(h->output().record_count(), 0u);
  h->process_watermark(25);
  EXPECT_EQ(h->output().records(),
            (std::vector<StreamRecord<Result<int64_t>>>{{{"ann", 10, 20, 1}, EventTime(19)}}));
  // Results come before the watermark that fired them.
  EXPECT_TRUE(h->output().events().back().is_watermark());
  EXPECT_EQ(h->output().events().back().ts, EventTime(25));
  EXPECT_TRUE(h->dead_letters().empty());
}

TEST(WindowOperator, TumblingSumMinMaxAndAvgOfOneWindow) {
  const std::vector<std::pair<int64_t, int64_t>> input{{4, 1}, {-2, 3}, {10, 9}, {7, 10}};
  // [0, 10) holds 4, -2, 10; [10, 20) holds 7.
  auto run = [&](auto agg) {
    using OUT = typename decltype(agg)::Output;
    auto h = open_harness<OUT>(aggregate_op(settings(WindowAssigner::tumbling(Duration(10))), agg));
    for (auto [amount, ts] : input) h->process_element({"ann", amount}, ts);
    h->process_watermark(100);
    return h->output().records();
  };
  using R = std::vector<StreamRecord<Result<int64_t>>>;
  EXPECT_EQ(run(sum_agg()), (R{{{"ann", 0, 10, 12}, EventTime(9)}, {{"ann", 10, 20, 7}, EventTime(19)}}));
  EXPECT_EQ(run(min_agg()), (R{{{"ann", 0, 10, -2}, EventTime(9)}, {{"ann", 10, 20, 7}, EventTime(19)}}));
  EXPECT_EQ(run(max_agg()), (R{{{"ann", 0, 10, 10}, EventTime(9)}, {{"ann", 10, 20, 7}, EventTime(19)}}));
  EXPECT_EQ(run(avg_agg()), (std::vector<StreamRecord<Result<double>>>{
                                {{"ann", 0, 10, 4.0}, EventTime(9)}, {{"ann", 10, 20, 7.0}, EventTime(19)}}));
}

TEST(WindowOperator, TumblingCountMatchesTheReferenceModel) {
  expect_matches_model<int64_t>(ModelSpec::tumbling(10),
                                [](WindowSettings s) { return aggregate_op(std::move(s), count_agg()); },
                                fold_count, 1);
}
TEST(WindowOperator, TumblingSumMatchesTheReferenceModel) {
  expect_matches_model<int64_t>(ModelSpec::tumbling(15),
                                [](WindowSettings s) { return aggregate_op(std::move(s), sum_agg()); },
                                fold_sum, 2);
}
TEST(WindowOperator, TumblingMinMatchesTheReferenceModel) {
  expect_matches_model<int64_t>(ModelSpec::tumbling(10),
                                [](WindowSettings s) { return aggregate_op(std::move(s), min_agg()); },
                                fold_min, 3);
}
TEST(WindowOperator, TumblingMaxMatchesTheReferenceModel) {
  expect_matches_model<int64_t>(ModelSpec::tumbling(10),
                                [](WindowSettings s) { return aggregate_op(std::move(s), max_agg()); },
                                fold_max, 4);
}
TEST(WindowOperator, TumblingAvgMatchesTheReferenceModel) {
  expect_matches_model<double>(ModelSpec::tumbling(20),
                               [](WindowSettings s) { return aggregate_op(std::move(s), avg_agg()); },
                               fold_avg, 5);
}
TEST(WindowOperator, TumblingWithAllowedLatenessMatchesTheReferenceModel) {
  expect_matches_model<int64_t>(ModelSpec::tumbling(10, 25),
                                [](WindowSettings s) { return aggregate_op(std::move(s), sum_agg()); },
                                fold_sum, 6);
}

// --- sliding windows -----------------------------------------------------------

TEST(WindowOperator, SlidingWindowPutsARecordIntoSizeOverSlideWindows) {
  auto h = open_harness<int64_t>(
      aggregate_op(settings(WindowAssigner::sliding(Duration(30), Duration(10))), count_agg()));
  h->process_element({"ann", 1}, 25);  // [0,30) [10,40) [20,50)
  h->process_element({"ann", 1}, 30);  // [10,40) [20,50) [30,60)
  h->process_watermark(1'000);
  EXPECT_EQ(h->output().records(), (std::vector<StreamRecord<Result<int64_t>>>{
                                       {{"ann", 0, 30, 1}, EventTime(29)},
                                       {{"ann", 10, 40, 2}, EventTime(39)},
                                       {{"ann", 20, 50, 2}, EventTime(49)},
                                       {{"ann", 30, 60, 1}, EventTime(59)}}));
}

TEST(WindowOperator, SlidingCountMatchesTheReferenceModel) {
  expect_matches_model<int64_t>(ModelSpec::sliding(30, 10),
                                [](WindowSettings s) { return aggregate_op(std::move(s), count_agg()); },
                                fold_count, 7);
}
TEST(WindowOperator, SlidingSumWithAllowedLatenessMatchesTheReferenceModel) {
  expect_matches_model<int64_t>(ModelSpec::sliding(20, 5, 12),
                                [](WindowSettings s) { return aggregate_op(std::move(s), sum_agg()); },
                                fold_sum, 8);
}

// --- session windows -------------------------------------------------------------

TEST(WindowOperator, SessionsMergeWhenAnOutOfOrderRecordBridgesThem) {
  auto h = open_harness<int64_t>(
      aggregate_op(settings(WindowAssigner::session(Duration(10))), sum_agg()));
  h->process_element({"ann", 1}, 0);   // [0, 10)
  h->process_element({"ann", 2}, 18);  // [18, 28)
  h->process_element({"bob", 50}, 9);  // another key: never merges with ann
  h->process_watermark(5);
  EXPECT_EQ(h->output().record_count(), 0u);
  h->process_element({"ann", 4}, 9);  // [9, 19) touches both: [0, 28)
  h->process_watermark(100);
  auto got = h->output().records();
  std::sort(got.begin(), got.end(), [](auto& a, auto& b) { return a.value < b.value; });
  EXPECT_EQ(got, (std::vector<StreamRecord<Result<int64_t>>>{{{"ann", 0, 28, 7}, EventTime(27)},
                                                             {{"bob", 9, 19, 50}, EventTime(18)}}));
}

TEST(WindowOperator, SessionsStaySplitWhenNoRecordBridgesTheGap) {
  auto h = open_harness<int64_t>(
      aggregate_op(settings(WindowAssigner::session(Duration(10))), sum_agg()));
  h->process_element({"ann", 1}, 0);   // [0, 10)
  h->process_element({"ann", 2}, 18);  // [18, 28)
  h->process_element({"ann", 4}, 5);   // [5, 15): merges with [0, 10) only
  h->process_watermark(14);
  EXPECT_EQ(h->output().take_records(),
            (std::vector<StreamRecord<Result<int64_t>>>{{{"ann", 0, 15, 5}, EventTime(14)}}));
  h->process_watermark(100);
  EXPECT_EQ(h->output().records(),
            (std::vector<StreamRecord<Result<int64_t>>>{{{"ann", 18, 28, 2}, EventTime(27)}}));
}

TEST(WindowOperator, SessionCountMatchesTheReferenceModel) {
  expect_matches_model<int64_t>(ModelSpec::session(8),
                                [](WindowSettings s) { return aggregate_op(std::move(s), count_agg()); },
                                fold_count, 9);
}
TEST(WindowOperator, SessionSumWithAllowedLatenessMatchesTheReferenceModel) {
  expect_matches_model<int64_t>(ModelSpec::session(8, 20),
                                [](WindowSettings s) { return aggregate_op(std::move(s), sum_agg()); },
                                fold_sum, 10);
}
TEST(WindowOperator, SessionAvgMatchesTheReferenceModel) {
  expect_matches_model<double>(ModelSpec::session(12, 5),
                               [](WindowSettings s) { return aggregate_op(std::move(s), avg_agg()); },
                               fold_avg, 11);
}

// --- allowed lateness and late records ------------------------------------------

TEST(WindowOperator, LateRecordWithinAllowedLatenessFiresAnUpdatedFullResult) {
  auto h = open_harness<int64_t>(
      aggregate_op(settings(WindowAssigner::tumbling(Duration(10)), 5), sum_agg()));
  h->process_element({"ann", 1}, 1);
  h->process_element({"ann", 2}, 3);
  h->process_watermark(9);
  EXPECT_EQ(h->output().take_records(),
            (std::vector<StreamRecord<Result<int64_t>>>{{{"ann", 0, 10, 3}, EventTime(9)}}));
  h->process_element({"ann", 10}, 4);  // late, within lateness: fires at once, everything in it
  EXPECT_EQ(h->output().take_records(),
            (std::vector<StreamRecord<Result<int64_t>>>{{{"ann", 0, 10, 13}, EventTime(9)}}));
  h->process_watermark(13);  // the cleanup time is 9 + 5 = 14
  EXPECT_EQ(h->output().record_count(), 0u);
  h->process_element({"ann", 100}, 2);
  EXPECT_EQ(h->output().take_records(),
            (std::vector<StreamRecord<Result<int64_t>>>{{{"ann", 0, 10, 113}, EventTime(9)}}));
  h->process_watermark(14);
  h->process_element({"ann", 1000}, 5);  // too late now
  h->process_watermark(100);
  EXPECT_EQ(h->output().record_count(), 0u);
  ASSERT_EQ(h->dead_letters().size(), 1u);
  EXPECT_EQ(h->dead_letters()[0].payload, click_json("ann", 1000));
  EXPECT_EQ(h->metrics().late_records_dropped.load(), 1u);
}

TEST(WindowOperator, WindowStateAndTimersAreGoneAtEndPlusLateness) {
  auto make = [] {
    return aggregate_op(settings(WindowAssigner::tumbling(Duration(10)), 5), sum_agg());
  };
  // What an operator holding nothing looks like in a snapshot.
  auto empty = open_harness<int64_t>(make());
  const auto nothing = empty->snapshot().key_groups;

  auto h = open_harness<int64_t>(make());
  h->process_element({"ann", 1}, 1);
  h->process_element({"bob", 1}, 8);
  h->process_watermark(13);  // fired, still within lateness
  EXPECT_NE(h->snapshot().key_groups, nothing);
  h->process_watermark(14);  // 9 + 5
  EXPECT_EQ(h->snapshot().key_groups, nothing);
  EXPECT_EQ(h->output().record_count(), 2u);
}

TEST(WindowOperator, LateRecordsGoToTheLateSideOutputWhenATagIsSet) {
  auto h = open_harness<int64_t>(
      aggregate_op(settings(WindowAssigner::tumbling(Duration(10)), 0, "late"), count_agg()),
      keyed(), "late");
  h->process_element({"ann", 1}, 1);
  h->process_watermark(20);
  h->process_element({"ann", 7}, 3);
  h->process_element({"bob", 8}, 19);  // [10, 20) ended at 19 <= 20: late too
  h->process_element({"bob", 9}, 21);  // on time
  h->process_watermark(40);
  auto& late = h->captured_side_output<Click>("late");
  EXPECT_EQ(late.records(), (std::vector<StreamRecord<Click>>{{{"ann", 7}, EventTime(3)},
                                                              {{"bob", 8}, EventTime(19)}}));
  EXPECT_TRUE(h->dead_letters().empty());
  EXPECT_EQ(h->metrics().late_records_dropped.load(), 0u);
  EXPECT_EQ(h->output().values(),
            (std::vector<Result<int64_t>>{{"ann", 0, 10, 1}, {"bob", 20, 30, 1}}));
}

TEST(WindowOperator, LateRecordsBecomeDeadLettersAndAreCountedWithoutATag) {
  auto h = open_harness<int64_t>(
      aggregate_op(settings(WindowAssigner::tumbling(Duration(10))), count_agg()));
  h->process_watermark(20);
  h->process_element({"ann", 7}, 3);
  h->process_element({"ann", 8}, 25);
  ASSERT_EQ(h->dead_letters().size(), 1u);
  const DeadLetter& dl = h->dead_letters()[0];
  EXPECT_EQ(dl.payload, click_json("ann", 7));
  EXPECT_NE(dl.reason.find("late"), std::string::npos) << dl.reason;
  EXPECT_EQ(dl.operator_name, "window");
  EXPECT_EQ(h->metrics().late_records_dropped.load(), 1u);
  EXPECT_EQ(h->metrics().dead_letters.load(), 1u);
}

TEST(WindowOperator, RecordWithoutTimestampBecomesADeadLetter) {
  auto h = open_harness<int64_t>(
      aggregate_op(settings(WindowAssigner::tumbling(Duration(10)), 0, "late"), count_agg()),
      keyed(), "late");
  h->process_element({"ann", 3}, EventTime::min());
  h->process_watermark(EventTime::max());
  EXPECT_EQ(h->output().record_count(), 0u);
  ASSERT_EQ(h->dead_letters().size(), 1u);
  EXPECT_EQ(h->dead_letters()[0].payload, click_json("ann", 3));
  EXPECT_NE(h->dead_letters()[0].reason.find("timestamp"), std::string::npos);
  EXPECT_EQ(h->metrics().late_records_dropped.load(), 0u);
  EXPECT_EQ(h->captured_side_output<Click>("late").record_count(), 0u);
}

TEST(WindowOperator, FinalWatermarkFiresEveryOpenWindowOnceAndDropsItsState) {
  auto make = [] {
    return aggregate_op(settings(WindowAssigner::session(Duration(10)), 1'000), count_agg());
  };
  auto empty = open_harness<int64_t>(make());
  const auto nothing = empty->snapshot().key_groups;
  auto h = open_harness<int64_t>(make());
  h->process_element({"ann", 1}, 100);
  h->process_element({"bob", 1}, 5'000);
  h->process_watermark(EventTime::max());
  auto got = h->output().values();
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<Result<int64_t>>{{"ann", 100, 110, 1}, {"bob", 5'000, 5'010, 1}}));
  EXPECT_EQ(h->snapshot().key_groups, nothing);
  EXPECT_TRUE(h->end_input().is_ok());
}

// --- full-window functions ---------------------------------------------------

TEST(WindowOperator, ProcessWindowFunctionSeesEveryElementOfTheWindow) {
  auto h = open_harness<Amounts>(process_op(settings(WindowAssigner::tumbling(Duration(10)))));
  h->process_element({"ann", 5}, 1);
  h->process_element({"ann", -1}, 9);
  h->process_element({"ann", 5}, 4);  // duplicates are elements too
  h->process_element({"ann", 3}, 10);
  h->process_watermark(9);
  EXPECT_EQ(h->output().take_records(),
            (std::vector<StreamRecord<Result<Amounts>>>{{{"ann", 0, 10, {-1, 5, 5}}, EventTime(9)}}));
}

TEST(WindowOperator, ProcessWindowFunctionOverTumblingWindowsMatchesTheReferenceModel) {
  expect_matches_model<Amounts>(ModelSpec::tumbling(10, 8), process_op, fold_all, 12);
}
TEST(WindowOperator, ProcessWindowFunctionOverSlidingWindowsMatchesTheReferenceModel) {
  expect_matches_model<Amounts>(ModelSpec::sliding(15, 5), process_op, fold_all, 13);
}
TEST(WindowOperator, ProcessWindowFunctionOverSessionsMatchesTheReferenceModel) {
  expect_matches_model<Amounts>(ModelSpec::session(8, 10), process_op, fold_all, 14);
}

// --- snapshot and restore ------------------------------------------------------

/// Everything one (possibly interrupted) run produced.
template <class OUT>
struct RunOutput {
  std::vector<OutputEvent<Result<OUT>>> events;
  std::vector<std::string> dead_letters;
  std::vector<StreamRecord<Click>> late;
  uint64_t late_dropped = 0;
  size_t failures = 0;

  void add(WindowHarness<OUT>& h, bool late_tag, size_t skip_events = 0) {
    const auto& ev = h.output().events();
    events.insert(events.end(), ev.begin() + static_cast<std::ptrdiff_t>(skip_events), ev.end());
    for (const DeadLetter& dl : h.dead_letters()) dead_letters.push_back(dl.payload);
    if (late_tag) {
      auto l = h.template captured_side_output<Click>("late").records();
      late.insert(late.end(), l.begin(), l.end());
    }
    late_dropped += h.metrics().late_records_dropped.load();
    failures += h.failures().size();
  }
};

template <class OUT>
std::string describe(const OutputEvent<Result<OUT>>& e) {
  if (e.is_watermark()) return "watermark " + std::to_string(e.ts.ms());
  if (!e.is_record()) return "watermark status";
  return to_json(*e.value) + " @ " + std::to_string(e.ts.ms());
}

template <class OUT>
void expect_same_run(const RunOutput<OUT>& got, const RunOutput<OUT>& want, const std::string& what) {
  // Records and watermarks in the same order: a restore must be invisible.
  std::vector<std::string> g, w;
  for (const auto& e : got.events) g.push_back(describe(e));
  for (const auto& e : want.events) w.push_back(describe(e));
  EXPECT_EQ(g, w) << what;
  EXPECT_EQ(got.dead_letters, want.dead_letters) << what;
  EXPECT_EQ(got.late, want.late) << what;
  EXPECT_EQ(got.late_dropped, want.late_dropped) << what;
  EXPECT_EQ(got.failures, 0u) << what;
}

/// The last watermark among the first `n` steps of `script`.
std::optional<int64_t> last_watermark(const std::vector<Step>& script, size_t n) {
  std::optional<int64_t> wm;
  for (size_t i = 0; i < n; ++i)
    if (script[i].is_watermark) wm = std::max(wm.value_or(script[i].ts), script[i].ts);
  return wm;
}

/// Cuts the run at every step: snapshot, restore into a fresh operator,
/// replay the last watermark (the operator does not keep it in its state;
/// in a job the sources re-emit it), go on. Each cut run must equal the
/// uninterrupted one exactly, and that one the model.
template <class OUT, class MakeOp>
void expect_restore_anywhere_is_invisible(const ModelSpec& spec, MakeOp make_op,
                                          const std::function<OUT(const Amounts&)>& fold,
                                          uint32_t seed, bool late_tag) {
  const std::vector<Step> script = window_test::random_script(seed, 120, 6, 10);
  std::optional<std::string> tag;
  if (late_tag) tag = "late";
  auto make = [&] { return make_op(settings(assigner_for(spec), spec.lateness, tag)); };

  RunOutput<OUT> whole;
  {
    auto h = open_harness<OUT>(make(), keyed(), tag);
    feed(*h, script, 0, script.size());
    whole.add(*h, late_tag);
    // The uninterrupted run itself is right.
    auto model = window_test::run_model(spec, script);
    EXPECT_EQ(segments_of<OUT>(h->output().events()), expected_segments<OUT>(model, fold));
    EXPECT_EQ(whole.dead_letters.size() + whole.late.size(), model.late.size());
    if (spec.lateness > 0) {
      ASSERT_GT(model.late_firings, 0) << "the script should fire late windows";
    }
    if (spec.kind == ModelSpec::Kind::kSession) {
      ASSERT_GT(model.bridges, 0) << "no session was bridged";
    }
  }
  for (size_t cut = 0; cut <= script.size(); ++cut) {
    RunOutput<OUT> split;
    OperatorSnapshot snap;
    {
      auto a = open_harness<OUT>(make(), keyed(), tag);
      feed(*a, script, 0, cut);
      snap = a->snapshot(CheckpointId(static_cast<int64_t>(cut) + 1));
      split.add(*a, late_tag);
    }
    auto b = WindowHarness<OUT>::restored(make(), keyed(), snap);
    if (late_tag) b->template register_side_output<Click>("late");
    ASSERT_TRUE(b->open().is_ok());
    size_t replayed = 0;
    if (auto wm = last_watermark(script, cut)) {
      b->process_watermark(*wm);
      replayed = 1;
      ASSERT_EQ(b->output().events().size(), 1u) << "replaying the watermark fired something";
    }
    feed(*b, script, cut, script.size());
    split.add(*b, late_tag, replayed);
    expect_same_run(split, whole, "cut at step " + std::to_string(cut));
    if (::testing::Test::HasFailure()) return;  // one cut's report is enough
  }
}

TEST(WindowOperatorRestore, TumblingWithLatenessRestoredAtAnyStepMatchesAnUninterruptedRun) {
  expect_restore_anywhere_is_invisible<int64_t>(
      ModelSpec::tumbling(10, 15), [](WindowSettings s) { return aggregate_op(std::move(s), sum_agg()); },
      fold_sum, 21, false);
}
TEST(WindowOperatorRestore, SlidingRestoredAtAnyStepMatchesAnUninterruptedRun) {
  expect_restore_anywhere_is_invisible<double>(
      ModelSpec::sliding(20, 5, 5), [](WindowSettings s) { return aggregate_op(std::move(s), avg_agg()); },
      fold_avg, 22, true);
}
TEST(WindowOperatorRestore, SessionsWithLatenessRestoredAtAnyStepMatchAnUninterruptedRun) {
  expect_restore_anywhere_is_invisible<int64_t>(
      ModelSpec::session(8, 15), [](WindowSettings s) { return aggregate_op(std::move(s), sum_agg()); },
      fold_sum, 23, false);
}
TEST(WindowOperatorRestore, FullWindowSessionsRestoredAtAnyStepMatchAnUninterruptedRun) {
  expect_restore_anywhere_is_invisible<Amounts>(ModelSpec::session(8, 10), process_op, fold_all, 24,
                                                true);
}

/// Runs `before`, snapshots, restores and runs `after` (no watermark
/// replayed: like a job, whose sources start from no watermark), and the
/// same input uninterrupted.
template <class OUT, class MakeOp>
void expect_cut_matches_whole(MakeOp make, const std::vector<Step>& before,
                              const std::vector<Step>& after) {
  std::vector<Step> all = before;
  all.insert(all.end(), after.begin(), after.end());
  RunOutput<OUT> whole, split;
  {
    auto h = open_harness<OUT>(make());
    feed(*h, all, 0, all.size());
    whole.add(*h, false);
  }
  OperatorSnapshot snap;
  {
    auto a = open_harness<OUT>(make());
    feed(*a, before, 0, before.size());
    snap = a->snapshot();
    split.add(*a, false);
  }
  auto b = WindowHarness<OUT>::restored(make(), keyed(), snap);
  ASSERT_TRUE(b->open().is_ok());
  feed(*b, after, 0, after.size());
  split.add(*b, false);
  expect_same_run(split, whole, "restored run");
}

TEST(WindowOperatorRestore, LateFiringAfterRestoreMatchesAnUninterruptedRun) {
  // [0, 10) fires at 9 before the snapshot; a record within the lateness
  // arrives after the restore and must update the result.
  expect_cut_matches_whole<int64_t>(
      [] { return aggregate_op(settings(WindowAssigner::tumbling(Duration(10)), 20), sum_agg()); },
      {Step::record("ann", 1, 1), Step::record("ann", 2, 8), Step::watermark(12)},
      {Step::record("ann", 4, 3), Step::watermark(15), Step::record("ann", 8, 5), Step::watermark(40)});
}

TEST(WindowOperatorRestore, MergedSessionRestoredMidwayMatchesAnUninterruptedRun) {
  expect_cut_matches_whole<int64_t>(
      [] { return aggregate_op(settings(WindowAssigner::session(Duration(10)), 5), sum_agg()); },
      {Step::record("ann", 1, 0), Step::record("ann", 2, 18), Step::record("ann", 4, 9),
       Step::record("bob", 8, 3), Step::watermark(6)},
      {Step::record("ann", 16, 30), Step::record("bob", 32, 14), Step::watermark(100)});
}

TEST(WindowOperatorRestore, RecordTooLateBeforeASnapshotIsStillLateAfterRestore) {
  // [0, 10) fired and was dropped (watermark 30 > 9 + 5) before the
  // snapshot. The uninterrupted run rejects the record at 4 as late; a
  // restored operator must not accept it and fire [0, 10) a second time.
  expect_cut_matches_whole<int64_t>(
      [] { return aggregate_op(settings(WindowAssigner::tumbling(Duration(10)), 5), count_agg()); },
      {Step::record("ann", 1, 2), Step::watermark(30)},
      {Step::record("ann", 1, 4), Step::record("ann", 1, 35), Step::watermark(50)});
}

/// Runs `script` on `parallelism` subtasks (records to their key's owner,
/// watermarks to all) from `snap` (or fresh); steps [from, to).
template <class OUT, class MakeOp>
std::vector<OperatorSnapshot> run_subtasks(MakeOp make, const std::vector<Step>& script, size_t from,
                                           size_t to, int32_t parallelism,
                                           const std::optional<OperatorSnapshot>& snap,
                                           RunOutput<OUT>& out, std::vector<RunOutput<OUT>>& per) {
  std::vector<OperatorSnapshot> snaps;
  per.clear();
  for (int32_t s = 0; s < parallelism; ++s) {
    auto h = snap ? WindowHarness<OUT>::restored(make(), keyed(parallelism, s), *snap)
                  : std::make_unique<WindowHarness<OUT>>(make(), keyed(parallelism, s));
    EXPECT_TRUE(h->open().is_ok());
    size_t skip = 0;
    if (snap) {
      if (auto wm = last_watermark(script, from)) {
        h->process_watermark(*wm);
        skip = 1;
      }
    }
    for (size_t i = from; i < to; ++i) {
      const Step& st = script[i];
      if (st.is_watermark) h->process_watermark(st.ts);
      else if (harness::subtask_for_key(st.key, parallelism) == s)
        h->process_element(Click{st.key, st.amount}, st.ts);
    }
    RunOutput<OUT> r;
    r.add(*h, false, skip);
    out.dead_letters.insert(out.dead_letters.end(), r.dead_letters.begin(), r.dead_letters.end());
    out.late_dropped += r.late_dropped;
    out.failures += r.failures;
    per.push_back(std::move(r));
    snaps.push_back(h->snapshot());
  }
  return snaps;
}

/// Segment-wise union of the outputs of parallel subtasks (each subtask
/// sees every watermark, so segment i is the same span of input on all).
template <class OUT>
std::vector<std::vector<Result<OUT>>> union_segments(const std::vector<RunOutput<OUT>>& per) {
  std::vector<std::vector<Result<OUT>>> out;
  for (const auto& r : per) {
    auto segs = segments_of<OUT>(r.events);
    if (out.empty()) out.resize(segs.size());
    EXPECT_EQ(segs.size(), out.size());
    for (size_t i = 0; i < segs.size() && i < out.size(); ++i)
      out[i].insert(out[i].end(), segs[i].begin(), segs[i].end());
  }
  for (auto& s : out) std::sort(s.begin(), s.end());
  return out;
}

/// `a` then `b`: the segment open at the cut continues in `b`.
template <class T>
std::vector<std::vector<T>> join(std::vector<std::vector<T>> a, const std::vector<std::vector<T>>& b) {
  a.back().insert(a.back().end(), b.front().begin(), b.front().end());
  std::sort(a.back().begin(), a.back().end());
  a.insert(a.end(), b.begin() + 1, b.end());
  return a;
}

TEST(WindowOperatorRestore, RestoringWithAnotherParallelismKeepsEveryKeysWindows) {
  const ModelSpec spec = ModelSpec::session(8, 10);
  auto make = [&] { return aggregate_op(settings(assigner_for(spec), spec.lateness), sum_agg()); };
  const std::vector<Step> script = window_test::random_script(31, 300, 6, 8);
  const auto expected =
      expected_segments<int64_t>(window_test::run_model(spec, script), fold_sum);
  const auto model_late = window_test::run_model(spec, script).late;

  for (size_t cut : {script.size() / 3, script.size() / 2 + 1}) {
    for (auto [from_p, to_p] : {std::pair{2, 3}, std::pair{3, 1}, std::pair{1, 4}}) {
      std::string what = "cut " + std::to_string(cut) + ", parallelism " + std::to_string(from_p) +
                         " -> " + std::to_string(to_p);
      RunOutput<int64_t> totals;
      std::vector<RunOutput<int64_t>> before, after;
      auto snaps = run_subtasks<int64_t>(make, script, 0, cut, from_p, std::nullopt, totals, before);
      OperatorSnapshot merged = OperatorSnapshot::merge(snaps);
      run_subtasks<int64_t>(make, script, cut, script.size(), to_p, merged, totals, after);
      EXPECT_EQ(join(union_segments(before), union_segments(after)), expected) << what;
      auto dls = totals.dead_letters;
      auto want = late_payloads(model_late);
      std::sort(dls.begin(), dls.end());
      std::sort(want.begin(), want.end());
      EXPECT_EQ(dls, want) << what;
      EXPECT_EQ(totals.failures, 0u) << what;
    }
  }
}

}  // namespace
}  // namespace sluice::window
