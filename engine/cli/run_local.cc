// sluice run-local JOB.so: the whole job in this process (the mini cluster).
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <thread>
#include <iostream>
#include <map>

#include "engine/api/job_args.h"
#include "engine/api/job_library.h"
#include "engine/cli/commands.h"
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
};

// Set by SIGINT/SIGTERM; a watcher thread acts on it (handlers must stay trivial).
std::atomic<int> g_signal{0};

void on_signal(int sig) { g_signal.store(sig); }

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

  g_signal.store(0);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::atomic<bool> done{false};
  std::string savepoint_message;
  std::thread watcher([&] {
    while (!done.load()) {
      if (g_signal.load() != 0) {
        if (o.savepoint_on_exit) {
          auto sp = executor.stop_with_savepoint(std::chrono::minutes(5));
          if (sp.is_ok()) {
            savepoint_message = "stopped with savepoint " + std::to_string(sp->meta.id) + ": " + sp->dir;
          } else {
            savepoint_message = "savepoint failed (" + sp.status().to_string() + "); cancelled";
            executor.cancel();
          }
        } else {
          executor.cancel();
        }
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  Status st = executor.run();
  done.store(true);
  watcher.join();
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  const auto& s = executor.summary();
  for (const auto& cause : s.restart_causes) std::cerr << "restarted after: " << cause << std::endl;
  if (!savepoint_message.empty()) {
    std::cerr << savepoint_message << std::endl;
    return savepoint_message.rfind("stopped", 0) == 0 ? 0 : 1;
  }
  if (st.code() == StatusCode::kCancelled && g_signal.load() != 0) {
    std::cerr << "cancelled" << std::endl;
    return 130;
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
  cmd->add_option("--restart-attempts", o->restart_attempts,
                  "Restarts from the latest checkpoint after failures (default 3 with "
                  "checkpointing, else 0)");
  return [o] { return run(*o); };
}

}  // namespace sluice::cli
