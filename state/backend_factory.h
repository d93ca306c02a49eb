// Creates the keyed-state backend a job asked for (state.backend).
#pragma once

#include <memory>
#include <string>

#include "engine/common/clock.h"
#include "engine/common/config.h"
#include "state/keyed_state_backend.h"

namespace sluice::state {

/// What a backend needs to know about the operator subtask it serves.
struct BackendSpec {
  KeyGroupRange range;
  int32_t max_parallelism = 128;
  const Clock* clock = nullptr;
  /// Unique in the process (job, attempt, operator uid, subtask): names the
  /// backend's local working directory.
  std::string instance_name;
};

/// Reads `state.backend` (heap | rocksdb; default `default_kind`) and the
/// backend's options from the job configuration.
Result<std::unique_ptr<KeyedStateBackend>> create_keyed_backend(const Configuration& job_config,
                                                                 const BackendSpec& spec,
                                                                 BackendKind default_kind);

}  // namespace sluice::state
