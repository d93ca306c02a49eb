// KafkaSink<T>: records of type T to one Kafka topic, at-least-once or
// exactly-once (see README.md for the protocol and why it is sound).
//
//   auto sink = sluice::kafka::KafkaSink<PageCount>::from_uri(
//       "kafka://localhost:9092/counts?delivery=exactly-once&key=page_url");
//
// Serialization (KafkaSerializer<T>): std::string is written as is;
// KafkaMessage writes its key, value, headers and partition; DeadLetter
// writes the payload as the value with the dead letter's fields as
// headers (a dead-letter topic); any other T is written as JSON. The key
// is the value of field `key=<field>` (strings as they are, other types
// as JSON), or what a custom key function returns.
#pragma once

#include <prometheus/counter.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include "connectors/kafka/metrics.h"
#include "connectors/kafka/writer_core.h"
#include "engine/common/json.h"
#include "engine/runtime/sink.h"

namespace sluice::kafka {

/// Headers of a dead-letter message (the value is the rejected payload).
inline constexpr const char* kDlqReason = "sluice.reason";
inline constexpr const char* kDlqOrigin = "sluice.origin";        // topic, file or operator
inline constexpr const char* kDlqPartition = "sluice.partition";  // when from Kafka
inline constexpr const char* kDlqOffset = "sluice.offset";        // Kafka offset / byte offset
inline constexpr const char* kDlqLine = "sluice.line";            // when from a file
inline constexpr const char* kDlqJob = "sluice.job";
inline constexpr const char* kDlqOperator = "sluice.operator";
inline constexpr const char* kDlqTime = "sluice.time_ms";

/// A record ready for Kafka.
struct OutgoingMessage {
  std::optional<std::string> key;
  std::string value;
  std::vector<KafkaHeader> headers;
  int32_t partition = -1;  // -1: the partitioner decides
};

/// Fills `out` from a record (out is reused: clear what you set).
template <class T>
using KafkaSerializer = std::function<void(const T& value, OutgoingMessage& out)>;
/// The key of a record (nullopt: no key).
template <class T>
using KafkaKeyFunction = std::function<std::optional<std::string>(const T& value)>;

template <class T>
KafkaSerializer<T> default_serializer() {
  if constexpr (std::is_same_v<T, std::string>) {
    return [](const std::string& v, OutgoingMessage& out) { out.value = v; };
  } else if constexpr (std::is_same_v<T, KafkaMessage>) {
    return [](const KafkaMessage& m, OutgoingMessage& out) {
      out.key = m.key;
      out.value = m.value.value_or(std::string());
      out.headers = m.headers;
      out.partition = m.partition;
    };
  } else if constexpr (std::is_same_v<T, DeadLetter>) {
    return [](const DeadLetter& d, OutgoingMessage& out) {
      out.value = d.payload;
      out.headers.push_back({kDlqReason, d.reason});
      out.headers.push_back({kDlqOrigin, d.origin});
      if (d.partition >= 0) out.headers.push_back({kDlqPartition, std::to_string(d.partition)});
      if (d.offset >= 0) out.headers.push_back({kDlqOffset, std::to_string(d.offset)});
      if (d.line >= 0) out.headers.push_back({kDlqLine, std::to_string(d.line)});
      out.headers.push_back({kDlqJob, d.job});
      out.headers.push_back({kDlqOperator, d.operator_name});
      out.headers.push_back({kDlqTime, std::to_string(d.time_ms)});
    };
  } else {
    return [](const T& v, OutgoingMessage& out) { JsonSerde<T>::write(out.value, v); };
  }
}

/// Key function reading field `field` of a SLUICE_FIELDS struct, or an
/// error naming the fields there are.
template <class T>
Result<KafkaKeyFunction<T>> key_from_field(const std::string& field) {
  if constexpr (HasFields<T>) {
    bool found = false;
    std::string names;
    T probe{};
    probe.sluice_visit([&](const char* name, const auto&) {
      if (field == name) found = true;
      names += names.empty() ? name : std::string(", ") + name;
    });
    if (!found) {
      return Status::invalid_argument("key=" + field + ": the record has no such field (fields: " +
                                      names + ")");
    }
    return KafkaKeyFunction<T>([field](const T& v) -> std::optional<std::string> {
      std::optional<std::string> out;
      v.sluice_visit([&](const char* name, const auto& f) {
        if (out || field != name) return;
        using F = std::decay_t<decltype(f)>;
        if constexpr (std::is_same_v<F, std::string>) {
          out = f;
        } else if constexpr (JsonWritable<F>) {
          std::string s;
          JsonSerde<F>::write(s, f);
          out = std::move(s);
        }
      });
      return out;
    });
  } else {
    return Status::invalid_argument("key=" + field + ": records of type " +
                                    std::string(type_name<T>()) + " have no named fields");
  }
}

/// Serializes records and hands them to the producer core. Task thread
/// only; created by KafkaSink::create_writer, owned by the SinkOperator.
template <class T>
class KafkaSinkWriter final : public runtime::SinkWriter<T> {
 public:
  KafkaSinkWriter(KafkaSinkConfig config, KafkaSinkHooks hooks, KafkaSerializer<T> serializer,
                  KafkaKeyFunction<T> key_fn)
      : topic_(config.topic),
        core_(std::move(config), std::move(hooks)),
        serialize_(std::move(serializer)),
        key_fn_(std::move(key_fn)) {}

  Status initialize_state(const runtime::OperatorRestore& restore) override {
    return core_.initialize(restore);
  }
  Status open(runtime::OperatorContext& ctx) override {
    if constexpr (std::is_same_v<T, DeadLetter>) {
      dlq_metric_ = &kafka_metrics().dlq_records.Add({{"job", ctx.info().job_name}, {"topic", topic_}});
    }
    return core_.open(ctx);
  }
  Status write(const T& value, EventTime) override {
    msg_.key.reset();
    msg_.value.clear();
    msg_.headers.clear();
    msg_.partition = -1;
    serialize_(value, msg_);
    if (key_fn_) msg_.key = key_fn_(value);
    std::optional<std::string_view> key;
    if (msg_.key) key = *msg_.key;
    SLUICE_RETURN_IF_ERROR(core_.write(key, msg_.value, msg_.headers, msg_.partition));
    if (dlq_metric_) dlq_metric_->Increment();
    return Status::ok();
  }
  Status flush() override { return core_.flush(); }
  Result<std::string> snapshot_state(CheckpointId id) override { return core_.snapshot(id); }
  Status notify_checkpoint_complete(CheckpointId id) override { return core_.checkpoint_complete(id); }
  Status close() override { return core_.close(); }

  KafkaWriterCore& core() { return core_; }

 private:
  std::string topic_;
  KafkaWriterCore core_;
  KafkaSerializer<T> serialize_;
  KafkaKeyFunction<T> key_fn_;
  OutgoingMessage msg_;
  prometheus::Counter* dlq_metric_ = nullptr;
};

/// A Kafka sink of T (immutable description; one writer per subtask).
template <class T>
class KafkaSink final : public runtime::Sink<T> {
 public:
  KafkaSink(KafkaSinkConfig config, KafkaSerializer<T> serializer = nullptr,
            KafkaKeyFunction<T> key_fn = nullptr, KafkaSinkHooks hooks = {})
      : config_(std::move(config)),
        serializer_(serializer ? std::move(serializer) : default_serializer<T>()),
        key_fn_(std::move(key_fn)),
        hooks_(std::move(hooks)) {}

  /// Parses `uri`; `key=<field>` becomes the key function unless one is given.
  static Result<std::shared_ptr<const KafkaSink<T>>> from_uri(const std::string& uri,
                                                              KafkaSerializer<T> serializer = nullptr,
                                                              KafkaKeyFunction<T> key_fn = nullptr,
                                                              KafkaSinkHooks hooks = {}) {
    SLUICE_ASSIGN_OR_RETURN(KafkaSinkConfig c, parse_sink_uri(uri));
    if (!c.key_field.empty() && !key_fn) {
      SLUICE_ASSIGN_OR_RETURN(key_fn, key_from_field<T>(c.key_field));
    }
    return std::make_shared<const KafkaSink<T>>(std::move(c), std::move(serializer), std::move(key_fn),
                                                std::move(hooks));
  }

  std::string description() const override { return config_.uri; }
  std::unique_ptr<runtime::SinkWriter<T>> create_writer() const override {
    return std::make_unique<KafkaSinkWriter<T>>(config_, hooks_, serializer_, key_fn_);
  }
  const KafkaSinkConfig& config() const { return config_; }
  /// Exactly-once: the transaction timeout must outlast a checkpoint
  /// interval (checked again when the sink opens).
  Status validate(const Configuration& job_config) const override {
    if (config_.delivery != DeliveryGuarantee::kExactlyOnce) return Status::ok();
    SLUICE_ASSIGN_OR_RETURN(Duration interval, job_config.get_duration("checkpoint.interval", Duration(0)));
    std::optional<Duration> iv;
    if (interval.count() > 0) iv = interval;
    return check_transaction_timeout(config_.transaction_timeout, iv);
  }

 private:
  KafkaSinkConfig config_;
  KafkaSerializer<T> serializer_;
  KafkaKeyFunction<T> key_fn_;
  KafkaSinkHooks hooks_;
};

}  // namespace sluice::kafka
