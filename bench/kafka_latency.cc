// bench_kafka_latency: the latency floor of workload 4 with no engine — what a
// bare librdkafka consumer sees of the same topic, at the same rate, at the
// moment it polls.
//
// It reads like the Kafka source of connectors/kafka: one consumer (its own
// rd_kafka_t, hence its own fetcher thread and connection) per source subtask
// (`--consumers`, 2 as the job's -p 2), partition k read by consumer k % N,
// assigned by the client (no group membership) from the end of each partition,
// the source's client properties (read_committed, partition EOF events, no
// auto commit/store) plus `--set name=value` (workload 4 passes the source
// URI's `kafka.fetch.wait.max.ms=2`), and the source's poll loop: take what is
// queued without waiting; when nothing is, wait up to 10 ms for the first
// message, then take whatever else is queued. Each record's delay is taken
// right after the poll returns: wall clock − the event's `ts` field (what
// `sluice gen` stamps when it makes the event; what the engine's sinks and
// its probe use as event time), in whole milliseconds as the engine's
// sluice_end_to_end_latency_seconds (into the same buckets), and in
// microseconds (now − ts·1000) for exact quantiles.
//
//   bench_kafka_latency --kafka HOST:PORT --topic T [--consumers 2]
//                       [--set name=value ...] [--ready-file PATH] [--trace PATH]
//
// Runs until SIGTERM/SIGINT; `--ready-file` is written once every consumer
// has its partitions and has polled once; `--trace` writes a line per poll
// that returned records (consumer, wall µs, records, min and max delay µs).
// Prints one JSON object on stdout:
// records, buckets (cumulative counts per upper bound in seconds, as the
// engine's histogram), p50/p99/p999/max in µs (nearest rank), cpu_s (the
// process's user + system CPU).
#include <CLI/CLI.hpp>
#include <librdkafka/rdkafka.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace {

std::atomic<bool> g_stop{false};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "bench_kafka_latency: %s\n", msg.c_str());
  std::exit(2);
}

struct Options {
  std::string kafka;
  std::string topic;
  int consumers = 2;
  std::vector<std::pair<std::string, std::string>> props;
  std::string ready_file;
  std::string trace;  // per poll with records: consumer, wall µs, records, min and max delay µs
};

// engine/common/metrics.cc latency_buckets(): kept equal so that bench.py
// interpolates both histograms the same way.
constexpr double kBuckets[] = {0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.035,
                               0.05,  0.075, 0.1,   0.25,  0.5,    1,    2.5,   5,     10,
                               20,    30,    60,    90,    120,    300,  600};
constexpr size_t kBucketCount = sizeof kBuckets / sizeof kBuckets[0];
constexpr int kIdleWaitMs = 10;  // connectors/kafka/reader_core.cc kIdleWaitMs
constexpr size_t kBatch = 500;   // the source's default `batch`

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// `"ts":<digits>` of a generated click, or -1.
int64_t event_ts(const char* p, size_t n) {
  std::string_view v(p, n);
  size_t at = v.rfind("\"ts\":");
  if (at == std::string_view::npos) return -1;
  int64_t ts = -1;
  const char* b = p + at + 5;
  std::from_chars(b, p + n, ts);
  return ts;
}

/// One consumer thread's observations; owned by main, written by its thread only.
struct Observed {
  std::vector<int64_t> us;                    // delay per record, µs
  std::vector<std::array<int64_t, 4>> polls;  // --trace: wall µs, records, min, max delay µs
  std::vector<uint64_t> buckets = std::vector<uint64_t>(kBucketCount + 1, 0);
  std::atomic<bool> ready{false};
};

void consume(const Options& o, int index, int32_t partitions, Observed& out) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto set = [&](const std::string& k, const std::string& v) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) die(k + ": " + err);
  };
  // connectors/kafka/reader_core.cc KafkaReaderCore::open, then the URI's kafka.* properties.
  set("bootstrap.servers", o.kafka);
  set("group.id", "sluice-bench-kafka-latency");
  set("client.id", "bench-kafka-latency-" + std::to_string(index));
  set("enable.auto.commit", "false");
  set("enable.auto.offset.store", "false");
  set("auto.offset.reset", "error");
  set("enable.partition.eof", "true");
  set("isolation.level", "read_committed");
  for (const auto& [k, v] : o.props) set(k, v);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!rk) die(std::string("consumer: ") + err);
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_queue_t* q = rd_kafka_queue_get_consumer(rk);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int32_t p = index; p < partitions; p += o.consumers) {
    int64_t lo = 0, hi = 0;
    if (rd_kafka_query_watermark_offsets(rk, o.topic.c_str(), p, &lo, &hi, 10'000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      die("end offset of partition " + std::to_string(p));
    }
    rd_kafka_topic_partition_list_add(list, o.topic.c_str(), p)->offset = hi;
  }
  if (rd_kafka_assign(rk, list) != RD_KAFKA_RESP_ERR_NO_ERROR) die("assign");
  rd_kafka_topic_partition_list_destroy(list);

  std::vector<rd_kafka_message_t*> batch(kBatch);
  bool first_poll = true;
  while (!g_stop.load(std::memory_order_relaxed)) {
    ssize_t n = rd_kafka_consume_batch_queue(q, 0, batch.data(), batch.size());
    if (n == 0) {
      if (rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, kIdleWaitMs)) {
        batch[0] = m;
        n = rd_kafka_consume_batch_queue(q, 0, batch.data() + 1, batch.size() - 1);
        n = n < 0 ? 1 : n + 1;
      }
    }
    if (first_poll) {
      out.ready = true;
      first_poll = false;
    }
    if (n < 0) die(std::string("consume: ") + rd_kafka_err2str(rd_kafka_last_error()));
    size_t before = out.us.size();
    for (ssize_t i = 0; i < n; ++i) {
      rd_kafka_message_t* m = batch[i];
      if (!m->err) {
        int64_t ts = event_ts(static_cast<const char*>(m->payload), m->len);
        if (ts > 0) {
          int64_t now = now_us();
          out.us.push_back(now - ts * 1000);
          double v = static_cast<double>(now / 1000 - ts) / 1e3;  // as LatencyRecorder::observe
          size_t b = 0;
          while (b < kBucketCount && v > kBuckets[b]) ++b;
          ++out.buckets[b];
        }
      } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        std::fprintf(stderr, "bench_kafka_latency: consumer %d: %s\n", index, rd_kafka_message_errstr(m));
      }
      rd_kafka_message_destroy(m);
    }
    if (!o.trace.empty() && out.us.size() > before) {
      auto [lo, hi] = std::minmax_element(out.us.begin() + static_cast<std::ptrdiff_t>(before), out.us.end());
      out.polls.push_back({now_us(), static_cast<int64_t>(out.us.size() - before), *lo, *hi});
    }
  }
  rd_kafka_queue_destroy(q);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
}

int32_t partition_count(const Options& o) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", o.kafka.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) die(err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!rk) die(err);
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk, o.topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(rk, 0, t, &md, 10'000) != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1 ||
      md->topics[0].err) {
    die("no metadata for topic " + o.topic);
  }
  int32_t n = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(t);
  rd_kafka_destroy(rk);
  return n;
}

int64_t rank(const std::vector<int64_t>& sorted, double q) {
  if (sorted.empty()) return -1;
  size_t i = static_cast<size_t>(std::max(0.0, q * static_cast<double>(sorted.size()) - 1e-9));
  return sorted[std::min(i, sorted.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::vector<std::string> sets;
  CLI::App app{"bench_kafka_latency: workload 4's latency floor (runs until SIGTERM; JSON on stdout)"};
  app.add_option("--kafka", o.kafka, "bootstrap HOST:PORT")->required();
  app.add_option("--topic", o.topic, "topic to read from its end")->required();
  app.add_option("--consumers", o.consumers, "consumers (the job's source parallelism)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--set", sets, "librdkafka property name=value (repeatable)");
  app.add_option("--ready-file", o.ready_file, "written once every consumer has polled");
  app.add_option("--trace", o.trace, "one line per poll with records");
  CLI11_PARSE(app, argc, argv);
  for (const auto& kv : sets) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) die("--set expects name=value, got '" + kv + "'");
    o.props.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  std::signal(SIGTERM, [](int) { g_stop = true; });
  std::signal(SIGINT, [](int) { g_stop = true; });

  int32_t partitions = partition_count(o);
  std::vector<Observed> obs(static_cast<size_t>(o.consumers));
  std::vector<std::thread> threads;
  for (int i = 0; i < o.consumers; ++i) {
    threads.emplace_back(consume, std::cref(o), i, partitions, std::ref(obs[static_cast<size_t>(i)]));
  }
  if (!o.ready_file.empty()) {
    while (!g_stop && !std::all_of(obs.begin(), obs.end(), [](const Observed& x) { return x.ready.load(); })) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::ofstream(o.ready_file) << "ready\n";
  }
  for (auto& t : threads) t.join();
  if (!o.trace.empty()) {
    std::ofstream f(o.trace);
    for (size_t i = 0; i < obs.size(); ++i)
      for (const auto& p : obs[i].polls) f << i << ' ' << p[0] << ' ' << p[1] << ' ' << p[2] << ' ' << p[3] << '\n';
  }

  std::vector<int64_t> all;
  std::vector<uint64_t> buckets(kBucketCount + 1, 0);
  for (const auto& x : obs) {
    all.insert(all.end(), x.us.begin(), x.us.end());
    for (size_t b = 0; b <= kBucketCount; ++b) buckets[b] += x.buckets[b];
  }
  std::sort(all.begin(), all.end());
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  std::printf("{\"records\": %zu, \"consumers\": %d, \"partitions\": %d, \"p50_us\": %lld, \"p99_us\": %lld, "
              "\"p999_us\": %lld, \"max_us\": %lld, \"cpu_s\": %.3f, \"buckets\": {",
              all.size(), o.consumers, partitions, static_cast<long long>(rank(all, 0.5)),
              static_cast<long long>(rank(all, 0.99)), static_cast<long long>(rank(all, 0.999)),
              static_cast<long long>(all.empty() ? -1 : all.back()), cpu);
  uint64_t cum = 0;
  for (size_t b = 0; b <= kBucketCount; ++b) {
    cum += buckets[b];
    if (b < kBucketCount) std::printf("\"%g\": %llu, ", kBuckets[b], static_cast<unsigned long long>(cum));
    else std::printf("\"+Inf\": %llu}}\n", static_cast<unsigned long long>(cum));
  }
  return 0;
}
