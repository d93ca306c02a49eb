// The `sluice` command's subcommands. Each registers its options on the
// CLI11 app and returns the function that runs it (exit code).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace sluice::cli {

using Runner = std::function<int()>;

Runner add_run_local(CLI::App& app);
Runner add_gen(CLI::App& app);
Runner add_dev_kafka(CLI::App& app);
Runner add_jobmanager(CLI::App& app);
Runner add_taskmanager(CLI::App& app);
Runner add_submit(CLI::App& app);
Runner add_list(CLI::App& app);
Runner add_status(CLI::App& app);
Runner add_cancel(CLI::App& app);
Runner add_savepoint(CLI::App& app);
Runner add_stop(CLI::App& app);

/// Prints "error: <message>" to stderr; returns the exit code to use.
int report_error(const std::string& message, int code = 1);

}  // namespace sluice::cli
