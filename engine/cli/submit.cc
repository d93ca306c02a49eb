// `sluice submit`: builds the job graph from the library and its arguments,
// checks what can be checked here (arguments, URIs, that input files
// exist), uploads it, and with --wait follows the job to its end: progress
// on a terminal (one updating line) or plain lines when not on one, exit 0
// only when it FINISHED — what a scheduler (Airflow, cron) runs.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "engine/api/job_args.h"
#include "engine/api/job_library.h"
#include "engine/cli/client.h"
#include "engine/cli/commands.h"
#include "engine/common/clock.h"
#include "engine/common/json.h"
#include "engine/common/sha256.h"
#include "engine/jobmanager/http_api.h"

namespace sluice::cli {

namespace {

struct SubmitCli {
  ClientOptions c;
  std::string library;
  int parallelism = 1;
  std::vector<std::string> args, settings;
  std::string restore;
  std::string checkpoint_interval;
  bool wait = false;
  bool cancel_on_interrupt = false;
  bool skip_input_check = false;
  std::string timeout;
  std::string progress = "auto";
};

/// Exit codes of --wait.
constexpr int kExitFailed = 1, kExitCanceled = 4, kExitTimeout = 5, kExitLost = 6, kExitInterrupted = 130;

std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) { g_signal.store(sig); }

/// What --wait prints about a job.
struct Progress {
  std::string state;
  uint64_t read = 0, written = 0;
  double read_per_s = 0;
  int64_t watermark = INT64_MIN;  // lowest of the sinks' (INT64_MAX: input ended)
  int64_t checkpoints = 0;
  int restarts = 0;
};

Progress progress_of(const proto::JobStatusResponse& r) {
  Progress p;
  p.state = r.job().state();
  p.checkpoints = r.checkpoints().completed();
  p.restarts = r.job().restarts();
  const auto& g = r.job_graph();
  std::vector<bool> source(g.vertices_size()), sink(g.vertices_size(), true), dlq(g.vertices_size());
  for (const auto& v : g.vertices()) {
    source[v.id()] = v.is_source();
    dlq[v.id()] = v.is_dead_letter_sink();
  }
  for (const auto& e : g.edges())
    if (!e.dead_letter()) sink[e.source_vertex()] = false;
  int64_t wm = INT64_MAX;
  bool any = false;
  for (const auto& t : r.subtasks()) {
    if (t.vertex() < 0 || t.vertex() >= g.vertices_size() || dlq[t.vertex()]) continue;
    if (source[t.vertex()]) {
      p.read += t.records_in();  // a source's records_in: what it read
      p.read_per_s += t.records_in_per_s();
    }
    if (sink[t.vertex()]) {
      p.written += t.records_in();
      wm = std::min(wm, t.watermark_ms());
      any = true;
    }
  }
  p.watermark = any ? wm : INT64_MIN;
  return p;
}

std::string describe(const Progress& p) {
  std::string wm = p.watermark == INT64_MIN ? "none yet" : p.watermark == INT64_MAX ? "end of input" : fmt_time(p.watermark);
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-10s read %llu records (%.0f/s), wrote %llu, watermark %s, %lld checkpoints%s",
                p.state.c_str(), static_cast<unsigned long long>(p.read), p.read_per_s,
                static_cast<unsigned long long>(p.written), wm.c_str(), static_cast<long long>(p.checkpoints),
                p.restarts ? (", " + std::to_string(p.restarts) + " restarts").c_str() : "");
  return buf;
}

/// Follows `job_id` until it ends; returns the exit code.
int wait_for_job(SubmitCli& s, proto::JobManager::Stub& stub, const Token& token, const std::string& job_id) {
  const bool tty = s.progress == "tty" || (s.progress == "auto" && ::isatty(STDERR_FILENO));
  Duration limit{0};
  if (!s.timeout.empty()) limit = *parse_duration(s.timeout);  // checked before submitting
  if (s.cancel_on_interrupt) {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
  }
  const auto start = std::chrono::steady_clock::now();
  auto last_ok = start;
  auto last_line = start - std::chrono::hours(1);
  std::string last_state;
  proto::JobStatusResponse r;
  for (;;) {
    proto::JobRequest req;
    req.set_job_id(job_id);
    req.set_token(token.value);
    grpc::ClientContext ctx;
    deadline(ctx, 10);
    grpc::Status st = stub.GetJobStatus(&ctx, req, &r);
    const auto now = std::chrono::steady_clock::now();
    if (!st.ok()) {
      if (st.error_code() != grpc::StatusCode::UNAVAILABLE && st.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
        return rpc_error(s.c, st, token);
      }
      // A jobmanager restarting on its data dir resumes the job: wait a while.
      if (now - last_ok > std::chrono::seconds(60)) {
        report_error("lost the jobmanager " + s.c.jobmanager + " for 60 s while waiting for job " + job_id + ": " +
                     st.error_message() + " (the job may still run: sluice status " + job_id + ")");
        return kExitLost;
      }
    } else {
      last_ok = now;
      Progress p = progress_of(r);
      const bool ended = p.state == "FINISHED" || p.state == "FAILED" || p.state == "CANCELED";
      if (tty) {
        std::fprintf(stderr, "\r\033[K%s", describe(p).c_str());
        if (ended) std::fprintf(stderr, "\n");
      } else if (ended || p.state != last_state || now - last_line >= std::chrono::seconds(10)) {
        std::fprintf(stderr, "%s %s\n", job_id.c_str(), describe(p).c_str());
        last_line = now;
      }
      std::fflush(stderr);
      last_state = p.state;
      if (ended) break;
    }
    if (int sig = g_signal.load()) {
      if (tty) std::fprintf(stderr, "\n");
      proto::JobRequest c;
      c.set_job_id(job_id);
      c.set_token(token.value);
      proto::Empty e;
      grpc::ClientContext cctx;
      deadline(cctx, 30);
      grpc::Status cs = stub.CancelJob(&cctx, c, &e);
      report_error(std::string("interrupted (") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + "): " +
                   (cs.ok() ? "cancelled job " + job_id : "cancelling job " + job_id + " failed: " + cs.error_message()));
      return kExitInterrupted;
    }
    if (limit.count() > 0 && now - start > std::chrono::milliseconds(limit.count())) {
      if (tty) std::fprintf(stderr, "\n");
      report_error("job " + job_id + " did not end within --timeout " + s.timeout +
                   "; it keeps running (sluice cancel " + job_id + " to stop it)");
      return kExitTimeout;
    }
    for (int i = 0; i < 10 && g_signal.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const auto& j = r.job();
  const double secs = static_cast<double>(j.ended_ms() > 0 ? j.ended_ms() - j.submitted_ms() : 0) / 1000.0;
  if (s.c.output == "json") {
    std::cout << jobmanager::job_status_json(r, SystemClock::instance().now_ms()) << std::endl;
  }
  if (j.state() == "FINISHED") {
    std::fprintf(stderr, "job %s FINISHED in %.1f s\n", job_id.c_str(), secs);
    return 0;
  }
  std::string cause = j.last_failure();
  if (r.failures_size() > 0) cause = r.failures(r.failures_size() - 1).message();
  report_error("job " + job_id + " " + j.state() + (cause.empty() ? "" : ": " + cause));
  return j.state() == "CANCELED" ? kExitCanceled : kExitFailed;
}

int run_submit(SubmitCli& s) {
  api::PrepareOptions po;
  po.parallelism = s.parallelism;
  for (const auto& item : s.args) {
    std::string k, v;
    if (!api::parse_key_value(item, k, v)) return report_error("--arg '" + item + "' must look like key=value", 2);
    po.args[k] = v;
  }
  for (const auto& item : s.settings) {
    std::string k, v;
    if (!api::parse_key_value(item, k, v)) return report_error("--set '" + item + "' must look like key=value", 2);
    po.config.set(k, v);
  }
  if (!s.checkpoint_interval.empty()) {
    auto d = parse_duration(s.checkpoint_interval);
    if (!d.is_ok()) return report_error("--checkpoint-interval: " + d.status().message(), 2);
    po.config.set("checkpoint.interval", s.checkpoint_interval);
  }
  if (!s.timeout.empty()) {
    if (!s.wait) return report_error("--timeout goes with --wait", 2);
    auto d = parse_duration(s.timeout);
    if (!d.is_ok()) return report_error("--timeout: " + d.status().message(), 2);
  }
  if (s.cancel_on_interrupt && !s.wait) return report_error("--cancel-on-interrupt goes with --wait", 2);
  auto lib = api::JobLibrary::load(s.library);
  if (!lib.is_ok()) return report_error(lib.status().message(), 2);
  auto job = api::prepare_job(*lib, po);
  if (!job.is_ok()) return report_error(job.status().message(), 2);
  if (!s.skip_input_check) {
    // Inputs that do not exist would fail the job at its first start.
    if (auto st = api::check_sources(*job); !st.is_ok()) {
      return report_error(st.message() + " (checked on this machine; --skip-input-check if only the "
                                         "taskmanagers can see it)",
                          2);
    }
  }
  std::ifstream in(s.library, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  auto token = token_of(s.c);
  if (!token.is_ok()) return report_error(token.status().message(), 2);
  auto stub = connect(s.c);
  if (!stub.is_ok()) return report_error(stub.status().message(), 2);

  proto::SubmitJobRequest req;
  req.set_token(token->value);
  *req.mutable_job_graph() = *job->instance->job_graph;
  req.set_library(bytes.str());
  req.set_library_sha256(sha256_hex(req.library()));
  req.set_library_name(s.library.substr(s.library.find_last_of('/') + 1));
  req.set_parallelism(s.parallelism);
  req.set_restore_path(s.restore);
  proto::SubmitJobResponse resp;
  grpc::ClientContext ctx;
  deadline(ctx, 60);
  grpc::Status st = (*stub)->SubmitJob(&ctx, req, &resp);
  if (!st.ok()) return rpc_error(s.c, st, *token);
  if (s.c.output == "json" && !s.wait) {
    std::string o = "{\"job_id\":";
    json_append_string(o, resp.job_id());
    std::cout << o << "}" << std::endl;
  } else if (s.c.output != "json") {
    std::cout << resp.job_id() << std::endl;  // first, so scripts can read it while the job runs
  }
  if (!s.wait) return 0;
  return wait_for_job(s, **stub, *token, resp.job_id());
}

}  // namespace

Runner add_submit(CLI::App& app) {
  auto s = std::make_shared<SubmitCli>();
  auto* cmd = app.add_subcommand("submit", "Submit a job library to the jobmanager; prints the job id");
  cmd->add_option("job", s->library, "The job library (.so) built with SLUICE_JOB")->required();
  cmd->add_option("-p,--parallelism", s->parallelism, "Subtasks per operator")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--arg", s->args, "Job argument key=value (repeatable)");
  cmd->add_option("--set", s->settings, "Job configuration key=value, e.g. state.backend=rocksdb (repeatable)");
  cmd->add_option("--checkpoint-interval", s->checkpoint_interval, "Time between checkpoints, e.g. 1s");
  cmd->add_option("--restore", s->restore, "Start from this checkpoint or savepoint directory");
  cmd->add_flag("--wait", s->wait,
                "Follow the job until it ends, printing progress; exit 0 only if it FINISHED (1 failed, 4 "
                "cancelled, 5 --timeout, 6 jobmanager lost, 130 interrupted)");
  cmd->add_option("--timeout", s->timeout, "With --wait: give up waiting after this long (the job keeps running)");
  cmd->add_flag("--cancel-on-interrupt", s->cancel_on_interrupt,
                "With --wait: SIGINT/SIGTERM cancel the job (a scheduler killing its task stops the job too)");
  cmd->add_option("--progress", s->progress,
                  "With --wait: tty (one updating line), plain (a line every 10 s and on changes), or auto")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "tty", "plain"}));
  cmd->add_flag("--skip-input-check", s->skip_input_check,
                "Do not check here that file inputs exist (when only the taskmanagers see them)");
  add_client_options(cmd, s->c, true);
  return [s] { return run_submit(*s); };
}

}  // namespace sluice::cli
