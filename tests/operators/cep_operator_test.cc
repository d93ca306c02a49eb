// The CEP operator in the operator harness: event-time buffering and late
// records, processing time, timeouts and trailing negations on timers,
// side outputs, dead letters, caps, snapshot/restore mid-match and
// rescaling, metrics.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/common/metrics.h"
#include "operators/cep/cep_operator.h"
#include "state/checkpoint_storage.h"
#include "tests/connectors/file/temp_dir.h"
#include "tests/harness/operator_harness.h"
#include "tests/operators/cep_test_support.h"

namespace sluice::cep::testing {
namespace {

using harness::HarnessOptions;
using harness::OneInputOperatorHarness;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using P = Pattern<Ev>;
using Harness = OneInputOperatorHarness<Ev, std::string>;
class Render;
using Op = cep::CepOperator<std::string, Ev, std::string, Render>;

/// Renders matches ("key| a:1 b:2") and timed-out matches to side output "timeouts-text".
class Render final : public PatternProcessFunction<Ev, std::string> {
 public:
  void process_match(const Match<Ev>& m, Context& ctx, basic::Collector<std::string>& out) override {
    out.collect(m.steps.front().second.front().key + "| " + render(m));
  }
  void process_timed_out_match(const Match<Ev>& m, Context& ctx) override {
    ctx.output(basic::OutputTag<std::string>("timeouts-text"), render(m) + " @" + std::to_string(ctx.timestamp()));
  }
};

Ev kev(std::string key, int64_t id, std::string kind, int64_t val = 0) { return Ev{id, std::move(kind), val, std::move(key)}; }

std::unique_ptr<runtime::StreamOperator> make_op(const P& p, CepOptions o = {}) {
  auto ks = std::make_shared<const runtime::KeySelector<Ev, std::string>>(
      std::function<std::string(const Ev&)>([](const Ev& e) { return e.key; }));
  return std::make_unique<Op>(ks, CompiledPattern<Ev>::compile(p), o,
                                                                             Render());
}

/// Every test runs on the heap and on RocksDB.
class CepOperatorTest : public ::testing::TestWithParam<state::BackendKind> {
 protected:
  HarnessOptions opts(int32_t parallelism = 1, int32_t subtask = 0) {
    HarnessOptions h = HarnessOptions::keyed_subtask(parallelism, subtask);
    h.backend = GetParam();
    return h;
  }
  std::unique_ptr<Harness> open_harness(const P& p, CepOptions o = {}) { return open_with(p, o, opts()); }
  std::unique_ptr<Harness> open_with(const P& p, CepOptions o, HarnessOptions h);
  file_test::TempDir dir_;
};

std::unique_ptr<Harness> CepOperatorTest::open_with(const P& p, CepOptions o, HarnessOptions h) {
  auto harness = std::make_unique<Harness>(make_op(p, o), h);
  harness->register_side_output<std::string>("timeouts-text");
  harness->register_side_output<Ev>("late");
  harness->register_side_output<TimedOutMatch<Ev>>("timed-out");
  EXPECT_TRUE(harness->open().is_ok());
  return harness;
}

P a_then_b() { return P::begin("a").where(is("a")).followed_by("b").where(is("b")); }

TEST_P(CepOperatorTest, EventTimeProcessesRecordsInTimestampOrderAsTheWatermarkPasses) {
  auto h = open_harness(a_then_b());
  h->process_element(kev("k", 2, "b"), 20);  // arrives first, happened after a
  h->process_element(kev("k", 1, "a"), 10);
  EXPECT_EQ(h->output().record_count(), 0u) << "nothing before the watermark";
  h->process_watermark(19);
  EXPECT_EQ(h->output().record_count(), 0u);
  h->process_watermark(20);
  EXPECT_THAT(h->output().values(), ElementsAre("k| a:1 b:2"));
  EXPECT_EQ(h->output().records().back().ts, EventTime(20));
}

TEST_P(CepOperatorTest, KeysMatchIndependently) {
  auto h = open_harness(a_then_b());
  h->process_element(kev("x", 1, "a"), 10);
  h->process_element(kev("y", 2, "b"), 11);
  h->process_element(kev("y", 3, "a"), 12);
  h->process_element(kev("x", 4, "b"), 13);
  h->process_watermark(100);
  EXPECT_THAT(h->output().values(), ElementsAre("x| a:1 b:4"));
}

TEST_P(CepOperatorTest, LateRecordsGoToTheSideOutputOrDeadLetters) {
  CepOptions o;
  o.late_tag = "late";
  auto h = open_harness(a_then_b(), o);
  h->process_watermark(50);
  h->process_element(kev("k", 1, "a"), 50);
  EXPECT_THAT(h->captured_side_output<Ev>("late").records().size(), 1u);
  auto d = open_harness(a_then_b());
  d->process_watermark(50);
  d->process_element(kev("k", 1, "a"), 40);
  ASSERT_EQ(d->dead_letters().size(), 1u);
  EXPECT_THAT(d->dead_letters()[0].reason, ::testing::HasSubstr("late record"));
}

TEST_P(CepOperatorTest, TimeoutsFireWhenTheWatermarkPassesTheDeadline) {
  CepOptions o;
  o.timed_out_tag = "timed-out";
  auto h = open_harness(a_then_b().within(Duration(30)), o);
  h->process_element(kev("k", 1, "a"), 10);
  h->process_watermark(38);
  EXPECT_THAT(h->captured_side_output<std::string>("timeouts-text").values(), IsEmpty());
  h->process_watermark(39);
  EXPECT_THAT(h->captured_side_output<std::string>("timeouts-text").values(), ElementsAre("a:1 @39"));
  auto timed_out = h->captured_side_output<TimedOutMatch<Ev>>("timed-out").values();
  ASSERT_EQ(timed_out.size(), 1u);
  EXPECT_EQ(timed_out[0].timeout_timestamp, 39);
  EXPECT_EQ(timed_out[0].match["a"].front().id, 1);
}

TEST_P(CepOperatorTest, TrailingNotFollowedByCompletesOnTheWatermark) {
  auto p = P::begin("a").where(is("a")).not_followed_by("x").where(is("x")).within(Duration(100));
  auto h = open_harness(p);
  h->process_element(kev("k", 1, "a"), 10);
  h->process_element(kev("k", 2, "a"), 20);
  h->process_element(kev("k", 3, "x"), 115);  // too late for a1's window, inside a2's
  h->process_watermark(200);
  EXPECT_THAT(h->output().values(), ElementsAre("k| a:1"));
  EXPECT_EQ(h->output().records()[0].ts, EventTime(109));
}

TEST_P(CepOperatorTest, ProcessingTimeMatchesOnArrivalAndTimesOutOnTheClock) {
  CepOptions o;
  o.time = TimeMode::kProcessingTime;
  HarnessOptions ho = opts();
  ho.start_processing_time = 1000;
  auto h = open_with(a_then_b().within(Duration(50)), o, ho);
  h->process_element(kev("k", 1, "a"), EventTime::min());
  h->advance_processing_time(10);
  h->process_element(kev("k", 2, "b"), EventTime::min());
  EXPECT_THAT(h->output().values(), ElementsAre("k| a:1 b:2"));
  h->process_element(kev("k", 3, "a"), EventTime::min());
  h->advance_processing_time(49);
  EXPECT_THAT(h->captured_side_output<std::string>("timeouts-text").values(), IsEmpty());
  h->advance_processing_time(1);
  EXPECT_THAT(h->captured_side_output<std::string>("timeouts-text").values(), ElementsAre("a:3 @1059"));
}

TEST_P(CepOperatorTest, SnapshotMidMatchAndRestoreContinuesTheMatch) {
  auto p = a_then_b().within(Duration(1000));
  auto h = open_harness(p);
  h->process_element(kev("k", 1, "a"), 10);
  h->process_element(kev("j", 2, "a"), 11);
  h->process_watermark(15);  // a1 processed: a partial match now
  h->process_element(kev("k", 3, "b"), 30);  // still buffered at the snapshot
  auto snap = h->snapshot();
  auto r = Harness::restored(make_op(p), opts(), snap);
  r->register_side_output<std::string>("timeouts-text");
  ASSERT_TRUE(r->open().is_ok());
  r->process_element(kev("j", 4, "b"), 40);
  r->process_watermark(50);
  EXPECT_THAT(r->output().values(), ElementsAre("k| a:1 b:3", "j| a:2 b:4"));
  auto& op = dynamic_cast<Op&>(r->op());
  EXPECT_EQ(op.stats().partial_matches, 0);
}

// The task goes on while the snapshot's asynchronous part runs: what the
// operator does after the barrier — matches that free partial matches, new
// partial matches, keys written back by a tiny state cache — must not
// reach the snapshot, which restores exactly the state at the barrier.
TEST_P(CepOperatorTest, RecordsAfterTheBarrierDoNotReachItsSnapshot) {
  auto p = a_then_b().within(Duration(1000));
  CepOptions small;
  small.state_cache_entries = 3;  // keys leave the cache (written back) all the time
  auto h = open_with(p, small, opts());
  auto key = [](int i) { return "k" + std::to_string(i); };
  for (int i = 0; i < 10; ++i) h->process_element(kev(key(i), i, "a"), 10 + i);
  h->process_watermark(50);
  // The barrier: the synchronous parts only, as the task runs them.
  state::CheckpointStorage storage(dir_.path(), "job");
  auto op_part = h->op().snapshot_state_async(CheckpointId(1));
  ASSERT_TRUE(op_part.is_ok()) << op_part.status().to_string();
  auto keyed_part = h->keyed_backend()->snapshot(CheckpointId(1), storage.target(1, false, "cep"));
  ASSERT_TRUE(keyed_part.is_ok()) << keyed_part.status().to_string();
  // After it: k0..k4 match (their partial matches go), k10..k14 start ones.
  for (int i = 0; i < 5; ++i) h->process_element(kev(key(i), 100 + i, "b"), 60);
  for (int i = 10; i < 15; ++i) h->process_element(kev(key(i), i, "a"), 61);
  h->process_watermark(100);
  EXPECT_EQ(h->output().values().size(), 5u);
  // Now the snapshot thread's part.
  auto op_state = runtime::complete_inline(std::move(op_part));
  ASSERT_TRUE(op_state.is_ok()) << op_state.status().to_string();
  auto handle = (*keyed_part)();
  ASSERT_TRUE(handle.is_ok()) << handle.status().to_string();
  harness::OperatorSnapshot snap;
  snap.max_parallelism = opts().max_parallelism;
  snap.parallelism = 1;
  snap.operator_states.emplace(0, std::move(*op_state));
  snap.keyed_handles.push_back(std::move(*handle));
  snap.keyed_dir = storage.job_dir();
  auto r = Harness::restored(make_op(p, small), opts(), snap);
  r->register_side_output<std::string>("timeouts-text");
  ASSERT_TRUE(r->open().is_ok());
  for (int i = 0; i < 15; ++i) r->process_element(kev(key(i), 200 + i, "b"), 200);
  r->process_watermark(300);
  std::vector<std::string> want;
  for (int i = 0; i < 10; ++i) want.push_back(key(i) + "| a:" + std::to_string(i) + " b:" + std::to_string(200 + i));
  std::vector<std::string> got = r->output().values();
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want) << "the restored state is not the barrier's";
  EXPECT_EQ(dynamic_cast<Op&>(r->op()).stats().partial_matches, 0);
}

TEST_P(CepOperatorTest, RestoreAtAnotherParallelismKeepsEveryKeysPartialMatches) {
  auto p = a_then_b().within(Duration(1000));
  auto h = open_harness(p);
  std::vector<std::string> keys;
  for (int i = 0; i < 20; ++i) keys.push_back("key" + std::to_string(i));
  for (int i = 0; i < 20; ++i) h->process_element(kev(keys[i], i, "a"), 10 + i);
  h->process_watermark(100);
  auto snap = h->snapshot();
  std::vector<std::string> got;
  int64_t live = 0;
  for (int sub = 0; sub < 3; ++sub) {
    auto r = Harness::restored(make_op(p), opts(3, sub), snap);
    r->register_side_output<std::string>("timeouts-text");
    ASSERT_TRUE(r->open().is_ok());
    live += dynamic_cast<Op&>(r->op()).stats().partial_matches;
    for (int i = 0; i < 20; ++i) {
      if (harness::subtask_for_key(keys[i], 3) == sub) r->process_element(kev(keys[i], 100 + i, "b"), 200);
    }
    r->process_watermark(300);
    for (auto& v : r->output().values()) got.push_back(v);
  }
  EXPECT_EQ(live, 20) << "the restored gauges sum to the snapshot's partial matches";
  EXPECT_EQ(got.size(), 20u);
}

TEST_P(CepOperatorTest, CapSendsTheOldestPartialMatchToDeadLetters) {
  CepOptions o;
  o.max_partial_matches = 2;
  auto h = open_harness(a_then_b(), o);
  for (int i = 1; i <= 4; ++i) h->process_element(kev("k", i, "a"), 10 * i);
  h->process_watermark(100);
  ASSERT_EQ(h->dead_letters().size(), 2u);
  EXPECT_THAT(h->dead_letters()[0].reason, ::testing::HasSubstr("partial matches"));
  EXPECT_THAT(h->dead_letters()[0].payload, ::testing::HasSubstr("\"id\":1"));
  auto& op = dynamic_cast<Op&>(h->op());
  EXPECT_EQ(op.stats().partial_matches, 2);
  EXPECT_EQ(op.stats().dropped, 2u);
}

TEST_P(CepOperatorTest, CapWithFailPolicyFailsTheTask) {
  CepOptions o;
  o.max_partial_matches = 1;
  o.policy = NfaLimits::Policy::kFail;
  auto h = open_harness(a_then_b(), o);
  h->process_element(kev("k", 1, "a"), 10);
  h->process_element(kev("k", 2, "a"), 20);
  h->process_watermark(100);
  ASSERT_FALSE(h->failures().empty());
  EXPECT_THAT(h->failures()[0].to_string(), ::testing::HasSubstr("partial matches"));
}

TEST_P(CepOperatorTest, RecordsNoConditionAcceptsAreNotBuffered) {
  auto h = open_harness(a_then_b());
  for (int i = 0; i < 10; ++i) h->process_element(kev("k", i, "zzz"), 10 + i);
  auto& op = dynamic_cast<Op&>(h->op());
  EXPECT_EQ(op.stats().skipped, 10u);
  EXPECT_EQ(op.stats().buffered, 0);
}

TEST_P(CepOperatorTest, ConditionThatRejectsARecordSendsItToDeadLettersAndKeepsState) {
  auto p = P::begin("a").where(is("a")).followed_by("b").where([](const Ev& e, const MatchContext<Ev>&) {
    if (e.kind == "bad") throw InvalidRecord("bad record");
    return e.kind == "b";
  });
  auto h = open_harness(p);
  h->process_element(kev("k", 1, "a"), 10);
  h->process_element(kev("k", 2, "bad"), 20);
  h->process_element(kev("k", 3, "b"), 30);
  h->process_watermark(100);
  ASSERT_EQ(h->dead_letters().size(), 1u);
  EXPECT_THAT(h->output().values(), ElementsAre("k| a:1 b:3"));
  EXPECT_TRUE(h->failures().empty());
}

TEST_P(CepOperatorTest, RecordsBeyondTheBufferBoundGoToDeadLettersWhileTheWatermarkStalls) {
  CepOptions o;
  o.max_buffered = 3;
  auto h = open_harness(a_then_b(), o);
  for (int i = 1; i <= 5; ++i) h->process_element(kev("k", i, "a"), 10 * i);
  h->process_element(kev("other", 6, "a"), 60);  // another key has its own bound
  ASSERT_EQ(h->dead_letters().size(), 2u);
  EXPECT_THAT(h->dead_letters()[0].reason, ::testing::HasSubstr("waiting for the watermark"));
  h->process_element(kev("k", 7, "b"), 70);
  EXPECT_EQ(h->dead_letters().size(), 3u);
  h->process_watermark(100);
  EXPECT_THAT(h->output().values(), ElementsAre());  // b was dropped: nothing completes
  h->process_element(kev("k", 8, "b"), 110);  // room again once the watermark passed
  h->process_watermark(200);
  EXPECT_THAT(h->output().values(), ElementsAre("k| a:1 b:8", "k| a:2 b:8", "k| a:3 b:8"));
}

TEST_P(CepOperatorTest, RecordWithoutTimestampInEventTimeIsADeadLetter) {
  auto h = open_harness(a_then_b());
  h->process_element(kev("k", 1, "a"), EventTime::min());
  ASSERT_EQ(h->dead_letters().size(), 1u);
  EXPECT_THAT(h->dead_letters()[0].reason, ::testing::HasSubstr("no event timestamp"));
}

class Rejecting final : public PatternProcessFunction<Ev, std::string> {
 public:
  void process_match(const Match<Ev>& m, Context&, basic::Collector<std::string>& out) override {
    if (m["a"].front().id == 1) throw InvalidRecord("not this one");
    out.collect(render(m));
  }
};

TEST_P(CepOperatorTest, MatchTheFunctionRejectsIsADeadLetter) {
  auto ks = std::make_shared<const runtime::KeySelector<Ev, std::string>>(
      std::function<std::string(const Ev&)>([](const Ev& e) { return e.key; }));
  Harness h(std::make_unique<cep::CepOperator<std::string, Ev, std::string, Rejecting>>(
                ks, CompiledPattern<Ev>::compile(a_then_b()), CepOptions{}, Rejecting()),
            opts());
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(kev("k", 1, "a"), 10);
  h.process_element(kev("k", 2, "a"), 20);
  h.process_element(kev("k", 3, "b"), 30);
  h.process_watermark(100);
  EXPECT_THAT(h.output().values(), ElementsAre("a:2 b:3"));
  ASSERT_EQ(h.dead_letters().size(), 1u);
  EXPECT_THAT(h.dead_letters()[0].reason, ::testing::HasSubstr("match rejected: not this one"));
  EXPECT_TRUE(h.failures().empty());
}

double gauge(const std::string& family, const std::string& op) {
  for (const auto& f : metrics::registry().Collect()) {
    if (f.name != family) continue;
    for (const auto& m : f.metric) {
      for (const auto& l : m.label)
        if (l.name == "operator" && l.value == op) return f.type == prometheus::MetricType::Gauge ? m.gauge.value : m.counter.value;
    }
  }
  return -1;
}

TEST_P(CepOperatorTest, MetricsCountMatchesTimeoutsAndWhatIsHeld) {
  HarnessOptions ho = opts();
  ho.operator_name = "cep-metrics-" + std::string(state::backend_kind_name(GetParam()));
  auto h = open_with(a_then_b().within(Duration(100)), {}, ho);
  h->process_element(kev("k", 1, "a"), 10);
  h->process_element(kev("k", 2, "b"), 20);
  h->process_element(kev("j", 3, "a"), 30);
  h->process_element(kev("j", 4, "a"), 40);
  h->process_element(kev("x", 5, "a"), 500);
  h->process_watermark(200);  // k matched; j's two partial matches timed out; x still buffered
  h->snapshot();             // publishes
  const std::string op = ho.operator_name;
  EXPECT_EQ(gauge("sluice_cep_matches_total", op), 1);
  EXPECT_EQ(gauge("sluice_cep_timeouts_total", op), 2);
  EXPECT_EQ(gauge("sluice_cep_partial_matches", op), 0);
  EXPECT_EQ(gauge("sluice_cep_buffered_events", op), 1);
  h->process_watermark(500);
  h->snapshot();
  EXPECT_EQ(gauge("sluice_cep_partial_matches", op), 1);
  EXPECT_EQ(gauge("sluice_cep_shared_buffer_events", op), 1);
  EXPECT_EQ(gauge("sluice_cep_buffered_events", op), 0);
  h.reset();
  EXPECT_EQ(gauge("sluice_cep_partial_matches", op), -1) << "the series goes with the operator";
}

/// Matches only, as select() builds: nobody reads timed-out partial matches.
class MatchesOnly final : public PatternProcessFunction<Ev, std::string> {
 public:
  void process_match(const Match<Ev>& m, Context&, basic::Collector<std::string>& out) override {
    out.collect(render(m));
  }
};

TEST_P(CepOperatorTest, TimedOutMatchesNobodyReadsAreCountedAndFreedWithoutBeingRead) {
  using Quiet = cep::CepOperator<std::string, Ev, std::string, MatchesOnly>;
  static_assert(!Quiet::kOverridesTimedOut && Op::kOverridesTimedOut);
  auto ks = std::make_shared<const runtime::KeySelector<Ev, std::string>>(
      std::function<std::string(const Ev&)>([](const Ev& e) { return e.key; }));
  auto op = std::make_unique<Quiet>(ks, CompiledPattern<Ev>::compile(a_then_b().within(Duration(100))), CepOptions{},
                                    MatchesOnly());
  Quiet* quiet = op.get();
  Harness h(std::move(op), opts());
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(kev("k", 1, "a"), 10);
  h.process_element(kev("k", 2, "b"), 20);
  h.process_element(kev("j", 3, "a"), 30);
  h.process_element(kev("j", 4, "a"), 40);
  h.process_element(kev("j", 5, "c"), 60);
  h.process_watermark(100);
  EXPECT_EQ(quiet->stats().partial_matches, 2);
  EXPECT_EQ(quiet->stats().shared_events, 2);
  auto snap = h.snapshot();  // the two partial matches of j reach keyed state
  h.process_watermark(200);  // ... and time out
  EXPECT_THAT(h.output().values(), ElementsAre("a:1 b:2"));
  EXPECT_EQ(quiet->stats().timeouts, 2u);
  EXPECT_EQ(quiet->stats().partial_matches, 0);
  EXPECT_EQ(quiet->stats().shared_events, 0) << "their events are released";
  EXPECT_TRUE(h.failures().empty());
  EXPECT_TRUE(h.dead_letters().empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, CepOperatorTest,
                         ::testing::Values(state::BackendKind::kHeap, state::BackendKind::kRocksDB),
                         [](const auto& info) { return std::string(state::backend_kind_name(info.param)); });

}  // namespace
}  // namespace sluice::cep::testing
