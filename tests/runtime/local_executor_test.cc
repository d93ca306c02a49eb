// Whole jobs on the LocalExecutor: graphs built with the DataStream API in
// the test, run on real tasks and in-memory channels, with results checked
// against references computed here.
#include "engine/runtime/local_executor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <stdexcept>

#include "engine/common/json.h"
#include "state/key_groups.h"
#include "tests/runtime/test_job.h"

namespace sluice::rt_test {
namespace {

#define ASSERT_OK(expr)                                  \
  do {                                                   \
    ::sluice::Status _st = (expr);                       \
    ASSERT_TRUE(_st.is_ok()) << _st.to_string();         \
  } while (0)

std::vector<Event> make_events(int n, int keys, int64_t t0 = 1'000, int64_t step = 10) {
  std::vector<Event> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(Event{"k" + std::to_string(i % keys), t0 + step * i, i});
  }
  return out;
}

template <class T>
std::vector<T> sorted(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v;
}

/// The subtask owning `key` among `parallelism`, from the key-group ranges.
int owner_of(const std::string& key, int32_t max_parallelism, int32_t parallelism) {
  KeyGroup kg = state::key_group_for_key(serialize(key), max_parallelism);
  for (int s = 0; s < parallelism; ++s)
    if (state::key_group_range_for_subtask(max_parallelism, parallelism, s).contains(kg)) return s;
  return -1;
}

// ---- topology -------------------------------------------------------------

TEST(LocalExecutor, BoundedSourceToSinkDeliversEveryRecordOnce) {
  auto events = make_events(3000, 17);
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("simple");
  auto& env = job.env();
  env.from_source<Event>(std::make_shared<VectorSource<Event>>(events), event_time(), "events")
      .sink_to(collect_into(out));
  ASSERT_OK(job.prepare(3));
  ASSERT_OK(job.run());
  EXPECT_EQ(sorted(out->values()), sorted(events));
  // Timestamps assigned by the strategy travel with the records.
  for (const auto& item : out->items()) EXPECT_EQ(item.ts, item.value.ts);
}

TEST(LocalExecutor, UnionOfTwoSourcesDeliversBoth) {
  auto a = make_events(1000, 5);
  std::vector<Event> b;
  for (int i = 0; i < 700; ++i) b.push_back(Event{"b" + std::to_string(i % 3), 50'000 + i, 10'000 + i});
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("union");
  auto& env = job.env();
  auto sa = env.from_source<Event>(std::make_shared<VectorSource<Event>>(a), event_time(), "a");
  auto sb = env.from_source<Event>(std::make_shared<VectorSource<Event>>(b), event_time(), "b");
  sa.union_with(sb).map([](const Event& e) { return e; }, "after union").sink_to(collect_into(out));
  ASSERT_OK(job.prepare(2));
  ASSERT_OK(job.run());
  std::vector<Event> expected = a;
  expected.insert(expected.end(), b.begin(), b.end());
  EXPECT_EQ(sorted(out->values()), sorted(expected));
}

/// (value, subtask of the operator that saw it)
struct Tagged {
  int64_t value = 0;
  int32_t subtask = 0;
  SLUICE_FIELDS(value, subtask)
  auto operator<=>(const Tagged&) const = default;
};

/// Tags each Event with the subtask index of this operator.
class TagSubtask final : public runtime::OneInputOperator<Event> {
 public:
  Status open() override {
    out_ = static_cast<runtime::Output<Tagged>*>(outputs().at(0));
    return Status::ok();
  }
  void process_element(const Event& v, EventTime ts) override {
    out_->collect(Tagged{v.value, context().info().subtask}, ts);
  }

 private:
  runtime::Output<Tagged>* out_ = nullptr;
};

api::DataStream<Tagged> tag_subtask(const api::DataStream<Event>& in) {
  return in.add_one_input<Tagged>("tag", "tag-subtask", [] { return std::make_unique<TagSubtask>(); });
}

TEST(LocalExecutor, RebalanceSpreadsRecordsEvenlyOverSubtasks) {
  constexpr int kN = 3000;
  auto events = make_events(kN, 1);
  auto out = std::make_shared<Collected<Tagged>>();
  TestJob job("rebalance");
  auto& env = job.env();
  auto src = env.from_source<Event>(std::make_shared<VectorSource<Event>>(events), event_time(), "events");
  src.set_parallelism(1);
  auto tagged = tag_subtask(src.rebalance());
  tagged.set_parallelism(3);
  tagged.sink_to(collect_into(out)).set_parallelism(3);
  ASSERT_OK(job.prepare(3));
  ASSERT_OK(job.run());
  std::map<int, int> per_subtask;
  std::set<int64_t> values;
  for (const auto& t : out->values()) {
    ++per_subtask[t.subtask];
    values.insert(t.value);
  }
  EXPECT_EQ(values.size(), static_cast<size_t>(kN)) << "every record arrives exactly once";
  EXPECT_EQ(out->size(), static_cast<size_t>(kN));
  // One producer dealing round-robin: exactly a third each.
  EXPECT_EQ(per_subtask, (std::map<int, int>{{0, kN / 3}, {1, kN / 3}, {2, kN / 3}}));
}

TEST(LocalExecutor, BroadcastDeliversEveryRecordToEverySubtask) {
  constexpr int kN = 500;
  auto events = make_events(kN, 4);
  auto out = std::make_shared<Collected<Tagged>>();
  TestJob job("broadcast");
  auto& env = job.env();
  auto src = env.from_source<Event>(std::make_shared<VectorSource<Event>>(events), event_time(), "events");
  src.set_parallelism(2);
  auto tagged = tag_subtask(src.broadcast());
  tagged.set_parallelism(3);
  tagged.sink_to(collect_into(out)).set_parallelism(3);
  ASSERT_OK(job.prepare(2));
  ASSERT_OK(job.run());
  std::vector<Tagged> expected;
  for (const auto& e : events)
    for (int s = 0; s < 3; ++s) expected.push_back(Tagged{e.value, s});
  EXPECT_EQ(sorted(out->values()), sorted(expected));
}

/// Counts records per key in keyed state and reports where it ran.
struct Seen {
  std::string key;
  int32_t subtask = 0;
  int64_t count = 0;  // records of this key so far, including this one
  int64_t value = 0;
  SLUICE_FIELDS(key, subtask, count, value)
};

class CountPerKey final : public basic::KeyedProcessFunction<std::string, Event, Seen> {
 public:
  void open(basic::RuntimeContext& ctx) override {
    subtask_ = ctx.subtask_index();
    count_ = ctx.get_state(state::ValueStateDescriptor<int64_t>{"count", {}});
  }
  void process_element(const Event& e, Context& ctx, basic::Collector<Seen>& out) override {
    int64_t n = count_->value_or(0) + 1;
    count_->update(n);
    out.collect(Seen{ctx.current_key(), subtask_, n, e.value});
  }

 private:
  int32_t subtask_ = 0;
  state::ValueState<int64_t>* count_ = nullptr;
};

TEST(LocalExecutor, KeyByRoutesEveryRecordOfAKeyToTheSubtaskOwningItsKeyGroup) {
  constexpr int kKeys = 41;
  auto events = make_events(4000, kKeys);
  auto out = std::make_shared<Collected<Seen>>();
  TestJob job("keyed");
  auto& env = job.env();
  auto src = env.from_source<Event>(std::make_shared<VectorSource<Event>>(events), event_time(), "events");
  src.set_parallelism(2);
  auto counted = src.key_by([](const Event& e) { return e.key; }).process(CountPerKey(), "count");
  counted.set_parallelism(3);
  counted.sink_to(collect_into(out)).set_parallelism(3);
  ASSERT_OK(job.prepare(2));
  ASSERT_OK(job.run());

  std::map<std::string, std::vector<int64_t>> expected_values;
  for (const auto& e : events) expected_values[e.key].push_back(e.value);

  std::map<std::string, std::set<int>> subtasks_of;
  std::map<std::string, std::vector<int64_t>> counts_of, values_of;
  for (const auto& s : out->values()) {
    subtasks_of[s.key].insert(s.subtask);
    counts_of[s.key].push_back(s.count);
    values_of[s.key].push_back(s.value);
  }
  ASSERT_EQ(subtasks_of.size(), expected_values.size());
  std::set<int> used;
  for (const auto& [key, values] : expected_values) {
    SCOPED_TRACE("key " + key);
    ASSERT_EQ(subtasks_of[key].size(), 1u) << "a key must be processed by one subtask";
    EXPECT_EQ(*subtasks_of[key].begin(), owner_of(key, 128, 3));
    used.insert(*subtasks_of[key].begin());
    EXPECT_EQ(sorted(values_of[key]), sorted(values));
    // The keyed counter saw every record of the key: 1, 2, ..., n.
    std::vector<int64_t> one_to_n(values.size());
    for (size_t i = 0; i < one_to_n.size(); ++i) one_to_n[i] = static_cast<int64_t>(i + 1);
    EXPECT_EQ(sorted(counts_of[key]), one_to_n);
  }
  EXPECT_EQ(used.size(), 3u) << "41 keys should reach every subtask";
}

/// Even values to the main output, odd ones (as text) to side output "odd".
class SplitOddEven final : public basic::KeyedProcessFunction<std::string, Event, Event> {
 public:
  void process_element(const Event& e, Context& ctx, basic::Collector<Event>& out) override {
    if (e.value % 2 == 0) out.collect(e);
    else ctx.output(basic::OutputTag<std::string>("odd"), e.key + ":" + std::to_string(e.value));
  }
};

TEST(LocalExecutor, SideOutputIsConsumedByAnotherVertex) {
  auto events = make_events(2000, 7);
  auto main_out = std::make_shared<Collected<Event>>();
  auto side_out = std::make_shared<Collected<std::string>>();
  TestJob job("side-output");
  auto& env = job.env();
  auto src = env.from_source<Event>(std::make_shared<VectorSource<Event>>(events), event_time(), "events");
  auto split = src.key_by([](const Event& e) { return e.key; }).process(SplitOddEven(), "split");
  split.set_parallelism(3);
  split.sink_to(collect_into(main_out)).set_parallelism(3);
  auto odd = split.get_side_output(basic::OutputTag<std::string>("odd"))
                 .map([](const std::string& s) { return "odd " + s; }, "label odd");
  odd.set_parallelism(2);
  odd.sink_to(collect_into(side_out)).set_parallelism(2);
  ASSERT_OK(job.prepare(2));

  // The side output crosses to a vertex of its own.
  bool side_edge = false;
  for (const auto& e : job.job_graph().edges()) side_edge |= e.tag() == "odd";
  EXPECT_TRUE(side_edge) << graph::describe_job_graph(job.job_graph());

  ASSERT_OK(job.run());
  std::vector<Event> expected_main;
  std::vector<std::string> expected_side;
  for (const auto& e : events) {
    if (e.value % 2 == 0) expected_main.push_back(e);
    else expected_side.push_back("odd " + e.key + ":" + std::to_string(e.value));
  }
  EXPECT_EQ(sorted(main_out->values()), sorted(expected_main));
  EXPECT_EQ(sorted(side_out->values()), sorted(expected_side));
}

TEST(LocalExecutor, ChainWithFanOutFeedsBothBranches) {
  auto events = make_events(2500, 9);
  auto doubled = std::make_shared<Collected<Event>>();
  auto labels = std::make_shared<Collected<std::string>>();
  TestJob job("fan-out");
  auto& env = job.env();
  auto src = env.from_source<Event>(std::make_shared<VectorSource<Event>>(events), event_time(), "events");
  auto twice = src.map([](Event e) { e.value *= 2; return e; }, "double");
  // One stream, two consumers.
  twice.filter([](const Event& e) { return e.value % 3 == 0; }, "multiples of 3")
      .sink_to(collect_into(doubled));
  twice.map([](const Event& e) { return e.key + "=" + std::to_string(e.value); }, "label")
      .sink_to(collect_into(labels), "labels");
  ASSERT_OK(job.prepare(2));
  ASSERT_EQ(job.job_graph().vertices_size(), 1)
      << "everything is forward at equal parallelism: one chain\n"
      << graph::describe_job_graph(job.job_graph());

  ASSERT_OK(job.run());
  std::vector<Event> expected_doubled;
  std::vector<std::string> expected_labels;
  for (Event e : events) {
    e.value *= 2;
    if (e.value % 3 == 0) expected_doubled.push_back(e);
    expected_labels.push_back(e.key + "=" + std::to_string(e.value));
  }
  EXPECT_EQ(sorted(doubled->values()), sorted(expected_doubled));
  EXPECT_EQ(sorted(labels->values()), sorted(expected_labels));
}

// ---- event time ---------------------------------------------------------------

bool has_record(const std::vector<ProbeLog::Entry>& es, const std::string& key) {
  return std::any_of(es.begin(), es.end(), [&](const auto& e) { return !e.is_watermark && e.key == key; });
}
bool has_watermark_at_least(const std::vector<ProbeLog::Entry>& es, int64_t wm) {
  return std::any_of(es.begin(), es.end(), [&](const auto& e) { return e.is_watermark && e.ts >= wm; });
}

// Source A reaches event time 10000 at once; B stays at 100 until released,
// then jumps to 20000. The operator after the union may only advance to the
// minimum of the two: 99 (B's), then 9999 (A's).
TEST(LocalExecutor, WatermarkAfterAUnionIsTheMinimumOverItsInputs) {
  std::atomic<bool> release_b{false}, finish{false};
  auto script_a = [&](ReaderCtx& c) -> Step<Event> {
    if (c.seq < 10) return Step<Event>::record(Event{"a", 1000 * (c.seq + 1), c.seq});
    if (c.seq == 10 && c.phase == 0) {
      c.phase = 1;
      return Step<Event>::yield();  // A's watermark 9999 goes out before the marker
    }
    if (c.seq == 10) return Step<Event>::record(Event{"a-marker", 10'000, -1});
    return finish.load() ? Step<Event>::end() : Step<Event>::nothing();
  };
  auto script_b = [&](ReaderCtx& c) -> Step<Event> {
    if (c.seq == 0) return Step<Event>::record(Event{"b", 100, 0});
    if (c.seq == 1 && c.phase == 0) {
      c.phase = 1;
      return Step<Event>::yield();
    }
    if (c.seq == 1) return Step<Event>::record(Event{"b-marker", 100, -1});
    if (!release_b.load()) return Step<Event>::nothing();
    if (c.seq == 2) return Step<Event>::record(Event{"b-late", 20'000, 1});
    if (c.seq == 3 && c.phase == 1) {
      c.phase = 2;
      return Step<Event>::yield();
    }
    if (c.seq == 3) return Step<Event>::record(Event{"b-marker-2", 20'000, -1});
    return finish.load() ? Step<Event>::end() : Step<Event>::nothing();
  };
  auto log = std::make_shared<ProbeLog>();
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("watermark-min");
  auto& env = job.env();
  auto a = env.from_source<Event>(std::make_shared<ScriptedSource<Event>>(script_a), event_time(), "a");
  auto b = env.from_source<Event>(std::make_shared<ScriptedSource<Event>>(script_b), event_time(), "b");
  probe(a.union_with(b), log).sink_to(collect_into(out));
  ASSERT_OK(job.prepare(1));
  job.start();

  // Both markers seen: A's 9999 and B's 99 were processed before them.
  bool seen = log->wait_until([](const auto& es) {
    return has_record(es, "a-marker") && has_record(es, "b-marker") && has_watermark_at_least(es, 99);
  });
  EXPECT_TRUE(seen) << "the probe did not see both sources";
  EXPECT_EQ(log->watermarks(), std::vector<int64_t>{99})
      << "held back by B at 99 although A is at 9999";

  release_b.store(true);
  seen = log->wait_until([](const auto& es) { return has_record(es, "b-marker-2"); });
  EXPECT_TRUE(seen);
  EXPECT_EQ(log->watermarks(), (std::vector<int64_t>{99, 9999}))
      << "B moved to 19999: the minimum is now A's 9999";

  finish.store(true);
  ASSERT_TRUE(job.wait()) << "the job did not end";
  ASSERT_OK(job.result());
  auto wms = log->watermarks();
  ASSERT_FALSE(wms.empty());
  EXPECT_EQ(wms.back(), EventTime::max().ms()) << "both inputs ended: the final watermark";
  EXPECT_TRUE(std::is_sorted(wms.begin(), wms.end())) << "watermarks never go back";
  EXPECT_EQ(out->size(), 15u);
}

// One reader with two splits: split 0 far ahead in event time, split 1
// behind. The source's watermark must follow the slower split.
TEST(LocalExecutor, SourceWatermarkIsTheMinimumOverItsSplits) {
  constexpr int64_t kAhead = 1'000'000;
  std::vector<Event> events;
  for (int i = 0; i < 3000; ++i) {
    // The VectorSource deals record k of a subtask to split k % 2.
    int64_t ts = i % 2 == 0 ? kAhead + i : i;
    events.push_back(Event{"k", ts, i});
  }
  auto log = std::make_shared<ProbeLog>();
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("split-min");
  auto& env = job.env();
  auto src = env.from_source<Event>(std::make_shared<VectorSource<Event>>(events, /*splits=*/2),
                                    event_time(), "two splits");
  probe(src, log).sink_to(collect_into(out));
  ASSERT_OK(job.prepare(1));
  ASSERT_OK(job.run());
  auto wms = log->watermarks();
  ASSERT_GE(wms.size(), 2u) << "event time should advance while reading, then end";
  EXPECT_EQ(wms.back(), EventTime::max().ms());
  for (size_t i = 0; i + 1 < wms.size(); ++i) {
    EXPECT_LT(wms[i], 3000) << "watermark " << wms[i] << " follows split 0 instead of the slower split 1";
    EXPECT_EQ(wms[i] % 2, 0) << "split 1 has odd timestamps: its watermarks (ts - 1) are even";
  }
  EXPECT_EQ(out->size(), events.size());
}

/// A paced endless stream on split 0 only (split 1 never has a record),
/// one record per poll with timestamps 1000, 2000, ...
ScriptedSource<Event>::Script split_zero_only(std::atomic<bool>& finish) {
  return [&finish](ReaderCtx& c) -> Step<Event> {
    if (finish.load()) return Step<Event>::end();
    if (c.phase == 0) {
      c.phase = 1;
      return Step<Event>::record(Event{"s0", 1000 * (c.seq + 1), c.seq}, /*split=*/0);
    }
    c.phase = 0;
    return Step<Event>::nothing();
  };
}

bool real_watermark(const std::vector<ProbeLog::Entry>& es) {
  return std::any_of(es.begin(), es.end(), [](const auto& e) {
    return e.is_watermark && e.ts != EventTime::min().ms() && e.ts != EventTime::max().ms();
  });
}

TEST(LocalExecutor, IdleSplitDoesNotHoldBackTheSourceWatermark) {
  std::atomic<bool> finish{false};
  auto stats = std::make_shared<SourceStats>();
  auto log = std::make_shared<ProbeLog>();
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("idle-split");
  auto& env = job.env();
  auto src = env.from_source<Event>(
      std::make_shared<ScriptedSource<Event>>(split_zero_only(finish), /*splits=*/2, stats),
      event_time().with_idleness(Duration(200)), "two splits");
  probe(src.rebalance(), log).sink_to(collect_into(out));
  ASSERT_OK(job.prepare(1));
  job.start();

  EXPECT_TRUE(log->wait_until(real_watermark))
      << "split 1 never has a record; once idle, split 0 alone must drive event time";
  finish.store(true);
  ASSERT_TRUE(job.wait()) << "the job did not end";
  ASSERT_OK(job.result());
  // The watermarks before the end follow split 0's records (ts - 1).
  int64_t max_ts = 1000 * stats->emitted.load();
  for (int64_t wm : log->watermarks()) {
    if (wm == EventTime::max().ms()) continue;
    EXPECT_LE(wm, max_ts - 1);
    EXPECT_EQ((wm + 1) % 1000, 0) << "a watermark of split 0's timestamps";
  }
}

// More source subtasks than splits (a Kafka topic with fewer partitions
// than the source's parallelism): a subtask without any split is idle once
// the idleness timeout passed, so that the others drive event time.
TEST(LocalExecutor, SourceSubtaskWithoutSplitsDoesNotHoldBackEventTime) {
  std::atomic<bool> finish{false};
  auto stats = std::make_shared<SourceStats>();
  auto log = std::make_shared<ProbeLog>();
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("splitless-subtask");
  auto& env = job.env();
  auto split_zero = split_zero_only(finish);
  auto script = [&finish, split_zero](ReaderCtx& c) -> Step<Event> {
    if (c.subtask == 0) return split_zero(c);
    return finish.load() ? Step<Event>::end() : Step<Event>::nothing();  // no split, no record
  };
  auto src = env.from_source<Event>(
      std::make_shared<ScriptedSource<Event>>(script, /*splits=*/1, stats,
                                              [](int subtask) { return subtask == 0 ? 1 : 0; }),
      event_time().with_idleness(Duration(200)), "one split, two subtasks");
  probe(src.rebalance(), log).sink_to(collect_into(out));
  ASSERT_OK(job.prepare(2));
  job.start();

  EXPECT_TRUE(log->wait_until(real_watermark))
      << "subtask 1 has no split; once idle, subtask 0 alone must drive event time";
  finish.store(true);
  ASSERT_TRUE(job.wait()) << "the job did not end";
  ASSERT_OK(job.result());
}

// The control for the test above: without idleness the empty split holds
// event time back for as long as the job runs.
TEST(LocalExecutor, EmptySplitWithoutIdlenessHoldsBackTheWatermark) {
  std::atomic<bool> finish{false};
  auto stats = std::make_shared<SourceStats>();
  auto log = std::make_shared<ProbeLog>();
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("no-idleness");
  auto& env = job.env();
  auto src = env.from_source<Event>(
      std::make_shared<ScriptedSource<Event>>(split_zero_only(finish), /*splits=*/2, stats),
      event_time(), "two splits");
  probe(src.rebalance(), log).sink_to(collect_into(out));
  ASSERT_OK(job.prepare(1));
  job.start();
  // Run for longer than the idleness timeout of the test above (300+ polls
  // at >= 1 ms each).
  ASSERT_TRUE(out->wait_for_size(300));
  EXPECT_FALSE(real_watermark(log->entries()));
  finish.store(true);
  ASSERT_TRUE(job.wait()) << "the job did not end";
  ASSERT_OK(job.result());
  EXPECT_EQ(log->watermarks(), std::vector<int64_t>{EventTime::max().ms()})
      << "only the final watermark";
}

TEST(LocalExecutor, IdleInputOfAUnionDoesNotHoldBackEventTime) {
  std::atomic<bool> finish{false};
  auto log = std::make_shared<ProbeLog>();
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("idle-input");
  auto& env = job.env();
  auto active = env.from_source<Event>(
      std::make_shared<ScriptedSource<Event>>(split_zero_only(finish), /*splits=*/1), event_time(),
      "active");
  auto silent_script = [&finish](ReaderCtx&) {
    return finish.load() ? Step<Event>::end() : Step<Event>::nothing();
  };
  auto silent = env.from_source<Event>(std::make_shared<ScriptedSource<Event>>(silent_script),
                                       event_time().with_idleness(Duration(200)), "silent");
  probe(active.union_with(silent), log).sink_to(collect_into(out));
  ASSERT_OK(job.prepare(1));
  job.start();
  EXPECT_TRUE(log->wait_until(real_watermark))
      << "the silent input is idle; the active one must drive event time";
  finish.store(true);
  ASSERT_TRUE(job.wait()) << "the job did not end";
  ASSERT_OK(job.result());
}

struct WindowCount {
  std::string key;
  int64_t start = 0;
  int64_t count = 0;
  SLUICE_FIELDS(key, start, count)
  auto operator<=>(const WindowCount&) const = default;
};

TEST(LocalExecutor, EndOfInputFiresPendingWindowsWithTheFinalWatermark) {
  // Out of order on purpose; with no watermarks, only the final one can
  // fire the windows.
  std::vector<Event> events;
  for (int i = 0; i < 3000; ++i) {
    int64_t ts = 10'000 + (i * 7919) % 20'000;
    events.push_back(Event{"k" + std::to_string(i % 13), ts, i});
  }
  auto out = std::make_shared<Collected<WindowCount>>();
  TestJob job("final-watermark");
  auto& env = job.env();
  auto strategy = runtime::WatermarkStrategy<Event>::no_watermarks().with_timestamp_assigner(
      [](const Event& e) { return e.ts; });
  auto src = env.from_source<Event>(std::make_shared<VectorSource<Event>>(events), strategy, "events");
  auto counts = src.key_by([](const Event& e) { return e.key; })
                    .window(window::TumblingEventTimeWindows::of(Duration(1000)))
                    .count([](const std::string& k, const window::TimeWindow& w, int64_t n) {
                      return WindowCount{k, w.start, n};
                    });
  counts.set_parallelism(3);
  counts.sink_to(collect_into(out)).set_parallelism(3);
  ASSERT_OK(job.prepare(2));
  ASSERT_OK(job.run());

  std::map<std::pair<std::string, int64_t>, int64_t> ref;
  for (const auto& e : events) ++ref[{e.key, e.ts / 1000 * 1000}];
  std::vector<WindowCount> expected;
  for (const auto& [kw, n] : ref) expected.push_back(WindowCount{kw.first, kw.second, n});
  EXPECT_EQ(sorted(out->values()), sorted(expected));
}

// ---- failures, dead letters, cancellation ----------------------------------------

TEST(LocalExecutor, UserFunctionThatThrowsFailsTheJobWithAStatusNamingTheOperator) {
  auto stats = std::make_shared<SourceStats>();
  auto endless = [](ReaderCtx& c) { return Step<Event>::record(Event{"k", c.seq, c.seq}); };
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("throws");
  auto& env = job.env();
  auto src = env.from_source<Event>(std::make_shared<ScriptedSource<Event>>(endless, 1, stats),
                                    event_time(), "endless");
  src.rebalance()
      .map(
          [](const Event& e) {
            if (e.value == 500) throw std::runtime_error("boom at 500");
            return e;
          },
          "exploding map")
      .sink_to(collect_into(out));
  ASSERT_OK(job.prepare(2));
  job.start();
  ASSERT_TRUE(job.wait()) << "a failed task must stop the job, unbounded source included";
  Status st = job.result();
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("exploding map"), std::string::npos) << st.to_string();
  EXPECT_NE(st.message().find("boom at 500"), std::string::npos) << st.to_string();
  for (const auto& e : out->values()) EXPECT_NE(e.value, 500) << "the failing record is not emitted";
}

// A map that throws on the k-th record of a source's poll batch stops its
// task at once (Flink: the exception ends the record loop): the rest of the
// batch and the watermark the batch moved never get past the map, so the
// operators behind it — a sink, a window about to fire, a metric — see
// nothing of input the restart replays. (Chained, so what the probe sees
// is exactly what left the map, with no race against the cancel.)
TEST(LocalExecutor, AFailingRecordStopsItsTaskBeforeTheRestOfTheBatchAndItsWatermark) {
  constexpr int64_t kFailAt = 10;  // well inside the first poll batch (64)
  auto endless = [](ReaderCtx& c) { return Step<Event>::record(Event{"k", 1'000 * (c.seq + 1), c.seq}); };
  auto log = std::make_shared<ProbeLog>();
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("fails-mid-batch");
  auto& env = job.env();
  auto src = env.from_source<Event>(std::make_shared<ScriptedSource<Event>>(endless), event_time(), "endless");
  auto mapped = src.map(
      [](const Event& e) {
        if (e.value == kFailAt) throw std::runtime_error("boom at the k-th record");
        return e;
      },
      "exploding map");
  probe(mapped, log).sink_to(collect_into(out));
  ASSERT_OK(job.prepare(1));
  ASSERT_EQ(job.job_graph().vertices_size(), 1) << "source, map, probe and sink chained in one task";
  job.start();
  ASSERT_TRUE(job.wait()) << "the failure ends the job";
  Status st = job.result();
  EXPECT_NE(st.message().find("boom at the k-th record"), std::string::npos) << st.to_string();
  std::vector<int64_t> seen;
  for (const auto& e : log->entries()) {
    EXPECT_FALSE(e.is_watermark) << "watermark " << e.ts << " left the failing task";
    if (!e.is_watermark) seen.push_back(e.ts / 1'000 - 1);
  }
  std::vector<int64_t> before(kFailAt);
  std::iota(before.begin(), before.end(), 0);
  EXPECT_EQ(seen, before) << "exactly the records before the failing one";
  EXPECT_LE(out->size(), static_cast<size_t>(kFailAt));
}

TEST(LocalExecutor, DeadLettersOfSourcesAndOperatorsReachTheDeadLetterSink) {
  auto events = make_events(1000, 5);
  auto out = std::make_shared<Collected<Event>>();
  auto dead = std::make_shared<Collected<DeadLetter>>();
  TestJob job("dead-letters");
  auto& env = job.env();
  env.set_dead_letter_sink(collect_into(dead));
  auto bad_at_source = [](const Event& e) { return e.value % 10 == 7; };
  auto src = env.from_source<Event>(std::make_shared<VectorSource<Event>>(events, 1, bad_at_source),
                                    event_time(), "numbers");
  src.map(
         [](const Event& e) {
           if (e.value % 10 == 3) throw InvalidRecord("value ends in 3");
           return e;
         },
         "validate")
      .sink_to(collect_into(out));
  ASSERT_OK(job.prepare(2));
  ASSERT_OK(job.run());

  std::vector<Event> expected_out;
  std::set<int64_t> expected_source_offsets;
  std::vector<std::string> expected_payloads;
  for (size_t i = 0; i < events.size(); ++i) {
    const Event& e = events[i];
    if (e.value % 10 == 7) expected_source_offsets.insert(static_cast<int64_t>(i));
    else if (e.value % 10 == 3) expected_payloads.push_back(to_json(e));
    else expected_out.push_back(e);
  }
  EXPECT_EQ(sorted(out->values()), sorted(expected_out));

  std::set<int64_t> source_offsets;
  std::vector<std::string> payloads;
  for (const auto& dl : dead->values()) {
    EXPECT_EQ(dl.job, "dead-letters");
    EXPECT_GT(dl.time_ms, 0);
    if (dl.operator_name == "numbers") {
      EXPECT_EQ(dl.origin, "vector");
      EXPECT_TRUE(source_offsets.insert(dl.offset).second) << "offset " << dl.offset << " twice";
    } else {
      EXPECT_EQ(dl.operator_name, "validate");
      EXPECT_EQ(dl.reason, "value ends in 3");
      EXPECT_EQ(dl.origin, "operator validate");
      payloads.push_back(dl.payload);
    }
  }
  EXPECT_EQ(source_offsets, expected_source_offsets);
  EXPECT_EQ(sorted(payloads), sorted(expected_payloads));
  EXPECT_EQ(job.executor().summary().dead_letters, expected_source_offsets.size() + expected_payloads.size());
}

TEST(LocalExecutor, CancelFromAnotherThreadStopsAJobWithAnUnboundedSource) {
  auto endless = [](ReaderCtx& c) { return Step<Event>::record(Event{"k", c.seq, c.seq}); };
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("cancel");
  auto& env = job.env();
  env.from_source<Event>(std::make_shared<ScriptedSource<Event>>(endless), event_time(), "endless")
      .rebalance()
      .map([](const Event& e) { return e; }, "identity")
      .sink_to(collect_into(out));
  ASSERT_OK(job.prepare(2));
  job.start();
  ASSERT_TRUE(out->wait_for_size(1000)) << "the job never got going";
  job.executor().cancel();  // from this thread, while run() is on another
  ASSERT_TRUE(job.wait()) << "cancel() must stop the job";
  Status st = job.result();
  EXPECT_EQ(st.code(), StatusCode::kCancelled) << st.to_string();
}

TEST(LocalExecutor, CancelStopsAJobWhoseSourceIsBlockedByBackpressure) {
  auto endless = [](ReaderCtx& c) { return Step<Event>::record(Event{"k", c.seq, c.seq}); };
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("cancel-blocked");
  auto& env = job.env();
  env.from_source<Event>(std::make_shared<ScriptedSource<Event>>(endless), event_time(), "endless")
      .rebalance()
      .sink_to(collect_into(out, std::chrono::milliseconds(2)), "very slow sink");
  ASSERT_OK(job.prepare(1));
  runtime::LocalRunOptions options;
  options.task.channel_capacity = 1;
  options.task.buffer_bytes = 64;
  job.start(options);
  // By now the source has long filled the one-buffer channel and waits.
  ASSERT_TRUE(out->wait_for_size(20)) << "the job never got going";
  job.executor().cancel();
  ASSERT_TRUE(job.wait()) << "a source blocked on a full channel must notice cancellation";
  EXPECT_EQ(job.result().code(), StatusCode::kCancelled);
}

// A fast source and a sink that takes ~100 us per record: the source must
// be held back by full channels (never more than their capacity queued),
// and nothing may be lost or reordered.
TEST(LocalExecutor, SlowSinkBackpressuresAFastSourceWithoutLosingRecords) {
  constexpr int64_t kN = 8000;
  constexpr size_t kCapacity = 2;
  auto stats = std::make_shared<SourceStats>();
  auto script = [](ReaderCtx& c) {
    return c.seq < kN ? Step<Event>::record(Event{"k", c.seq, c.seq}) : Step<Event>::end();
  };
  auto out = std::make_shared<Collected<Event>>();
  TestJob job("backpressure");
  auto& env = job.env();
  env.from_source<Event>(std::make_shared<ScriptedSource<Event>>(script, 1, stats), event_time(), "fast")
      .rebalance()
      .sink_to(collect_into(out, std::chrono::microseconds(100)), "slow sink");
  ASSERT_OK(job.prepare(1));
  runtime::LocalRunOptions options;
  options.task.channel_capacity = kCapacity;
  options.task.buffer_bytes = 128;  // a handful of records per buffer
  auto& executor = job.executor(options);
  job.start();

  ASSERT_TRUE(out->wait_for_size(1)) << "the job never got going";
  size_t max_queued = 0;
  int64_t max_in_flight = 0;
  while (stats->ended.load() == 0 && !job.wait(std::chrono::milliseconds(1))) {
    int64_t received = static_cast<int64_t>(out->size());
    size_t queued = executor.max_queued_buffers();
    int64_t emitted = stats->emitted.load();
    // End-of-stream markers may go past capacity by design: only count
    // samples taken while the source was still producing.
    if (stats->ended.load() != 0) break;
    max_queued = std::max(max_queued, queued);
    max_in_flight = std::max(max_in_flight, emitted - received);
  }
  ASSERT_TRUE(job.wait()) << "the job did not end";
  ASSERT_OK(job.result());

  EXPECT_LE(max_queued, kCapacity) << "a channel held more buffers than its capacity";
  EXPECT_EQ(max_queued, kCapacity) << "the slow sink should have filled the channel";
  // Without backpressure the source would be thousands of records ahead;
  // with it, only what fits in the pending buffer, the channel and the
  // buffer the sink is working on (~5 records per 128-byte buffer).
  EXPECT_LE(max_in_flight, 200) << "the source ran ahead of the slow sink";
  auto values = out->values();
  ASSERT_EQ(values.size(), static_cast<size_t>(kN));
  for (int64_t i = 0; i < kN; ++i) ASSERT_EQ(values[i].value, i) << "records lost or reordered";
}

}  // namespace
}  // namespace sluice::rt_test
