// sluice: one binary for every role (run-local, gen, dev-kafka, jobmanager,
// taskmanager, and the operator's submit/list/status/cancel/savepoint/stop).
#include <CLI/CLI.hpp>

#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "engine/cli/commands.h"
#include "engine/common/logging.h"

int main(int argc, char** argv) {
  CLI::App app{"Sluice: a distributed stream-processing engine for behavioural events"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();

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

  std::vector<std::string> args(argv + 1, argv + argc);
  auto expanded = sluice::cli::expand_config_file(args);
  if (!expanded.is_ok()) return sluice::cli::report_error(expanded.status().message(), 2);
  std::vector<std::string> reversed(expanded->rbegin(), expanded->rend());  // CLI11 takes them reversed
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (auto st = sluice::init_logging(log_level); !st.is_ok()) {
    return sluice::cli::report_error(st.message(), 2);
  }
  for (auto* sub : app.get_subcommands()) {
    auto it = runners.find(sub);
    if (it != runners.end()) return it->second();
  }
  return sluice::cli::report_error("no command given; see sluice --help", 2);
}
