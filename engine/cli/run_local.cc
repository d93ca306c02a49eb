// sluice run-local JOB.so: the whole job in this process (the mini cluster).
#include <spdlog/spdlog.h>

#include <csignal>
#include <iostream>
#include <map>

#include "engine/api/job_args.h"
#include "engine/api/job_library.h"
#include "engine/cli/commands.h"
#include "engine/graph/job_graph_builder.h"
#include "engine/runtime/local_executor.h"

namespace sluice::cli {

int report_error(const std::string& message, int code) {
  std::cerr << "error: " << message << std::endl;
  return code;
}

namespace {

struct RunLocalOptions {
  std::string library;
  int parallelism = 1;
  std::vector<std::string> args;
  std::vector<std::string> settings;
  bool plan_only = false;
};

runtime::LocalExecutor* g_running = nullptr;

void on_signal(int) {
  if (g_running) g_running->cancel();
}

Result<std::map<std::string, std::string>> parse_pairs(const std::vector<std::string>& items,
                                                       const char* flag) {
  std::map<std::string, std::string> out;
  for (const auto& item : items) {
    std::string k, v;
    if (!api::parse_key_value(item, k, v)) {
      return Status::invalid_argument(std::string(flag) + " '" + item + "' must look like key=value");
    }
    out[k] = v;
  }
  return out;
}

int run(const RunLocalOptions& o) {
  auto args = parse_pairs(o.args, "--arg");
  if (!args.is_ok()) return report_error(args.status().message(), 2);
  auto settings = parse_pairs(o.settings, "--set");
  if (!settings.is_ok()) return report_error(settings.status().message(), 2);

  auto lib = api::JobLibrary::load(o.library);
  if (!lib.is_ok()) return report_error(lib.status().message(), 2);
  api::PrepareOptions po;
  po.parallelism = o.parallelism;
  po.args = *args;
  po.config = Configuration(*settings);
  auto job = api::prepare_job(*lib, po);
  if (!job.is_ok()) return report_error(job.status().message(), 2);

  std::cerr << graph::describe_job_graph(*job->instance->job_graph);
  if (o.plan_only) return 0;

  runtime::LocalRunOptions ro;
  runtime::LocalExecutor executor(job->instance, ro);
  g_running = &executor;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  Status st = executor.run();
  g_running = nullptr;
  const auto& s = executor.summary();
  if (!st.is_ok()) return report_error(st.to_string());
  std::cerr << "finished in " << s.seconds << " s; dead letters: " << s.dead_letters << std::endl;
  return 0;
}

}  // namespace

Runner add_run_local(CLI::App& app) {
  auto o = std::make_shared<RunLocalOptions>();
  auto* cmd = app.add_subcommand("run-local",
                                 "Run a job library in this process with N subtasks per operator");
  cmd->add_option("job", o->library, "The job library (.so) built with SLUICE_JOB")->required();
  cmd->add_option("-p,--parallelism", o->parallelism, "Subtasks per operator")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--arg", o->args, "Job argument key=value (repeatable)");
  cmd->add_option("--set", o->settings,
                  "Job configuration key=value, e.g. state.backend=heap (repeatable)");
  cmd->add_flag("--plan", o->plan_only, "Print the execution plan and exit");
  return [o] { return run(*o); };
}

}  // namespace sluice::cli
