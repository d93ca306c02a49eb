// The operator's commands against a running jobmanager: list, status,
// cancel, savepoint (and disposal), stop, logs; what every client command
// shares. Tables for people, --output json for scripts; non-zero exit
// codes and messages that say what to do. submit is in submit.cc.
#include "engine/cli/client.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "engine/cli/commands.h"
#include "engine/common/clock.h"
#include "engine/common/http_server.h"
#include "engine/common/json.h"
#include "engine/ha/leader_election.h"
#include "engine/jobmanager/http_api.h"
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

void add_client_options(CLI::App* cmd, ClientOptions& o, bool needs_token) {
  cmd->add_option("--jobmanager", o.jobmanager,
                  "The jobmanager's host:port, or etcd://HOST:PORT[,...]/CLUSTER for the leader of standby jobmanagers")
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

Result<Token> token_of(const ClientOptions& o) {
  if (!o.token_file.empty()) {
    SLUICE_ASSIGN_OR_RETURN(std::string t, read_token_file(o.token_file));
    return Token{t, "--token-file " + o.token_file};
  }
  if (const char* t = std::getenv("SLUICE_TOKEN"); t && *t) return Token{t, "SLUICE_TOKEN"};
  return Token{};
}

Result<std::unique_ptr<proto::JobManager::Stub>> connect(const ClientOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(auto creds, rpc::channel_credentials({o.tls_cert, o.tls_key, o.tls_ca}));
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(512 * 1024 * 1024);
  args.SetMaxReceiveMessageSize(64 * 1024 * 1024);
  std::string address = o.jobmanager;
  if (ha::HaConfig::is_ha_uri(address)) {
    // Standby jobmanagers: ask etcd which one leads.
    SLUICE_ASSIGN_OR_RETURN(auto cfg, ha::HaConfig::parse(address));
    SLUICE_ASSIGN_OR_RETURN(auto leader, ha::lookup_leader(cfg));
    address = leader.address;
  }
  return proto::JobManager::NewStub(grpc::CreateCustomChannel(address, creds, args));
}

namespace {

/// Whether something accepts TCP connections at host:port (1 s at most):
/// tells "nothing listens" from "it listens, but the handshake failed".
bool tcp_accepts(const std::string& address) {
  std::string host;
  int port = 0;
  if (!split_host_port(address, host, port)) return false;
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) return false;
  bool ok = false;
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    int rc = ::connect(fd, res->ai_addr, res->ai_addrlen);
    if (rc == 0) {
      ok = true;
    } else if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 1000) == 1) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        ok = err == 0;
      }
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return ok;
}

/// "; for the local cluster …: source its env file" when deploy/local's
/// env file exists (it sets SLUICE_JOBMANAGER and SLUICE_TOKEN_FILE).
std::string local_cluster_hint() {
  const char* local = std::getenv("SLUICE_LOCAL_DIR");
  std::string env = std::string(local && *local ? local : "/tmp/sluice-local") + "/env";
  if (!std::filesystem::exists(env)) return "";
  return "; for the local cluster of deploy/local (quickstart): `set -a; . " + env + "; set +a`";
}

}  // namespace

int rpc_error(const ClientOptions& o, const grpc::Status& st, const Token& token) {
  switch (st.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED: {
      if (tcp_accepts(o.jobmanager)) {
        // Something listens there: the failure is in the handshake.
        bool tls = !o.tls_ca.empty();
        return report_error("jobmanager " + o.jobmanager + " accepts connections but the " +
                            (tls ? "TLS " : "") + "handshake failed (" + st.error_message() + "): " +
                            (tls ? "is it a plain (non-TLS) jobmanager, or does --tls-ca not match its certificate "
                                   "(or does it want a client certificate: --tls-cert/--tls-key)?"
                                 : "is it a TLS jobmanager? pass --tls-ca CA.pem (and --tls-cert/--tls-key if it "
                                   "wants a client certificate), or SLUICE_TLS_CA"));
      }
      std::string hint = "is `sluice jobmanager` running there? pass --jobmanager host:port or set SLUICE_JOBMANAGER";
      return report_error("jobmanager " + o.jobmanager + " unreachable (" + st.error_message() + "); " + hint +
                          local_cluster_hint());
    }
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return report_error("refused: " + st.error_message() +
                              (token.source.empty() ? local_cluster_hint() : " (token from " + token.source + ")"),
                          3);
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

namespace {

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
  json_kv(o, "ended_ms", s.ended_ms());
  o += ',';
  json_kv(o, "restarts", s.restarts());
  o += ',';
  json_kv(o, "last_checkpoint_id", s.last_checkpoint_id());
  o += ',';
  json_kv(o, "checkpoints_completed", s.checkpoints_completed());
  o += ',';
  json_kv(o, "last_failure", s.last_failure());
  o += ',';
  json_kv(o, "last_recovery_ms", s.last_recovery_ms());
  o += ',';
  json_kv(o, "recent_failures", s.recent_failures());
  o += s.gave_up() ? ",\"gave_up\":true" : ",\"gave_up\":false";
  return o + "}";
}

std::string fmt_watermark(const proto::SubtaskStatus& t) {
  if (t.watermark_ms() == INT64_MIN) return "-";
  if (t.watermark_ms() == INT64_MAX) return "end";
  return fmt_time(t.watermark_ms());
}

// ---------------------------------------------------------------- list / status

int run_list(ClientOptions& c) {
  auto stub = connect(c);
  if (!stub.is_ok()) return report_error(stub.status().message(), 2);
  proto::ListJobsRequest req;
  auto token = token_of(c);
  if (token.is_ok()) req.set_token(token->value);
  proto::ListJobsResponse resp;
  grpc::ClientContext ctx;
  deadline(ctx, 10);
  grpc::Status st = (*stub)->ListJobs(&ctx, req, &resp);
  if (!st.ok()) return rpc_error(c, st, token.is_ok() ? *token : Token{});
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
  std::string dispose;
  bool savepoint = false;
  std::string taskmanager;
  int lines = 200;
};

int run_status(JobCli& j) {
  auto stub = connect(j.c);
  if (!stub.is_ok()) return report_error(stub.status().message(), 2);
  proto::JobRequest req;
  req.set_job_id(j.job_id);
  auto token = token_of(j.c);
  if (token.is_ok()) req.set_token(token->value);
  proto::JobStatusResponse r;
  grpc::ClientContext ctx;
  deadline(ctx, 10);
  grpc::Status st = (*stub)->GetJobStatus(&ctx, req, &r);
  if (!st.ok()) return rpc_error(j.c, st, token.is_ok() ? *token : Token{});
  if (j.c.output == "json") {
    std::cout << jobmanager::job_status_json(r, SystemClock::instance().now_ms()) << std::endl;
    return 0;
  }
  const auto& s = r.job();
  std::printf("job         %s (%s)\nstate       %s\nparallelism %d\nrestarts    %d\n", s.job_id().c_str(),
              s.name().c_str(), s.state().c_str(), s.parallelism(), s.restarts());
  if (!s.last_failure().empty()) std::printf("last cause  %s\n", s.last_failure().c_str());
  if (r.has_restored_from()) {
    const auto& f = r.restored_from();
    std::printf("restored    attempt %d from %s %lld: %s\n", f.attempt(), f.savepoint() ? "savepoint" : "checkpoint",
                static_cast<long long>(f.checkpoint_id()), f.path().c_str());
  } else {
    std::printf("restored    no (attempt %d started fresh)\n", r.attempt());
  }
  std::printf("checkpoints %lld completed, %lld failed, latest %lld %s\n",
              static_cast<long long>(r.checkpoints().completed()), static_cast<long long>(r.checkpoints().failed()),
              static_cast<long long>(r.checkpoints().last_completed_id()), r.checkpoints().last_path().c_str());
  // The latest failures (all of them are in -o json and on the dashboard).
  const int nf = r.failures_size();
  for (int i = std::max(0, nf - 5); i < nf; ++i) {
    const auto& f = r.failures(i);
    std::printf("failure     %s attempt %d%s%s: %s\n", fmt_time(f.time_ms()).c_str(), f.attempt(),
                f.task().empty() ? "" : (" " + f.task()).c_str(),
                f.permanent() ? " (permanent: job failed)" : f.restarted() ? " (restarted)" : "",
                f.message().c_str());
  }
  std::printf("\n%-40s %7s %-24s %-9s %12s %12s %9s %6s %6s  %s\n", "VERTEX", "SUBTASK", "TASKMANAGER", "STATE",
              "RECORDS IN", "RECORDS OUT", "OUT/S", "BUSY", "BACKPR", "WATERMARK (UTC)");
  for (const auto& t : r.subtasks()) {
    std::string name = t.vertex_name().size() > 40 ? t.vertex_name().substr(0, 37) + "..." : t.vertex_name();
    std::printf("%-40s %7d %-24s %-9s %12llu %12llu %9.0f %5.0f%% %5.0f%%  %s\n", name.c_str(), t.subtask(),
                t.taskmanager_id().c_str(), t.state().c_str(), static_cast<unsigned long long>(t.records_in()),
                static_cast<unsigned long long>(t.records_out()), t.records_out_per_s(), t.busy() * 100,
                t.backpressure() * 100, fmt_watermark(t).c_str());
  }
  return 0;
}

int run_cancel(JobCli& j) {
  auto token = token_of(j.c);
  if (!token.is_ok()) return report_error(token.status().message(), 2);
  auto stub = connect(j.c);
  if (!stub.is_ok()) return report_error(stub.status().message(), 2);
  proto::JobRequest req;
  req.set_token(token->value);
  req.set_job_id(j.job_id);
  proto::Empty e;
  grpc::ClientContext ctx;
  deadline(ctx, 30);
  grpc::Status st = (*stub)->CancelJob(&ctx, req, &e);
  if (!st.ok()) return rpc_error(j.c, st, *token);
  if (j.c.output == "json") {
    std::cout << "{\"job_id\":\"" << j.job_id << "\",\"state\":\"CANCELED\"}" << std::endl;
  } else {
    std::cout << "cancelled " << j.job_id << std::endl;
  }
  return 0;
}

int run_dispose(JobCli& j) {
  auto token = token_of(j.c);
  if (!token.is_ok()) return report_error(token.status().message(), 2);
  auto stub = connect(j.c);
  if (!stub.is_ok()) return report_error(stub.status().message(), 2);
  proto::DisposeSavepointRequest req;
  req.set_token(token->value);
  req.set_path(j.dispose);
  proto::Empty e;
  grpc::ClientContext ctx;
  deadline(ctx, 60);
  grpc::Status st = (*stub)->DisposeSavepoint(&ctx, req, &e);
  if (!st.ok()) return rpc_error(j.c, st, *token);
  if (j.c.output == "json") {
    std::string o = "{";
    json_kv(o, "disposed", j.dispose);
    std::cout << o << "}" << std::endl;
  } else {
    std::cout << "disposed of savepoint " << j.dispose << std::endl;
  }
  return 0;
}

int run_savepoint(JobCli& j, bool stop) {
  if (!stop && !j.dispose.empty()) {
    if (!j.job_id.empty()) return report_error("savepoint --dispose PATH takes no job id", 2);
    return run_dispose(j);
  }
  if (j.job_id.empty()) return report_error(std::string("sluice ") + (stop ? "stop" : "savepoint") + " needs a job id (see sluice list)", 2);
  if (stop && !j.savepoint) {
    return report_error("sluice stop needs --savepoint (to end a job without one, use sluice cancel)", 2);
  }
  auto token = token_of(j.c);
  if (!token.is_ok()) return report_error(token.status().message(), 2);
  auto stub = connect(j.c);
  if (!stub.is_ok()) return report_error(stub.status().message(), 2);
  proto::SavepointRequest req;
  req.set_token(token->value);
  req.set_job_id(j.job_id);
  req.set_path(j.path);
  req.set_stop(stop);
  proto::SavepointResponse resp;
  grpc::ClientContext ctx;
  deadline(ctx, 330);
  grpc::Status st = (*stub)->TriggerSavepoint(&ctx, req, &resp);
  if (!st.ok()) return rpc_error(j.c, st, *token);
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

int run_logs(JobCli& j) {
  auto stub = connect(j.c);
  if (!stub.is_ok()) return report_error(stub.status().message(), 2);
  proto::LogRequest req;
  auto token = token_of(j.c);
  if (token.is_ok()) req.set_token(token->value);
  req.set_job_id(j.job_id);
  req.set_taskmanager_id(j.taskmanager);
  req.set_max_lines(j.lines);
  proto::LogResponse resp;
  grpc::ClientContext ctx;
  deadline(ctx, 20);
  grpc::Status st = (*stub)->GetLogs(&ctx, req, &resp);
  if (!st.ok()) return rpc_error(j.c, st, token.is_ok() ? *token : Token{});
  if (j.c.output == "json") {
    std::string o = "[";
    for (int i = 0; i < resp.logs_size(); ++i) {
      const auto& l = resp.logs(i);
      o += i ? ",{" : "{";
      json_kv(o, "source", l.source());
      o += ',';
      json_kv(o, "error", l.error());
      o += ",\"lines\":[";
      for (int k = 0; k < l.lines_size(); ++k) {
        if (k) o += ',';
        json_append_string(o, l.lines(k));
      }
      o += "]}";
    }
    std::cout << o << "]" << std::endl;
    return 0;
  }
  for (const auto& l : resp.logs()) {
    std::cout << "== " << l.source() << (l.error().empty() ? "" : " (" + l.error() + ")") << "\n";
    for (const auto& line : l.lines()) std::cout << line << "\n";
  }
  std::cout.flush();
  return 0;
}

CLI::App* job_command(CLI::App& app, const char* name, const char* help, JobCli& j, bool token) {
  auto* cmd = app.add_subcommand(name, help);
  cmd->add_option("job", j.job_id, "Job id (see sluice list)")->required();
  add_client_options(cmd, j.c, token);
  return cmd;
}

}  // namespace

Runner add_list(CLI::App& app) {
  auto c = std::make_shared<ClientOptions>();
  auto* cmd = app.add_subcommand("list", "List the jobmanager's jobs");
  add_client_options(cmd, *c, false);
  return [c] { return run_list(*c); };
}

Runner add_status(CLI::App& app) {
  auto j = std::make_shared<JobCli>();
  job_command(app, "status", "Show a job: state, subtasks and their rates, checkpoints, restore, failures", *j, false);
  return [j] { return run_status(*j); };
}

Runner add_cancel(CLI::App& app) {
  auto j = std::make_shared<JobCli>();
  job_command(app, "cancel", "Cancel a job (no savepoint)", *j, true);
  return [j] { return run_cancel(*j); };
}

Runner add_savepoint(CLI::App& app) {
  auto j = std::make_shared<JobCli>();
  auto* cmd = app.add_subcommand("savepoint", "Take a savepoint of a running job, or dispose of one (--dispose)");
  cmd->add_option("job", j->job_id, "Job id (see sluice list)");
  add_client_options(cmd, j->c, true);
  cmd->add_option("--path", j->path, "Also copy the savepoint into this directory");
  cmd->add_option("--dispose", j->dispose,
                  "Delete the savepoint at this path (refused while a job started from it has no checkpoint of "
                  "its own)");
  return [j] { return run_savepoint(*j, false); };
}

Runner add_stop(CLI::App& app) {
  auto j = std::make_shared<JobCli>();
  auto* cmd = job_command(app, "stop", "Stop a job with a savepoint", *j, true);
  cmd->add_flag("--savepoint", j->savepoint, "Take a savepoint, then stop (required)");
  cmd->add_option("--path", j->path, "Also copy the savepoint into this directory");
  return [j] { return run_savepoint(*j, true); };
}

Runner add_logs(CLI::App& app) {
  auto j = std::make_shared<JobCli>();
  auto* cmd = app.add_subcommand(
      "logs", "Show the latest log lines about a job from the jobmanager and the taskmanagers that run it");
  cmd->add_option("job", j->job_id, "Job id (see sluice list); without one, every line")->required(false);
  cmd->add_option("--taskmanager", j->taskmanager, "Only this taskmanager's lines");
  cmd->add_option("-n,--lines", j->lines, "Lines per process (at most 5000)")->capture_default_str()->check(CLI::Range(1, 5000));
  add_client_options(cmd, j->c, false);
  return [j] { return run_logs(*j); };
}

}  // namespace sluice::cli
