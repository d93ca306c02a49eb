// Wire form of a task's checkpoint acknowledgement: a taskmanager encodes
// the TaskSnapshot it got from a task, the jobmanager decodes it for its
// checkpoint coordinator. Serde bytes inside a Protobuf `bytes` field.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/common/serde.h"
#include "engine/runtime/task.h"

namespace sluice::runtime {

namespace wire {
struct OperatorSnapshotW {
  std::string uid;
  std::string operator_state;
  std::optional<state::KeyedStateHandle> keyed;
  SLUICE_FIELDS(uid, operator_state, keyed)
};
struct TaskSnapshotW {
  int64_t id = 0;
  std::vector<OperatorSnapshotW> operators;
  std::optional<state::StateFile> channel_state;
  int64_t sync_ns = 0;
  int64_t alignment_ns = 0;
  SLUICE_FIELDS(id, operators, channel_state, sync_ns, alignment_ns)
};
}  // namespace wire

inline std::string encode_task_snapshot(const TaskSnapshot& s) {
  wire::TaskSnapshotW w;
  w.id = s.id.value();
  for (const auto& o : s.operators) w.operators.push_back({o.uid, o.operator_state, o.keyed});
  w.channel_state = s.channel_state;
  w.sync_ns = s.sync_ns;
  w.alignment_ns = s.alignment_ns;
  return serialize(w);
}

inline Result<TaskSnapshot> decode_task_snapshot(const std::string& bytes) {
  wire::TaskSnapshotW w;
  if (!deserialize(bytes, w).is_ok()) return Status::corruption("undecodable checkpoint acknowledgement");
  TaskSnapshot s;
  s.id = CheckpointId(w.id);
  for (auto& o : w.operators) {
    s.operators.push_back(OperatorSnapshot{std::move(o.uid), std::move(o.operator_state), std::move(o.keyed)});
  }
  s.channel_state = std::move(w.channel_state);
  s.sync_ns = w.sync_ns;
  s.alignment_ns = w.alignment_ns;
  return s;
}

}  // namespace sluice::runtime
