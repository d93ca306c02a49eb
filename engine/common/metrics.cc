#include "engine/common/metrics.h"

#include <dirent.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <chrono>
#include <algorithm>
#include <cmath>
#include <exception>
#include <fstream>
#include <sstream>

#include "engine/common/job_state.h"

namespace sluice::metrics {

std::shared_ptr<prometheus::Registry> registry_ptr() {
  // shared: the HTTP exposer and every component hold the one registry.
  static const auto r = std::make_shared<prometheus::Registry>();
  return r;
}

prometheus::Registry& registry() { return *registry_ptr(); }

namespace {

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Seconds since boot at which this process started, and clock ticks.
struct ProcStat {
  double utime = 0, stime = 0;  // ticks
  double start_ticks = 0;
  double vsize = 0, rss_pages = 0;
  double threads = 0;
  bool ok = false;
};

ProcStat read_proc_stat() {
  ProcStat s;
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return s;
  // The command (field 2) is in parentheses and may hold spaces.
  auto rp = line.rfind(')');
  if (rp == std::string::npos) return s;
  std::istringstream rest(line.substr(rp + 2));
  std::vector<std::string> f;
  for (std::string x; rest >> x;) f.push_back(x);
  // f[0] is field 3 (state): field N is f[N-3].
  if (f.size() < 22) return s;
  s.utime = std::stod(f[14 - 3]);
  s.stime = std::stod(f[15 - 3]);
  s.threads = std::stod(f[20 - 3]);
  s.start_ticks = std::stod(f[22 - 3]);
  s.vsize = std::stod(f[23 - 3]);
  s.rss_pages = std::stod(f[24 - 3]);
  s.ok = true;
  return s;
}

double boot_time_seconds() {
  std::ifstream in("/proc/stat");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("btime ", 0) == 0) return std::stod(line.substr(6));
  }
  return 0;
}

double open_fds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return 0;
  double n = 0;
  while (auto* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;  // the directory stream's own descriptor
}

std::vector<prometheus::ClientMetric::Label> to_labels(const FamilyBuilder::Labels& labels) {
  std::vector<prometheus::ClientMetric::Label> out;
  out.reserve(labels.size());
  for (const auto& [k, v] : labels) out.push_back({k, v});
  return out;
}

const std::vector<double>& latency_buckets() {
  // Fine below 100 ms: the latency targets (10 ms stateless, 50 ms for a
  // window result) must be readable from the buckets, not interpolated.
  static const std::vector<double> b = {0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.035,
                                        0.05,  0.075, 0.1,   0.25,  0.5,    1,    2.5,   5,     10,
                                        20,    30,    60,    90,    120,    300,  600};
  return b;
}

}  // namespace

int64_t process_rss_bytes() {
  ProcStat s = read_proc_stat();
  return s.ok ? static_cast<int64_t>(s.rss_pages * static_cast<double>(::sysconf(_SC_PAGESIZE))) : 0;
}

std::vector<prometheus::MetricFamily> process_families() {
  FamilyBuilder b;
  ProcStat s = read_proc_stat();
  if (s.ok) {
    const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
    b.counter("process_cpu_seconds_total", "User and system CPU time spent in seconds", {},
              (s.utime + s.stime) / tick);
    b.gauge("process_resident_memory_bytes", "Resident memory size in bytes", {}, s.rss_pages * page);
    b.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes", {}, s.vsize);
    static const double start = boot_time_seconds() + s.start_ticks / tick;
    b.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds", {}, start);
    b.gauge("process_threads", "Number of OS threads in the process", {}, s.threads);
  }
  b.gauge("process_open_fds", "Number of open file descriptors", {}, open_fds());
  return b.take();
}

// ------------------------------------------------------------- MetricsServer

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& bind) {
  HttpServerOptions o;
  o.bind = bind;
  return start(o);
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const HttpServerOptions& options) {
  HttpServerOptions o = options;
  o.name = "metrics";
  o.threads = std::min(o.threads, 4);
  std::string host;
  int port = 0;
  if (!split_host_port(o.bind, host, port)) {
    return Status::invalid_argument("metrics address '" + o.bind + "' is not host:port");
  }
  std::unique_ptr<MetricsServer> s(new MetricsServer());
  SLUICE_ASSIGN_OR_RETURN(s->http_, HttpServer::create(o));
  s->port_ = s->http_->port();
  s->address_ = s->http_->address();
  s->add(registry_ptr());
  s->add(std::make_shared<CallbackCollectable>(process_families));
  MetricsServer* self = s.get();
  s->http_->get("/metrics", [self](const HttpRequest&) {
    return HttpResponse{200, self->scrape(), "text/plain; version=0.0.4; charset=utf-8"};
  });
  s->http_->start();
  return s;
}

std::string MetricsServer::scrape() {
  std::vector<std::shared_ptr<prometheus::Collectable>> all;
  {
    std::lock_guard lk(mu_);
    all = held_;
  }
  std::vector<prometheus::MetricFamily> families;
  for (const auto& c : all) {
    auto f = c->Collect();
    families.insert(families.end(), std::make_move_iterator(f.begin()), std::make_move_iterator(f.end()));
  }
  return prometheus::TextSerializer().Serialize(families);
}

std::string scrape(std::vector<prometheus::MetricFamily> extra) {
  std::vector<prometheus::MetricFamily> families = registry().Collect();
  auto proc = process_families();
  families.insert(families.end(), std::make_move_iterator(proc.begin()), std::make_move_iterator(proc.end()));
  families.insert(families.end(), std::make_move_iterator(extra.begin()), std::make_move_iterator(extra.end()));
  return prometheus::TextSerializer().Serialize(families);
}

MetricsServer::~MetricsServer() { http_.reset(); }

void MetricsServer::add(std::shared_ptr<prometheus::Collectable> c) {
  std::lock_guard lk(mu_);
  held_.push_back(std::move(c));
}

// ------------------------------------------------------------- FamilyBuilder

prometheus::ClientMetric& FamilyBuilder::add(const std::string& name, const std::string& help,
                                             prometheus::MetricType type, const Labels& labels) {
  auto it = index_.find(name);
  if (it == index_.end()) {
    it = index_.emplace(name, families_.size()).first;
    prometheus::MetricFamily f;
    f.name = name;
    f.help = help;
    f.type = type;
    families_.push_back(std::move(f));
  }
  auto& fam = families_[it->second];
  fam.metric.emplace_back();
  fam.metric.back().label = to_labels(labels);
  return fam.metric.back();
}

void FamilyBuilder::counter(const std::string& name, const std::string& help, const Labels& labels,
                            double value) {
  add(name, help, prometheus::MetricType::Counter, labels).counter.value = value;
}

void FamilyBuilder::gauge(const std::string& name, const std::string& help, const Labels& labels, double value) {
  add(name, help, prometheus::MetricType::Gauge, labels).gauge.value = value;
}

std::vector<prometheus::MetricFamily> FamilyBuilder::take() {
  index_.clear();
  return std::move(families_);
}

// ------------------------------------------------------------- samples

std::vector<prometheus::MetricFamily> task_families(const std::vector<TaskSample>& tasks, int64_t now_ms) {
  FamilyBuilder b;
  for (const auto& t : tasks) {
    FamilyBuilder::Labels l = {
        {"job", t.job}, {"job_id", t.job_id}, {"vertex", t.vertex}, {"subtask", std::to_string(t.subtask)}};
    b.counter("sluice_task_records_in_total", "Records a subtask took from its inputs (sources: read)", l,
              static_cast<double>(t.records_in));
    b.counter("sluice_task_records_out_total", "Records a subtask sent downstream", l,
              static_cast<double>(t.records_out));
    b.counter("sluice_task_bytes_out_total", "Serialized bytes a subtask sent downstream", l,
              static_cast<double>(t.bytes_out));
    b.counter("sluice_task_dead_letters_total", "Records a subtask sent to the dead-letter output", l,
              static_cast<double>(t.dead_letters));
    b.counter("sluice_task_busy_seconds_total", "Time a subtask spent processing", l,
              static_cast<double>(t.busy_ns) / 1e9);
    b.counter("sluice_task_backpressured_seconds_total",
              "Time a subtask waited for space in its output buffers (backpressure)", l,
              static_cast<double>(t.backpressured_ns) / 1e9);
    // As the status JSON: no series before the first watermark nor after
    // the final one (end of input); the lag is never negative.
    if (t.watermark_ms != INT64_MIN && t.watermark_ms != INT64_MAX) {
      b.gauge("sluice_task_watermark_seconds",
              "A subtask's current event-time watermark (unix seconds; sources: the one they emit)", l,
              static_cast<double>(t.watermark_ms) / 1e3);
      b.gauge("sluice_task_watermark_lag_seconds", "Wall-clock time minus a subtask's current watermark", l,
              static_cast<double>(std::max<int64_t>(0, now_ms - t.watermark_ms)) / 1e3);
    }
  }
  return b.take();
}

std::vector<prometheus::MetricFamily> job_families(const std::vector<JobSample>& jobs) {
  FamilyBuilder b;
  for (const auto& j : jobs) {
    FamilyBuilder::Labels l = {{"job", j.job}, {"job_id", j.job_id}};
    b.gauge("sluice_job_running", "1 while the job's state is RUNNING, else 0", l,
            j.state == job_state_name(JobState::kRunning) ? 1 : 0);
    b.counter("sluice_job_restarts_total", "Restarts of a job from its latest checkpoint", l,
              static_cast<double>(j.restarts));
    b.gauge("sluice_job_gave_up", "1 once the restart policy gave the job up (too many failures), else 0", l,
            j.gave_up ? 1 : 0);
    b.gauge("sluice_job_recent_failures", "Failures of a job within the restart policy's failure-rate interval", l,
            static_cast<double>(j.recent_failures));
    b.gauge("sluice_job_last_recovery_seconds", "Time from a job's last failure to its next attempt running", l,
            static_cast<double>(j.last_recovery_ms) / 1e3);
    b.counter("sluice_checkpoints_completed_total", "Completed checkpoints of a job", l,
              static_cast<double>(j.checkpoints_completed));
    b.counter("sluice_checkpoints_failed_total", "Checkpoints of a job that were declined or timed out", l,
              static_cast<double>(j.checkpoints_failed));
    b.gauge("sluice_checkpoint_last_id", "Id of a job's latest completed checkpoint", l,
            static_cast<double>(j.last_checkpoint_id));
    b.gauge("sluice_checkpoint_last_duration_seconds", "Trigger-to-complete time of the latest checkpoint", l,
            static_cast<double>(j.last_duration_ms) / 1e3);
    b.gauge("sluice_checkpoint_last_size_bytes", "State size of the latest completed checkpoint", l,
            static_cast<double>(j.last_size_bytes));
    b.gauge("sluice_checkpoint_last_alignment_seconds",
            "Longest barrier alignment of the latest completed checkpoint", l,
            static_cast<double>(j.last_alignment_ms) / 1e3);
    b.gauge("sluice_checkpoint_last_sync_seconds", "Longest synchronous snapshot part of the latest checkpoint", l,
            static_cast<double>(j.last_sync_ms) / 1e3);
  }
  return b.take();
}

// ------------------------------------------------------------- LatencyRecorder

LatencyRecorder::LatencyRecorder(const std::string& job, const std::string& sink) {
  static auto& family = prometheus::BuildHistogram()
                            .Name("sluice_end_to_end_latency_seconds")
                            .Help("Wall-clock time at the sink minus the record's event time")
                            .Register(registry());
  histogram_ = &family.Add({{"job", job}, {"sink", sink}}, latency_buckets());
  pending_.assign(latency_buckets().size() + 1, 0.0);
}

LatencyRecorder::~LatencyRecorder() { flush(); }

void LatencyRecorder::observe(int64_t event_ms) {
  if (event_ms <= 0) return;
  const int64_t now = wall_ms();
  const double v = static_cast<double>(now - event_ms) / 1e3;
  const auto& b = latency_buckets();
  size_t i = 0;
  while (i < b.size() && v > b[i]) ++i;
  pending_[i] += 1;
  pending_sum_ += v;
  ++pending_count_;
  if (now - last_flush_ms_ >= 100) {
    flush();
    last_flush_ms_ = now;
  }
}

void LatencyRecorder::flush() {
  if (pending_count_ == 0 || !histogram_) return;
  histogram_->ObserveMultiple(pending_, pending_sum_);
  std::fill(pending_.begin(), pending_.end(), 0.0);
  pending_sum_ = 0;
  pending_count_ = 0;
}

}  // namespace sluice::metrics
