// KafkaSource<T>: records of type T from Kafka topics.
//
//   auto src = sluice::kafka::KafkaSource<Click>::from_uri(
//       "kafka://localhost:9092/clicks?start=earliest&stop=latest");
//
// Each source subtask reads the partitions the engine assigns to it
// (owner_of: deterministic, no consumer-group rebalancing) and reports one
// split per partition, so watermarks are per partition (min over the
// subtask's partitions, with the strategy's idleness). A message that does
// not deserialize becomes a dead letter with the reason, topic, partition,
// offset and payload; the job goes on.
//
// Deserialization (KafkaDeserializer<T>): std::string takes the value as
// is; KafkaMessage takes the whole message; any other T is parsed from
// JSON (SLUICE_FIELDS structs, see engine/common/json_read.h). A custom
// function can be given instead; it sees value, key, headers, partition,
// offset and timestamp.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <type_traits>

#include "connectors/kafka/reader_core.h"
#include "engine/common/json_read.h"
#include "engine/runtime/source.h"

namespace sluice::kafka {

/// How many bytes of an undeserializable message a dead letter keeps.
inline constexpr size_t kMaxDeadLetterPayload = 64 * 1024;

/// Turns a Kafka message into a T. Returns an empty string on success or
/// the reason it cannot (which becomes the dead letter's reason).
template <class T>
using KafkaDeserializer = std::function<std::string(const KafkaRecordView& record, T& out)>;

/// The default deserializer of T (see the file comment), JSON within
/// `limits`. Not thread-safe: one per reader (it owns a JSON parser).
template <class T>
KafkaDeserializer<T> default_deserializer(JsonLimits limits = {}) {
  if constexpr (std::is_same_v<T, std::string>) {
    return [](const KafkaRecordView& r, std::string& out) -> std::string {
      out.assign(r.value.data(), r.value.size());
      return {};
    };
  } else if constexpr (std::is_same_v<T, KafkaMessage>) {
    return [](const KafkaRecordView& r, KafkaMessage& out) -> std::string {
      out.topic.assign(r.topic);
      out.partition = r.partition;
      out.offset = r.offset;
      out.timestamp_ms = r.timestamp_ms;
      out.key = r.has_key ? std::optional<std::string>(std::string(r.key)) : std::nullopt;
      out.value = r.has_value ? std::optional<std::string>(std::string(r.value)) : std::nullopt;
      out.headers = r.headers();
      return {};
    };
  } else {
    // shared: the deserializer is copied into the reader; the parser is
    // its scratch state and must not be re-created per record.
    auto parser = std::make_shared<JsonParser>(std::move(limits));
    return [parser](const KafkaRecordView& r, T& out) -> std::string {
      if (!r.has_value) return "the message has no value (a tombstone)";
      out = T{};
      return parser->parse(r.value, out);
    };
  }
}

/// Reads one subtask's partitions and deserializes them. Task thread only;
/// created by KafkaSource::create_reader, owned by the SourceOperator.
template <class T>
class KafkaSourceReader final : public runtime::SourceReader<T> {
 public:
  KafkaSourceReader(KafkaSourceConfig config, KafkaDeserializer<T> deserializer)
      : max_record_bytes_(config.max_record_bytes), core_(std::move(config)), deserialize_(std::move(deserializer)) {}

  Status restore_state(const runtime::OperatorRestore& restore) override {
    return core_.restore(restore);
  }
  Status open(runtime::OperatorContext& ctx, runtime::SourceOutput<T>& out) override {
    Splits s(out);
    return core_.open(ctx, s);
  }
  Result<runtime::PollStatus> poll_next(runtime::SourceOutput<T>& out) override {
    Splits s(out);
    SLUICE_ASSIGN_OR_RETURN(runtime::PollStatus st, core_.next_batch(items_, s));
    for (const auto& it : items_) {
      std::string err = it.view.value.size() > max_record_bytes_
                            ? "record of " + std::to_string(it.view.value.size()) + " bytes exceeds the limit of " +
                                  std::to_string(max_record_bytes_) + " bytes (source parameter max.record.bytes)"
                            : deserialize_(it.view, value_);
      if (err.empty()) {
        out.collect(value_, it.split,
                    it.view.timestamp_ms >= 0 ? EventTime(it.view.timestamp_ms) : EventTime::min());
      } else {
        DeadLetter dl;
        dl.reason = std::move(err);
        dl.origin = std::string(it.view.topic);
        dl.partition = it.view.partition;
        dl.offset = it.view.offset;
        dl.set_payload(std::string_view(it.view.value.data(), it.view.value.size()), kMaxDeadLetterPayload);
        out.dead_letter(std::move(dl));
      }
    }
    return st;
  }
  Result<std::string> snapshot_state(CheckpointId id) override { return core_.snapshot(id); }
  Status notify_checkpoint_complete(CheckpointId id) override { return core_.checkpoint_complete(id); }
  void close() override { core_.close(); }

  const KafkaReaderCore& core() const { return core_; }

 private:
  class Splits final : public SplitListener {
   public:
    explicit Splits(runtime::SourceOutput<T>& out) : out_(out) {}
    void set_split_count(int n) override { out_.set_split_count(n); }
    void split_finished(int split) override { out_.split_finished(split); }

   private:
    runtime::SourceOutput<T>& out_;
  };

  const size_t max_record_bytes_;
  KafkaReaderCore core_;
  KafkaDeserializer<T> deserialize_;
  std::vector<KafkaReaderCore::Item> items_;
  T value_{};
};

/// A Kafka source of T (immutable description; one reader per subtask).
template <class T>
class KafkaSource final : public runtime::Source<T> {
 public:
  explicit KafkaSource(KafkaSourceConfig config, KafkaDeserializer<T> deserializer = nullptr)
      : config_(std::move(config)), deserializer_(std::move(deserializer)) {}

  /// Parses `uri` (see config.h and the README for the parameters).
  static Result<std::shared_ptr<const KafkaSource<T>>> from_uri(const std::string& uri,
                                                                KafkaDeserializer<T> deserializer = nullptr) {
    SLUICE_ASSIGN_OR_RETURN(KafkaSourceConfig c, parse_source_uri(uri));
    return std::make_shared<const KafkaSource<T>>(std::move(c), std::move(deserializer));
  }

  std::string description() const override { return config_.uri; }
  bool bounded() const override { return config_.bounded(); }
  std::unique_ptr<runtime::SourceReader<T>> create_reader() const override {
    return std::make_unique<KafkaSourceReader<T>>(
        config_, deserializer_ ? deserializer_
                               : default_deserializer<T>(
                                     JsonLimits{config_.max_field_bytes, "source parameter max.field.bytes"}));
  }
  const KafkaSourceConfig& config() const { return config_; }

 private:
  KafkaSourceConfig config_;
  KafkaDeserializer<T> deserializer_;
};

}  // namespace sluice::kafka
