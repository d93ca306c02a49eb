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
  /// A taskmanager silent for longer is lost. Default 5 s.
  Duration heartbeat_timeout{5000};
  /// How often taskmanagers heartbeat. Default 1 s.
  Duration heartbeat_interval{1000};
  /// Restarts of a job before it is failed. Default 20.
  int restart_attempts = 20;
  Duration restart_backoff{500};
  Duration restart_max_backoff{10'000};
  /// TLS: PEM files (all empty = plaintext). cert+key: TLS on the gRPC
  /// server, the HTTP status and /metrics; with ca too, mutual TLS: clients
  /// and taskmanagers must present a certificate signed by ca, and the
  /// jobmanager presents its own to taskmanagers, whose certificates it
  /// checks against ca.
  std::string tls_cert, tls_key, tls_ca;
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
  void wait();
  void shutdown();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::jobmanager
