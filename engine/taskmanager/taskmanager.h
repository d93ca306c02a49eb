// The taskmanager: a worker process that offers slots to the jobmanager,
// runs the subtasks deployed to it (the same runtime::Task as run-local),
// serves the data plane to other taskmanagers and reports task states,
// checkpoint acknowledgements and metrics back.
#pragma once

#include <memory>
#include <string>

#include "engine/common/status.h"
#include "engine/common/time.h"

namespace sluice::taskmanager {

struct TaskManagerOptions {
  /// The jobmanager's gRPC address. Required.
  std::string jobmanager;
  /// Slots offered (one slice of a job's pipeline each). Default 2.
  int slots = 2;
  /// Host this process binds and advertises (control and data plane). Default 127.0.0.1.
  std::string bind_host = "127.0.0.1";
  /// gRPC control port; 0 = any free port. Default 0.
  int control_port = 0;
  /// Data-plane port; 0 = any free port. Default 0.
  int data_port = 0;
  /// Stable id; empty = generated from host, port and pid.
  std::string id;
  /// The cluster secret (the jobmanager's token). Required: every call to
  /// and from the jobmanager and every data-plane connection is signed
  /// with it.
  std::string secret;
  /// This process's private directory (0700): fetched job libraries
  /// (cached by sha256) and one work dir per running job attempt, removed
  /// when the attempt ends. Default <data_dir>, else
  /// $XDG_RUNTIME_DIR or /tmp, /sluice-taskmanager-<id>.
  std::string work_dir;
  /// Buffers per channel (backpressure bound). Default 8.
  int channel_capacity = 8;
  /// TLS (PEM files; all empty = plaintext): ca verifies the jobmanager
  /// (and, on this process's gRPC server, the jobmanager's client
  /// certificate: mutual TLS); cert+key are this process's certificate,
  /// presented to the jobmanager and served on its own gRPC server and
  /// /metrics.
  std::string tls_ca, tls_cert, tls_key;
  /// /metrics without the secret. Default true.
  bool open_read_access = true;
  /// Prometheus /metrics address (host:port; port 0 = any free port, the
  /// bound address is logged and written to <work_dir>/metrics.address);
  /// empty = off. Default 127.0.0.1:0.
  std::string metrics_bind = "127.0.0.1:0";
};

/// The taskmanager process's core. Non-copyable; start() once, then wait()
/// until shutdown().
class TaskManager {
 public:
  explicit TaskManager(TaskManagerOptions options);
  ~TaskManager();
  TaskManager(const TaskManager&) = delete;
  TaskManager& operator=(const TaskManager&) = delete;

  Status start();
  void wait();
  void shutdown();
  const std::string& id() const;
  /// The bound /metrics port (after start; 0 = off).
  int metrics_port() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::taskmanager
