// StreamGraph -> JobGraph (engine/graph/job_graph_builder.h) on graphs
// built with the DataStream API.
#include "engine/graph/job_graph_builder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/api/datastream.h"
#include "tests/graph/graph_test_util.h"

namespace sluice::graph {
namespace {

using namespace sluice::graph_test;


// ============================================================================
// Chaining

TEST(JobGraphChaining, ForwardEdgesOfEqualParallelismChainIntoOneVertex) {
  Job job;
  job.source()
      .map([](const Event& e) { return e.value; }, "to-value")
      .filter([](const int64_t& v) { return v > 0; }, "positive")
      .sink_to(Job::sink<int64_t>(), "out");
  auto jg = job.build(3);
  EXPECT_EQ(chains(jg), (Chains{{"events", "to-value", "positive", "out"}}));
  ASSERT_EQ(jg.vertices_size(), 1);
  EXPECT_EQ(jg.vertices(0).parallelism(), 3);
  EXPECT_EQ(jg.vertices(0).name(), "events -> to-value -> positive -> out");
  EXPECT_TRUE(jg.vertices(0).is_source());
  EXPECT_EQ(jg.edges_size(), 0);
}

TEST(JobGraphChaining, KeyByBreaksTheChainWithAHashEdge) {
  Job job;
  auto mapped = job.source().map([](const Event& e) { return e; }, "clean");
  mapped.key_by([](const Event& e) { return e.user; })
      .process(PassThrough(), "per-user")
      .sink_to(Job::sink<Event>(), "out");
  auto jg = job.build();
  EXPECT_EQ(chains(jg), (Chains{{"events", "clean"}, {"per-user", "out"}}));
  auto edges = data_edges(jg);
  ASSERT_EQ(edges.size(), 1u);
  EXPECT_EQ(edges[0].source_vertex(), 0);
  EXPECT_EQ(edges[0].target_vertex(), 1);
  EXPECT_EQ(edges[0].partitioner(), proto::PARTITIONER_HASH);
  EXPECT_EQ(edges[0].source_node(), mapped.node_id()) << "the producing operator inside the chain";
  EXPECT_EQ(edges[0].target_node(), vertex_of(jg, "per-user").operators(0).node_id());
  EXPECT_TRUE(vertex_of(jg, "per-user").operators(0).keyed());
  EXPECT_FALSE(vertex_of(jg, "clean").operators(1).keyed());
}

TEST(JobGraphChaining, RebalanceBreaksTheChain) {
  Job job;
  job.source().rebalance().map([](const Event& e) { return e.value; }, "m")
      .sink_to(Job::sink<int64_t>(), "out");
  auto jg = job.build();
  EXPECT_EQ(chains(jg), (Chains{{"events"}, {"m", "out"}}));
  ASSERT_EQ(jg.edges_size(), 1);
  EXPECT_EQ(jg.edges(0).partitioner(), proto::PARTITIONER_REBALANCE);
}

TEST(JobGraphChaining, BroadcastBreaksTheChain) {
  Job job;
  job.source().broadcast().map([](const Event& e) { return e.value; }, "m")
      .sink_to(Job::sink<int64_t>(), "out");
  auto jg = job.build();
  EXPECT_EQ(chains(jg), (Chains{{"events"}, {"m", "out"}}));
  ASSERT_EQ(jg.edges_size(), 1);
  EXPECT_EQ(jg.edges(0).partitioner(), proto::PARTITIONER_BROADCAST);
}

TEST(JobGraphChaining, RebalanceIntoTheSinkBreaksTheChain) {
  Job job;
  job.source().map([](const Event& e) { return e.value; }, "m").rebalance()
      .sink_to(Job::sink<int64_t>(), "out");
  auto jg = job.build();
  EXPECT_EQ(chains(jg), (Chains{{"events", "m"}, {"out"}}));
  ASSERT_EQ(jg.edges_size(), 1);
  EXPECT_EQ(jg.edges(0).partitioner(), proto::PARTITIONER_REBALANCE);
}

TEST(JobGraphChaining, DifferentParallelismTurnsForwardIntoRebalance) {
  Job job2;
  auto src = job2.source();
  src.set_parallelism(1);
  auto m = src.map([](const Event& e) { return e.value; }, "m");
  m.set_parallelism(3);
  m.sink_to(Job::sink<int64_t>(), "out").set_parallelism(3);
  auto jg = job2.build(2);
  EXPECT_EQ(chains(jg), (Chains{{"events"}, {"m", "out"}}));
  EXPECT_EQ(vertex_of(jg, "events").parallelism(), 1);
  EXPECT_EQ(vertex_of(jg, "m").parallelism(), 3);
  ASSERT_EQ(jg.edges_size(), 1);
  EXPECT_EQ(jg.edges(0).partitioner(), proto::PARTITIONER_REBALANCE);
}

TEST(JobGraphChaining, OperatorsWithoutParallelismUseTheDefault) {
  Job job;
  auto m = job.source().map([](const Event& e) { return e.value; }, "m");
  m.set_parallelism(2);
  m.sink_to(Job::sink<int64_t>(), "out");
  auto jg = job.build(2);
  EXPECT_EQ(chains(jg), (Chains{{"events", "m", "out"}})) << "explicit 2 equals the default 2";
  auto jg4 = [] {
    Job j;
    auto mm = j.source().map([](const Event& e) { return e.value; }, "m");
    mm.set_parallelism(2);
    mm.sink_to(Job::sink<int64_t>(), "out");
    return j.build(4);
  }();
  EXPECT_EQ(chains(jg4), (Chains{{"events"}, {"m"}, {"out"}}));
  EXPECT_EQ(vertex_of(jg4, "events").parallelism(), 4);
  EXPECT_EQ(vertex_of(jg4, "m").parallelism(), 2);
  EXPECT_EQ(vertex_of(jg4, "out").parallelism(), 4);
  EXPECT_EQ(jg4.default_parallelism(), 4);
}

TEST(JobGraphChaining, DisableChainingRunsTheOperatorInATaskOfItsOwn) {
  Job job;
  job.source()
      .map([](const Event& e) { return e.value; }, "alone")
      .disable_chaining()
      .filter([](const int64_t& v) { return v != 0; }, "f")
      .sink_to(Job::sink<int64_t>(), "out");
  auto jg = job.build();
  EXPECT_EQ(chains(jg), (Chains{{"events"}, {"alone"}, {"f", "out"}}));
  // Not chained, but still forward: the parallelism is equal.
  for (const auto& e : jg.edges()) EXPECT_EQ(e.partitioner(), proto::PARTITIONER_FORWARD);
  EXPECT_EQ(jg.edges_size(), 2);
}

TEST(JobGraphChaining, StartNewChainBeginsAChainThatSuccessorsJoin) {
  Job job;
  job.source()
      .map([](const Event& e) { return e.value; }, "a")
      .filter([](const int64_t& v) { return v != 0; }, "head")
      .start_new_chain()
      .map([](const int64_t& v) { return v * 2; }, "b")
      .sink_to(Job::sink<int64_t>(), "out");
  auto jg = job.build();
  EXPECT_EQ(chains(jg), (Chains{{"events", "a"}, {"head", "b", "out"}}));
  ASSERT_EQ(jg.edges_size(), 1);
  EXPECT_EQ(jg.edges(0).partitioner(), proto::PARTITIONER_FORWARD);
}

TEST(JobGraphChaining, AnOperatorWithTwoInputsStartsAVertex) {
  Job job;
  auto a = job.source("a");
  auto b = job.source("b");
  a.union_with(b).map([](const Event& e) { return e.value; }, "m")
      .sink_to(Job::sink<int64_t>(), "out");
  auto jg = job.build();
  EXPECT_EQ(chains(jg), (Chains{{"a"}, {"b"}, {"m", "out"}}));
  std::set<int> sources;
  for (const auto& e : data_edges(jg)) {
    EXPECT_EQ(e.target_vertex(), vertex_of(jg, "m").id());
    sources.insert(e.source_vertex());
  }
  EXPECT_EQ(sources, (std::set<int>{vertex_of(jg, "a").id(), vertex_of(jg, "b").id()}));
}

TEST(JobGraphChaining, SourcesNeverChainIntoAnotherVertex) {
  Job job;
  auto a = job.source("a");
  a.sink_to(Job::sink<Event>(), "out-a");
  auto b = job.source("b");
  b.sink_to(Job::sink<Event>(), "out-b");
  auto jg = job.build();
  EXPECT_EQ(chains(jg), (Chains{{"a", "out-a"}, {"b", "out-b"}}));
  for (const auto& v : jg.vertices()) EXPECT_TRUE(v.is_source());
}

TEST(JobGraphChaining, FanOutOfForwardEdgesChainsEveryBranch) {
  Job job;
  auto src = job.source();
  src.map([](const Event& e) { return e.value; }, "left").sink_to(Job::sink<int64_t>(), "l-out");
  src.map([](const Event& e) { return e.user; }, "right")
      .sink_to(Job::sink<std::string>(), "r-out");
  auto jg = job.build();
  ASSERT_EQ(jg.vertices_size(), 1);
  EXPECT_EQ(op_names(jg.vertices(0)),
            (std::vector<std::string>{"events", "left", "l-out", "right", "r-out"}));
  EXPECT_EQ(jg.edges_size(), 0);
}

TEST(JobGraphChaining, SideOutputEdgesCarryTheirTag) {
  Job job;
  basic::OutputTag<Event> late("late");
  auto keyed = job.source().key_by([](const Event& e) { return e.user; }).process(PassThrough(), "p");
  keyed.sink_to(Job::sink<Event>(), "main-out");
  auto side = keyed.get_side_output(late);
  side.rebalance().sink_to(Job::sink<Event>(), "late-out");
  auto jg = job.build();
  const auto& late_vertex = vertex_of(jg, "late-out");
  bool found = false;
  for (const auto& e : data_edges(jg)) {
    if (e.target_vertex() != late_vertex.id()) continue;
    found = true;
    EXPECT_EQ(e.tag(), "late");
    EXPECT_EQ(e.source_vertex(), vertex_of(jg, "p").id());
    EXPECT_EQ(e.partitioner(), proto::PARTITIONER_REBALANCE);
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(op_names(vertex_of(jg, "p")), (std::vector<std::string>{"p", "main-out"}));
}

TEST(JobGraphChaining, RecordsTypesOfEveryOperator) {
  Job job;
  job.source().map([](const Event& e) { return e.value; }, "m").sink_to(Job::sink<int64_t>(), "out");
  auto jg = job.build();
  ASSERT_EQ(jg.vertices_size(), 1);
  const auto& ops = jg.vertices(0).operators();
  ASSERT_EQ(ops.size(), 3);
  EXPECT_EQ(ops[0].input_type(), "") << "a source has no input";
  EXPECT_EQ(ops[0].output_type(), type_name<Event>());
  EXPECT_EQ(ops[1].input_type(), type_name<Event>());
  EXPECT_EQ(ops[1].output_type(), type_name<int64_t>());
  EXPECT_EQ(ops[2].input_type(), type_name<int64_t>());
  EXPECT_EQ(ops[2].output_type(), "") << "a sink has no output";
}

TEST(JobGraphChaining, MaxParallelismComesFromTheJobOrTheOperator) {
  Job job;
  job.env.set_max_parallelism(256);
  auto keyed = job.source().key_by([](const Event& e) { return e.user; }).process(PassThrough(), "p");
  keyed.set_max_parallelism(64);
  keyed.sink_to(Job::sink<Event>(), "out");
  auto jg = job.build();
  EXPECT_EQ(jg.max_parallelism(), 256);
  EXPECT_EQ(vertex_of(jg, "events").max_parallelism(), 256);
  EXPECT_EQ(vertex_of(jg, "p").max_parallelism(), 64);
}

// ============================================================================
// Uids

void build_sample(Job& job) {
  auto src = job.source();
  src.map([](const Event& e) { return e; }, "Clean Up!")
      .map([](const Event& e) { return e; }, "Clean Up!")  // same name twice
      .key_by([](const Event& e) { return e.user; })
      .process(PassThrough(), "per user")
      .sink_to(Job::sink<Event>(), "out");
}

std::vector<std::string> uids(const proto::JobGraph& jg) {
  std::vector<std::string> out;
  for (const auto& v : jg.vertices())
    for (const auto& op : v.operators()) out.push_back(op.uid());
  return out;
}

TEST(JobGraphUids, GeneratedUidsAreUniqueAndNonEmpty) {
  Job job;
  build_sample(job);
  auto jg = job.build();
  auto u = uids(jg);
  ASSERT_EQ(u.size(), 5u);
  std::set<std::string> distinct(u.begin(), u.end());
  EXPECT_EQ(distinct.size(), u.size()) << "two operators share a uid";
  for (const auto& s : u) EXPECT_FALSE(s.empty());
}

TEST(JobGraphUids, GeneratedUidsAreStableAcrossBuilds) {
  Job a, b;
  build_sample(a);
  build_sample(b);
  EXPECT_EQ(uids(a.build()), uids(b.build()));
  // ... and do not depend on the parallelism.
  Job c;
  build_sample(c);
  EXPECT_EQ(uids(a.build(2)), uids(c.build(5)));
}

TEST(JobGraphUids, GeneratedUidsAreWrittenBackToTheStreamGraph) {
  Job job;
  build_sample(job);
  auto jg = job.build();
  for (const auto& v : jg.vertices()) {
    for (const auto& op : v.operators()) {
      EXPECT_EQ(job.graph.node(op.node_id()).uid, op.uid());
    }
  }
}

TEST(JobGraphUids, GeneratedUidsUseOnlyFileNameSafeCharacters) {
  Job job;
  build_sample(job);
  auto jg = job.build();
  for (const auto& u : uids(jg)) {
    for (char c : u) {
      EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')
          << "uid '" << u << "' has '" << c << "'";
    }
  }
}

TEST(JobGraphUids, UserUidsAreKept) {
  Job job;
  auto src = job.source();
  src.uid("click-source");
  auto m = src.map([](const Event& e) { return e.value; }, "m");
  m.uid("value-of-click");
  m.sink_to(Job::sink<int64_t>(), "out").uid("the-sink");
  auto jg = job.build();
  EXPECT_EQ(uids(jg), (std::vector<std::string>{"click-source", "value-of-click", "the-sink"}));
}

TEST(JobGraphUids, AUserUidDoesNotChangeOtherOperatorsUids) {
  Job a;
  build_sample(a);
  auto before = uids(a.build());

  Job b;
  auto src = b.source();
  src.uid("my-source");
  src.map([](const Event& e) { return e; }, "Clean Up!")
      .map([](const Event& e) { return e; }, "Clean Up!")
      .key_by([](const Event& e) { return e.user; })
      .process(PassThrough(), "per user")
      .sink_to(Job::sink<Event>(), "out");
  auto after = uids(b.build());
  ASSERT_EQ(before.size(), after.size());
  EXPECT_EQ(after[0], "my-source");
  for (size_t i = 1; i < before.size(); ++i) EXPECT_EQ(before[i], after[i]);
}

TEST(JobGraphUids, DuplicateUserUidIsAnError) {
  Job job;
  auto src = job.source();
  src.uid("dup");
  auto m = src.map([](const Event& e) { return e.value; }, "m");
  m.uid("dup");
  m.sink_to(Job::sink<int64_t>(), "out");
  Status st = job.build_error();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(has(st, "'dup'")) << st.message();
  EXPECT_TRUE(has(st, "unique")) << st.message();
}

// BUG: generated uids are not checked against the uids the user chose: a
// user uid that happens to equal the uid generated for another operator
// fails the build with "uid '...' is used by two operators", although the
// user set it only once.
TEST(JobGraphUids, BugGeneratedUidsAvoidUidsChosenByTheUser) {
  std::string generated;
  {
    Job probe;
    auto m = probe.source().map([](const Event& e) { return e.value; }, "m");
    m.sink_to(Job::sink<int64_t>(), "out");
    auto jg = probe.build();
    generated = vertex_of(jg, "m").operators(1).uid();
  }
  Job job;
  auto src = job.source();
  src.uid(generated);  // the user picks, for the source, what "m" would get
  src.map([](const Event& e) { return e.value; }, "m").sink_to(Job::sink<int64_t>(), "out");
  JobGraphOptions o;
  auto r = build_job_graph(job.graph, o);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  auto u = uids(*r);
  EXPECT_EQ(std::set<std::string>(u.begin(), u.end()).size(), u.size());
}

// ============================================================================
// Graph hash

using BuildFn = std::function<void(Job&)>;

std::string hash_of(const BuildFn& fn, int parallelism = 2) {
  Job job;
  fn(job);
  return job.build(parallelism).hash();
}

void pipeline(Job& job) {
  job.source()
      .map([](const Event& e) { return e.value; }, "m")
      .rebalance()
      .filter([](const int64_t& v) { return v > 0; }, "f")
      .sink_to(Job::sink<int64_t>(), "out");
}

TEST(JobGraphHash, IsIdenticalForIdenticalBuilds) {
  std::string h1 = hash_of(pipeline);
  std::string h2 = hash_of(pipeline);
  EXPECT_EQ(h1, h2);
  EXPECT_EQ(h1.size(), 64u);
  EXPECT_EQ(h1.find_first_not_of("0123456789abcdef"), std::string::npos) << h1;
}

TEST(JobGraphHash, IsTheHashOfTheBuiltGraph) {
  Job job;
  pipeline(job);
  auto jg = job.build();
  EXPECT_EQ(jg.hash(), compute_graph_hash(jg));
}

TEST(JobGraphHash, ChangesWithParallelism) {
  EXPECT_NE(hash_of(pipeline, 2), hash_of(pipeline, 3));
  std::string one_op = hash_of([](Job& job) {
    auto m = job.source().map([](const Event& e) { return e.value; }, "m");
    m.set_parallelism(4);
    m.rebalance().filter([](const int64_t& v) { return v > 0; }, "f").sink_to(Job::sink<int64_t>(), "out");
  });
  EXPECT_NE(hash_of(pipeline), one_op);
}

TEST(JobGraphHash, ChangesWithMaxParallelism) {
  std::string h = hash_of([](Job& job) {
    job.env.set_max_parallelism(256);
    pipeline(job);
  });
  EXPECT_NE(hash_of(pipeline), h);
}

TEST(JobGraphHash, ChangesWhenAnOperatorChanges) {
  const std::string base = hash_of(pipeline);
  // Another kind of operator in the same place.
  EXPECT_NE(base, hash_of([](Job& job) {
    job.source()
        .map([](const Event& e) { return e.value; }, "m")
        .rebalance()
        .map([](const int64_t& v) { return v; }, "f")
        .sink_to(Job::sink<int64_t>(), "out");
  }));
  // Another output type.
  EXPECT_NE(base, hash_of([](Job& job) {
    job.source()
        .map([](const Event& e) { return static_cast<int32_t>(e.value); }, "m")
        .rebalance()
        .filter([](const int32_t& v) { return v > 0; }, "f")
        .sink_to(Job::sink<int32_t>(), "out");
  }));
  // Another name.
  EXPECT_NE(base, hash_of([](Job& job) {
    job.source()
        .map([](const Event& e) { return e.value; }, "m2")
        .rebalance()
        .filter([](const int64_t& v) { return v > 0; }, "f")
        .sink_to(Job::sink<int64_t>(), "out");
  }));
  // Another uid.
  EXPECT_NE(base, hash_of([](Job& job) {
    auto m = job.source().map([](const Event& e) { return e.value; }, "m");
    m.uid("custom");
    m.rebalance().filter([](const int64_t& v) { return v > 0; }, "f").sink_to(Job::sink<int64_t>(), "out");
  }));
  // An extra operator.
  EXPECT_NE(base, hash_of([](Job& job) {
    job.source()
        .map([](const Event& e) { return e.value; }, "m")
        .rebalance()
        .filter([](const int64_t& v) { return v > 0; }, "f")
        .filter([](const int64_t& v) { return v < 100; }, "g")
        .sink_to(Job::sink<int64_t>(), "out");
  }));
}

TEST(JobGraphHash, ChangesWhenAnEdgeChanges) {
  const std::string base = hash_of(pipeline);
  // broadcast instead of rebalance
  EXPECT_NE(base, hash_of([](Job& job) {
    job.source()
        .map([](const Event& e) { return e.value; }, "m")
        .broadcast()
        .filter([](const int64_t& v) { return v > 0; }, "f")
        .sink_to(Job::sink<int64_t>(), "out");
  }));
  // forward instead of rebalance (the chain changes too)
  EXPECT_NE(base, hash_of([](Job& job) {
    job.source()
        .map([](const Event& e) { return e.value; }, "m")
        .filter([](const int64_t& v) { return v > 0; }, "f")
        .sink_to(Job::sink<int64_t>(), "out");
  }));
  // rebalance moved to the next edge
  EXPECT_NE(base, hash_of([](Job& job) {
    job.source()
        .map([](const Event& e) { return e.value; }, "m")
        .filter([](const int64_t& v) { return v > 0; }, "f")
        .rebalance()
        .sink_to(Job::sink<int64_t>(), "out");
  }));
}

TEST(JobGraphHash, ChangesWithADeadLetterSink) {
  EXPECT_NE(hash_of(pipeline), hash_of([](Job& job) {
    pipeline(job);
    job.dead_letters();
  }));
}

// ============================================================================
// Dead letters

TEST(JobGraphDeadLetters, TheSinkGetsOneDeadLetterEdgeFromEveryOtherVertex) {
  Job job;
  int dlq = job.dead_letters();
  job.source()
      .map([](const Event& e) { return e.value; }, "m")
      .rebalance()
      .filter([](const int64_t& v) { return v > 0; }, "f")
      .disable_chaining()
      .sink_to(Job::sink<int64_t>(), "out");
  auto jg = job.build(3);
  const auto& dlq_vertex = vertex_of(jg, "dead letters");
  EXPECT_TRUE(dlq_vertex.is_dead_letter_sink());
  EXPECT_EQ(dlq_vertex.parallelism(), 1);
  EXPECT_EQ(op_names(dlq_vertex), (std::vector<std::string>{"dead letters"}));
  EXPECT_EQ(dlq_vertex.operators(0).node_id(), dlq);
  EXPECT_EQ(dlq_vertex.operators(0).input_type(), type_name<DeadLetter>());

  std::multiset<int> from;
  for (const auto& e : dead_letter_edges(jg)) {
    EXPECT_EQ(e.target_vertex(), dlq_vertex.id());
    EXPECT_EQ(e.target_node(), dlq);
    EXPECT_EQ(e.stream_edge_id(), -1);
    from.insert(e.source_vertex());
  }
  std::multiset<int> expected;
  for (const auto& v : jg.vertices())
    if (v.id() != dlq_vertex.id()) expected.insert(v.id());
  EXPECT_EQ(jg.vertices_size(), 4);
  EXPECT_EQ(from, expected) << "exactly one dead-letter edge from each other vertex";

  for (const auto& v : jg.vertices()) {
    if (v.id() != dlq_vertex.id()) {
      EXPECT_FALSE(v.is_dead_letter_sink());
    }
  }
  // No ordinary edge reaches the dead-letter sink.
  for (const auto& e : data_edges(jg)) EXPECT_NE(e.target_vertex(), dlq_vertex.id());
}

TEST(JobGraphDeadLetters, DeadLetterSinkIsNeverChained) {
  Job job;
  job.dead_letters();
  job.source().sink_to(Job::sink<Event>(), "out");
  auto jg = job.build(1);  // same parallelism as the dead-letter sink
  EXPECT_EQ(chains(jg), (Chains{{"dead letters"}, {"events", "out"}}));
  EXPECT_EQ(dead_letter_edges(jg).size(), 1u);
}

TEST(JobGraphDeadLetters, NoDeadLetterEdgesWithoutADeadLetterSink) {
  Job job;
  pipeline(job);
  auto jg = job.build();
  EXPECT_TRUE(dead_letter_edges(jg).empty());
  for (const auto& v : jg.vertices()) EXPECT_FALSE(v.is_dead_letter_sink());
}

TEST(JobGraphDescribe, ListsVerticesAndTheirInputs) {
  Job job;
  job.dead_letters();
  pipeline(job);
  auto jg = job.build();
  std::string plan = describe_job_graph(jg);
  EXPECT_NE(plan.find("events -> m"), std::string::npos) << plan;
  EXPECT_NE(plan.find("f -> out"), std::string::npos) << plan;
  EXPECT_NE(plan.find("rebalance"), std::string::npos) << plan;
  EXPECT_NE(plan.find("dead-letter"), std::string::npos) << plan;
  EXPECT_NE(plan.find(jg.hash().substr(0, 12)), std::string::npos) << plan;
}

// ============================================================================
// Validation

TEST(JobGraphValidation, AnEmptyJobHasNoSource) {
  Job job;
  Status st = job.build_error();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(has(st, "no source")) << st.message();
  EXPECT_TRUE(has(st, "from_source")) << st.message();
}

TEST(JobGraphValidation, OnlyADeadLetterSinkIsNoJob) {
  Job job;
  job.dead_letters();
  Status st = job.build_error();
  EXPECT_TRUE(has(st, "no source")) << st.message();
}

TEST(JobGraphValidation, ASourceWhoseOutputGoesNowhereIsAnError) {
  Job job;
  job.source("clicks");
  Status st = job.build_error();
  EXPECT_TRUE(has(st, "'clicks'")) << st.message();
  EXPECT_TRUE(has(st, "goes nowhere")) << st.message();
  EXPECT_TRUE(has(st, "sink_to")) << st.message();
}

TEST(JobGraphValidation, AnOperatorWhoseOutputGoesNowhereIsAnError) {
  Job job;
  auto src = job.source();
  src.sink_to(Job::sink<Event>(), "out");
  src.map([](const Event& e) { return e.value; }, "forgotten");
  Status st = job.build_error();
  EXPECT_TRUE(has(st, "'forgotten'")) << st.message();
  EXPECT_TRUE(has(st, "goes nowhere")) << st.message();
  EXPECT_TRUE(has(st, "sink_to")) << st.message();
}

TEST(JobGraphValidation, AJobWithoutASinkIsAnError) {
  // Not expressible with the DataStream API (every dangling output is
  // reported first), so the graph is built by hand: an operator feeding
  // itself consumes its own output, and nothing is a sink.
  Job job;
  int src = job.source("s").node_id();
  runtime::StreamNode loop;
  loop.name = "loop";
  loop.factory = []() -> std::unique_ptr<runtime::StreamOperator> { return nullptr; };
  int id = job.graph.add_node(std::move(loop)).id;
  runtime::StreamEdge e1;
  e1.source = src;
  e1.target = id;
  job.graph.add_edge(e1);
  runtime::StreamEdge e2;
  e2.source = id;
  e2.target = id;
  job.graph.add_edge(e2);
  Status st = job.build_error();
  EXPECT_TRUE(has(st, "no sink")) << st.message();
  EXPECT_TRUE(has(st, "sink_to")) << st.message();
}

TEST(JobGraphValidation, ZeroParallelismIsAnError) {
  Job job;
  auto m = job.source().map([](const Event& e) { return e.value; }, "m");
  m.set_parallelism(0);
  m.sink_to(Job::sink<int64_t>(), "out");
  Status st = job.build_error();
  EXPECT_TRUE(has(st, "'m'")) << st.message();
  EXPECT_TRUE(has(st, "1 or more")) << st.message();
}

TEST(JobGraphValidation, DefaultParallelismBelowOneIsAnError) {
  Job job;
  pipeline(job);
  Status st = job.build_error(0);
  EXPECT_TRUE(has(st, "at least 1")) << st.message();
}

TEST(JobGraphValidation, KeyedParallelismAboveMaxParallelismSaysWhatToRaise) {
  Job job;
  job.env.set_max_parallelism(4);
  job.source()
      .key_by([](const Event& e) { return e.user; })
      .process(PassThrough(), "per-user")
      .sink_to(Job::sink<Event>(), "out");
  Status st = job.build_error(8);
  EXPECT_TRUE(has(st, "max parallelism")) << st.message();
  EXPECT_TRUE(has(st, "'events'") || has(st, "'per-user'")) << st.message();
}

TEST(JobGraphBuilder, ProcessingTimeWindowsRefuseAllowedLatenessAndEarlyFiring) {
  Job job;
  job.dead_letters();
  auto keyed = job.source().key_by([](const Event& e) { return e.user; });
  auto count = [](const std::string&, const window::TimeWindow&, int64_t n) { return n; };
  auto late = keyed.window(window::TumblingProcessingTimeWindows::of(Duration(1000)));
  late.allowed_lateness(Duration(10));
  EXPECT_THROW(late.count(count), std::invalid_argument);
  auto early = keyed.window(window::SlidingProcessingTimeWindows::of(Duration(1000), Duration(100)));
  early.early_firing(Duration(10));
  EXPECT_THROW(early.count(count), std::invalid_argument);
  keyed.window(window::TumblingProcessingTimeWindows::of(Duration(1000)))
      .count(count)
      .sink_to(Job::sink<int64_t>());
  auto g = job.build();
  bool found = false;
  for (const auto& v : g.vertices())
    for (const auto& op : v.operators())
      found = found || op.description().find("tumbling(1s) on processing time") != std::string::npos;
  EXPECT_TRUE(found) << "the plan names the processing-time window";
}

}  // namespace
}  // namespace sluice::graph
