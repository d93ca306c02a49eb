// Settings of the Kafka source and sink, parsed from their URIs:
//
//   kafka://host:port[,host:port...]/topic[,topic...]?key=value&...
//
// Every parameter is documented in connectors/kafka/README.md. Unknown
// parameters and malformed values are refused with a message that names
// the parameter and the accepted forms; `kafka.<property>` passes a
// librdkafka client property through (checked by librdkafka at parse time).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/common/status.h"
#include "engine/common/time.h"

namespace sluice::kafka {

/// Where a source partition starts reading when there is no checkpoint.
enum class StartMode { kEarliest, kLatest, kCommitted, kTimestamp };
/// Where a bounded source stops (kNone: unbounded).
enum class StopMode { kNone, kLatest, kTimestamp };
/// What the source does when its position is no longer (or not yet) in
/// the partition: fail the job (default) or jump to the earliest/latest
/// available record.
enum class OutOfRangePolicy { kFail, kEarliest, kLatest };
/// What the source does when a listed topic does not exist.
enum class MissingTopicPolicy { kFail, kWait };
enum class DeliveryGuarantee { kAtLeastOnce, kExactlyOnce };

/// A librdkafka client property set with `kafka.<name>=<value>`.
using ClientProperties = std::vector<std::pair<std::string, std::string>>;

/// Settings of a Kafka source. Value type; defaults are the URI defaults.
struct KafkaSourceConfig {
  std::string uri;        // as given (description, messages)
  std::string bootstrap;  // host:port[,host:port...]
  std::vector<std::string> topics;
  StartMode start = StartMode::kCommitted;  // start=committed
  int64_t start_timestamp_ms = 0;           // start=timestamp:<ms>
  /// Partitions without a committed offset (start=committed) start here:
  /// kEarliest (default) or kLatest.
  StartMode committed_fallback = StartMode::kEarliest;
  StopMode stop = StopMode::kNone;  // stop=latest|timestamp:<ms>
  int64_t stop_timestamp_ms = 0;
  /// Consumer group for committed offsets; empty = "sluice-<job name>".
  std::string group;
  bool commit_offsets = true;  // commit=true: on checkpoint completion
  OutOfRangePolicy on_out_of_range = OutOfRangePolicy::kFail;
  MissingTopicPolicy missing_topic = MissingTopicPolicy::kFail;
  /// How often an unbounded source looks for new partitions; 0 = never.
  Duration discovery_interval{30'000};
  int batch_size = 500;        // records per poll
  /// max.record.bytes: larger messages become dead letters. Default 4 MiB.
  size_t max_record_bytes = size_t{4} << 20;
  /// max.field.bytes: messages whose JSON holds a longer string value or
  /// key become dead letters (default deserializer). Default 1 MiB.
  size_t max_field_bytes = size_t{1} << 20;  // = kDefaultMaxFieldBytes (json_read.h)
  bool read_committed = true;  // isolation=read_committed
  ClientProperties client;     // kafka.*

  bool bounded() const { return stop != StopMode::kNone; }
};

/// Settings of a Kafka sink. Value type; defaults are the URI defaults.
struct KafkaSinkConfig {
  std::string uri;
  std::string bootstrap;
  std::string topic;
  DeliveryGuarantee delivery = DeliveryGuarantee::kAtLeastOnce;
  /// Field of the record whose value becomes the message key; empty = no key.
  std::string key_field;
  /// librdkafka partitioner name; murmur2_random matches the Java client.
  std::string partitioner = "murmur2_random";
  /// Exactly-once: transactional ids are "<prefix>-<subtask>"; empty =
  /// "sluice-<job name>-<operator uid>".
  std::string transactional_id_prefix;
  /// Exactly-once: transaction.timeout.ms of the producer. Must be at
  /// least the job's checkpoint.interval. Default 60 s.
  Duration transaction_timeout{60'000};
  bool transaction_timeout_set = false;
  /// Longest wait for outstanding deliveries at a checkpoint. Default 60 s.
  Duration flush_timeout{60'000};
  ClientProperties client;  // kafka.*
};

Result<KafkaSourceConfig> parse_source_uri(std::string_view uri);
Result<KafkaSinkConfig> parse_sink_uri(std::string_view uri);

/// Checks a transaction timeout against the job's checkpoint interval
/// (ok when there is no interval); the error says how to fix it.
Status check_transaction_timeout(Duration timeout, std::optional<Duration> checkpoint_interval);

std::string_view start_mode_name(StartMode m);

}  // namespace sluice::kafka
