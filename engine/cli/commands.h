// The `sluice` command's subcommands. Each registers its options on the
// CLI11 app and returns the function that runs it (exit code).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
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

/// `sluice CMD ... --config FILE ...`: adds `--key=value` for every
/// `key = value` line of FILE (TOML/INI: comments, quotes and a `[CMD]`
/// section allowed) whose option is not on the command line, so flags win.
/// An unreadable file or a malformed line is an error naming it.
Result<std::vector<std::string>> expand_config_file(const std::vector<std::string>& args);

/// The first line of a token file, trailing blanks removed; an unreadable
/// file is an error naming it.
Result<std::string> read_token_file(const std::string& path);

/// Prints "error: <message>" to stderr; returns the exit code to use.
int report_error(const std::string& message, int code = 1);

}  // namespace sluice::cli
