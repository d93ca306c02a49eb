#include "engine/runtime/stream_graph.h"

#include <set>

namespace sluice::runtime {

std::string_view partitioning_name(Partitioning p) {
  switch (p) {
    case Partitioning::kForward: return "forward";
    case Partitioning::kHash: return "hash";
    case Partitioning::kRebalance: return "rebalance";
    case Partitioning::kBroadcast: return "broadcast";
  }
  return "?";
}

StreamNode& StreamGraph::add_node(StreamNode node) {
  node.id = static_cast<int>(nodes_.size());
  nodes_.push_back(std::move(node));
  return nodes_.back();
}

StreamEdge& StreamGraph::add_edge(StreamEdge edge) {
  edge.id = static_cast<int>(edges_.size());
  edges_.push_back(std::move(edge));
  return edges_.back();
}

std::vector<const StreamEdge*> StreamGraph::in_edges(int node) const {
  std::vector<const StreamEdge*> out;
  for (const auto& e : edges_)
    if (e.target == node) out.push_back(&e);
  return out;
}

std::vector<const StreamEdge*> StreamGraph::out_edges(int node) const {
  std::vector<const StreamEdge*> out;
  for (const auto& e : edges_)
    if (e.source == node) out.push_back(&e);
  return out;
}

Status StreamGraph::validate() const {
  bool has_source = false, has_sink = false;
  std::set<std::string> uids;
  for (const auto& n : nodes_) {
    if (n.kind == NodeKind::kSource) has_source = true;
    if (n.kind == NodeKind::kSink) has_sink = true;
    if (!n.factory) {
      return Status::invalid_argument("operator '" + n.name + "' has no implementation");
    }
    bool is_dlq = dead_letter_node && *dead_letter_node == n.id;
    if (n.kind != NodeKind::kSource && !is_dlq && in_edges(n.id).empty()) {
      return Status::invalid_argument("operator '" + n.name + "' has no input");
    }
    if (n.kind != NodeKind::kSink && out_edges(n.id).empty()) {
      return Status::invalid_argument(
          "the output of '" + n.name +
          "' goes nowhere; end the pipeline with sink_to(...) (records would be lost)");
    }
    if (!n.uid.empty() && !uids.insert(n.uid).second) {
      return Status::invalid_argument("uid '" + n.uid +
                                      "' is used by two operators; uids must be unique");
    }
    if (n.parallelism == 0 || n.parallelism < -1) {
      return Status::invalid_argument("operator '" + n.name + "' has parallelism " +
                                      std::to_string(n.parallelism) + "; use 1 or more");
    }
  }
  if (!has_source) return Status::invalid_argument("the job has no source; add from_source(...)");
  if (!has_sink) return Status::invalid_argument("the job has no sink; add sink_to(...)");
  return Status::ok();
}

}  // namespace sluice::runtime
