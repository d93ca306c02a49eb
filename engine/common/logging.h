// Logging setup. Code logs through spdlog directly (spdlog::info(...)); this
// only configures the process-wide default logger once.
//
// Every process also keeps its latest log lines in memory (a ring of
// kRecentLogLines), so that `sluice logs` and the dashboard can show what
// a jobmanager or taskmanager said about a job without reading its files.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/status.h"

namespace sluice {

struct LoggingOptions {
  /// "trace", "debug", "info", "warn", "error" or "off". Default info.
  std::string level = "info";
  /// Also write to this file (appended; rotated at `file_max_bytes` into
  /// FILE.1 .. FILE.<file_keep>). Default: stderr only.
  std::string file;
  size_t file_max_bytes = size_t{64} << 20;
  size_t file_keep = 3;
};

/// Sets the default logger's level and a pattern with time, level and
/// thread id, writing to stderr (and the file when given) and to the
/// in-memory ring. Errors name the bad level or the file that cannot be
/// opened. Safe to call again (the file sink is set once).
Status init_logging(const LoggingOptions& options);
Status init_logging(std::string_view level = "info");

/// Lines kept in memory per process.
constexpr size_t kRecentLogLines = 4000;

/// The latest lines (oldest first) containing `filter` (all when empty),
/// at most `max_lines` of them. Thread-safe.
std::vector<std::string> recent_log_lines(std::string_view filter, size_t max_lines);

}  // namespace sluice
