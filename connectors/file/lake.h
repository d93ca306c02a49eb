// Reading a data lake back: the file source over the layout the
// partitioned file sink writes (Hive folders, published files only), for
// backfills over a bounded time range.
//
//   file:///lake/sessions/?partition=dt:session_start:date,hour:session_start:hour
//       &from=2026-12-05T06:00&to=2026-12-06
//
// `partition=` is the sink's own spec. Folders whose time range (from the
// levels that format the time field as date, month, hour or minute) misses
// [from, to) are not listed at all; within the folders that are, records
// whose time field lies outside [from, to) are skipped, so the source
// yields exactly the records of the range. Only published files are read:
// hidden names (the sink's `.part-….inprogress`) and `_` names (`_SUCCESS`,
// `_temporary`) are skipped, and the list of files is taken once, when the
// job starts, and kept in every checkpoint, so a restore reads the same
// files even if the lake gained some since.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "connectors/file/file_splits.h"
#include "connectors/file/partitioned.h"
#include "engine/common/json_read.h"
#include "engine/common/serde.h"
#include "engine/common/status.h"
#include "engine/runtime/dead_letter.h"

namespace sluice::file {

/// Which part of a partitioned directory a source reads. Value type.
struct LakeSelection {
  std::vector<PartitionSpec> partitions;  // the folder levels, outermost first
  int64_t from_ms = std::numeric_limits<int64_t>::min();  // inclusive
  int64_t to_ms = std::numeric_limits<int64_t>::max();    // exclusive
  /// The epoch-millisecond field records are selected by; default: the
  /// field of the first level with a time format. Empty: no time range.
  std::string time_field;

  bool has_range() const {
    return from_ms != std::numeric_limits<int64_t>::min() || to_ms != std::numeric_limits<int64_t>::max();
  }
};

/// A parsed `file://` source URI. Value type; defaults as written.
struct FileSourceConfig {
  std::string uri;
  std::string path;
  double rate = 0;  // lines per second over all subtasks; 0: as fast as possible
  size_t max_record_bytes = kDefaultMaxRecordBytes;
  size_t max_field_bytes = kDefaultMaxFieldBytes;  // longest string value or key of a record
  std::optional<LakeSelection> lake;  // set by partition= (a data-lake layout)

  /// file:///PATH[?rate=N&max-record-bytes=N&max-field-bytes=N] or
  /// file:///DIR/?partition=NAME:FIELD[:FORMAT],...[&from=T&to=T&time_field=F]
  /// (T: epoch ms or a UTC date/time such as 2026-12-05T06:00).
  static Result<FileSourceConfig> parse(const std::string& uri);
};

/// The time range [start, end) a partition folder path covers, from the
/// levels of `s` that format its time field (date, month, hour, minute);
/// nullopt when they do not bound it (no date or month level seen yet).
/// `values` are the folder values, outermost first (possibly fewer than
/// the levels: a folder on the way down). Fails on a value the format
/// cannot have.
Result<std::optional<std::pair<int64_t, int64_t>>> partition_time_range(const LakeSelection& s,
                                                                        const std::vector<std::string>& values);

/// The published NDJSON files (`.ndjson`, `.json`, `.jsonl`, each also
/// `.zst`) under `dir` in folders of the selection, in path order. Fails,
/// saying what to fix, on a folder that does not follow the partition
/// spec, a file above the leaf folders, a CSV file or an unknown kind.
Result<std::vector<FileInfo>> list_lake_files(const std::string& dir, const LakeSelection& s);

/// Checks the selection's time field against T (an integer field of its
/// SLUICE_FIELDS) and returns its index among the fields, or -1 when the
/// selection has no range.
template <class T>
Result<int> lake_time_field_index(const LakeSelection& s) {
  if (!s.has_range()) return -1;
  if constexpr (!HasFields<T>) {
    return Status::invalid_argument("file source: records of type " + std::string(type_name<T>()) +
                                    " declare no SLUICE_FIELDS, so from/to cannot select them");
  } else {
    int index = -1, i = 0;
    bool integral = false;
    std::string names;
    T probe{};
    probe.sluice_visit([&](const char* name, const auto& f) {
      using F = std::decay_t<decltype(f)>;
      names += (names.empty() ? "" : ", ") + std::string(name);
      if (s.time_field == name) {
        index = i;
        integral = std::is_integral_v<F> && !std::is_same_v<F, bool>;
      }
      ++i;
    });
    if (index < 0) {
      return Status::invalid_argument("file source: time_field '" + s.time_field + "' is no field of the records (" +
                                      names + ")");
    }
    if (!integral) {
      return Status::invalid_argument("file source: time_field '" + s.time_field +
                                      "' is not an integer (epoch milliseconds)");
    }
    return index;
  }
}

/// The value of field `index` (an integer field) of `v`.
template <class T>
int64_t lake_time_of(const T& v, int index) {
  int64_t out = 0;
  int i = 0;
  v.sluice_visit([&](const char*, const auto& f) {
    using F = std::decay_t<decltype(f)>;
    if constexpr (std::is_integral_v<F>) {
      if (i == index) out = static_cast<int64_t>(f);
    }
    ++i;
  });
  return out;
}

}  // namespace sluice::file
