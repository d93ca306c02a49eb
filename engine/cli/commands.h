// The `sluice` command's subcommands. Each registers its options on the
// CLI11 app and returns the function that runs it (exit code).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/common/status.h"

namespace sluice::cli {

using Runner = std::function<int()>;

Runner add_run_local(CLI::App& app);
Runner add_gen(CLI::App& app);
Runner add_dev_kafka(CLI::App& app);
Runner add_dev_receiver(CLI::App& app);
Runner add_jobmanager(CLI::App& app);
Runner add_taskmanager(CLI::App& app);
Runner add_submit(CLI::App& app);
Runner add_list(CLI::App& app);
Runner add_status(CLI::App& app);
Runner add_cancel(CLI::App& app);
Runner add_savepoint(CLI::App& app);
Runner add_stop(CLI::App& app);
Runner add_logs(CLI::App& app);

/// Whether `command` has the long option `--key` (key empty: whether
/// `command` is a command at all).
using OptionCheck = std::function<bool(const std::string& command, const std::string& key)>;

/// The command line with the settings of the --config file added.
struct ConfigExpansion {
  std::vector<std::string> args;
  /// "--key" -> "FILE:LINE (key 'k')", to name the origin of a value the
  /// parser refuses later.
  std::map<std::string, std::string> origins;
};

/// `sluice CMD ... --config FILE ...`: reads FILE as TOML (toml++) and adds
/// `--key=value` for every setting whose option is not on the command line,
/// so flags win: root keys and those of the `[CMD]` table (other commands'
/// tables are skipped); `_` in keys reads as `-`; arrays give the option
/// once per element. A file that is not TOML, an unknown key or section,
/// or a value of the wrong kind is an error naming FILE:LINE and the key.
Result<ConfigExpansion> expand_config_file(const std::vector<std::string>& args, const OptionCheck& known = {});

/// The first line of a token file, trailing blanks removed; an unreadable
/// file is an error naming it.
Result<std::string> read_token_file(const std::string& path);

/// Prints "error: <message>" to stderr; returns the exit code to use.
int report_error(const std::string& message, int code = 1);

}  // namespace sluice::cli
