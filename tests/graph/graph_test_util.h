// Helpers of the graph tests: a record type, sources and sinks that do
// nothing, a job under construction (graph + API handle) and readers of
// the built JobGraph (chains, vertices, edges).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/api/datastream.h"
#include "engine/graph/job_graph_builder.h"

namespace sluice::graph_test {

using api::DataStream;
using api::StreamExecutionEnvironment;
using graph::build_job_graph;
using graph::JobGraphOptions;
using runtime::StreamGraph;

struct Event {
  std::string user;
  int64_t ts = 0;
  int64_t value = 0;
  SLUICE_FIELDS(user, ts, value)
};

template <class T>
class NullReader final : public runtime::SourceReader<T> {
 public:
  Status open(runtime::OperatorContext&, runtime::SourceOutput<T>&) override {
    return Status::ok();
  }
  Result<runtime::PollStatus> poll_next(runtime::SourceOutput<T>&) override {
    return runtime::PollStatus::kEndOfInput;
  }
};

template <class T>
class TestSource final : public runtime::Source<T> {
 public:
  explicit TestSource(std::string desc = "test://events") : desc_(std::move(desc)) {}
  std::string description() const override { return desc_; }
  bool bounded() const override { return true; }
  std::unique_ptr<runtime::SourceReader<T>> create_reader() const override {
    return std::make_unique<NullReader<T>>();
  }

 private:
  std::string desc_;
};

template <class T>
class NullWriter final : public runtime::SinkWriter<T> {
 public:
  Status write(const T&, EventTime) override { return Status::ok(); }
};

template <class T>
class TestSink final : public runtime::Sink<T> {
 public:
  explicit TestSink(std::string desc = "test://out") : desc_(std::move(desc)) {}
  std::string description() const override { return desc_; }
  std::unique_ptr<runtime::SinkWriter<T>> create_writer() const override {
    return std::make_unique<NullWriter<T>>();
  }

 private:
  std::string desc_;
};

class PassThrough final : public basic::KeyedProcessFunction<std::string, Event, Event> {
 public:
  void process_element(const Event& v, Context&, basic::Collector<Event>& out) override {
    out.collect(v);
  }
};

/// A job under construction: the graph and the API handle on it.
struct Job {
  StreamGraph graph;
  StreamExecutionEnvironment env{graph};

  DataStream<Event> source(std::string name = "events") {
    return env.from_source<Event>(std::make_shared<const TestSource<Event>>(),
                                  runtime::WatermarkStrategy<Event>::no_watermarks(),
                                  std::move(name));
  }
  template <class T>
  static std::shared_ptr<const runtime::Sink<T>> sink() {
    return std::make_shared<const TestSink<T>>();
  }
  int dead_letters() {
    return env.set_dead_letter_sink(std::make_shared<const TestSink<DeadLetter>>("test://dlq"));
  }
  proto::JobGraph build(int parallelism = 2) {
    JobGraphOptions o;
    o.default_parallelism = parallelism;
    auto r = build_job_graph(graph, o);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : proto::JobGraph();
  }
  Status build_error(int parallelism = 2) {
    JobGraphOptions o;
    o.default_parallelism = parallelism;
    auto r = build_job_graph(graph, o);
    EXPECT_FALSE(r.is_ok()) << "the build succeeded";
    return r.status();
  }
};

inline std::vector<std::string> op_names(const proto::JobVertex& v) {
  std::vector<std::string> out;
  for (const auto& op : v.operators()) out.push_back(op.name());
  return out;
}

/// Chains as lists of operator names, in vertex order.
inline std::vector<std::vector<std::string>> chains(const proto::JobGraph& jg) {
  std::vector<std::vector<std::string>> out;
  for (const auto& v : jg.vertices()) out.push_back(op_names(v));
  return out;
}

inline const proto::JobVertex& vertex_of(const proto::JobGraph& jg, const std::string& op_name) {
  for (const auto& v : jg.vertices())
    for (const auto& op : v.operators())
      if (op.name() == op_name) return v;
  ADD_FAILURE() << "no operator named " << op_name;
  static proto::JobVertex none;
  return none;
}

inline std::vector<proto::JobEdge> data_edges(const proto::JobGraph& jg) {
  std::vector<proto::JobEdge> out;
  for (const auto& e : jg.edges())
    if (!e.dead_letter()) out.push_back(e);
  return out;
}

inline std::vector<proto::JobEdge> dead_letter_edges(const proto::JobGraph& jg) {
  std::vector<proto::JobEdge> out;
  for (const auto& e : jg.edges())
    if (e.dead_letter()) out.push_back(e);
  return out;
}

inline bool has(const Status& st, const std::string& s) {
  return st.message().find(s) != std::string::npos;
}

using Chains = std::vector<std::vector<std::string>>;

}  // namespace sluice::graph_test
