// The process-wide metrics registry (prometheus-cpp). Every component
// registers its metric families here; the /metrics endpoint of each
// process serves it. Names follow Prometheus conventions:
// sluice_<area>_<what>_<unit>[_total], labels job/vertex/subtask/...
//
//   auto& family = prometheus::BuildCounter()
//                      .Name("sluice_dead_letters_total")
//                      .Help("Records sent to the dead-letter output")
//                      .Register(sluice::metrics::registry());
//   auto& c = family.Add({{"job", job}, {"operator", op}});
//   c.Increment();
//
// Families and metrics are thread-safe. Hot loops count in plain locals
// and add to the metric now and then (see the task's metrics publishing).
//
// Values that already live elsewhere (a task's TaskMetrics, the checkpoint
// coordinator's stats) are not copied into the registry: a
// CallbackCollectable builds their samples when /metrics is scraped, so a
// task that ends simply disappears from the next scrape.
//
// Names exported by the helpers below:
//   process_resident_memory_bytes, process_virtual_memory_bytes,
//   process_cpu_seconds_total, process_start_time_seconds, process_open_fds,
//   process_threads                                       (every process)
//   sluice_task_records_in_total, sluice_task_records_out_total,
//   sluice_task_bytes_out_total, sluice_task_dead_letters_total,
//   sluice_task_busy_seconds_total, sluice_task_backpressured_seconds_total,
//   sluice_task_watermark_seconds, sluice_task_watermark_lag_seconds
//       {job, job_id, vertex, subtask}                    (taskmanager)
//   sluice_checkpoints_completed_total, sluice_checkpoints_failed_total,
//   sluice_checkpoint_last_id, sluice_checkpoint_last_duration_seconds,
//   sluice_checkpoint_last_size_bytes,
//   sluice_checkpoint_last_alignment_seconds,
//   sluice_checkpoint_last_sync_seconds,
//   sluice_job_restarts_total, sluice_job_running     {job, job_id} (jobmanager)
//   sluice_end_to_end_latency_seconds{job, sink}  histogram (sink subtasks)
#pragma once

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/common/http_server.h"
#include "engine/common/status.h"


namespace sluice::metrics {

prometheus::Registry& registry();
/// The same registry as a shared_ptr (what prometheus::Exposer wants).
std::shared_ptr<prometheus::Registry> registry_ptr();

/// A Collectable whose samples a callback builds at scrape time. The
/// callback runs on the HTTP server's threads and must be thread-safe.
class CallbackCollectable final : public prometheus::Collectable {
 public:
  using Callback = std::function<std::vector<prometheus::MetricFamily>()>;
  explicit CallbackCollectable(Callback cb) : cb_(std::move(cb)) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return cb_ ? cb_() : decltype(cb_())(); }

 private:
  Callback cb_;
};

/// Resident memory of this process (bytes; 0 if /proc cannot be read).
int64_t process_rss_bytes();

/// process_* metrics of this process, read from /proc/self at scrape time.
std::vector<prometheus::MetricFamily> process_families();

/// HTTP /metrics of one process: serves registry() and the process
/// metrics, plus any collectable added. Owned by the process's main object;
/// stops serving when destroyed. Its threads belong to civetweb.
class MetricsServer {
 public:
  /// `bind` is host:port; port 0 picks any free port. Plain HTTP, open.
  static Result<std::unique_ptr<MetricsServer>> start(const std::string& bind);
  /// With the process's HTTP settings (TLS, mutual TLS, bearer token,
  /// limits): the same server class as the status endpoints.
  static Result<std::unique_ptr<MetricsServer>> start(const HttpServerOptions& options);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  /// Also serves `c` (held here until the server is destroyed). Call before
  /// the first scrape or from any thread: the list is locked.
  void add(std::shared_ptr<prometheus::Collectable> c);
  int port() const { return port_; }
  /// host:port as bound (the port resolved when 0 was asked for).
  const std::string& address() const { return address_; }

 private:
  MetricsServer() = default;
  std::string scrape();
  std::mutex mu_;  // guards held_
  std::vector<std::shared_ptr<prometheus::Collectable>> held_;
  int port_ = 0;
  std::string address_;
  std::unique_ptr<HttpServer> http_;  // last: stopped (threads joined) before held_ goes
};

/// The text exposition of registry(), the process metrics and `extra`, for
/// a process that serves GET /metrics on an HttpServer of its own. Any thread.
std::string scrape(std::vector<prometheus::MetricFamily> extra = {});

/// Builds families sample by sample: `add(name, help, type, labels, value)`
/// keeps one family per name, in first-use order.
class FamilyBuilder {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;
  void counter(const std::string& name, const std::string& help, const Labels& labels, double value);
  void gauge(const std::string& name, const std::string& help, const Labels& labels, double value);
  std::vector<prometheus::MetricFamily> take();

 private:
  prometheus::ClientMetric& add(const std::string& name, const std::string& help, prometheus::MetricType type,
                                const Labels& labels);
  std::vector<prometheus::MetricFamily> families_;
  std::map<std::string, size_t> index_;
};

/// One subtask's counters as the taskmanager reads them from TaskMetrics.
struct TaskSample {
  std::string job, job_id, vertex;
  int subtask = 0;
  uint64_t records_in = 0, records_out = 0, bytes_out = 0, dead_letters = 0;
  int64_t busy_ns = 0, backpressured_ns = 0;
  int64_t watermark_ms = INT64_MIN;  // INT64_MIN: no watermark yet, INT64_MAX: input ended
};
/// sluice_task_* families of `tasks`; `now_ms` (epoch) gives the lag.
std::vector<prometheus::MetricFamily> task_families(const std::vector<TaskSample>& tasks, int64_t now_ms);

/// One job as the jobmanager sees it (record and checkpoint stats).
struct JobSample {
  std::string job, job_id, state;
  int64_t restarts = 0;
  int64_t checkpoints_completed = 0, checkpoints_failed = 0, last_checkpoint_id = 0;
  int64_t last_duration_ms = 0, last_size_bytes = 0, last_alignment_ms = 0, last_sync_ms = 0;
  bool gave_up = false;          // the restart policy gave the job up
  int64_t recent_failures = 0;   // failures within the failure-rate interval
  int64_t last_recovery_ms = 0;  // last failure to running again
};
/// sluice_checkpoint*, sluice_job_* families of `jobs`.
std::vector<prometheus::MetricFamily> job_families(const std::vector<JobSample>& jobs);

/// The end-to-end latency histogram of one sink subtask: the wall-clock
/// time a record reaches the sink minus its event time. Used on the task
/// thread only: observations are counted locally and handed to the shared
/// histogram at most every 100 ms (and on flush/destruction).
class LatencyRecorder {
 public:
  LatencyRecorder(const std::string& job, const std::string& sink);
  ~LatencyRecorder();
  LatencyRecorder(const LatencyRecorder&) = delete;
  LatencyRecorder& operator=(const LatencyRecorder&) = delete;
  /// `event_ms` is the record's event time (epoch ms); ignored if <= 0.
  void observe(int64_t event_ms);
  void flush();

 private:
  prometheus::Histogram* histogram_ = nullptr;
  std::vector<double> pending_;  // per bucket, +Inf last
  double pending_sum_ = 0;
  uint64_t pending_count_ = 0;
  int64_t last_flush_ms_ = 0;
};

}  // namespace sluice::metrics
