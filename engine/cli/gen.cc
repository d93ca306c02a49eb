// sluice gen: seeded click events as NDJSON.
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <iostream>

#include "connectors/kafka/client.h"
#include "engine/cli/commands.h"
#include "engine/common/time.h"
#include "jobs/gen/generator.h"

namespace sluice::cli {

namespace {

struct GenCli {
  gen::GenOptions o;
  std::string output = "-";
  std::string max_delay = "2s";
  std::string late_delay = "5m";
  bool unbounded = false;
  std::string kafka;  // host:port: produce to Kafka instead of writing a file
  std::string topic;
  std::string kafka_timestamp = "now";  // or "event": the message timestamp is the event's ts
};

/// The "ts" of a generated line, or 0 (the producer's clock) when it has none.
int64_t event_ts(const std::string& line) {
  auto at = line.find("\"ts\":");
  if (at == std::string::npos) return 0;
  int64_t v = 0;
  auto r = std::from_chars(line.data() + at + 5, line.data() + line.size(), v);
  return r.ec == std::errc() && v > 0 ? v : 0;
}

// --kafka: every line becomes one message (malformed lines too, as
// malformed messages), produced idempotently with acks=all.
int run_kafka(GenCli& c) {
  if (c.topic.empty()) return report_error("--kafka needs --topic", 2);
  if (c.output != "-") return report_error("--kafka and --output exclude each other", 2);
  auto producer = kafka::SimpleProducer::create(c.kafka);
  if (!producer.is_ok()) return report_error(producer.status().message(), 2);
  auto& p = **producer;
  const bool event_time = c.kafka_timestamp == "event";
  auto r = gen::run_generator(c.o, [&](const std::string& line) {
    return p.produce(c.topic, line, std::nullopt, -1, {}, event_time ? event_ts(line) : 0);
  });
  Status st = r.is_ok() ? p.flush() : r.status();
  if (!st.is_ok()) return report_error(st.message(), 1);
  std::cerr << "produced " << r->total() << " messages to " << c.kafka << "/" << c.topic << ": "
            << r->on_time << " on time, " << r->out_of_order << " out of order, " << r->late
            << " late, " << r->malformed << " malformed" << std::endl;
  return 0;
}

int run(GenCli& c) {
  auto md = parse_duration(c.max_delay);
  if (!md.is_ok()) return report_error("--max-delay: " + md.status().message(), 2);
  auto ld = parse_duration(c.late_delay);
  if (!ld.is_ok()) return report_error("--late-delay: " + ld.status().message(), 2);
  c.o.max_delay = *md;
  c.o.late_delay = *ld;
  if (c.unbounded) c.o.count = -1;
  // Check before opening anything: a bad option must not empty an existing file.
  if (auto st = c.o.validate(); !st.is_ok()) return report_error(st.message(), 2);
  if (!c.kafka.empty()) return run_kafka(c);
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
  auto r = gen::run_generator(c.o, [&](const std::string& line) -> Status {
    buf += line;
    buf.push_back('\n');
    if (buf.size() >= (1 << 20) || c.o.rate > 0) return flush();
    return Status::ok();
  });
  Status st = r.is_ok() ? flush() : r.status();
  if (out != stdout) std::fclose(out);
  else std::fflush(stdout);
  if (!st.is_ok()) return report_error(st.message(), 2);
  std::cerr << "generated " << r->total() << " lines: " << r->on_time << " on time, "
            << r->out_of_order << " out of order, " << r->late << " late, " << r->malformed
            << " malformed" << std::endl;
  return 0;
}

}  // namespace

Runner add_gen(CLI::App& app) {
  auto c = std::make_shared<GenCli>();
  auto* cmd = app.add_subcommand("gen", "Generate click events (NDJSON), seeded and reproducible");
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
  cmd->add_option("--max-delay", c->max_delay, "Largest out-of-order delay")->capture_default_str();
  cmd->add_option("--late", c->o.late_fraction,
                  "Fraction of events older by --late-delay .. 2x --late-delay")
      ->capture_default_str();
  cmd->add_option("--late-delay", c->late_delay, "Delay of late events")->capture_default_str();
  cmd->add_option("--malformed", c->o.malformed_fraction, "Fraction of malformed lines")
      ->capture_default_str();
  cmd->add_option("-o,--output", c->output, "Output file, or - for stdout")->capture_default_str();
  cmd->add_option("--kafka", c->kafka, "Produce to Kafka at host:port instead (one message per event)");
  cmd->add_option("--topic", c->topic, "Kafka topic for --kafka");
  cmd->add_option("--kafka-timestamp", c->kafka_timestamp,
                  "Kafka message timestamps: now (the producer's clock) or event (the event's ts: history that "
                  "start=ts:/stop=ts: can select)")
      ->capture_default_str()
      ->check(CLI::IsMember({"now", "event"}));
  return [c] { return run(*c); };
}

}  // namespace sluice::cli
