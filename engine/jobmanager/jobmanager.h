// The jobmanager: accepts jobs from `sluice submit`, keeps their artifacts
// and records in its data directory, schedules their subtasks onto the
// slots of registered taskmanagers, runs one checkpoint coordinator per job
// and restarts a job from its latest completed checkpoint when a task
// fails or a taskmanager is lost. Restarted on the same data directory it
// recovers every job that had not ended (single-jobmanager recovery).
#pragma once

#include <memory>
#include <string>

#include "engine/common/status.h"
#include "engine/common/time.h"
#include "engine/jobmanager/restart_policy.h"

namespace sluice::jobmanager {

struct JobManagerOptions {
  /// gRPC control plane. Default 127.0.0.1:6123 (loopback unless told otherwise).
  std::string bind = "127.0.0.1:6123";
  /// HTTP JSON status (GET /jobs, /jobs/<id>, /taskmanagers); empty = off. Default 127.0.0.1:8081.
  std::string http_bind = "127.0.0.1:8081";
  /// Job records and artifacts. Required.
  std::string data_dir;
  /// Checkpoint root for jobs that set none. Default <data_dir>/checkpoints.
  std::string checkpoint_dir;
  /// Checkpoint interval for jobs that set none ("0" = off). Default 5s.
  std::string checkpoint_interval = "5s";
  /// The cluster secret: taskmanagers sign every call with it (and the
  /// jobmanager its calls to them); clients pass it for submit, cancel,
  /// savepoint and stop. Empty: the one in <data_dir>/token, else a random
  /// one generated there (mode 0600).
  std::string token;
  /// list/status over gRPC, the HTTP status and /metrics without the
  /// secret. Default true; false: they need it too (HTTP: Authorization:
  /// Bearer <token>).
  bool open_read_access = true;
  /// A taskmanager silent for longer is lost. Default 2.5 s: a frozen or
  /// cut-off taskmanager's work runs elsewhere again well within 5 s, while
  /// a live one may stall ~2 s (a loaded machine) without a failover.
  Duration heartbeat_timeout{2500};
  /// How often taskmanagers heartbeat. Default 500 ms (the CLI: timeout / 5).
  Duration heartbeat_interval{500};
  /// When failed jobs restart and when they are given up (restart_policy.h).
  RestartPolicyOptions restart;
  /// A taskmanager named by a failure (the far end of a lost data-plane
  /// connection) is avoided by placement this long while others have room.
  /// Default 30 s.
  Duration suspect_period{30'000};
  /// TLS: PEM files (all empty = plaintext). cert+key: TLS on the gRPC
  /// server, the HTTP status and /metrics; with ca too, mutual TLS: clients
  /// and taskmanagers must present a certificate signed by ca, and the
  /// jobmanager presents its own to taskmanagers, whose certificates it
  /// checks against ca.
  std::string tls_cert, tls_key, tls_ca;
  /// Standby jobmanagers: `etcd://host:port[,host:port...]/<cluster>`;
  /// every jobmanager given the same one campaigns, one leads (engine/ha).
  /// Empty (default): this is the only jobmanager.
  std::string ha;
  /// With `ha`: the directory every jobmanager of the cluster shares (job
  /// records, job libraries and, by default, the token and checkpoints).
  std::string ha_dir;
  /// With `ha`: the leader's lease in etcd. Default 3 s.
  Duration ha_lease_ttl{3000};
  /// Prometheus /metrics address (host:port, port 0 = any free port; the
  /// bound address goes to <data_dir>/metrics.address); empty = off.
  /// Default 127.0.0.1:9249.
  std::string metrics_bind = "127.0.0.1:9249";
};

/// The jobmanager process's core. Non-copyable; start() once, then
/// wait() until shutdown() (from a signal watcher).
class JobManager {
 public:
  explicit JobManager(JobManagerOptions options);
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  /// Binds the servers and recovers the jobs of the data directory.
  Status start();
  /// The bound gRPC port (after start).
  int port() const;
  int http_port() const;
  /// The bound /metrics port (after start; 0 = off).
  int metrics_port() const;
  /// Returns when shutdown() is called or, with standby jobmanagers, when
  /// this one lost its leadership (then call shutdown() and exit).
  void wait();
  void shutdown();
  /// True once this jobmanager was deposed (standby mode only).
  bool lost_leadership() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::jobmanager
