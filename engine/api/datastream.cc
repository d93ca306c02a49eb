#include "engine/api/datastream.h"

#include <algorithm>

namespace sluice::api {

int StreamExecutionEnvironment::add_node(StreamNode node, const std::vector<Input>& inputs,
                                         Partitioning partitioning,
                                         std::shared_ptr<const runtime::KeySelectorBase> ks) {
  int id = graph_.add_node(std::move(node)).id;
  for (const auto& in : inputs) {
    runtime::StreamEdge e;
    e.source = in.node;
    e.target = id;
    e.tag = in.tag;
    e.partitioning = partitioning;
    e.key_selector = ks;
    e.assume_key_partitioned = partitioning == Partitioning::kHash && reinterpreted(ks.get());
    graph_.add_edge(std::move(e));
  }
  return id;
}

int StreamExecutionEnvironment::add_node(StreamNode node, const std::vector<EdgeSpec>& edges) {
  int id = graph_.add_node(std::move(node)).id;
  for (const auto& spec : edges) {
    runtime::StreamEdge e;
    e.source = spec.input.node;
    e.target = id;
    e.tag = spec.input.tag;
    e.input_index = spec.input_index;
    e.partitioning = spec.partitioning;
    e.key_selector = spec.key_selector;
    e.assume_key_partitioned = spec.partitioning == Partitioning::kHash && reinterpreted(spec.key_selector.get());
    graph_.add_edge(std::move(e));
  }
  return id;
}

bool StreamExecutionEnvironment::reinterpreted(const runtime::KeySelectorBase* ks) const {
  return ks && std::any_of(reinterpreted_.begin(), reinterpreted_.end(), [ks](const auto& r) { return r.get() == ks; });
}

int StreamExecutionEnvironment::set_dead_letter_sink(
    std::shared_ptr<const runtime::Sink<DeadLetter>> sink, std::string name) {
  StreamNode node;
  node.name = std::move(name);
  node.kind = runtime::NodeKind::kSink;
  node.parallelism = 1;
  node.chaining = runtime::Chaining::kNever;
  node.description = "dead-letter sink " + sink->description();
  node.in_types = {runtime::type_info<DeadLetter>()};
  node.factory = [sink]() { return std::make_unique<runtime::SinkOperator<DeadLetter>>(sink); };
  int id = graph_.add_node(std::move(node)).id;
  graph_.dead_letter_node = id;
  return id;
}

}  // namespace sluice::api
