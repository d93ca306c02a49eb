// Logging setup. Code logs through spdlog directly (spdlog::info(...)); this
// only configures the process-wide default logger once.
#pragma once

#include <string_view>

#include "engine/common/status.h"

namespace sluice {

/// Sets the default logger's level ("trace".."off") and a pattern with
/// time, level and thread id, writing to stderr. Safe to call again.
Status init_logging(std::string_view level = "info");

}  // namespace sluice
