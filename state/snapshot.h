// Keyed-state snapshots: what a backend writes for a checkpoint and how it
// is found again on restore.
//
// A snapshot has a synchronous part, run on the task thread at the barrier
// (it must capture a consistent view quickly: serialize the heap, or take a
// RocksDB checkpoint of hard links), and an asynchronous part, run on a
// snapshot thread while the task goes on (write files to checkpoint
// storage). Checkpoint storage is a directory every process can reach:
//
//   <job dir>/chk-<N>/...       files of checkpoint N only
//   <job dir>/shared/...        files several checkpoints reference
//                               (RocksDB SSTs of incremental checkpoints)
//   <job dir>/savepoint-<N>/... self-contained savepoints
//
// Handles name files relative to the job dir, so a job dir can be moved.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/common/ids.h"
#include "engine/common/serde.h"
#include "engine/common/status.h"
#include "state/key_groups.h"

namespace sluice::state {

/// One file of a snapshot.
struct StateFile {
  std::string path;  // relative to the job dir, e.g. "chk-7/v1-0-window.heap", "shared/000123.sst"
  int64_t size = 0;
  bool shared = false;  // referenced by several checkpoints; deleted by reference counting
  SLUICE_FIELDS(path, size, shared)
};

/// The keyed state of one operator subtask in one checkpoint.
struct KeyedStateHandle {
  std::string backend;  // "heap" or "rocksdb"
  int32_t kg_start = 0;
  int32_t kg_end = -1;
  std::vector<StateFile> files;
  std::string meta;  // backend-specific (e.g. an index of key groups in the files)
  SLUICE_FIELDS(backend, kg_start, kg_end, files, meta)

  KeyGroupRange range() const { return {kg_start, kg_end}; }
  int64_t size_bytes() const {
    int64_t n = 0;
    for (const auto& f : files) n += f.size;
    return n;
  }
};

/// Where one operator subtask writes its snapshot.
struct SnapshotTarget {
  std::string job_dir;    // absolute path of the job's checkpoint directory
  std::string own_dir;    // "chk-<N>" or "savepoint-<N>" (relative to job_dir)
  std::string file_stem;  // unique per operator subtask, e.g. "v2-1-page-counts"
  /// Savepoints are self-contained: nothing in shared/, nothing incremental.
  bool self_contained = false;
};

/// The asynchronous part of a snapshot; runs once on a snapshot thread.
using AsyncSnapshot = std::function<Result<KeyedStateHandle>()>;

/// Writes `data` to `path` durably: a temporary file, fsync, rename, fsync
/// of the directory. Creates missing parent directories.
Status write_file_atomic(const std::string& path, std::string_view data, mode_t mode = 0644);
Result<std::string> read_file(const std::string& path);
Status make_dirs(const std::string& path);

}  // namespace sluice::state
