// Restoring a job from a checkpoint or savepoint: which state each new
// subtask gets. Operators are matched by uid. Operator state is handed to
// every subtask as the union of all old subtasks' states (each operator
// picks its share, e.g. a source its splits); keyed state follows key
// groups, so a job may restore with another parallelism (but the same max
// parallelism).
#pragma once

#include "engine/common/status.h"
#include "engine/runtime/task.h"
#include "state/checkpoint_storage.h"

namespace sluice::runtime {

/// Refuses a restore that would lose state or misplace keys: state of an
/// operator uid the job no longer has, or a changed max parallelism of a
/// keyed operator. Messages say what to do.
Status check_restore_compatible(const state::StoredCheckpoint& cp, const proto::JobGraph& jg);

/// The restore of subtask `subtask` of vertex `vertex_id`.
TaskRestore build_task_restore(const state::StoredCheckpoint& cp, const proto::JobGraph& jg,
                               int vertex_id, int subtask);

}  // namespace sluice::runtime
