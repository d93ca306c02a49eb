// Async I/O benchmark: requests/s and engine CPU per request of a job
// (generator -> async I/O -> counting sink, one task, LocalExecutor) with
// `--in-flight` requests at once against a service answering after
// `--latency-ms`, in three runs on the same machine in one invocation:
//
//   baseline  the same job with a synchronous map instead of async I/O:
//             the engine's cost per record without any request;
//   inproc    the service is a delay line in this process (one thread, no
//             network): what the async operator itself costs per request
//             (process CPU minus the delay line's thread);
//   http      the service is a real HTTP server on a loopback port
//             (libevent, in this process, own thread) called with
//             HttpJsonFunction over the libcurl client: CPU split into
//             engine (everything else), HTTP client loop and server.
//
// Prints one JSON object. Thread CPU comes from each thread's CPU clock,
// process CPU from getrusage.
//
//   build/bench/async_bench [--requests N] [--in-flight 1000] [--latency-ms 5] [--only baseline,inproc,http]
//                           [--connections N (HTTP connections at most; default: as many as in flight)]
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/api/sluice.h"
#include "engine/graph/job_graph_builder.h"
#include "engine/proto/jobgraph.pb.h"
#include "engine/runtime/local_executor.h"
#include "tests/async/support/delay_queue.h"
#include "tests/async/support/http_test_server.h"

namespace {

using namespace sluice;
using namespace std::chrono_literals;

struct Req {
  int64_t id = 0;
  double amount = 0;
  SLUICE_FIELDS(id, amount)
};
struct Res {
  int64_t id = 0;
  double score = 0;
  SLUICE_FIELDS(id, score)
};

/// Emits ids 0..n-1, 16 per poll (small batches keep the in-flight count
/// close to the operator's capacity: input is suspended between polls).
class GeneratorSource final : public runtime::Source<Req> {
 public:
  explicit GeneratorSource(int64_t n) : n_(n) {}
  std::string description() const override { return "generator " + std::to_string(n_); }
  bool bounded() const override { return true; }
  std::unique_ptr<runtime::SourceReader<Req>> create_reader() const override {
    return std::make_unique<Reader>(n_);
  }

 private:
  class Reader final : public runtime::SourceReader<Req> {
   public:
    explicit Reader(int64_t n) : n_(n) {}
    Status open(runtime::OperatorContext&, runtime::SourceOutput<Req>& out) override {
      out.set_split_count(1);
      return Status::ok();
    }
    Result<runtime::PollStatus> poll_next(runtime::SourceOutput<Req>& out) override {
      for (int i = 0; i < 16 && next_ < n_; ++i, ++next_) out.collect(Req{next_, 1.5}, 0, EventTime(next_));
      if (next_ < n_) return runtime::PollStatus::kMoreAvailable;
      out.split_finished(0);
      return runtime::PollStatus::kEndOfInput;
    }

   private:
    int64_t n_;
    int64_t next_ = 0;
  };
  int64_t n_;
};

std::atomic<int64_t> g_received{0};

class CountingSink final : public runtime::Sink<Res> {
 public:
  std::string description() const override { return "count"; }
  std::unique_ptr<runtime::SinkWriter<Res>> create_writer() const override { return std::make_unique<Writer>(); }

 private:
  class Writer final : public runtime::SinkWriter<Res> {
   public:
    Status write(const Res&, EventTime) override {
      ++n_;
      return Status::ok();
    }
    Status flush() override {
      g_received.fetch_add(n_);
      n_ = 0;
      return Status::ok();
    }

   private:
    int64_t n_ = 0;
  };
};

/// The in-process "service": completes every request after the latency.
class DelayLineFn final : public AsyncFunction<Req, Res> {
 public:
  DelayLineFn(async_test::DelayQueue* q, int64_t latency_us) : q_(q), latency_us_(latency_us) {}
  void async_invoke(const Req& r, ResultFuture<Res> result) override {
    q_->after(latency_us_, [result, id = r.id]() mutable { result.complete(Res{id, 0.5}); });
  }

 private:
  async_test::DelayQueue* q_;  // owned by main, outlives the job
  int64_t latency_us_;
};

int64_t process_cpu_ns() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto ns = [](const timeval& t) { return t.tv_sec * 1'000'000'000LL + t.tv_usec * 1000LL; };
  return ns(ru.ru_utime) + ns(ru.ru_stime);
}

struct RunResult {
  double seconds = 0;
  int64_t received = 0;
  int64_t cpu_ns = 0;
};

/// Builds the job with `build`, runs it to the end on the LocalExecutor.
template <class Build>
RunResult run_job(const char* name, Build build) {
  auto graph = std::make_unique<runtime::StreamGraph>();
  graph->job_name = name;
  {
    api::StreamExecutionEnvironment env(*graph);
    build(env);
  }
  graph::JobGraphOptions go;
  go.default_parallelism = 1;
  auto jg = graph::build_job_graph(*graph, go);
  if (!jg.is_ok()) {
    std::fprintf(stderr, "job graph: %s\n", jg.status().to_string().c_str());
    std::exit(1);
  }
  auto instance = std::make_shared<runtime::JobInstance>();
  instance->job_id = name;
  instance->config = graph->config;
  instance->graph = std::shared_ptr<const runtime::StreamGraph>(std::move(graph));
  instance->job_graph = std::make_shared<const proto::JobGraph>(std::move(*jg));
  g_received = 0;
  runtime::LocalExecutor ex(instance, runtime::LocalRunOptions{});
  int64_t cpu0 = process_cpu_ns();
  auto t0 = std::chrono::steady_clock::now();
  Status st = ex.run();
  RunResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.cpu_ns = process_cpu_ns() - cpu0;
  r.received = g_received.load();
  if (!st.is_ok()) {
    std::fprintf(stderr, "%s failed: %s\n", name, st.to_string().c_str());
    std::exit(1);
  }
  return r;
}

auto source_stream(api::StreamExecutionEnvironment& env, int64_t n) {
  return env.from_source(std::shared_ptr<const runtime::Source<Req>>(std::make_shared<GeneratorSource>(n)),
                         WatermarkStrategy<Req>::for_bounded_out_of_orderness(0s).with_timestamp_assigner(
                             [](const Req& r) { return r.id; }),
                         "generator");
}

}  // namespace

int main(int argc, char** argv) {
  int64_t n = 400'000;
  int in_flight = 1000;
  int64_t latency_ms = 5;
  std::string only = "baseline,inproc,http";
  long connections = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--requests") n = std::atoll(argv[i + 1]);
    else if (k == "--in-flight") in_flight = std::atoi(argv[i + 1]);
    else if (k == "--latency-ms") latency_ms = std::atoll(argv[i + 1]);
    else if (k == "--only") only = argv[i + 1];
    else if (k == "--connections") connections = std::atol(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: async_bench [--requests N] [--in-flight N] [--latency-ms N] [--only baseline,inproc,http] [--connections N]\n");
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::warn);
  auto want = [&](const char* w) { return only.find(w) != std::string::npos; };
  std::string json = "{\"requests\":" + std::to_string(n) + ",\"in_flight\":" + std::to_string(in_flight) +
                     ",\"latency_ms\":" + std::to_string(latency_ms);
  auto fail_count = [&](const char* what, int64_t got) {
    if (got != n) {
      std::fprintf(stderr, "%s: %lld results for %lld requests\n", what, static_cast<long long>(got),
                   static_cast<long long>(n));
      std::exit(1);
    }
  };
  char buf[512];
  double baseline_ns = 0;
  if (want("baseline")) {
    RunResult r = run_job("async-bench-baseline", [&](api::StreamExecutionEnvironment& env) {
      source_stream(env, n)
          .map([](const Req& q) { return Res{q.id, 0.5}; }, "map")
          .sink_to(std::make_shared<CountingSink>(), "count");
    });
    fail_count("baseline", r.received);
    baseline_ns = static_cast<double>(r.cpu_ns) / static_cast<double>(n);
    std::snprintf(buf, sizeof buf, ",\"baseline\":{\"records_per_s\":%.0f,\"cpu_ns_per_record\":%.0f}",
                  static_cast<double>(n) / r.seconds, baseline_ns);
    json += buf;
  }
  if (want("inproc")) {
    async_test::DelayQueue q("bench-delay");
    int64_t q0 = q.cpu_ns();
    RunResult r = run_job("async-bench-inproc", [&](api::StreamExecutionEnvironment& env) {
      AsyncDataStream::unordered_wait(source_stream(env, n), DelayLineFn(&q, latency_ms * 1000), 60s, in_flight)
          .sink_to(std::make_shared<CountingSink>(), "count");
    });
    fail_count("inproc", r.received);
    double service = static_cast<double>(q.cpu_ns() - q0) / static_cast<double>(n);
    double engine = static_cast<double>(r.cpu_ns) / static_cast<double>(n) - service;
    std::snprintf(buf, sizeof buf,
                  ",\"inproc\":{\"requests_per_s\":%.0f,\"engine_cpu_ns_per_request\":%.0f,"
                  "\"async_cpu_ns_per_request\":%.0f,\"delay_line_cpu_ns_per_request\":%.0f}",
                  static_cast<double>(n) / r.seconds, engine, engine - baseline_ns, service);
    json += buf;
  }
  if (want("http")) {
    async_test::HttpServerOptions so;
    so.min_latency_us = so.max_latency_us = latency_ms * 1000;
    auto server = async_test::HttpTestServer::start(so);
    if (!server.is_ok()) {
      std::fprintf(stderr, "http server: %s\n", server.status().to_string().c_str());
      return 1;
    }
    http_client::HttpClientOptions co;
    co.name = "bench";
    co.max_pending = static_cast<size_t>(in_flight) * 4;
    co.max_host_connections = connections;
    co.max_active = static_cast<size_t>(connections);
    auto client = http_client::HttpClient::shared(co);  // the one the function will use
    if (!client.is_ok()) return 1;
    int64_t s0 = (*server)->cpu_ns();
    int64_t c0 = (*client)->stats().loop_cpu_ns;
    HttpJsonOptions ho;
    ho.url = (*server)->url("/score");
    ho.client = co;
    RunResult r = run_job("async-bench-http", [&](api::StreamExecutionEnvironment& env) {
      AsyncDataStream::unordered_wait(
          source_stream(env, n),
          HttpJsonFunction<Req, Req, Res, Res>(
              ho, [](const Req& q) { return q; }, [](const Req&, Res r) { return r; }),
          60s, in_flight)
          .sink_to(std::make_shared<CountingSink>(), "count");
    });
    fail_count("http", r.received);
    double server_ns = static_cast<double>((*server)->cpu_ns() - s0) / static_cast<double>(n);
    double client_ns = static_cast<double>((*client)->stats().loop_cpu_ns - c0) / static_cast<double>(n);
    double engine = static_cast<double>(r.cpu_ns) / static_cast<double>(n) - server_ns - client_ns;
    std::snprintf(buf, sizeof buf,
                  ",\"http\":{\"requests_per_s\":%.0f,\"engine_cpu_ns_per_request\":%.0f,"
                  "\"client_cpu_ns_per_request\":%.0f,\"server_cpu_ns_per_request\":%.0f,\"connections\":%llu}",
                  static_cast<double>(n) / r.seconds, engine, client_ns, server_ns,
                  static_cast<unsigned long long>((*client)->stats().connections));
    json += buf;
  }
  json += "}";
  std::printf("%s\n", json.c_str());
  return 0;
}
