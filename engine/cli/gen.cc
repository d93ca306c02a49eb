// sluice gen: seeded click events (--kind clicks), page views (--kind
// pageviews), Nexmark's persons, auctions and bids (--kind nexmark) or the
// fraud job's logins, API errors and transactions with their ground truth
// (--kind fraud) as NDJSON.
#include <cerrno>
#include <chrono>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <unordered_set>

#include "connectors/kafka/client.h"
#include "engine/cli/commands.h"
#include "engine/common/time.h"
#include "jobs/gen/fraud.h"
#include "jobs/gen/generator.h"
#include "jobs/gen/nexmark.h"
#include "jobs/gen/pageviews.h"

namespace sluice::cli {

namespace {

struct GenCli {
  std::string kind = "clicks";
  gen::GenOptions o;
  gen::PageViewOptions pv;
  std::string output = "-";
  std::string max_delay = "2s";
  std::string late_delay = "5m";
  // pageviews
  std::string think_time = "20s", pause = "20m", gap = "30m", allowed_lateness = "5m";
  std::string conversion = "0.65,0.4,0.5";
  bool unbounded = false;
  CLI::App* cmd = nullptr;  // to tell options given from defaults
  std::string kafka;  // host:port: produce to Kafka instead of writing a file
  std::string topic;
  std::string kafka_timestamp = "now";  // or "event": the message timestamp is the event's ts
  std::string linger = "5ms";  // the producer's linger.ms: how long it batches before sending
  // fraud
  gen::FraudOptions fraud;
  std::string duration = "2h";
  std::string truth;  // ground-truth file (default <output>/truth.ndjson)
  std::string sent;   // send times of the ground truth's trigger events (latency runs)
};

/// What a generator run produced: the number of lines and a summary.
struct Produced {
  int64_t lines = 0;
  std::string summary;
};
/// Runs the chosen generator with `emit`.
using Generate = std::function<Result<Produced>(const std::function<Status(const std::string&)>& emit)>;
/// The string value of `"name":"…"` in a generated line (no escapes in
/// ids), or empty.
std::string json_string_field(const std::string& line, std::string_view name) {
  std::string key = "\"" + std::string(name) + "\":\"";
  auto at = line.find(key);
  if (at == std::string::npos) return {};
  at += key.size();
  auto end = line.find('"', at);
  return end == std::string::npos ? std::string() : line.substr(at, end - at);
}

/// Wall clock, epoch microseconds.
int64_t wall_clock_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// The "ts" of a generated line, or 0 (the producer's clock) when it has none.
int64_t event_ts(const std::string& line) {
  auto at = line.find("\"ts\":");
  if (at == std::string::npos) return 0;
  int64_t v = 0;
  auto r = std::from_chars(line.data() + at + 5, line.data() + line.size(), v);
  return r.ec == std::errc() && v > 0 ? v : 0;
}

/// The --kafka producer (idempotent, acks=all) with the --linger batching.
/// TCP_NODELAY: with Nagle on (librdkafka's default) a produce request written
/// while the previous one is unacknowledged waits for the broker's delayed ACK
/// (~40 ms on Linux): at 200 k ev/s that made the bare consumer's p99 of
/// workload 4 12–1000 ms instead of 6–7 ms (bench/README.md, "Sixth pass").
Result<std::unique_ptr<kafka::SimpleProducer>> make_producer(const GenCli& c) {
  auto linger = parse_duration(c.linger);
  if (!linger.is_ok() || linger->count() < 0) {
    return Status::invalid_argument("--linger: expected a duration such as 0ms or 5ms, got '" + c.linger + "'");
  }
  return kafka::SimpleProducer::create(c.kafka, {{"linger.ms", std::to_string(linger->count())},
                                                 {"socket.nagle.disable", "true"}});
}

// --kafka: every line becomes one message (malformed lines too, as
// malformed messages), produced idempotently with acks=all.
int run_kafka(GenCli& c, const Generate& generate) {
  if (c.topic.empty()) return report_error("--kafka needs --topic", 2);
  if (c.output != "-") return report_error("--kafka and --output exclude each other", 2);
  auto producer = make_producer(c);
  if (!producer.is_ok()) return report_error(producer.status().message(), 2);
  auto& p = **producer;
  p.prepare({c.topic});  // the first events go out at once (paced runs measure latency from them)
  const bool event_time = c.kafka_timestamp == "event";
  auto r = generate([&](const std::string& line) {
    return p.produce(c.topic, line, std::nullopt, -1, {}, event_time ? event_ts(line) : 0);
  });
  Status st = r.is_ok() ? p.flush() : r.status();
  if (!st.is_ok()) return report_error(st.message(), 1);
  std::cerr << "produced " << r->lines << " messages to " << c.kafka << "/" << c.topic << ": " << r->summary
            << std::endl;
  return 0;
}

/// --kind nexmark: --count, --seed, --start-ts and --events-per-second
/// (default 100,000 per second of event time); other event options are
/// refused rather than ignored.
Result<nexmark::NexmarkOptions> nexmark_options(GenCli& c) {
  for (const char* flag : {"--unbounded", "--rate", "--users", "--pages", "--skew", "--out-of-order", "--max-delay",
                           "--late", "--late-delay", "--malformed", "--products", "--think-time", "--pause", "--gap",
                           "--allowed-lateness", "--conversion"}) {
    if (c.cmd && c.cmd->count(flag) > 0) {
      return Status::invalid_argument(std::string(flag) +
                                      " is not an option of --kind nexmark (it takes --count, --seed, --start-ts, "
                                      "--events-per-second and the outputs)");
    }
  }
  nexmark::NexmarkOptions o;
  o.count = c.o.count;
  o.seed = c.o.seed;
  o.start_ts = c.o.start_ts;
  if (c.cmd && c.cmd->count("--events-per-second") > 0) o.events_per_second = c.o.events_per_second;
  SLUICE_RETURN_IF_ERROR(o.validate());
  return o;
}

/// --kind fraud: three streams and the ground truth. Options of the other
/// kinds are refused rather than ignored.
Result<gen::FraudOptions> fraud_options(GenCli& c) {
  for (const char* flag : {"--unbounded", "--pages", "--skew", "--events-per-second", "--late", "--late-delay",
                           "--products", "--think-time", "--pause", "--gap", "--allowed-lateness", "--conversion",
                           "--purchase-rate", "--split", "--bridge", "--very-late", "--full-urls"}) {
    if (c.cmd && c.cmd->count(flag) > 0) {
      return Status::invalid_argument(std::string(flag) + " is not an option of --kind fraud (see sluice gen --help)");
    }
  }
  auto given = [&](const char* flag) { return c.cmd && c.cmd->count(flag) > 0; };
  gen::FraudOptions o = c.fraud;
  o.seed = c.o.seed;
  o.start_ts = c.o.start_ts;
  o.rate = c.o.rate;
  if (given("--count")) o.count = c.o.count;
  if (given("--users")) o.users = c.o.users;
  if (given("--out-of-order")) o.out_of_order_fraction = c.o.out_of_order_fraction;
  if (given("--malformed")) o.malformed_fraction = c.o.malformed_fraction;
  if (given("--max-delay")) {
    auto v = parse_duration(c.max_delay);
    if (!v.is_ok()) return Status::invalid_argument("--max-delay: " + v.status().message());
    o.max_delay = *v;
  }
  auto d = parse_duration(c.duration);
  if (!d.is_ok()) return Status::invalid_argument("--duration: " + d.status().message());
  o.duration = *d;
  // Paced: a live stream whose event time is the wall clock, unless --start-ts says otherwise.
  if (o.rate > 0 && !given("--start-ts")) o.start_ts = wall_clock_ms();
  if (o.rate > 0 && !given("--duration")) {
    o.duration = Duration(static_cast<int64_t>(static_cast<double>(o.count) / o.rate * 1000.0));
  }
  SLUICE_RETURN_IF_ERROR(o.validate());
  return o;
}

std::string fraud_summary(const gen::FraudSummary& r) {
  return std::to_string(r.lines[0]) + " logins, " + std::to_string(r.lines[1]) + " API errors, " +
         std::to_string(r.lines[2]) + " transactions (" + std::to_string(r.malformed) + " malformed, " +
         std::to_string(r.out_of_order) + " out of order); " + std::to_string(r.scenarios) + " fraud scenarios, " +
         std::to_string(r.near_misses) + " near misses";
}

/// --kind fraud to a directory (logins.ndjson, api_errors.ndjson,
/// transactions.ndjson, truth.ndjson) or to Kafka topics <prefix>logins,
/// <prefix>api_errors, <prefix>transactions with the truth in --truth.
int run_fraud(GenCli& c) {
  auto o = fraud_options(c);
  if (!o.is_ok()) return report_error(o.status().message(), 2);
  const bool to_kafka = !c.kafka.empty();
  if (to_kafka && c.output != "-") return report_error("--kafka and --output exclude each other", 2);
  if (!to_kafka && c.output == "-") {
    return report_error("--kind fraud writes three streams: give --output DIR (or --kafka host:port)", 2);
  }
  if (!to_kafka && !c.topic.empty()) return report_error("--topic needs --kafka", 2);
  std::string truth_path = c.truth;
  if (truth_path.empty()) {
    if (to_kafka) return report_error("--kind fraud with --kafka needs --truth FILE for the ground truth", 2);
    truth_path = c.output + "/truth.ndjson";
  }
  std::error_code ec;
  if (!to_kafka) std::filesystem::create_directories(c.output, ec);
  if (ec) return report_error("cannot create '" + c.output + "': " + ec.message(), 2);
  std::unique_ptr<kafka::SimpleProducer> producer;
  if (to_kafka) {
    auto p = make_producer(c);
    if (!p.is_ok()) return report_error(p.status().message(), 2);
    producer = std::move(*p);
    std::vector<std::string> topics;
    for (int s = 0; s < 3; ++s) topics.push_back(c.topic + gen::fraud_stream_name(static_cast<gen::FraudStream>(s)));
    producer->prepare(topics);
  }
  struct Out {
    std::FILE* f = nullptr;
    std::string path;
    std::string buf;
  };
  std::vector<Out> outs(5);  // the three streams, the truth, the send times (--sent)
  auto open = [&](Out& out, const std::string& path) -> Status {
    out.path = path;
    out.f = std::fopen(path.c_str(), "wb");
    return out.f ? Status::ok() : Status::from_errno("cannot write '" + path + "'", errno);
  };
  auto flush = [](Out& out) -> Status {
    if (!out.f || out.buf.empty()) return Status::ok();
    if (std::fwrite(out.buf.data(), 1, out.buf.size(), out.f) != out.buf.size()) {
      return Status::from_errno("writing '" + out.path + "'", errno);
    }
    out.buf.clear();
    return Status::ok();
  };
  Status st = Status::ok();
  for (int s = 0; s < 3 && st.is_ok() && !to_kafka; ++s) {
    st = open(outs[s], c.output + "/" + gen::fraud_stream_name(static_cast<gen::FraudStream>(s)) + ".ndjson");
  }
  if (st.is_ok()) st = open(outs[3], truth_path);
  if (st.is_ok() && !c.sent.empty()) st = open(outs[4], c.sent);
  const bool paced = c.o.rate > 0;
  const bool event_time = c.kafka_timestamp == "event";
  // --sent: the trigger events of the ground truth (its lines all come
  // before the first event line) and the wall clock when each was sent.
  std::unordered_set<std::string> triggers;
  Result<gen::FraudSummary> r = st;
  if (st.is_ok()) {
    r = gen::run_fraud(
        *o,
        [&](gen::FraudStream s, const std::string& line) -> Status {
          if (!triggers.empty()) {
            std::string id = json_string_field(line, "id");
            if (triggers.erase(id) > 0) {
              outs[4].buf += "{\"id\":\"" + id + "\",\"stream\":\"" + gen::fraud_stream_name(s) +
                             "\",\"sent_us\":" + std::to_string(wall_clock_us()) + "}\n";
            }
          }
          if (producer) {
            // Keyed by user, as a real producer would: a user's events stay in one
            // partition, and every partition gets a share of each moment (keyless
            // messages go to one partition for a while, the sticky partitioner,
            // holding back the watermark of the others).
            std::string user = json_string_field(line, "user");
            return producer->produce(c.topic + gen::fraud_stream_name(s), line,
                                     user.empty() ? std::nullopt : std::optional<std::string_view>(user), -1, {},
                                     event_time ? event_ts(line) : 0);
          }
          Out& out = outs[static_cast<int>(s)];
          out.buf += line;
          out.buf.push_back('\n');
          return out.buf.size() >= (1 << 20) || paced ? flush(out) : Status::ok();
        },
        [&](const std::string& line) -> Status {
          outs[3].buf += line;
          outs[3].buf.push_back('\n');
          if (outs[4].f) {
            std::string trigger = json_string_field(line, "trigger");
            if (!trigger.empty()) triggers.insert(std::move(trigger));
          }
          return Status::ok();
        });
  }
  st = r.is_ok() ? Status::ok() : r.status();
  for (auto& out : outs) {
    if (st.is_ok()) st = flush(out);
    if (out.f) std::fclose(out.f);
  }
  if (st.is_ok() && producer) st = producer->flush();
  if (!st.is_ok()) return report_error(st.message(), 2);
  std::cerr << "generated " << r->total() << " lines: " << fraud_summary(*r) << "; ground truth in " << truth_path
            << std::endl;
  return 0;
}

Result<gen::PageViewOptions> pageview_options(GenCli& c) {
  gen::PageViewOptions o = c.pv;
  o.count = c.unbounded ? -1 : c.o.count;
  o.seed = c.o.seed;
  o.users = c.o.users;
  o.start_ts = c.o.start_ts;
  o.rate = c.o.rate;
  // Options shared with clicks keep the page-view defaults unless given.
  auto given = [&](const char* flag) { return c.cmd && c.cmd->count(flag) > 0; };
  o.out_of_order_fraction = c.o.out_of_order_fraction;
  if (given("--late")) o.late_fraction = c.o.late_fraction;
  if (given("--malformed")) o.malformed_fraction = c.o.malformed_fraction;
  if (!given("--max-delay")) c.max_delay = "5s";
  struct D { const char* flag; std::string* text; Duration* out; };
  for (D d : {D{"--max-delay", &c.max_delay, &o.out_of_orderness}, D{"--think-time", &c.think_time, &o.think_time},
              D{"--pause", &c.pause, &o.pause}, D{"--gap", &c.gap, &o.gap},
              D{"--allowed-lateness", &c.allowed_lateness, &o.allowed_lateness}}) {
    auto v = parse_duration(*d.text);
    if (!v.is_ok()) return Status::invalid_argument(std::string(d.flag) + ": " + v.status().message());
    *d.out = *v;
  }
  o.conversion.clear();
  size_t start = 0;
  while (start <= c.conversion.size()) {
    size_t comma = c.conversion.find(',', start);
    std::string part = c.conversion.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    char* end = nullptr;
    double v = std::strtod(part.c_str(), &end);
    if (part.empty() || *end != '\0') return Status::invalid_argument("--conversion: '" + part + "' is not a number");
    o.conversion.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  SLUICE_RETURN_IF_ERROR(o.validate());
  return o;
}

int run(GenCli& c) {
  if (c.kind == "fraud") return run_fraud(c);
  if (!c.sent.empty() || c.fraud.triggers_in_run) {
    return report_error("--sent and --triggers-in-run are options of --kind fraud", 2);
  }
  Generate generate;
  if (c.kind == "clicks") {
    auto md = parse_duration(c.max_delay);
    if (!md.is_ok()) return report_error("--max-delay: " + md.status().message(), 2);
    auto ld = parse_duration(c.late_delay);
    if (!ld.is_ok()) return report_error("--late-delay: " + ld.status().message(), 2);
    c.o.max_delay = *md;
    c.o.late_delay = *ld;
    if (c.unbounded) c.o.count = -1;
    // Check before opening anything: a bad option must not empty an existing file.
    if (auto st = c.o.validate(); !st.is_ok()) return report_error(st.message(), 2);
    generate = [&c](const std::function<Status(const std::string&)>& emit) -> Result<Produced> {
      SLUICE_ASSIGN_OR_RETURN(gen::GenSummary r, gen::run_generator(c.o, emit));
      return Produced{r.total(), std::to_string(r.on_time) + " on time, " + std::to_string(r.out_of_order) +
                                     " out of order, " + std::to_string(r.late) + " late, " +
                                     std::to_string(r.malformed) + " malformed"};
    };
  } else if (c.kind == "pageviews") {
    auto o = pageview_options(c);
    if (!o.is_ok()) return report_error(o.status().message(), 2);
    generate = [o = *o](const std::function<Status(const std::string&)>& emit) -> Result<Produced> {
      SLUICE_ASSIGN_OR_RETURN(gen::PageViewSummary r, gen::run_pageviews(o, emit));
      return Produced{r.total(), "page views: " + std::to_string(r.on_time) + " on time, " +
                                     std::to_string(r.out_of_order) + " out of order, " + std::to_string(r.late) +
                                     " late, " + std::to_string(r.bridging) + " bridging, " +
                                     std::to_string(r.very_late) + " very late, " + std::to_string(r.malformed) +
                                     " malformed; " + std::to_string(r.sessions_started) + " visits started"};
    };
  } else if (c.kind == "nexmark") {
    auto o = nexmark_options(c);
    if (!o.is_ok()) return report_error(o.status().message(), 2);
    generate = [o = *o](const std::function<Status(const std::string&)>& emit) -> Result<Produced> {
      nexmark::NexmarkGenerator g(o);
      std::string line;
      int64_t n = 0;
      while (!g.done()) {
        g.next_line(line);
        SLUICE_RETURN_IF_ERROR(emit(line));
        ++n;
      }
      return Produced{n, "Nexmark persons, auctions and bids (1:3:46)"};
    };
  } else {
    return report_error("--kind must be clicks, pageviews, nexmark or fraud, not '" + c.kind + "'", 2);
  }
  const bool paced = c.o.rate > 0;
  if (!c.kafka.empty()) return run_kafka(c, generate);
  if (!c.topic.empty()) return report_error("--topic needs --kafka", 2);
  std::FILE* out = stdout;
  if (c.output != "-") {
    out = std::fopen(c.output.c_str(), "wb");
    if (!out) return report_error(Status::from_errno("cannot write '" + c.output + "'", errno).message(), 2);
  }
  std::string buf;
  auto flush = [&]() -> Status {
    if (std::fwrite(buf.data(), 1, buf.size(), out) != buf.size()) {
      return Status::from_errno("writing '" + c.output + "'", errno);
    }
    buf.clear();
    return Status::ok();
  };
  auto r = generate([&](const std::string& line) -> Status {
    buf += line;
    buf.push_back('\n');
    if (buf.size() >= (1 << 20) || paced) return flush();
    return Status::ok();
  });
  Status st = r.is_ok() ? flush() : r.status();
  if (out != stdout) std::fclose(out);
  else std::fflush(stdout);
  if (!st.is_ok()) return report_error(st.message(), 2);
  std::cerr << "generated " << r->lines << " lines: " << r->summary << std::endl;
  return 0;
}

}  // namespace

Runner add_gen(CLI::App& app) {
  auto c = std::make_shared<GenCli>();
  auto* cmd = app.add_subcommand("gen", "Generate click events, page views or Nexmark events (NDJSON), seeded and reproducible");
  c->cmd = cmd;
  cmd->add_option("--kind", c->kind, "clicks (the clickstream job's input), pageviews (sessions_funnel's), nexmark "
                  "(persons, auctions and bids of the Nexmark benchmark, bench/nexmark) or fraud (the fraud job's "
                  "logins, api_errors and transactions, with the ground truth)")
      ->capture_default_str();
  cmd->add_option("-n,--count", c->o.count, "Number of events")->capture_default_str();
  cmd->add_flag("--unbounded", c->unbounded, "Run until killed (needs --rate)");
  cmd->add_option("--rate", c->o.rate, "Events per wall-clock second (event time = now); 0 = as fast as possible")
      ->capture_default_str();
  cmd->add_option("--seed", c->o.seed, "Random seed")->capture_default_str();
  cmd->add_option("--users", c->o.users, "Distinct users")->capture_default_str();
  cmd->add_option("--pages", c->o.pages, "Distinct pages")->capture_default_str();
  cmd->add_option("--skew", c->o.skew, "Zipf exponent of page popularity (0 = uniform)")
      ->capture_default_str();
  cmd->add_option("--start-ts", c->o.start_ts, "Event time of the first event (epoch ms)")
      ->capture_default_str();
  cmd->add_option("--events-per-second", c->o.events_per_second,
                  "Event-time density: events per second of event time")
      ->capture_default_str();
  cmd->add_option("--out-of-order", c->o.out_of_order_fraction,
                  "Fraction of events delayed by up to --max-delay")
      ->capture_default_str();
  cmd->add_option("--max-delay", c->max_delay,
                  "Largest out-of-order delay (pageviews: also the job's watermark bound; default 5s there)")
      ->capture_default_str();
  cmd->add_option("--late", c->o.late_fraction,
                  "Fraction of events older by --late-delay .. 2x --late-delay")
      ->capture_default_str();
  cmd->add_option("--late-delay", c->late_delay, "Delay of late events")->capture_default_str();
  cmd->add_option("--malformed", c->o.malformed_fraction, "Fraction of malformed lines")
      ->capture_default_str();
  cmd->add_option("--products", c->pv.products, "pageviews: distinct products")->capture_default_str();
  cmd->add_option("--think-time", c->think_time, "pageviews: mean time between a session's events")->capture_default_str();
  cmd->add_option("--pause", c->pause, "pageviews: mean pause between a user's sessions, beyond the gap")->capture_default_str();
  cmd->add_option("--gap", c->gap, "pageviews: the job's session gap")->capture_default_str();
  cmd->add_option("--allowed-lateness", c->allowed_lateness,
                  "pageviews: the job's allowed lateness (late and bridging events stay within it)")
      ->capture_default_str();
  cmd->add_option("--conversion", c->conversion, "pageviews: home->product, product->cart, cart->checkout rates")
      ->capture_default_str();
  cmd->add_option("--purchase-rate", c->pv.purchase_rate, "pageviews: checkout -> purchase rate")->capture_default_str();
  cmd->add_option("--split", c->pv.split_fraction, "pageviews: share of pauses just longer than the gap")->capture_default_str();
  cmd->add_option("--bridge", c->pv.bridge_fraction, "pageviews: share of those bridged by a late event")->capture_default_str();
  cmd->add_option("--very-late", c->pv.very_late_fraction, "pageviews: share of events days behind every watermark")
      ->capture_default_str();
  cmd->add_option("--full-urls", c->pv.full_url_fraction, "pageviews: share of page_url given as a full URL")
      ->capture_default_str();
  cmd->add_option("--duration", c->duration,
                  "fraud: event-time span of the background traffic (with --rate: --count / --rate, event time = now)")
      ->capture_default_str();
  cmd->add_option("--scenarios", c->fraud.scenarios, "fraud: injected scenarios of each kind (and as many near misses)")
      ->capture_default_str();
  cmd->add_option("--fail-count", c->fraud.fail_count, "fraud: the job's fail_count (failed logins before a purchase)")
      ->capture_default_str();
  cmd->add_option("--amount-threshold", c->fraud.amount_threshold, "fraud: the job's amount_threshold")
      ->capture_default_str();
  cmd->add_option("--truth", c->truth, "fraud: ground-truth file (default <output>/truth.ndjson; needed with --kafka)");
  cmd->add_flag("--triggers-in-run", c->fraud.triggers_in_run, "fraud: place each scenario so that its trigger (the event that alerts) falls "
                "within the run, its history before the start (sent first): live runs shorter than 25m");
  cmd->add_option("--sent", c->sent,
                  "fraud: write, for every trigger event of the ground truth, the wall clock when it was sent "
                  "({\"id\",\"stream\",\"sent_us\"}, epoch microseconds): the start of a latency measurement");
  cmd->add_option("-o,--output", c->output, "Output file, or - for stdout (fraud: a directory for the three streams)")
      ->capture_default_str();
  cmd->add_option("--kafka", c->kafka, "Produce to Kafka at host:port instead (one message per event)");
  cmd->add_option("--topic", c->topic, "Kafka topic for --kafka (fraud: a prefix of the three topics)");
  cmd->add_option("--kafka-timestamp", c->kafka_timestamp,
                  "Kafka message timestamps: now (the producer's clock) or event (the event's ts: history that "
                  "start=ts:/stop=ts: can select)")
      ->capture_default_str()
      ->check(CLI::IsMember({"now", "event"}));
  cmd->add_option("--linger", c->linger,
                  "With --kafka: how long the producer batches messages before sending (linger.ms); "
                  "0ms sends each at once, for latency measurements")
      ->capture_default_str();
  return [c] { return run(*c); };
}

}  // namespace sluice::cli
