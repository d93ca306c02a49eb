// sluice: one binary for every role (run-local, gen, dev-kafka, jobmanager,
// taskmanager, and the operator's submit/list/status/cancel/savepoint/stop/logs).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "engine/cli/commands.h"
#include "engine/common/logging.h"

namespace {

/// "Commands:" and one line per subcommand, for bare `sluice` and typos.
std::string command_list(CLI::App& app) {
  std::string out = "Commands:\n";
  size_t width = 0;  // descriptions in one column, after the longest name
  for (auto* sub : app.get_subcommands({})) width = std::max(width, sub->get_name().size());
  for (auto* sub : app.get_subcommands({})) {
    std::string name = sub->get_name();
    out += "  " + name + std::string(width + 2 - name.size(), ' ') + sub->get_description() + "\n";
  }
  return out + "Run `sluice COMMAND --help` for a command's options.\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Sluice: a distributed stream-processing engine for behavioural events", "sluice"};
  app.require_subcommand(1);
  // Global options (--log-level, --log-file) may also follow the command.
  app.fallthrough();
  sluice::LoggingOptions logging;
  app.add_option("--log-level", logging.level, "trace, debug, info, warn, error or off")
      ->capture_default_str()
      ->envname("SLUICE_LOG_LEVEL");
  app.add_option("--log-file", logging.file,
                 "Also write the log to this file (appended, rotated at 64 MiB into FILE.1..FILE.3)")
      ->envname("SLUICE_LOG_FILE");

  std::map<CLI::App*, sluice::cli::Runner> runners;
  auto add = [&](auto fn) {
    size_t before = app.get_subcommands({}).size();
    auto runner = fn(app);
    auto subs = app.get_subcommands({});
    runners[subs.at(before)] = runner;
  };
  add(sluice::cli::add_run_local);
  add(sluice::cli::add_gen);
  add(sluice::cli::add_dev_kafka);
  add(sluice::cli::add_dev_receiver);
  add(sluice::cli::add_jobmanager);
  add(sluice::cli::add_taskmanager);
  add(sluice::cli::add_submit);
  add(sluice::cli::add_list);
  add(sluice::cli::add_status);
  add(sluice::cli::add_cancel);
  add(sluice::cli::add_savepoint);
  add(sluice::cli::add_stop);
  add(sluice::cli::add_logs);

  std::vector<std::string> args(argv + 1, argv + argc);
  auto known = [&app](const std::string& command, const std::string& key) {
    CLI::App* sub = nullptr;
    try {
      sub = app.get_subcommand(command);
    } catch (const CLI::OptionNotFound&) {
      return false;
    }
    if (key.empty()) return true;
    return sub->get_option_no_throw("--" + key) != nullptr || app.get_option_no_throw("--" + key) != nullptr;
  };
  auto expanded = sluice::cli::expand_config_file(args, known);
  if (!expanded.is_ok()) return sluice::cli::report_error(expanded.status().message(), 2);
  std::vector<std::string> reversed(expanded->args.rbegin(), expanded->args.rend());  // CLI11 takes them reversed
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // A value from the settings file: say where it came from.
    for (const auto& [option, origin] : expanded->origins) {
      if (std::string(e.what()).find(option) != std::string::npos) {
        return sluice::cli::report_error(std::string(e.what()) + " (from " + origin + ")", 2);
      }
    }
    if (app.get_subcommands().empty()) {
      // No command, or not one of ours: say which ones there are.
      std::string first;
      for (size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--log-level" || args[i] == "--log-file") {
          ++i;  // its value
        } else if (!args[i].empty() && args[i][0] != '-') {
          first = args[i];
          break;
        }
      }
      std::cerr << (first.empty() ? "sluice: a command is required\n" : "sluice: unknown command '" + first + "'\n")
                << command_list(app);
      return 2;
    }
    return app.exit(e);
  }
  if (auto st = sluice::init_logging(logging); !st.is_ok()) {
    return sluice::cli::report_error(st.message(), 2);
  }
  for (auto* sub : app.get_subcommands()) {
    auto it = runners.find(sub);
    if (it != runners.end()) return it->second();
  }
  std::cerr << "sluice: a command is required\n" << command_list(app);
  return 2;
}
