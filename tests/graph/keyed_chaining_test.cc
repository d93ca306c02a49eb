// Keyed streams reinterpreted without a shuffle (DataStream::reinterpret_as_keyed)
// and the chaining of operators with an input from another task: the edge
// is forward only where the graph proves the records are already on the
// subtask of their key group (from keyed operators of the same parallelism
// and max parallelism, over forward edges); everywhere else it stays a
// hash edge.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/api/datastream.h"
#include "tests/graph/graph_test_util.h"

namespace sluice::graph {
namespace {

using namespace sluice::graph_test;

auto by_user = [](const Event& e) { return e.user; };

const state::MapStateDescriptor<std::string, int64_t>& limits() {
  static const state::MapStateDescriptor<std::string, int64_t> d{"limits", {}};
  return d;
}

class Check final : public join::KeyedBroadcastProcessFunction<std::string, Event, Event, Event> {
 public:
  void process_element(const Event& e, ReadOnlyContext&, basic::Collector<Event>& out) override { out.collect(e); }
  void process_broadcast_element(const Event&, Context&, basic::Collector<Event>&) override {}
};

class Both final : public join::CoProcessFunction<Event, Event, Event> {
 public:
  void process_element1(const Event& e, Context&, basic::Collector<Event>& out) override { out.collect(e); }
  void process_element2(const Event& e, Context&, basic::Collector<Event>& out) override { out.collect(e); }
};

/// The partitioner of the one data edge from operator `from` to operator `to`.
proto::Partitioner edge(const proto::JobGraph& jg, const StreamGraph& g, const std::string& from,
                        const std::string& to) {
  int n = 0;
  proto::Partitioner p = proto::PARTITIONER_REBALANCE;
  for (const auto& e : data_edges(jg)) {
    if (g.node(e.source_node()).name == from && g.node(e.target_node()).name == to) {
      p = e.partitioner();
      ++n;
    }
  }
  EXPECT_EQ(n, 1) << from << " -> " << to << " is not one job edge";
  return p;
}

TEST(KeyedChainingGraph, AKeyedOperatorsOutputReinterpretedChainsTheNextKeyedOperator) {
  Job job;
  job.source()
      .key_by(by_user)
      .process(PassThrough(), "first")
      .reinterpret_as_keyed(by_user)
      .process(PassThrough(), "second")
      .sink_to(Job::sink<Event>(), "out");
  auto jg = job.build(3);
  EXPECT_EQ(chains(jg), (Chains{{"events"}, {"first", "second", "out"}}));
  ASSERT_EQ(data_edges(jg).size(), 1u);
  EXPECT_EQ(data_edges(jg)[0].partitioner(), proto::PARTITIONER_HASH) << "events -> first";
  EXPECT_TRUE(vertex_of(jg, "second").operators(1).keyed());
}

TEST(KeyedChainingGraph, ForwardEdgesOfEqualParallelismInBetweenKeepThePartitioning) {
  Job job;
  job.source()
      .key_by(by_user)
      .process(PassThrough(), "first")
      .map([](const Event& e) { return e; }, "copy")
      .filter([](const Event& e) { return e.value >= 0; }, "valid")
      .reinterpret_as_keyed(by_user)
      .process(PassThrough(), "second")
      .sink_to(Job::sink<Event>(), "out");
  auto jg = job.build(2);
  EXPECT_EQ(chains(jg), (Chains{{"events"}, {"first", "copy", "valid", "second", "out"}}));
}

TEST(KeyedChainingGraph, ASourceReinterpretedAsKeyedStaysAHashEdge) {
  Job job;
  job.source().reinterpret_as_keyed(by_user).process(PassThrough(), "keyed").sink_to(Job::sink<Event>(), "out");
  auto jg = job.build(2);
  EXPECT_EQ(chains(jg), (Chains{{"events"}, {"keyed", "out"}}));
  EXPECT_EQ(edge(jg, job.graph, "events", "keyed"), proto::PARTITIONER_HASH);
}

TEST(KeyedChainingGraph, ARebalanceOnTheWayStaysAHashEdge) {
  Job job;
  job.source()
      .key_by(by_user)
      .process(PassThrough(), "first")
      .rebalance()
      .map([](const Event& e) { return e; }, "spread")
      .reinterpret_as_keyed(by_user)
      .process(PassThrough(), "second")
      .sink_to(Job::sink<Event>(), "out");
  auto jg = job.build(2);
  EXPECT_EQ(edge(jg, job.graph, "spread", "second"), proto::PARTITIONER_HASH);
  EXPECT_NE(vertex_of(jg, "spread").id(), vertex_of(jg, "second").id());
}

TEST(KeyedChainingGraph, AnotherParallelismOrMaxParallelismStaysAHashEdge) {
  for (int variant : {0, 1, 2}) {
    SCOPED_TRACE(variant);
    Job job;
    auto first = job.source().key_by(by_user).process(PassThrough(), "first");
    auto second = first.reinterpret_as_keyed(by_user).process(PassThrough(), "second");
    if (variant == 0) second.set_parallelism(3);      // 2 -> 3 subtasks: other key groups per subtask
    if (variant == 1) second.set_max_parallelism(64);  // the same key, another key group
    if (variant == 2) first.set_max_parallelism(64);
    second.sink_to(Job::sink<Event>(), "out");
    auto jg = job.build(2);
    EXPECT_EQ(edge(jg, job.graph, "first", "second"), proto::PARTITIONER_HASH);
    EXPECT_NE(vertex_of(jg, "first").id(), vertex_of(jg, "second").id());
  }
}

TEST(KeyedChainingGraph, AUnionIsForwardOnlyWhereEachSideIsPartitioned) {
  // Both sides from keyed operators: forward, one chain.
  {
    Job job;
    auto first = job.source("a").key_by(by_user).process(PassThrough(), "first");
    auto copy = first.map([](const Event& e) { return e; }, "copy");
    copy.union_with(first).reinterpret_as_keyed(by_user).process(PassThrough(), "both").sink_to(Job::sink<Event>(), "out");
    auto jg = job.build(2);
    EXPECT_EQ(chains(jg), (Chains{{"a"}, {"first", "copy", "both", "out"}}));
  }
  // One side straight from a source: that side is hashed; the other side
  // stays forward (its records are in place) but the input is fed from
  // other tasks, so it is not chained.
  {
    Job job;
    auto first = job.source("a").key_by(by_user).process(PassThrough(), "first");
    auto raw = job.source("b");
    first.union_with(raw).reinterpret_as_keyed(by_user).process(PassThrough(), "both").sink_to(Job::sink<Event>(), "out");
    auto jg = job.build(2);
    EXPECT_EQ(edge(jg, job.graph, "b", "both"), proto::PARTITIONER_HASH);
    EXPECT_EQ(edge(jg, job.graph, "first", "both"), proto::PARTITIONER_FORWARD);
    EXPECT_NE(vertex_of(jg, "first").id(), vertex_of(jg, "both").id());
  }
}

/// events -> first (keyed) -> check (keyed broadcast, rules broadcast from
/// a source of parallelism 1) -> out; check's input reinterpreted or keyed again.
void rules_job(Job& job, bool reinterpret) {
  auto rules = job.source("rules");
  rules.set_parallelism(1);
  auto first = job.source("events").key_by(by_user).process(PassThrough(), "first");
  (reinterpret ? first.reinterpret_as_keyed(by_user) : first.key_by(by_user))
      .connect(rules.broadcast(limits()))
      .process(Check(), "check")
      .sink_to(Job::sink<Event>(), "out");
}

TEST(KeyedChainingGraph, AKeyedBroadcastProcessChainsWithItsBroadcastSideFromAnotherTask) {
  Job job;
  rules_job(job, true);
  auto jg = job.build(2);
  EXPECT_EQ(chains(jg), (Chains{{"rules"}, {"events"}, {"first", "check", "out"}}));
  const auto& v = vertex_of(jg, "check");
  int broadcast = 0;
  for (const auto& e : data_edges(jg)) {
    if (e.partitioner() != proto::PARTITIONER_BROADCAST) continue;
    ++broadcast;
    EXPECT_EQ(e.target_vertex(), v.id());
    EXPECT_EQ(e.target_node(), v.operators(1).node_id()) << "the chained check, not the head";
    EXPECT_EQ(e.input_index(), 1);
  }
  EXPECT_EQ(broadcast, 1);
  // Keyed again instead of reinterpreted: a hash edge and a task of its own.
  Job hashed;
  rules_job(hashed, false);
  EXPECT_EQ(chains(hashed.build(2)), (Chains{{"rules"}, {"events"}, {"first"}, {"check", "out"}}));
}

TEST(KeyedChainingGraph, AnInputFromAnotherTaskNeverChainsIntoASourceTask) {
  Job job;
  auto a = job.source("a");
  auto b = job.source("b");
  a.connect(b).process(Both(), "co").sink_to(Job::sink<Event>(), "out");
  auto jg = job.build(2);
  EXPECT_EQ(vertex_of(jg, "a").operators_size(), 1) << "a source task reads no channels";
  EXPECT_NE(vertex_of(jg, "co").id(), vertex_of(jg, "a").id());
}

TEST(KeyedChainingGraph, TheGraphHashTellsAReinterpretedStreamFromAShuffledOne) {
  auto build = [](bool reinterpret) {
    Job job;
    auto first = job.source().key_by(by_user).process(PassThrough(), "first");
    (reinterpret ? first.reinterpret_as_keyed(by_user) : first.key_by(by_user))
        .process(PassThrough(), "second")
        .sink_to(Job::sink<Event>(), "out");
    return job.build(2).hash();
  };
  EXPECT_EQ(build(true), build(true));
  EXPECT_NE(build(true), build(false));
}

}  // namespace
}  // namespace sluice::graph
