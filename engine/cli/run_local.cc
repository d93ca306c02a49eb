// sluice run-local JOB.so: the whole job in this process (the mini cluster).
#include <spdlog/spdlog.h>

#include <future>
#include <iostream>
#include <map>

#include "engine/api/job_args.h"
#include "engine/api/job_library.h"
#include "engine/cli/commands.h"
#include "engine/cli/signal_shutdown.h"
#include "engine/graph/job_graph_builder.h"
#include "engine/runtime/local_executor.h"
#include "state/checkpoint_storage.h"

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
  std::string checkpoint_dir;
  std::string checkpoint_interval;
  std::string restore;
  bool savepoint_on_exit = false;
  int restart_attempts = -1;
  std::string shutdown_timeout;  // default 20s, 5m with --savepoint-on-exit
};

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
  auto bound = parse_duration(o.shutdown_timeout.empty() ? (o.savepoint_on_exit ? "5m" : "20s") : o.shutdown_timeout);
  if (!bound.is_ok() || bound->count() <= 0) return report_error("--shutdown-timeout must be a positive duration", 2);
  // Before any thread exists (a job's build function may start some).
  SignalShutdown signals(*bound);
  auto args = parse_pairs(o.args, "--arg");
  if (!args.is_ok()) return report_error(args.status().message(), 2);
  auto settings = parse_pairs(o.settings, "--set");
  if (!settings.is_ok()) return report_error(settings.status().message(), 2);

  Configuration config(*settings);
  if (!o.checkpoint_dir.empty()) config.set("checkpoint.dir", o.checkpoint_dir);
  if (!o.checkpoint_interval.empty()) {
    auto d = parse_duration(o.checkpoint_interval);
    if (!d.is_ok()) return report_error("--checkpoint-interval: " + d.status().message(), 2);
    config.set("checkpoint.interval", o.checkpoint_interval);
    if (o.checkpoint_dir.empty() && !config.contains("checkpoint.dir")) {
      return report_error("--checkpoint-interval needs --checkpoint-dir (where checkpoints go)", 2);
    }
  }
  if (o.savepoint_on_exit && !config.contains("checkpoint.dir")) {
    return report_error("--savepoint-on-exit needs --checkpoint-dir (where the savepoint goes)", 2);
  }

  auto lib = api::JobLibrary::load(o.library);
  if (!lib.is_ok()) return report_error(lib.status().message(), 2);
  api::PrepareOptions po;
  po.parallelism = o.parallelism;
  po.args = *args;
  po.config = config;
  auto job = api::prepare_job(*lib, po);
  if (!job.is_ok()) return report_error(job.status().message(), 2);

  std::cerr << graph::describe_job_graph(*job->instance->job_graph);
  if (o.plan_only) return 0;

  runtime::LocalRunOptions ro;
  if (!o.restore.empty()) {
    auto cp = state::CheckpointStorage::resolve_restore_point(
        o.restore, job->instance->config.get_string("checkpoint.dir", ""), job->instance->job_id);
    if (!cp.is_ok()) return report_error("--restore: " + cp.status().message(), 2);
    std::cerr << "restoring from " << (cp->meta.savepoint ? "savepoint " : "checkpoint ")
              << cp->meta.id << " (" << cp->dir << ")" << std::endl;
    ro.restore = std::move(*cp);
  }
  ro.restart.max_attempts =
      o.restart_attempts >= 0 ? o.restart_attempts : (job->instance->checkpoints ? 3 : 0);
  runtime::LocalExecutor executor(job->instance, ro);

  // SIGINT/SIGTERM: cancel the job (or stop it with a savepoint) and
  // wait for run() to return, all within the bound.
  std::promise<void> ran;
  std::shared_future<void> run_returned = ran.get_future().share();
  std::string savepoint_message;
  signals.watch([&] {
    if (o.savepoint_on_exit) {
      // Four fifths of the bound: the rest is for a cancel if it fails.
      auto sp = executor.stop_with_savepoint(Duration(bound->count() * 4 / 5));
      if (sp.is_ok()) {
        savepoint_message = "stopped with savepoint " + std::to_string(sp->meta.id) + ": " + sp->dir;
      } else {
        savepoint_message = "savepoint failed (" + sp.status().to_string() + "); cancelled";
        executor.cancel();
      }
    } else {
      executor.cancel();
    }
    run_returned.wait();
  });
  Status st = executor.run();
  ran.set_value();
  signals.finish();
  const int sig = signals.signal();
  const auto& s = executor.summary();
  for (const auto& cause : s.restart_causes) std::cerr << "restarted after: " << cause << std::endl;
  if (!savepoint_message.empty()) {
    std::cerr << savepoint_message << std::endl;
    return savepoint_message.rfind("stopped", 0) == 0 ? 0 : 1;
  }
  if (st.code() == StatusCode::kCancelled && sig != 0) {
    // SIGTERM is how a service is stopped: a clean stop exits 0. SIGINT
    // (Ctrl-C) keeps the shell's 130, so a script sees the interruption.
    std::cerr << "cancelled on " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
              << "; the job did not finish" << std::endl;
    spdlog::default_logger()->flush();
    return sig == SIGTERM ? 0 : 130;
  }
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
  cmd->add_option("--checkpoint-dir", o->checkpoint_dir,
                  "Checkpoint storage (file:///path or a path); enables exactly-once sinks");
  cmd->add_option("--checkpoint-interval", o->checkpoint_interval,
                  "Time between checkpoints, e.g. 500ms, 10s (needs --checkpoint-dir)");
  cmd->add_option("--restore", o->restore,
                  "Start from 'latest' (in --checkpoint-dir) or a checkpoint/savepoint path");
  cmd->add_flag("--savepoint-on-exit", o->savepoint_on_exit,
                "On SIGINT/SIGTERM take a savepoint, then stop (needs --checkpoint-dir)");
  cmd->add_option("--shutdown-timeout", o->shutdown_timeout,
                  "On SIGINT/SIGTERM: longest clean stop (cancel, or the savepoint) before the process exits "
                  "anyway with code 1 (default 20s; 5m with --savepoint-on-exit)");
  cmd->add_option("--restart-attempts", o->restart_attempts,
                  "Restarts from the latest checkpoint after failures (default 3 with "
                  "checkpointing, else 0)");
  return [o] { return run(*o); };
}

}  // namespace sluice::cli
