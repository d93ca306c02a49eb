// The type-independent part of a Kafka source subtask: partition
// assignment, start and stop positions, fetching in batches, positions in
// checkpoints, offset commits, partition discovery, out-of-range handling
// and consumer metrics. KafkaSourceReader<T> (kafka_source.h) adds the
// deserialization into T on top.
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "connectors/kafka/client.h"
#include "connectors/kafka/config.h"
#include "engine/runtime/operator.h"
#include "engine/runtime/source.h"

namespace prometheus {
class Gauge;
class Counter;
}  // namespace prometheus

namespace sluice::kafka {

/// Where one partition stands, as stored in checkpoints: `offset` is the
/// next offset to read; `stop` the exclusive end of a bounded read (-1:
/// unbounded).
struct PartitionPosition {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t stop = -1;
  SLUICE_FIELDS(topic, partition, offset, stop)
  bool operator==(const PartitionPosition&) const = default;
};

/// The subtask (of `parallelism`) that reads `topic`/`partition`. Stable
/// when partitions are added: a new partition never moves old ones.
int owner_of(const std::string& topic, int32_t partition, int parallelism);

/// Encodes/decodes a reader's checkpoint state (format version 1).
std::string encode_positions(const std::vector<PartitionPosition>& positions);
Status decode_positions(std::string_view blob, std::vector<PartitionPosition>& out);

/// Split events of the reader, forwarded to the SourceOutput.
class SplitListener {
 public:
  virtual ~SplitListener() = default;
  virtual void set_split_count(int n) = 0;
  virtual void split_finished(int split) = 0;
};

/// One subtask's consumer. Lifecycle: restore (optional) -> open ->
/// (next_batch | snapshot | checkpoint_complete)* -> close. Used only on
/// the task thread; owned by its KafkaSourceReader.
class KafkaReaderCore {
 public:
  explicit KafkaReaderCore(KafkaSourceConfig config);
  ~KafkaReaderCore();
  KafkaReaderCore(const KafkaReaderCore&) = delete;
  KafkaReaderCore& operator=(const KafkaReaderCore&) = delete;

  /// Positions of every subtask of the previous run (their union).
  Status restore(const runtime::OperatorRestore& restore);
  Status open(runtime::OperatorContext& ctx, SplitListener& splits);

  /// A record of the current batch, with the split (partition) it is from.
  struct Item {
    KafkaRecordView view;
    int split = 0;
  };
  /// Fetches the next batch (waits at most ~10 ms). Records in `items`
  /// stay valid until the next call. Returns kEndOfInput once a bounded
  /// read has reached every stop offset.
  Result<runtime::PollStatus> next_batch(std::vector<Item>& items, SplitListener& splits);

  Result<std::string> snapshot(CheckpointId id);
  Status checkpoint_complete(CheckpointId id);
  void close();

  /// Current positions of this subtask's partitions (tests, snapshot).
  std::vector<PartitionPosition> positions() const;
  const std::string& group() const { return group_; }

 private:
  struct Partition {
    std::string topic;
    int32_t partition = 0;
    int split = 0;
    int64_t position = 0;  // next offset to emit
    int64_t stop = -1;     // exclusive end (bounded), -1 unbounded
    bool finished = false;
    prometheus::Gauge* lag = nullptr;
  };

  Status add_partitions(const std::vector<std::pair<std::string, int32_t>>& tps, bool initial,
                        SplitListener& splits);
  Status resolve_start(std::vector<Partition>& parts, bool initial);
  Status resolve_stop(std::vector<Partition>& parts);
  /// Offset `what` (a timestamp, RD_KAFKA_OFFSET_BEGINNING or _END) of
  /// each of `parts`, passed to `found` in order.
  Status lookup_offsets(const std::vector<Partition*>& parts, int64_t what, const std::string& context,
                        const std::function<void(Partition&, int64_t)>& found);
  /// Adds the partitions a discovery round found (`counts`: partitions per
  /// topic) that this subtask owns and does not read yet.
  Status discovered(const Result<std::map<std::string, int>>& counts, SplitListener& splits);
  Status on_out_of_range(Partition& p, int64_t requested, const std::string& detail,
                         SplitListener& splits);
  void finish(Partition& p);
  Partition* find(const rd_kafka_message_t* m);
  void update_lag();
  void release_batch();

  KafkaSourceConfig config_;
  runtime::OperatorContext* ctx_ = nullptr;
  std::string job_;
  std::string group_;
  int subtask_ = 0;
  int parallelism_ = 1;
  ClientHandle rk_;
  QueueHandle queue_;
  std::vector<Partition> parts_;  // index == split
  std::map<std::pair<std::string, int32_t>, size_t> index_;
  bool restored_ = false;
  std::map<std::pair<std::string, int32_t>, PartitionPosition> restored_positions_;
  std::map<int64_t, std::vector<PartitionPosition>> pending_commits_;  // by checkpoint id
  std::vector<rd_kafka_message_t*> batch_;
  int64_t next_discovery_ms_ = 0;
  // A discovery round's metadata request, in flight on a helper thread: on
  // the consumer's connection it waits behind the open fetch long-poll
  // (fetch.wait.max.ms), which the task thread must not.
  std::future<Result<std::map<std::string, int>>> discovery_;
  int64_t next_lag_update_ns_ = 0;
  int unfinished_ = 0;
  std::vector<int> finished_pending_;  // splits finished in the last batch
  uint64_t records_local_ = 0, bytes_local_ = 0;
  std::map<std::string, std::pair<prometheus::Counter*, prometheus::Counter*>> topic_counters_;
};

}  // namespace sluice::kafka
