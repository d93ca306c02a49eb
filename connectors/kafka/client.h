// Thin RAII layer over librdkafka's C API: client handles, partition
// lists, error translation into Status, metadata and offset look-ups, and
// the view of one consumed message that deserializers get.
#pragma once

#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/kafka/config.h"
#include "engine/common/serde.h"
#include "engine/common/status.h"

namespace sluice::kafka {

struct ClientDeleter {
  void operator()(rd_kafka_t* rk) const;
};
/// An rd_kafka_t (producer or consumer). Destroying it closes its
/// connections and joins librdkafka's threads.
using ClientHandle = std::unique_ptr<rd_kafka_t, ClientDeleter>;

struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const { rd_kafka_topic_partition_list_destroy(l); }
};
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;
inline PartitionList new_partition_list(int capacity = 1) {
  return PartitionList(rd_kafka_topic_partition_list_new(capacity));
}

struct QueueDeleter {
  void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
};
using QueueHandle = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;

/// "context: <librdkafka error name>: <description>" (ok for NO_ERROR).
Status status_from(rd_kafka_resp_err_t err, std::string_view context);
/// Same for an rd_kafka_error_t, which this takes ownership of (may be null).
Status status_from(rd_kafka_error_t* error, std::string_view context);

/// Builds a client: `props` first (bootstrap and managed settings), then
/// the user's kafka.* properties. `configure` may install callbacks.
Result<ClientHandle> make_client(rd_kafka_type_t type, const ClientProperties& props,
                                 const ClientProperties& user_props,
                                 const std::function<void(rd_kafka_conf_t*)>& configure = nullptr);

/// Partition count of each topic; a topic that does not exist is absent
/// from the map. Errors other than "unknown topic" are returned.
Result<std::map<std::string, int>> partition_counts(rd_kafka_t* rk,
                                                    const std::vector<std::string>& topics,
                                                    int timeout_ms);

/// Low (earliest available) and high (next to be written) offsets, asked
/// from the partition leader.
struct Watermarks {
  int64_t low = 0;
  int64_t high = 0;
};
Result<Watermarks> query_watermarks(rd_kafka_t* rk, const std::string& topic, int32_t partition,
                                    int timeout_ms);

/// One message header (Kafka allows repeated keys; order is kept).
struct KafkaHeader {
  std::string key;
  std::string value;
  SLUICE_FIELDS(key, value)
  bool operator==(const KafkaHeader&) const = default;
};

/// A consumed message as deserializers see it. Views into librdkafka's
/// buffer: valid only during the deserializer call.
struct KafkaRecordView {
  std::string_view topic;
  int32_t partition = -1;
  int64_t offset = -1;
  int64_t timestamp_ms = -1;  // Kafka record timestamp; -1 if none
  bool has_key = false;
  std::string_view key;
  bool has_value = false;  // false for a null value (tombstone)
  std::string_view value;
  const rd_kafka_message_t* message = nullptr;

  /// Every header, in order.
  std::vector<KafkaHeader> headers() const;
  /// The last value of header `name`, if present.
  std::optional<std::string> header(std::string_view name) const;
};

/// A whole Kafka message as a record: sources of KafkaMessage hand over
/// everything without parsing (a job can deserialize in a map).
struct KafkaMessage {
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
  int64_t timestamp_ms = -1;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<KafkaHeader> headers;
  SLUICE_FIELDS(topic, partition, offset, timestamp_ms, key, value, headers)
  bool operator==(const KafkaMessage&) const = default;
};

/// A producer for tools and tests (`sluice gen --kafka`): at-least-once,
/// idempotent, acks=all. Not thread-safe; one owner.
class SimpleProducer {
 public:
  static Result<std::unique_ptr<SimpleProducer>> create(const std::string& bootstrap,
                                                        const ClientProperties& extra = {});
  ~SimpleProducer();
  SimpleProducer(const SimpleProducer&) = delete;
  SimpleProducer& operator=(const SimpleProducer&) = delete;

  /// Queues one message (waits while librdkafka's queue is full).
  /// partition -1 = the partitioner decides; timestamp_ms 0 = now.
  Status produce(const std::string& topic, std::string_view value,
                 std::optional<std::string_view> key = std::nullopt, int32_t partition = -1,
                 const std::vector<KafkaHeader>& headers = {}, int64_t timestamp_ms = 0);
  /// Waits until everything queued is acknowledged; the first delivery
  /// error, if any, is returned.
  Status flush(int timeout_ms = 30'000);
  uint64_t delivered() const { return delivered_; }
  /// Looks up the leaders of `topics` (best effort: errors show at the
  /// first produce) and keeps their handles, so that the first message
  /// goes out at once. Without it librdkafka 2.0 sometimes asks for a
  /// topic first named in a produce only at its next 1 s metadata tick:
  /// a paced generator's first second of events then waits ~1 s.
  void prepare(const std::vector<std::string>& topics, int timeout_ms = 10'000);

 private:
  struct TopicDeleter {
    void operator()(rd_kafka_topic_t* t) const;
  };
  SimpleProducer() = default;
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque);
  ClientHandle rk_;
  std::vector<std::unique_ptr<rd_kafka_topic_t, TopicDeleter>> topics_;  // after rk_: destroyed before it
  uint64_t delivered_ = 0;
  Status first_error_;
};

/// Produces one message with librdkafka's producev, waiting (serving
/// delivery callbacks) while the local queue is full. Shared by the
/// producers of this library.
Status produce_blocking(rd_kafka_t* rk, const std::string& topic, int32_t partition,
                        std::string_view value, const std::optional<std::string_view>& key,
                        const std::vector<KafkaHeader>& headers, int64_t timestamp_ms,
                        int max_wait_ms = 60'000);

}  // namespace sluice::kafka
