// StreamGraph -> JobGraph: resolves parallelism, gives every operator a
// stable uid, chains operators that can run in one task, adds the
// dead-letter edges and hashes the structure.
#pragma once

#include <map>
#include <string>

#include "engine/common/status.h"
#include "engine/proto/jobgraph.pb.h"
#include "engine/runtime/stream_graph.h"

namespace sluice::graph {

struct JobGraphOptions {
  /// Parallelism of operators that did not set their own. Default 1.
  int default_parallelism = 1;
  /// The job arguments, recorded in the JobGraph.
  std::map<std::string, std::string> args;
};

/// Builds the JobGraph. Fills in generated uids on `graph`'s nodes, so the
/// operators' runtime info and the JobGraph agree.
///
/// Chaining: an operator joins the task of the operator feeding it when
/// every edge from that task into it is a forward edge of equal
/// parallelism and neither side disabled chaining; its other inputs (a
/// broadcast side, a co-process's second input) may come from other tasks,
/// each input wholly from the chain or wholly from other tasks, never into
/// a source task. A forward edge between different parallelisms becomes a
/// rebalance edge. A hash edge of a stream declared already partitioned
/// (StreamEdge::assume_key_partitioned, DataStream::reinterpret_as_keyed)
/// becomes a forward edge when its records provably come, over forward
/// edges, from keyed operators of the target's parallelism and max
/// parallelism; otherwise it stays a hash edge.
Result<proto::JobGraph> build_job_graph(runtime::StreamGraph& graph, const JobGraphOptions& options);

/// SHA-256 over the structure (vertices, operators, types, edges); the
/// same build function with the same arguments yields the same hash.
std::string compute_graph_hash(const proto::JobGraph& jg);

/// A readable plan: one line per vertex with its chain, and its inputs.
std::string describe_job_graph(const proto::JobGraph& jg);

}  // namespace sluice::graph
