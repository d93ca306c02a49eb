#include "engine/graph/job_graph_builder.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <sstream>

#include "engine/common/sha256.h"
#include "state/key_groups.h"

namespace sluice::graph {

namespace {

using runtime::NodeKind;
using runtime::Partitioning;
using runtime::StreamEdge;
using runtime::StreamGraph;
using runtime::StreamNode;

proto::Partitioner to_proto(Partitioning p) {
  switch (p) {
    case Partitioning::kForward: return proto::PARTITIONER_FORWARD;
    case Partitioning::kHash: return proto::PARTITIONER_HASH;
    case Partitioning::kRebalance: return proto::PARTITIONER_REBALANCE;
    case Partitioning::kBroadcast: return proto::PARTITIONER_BROADCAST;
  }
  return proto::PARTITIONER_REBALANCE;
}

std::string generated_uid(const StreamNode& n) {
  std::string s;
  for (char c : n.name) {
    if (std::isalnum(static_cast<unsigned char>(c))) s.push_back(static_cast<char>(std::tolower(c)));
    else if (!s.empty() && s.back() != '-') s.push_back('-');
  }
  while (!s.empty() && s.back() == '-') s.pop_back();
  if (s.empty()) s = "op";
  return s + "-" + std::to_string(n.id);
}

}  // namespace

Result<proto::JobGraph> build_job_graph(StreamGraph& g, const JobGraphOptions& options) {
  if (options.default_parallelism < 1) {
    return Status::invalid_argument("parallelism must be at least 1, got " +
                                    std::to_string(options.default_parallelism));
  }
  SLUICE_RETURN_IF_ERROR(g.validate());

  const size_t n = g.nodes().size();
  std::vector<int> par(n), maxp(n);
  std::set<std::string> user_uids;
  for (const auto& node : g.nodes())
    if (!node.uid.empty()) user_uids.insert(node.uid);
  for (auto& node : g.nodes()) {
    par[node.id] = node.parallelism > 0 ? node.parallelism : options.default_parallelism;
    maxp[node.id] = node.max_parallelism > 0 ? node.max_parallelism : g.max_parallelism;
    if (node.keyed || node.kind == NodeKind::kSource) {
      Status st = state::validate_parallelism(par[node.id], maxp[node.id]);
      if (!st.is_ok()) return st.with_context("operator '" + node.name + "'");
    }
    if (node.uid.empty()) {
      // Never take a uid the user chose for another operator.
      std::string uid = generated_uid(node);
      for (int k = 2; user_uids.count(uid); ++k) uid = generated_uid(node) + "-" + std::to_string(k);
      node.uid = uid;
    }
  }
  {
    std::set<std::string> uids;
    for (const auto& node : g.nodes()) {
      if (!uids.insert(node.uid).second) {
        return Status::invalid_argument("uid '" + node.uid +
                                        "' is used by two operators; uids must be unique");
      }
    }
  }

  // Effective partitioning of every stream edge, node by node (ids follow
  // creation order, which is topological). `partitioned[n]`: node n's
  // records are provably on the subtask their key group belongs to — n is
  // keyed (its input arrives partitioned by key groups of its parallelism
  // and max parallelism), or a non-keyed operator fed only by forward
  // edges of equal parallelism from such nodes. A hash edge the job
  // declared already partitioned (reinterpret_as_keyed) becomes forward
  // when its source is partitioned with the target's parallelism and max
  // parallelism; otherwise it stays a hash edge (correct, just a shuffle).
  std::vector<Partitioning> part(g.edges().size());
  std::vector<int> key_maxp(n, -1);  // partitioned by key groups of this max parallelism (-1: not known to be)
  for (const auto& node : g.nodes()) {
    auto ins = g.in_edges(node.id);
    for (const StreamEdge* e : ins) {
      part[e->id] = e->partitioning;
      if (e->partitioning == Partitioning::kForward && par[e->source] != par[e->target]) {
        part[e->id] = Partitioning::kRebalance;
      }
      if (e->partitioning == Partitioning::kHash && e->assume_key_partitioned &&
          key_maxp[e->source] == maxp[node.id] && par[e->source] == par[node.id]) {
        part[e->id] = Partitioning::kForward;
      }
    }
    if (node.kind == NodeKind::kSource || ins.empty()) continue;
    bool all = true;
    int origin = -1;
    for (const StreamEdge* e : ins) {
      if (node.keyed) {
        // Its records arrive by key groups of its own max parallelism:
        // hash edges, proven forward ones, and a broadcast side (no keys).
        all = all && (part[e->id] == Partitioning::kHash || part[e->id] == Partitioning::kBroadcast ||
                      (part[e->id] == Partitioning::kForward && e->assume_key_partitioned));
        origin = maxp[node.id];
      } else {
        // Forwarded from partitioned nodes, all of one max parallelism.
        all = all && part[e->id] == Partitioning::kForward && key_maxp[e->source] >= 0 &&
              (origin < 0 || origin == key_maxp[e->source]);
        origin = key_maxp[e->source];
      }
    }
    key_maxp[node.id] = all ? origin : -1;
  }

  // Chaining: a node joins the task of the node feeding it when every edge
  // from that task into it is a forward edge of equal parallelism that
  // chaining allows; its other inputs (the broadcast side of a keyed
  // broadcast process, the second input of a co-process) then come from
  // other tasks over the network — each of its inputs entirely from the
  // chain or entirely from other tasks, and never into a source task,
  // which reads no channels.
  std::vector<int> vertex_of(n, -1);
  std::vector<std::vector<int>> chains;
  auto chainable = [&](const StreamEdge& e, const StreamNode& node) {
    const StreamNode& up = g.node(e.source);
    return part[e.id] == Partitioning::kForward && par[e.source] == par[node.id] &&
           up.chaining != runtime::Chaining::kNever && !(g.dead_letter_node && *g.dead_letter_node == up.id);
  };
  for (const auto& node : g.nodes()) {
    auto ins = g.in_edges(node.id);
    int chain_into = -1;
    bool is_dlq = g.dead_letter_node && *g.dead_letter_node == node.id;
    if (!ins.empty() && node.chaining == runtime::Chaining::kAlways && !is_dlq &&
        node.kind != NodeKind::kSource) {
      // The task of the first chainable edge; every edge from that task
      // must be chainable.
      for (const StreamEdge* e : ins) {
        if (chainable(*e, node)) {
          chain_into = vertex_of[e->source];
          break;
        }
      }
      if (chain_into >= 0) {
        const bool source_task = g.node(chains[chain_into].front()).kind == NodeKind::kSource;
        std::map<int, std::pair<int, int>> by_input;  // input index -> (edges from the chain, from other tasks)
        bool ok = true;
        for (const StreamEdge* e : ins) {
          const bool from_chain = vertex_of[e->source] == chain_into;
          ok = ok && (!from_chain || chainable(*e, node));
          auto& c = by_input[e->input_index];
          (from_chain ? c.first : c.second)++;
        }
        for (const auto& [input, c] : by_input) {
          ok = ok && !(c.first > 0 && c.second > 0) && !(c.second > 0 && source_task);
        }
        if (!ok) chain_into = -1;
      }
    }
    if (chain_into >= 0) {
      vertex_of[node.id] = chain_into;
      chains[chain_into].push_back(node.id);
    } else {
      vertex_of[node.id] = static_cast<int>(chains.size());
      chains.push_back({node.id});
    }
  }

  proto::JobGraph jg;
  jg.set_name(g.job_name);
  jg.set_default_parallelism(options.default_parallelism);
  jg.set_max_parallelism(g.max_parallelism);
  for (const auto& [k, v] : options.args) (*jg.mutable_args())[k] = v;
  for (const auto& [k, v] : g.config.entries()) (*jg.mutable_config())[k] = v;

  for (size_t vi = 0; vi < chains.size(); ++vi) {
    const auto& chain = chains[vi];
    const StreamNode& head = g.node(chain.front());
    auto* v = jg.add_vertices();
    v->set_id(static_cast<int>(vi));
    v->set_parallelism(par[head.id]);
    v->set_max_parallelism(maxp[head.id]);
    v->set_is_source(head.kind == NodeKind::kSource);
    v->set_is_dead_letter_sink(g.dead_letter_node && *g.dead_letter_node == head.id);
    std::string name;
    for (int id : chain) {
      const StreamNode& node = g.node(id);
      auto* op = v->add_operators();
      op->set_node_id(id);
      op->set_uid(node.uid);
      op->set_name(node.name);
      op->set_description(node.description);
      op->set_keyed(node.keyed);
      std::string in_types;  // "A" or, for several inputs, "A, B"
      for (const auto& t : node.in_types) {
        if (!t) continue;
        if (!in_types.empty()) in_types += ", ";
        in_types += t->name();
      }
      op->set_input_type(in_types);
      if (node.out_type) op->set_output_type(std::string(node.out_type->name()));
      if (!name.empty()) name += " -> ";
      name += node.name;
      if (node.keyed && maxp[id] != maxp[head.id]) {
        return Status::invalid_argument("operator '" + node.name +
                                        "' is chained with operators of another max parallelism");
      }
    }
    v->set_name(name);
  }

  int edge_id = 0;
  for (const auto& e : g.edges()) {
    if (vertex_of[e.source] == vertex_of[e.target]) continue;
    auto* je = jg.add_edges();
    je->set_id(edge_id++);
    je->set_source_vertex(vertex_of[e.source]);
    je->set_target_vertex(vertex_of[e.target]);
    je->set_source_node(e.source);
    je->set_target_node(e.target);
    je->set_stream_edge_id(e.id);
    je->set_tag(e.tag);
    je->set_input_index(e.input_index);
    je->set_partitioner(to_proto(part[e.id]));
    if (e.partitioning == Partitioning::kHash && !e.key_selector) {
      return Status::internal("hash edge without a key selector");
    }
  }
  if (g.dead_letter_node) {
    int dlq_vertex = vertex_of[*g.dead_letter_node];
    for (size_t vi = 0; vi < chains.size(); ++vi) {
      if (static_cast<int>(vi) == dlq_vertex) continue;
      auto* je = jg.add_edges();
      je->set_id(edge_id++);
      je->set_source_vertex(static_cast<int>(vi));
      je->set_target_vertex(dlq_vertex);
      je->set_source_node(chains[vi].front());
      je->set_target_node(*g.dead_letter_node);
      je->set_stream_edge_id(-1);
      je->set_partitioner(proto::PARTITIONER_REBALANCE);
      je->set_dead_letter(true);
    }
  }
  jg.set_hash(compute_graph_hash(jg));
  return jg;
}

std::string compute_graph_hash(const proto::JobGraph& jg) {
  std::ostringstream s;
  s << "job:" << jg.name() << "\n";
  for (const auto& v : jg.vertices()) {
    s << "v" << v.id() << " p=" << v.parallelism() << " m=" << v.max_parallelism()
      << " src=" << v.is_source() << " dlq=" << v.is_dead_letter_sink() << "\n";
    for (const auto& op : v.operators()) {
      s << "  op " << op.node_id() << " uid=" << op.uid() << " name=" << op.name()
        << " desc=" << op.description() << " keyed=" << op.keyed() << " in=" << op.input_type()
        << " out=" << op.output_type() << "\n";
    }
  }
  for (const auto& e : jg.edges()) {
    s << "e" << e.id() << " " << e.source_vertex() << "->" << e.target_vertex() << " nodes "
      << e.source_node() << "->" << e.target_node() << " se=" << e.stream_edge_id()
      << " tag=" << e.tag() << " in=" << e.input_index() << " part=" << e.partitioner()
      << " dlq=" << e.dead_letter() << "\n";
  }
  return sha256_hex(s.str());
}

std::string describe_job_graph(const proto::JobGraph& jg) {
  std::ostringstream s;
  s << "job " << jg.name() << " (hash " << jg.hash().substr(0, 12) << ")\n";
  for (const auto& v : jg.vertices()) {
    s << "  [" << v.id() << "] " << v.name() << "  x" << v.parallelism();
    std::vector<std::string> ins;
    for (const auto& e : jg.edges()) {
      if (e.target_vertex() != v.id()) continue;
      std::string kind = e.dead_letter() ? "dead-letter"
                         : proto::Partitioner_Name(e.partitioner()).substr(12);
      std::transform(kind.begin(), kind.end(), kind.begin(),
                     [](unsigned char c) { return std::tolower(c); });
      ins.push_back(std::to_string(e.source_vertex()) + " (" + kind +
                    (e.tag().empty() ? "" : ", side output " + e.tag()) + ")");
    }
    if (!ins.empty()) {
      s << "  <- ";
      for (size_t i = 0; i < ins.size(); ++i) s << (i ? ", " : "") << ins[i];
    }
    s << "\n";
  }
  return s.str();
}

}  // namespace sluice::graph
