// bench_baseline: the clickstream job's work with no engine, on one thread.
//
// Reads click events (NDJSON from a file, or messages from Kafka with
// librdkafka's batch consume), parses each with simdjson On-Demand into
// string views (all four fields, as the job's deserializer does), rejects
// invalid events like the job's `validate` filter, and counts events per
// (tumbling event-time window, page) in a hash map. A window is emitted and
// forgotten when the watermark (max event time - out-of-orderness - 1 ms)
// reaches its end, as the job's window operator does; events for a window
// already emitted are counted as late and dropped. What remains is emitted
// at end of input. Rows are written in the job's sink format so the
// benchmark can compare outputs.
//
// This is the yardstick of bench/run.sh: "how fast could one core do this
// work at all". It owns no threads besides librdkafka's.
//
//   bench_baseline --file PATH [--window-ms 60000] [--out-of-orderness-ms 2000] [--output PATH]
//   bench_baseline --kafka HOST:PORT --topic T [...]
//
// Prints one JSON object on stdout: events, malformed, invalid, late, rows,
// seconds, events_per_s.
#include <librdkafka/rdkafka.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

struct Options {
  std::string file;
  std::string kafka;
  std::string topic;
  std::string output;  // empty: no rows written
  int64_t window_ms = 60'000;
  int64_t out_of_orderness_ms = 2'000;
};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "bench_baseline: %s\n", msg.c_str());
  std::exit(2);
}

/// Per-window page counts with watermark-driven emission. Single-threaded.
class WindowCounter {
 public:
  WindowCounter(int64_t window_ms, int64_t ooo_ms, std::FILE* out) : size_(window_ms), ooo_(ooo_ms), out_(out) {}

  /// Counts one event; with `advance`, moves the watermark by this event
  /// (one ordered input: a file). Kafka advances it per batch instead.
  void add(std::string_view page, int64_t ts, bool advance = true) {
    int64_t start = ts - ((ts % size_) + size_) % size_;
    if (start + size_ - 1 <= watermark_) {  // its window has fired
      ++late_;
      return;
    }
    auto& pages = windows_[start];
    auto it = pages.find(page);  // heterogeneous lookup: no allocation for a known page
    if (it == pages.end()) it = pages.emplace(std::string(page), 0).first;
    ++it->second;
    if (advance) advance_to(ts);
  }
  /// Watermark = `max_ts` - out-of-orderness - 1 ms, if that is later.
  void advance_to(int64_t max_ts) {
    if (max_ts - ooo_ - 1 > watermark_) {
      watermark_ = max_ts - ooo_ - 1;
      fire(watermark_);
    }
  }
  void finish() { fire(INT64_MAX); }
  int64_t late() const { return late_; }
  int64_t rows() const { return rows_; }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Pages = std::unordered_map<std::string, int64_t, Hash, std::equal_to<>>;

  void fire(int64_t watermark) {
    while (!windows_.empty()) {
      auto first = windows_.begin();
      int64_t end = first->first + size_;
      if (watermark != INT64_MAX && end - 1 > watermark) break;
      for (const auto& [page, n] : first->second) {
        ++rows_;
        if (out_) {
          // page_url comes from the generator (no characters needing escapes); the
          // comparison in run.sh re-parses both sides anyway.
          std::fprintf(out_, "{\"window_start\":%lld,\"window_end\":%lld,\"page_url\":\"%s\",\"count\":%lld}\n",
                       static_cast<long long>(first->first), static_cast<long long>(end), page.c_str(),
                       static_cast<long long>(n));
        }
      }
      windows_.erase(first);
    }
  }

  int64_t size_, ooo_;
  std::FILE* out_;
  std::map<int64_t, Pages> windows_;
  int64_t watermark_ = INT64_MIN;
  int64_t late_ = 0, rows_ = 0;
};

/// Parses one event and feeds the counter. `capacity` >= len + simdjson::SIMDJSON_PADDING.
struct Processor {
  simdjson::ondemand::parser parser;
  WindowCounter counter;
  int64_t events = 0, malformed = 0, invalid = 0;
  int64_t retention_lost = 0;  // Kafka: records already deleted when the read began

  explicit Processor(const Options& o, std::FILE* out) : counter(o.window_ms, o.out_of_orderness_ms, out) {}

  /// Returns the event time of a valid event, else INT64_MIN.
  int64_t process(const char* data, size_t len, size_t capacity, bool advance = true) {
    ++events;
    std::string_view user, page, type;
    int64_t ts = 0;
    bool have_ts = false, ok = true;
    simdjson::ondemand::document doc;
    if (parser.iterate(data, len, capacity).get(doc) != simdjson::SUCCESS) {
      ++malformed;
      return INT64_MIN;
    }
    simdjson::ondemand::object obj;
    if (doc.get_object().get(obj) != simdjson::SUCCESS) {
      ++malformed;
      return INT64_MIN;
    }
    for (auto field : obj) {
      std::string_view key;
      if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
        ok = false;
        break;
      }
      auto v = field.value();
      if (key == "user_id") ok = v.get_string().get(user) == simdjson::SUCCESS;
      else if (key == "page_url") ok = v.get_string().get(page) == simdjson::SUCCESS;
      else if (key == "event_type") ok = v.get_string().get(type) == simdjson::SUCCESS;
      else if (key == "ts") ok = have_ts = v.get_int64().get(ts) == simdjson::SUCCESS;
      if (!ok) break;
    }
    if (!ok) {
      ++malformed;
      return INT64_MIN;
    }
    if (page.empty() || !have_ts || ts <= 0) {
      ++invalid;
      return INT64_MIN;
    }
    counter.add(page, ts, advance);
    return ts;
  }
};

void run_file(const Options& o, Processor& p) {
  std::FILE* in = std::fopen(o.file.c_str(), "rb");
  if (!in) die("cannot read " + o.file);
  constexpr size_t kChunk = 4 << 20;
  std::vector<char> buf(kChunk + simdjson::SIMDJSON_PADDING);
  size_t have = 0;
  while (true) {
    size_t n = std::fread(buf.data() + have, 1, kChunk - have, in);
    have += n;
    bool eof = n == 0;
    size_t pos = 0;
    while (pos < have) {
      const char* nl = static_cast<const char*>(std::memchr(buf.data() + pos, '\n', have - pos));
      if (!nl && !eof) break;
      size_t end = nl ? static_cast<size_t>(nl - buf.data()) : have;
      size_t len = end - pos;
      bool blank = true;
      for (size_t i = pos; i < end && blank; ++i) blank = buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r';
      if (!blank) p.process(buf.data() + pos, len, buf.size() - pos);
      pos = end + 1;
    }
    if (eof) break;
    if (pos > have) pos = have;
    std::memmove(buf.data(), buf.data() + pos, have - pos);
    have -= pos;
    if (have == kChunk) die("a line longer than 4 MiB");
  }
  std::fclose(in);
}

void run_kafka(const Options& o, Processor& p) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto set = [&](const char* k, const char* v) {
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) die(std::string(k) + ": " + err);
  };
  set("bootstrap.servers", o.kafka.c_str());
  set("group.id", "bench-baseline");
  set("enable.auto.commit", "false");
  set("enable.partition.eof", "true");
  set("auto.offset.reset", "earliest");
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!rk) die(std::string("consumer: ") + err);
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk, o.topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  if (rd_kafka_metadata(rk, 0, t, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1 ||
      md->topics[0].partition_cnt == 0) {
    die("no metadata for topic " + o.topic);
  }
  int parts = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(t);
  // Read up to the end offsets seen now, like the job's `stop=latest`.
  std::vector<int64_t> high(parts, 0), low(parts, 0);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(parts);
  int open = 0;
  for (int i = 0; i < parts; ++i) {
    int64_t& lo = low[i];
    if (rd_kafka_query_watermark_offsets(rk, o.topic.c_str(), i, &lo, &high[i], 10000) != 0) die("watermarks");
    p.retention_lost += lo;
    if (high[i] > lo) {
      rd_kafka_topic_partition_list_add(list, o.topic.c_str(), i)->offset = RD_KAFKA_OFFSET_BEGINNING;
      ++open;
    }
  }
  if (rd_kafka_assign(rk, list) != RD_KAFKA_RESP_ERR_NO_ERROR) die("assign");
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_queue_t* q = rd_kafka_queue_get_consumer(rk);
  // As the job's source: one watermark per partition, the minimum over the
  // partitions still being read is the watermark (a finished one no longer
  // holds it back).
  std::vector<bool> done(parts, false);
  std::vector<int64_t> part_max(parts, INT64_MIN);
  for (int i = 0; i < parts; ++i) done[i] = high[i] <= low[i];
  std::vector<rd_kafka_message_t*> msgs(10000);
  std::vector<char> pad;
  while (open > 0) {
    ssize_t n = rd_kafka_consume_batch_queue(q, 100, msgs.data(), msgs.size());
    for (ssize_t i = 0; i < n; ++i) {
      rd_kafka_message_t* m = msgs[i];
      int part = m->partition;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (!done[part]) done[part] = true, --open;
      } else if (m->err) {
        die(std::string("consume: ") + rd_kafka_message_errstr(m));
      } else if (!done[part]) {
        size_t len = m->len;
        if (pad.size() < len + simdjson::SIMDJSON_PADDING) pad.resize(len + simdjson::SIMDJSON_PADDING);
        std::memcpy(pad.data(), m->payload, len);
        int64_t ts = p.process(pad.data(), len, pad.size(), false);
        if (ts > part_max[part]) part_max[part] = ts;
        if (m->offset + 1 >= high[part]) done[part] = true, --open;
      }
      rd_kafka_message_destroy(m);
    }
    int64_t wm = INT64_MAX;
    for (int i = 0; i < parts; ++i)
      if (!done[i]) wm = std::min(wm, part_max[i]);
    if (wm != INT64_MAX && wm != INT64_MIN) p.counter.advance_to(wm);
  }
  rd_kafka_queue_destroy(q);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--file") o.file = next();
    else if (a == "--kafka") o.kafka = next();
    else if (a == "--topic") o.topic = next();
    else if (a == "--output") o.output = next();
    else if (a == "--window-ms") o.window_ms = std::stoll(next());
    else if (a == "--out-of-orderness-ms") o.out_of_orderness_ms = std::stoll(next());
    else if (a == "-h" || a == "--help") {
      std::puts("bench_baseline (--file PATH | --kafka HOST:PORT --topic T) [--window-ms N] "
                "[--out-of-orderness-ms N] [--output PATH]");
      return 0;
    } else {
      die("unknown option " + a);
    }
  }
  if (o.file.empty() == o.kafka.empty()) die("give exactly one of --file and --kafka");
  if (!o.kafka.empty() && o.topic.empty()) die("--kafka needs --topic");
  if (o.window_ms <= 0) die("--window-ms must be positive");
  std::FILE* out = nullptr;
  if (!o.output.empty() && !(out = std::fopen(o.output.c_str(), "wb"))) die("cannot write " + o.output);
  auto p = std::make_unique<Processor>(o, out);
  auto t0 = std::chrono::steady_clock::now();
  if (!o.file.empty()) run_file(o, *p);
  else run_kafka(o, *p);
  p->counter.finish();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (out) std::fclose(out);
  std::printf(
      "{\"events\":%lld,\"retention_lost\":%lld,\"malformed\":%lld,\"invalid\":%lld,\"late\":%lld,\"rows\":%lld,\"seconds\":%.6f,"
      "\"events_per_s\":%.0f}\n",
      static_cast<long long>(p->events), static_cast<long long>(p->retention_lost),
      static_cast<long long>(p->malformed), static_cast<long long>(p->invalid),
      static_cast<long long>(p->counter.late()), static_cast<long long>(p->counter.rows()), s,
      s > 0 ? p->events / s : 0.0);
  return 0;
}
