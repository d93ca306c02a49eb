// Checkpoint storage: where completed checkpoints and savepoints live and
// how their metadata is written, found and discarded.
//
//   <root>/<job>/chk-<N>/_metadata      checkpoint N (written last: present = complete)
//   <root>/<job>/chk-<N>/...            its own files
//   <root>/<job>/shared/...             files shared by several checkpoints
//   <root>/<job>/savepoint-<N>/         a self-contained savepoint (never discarded
//                                       automatically; file paths inside it are relative
//                                       to it, so it can be moved)
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/common/serde.h"
#include "engine/common/status.h"
#include "state/snapshot.h"

namespace sluice::state {

/// The state of one subtask of one operator.
struct SubtaskStateMeta {
  int32_t subtask = 0;
  std::string operator_state;
  std::optional<KeyedStateHandle> keyed;
  SLUICE_FIELDS(subtask, operator_state, keyed)
};

/// The state of one operator (matched by uid on restore).
struct OperatorStateMeta {
  std::string uid;
  int32_t parallelism = 1;
  int32_t max_parallelism = 128;
  std::vector<SubtaskStateMeta> subtasks;
  SLUICE_FIELDS(uid, parallelism, max_parallelism, subtasks)
};

/// In-flight input data of one task (unaligned checkpoints).
struct ChannelStateMeta {
  std::string head_uid;  // uid of the head operator of the task's vertex
  int32_t subtask = 0;
  int32_t parallelism = 1;
  StateFile file;
  SLUICE_FIELDS(head_uid, subtask, parallelism, file)
};

struct CheckpointMetadata {
  int32_t version = 1;
  int64_t id = 0;
  int64_t timestamp_ms = 0;
  bool savepoint = false;
  std::string job_name;
  std::string graph_hash;
  std::vector<OperatorStateMeta> operators;
  std::vector<ChannelStateMeta> channels;
  SLUICE_FIELDS(version, id, timestamp_ms, savepoint, job_name, graph_hash, operators, channels)

  int64_t size_bytes() const;
  /// Files under shared/ that this checkpoint references.
  std::set<std::string> shared_files() const;
};

/// A checkpoint found on disk: its metadata and where its files resolve.
struct StoredCheckpoint {
  CheckpointMetadata meta;
  std::string dir;       // absolute path of chk-N / savepoint-N
  std::string base_dir;  // what the file paths of its handles are relative to
};

/// The checkpoints of one job in one root directory. Thread-compatible.
class CheckpointStorage {
 public:
  /// `root` is "file:///path" or a plain path.
  CheckpointStorage(const std::string& root, const std::string& job_name);

  const std::string& job_dir() const { return job_dir_; }
  /// Directory name of checkpoint `id` ("chk-7") or savepoint ("savepoint-7").
  static std::string dir_name(int64_t id, bool savepoint);
  /// Where the snapshot files of `id` go (for SnapshotTarget).
  SnapshotTarget target(int64_t id, bool savepoint, const std::string& file_stem) const;

  /// Writes `<dir>/_metadata` atomically: the checkpoint is then complete.
  Status write_metadata(const CheckpointMetadata& m) const;
  /// Completed checkpoints (not savepoints), oldest first.
  Result<std::vector<StoredCheckpoint>> list_completed() const;
  /// The highest checkpoint id used by any directory here (complete or not).
  int64_t highest_id() const;
  /// Removes what earlier runs left half-written: checkpoint directories
  /// without _metadata and shared files no completed checkpoint references.
  /// Only safe while no task of the job writes a snapshot.
  Status remove_incomplete() const;
  /// Deletes checkpoint `c`'s own directory and the shared files it
  /// references that are not in `keep_shared`.
  Status discard(const StoredCheckpoint& c, const std::set<std::string>& keep_shared) const;

  /// Reads a checkpoint or savepoint from `path` (its directory or its
  /// _metadata file).
  static Result<StoredCheckpoint> load(const std::string& path);
  /// "latest" in `root`/`job_name`, or a path.
  static Result<StoredCheckpoint> resolve_restore_point(const std::string& what,
                                                        const std::string& root,
                                                        const std::string& job_name);

 private:
  std::string job_dir_;
};

/// Removes a directory tree (ignores what does not exist).
Status remove_tree(const std::string& path);

}  // namespace sluice::state
