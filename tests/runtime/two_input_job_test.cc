// Two-input operators in real tasks on the LocalExecutor: the watermark
// valve feeds each input's watermark and the operator waits for the
// slower input; keyed co-process state and timers on the heap and RocksDB
// backends; connected streams of different parallelism and partitioning.
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

struct Balance {
  std::string user;
  int64_t ordered = 0;
  int64_t paid = 0;
  int64_t fired_at = 0;
  SLUICE_FIELDS(user, ordered, paid, fired_at)
  bool operator==(const Balance&) const = default;
  auto operator<=>(const Balance&) const = default;
};

constexpr int64_t kSettle = 10'000;  // every key's event-time timer

/// Input 1: orders, input 2: payments (Event.value = amount). Both sides
/// add to the key's state and set the same event-time timer, which reports
/// the key's totals: complete only if the timer waits for both inputs.
class Settle final : public join::KeyedCoProcessFunction<std::string, Event, Event, Balance> {
 public:
  void open(basic::RuntimeContext& rc) override {
    ordered_ = rc.get_state(state::ValueStateDescriptor<int64_t>{"ordered", {}});
    paid_ = rc.get_state(state::ValueStateDescriptor<int64_t>{"paid", {}});
  }
  void process_element1(const Event& e, Context& ctx, basic::Collector<Balance>&) override {
    ordered_->update(ordered_->value_or(0) + e.value);
    ctx.timer_service().register_event_time_timer(kSettle);
  }
  void process_element2(const Event& e, Context& ctx, basic::Collector<Balance>&) override {
    paid_->update(paid_->value_or(0) + e.value);
    ctx.timer_service().register_event_time_timer(kSettle);
  }
  void on_timer(int64_t ts, OnTimerContext& ctx, basic::Collector<Balance>& out) override {
    out.collect(Balance{ctx.current_key(), ordered_->value_or(0), paid_->value_or(0), ts});
  }

 private:
  state::ValueState<int64_t>* ordered_ = nullptr;
  state::ValueState<int64_t>* paid_ = nullptr;
};

TEST(TwoInputJobs, AKeyedCoProcessWaitsForTheSlowerInputAndKeepsStateOnBothBackends) {
  for (const char* backend : {"heap", "rocksdb"}) {
    SCOPED_TRACE(backend);
    std::string dir = std::filesystem::temp_directory_path().string() + "/sluice-2in-XXXXXX";
    ASSERT_NE(::mkdtemp(dir.data()), nullptr);
    std::vector<Event> orders;
    std::map<std::string, Balance> expected;
    for (int i = 0; i < 400; ++i) {
      Event e{"u" + std::to_string(i % 17), i * 10, i % 7 + 1};
      orders.push_back(e);
      expected[e.key].user = e.key;
      expected[e.key].ordered += e.value;
    }
    constexpr int kPayments = 300;
    for (int i = 0; i < kPayments; ++i) {
      std::string user = "u" + std::to_string(i % 19);
      expected[user].user = user;
      expected[user].paid += i % 5 + 1;
    }
    for (auto& [u, b] : expected) b.fired_at = kSettle;
    // Payments trickle in (one per poll with a pause between), long after
    // the orders source has ended and sent its final watermark.
    auto payments = [](ReaderCtx& c) {
      if (c.seq >= kPayments) return Step<Event>::end();
      if (c.phase++ % 2 == 0) return Step<Event>::nothing();
      int64_t i = c.seq;
      return Step<Event>::record(Event{"u" + std::to_string(i % 19), i * 10, i % 5 + 1});
    };
    auto out = std::make_shared<Collected<Balance>>();
    TestJob job(std::string("settle-") + backend);
    auto& env = job.env();
    env.config().set("state.backend", backend);
    env.config().set("state.rocksdb.local-dir", dir);
    auto a = env.from_source<Event>(std::make_shared<VectorSource<Event>>(orders), event_time(), "orders");
    a.set_parallelism(2);
    auto b = env.from_source<Event>(std::make_shared<ScriptedSource<Event>>(payments), event_time(),
                                    "payments");
    b.set_parallelism(1);
    a.connect(b)
        .key_by([](const Event& e) { return e.key; }, [](const Event& e) { return e.key; })
        .process(Settle{}, "settle")
        .sink_to(collect_into(out));
    ASSERT_TRUE(job.prepare(3).is_ok());
    Status st = job.run();
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    std::vector<Balance> got = out->values();
    std::sort(got.begin(), got.end());
    std::vector<Balance> want;
    for (const auto& [u, bal] : expected) want.push_back(bal);
    EXPECT_EQ(got, want) << "a timer fired before both inputs passed it, or state was lost";
    std::filesystem::remove_all(dir);
  }
}

/// Tags each record with its input and the subtask that saw it.
class Tagger final : public join::CoProcessFunction<Event, std::string, std::string> {
 public:
  void open(basic::RuntimeContext& rc) override { subtask_ = rc.subtask_index(); }
  void process_element1(const Event& e, Context&, basic::Collector<std::string>& out) override {
    out.collect("1:" + e.key + "@" + std::to_string(subtask_));
  }
  void process_element2(const std::string& s, Context&, basic::Collector<std::string>& out) override {
    out.collect("2:" + s + "@" + std::to_string(subtask_));
  }

 private:
  int subtask_ = 0;
};

TEST(TwoInputJobs, ConnectedStreamsKeepTheirOwnParallelismAndPartitioning) {
  std::vector<Event> events;
  for (int i = 0; i < 60; ++i) events.push_back(Event{"e" + std::to_string(i), i, i});
  std::vector<Event> controls;
  for (int i = 0; i < 5; ++i) controls.push_back(Event{"c" + std::to_string(i), i, i});
  auto out = std::make_shared<Collected<std::string>>();
  TestJob job("tagged");
  auto& env = job.env();
  auto a = env.from_source<Event>(std::make_shared<VectorSource<Event>>(events), event_time(), "events");
  a.set_parallelism(2);  // forward into 3 subtasks: rebalanced
  auto c = env.from_source<Event>(std::make_shared<VectorSource<Event>>(controls), event_time(), "controls")
               .map([](const Event& e) { return e.key; }, "names");
  a.connect(c.broadcast()).process(Tagger{}, "tag").set_parallelism(3).sink_to(collect_into(out));
  ASSERT_TRUE(job.prepare(1).is_ok());
  // The job graph: the co-process vertex has one rebalanced and one broadcast input.
  std::multiset<int> partitioners;
  const auto& jg = job.job_graph();
  for (const auto& v : jg.vertices()) {
    if (v.name().rfind("tag", 0) != 0) continue;
    for (const auto& e : jg.edges())
      if (e.target_vertex() == v.id()) partitioners.insert(e.partitioner());
  }
  EXPECT_EQ(partitioners, (std::multiset<int>{proto::PARTITIONER_REBALANCE, proto::PARTITIONER_BROADCAST}));
  ASSERT_TRUE(job.run().is_ok());

  std::map<std::string, std::set<std::string>> seen_by;  // record -> subtasks
  std::map<std::string, int> count;
  for (const auto& s : out->values()) {
    auto at = s.find('@');
    ++count[s.substr(0, at)];
    seen_by[s.substr(0, at)].insert(s.substr(at + 1));
  }
  for (const auto& e : events) EXPECT_EQ(count["1:" + e.key], 1) << e.key << " lost or duplicated";
  for (const auto& c : controls) {
    EXPECT_EQ(count["2:" + c.key], 3) << c.key;
    EXPECT_EQ(seen_by["2:" + c.key].size(), 3u) << c.key << " did not reach every subtask";
  }
  std::set<std::string> subtasks_of_events;
  for (const auto& e : events)
    for (const auto& s : seen_by["1:" + e.key]) subtasks_of_events.insert(s);
  EXPECT_EQ(subtasks_of_events.size(), 3u) << "rebalance should spread the events";
}

}  // namespace
}  // namespace sluice::rt_test
