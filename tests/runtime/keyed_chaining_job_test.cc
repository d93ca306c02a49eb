// Keyed streams reinterpreted without a shuffle (DataStream::reinterpret_as_keyed)
// in real tasks on the LocalExecutor: a keyed process, a second keyed
// process and a keyed broadcast process (its broadcast side from another
// task) chained into one task give exactly the results of the same job
// with hash exchanges, at several parallelisms and on both backends; a
// union of two chained edges into one input waits for the slower of them;
// a wrong declaration fails the task instead of placing state wrongly.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "engine/proto/jobgraph.pb.h"
#include "tests/runtime/test_job.h"

namespace sluice::rt_test {
namespace {

struct Factor {
  int64_t effective_ts = 0;
  int64_t factor = 1;
  SLUICE_FIELDS(effective_ts, factor)
};

constexpr int kKeys = 23;
constexpr int kEvents = 800;
constexpr int64_t kBound = 40;  // the events' disorder (and watermark bound)

const state::ValueStateDescriptor<std::vector<Event>>& seen_state() {
  static const state::ValueStateDescriptor<std::vector<Event>> d{"seen", {}};
  return d;
}

/// Keeps a key's records and sets a timer at each one's time; at a timer
/// emits, from the key's records up to that time, the sum of their values
/// (kSum) or 1000 x their count (kCount): deterministic whatever the
/// arrival order, as long as the watermark is right; its output trails
/// the watermark it is given.
class UpTo final : public basic::KeyedProcessFunction<std::string, Event, Event> {
 public:
  enum class What { kSum, kCount };
  explicit UpTo(What what) : what_(what) {}
  UpTo(const UpTo& o) : what_(o.what_) {}
  void open(basic::RuntimeContext& rc) override { seen_ = rc.get_state(seen_state()); }
  void process_element(const Event& e, Context& ctx, basic::Collector<Event>&) override {
    auto v = seen_->value_or({});
    v.push_back(e);
    seen_->update(v);
    ctx.timer_service().register_event_time_timer(e.ts);
  }
  void on_timer(int64_t ts, OnTimerContext& ctx, basic::Collector<Event>& out) override {
    int64_t r = 0;
    for (const Event& e : seen_->value_or({}))
      if (e.ts <= ts) r += what_ == What::kSum ? e.value : 1000;
    out.collect(Event{ctx.current_key(), ts, r});
  }

 private:
  What what_;
  state::ValueState<std::vector<Event>>* seen_ = nullptr;
};

inline const state::MapStateDescriptor<int64_t, int64_t> kFactors{"factors", {}};

/// Scales each record by the factor in effect at its time (broadcast
/// state), once the watermark passed it; a record at or behind the
/// watermark when it arrives comes out as "late:<key>".
class Scale final : public join::KeyedBroadcastProcessFunction<std::string, Event, Factor, Event> {
 public:
  void open(basic::RuntimeContext& rc) override { seen_ = rc.get_state(seen_state()); }
  void process_element(const Event& e, ReadOnlyContext& ctx, basic::Collector<Event>& out) override {
    if (e.ts <= ctx.timer_service().current_watermark()) {
      out.collect(Event{"late:" + e.key, e.ts, e.value});
      return;
    }
    auto v = seen_->value_or({});
    v.push_back(e);
    seen_->update(v);
    ctx.timer_service().register_event_time_timer(e.ts);
  }
  void process_broadcast_element(const Factor& f, Context& ctx, basic::Collector<Event>&) override {
    ctx.get_broadcast_state(kFactors).put(f.effective_ts, f.factor);
  }
  void on_timer(int64_t ts, OnTimerContext& ctx, basic::Collector<Event>& out) override {
    int64_t factor = 1, at = INT64_MIN;
    for (const auto& [eff, f] : ctx.get_broadcast_state(kFactors).entries()) {
      if (eff <= ts && eff >= at) factor = f, at = eff;
    }
    auto v = seen_->value_or({});
    std::vector<Event> rest;
    for (const Event& e : v) {
      if (e.ts <= ts) out.collect(Event{e.key, e.ts, e.value * factor});
      else rest.push_back(e);
    }
    seen_->update(rest);
  }

 private:
  state::ValueState<std::vector<Event>>* seen_ = nullptr;
};

struct Outcome {
  std::vector<Event> out;
  proto::JobGraph graph;
};

/// totals -> counts, and totals -> copy; both into scale (with the factors
/// broadcast from a source of parallelism 1). `reinterpret`: counts and
/// scale take their input as keyed (forward edges, one chain); otherwise
/// they key it again (hash edges).
Outcome run_job(bool reinterpret, int parallelism, const char* backend, const std::string& dir) {
  std::vector<Event> events;
  for (int i = 0; i < kEvents; ++i) {
    // Event time goes up by 3 per record with up to kBound of disorder.
    const int64_t ts = 1000 + 3 * i + (i * 7919) % kBound;
    events.push_back(Event{"k" + std::to_string((i * 31) % kKeys), ts, i % 11 + 1});
  }
  std::vector<Factor> factors{{1000, 2}, {2000, 3}, {3500, 5}, {5000, 7}};
  auto collected = std::make_shared<Collected<Event>>();
  TestJob job(std::string("keyed-chain-") + (reinterpret ? "forward" : "hash") + "-" + backend);
  auto& env = job.env();
  env.config().set("state.backend", backend);
  env.config().set("state.rocksdb.local-dir", dir);
  auto by_key = [](const Event& e) { return e.key; };
  auto totals = env.from_source<Event>(std::make_shared<VectorSource<Event>>(events), event_time(Duration(kBound)),
                                       "events")
                    .key_by(by_key)
                    .process(UpTo(UpTo::What::kSum), "totals");
  // The copy's edge is made first: it gets each watermark before counts
  // has fired the timers that watermark passes.
  auto copy = totals.map([](const Event& e) { return e; }, "copy");
  auto counts = (reinterpret ? totals.reinterpret_as_keyed(by_key) : totals.key_by(by_key)).process(UpTo(UpTo::What::kCount), "counts");
  auto rules = env.from_source<Factor>(std::make_shared<VectorSource<Factor>>(factors),
                                       runtime::WatermarkStrategy<Factor>::for_bounded_out_of_orderness(Duration(0))
                                           .with_timestamp_assigner([](const Factor& f) { return f.effective_ts; }),
                                       "factors");
  rules.set_parallelism(1);
  auto both = copy.union_with(counts);
  (reinterpret ? both.reinterpret_as_keyed(by_key) : both.key_by(by_key))
      .connect(rules.broadcast(kFactors))
      .process(Scale{}, "scale")
      .sink_to(collect_into(collected), "out");
  Status st = job.prepare(parallelism);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  if (!st.is_ok()) return {};
  st = job.run();
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  Outcome r{collected->values(), job.job_graph()};
  std::sort(r.out.begin(), r.out.end());
  return r;
}

const proto::JobVertex* vertex_with(const proto::JobGraph& jg, const std::string& op) {
  for (const auto& v : jg.vertices())
    for (const auto& o : v.operators())
      if (o.name() == op) return &v;
  return nullptr;
}

TEST(KeyedChaining, AReinterpretedKeyedStreamChainsAndGivesTheResultsOfTheShuffledJob) {
  std::string dir = std::filesystem::temp_directory_path().string() + "/sluice-keyed-chain-XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  for (const auto& [backend, p] : std::vector<std::pair<const char*, int>>{{"heap", 1}, {"heap", 3}, {"rocksdb", 2}}) {
    {
      SCOPED_TRACE(std::string(backend) + " p" + std::to_string(p));
      Outcome hash = run_job(false, p, backend, dir);
      Outcome fwd = run_job(true, p, backend, dir);
      // The shuffled job: totals, counts and scale each start a task.
      EXPECT_NE(vertex_with(hash.graph, "totals"), vertex_with(hash.graph, "counts"));
      EXPECT_NE(vertex_with(hash.graph, "totals"), vertex_with(hash.graph, "scale"));
      // Reinterpreted: one task; the factors come into it over a broadcast
      // edge to scale's second input, nothing else crosses a task boundary.
      const proto::JobVertex* v = vertex_with(fwd.graph, "totals");
      ASSERT_NE(v, nullptr);
      EXPECT_EQ(v, vertex_with(fwd.graph, "counts"));
      EXPECT_EQ(v, vertex_with(fwd.graph, "scale"));
      EXPECT_EQ(v, vertex_with(fwd.graph, "out"));
      int into = 0;
      for (const auto& e : fwd.graph.edges()) {
        if (e.target_vertex() != v->id() || e.dead_letter()) continue;
        ++into;
        if (e.partitioner() == proto::PARTITIONER_BROADCAST) {
          EXPECT_EQ(e.target_node(), v->operators(v->operators_size() - 2).node_id()) << "scale";
          EXPECT_EQ(e.input_index(), 1);
        } else {
          EXPECT_EQ(e.partitioner(), proto::PARTITIONER_HASH) << "events -> totals";
        }
      }
      EXPECT_EQ(into, 2);
      // Per key, one total and one count per distinct record time, each scaled.
      std::map<std::string, std::set<int64_t>> times;
      for (int i = 0; i < kEvents; ++i) times["k" + std::to_string((i * 31) % kKeys)].insert(1000 + 3 * i + (i * 7919) % kBound);
      size_t want = 0;
      for (const auto& [k, t] : times) want += 2 * t.size();
      EXPECT_EQ(hash.out.size(), want);
      EXPECT_EQ(fwd.out, hash.out) << "chained results differ from the shuffled job's";
      for (const Event& e : fwd.out) ASSERT_EQ(e.key.rfind("late:", 0), std::string::npos) << to_string(e);
    }
  }
  std::filesystem::remove_all(dir);
}

/// Emits its records under another key: its output is not partitioned by key.
class Rekey final : public basic::KeyedProcessFunction<std::string, Event, Event> {
 public:
  void process_element(const Event& e, Context&, basic::Collector<Event>& out) override {
    out.collect(Event{e.key + "-moved", e.ts, e.value});
  }
};

TEST(KeyedChaining, AWrongDeclarationFailsTheTaskInsteadOfPlacingStateWrongly) {
  std::vector<Event> events;
  for (int i = 0; i < 200; ++i) events.push_back(Event{"k" + std::to_string(i % 40), i, 1});
  auto collected = std::make_shared<Collected<Event>>();
  TestJob job("keyed-chain-wrong");
  auto& env = job.env();
  auto by_key = [](const Event& e) { return e.key; };
  env.from_source<Event>(std::make_shared<VectorSource<Event>>(events), event_time(), "events")
      .key_by(by_key)
      .process(Rekey{}, "rekey")
      .reinterpret_as_keyed(by_key)
      .process(UpTo(UpTo::What::kCount), "counts")
      .sink_to(collect_into(collected), "out");
  ASSERT_TRUE(job.prepare(2).is_ok());
  EXPECT_EQ(vertex_with(job.job_graph(), "rekey"), vertex_with(job.job_graph(), "counts"));
  Status st = job.run();
  ASSERT_FALSE(st.is_ok()) << "records of other subtasks' key groups were accepted";
  EXPECT_NE(st.to_string().find("key group"), std::string::npos) << st.to_string();
}

}  // namespace
}  // namespace sluice::rt_test
