// The operator's commands against a running jobmanager: submit, list,
// status, cancel, savepoint, stop. Tables for people, --output json for
// scripts; non-zero exit codes and messages that say what to do.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "engine/api/job_args.h"
#include "engine/api/job_library.h"
#include "engine/cli/commands.h"
#include "engine/common/json.h"
#include "engine/common/sha256.h"
#include "engine/proto/control.grpc.pb.h"
#include "engine/proto/rpc_auth.h"

namespace sluice::cli {

Result<std::string> read_token_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::not_found("cannot read token file '" + path + "'");
  std::string t;
  std::getline(in, t);
  while (!t.empty() && (t.back() == '\r' || t.back() == ' ')) t.pop_back();
  return t;
}

namespace {

/// Options every client command shares.
struct ClientOptions {
  std::string jobmanager = "127.0.0.1:6123";
  std::string token_file;
  std::string output = "table";
  std::string tls_ca, tls_cert, tls_key;
};

void add_client_options(CLI::App* cmd, ClientOptions& o, bool needs_token) {
  cmd->add_option("--jobmanager", o.jobmanager, "The jobmanager's host:port")
      ->capture_default_str()
      ->envname("SLUICE_JOBMANAGER");
  cmd->add_option("--token-file", o.token_file,
                  std::string("File with the cluster token (default: $SLUICE_TOKEN; the jobmanager writes "
                              "<data-dir>/token)") +
                      (needs_token ? "" : "; needed when the jobmanager runs with --read-access token"))
      ->envname("SLUICE_TOKEN_FILE");
  cmd->add_option("-o,--output", o.output, "table or json")->capture_default_str()->check(CLI::IsMember({"table", "json"}));
  cmd->add_option("--tls-ca", o.tls_ca, "PEM CA certificate of a TLS jobmanager")->envname("SLUICE_TLS_CA");
  cmd->add_option("--tls-cert", o.tls_cert, "PEM client certificate (a jobmanager with mutual TLS asks for one)")
      ->envname("SLUICE_TLS_CERT");
  cmd->add_option("--tls-key", o.tls_key, "PEM private key of --tls-cert")->envname("SLUICE_TLS_KEY");
}

Result<std::string> token_of(const ClientOptions& o) {
  if (!o.token_file.empty()) return read_token_file(o.token_file);
  if (const char* t = std::getenv("SLUICE_TOKEN"); t && *t) return std::string(t);
  return std::string();
}

Result<std::unique_ptr<proto::JobManager::Stub>> connect(const ClientOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(auto creds, rpc::channel_credentials({o.tls_cert, o.tls_key, o.tls_ca}));
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(512 * 1024 * 1024);
  return proto::JobManager::NewStub(grpc::CreateCustomChannel(o.jobmanager, creds, args));
}

/// An RPC error in words that say what to do.
int rpc_error(const ClientOptions& o, const grpc::Status& st) {
  switch (st.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return report_error("jobmanager " + o.jobmanager + " unreachable (" + st.error_message() +
                          "); is `sluice jobmanager` running there? pass --jobmanager host:port");
    case grpc::StatusCode::UNAUTHENTICATED:
      return report_error("refused: " + st.error_message(), 3);
    default:
      return report_error(st.error_message());
  }
}

void deadline(grpc::ClientContext& ctx, int seconds) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

std::string fmt_time(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

void json_kv(std::string& out, const char* k, const std::string& v) {
  json_append_string(out, k);
  out += ':';
  json_append_string(out, v);
}
void json_kv(std::string& out, const char* k, int64_t v) {
  json_append_string(out, k);
  out += ':';
  out += std::to_string(v);
}

std::string summary_json(const proto::JobSummary& s) {
  std::string o = "{";
  json_kv(o, "id", s.job_id());
  o += ',';
  json_kv(o, "name", s.name());
  o += ',';
  json_kv(o, "state", s.state());
  o += ',';
  json_kv(o, "parallelism", s.parallelism());
  o += ',';
  json_kv(o, "submitted_ms", s.submitted_ms());
  o += ',';
  json_kv(o, "restarts", s.restarts());
  o += ',';
  json_kv(o, "last_checkpoint_id", s.last_checkpoint_id());
  o += ',';
  json_kv(o, "last_failure", s.last_failure());
  return o + "}";
}

// ---------------------------------------------------------------- submit

struct SubmitCli {
  ClientOptions c;
  std::string library;
  int parallelism = 1;
  std::vector<std::string> args, settings;
  std::string restore;
  std::string checkpoint_interval;
};

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
  auto lib = api::JobLibrary::load(s.library);
  if (!lib.is_ok()) return report_error(lib.status().message(), 2);
  auto job = api::prepare_job(*lib, po);
  if (!job.is_ok()) return report_error(job.status().message(), 2);
  std::ifstream in(s.library, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  auto token = token_of(s.c);
  if (!token.is_ok()) return report_error(token.status().message(), 2);
  auto stub = connect(s.c);
  if (!stub.is_ok()) return report_error(stub.status().message(), 2);

  proto::SubmitJobRequest req;
  req.set_token(*token);
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
  if (!st.ok()) return rpc_error(s.c, st);
  if (s.c.output == "json") {
    std::string o = "{";
    json_kv(o, "job_id", resp.job_id());
    std::cout << o << "}" << std::endl;
  } else {
    std::cout << resp.job_id() << std::endl;
  }
  return 0;
}

// ---------------------------------------------------------------- list / status

int run_list(ClientOptions& c) {
  auto stub = connect(c);
  if (!stub.is_ok()) return report_error(stub.status().message(), 2);
  proto::ListJobsRequest req;
  if (auto t = token_of(c); t.is_ok()) req.set_token(*t);
  proto::ListJobsResponse resp;
  grpc::ClientContext ctx;
  deadline(ctx, 10);
  grpc::Status st = (*stub)->ListJobs(&ctx, req, &resp);
  if (!st.ok()) return rpc_error(c, st);
  if (c.output == "json") {
    std::string o = "[";
    for (int i = 0; i < resp.jobs_size(); ++i) o += (i ? "," : "") + summary_json(resp.jobs(i));
    std::cout << o << "]" << std::endl;
    return 0;
  }
  std::printf("%-28s %-20s %-11s %4s %8s %10s  %s\n", "JOB ID", "NAME", "STATE", "PAR", "RESTARTS",
              "CHECKPOINT", "SUBMITTED (UTC)");
  for (const auto& j : resp.jobs()) {
    std::printf("%-28s %-20s %-11s %4d %8d %10lld  %s\n", j.job_id().c_str(), j.name().c_str(), j.state().c_str(),
                j.parallelism(), j.restarts(), static_cast<long long>(j.last_checkpoint_id()),
                fmt_time(j.submitted_ms()).c_str());
  }
  if (resp.jobs_size() == 0) std::printf("(no jobs)\n");
  return 0;
}

struct JobCli {
  ClientOptions c;
  std::string job_id;
  std::string path;
  bool savepoint = false;
};

int run_status(JobCli& j) {
  auto stub = connect(j.c);
  if (!stub.is_ok()) return report_error(stub.status().message(), 2);
  proto::JobRequest req;
  req.set_job_id(j.job_id);
  if (auto t = token_of(j.c); t.is_ok()) req.set_token(*t);
  proto::JobStatusResponse r;
  grpc::ClientContext ctx;
  deadline(ctx, 10);
  grpc::Status st = (*stub)->GetJobStatus(&ctx, req, &r);
  if (!st.ok()) return rpc_error(j.c, st);
  if (j.c.output == "json") {
    std::string o = "{\"job\":" + summary_json(r.job()) + ",\"subtasks\":[";
    for (int i = 0; i < r.subtasks_size(); ++i) {
      const auto& t = r.subtasks(i);
      o += i ? ",{" : "{";
      json_kv(o, "vertex", t.vertex());
      o += ',';
      json_kv(o, "name", t.vertex_name());
      o += ',';
      json_kv(o, "subtask", t.subtask());
      o += ',';
      json_kv(o, "taskmanager", t.taskmanager_id());
      o += ',';
      json_kv(o, "state", t.state());
      o += ',';
      json_kv(o, "records_in", static_cast<int64_t>(t.records_in()));
      o += ',';
      json_kv(o, "records_out", static_cast<int64_t>(t.records_out()));
      o += "}";
    }
    o += "],\"checkpoints\":{";
    json_kv(o, "completed", r.checkpoints().completed());
    o += ',';
    json_kv(o, "failed", r.checkpoints().failed());
    o += ',';
    json_kv(o, "last_completed_id", r.checkpoints().last_completed_id());
    o += ',';
    json_kv(o, "last_path", r.checkpoints().last_path());
    o += "},\"restart_causes\":[";
    for (int i = 0; i < r.restart_causes_size(); ++i) {
      if (i) o += ',';
      json_append_string(o, r.restart_causes(i));
    }
    std::cout << o << "]}" << std::endl;
    return 0;
  }
  const auto& s = r.job();
  std::printf("job         %s (%s)\nstate       %s\nparallelism %d\nrestarts    %d\n", s.job_id().c_str(),
              s.name().c_str(), s.state().c_str(), s.parallelism(), s.restarts());
  if (!s.last_failure().empty()) std::printf("last cause  %s\n", s.last_failure().c_str());
  std::printf("checkpoints %lld completed, %lld failed, latest %lld %s\n",
              static_cast<long long>(r.checkpoints().completed()), static_cast<long long>(r.checkpoints().failed()),
              static_cast<long long>(r.checkpoints().last_completed_id()), r.checkpoints().last_path().c_str());
  for (const auto& c : r.restart_causes()) std::printf("restarted   %s\n", c.c_str());
  std::printf("\n%-40s %7s %-36s %-9s %12s %12s\n", "VERTEX", "SUBTASK", "TASKMANAGER", "STATE", "RECORDS IN",
              "RECORDS OUT");
  for (const auto& t : r.subtasks()) {
    std::string name = t.vertex_name().size() > 40 ? t.vertex_name().substr(0, 37) + "..." : t.vertex_name();
    std::printf("%-40s %7d %-36s %-9s %12llu %12llu\n", name.c_str(), t.subtask(), t.taskmanager_id().c_str(),
                t.state().c_str(), static_cast<unsigned long long>(t.records_in()),
                static_cast<unsigned long long>(t.records_out()));
  }
  return 0;
}

int run_cancel(JobCli& j) {
  auto token = token_of(j.c);
  if (!token.is_ok()) return report_error(token.status().message(), 2);
  auto stub = connect(j.c);
  if (!stub.is_ok()) return report_error(stub.status().message(), 2);
  proto::JobRequest req;
  req.set_token(*token);
  req.set_job_id(j.job_id);
  proto::Empty e;
  grpc::ClientContext ctx;
  deadline(ctx, 30);
  grpc::Status st = (*stub)->CancelJob(&ctx, req, &e);
  if (!st.ok()) return rpc_error(j.c, st);
  if (j.c.output == "json") {
    std::cout << "{\"job_id\":\"" << j.job_id << "\",\"state\":\"CANCELED\"}" << std::endl;
  } else {
    std::cout << "cancelled " << j.job_id << std::endl;
  }
  return 0;
}

int run_savepoint(JobCli& j, bool stop) {
  if (stop && !j.savepoint) {
    return report_error("sluice stop needs --savepoint (to end a job without one, use sluice cancel)", 2);
  }
  auto token = token_of(j.c);
  if (!token.is_ok()) return report_error(token.status().message(), 2);
  auto stub = connect(j.c);
  if (!stub.is_ok()) return report_error(stub.status().message(), 2);
  proto::SavepointRequest req;
  req.set_token(*token);
  req.set_job_id(j.job_id);
  req.set_path(j.path);
  req.set_stop(stop);
  proto::SavepointResponse resp;
  grpc::ClientContext ctx;
  deadline(ctx, 330);
  grpc::Status st = (*stub)->TriggerSavepoint(&ctx, req, &resp);
  if (!st.ok()) return rpc_error(j.c, st);
  if (j.c.output == "json") {
    std::string o = "{";
    json_kv(o, "job_id", j.job_id);
    o += ',';
    json_kv(o, "savepoint_id", resp.checkpoint_id());
    o += ',';
    json_kv(o, "path", resp.path());
    std::cout << o << "}" << std::endl;
  } else {
    std::cout << (stop ? "stopped with savepoint " : "savepoint ") << resp.checkpoint_id() << ": " << resp.path()
              << std::endl;
  }
  return 0;
}

CLI::App* job_command(CLI::App& app, const char* name, const char* help, JobCli& j, bool token) {
  auto* cmd = app.add_subcommand(name, help);
  cmd->add_option("job", j.job_id, "Job id (see sluice list)")->required();
  add_client_options(cmd, j.c, token);
  return cmd;
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
  add_client_options(cmd, s->c, true);
  return [s] { return run_submit(*s); };
}

Runner add_list(CLI::App& app) {
  auto c = std::make_shared<ClientOptions>();
  auto* cmd = app.add_subcommand("list", "List the jobmanager's jobs");
  add_client_options(cmd, *c, false);
  return [c] { return run_list(*c); };
}

Runner add_status(CLI::App& app) {
  auto j = std::make_shared<JobCli>();
  job_command(app, "status", "Show a job: state, subtasks and where they run, checkpoints, restarts", *j, false);
  return [j] { return run_status(*j); };
}

Runner add_cancel(CLI::App& app) {
  auto j = std::make_shared<JobCli>();
  job_command(app, "cancel", "Cancel a job (no savepoint)", *j, true);
  return [j] { return run_cancel(*j); };
}

Runner add_savepoint(CLI::App& app) {
  auto j = std::make_shared<JobCli>();
  auto* cmd = job_command(app, "savepoint", "Take a savepoint of a running job", *j, true);
  cmd->add_option("--path", j->path, "Also copy the savepoint into this directory");
  return [j] { return run_savepoint(*j, false); };
}

Runner add_stop(CLI::App& app) {
  auto j = std::make_shared<JobCli>();
  auto* cmd = job_command(app, "stop", "Stop a job with a savepoint", *j, true);
  cmd->add_flag("--savepoint", j->savepoint, "Take a savepoint, then stop (required)");
  cmd->add_option("--path", j->path, "Also copy the savepoint into this directory");
  return [j] { return run_savepoint(*j, true); };
}

}  // namespace sluice::cli
