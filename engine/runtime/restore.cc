#include "engine/runtime/restore.h"

#include <map>

#include "engine/proto/jobgraph.pb.h"
#include "state/key_groups.h"

namespace sluice::runtime {

Status check_restore_compatible(const state::StoredCheckpoint& cp, const proto::JobGraph& jg) {
  std::map<std::string, const proto::JobVertex*> vertex_of_uid;
  for (const auto& v : jg.vertices())
    for (const auto& op : v.operators()) vertex_of_uid[op.uid()] = &v;
  if (!cp.meta.channels.empty()) {
    if (cp.meta.graph_hash != jg.hash()) {
      return Status::failed_precondition(
          "checkpoint " + std::to_string(cp.meta.id) +
          " is unaligned and holds in-flight records, which only the same job graph can take "
          "back; restore it with the same job and parallelism, or restore from a savepoint "
          "(always aligned) to change the job");
    }
  }
  for (const auto& om : cp.meta.operators) {
    bool has_state = false;
    for (const auto& st : om.subtasks) has_state |= !st.operator_state.empty() || st.keyed.has_value();
    auto it = vertex_of_uid.find(om.uid);
    if (it == vertex_of_uid.end()) {
      if (!has_state) continue;
      return Status::failed_precondition(
          "the checkpoint holds state of operator uid '" + om.uid +
          "', which this job does not have; give the operator that should take it this uid "
          "(.uid(\"" + om.uid + "\"))");
    }
    bool keyed = false;
    for (const auto& st : om.subtasks) keyed |= st.keyed.has_value();
    if (keyed && it->second->max_parallelism() != om.max_parallelism) {
      return Status::failed_precondition(
          "operator '" + om.uid + "' had max parallelism " + std::to_string(om.max_parallelism) +
          " and now has " + std::to_string(it->second->max_parallelism()) +
          "; keyed state can only be restored with the same max parallelism");
    }
  }
  return Status::ok();
}

TaskRestore build_task_restore(const state::StoredCheckpoint& cp, const proto::JobGraph& jg,
                               int vertex_id, int subtask) {
  TaskRestore r;
  r.checkpoint = CheckpointId(cp.meta.id);
  r.base_dir = cp.base_dir;
  const proto::JobVertex* vertex = nullptr;
  for (const auto& v : jg.vertices())
    if (v.id() == vertex_id) vertex = &v;
  if (!vertex) return r;
  auto range = state::key_group_range_for_subtask(vertex->max_parallelism(), vertex->parallelism(),
                                                  subtask);
  for (const auto& op : vertex->operators()) {
    TaskRestore::Operator o;
    o.operator_state.restored = true;
    for (const auto& om : cp.meta.operators) {
      if (om.uid != op.uid()) continue;
      o.operator_state.old_parallelism = om.parallelism;
      o.operator_state.states.assign(static_cast<size_t>(om.parallelism), std::string());
      for (const auto& st : om.subtasks) {
        if (st.subtask >= 0 && st.subtask < om.parallelism) {
          o.operator_state.states[static_cast<size_t>(st.subtask)] = st.operator_state;
        }
        if (st.keyed && !st.keyed->range().intersect(range).empty()) o.keyed.push_back(*st.keyed);
      }
    }
    r.operators[op.uid()] = std::move(o);
  }
  for (const auto& cm : cp.meta.channels) {
    if (cm.head_uid == vertex->operators(0).uid() && cm.subtask == subtask) {
      r.channel_state_file = cp.base_dir + "/" + cm.file.path;
    }
  }
  return r;
}

}  // namespace sluice::runtime
