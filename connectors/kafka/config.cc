#include "connectors/kafka/config.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include "engine/common/config.h"

namespace sluice::kafka {

namespace {

constexpr std::string_view kScheme = "kafka://";

struct ParsedUri {
  std::string bootstrap;
  std::vector<std::string> topics;
  std::vector<std::pair<std::string, std::string>> params;  // in order
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> percent_decode(std::string_view s, std::string_view what) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    int hi = i + 1 < s.size() ? hex_value(s[i + 1]) : -1;
    int lo = i + 2 < s.size() ? hex_value(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) return Status::invalid_argument("bad percent escape in " + std::string(what));
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string_view::npos ? std::string_view::npos : p - start));
    if (p == std::string_view::npos) break;
    start = p + 1;
  }
  return out;
}

Status check_topic_name(std::string_view t, std::string_view uri) {
  if (t.empty()) return Status::invalid_argument("'" + std::string(uri) + "' names an empty topic");
  if (t.size() > 249) return Status::invalid_argument("topic name longer than 249 characters");
  for (char c : t) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) {
      return Status::invalid_argument("topic '" + std::string(t) +
                                      "' has a character Kafka does not allow (use a-z A-Z 0-9 . _ -)");
    }
  }
  if (t == "." || t == "..") return Status::invalid_argument("topic may not be '.' or '..'");
  return Status::ok();
}

Result<ParsedUri> parse_uri(std::string_view uri, const char* usage) {
  if (uri.substr(0, kScheme.size()) != kScheme) {
    return Status::invalid_argument("'" + std::string(uri) + "' is not a kafka:// URI; use " + usage);
  }
  std::string_view rest = uri.substr(kScheme.size());
  std::string_view query;
  if (size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0) {
    return Status::invalid_argument("'" + std::string(uri) + "' needs a broker address and a topic: " +
                                    usage);
  }
  ParsedUri p;
  p.bootstrap = std::string(rest.substr(0, slash));
  for (auto hp : split(p.bootstrap, ',')) {
    size_t colon = hp.rfind(':');
    if (hp.empty() || colon == std::string_view::npos || colon == 0 || colon + 1 == hp.size()) {
      return Status::invalid_argument("broker address '" + std::string(hp) + "' in '" +
                                      std::string(uri) + "' must look like host:port");
    }
    auto port = parse_int(hp.substr(colon + 1));
    if (!port.is_ok() || *port <= 0 || *port > 65535) {
      return Status::invalid_argument("broker address '" + std::string(hp) + "' has no valid port");
    }
  }
  std::string_view path = rest.substr(slash + 1);
  if (path.empty()) {
    return Status::invalid_argument("'" + std::string(uri) + "' names no topic: " + usage);
  }
  for (auto t : split(path, ',')) {
    SLUICE_ASSIGN_OR_RETURN(std::string topic, percent_decode(t, "the topic"));
    SLUICE_RETURN_IF_ERROR(check_topic_name(topic, uri));
    p.topics.push_back(std::move(topic));
  }
  if (!query.empty()) {
    std::set<std::string> seen;
    for (auto item : split(query, '&')) {
      if (item.empty()) continue;
      size_t eq = item.find('=');
      if (eq == std::string_view::npos || eq == 0) {
        return Status::invalid_argument("URI parameter '" + std::string(item) +
                                        "' must look like name=value");
      }
      SLUICE_ASSIGN_OR_RETURN(std::string k, percent_decode(item.substr(0, eq), "a parameter name"));
      SLUICE_ASSIGN_OR_RETURN(std::string v, percent_decode(item.substr(eq + 1), "a parameter value"));
      if (!seen.insert(k).second) {
        return Status::invalid_argument("URI parameter '" + k + "' is given twice");
      }
      p.params.emplace_back(std::move(k), std::move(v));
    }
  }
  return p;
}

// Properties Sluice sets itself: a kafka.* override would break what the
// connector guarantees (positions, transactions), so it is refused.
const std::map<std::string, std::string, std::less<>>& managed_properties() {
  static const std::map<std::string, std::string, std::less<>> m = {
      {"bootstrap.servers", "the URI's host:port"},
      {"metadata.broker.list", "the URI's host:port"},
      {"group.id", "the group= parameter"},
      {"enable.auto.commit", "commit= (offsets are committed on checkpoint completion)"},
      {"enable.auto.offset.store", "nothing (positions are tracked by the source)"},
      {"auto.offset.reset", "start= and on_out_of_range="},
      {"isolation.level", "the isolation= parameter"},
      {"enable.partition.eof", "nothing (the source needs it)"},
      {"transactional.id", "transactional_id_prefix="},
      {"transaction.timeout.ms", "transaction.timeout="},
      {"enable.idempotence", "nothing (the sink always enables it)"},
      {"acks", "nothing (the sink always uses acks=all)"},
      {"request.required.acks", "nothing (the sink always uses acks=all)"},
      {"partitioner", "the partitioner= parameter"},
  };
  return m;
}

Status add_client_property(ClientProperties& props, const std::string& name,
                           const std::string& value) {
  auto managed = managed_properties().find(name);
  if (managed != managed_properties().end()) {
    return Status::invalid_argument("kafka." + name + " is managed by Sluice; use " + managed->second);
  }
  // Let librdkafka judge the property: it knows every name and value form.
  std::unique_ptr<rd_kafka_conf_t, decltype(&rd_kafka_conf_destroy)> conf(rd_kafka_conf_new(),
                                                                          &rd_kafka_conf_destroy);
  char err[512];
  if (rd_kafka_conf_set(conf.get(), name.c_str(), value.c_str(), err, sizeof err) !=
      RD_KAFKA_CONF_OK) {
    return Status::invalid_argument("kafka." + name + "=" + value + ": " + err);
  }
  props.emplace_back(name, value);
  return Status::ok();
}

/// "timestamp:<when>" or "ts:<when>"; <when> is epoch ms or a UTC date/time
/// (parse_timestamp_ms), e.g. ts:2026-12-05 or ts:2026-12-05T06:00:00Z.
bool is_timestamp_spec(const std::string& v) { return v.rfind("timestamp:", 0) == 0 || v.rfind("ts:", 0) == 0; }

Result<int64_t> parse_timestamp_spec(const std::string& key, const std::string& v) {
  auto ts = parse_timestamp_ms(std::string_view(v).substr(v.find(':') + 1));
  if (!ts.is_ok() || *ts < 0) {
    return Status::invalid_argument(key + "=" + v + ": the time must be epoch milliseconds or a UTC date/time, e.g. " +
                                    key + "=ts:1700000000000 or " + key + "=ts:2026-12-05T00:00:00Z");
  }
  return *ts;
}

Result<Duration> parse_duration_param(const std::string& key, const std::string& v) {
  auto d = parse_duration(v);
  if (!d.is_ok() || d->count() < 0) {
    return Status::invalid_argument(key + "=" + v + ": expected a duration such as 500ms, 30s, 5m");
  }
  return *d;
}

Result<bool> parse_bool_param(const std::string& key, const std::string& v) {
  auto b = parse_bool(v);
  if (!b.is_ok()) return Status::invalid_argument(key + "=" + v + ": expected true or false");
  return *b;
}

Status unknown_param(const std::string& key, const char* kind, const char* known) {
  return Status::invalid_argument("unknown parameter '" + key + "' for a Kafka " + kind +
                                  "; known: " + known + ", kafka.<librdkafka property>");
}

constexpr const char* kSourceUsage =
    "kafka://host:port/topic[,topic...]?start=earliest|latest|committed|ts:<when>"
    "&stop=latest|ts:<when>&group=<id> (<when>: epoch ms or a UTC date/time, 2026-12-05T00:00:00Z)";
constexpr const char* kSinkUsage =
    "kafka://host:port/topic?delivery=at-least-once|exactly-once&key=<field>";

}  // namespace

std::string_view start_mode_name(StartMode m) {
  switch (m) {
    case StartMode::kEarliest: return "earliest";
    case StartMode::kLatest: return "latest";
    case StartMode::kCommitted: return "committed";
    case StartMode::kTimestamp: return "timestamp";
  }
  return "?";
}

Result<KafkaSourceConfig> parse_source_uri(std::string_view uri) {
  SLUICE_ASSIGN_OR_RETURN(ParsedUri p, parse_uri(uri, kSourceUsage));
  KafkaSourceConfig c;
  c.uri = std::string(uri);
  c.bootstrap = p.bootstrap;
  c.topics = p.topics;
  {
    std::set<std::string> uniq(c.topics.begin(), c.topics.end());
    if (uniq.size() != c.topics.size()) {
      return Status::invalid_argument("'" + c.uri + "' lists a topic twice");
    }
  }
  for (const auto& [k, v] : p.params) {
    if (k == "start") {
      if (v == "earliest") c.start = StartMode::kEarliest;
      else if (v == "latest") c.start = StartMode::kLatest;
      else if (v == "committed") c.start = StartMode::kCommitted;
      else if (is_timestamp_spec(v)) {  // NOLINT
        c.start = StartMode::kTimestamp;
        SLUICE_ASSIGN_OR_RETURN(c.start_timestamp_ms, parse_timestamp_spec(k, v));
      } else {
        return Status::invalid_argument("start=" + v +
                                        ": expected earliest, latest, committed or ts:<epoch ms | UTC date/time>");
      }
    } else if (k == "start.fallback") {
      if (v == "earliest") c.committed_fallback = StartMode::kEarliest;
      else if (v == "latest") c.committed_fallback = StartMode::kLatest;
      else return Status::invalid_argument("start.fallback=" + v + ": expected earliest or latest");
    } else if (k == "stop") {
      if (v == "latest") c.stop = StopMode::kLatest;
      else if (v == "never" || v == "none") c.stop = StopMode::kNone;
      else if (is_timestamp_spec(v)) {
        c.stop = StopMode::kTimestamp;
        SLUICE_ASSIGN_OR_RETURN(c.stop_timestamp_ms, parse_timestamp_spec(k, v));
      } else {
        return Status::invalid_argument("stop=" + v + ": expected latest, ts:<epoch ms | UTC date/time> or never");
      }
    } else if (k == "group") {
      if (v.empty()) return Status::invalid_argument("group= must not be empty");
      c.group = v;
    } else if (k == "commit") {
      SLUICE_ASSIGN_OR_RETURN(c.commit_offsets, parse_bool_param(k, v));
    } else if (k == "on_out_of_range") {
      if (v == "fail") c.on_out_of_range = OutOfRangePolicy::kFail;
      else if (v == "earliest") c.on_out_of_range = OutOfRangePolicy::kEarliest;
      else if (v == "latest") c.on_out_of_range = OutOfRangePolicy::kLatest;
      else return Status::invalid_argument("on_out_of_range=" + v + ": expected fail, earliest or latest");
    } else if (k == "missing_topic") {
      if (v == "fail") c.missing_topic = MissingTopicPolicy::kFail;
      else if (v == "wait") c.missing_topic = MissingTopicPolicy::kWait;
      else return Status::invalid_argument("missing_topic=" + v + ": expected fail or wait");
    } else if (k == "discovery") {
      if (v == "off" || v == "never") {
        c.discovery_interval = Duration(0);
      } else {
        SLUICE_ASSIGN_OR_RETURN(c.discovery_interval, parse_duration_param(k, v));
      }
    } else if (k == "batch") {
      auto n = parse_int(v);
      if (!n.is_ok() || *n < 1 || *n > 100'000) {
        return Status::invalid_argument("batch=" + v + ": expected a record count from 1 to 100000");
      }
      c.batch_size = static_cast<int>(*n);
    } else if (k == "max.record.bytes") {
      auto n = parse_int(v);
      if (!n.is_ok() || *n < 1 || *n > (int64_t{1} << 30)) {
        return Status::invalid_argument("max.record.bytes=" + v + ": expected a size from 1 to 1073741824 bytes");
      }
      c.max_record_bytes = static_cast<size_t>(*n);
    } else if (k == "max.field.bytes") {
      auto n = parse_int(v);
      if (!n.is_ok() || *n < 1 || *n > (int64_t{1} << 30)) {
        return Status::invalid_argument("max.field.bytes=" + v + ": expected a size from 1 to 1073741824 bytes");
      }
      c.max_field_bytes = static_cast<size_t>(*n);
    } else if (k == "isolation") {
      if (v == "read_committed") c.read_committed = true;
      else if (v == "read_uncommitted") c.read_committed = false;
      else return Status::invalid_argument("isolation=" + v + ": expected read_committed or read_uncommitted");
    } else if (k.rfind("kafka.", 0) == 0 && k.size() > 6) {
      SLUICE_RETURN_IF_ERROR(add_client_property(c.client, k.substr(6), v));
    } else {
      return unknown_param(k, "source",
                           "start, start.fallback, stop, group, commit, on_out_of_range, "
                           "missing_topic, discovery, batch, max.record.bytes, max.field.bytes, isolation");
    }
  }
  if (c.bounded() && c.missing_topic == MissingTopicPolicy::kWait) {
    return Status::invalid_argument(
        "missing_topic=wait needs an unbounded source: a bounded one (stop=...) reads the "
        "partitions that exist when it starts");
  }
  return c;
}

Result<KafkaSinkConfig> parse_sink_uri(std::string_view uri) {
  SLUICE_ASSIGN_OR_RETURN(ParsedUri p, parse_uri(uri, kSinkUsage));
  if (p.topics.size() != 1) {
    return Status::invalid_argument("a Kafka sink writes one topic; '" + std::string(uri) + "' names " +
                                    std::to_string(p.topics.size()));
  }
  KafkaSinkConfig c;
  c.uri = std::string(uri);
  c.bootstrap = p.bootstrap;
  c.topic = p.topics[0];
  for (const auto& [k, v] : p.params) {
    if (k == "delivery") {
      if (v == "at-least-once" || v == "at_least_once") c.delivery = DeliveryGuarantee::kAtLeastOnce;
      else if (v == "exactly-once" || v == "exactly_once") c.delivery = DeliveryGuarantee::kExactlyOnce;
      else return Status::invalid_argument("delivery=" + v + ": expected at-least-once or exactly-once");
    } else if (k == "key") {
      if (v.empty()) return Status::invalid_argument("key= needs a field name");
      c.key_field = v;
    } else if (k == "partitioner") {
      static const std::set<std::string> known = {"murmur2_random", "murmur2", "consistent",
                                                  "consistent_random", "random", "fnv1a",
                                                  "fnv1a_random"};
      if (!known.count(v)) {
        return Status::invalid_argument(
            "partitioner=" + v +
            ": expected murmur2_random (default, as the Java client), murmur2, consistent, "
            "consistent_random, random, fnv1a or fnv1a_random");
      }
      c.partitioner = v;
    } else if (k == "transactional_id_prefix") {
      if (v.empty()) return Status::invalid_argument("transactional_id_prefix= must not be empty");
      c.transactional_id_prefix = v;
    } else if (k == "transaction.timeout") {
      SLUICE_ASSIGN_OR_RETURN(c.transaction_timeout, parse_duration_param(k, v));
      if (c.transaction_timeout.count() < 1000) {
        return Status::invalid_argument("transaction.timeout=" + v + ": must be at least 1s");
      }
      c.transaction_timeout_set = true;
    } else if (k == "flush.timeout") {
      SLUICE_ASSIGN_OR_RETURN(c.flush_timeout, parse_duration_param(k, v));
      if (c.flush_timeout.count() < 1) {
        return Status::invalid_argument("flush.timeout=" + v + ": must be positive");
      }
    } else if (k.rfind("kafka.", 0) == 0 && k.size() > 6) {
      SLUICE_RETURN_IF_ERROR(add_client_property(c.client, k.substr(6), v));
    } else {
      return unknown_param(k, "sink",
                           "delivery, key, partitioner, transactional_id_prefix, "
                           "transaction.timeout, flush.timeout");
    }
  }
  if (c.delivery != DeliveryGuarantee::kExactlyOnce &&
      (c.transaction_timeout_set || !c.transactional_id_prefix.empty())) {
    return Status::invalid_argument(
        "transaction.timeout and transactional_id_prefix only apply with delivery=exactly-once");
  }
  return c;
}

Status check_transaction_timeout(Duration timeout, std::optional<Duration> checkpoint_interval) {
  if (!checkpoint_interval || checkpoint_interval->count() <= 0) return Status::ok();
  if (timeout < *checkpoint_interval) {
    return Status::invalid_argument(
        "the Kafka sink's transaction.timeout (" + format_duration(timeout) +
        ") is shorter than the job's checkpoint.interval (" + format_duration(*checkpoint_interval) +
        "): a checkpoint's records could not be committed within one transaction. Set "
        "transaction.timeout=" + format_duration(*checkpoint_interval * 2) +
        " or more on the sink URI (at most the brokers' transaction.max.timeout.ms, 15m by "
        "default), or checkpoint more often");
  }
  return Status::ok();
}

}  // namespace sluice::kafka
