// sluice jobmanager / sluice taskmanager: the cluster's two processes.
// Settings come from flags, a TOML/INI file (--config) and SLUICE_*
// environment variables; flags win.
#include <pthread.h>

#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <functional>
#include <iostream>
#include <thread>
#include <tuple>

#include "engine/cli/commands.h"
#include "engine/cli/signal_shutdown.h"
#include "engine/common/auth.h"
#include "engine/common/time.h"
#include "engine/jobmanager/jobmanager.h"
#include "engine/taskmanager/taskmanager.h"

namespace sluice::cli {

namespace {

/// --config FILE: read by expand_config_file() before parsing; declared here
/// so that --help lists it and the parser accepts it.
void add_config_option(CLI::App* cmd) {
  cmd->add_option_function<std::string>(
      "--config", [](const std::string&) {},
      "TOML/INI file of settings: `key = value` lines, keys = long option names; flags win");
}

struct JobManagerCli {
  jobmanager::JobManagerOptions o;
  std::string heartbeat_timeout = "2500ms";
  std::string ha_lease_ttl = "3s";
  std::string shutdown_timeout = "20s";
  std::string restart_backoff = "200ms", restart_max_backoff = "10s", restart_backoff_reset = "30s";
  std::string restart_failure_rate = "30/5m";
  std::string token_file;
  std::string read_access = "open";
};

int run_jobmanager(JobManagerCli& c) {
  auto hb = parse_duration(c.heartbeat_timeout);
  if (!hb.is_ok()) return report_error("--heartbeat-timeout: " + hb.status().message(), 2);
  c.o.heartbeat_timeout = *hb;
  c.o.heartbeat_interval = Duration(std::max<int64_t>(100, hb->count() / 5));
  for (auto [flag, text, out] : {std::tuple{"--restart-backoff", &c.restart_backoff, &c.o.restart.initial_backoff},
                                 {"--restart-max-backoff", &c.restart_max_backoff, &c.o.restart.max_backoff},
                                 {"--restart-backoff-reset", &c.restart_backoff_reset, &c.o.restart.reset_after}}) {
    auto d = parse_duration(*text);
    if (!d.is_ok()) return report_error(std::string(flag) + ": " + d.status().message(), 2);
    *out = *d;
  }
  if (auto st = c.o.restart.parse_failure_rate(c.restart_failure_rate); !st.is_ok()) return report_error(st.message(), 2);
  if (auto st = c.o.restart.validate(); !st.is_ok()) return report_error(st.message(), 2);
  auto ttl = parse_duration(c.ha_lease_ttl);
  if (!ttl.is_ok() || ttl->count() < 1000) return report_error("--ha-lease-ttl must be a duration of at least 1s", 2);
  c.o.ha_lease_ttl = *ttl;
  auto bound = parse_duration(c.shutdown_timeout);
  if (!bound.is_ok() || bound->count() <= 0) return report_error("--shutdown-timeout must be a positive duration", 2);
  if (!c.token_file.empty()) {
    auto t = auth::read_secret_file(c.token_file);
    if (!t.is_ok()) return report_error(t.status().message(), 2);
    c.o.token = *t;
  }
  if (c.read_access != "open" && c.read_access != "token") {
    return report_error("--read-access must be 'open' or 'token'", 2);
  }
  c.o.open_read_access = c.read_access == "open";
  SignalShutdown signals(*bound);  // before any thread exists
  jobmanager::JobManager jm(c.o);
  Status st = jm.start();
  if (!st.is_ok()) return report_error(st.message(), 1);
  std::cerr << "jobmanager listening on port " << jm.port();
  if (jm.http_port()) std::cerr << ", dashboard at http://" << c.o.http_bind.substr(0, c.o.http_bind.rfind(':'))
                                << ":" << jm.http_port() << "/";
  if (jm.metrics_port()) std::cerr << ", metrics at http://" << c.o.metrics_bind.substr(0, c.o.metrics_bind.rfind(':'))
                                   << ":" << jm.metrics_port() << "/metrics";
  std::cerr << std::endl;
  signals.watch([&] { jm.shutdown(); });
  jm.wait();
  jm.shutdown();
  signals.finish();
  spdlog::default_logger()->flush();
  // Deposed (standby mode): EX_TEMPFAIL, so that a supervisor starts it again as a standby.
  return jm.lost_leadership() ? 75 : 0;
}

struct TaskManagerCli {
  taskmanager::TaskManagerOptions o;
  std::string bind;
  std::string shutdown_timeout = "20s";
  std::string token_file;
  std::string read_access = "open";
};

int run_taskmanager(TaskManagerCli& c) {
  if (!c.token_file.empty()) {
    auto t = auth::read_secret_file(c.token_file);
    if (!t.is_ok()) return report_error(t.status().message(), 2);
    c.o.secret = *t;
  } else if (const char* t = std::getenv("SLUICE_TOKEN"); t && *t) {
    c.o.secret = t;
  }
  if (c.read_access != "open" && c.read_access != "token") {
    return report_error("--read-access must be 'open' or 'token'", 2);
  }
  c.o.open_read_access = c.read_access == "open";
  if (!c.bind.empty()) {
    auto colon = c.bind.rfind(':');
    if (colon == std::string::npos) return report_error("--bind must be host:port (port 0 = any)", 2);
    c.o.bind_host = c.bind.substr(0, colon);
    try {
      c.o.control_port = std::stoi(c.bind.substr(colon + 1));
    } catch (...) {
      return report_error("--bind must be host:port (port 0 = any)", 2);
    }
  }
  auto bound = parse_duration(c.shutdown_timeout);
  if (!bound.is_ok() || bound->count() <= 0) return report_error("--shutdown-timeout must be a positive duration", 2);
  SignalShutdown signals(*bound);  // before any thread exists
  taskmanager::TaskManager tm(c.o);
  Status st = tm.start();
  if (!st.is_ok()) return report_error(st.message(), 1);
  signals.watch([&] { tm.shutdown(); });
  tm.wait();
  tm.shutdown();
  signals.finish();
  spdlog::default_logger()->flush();
  return 0;
}

}  // namespace

Runner add_jobmanager(CLI::App& app) {
  auto c = std::make_shared<JobManagerCli>();
  auto* cmd = app.add_subcommand("jobmanager", "Run the jobmanager: schedules jobs onto taskmanagers");
  add_config_option(cmd);
  cmd->add_option("--bind", c->o.bind, "gRPC address (host:port)")->capture_default_str()->envname("SLUICE_JOBMANAGER_BIND");
  cmd->add_option("--http-bind", c->o.http_bind, "HTTP JSON status address (host:port); empty = off")
      ->capture_default_str()
      ->envname("SLUICE_HTTP_BIND");
  cmd->add_option("--data-dir", c->o.data_dir, "Job artifacts and records (kept across restarts)")
      ->required()
      ->envname("SLUICE_DATA_DIR");
  cmd->add_option("--checkpoint-dir", c->o.checkpoint_dir,
                  "Checkpoint storage every taskmanager can reach (default <data-dir>/checkpoints)")
      ->envname("SLUICE_CHECKPOINT_DIR");
  cmd->add_option("--checkpoint-interval", c->o.checkpoint_interval,
                  "Checkpoint interval for jobs that set none; 0 = only savepoints and the final one")
      ->capture_default_str()
      ->envname("SLUICE_CHECKPOINT_INTERVAL");
  cmd->add_option("--heartbeat-timeout", c->heartbeat_timeout, "A taskmanager silent this long is lost (it heartbeats every fifth of it); a frozen "
                  "or cut-off taskmanager is worked around after about this long")
      ->capture_default_str()
      ->envname("SLUICE_HEARTBEAT_TIMEOUT");
  cmd->add_option("--restart-backoff", c->restart_backoff,
                  "Delay before restarting a failed job; doubles per failure up to --restart-max-backoff")
      ->capture_default_str()
      ->envname("SLUICE_RESTART_BACKOFF");
  cmd->add_option("--restart-max-backoff", c->restart_max_backoff, "Longest delay before a restart")
      ->capture_default_str()
      ->envname("SLUICE_RESTART_MAX_BACKOFF");
  cmd->add_option("--restart-backoff-reset", c->restart_backoff_reset,
                  "A job that ran this long since its last restart is stable: its next failure restarts after "
                  "--restart-backoff again")
      ->capture_default_str()
      ->envname("SLUICE_RESTART_BACKOFF_RESET");
  cmd->add_option("--restart-failure-rate", c->restart_failure_rate,
                  "N/DURATION: give a job up (FAILED) after more than N failures within DURATION")
      ->capture_default_str()
      ->envname("SLUICE_RESTART_FAILURE_RATE");
  cmd->add_option("--token-file", c->token_file,
                  "File (mode 0600) holding the cluster secret (default: SLUICE_TOKEN, else <data-dir>/token, "
                  "generated if missing)")
      ->envname("SLUICE_TOKEN_FILE");
  cmd->add_option("--tls-cert", c->o.tls_cert,
                  "PEM certificate (enables TLS on gRPC, HTTP status and /metrics with --tls-key)")
      ->envname("SLUICE_TLS_CERT");
  cmd->add_option("--tls-key", c->o.tls_key, "PEM private key of --tls-cert")->envname("SLUICE_TLS_KEY");
  cmd->add_option("--tls-ca", c->o.tls_ca,
                  "PEM CA: mutual TLS (clients and taskmanagers must present a certificate it signed; "
                  "taskmanagers' servers are checked against it)")
      ->envname("SLUICE_TLS_CA");
  cmd->add_option("--read-access", c->read_access,
                  "open: list/status, HTTP status and /metrics readable without the token; token: they need it "
                  "(HTTP: Authorization: Bearer)")
      ->capture_default_str()
      ->check(CLI::IsMember({"open", "token"}))
      ->envname("SLUICE_READ_ACCESS");
  cmd->add_option("--metrics-bind", c->o.metrics_bind,
                  "Prometheus /metrics address (host:port, port 0 = any; written to <data-dir>/metrics.address); "
                  "empty = off")
      ->capture_default_str()
      ->envname("SLUICE_METRICS_BIND");
  cmd->add_option("--ha", c->o.ha,
                  "Standby jobmanagers: etcd://HOST:PORT[,HOST:PORT...]/CLUSTER; every jobmanager given it "
                  "campaigns, one leads (needs --ha-dir); empty = the only jobmanager")
      ->envname("SLUICE_HA");
  cmd->add_option("--ha-dir", c->o.ha_dir,
                  "With --ha: directory shared by every jobmanager of the cluster (job records, libraries, default "
                  "token and checkpoints)")
      ->envname("SLUICE_HA_DIR");
  cmd->add_option("--ha-lease-ttl", c->ha_lease_ttl, "With --ha: the leader's lease; a dead leader is replaced after it")
      ->capture_default_str()
      ->envname("SLUICE_HA_LEASE_TTL");
  cmd->add_option("--shutdown-timeout", c->shutdown_timeout,
                  "On SIGTERM/SIGINT: longest clean shutdown before the process exits anyway")
      ->capture_default_str();
  return [c] {
    if (c->token_file.empty()) {
      if (const char* t = std::getenv("SLUICE_TOKEN"); t && *t) c->o.token = t;
    }
    return run_jobmanager(*c);
  };
}

Runner add_taskmanager(CLI::App& app) {
  auto c = std::make_shared<TaskManagerCli>();
  auto* cmd = app.add_subcommand("taskmanager", "Run a taskmanager: a worker that runs subtasks");
  add_config_option(cmd);
  cmd->add_option("--jobmanager", c->o.jobmanager, "The jobmanager's host:port, or etcd://HOST:PORT[,...]/CLUSTER to follow the leader of standby jobmanagers")
      ->required()
      ->envname("SLUICE_JOBMANAGER");
  cmd->add_option("--slots", c->o.slots, "Slots offered")->capture_default_str()->check(CLI::Range(1, 1024))
      ->envname("SLUICE_SLOTS");
  cmd->add_option("--bind", c->bind, "Control-plane address host:port (default 127.0.0.1:0 = any port)")
      ->envname("SLUICE_TASKMANAGER_BIND");
  cmd->add_option("--data-port", c->o.data_port, "Data-plane port (0 = any)")->capture_default_str();
  cmd->add_option("--id", c->o.id, "Stable taskmanager id (default: generated)");
  cmd->add_option("--work-dir", c->o.work_dir,
                  "Private dir (0700): job libraries and the running attempts' files, removed when they end "
                  "(default $XDG_RUNTIME_DIR or /tmp, /sluice-taskmanager-<id>)")
      ->envname("SLUICE_WORK_DIR");
  cmd->add_option("--token-file", c->token_file,
                  "File (mode 0600) holding the cluster secret, the jobmanager's <data-dir>/token "
                  "(default: SLUICE_TOKEN); required")
      ->envname("SLUICE_TOKEN_FILE");
  cmd->add_option("--channel-capacity", c->o.channel_capacity, "Buffers per channel (backpressure bound)")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--tls-ca", c->o.tls_ca,
                  "PEM CA that signed the jobmanager's certificate (TLS to it); with --tls-cert, also the CA "
                  "the jobmanager's client certificate must be signed by (mutual TLS)")
      ->envname("SLUICE_TLS_CA");
  cmd->add_option("--tls-cert", c->o.tls_cert,
                  "PEM certificate of this taskmanager: presented to the jobmanager and served on its gRPC "
                  "server and /metrics")
      ->envname("SLUICE_TLS_CERT");
  cmd->add_option("--tls-key", c->o.tls_key, "PEM private key of --tls-cert")->envname("SLUICE_TLS_KEY");
  cmd->add_option("--read-access", c->read_access, "open: /metrics without the token; token: it needs it")
      ->capture_default_str()
      ->check(CLI::IsMember({"open", "token"}))
      ->envname("SLUICE_READ_ACCESS");
  cmd->add_option("--metrics-bind", c->o.metrics_bind,
                  "Prometheus /metrics address (host:port, port 0 = any; written to <work-dir>/metrics.address); "
                  "empty = off")
      ->capture_default_str()
      ->envname("SLUICE_METRICS_BIND");
  cmd->add_option("--shutdown-timeout", c->shutdown_timeout,
                  "On SIGTERM/SIGINT: longest clean shutdown (leave the jobmanager, cancel tasks) before the "
                  "process exits anyway")
      ->capture_default_str();
  return [c] { return run_taskmanager(*c); };
}

}  // namespace sluice::cli
