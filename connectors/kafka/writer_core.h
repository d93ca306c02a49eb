// The type-independent part of a Kafka sink subtask: the producer, the
// at-least-once flush, and the exactly-once protocol (see README.md,
// "Exactly-once"). KafkaSinkWriter<T> (kafka_sink.h) serializes records
// and hands them here.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/kafka/client.h"
#include "connectors/kafka/config.h"
#include "engine/runtime/operator.h"

namespace prometheus {
class Counter;
class Gauge;
}  // namespace prometheus

namespace sluice::kafka {

/// The steps of the exactly-once protocol, in order. Recovery runs
/// kInitTransactions and kReadMarker, then the commit steps for every
/// batch not yet committed; a checkpoint's commit runs the last four.
enum class EosStep {
  kInitTransactions,   // fence older producers of this transactional id
  kReadMarker,         // which checkpoint did this subtask commit last?
  kBeginTransaction,
  kProduce,            // write the batch's records (and wait for acks)
  kSendMarker,         // add the marker offset commit to the transaction
  kCommitTransaction,
};
enum class EosPhase { kBefore, kAfter };
std::string_view eos_step_name(EosStep s);

/// Called before and after every step with the checkpoint the step is for
/// (0 for init/read). A non-ok result is an injected crash: the writer
/// stops right there, without aborting, flushing or closing anything, and
/// returns that status from then on. Tests only.
using EosHook = std::function<Status(EosStep, EosPhase, int64_t checkpoint)>;

/// The durable marker of the last checkpoint a subtask committed: the
/// checkpoint id and the id of the run (writer instance) whose batch it was.
struct EosMarker {
  int64_t checkpoint = 0;
  std::string run;
  bool operator==(const EosMarker&) const = default;
};

/// Where exactly-once sinks keep their markers. The default stores them as
/// a transactional offset commit (send_offsets_to_transaction) of a group
/// per transactional id, so a marker is committed atomically with its
/// batch. Thread-safe implementations; shared by every writer of a process.
class EosMarkerStore {
 public:
  virtual ~EosMarkerStore() = default;
  /// The last committed marker of `group`, nullopt if there is none.
  /// Called after init_transactions, so no transaction of the group's
  /// transactional id is still open.
  virtual Result<std::optional<EosMarker>> read(const std::string& bootstrap,
                                                const ClientProperties& client,
                                                const std::string& group,
                                                const std::string& topic) = 0;
  /// Adds `marker` to the open transaction of `producer`.
  virtual Status stage(rd_kafka_t* producer, const std::string& group, const std::string& topic,
                       const EosMarker& marker, int timeout_ms) = 0;
  /// The transaction carrying `marker` committed.
  virtual void committed(const std::string& group, const EosMarker& marker) {}
};

/// The production store (transactional offset commits in Kafka).
std::shared_ptr<EosMarkerStore> kafka_offsets_marker_store();

/// Tests only: every exactly-once sink opened afterwards in this process
/// (also inside job libraries) uses `store` instead of the Kafka offsets
/// store; null restores the default. Lets end-to-end tests run against a
/// broker that does not keep transactional offset commits (the dev broker).
void set_marker_store_override_for_testing(std::shared_ptr<EosMarkerStore> store);

/// Encodes/decodes the marker as offset-commit metadata.
std::string encode_marker_metadata(const EosMarker& m);
std::optional<std::string> decode_marker_metadata(std::string_view metadata);

/// Test hooks of a sink; empty in production.
struct KafkaSinkHooks {
  EosHook on_step;
  /// Replaces kafka_offsets_marker_store() (null: the default).
  std::shared_ptr<EosMarkerStore> marker_store;
};

/// One sink subtask's producer. Lifecycle: initialize -> open ->
/// (write | snapshot | checkpoint_complete)* -> flush (end of input) ->
/// close. Task thread only; owned by its KafkaSinkWriter.
class KafkaWriterCore {
 public:
  KafkaWriterCore(KafkaSinkConfig config, KafkaSinkHooks hooks);
  ~KafkaWriterCore();
  KafkaWriterCore(const KafkaWriterCore&) = delete;
  KafkaWriterCore& operator=(const KafkaWriterCore&) = delete;

  Status initialize(const runtime::OperatorRestore& restore);
  Status open(runtime::OperatorContext& ctx);
  /// One record; `partition` -1 lets the partitioner choose.
  Status write(const std::optional<std::string_view>& key, std::string_view value,
               const std::vector<KafkaHeader>& headers, int32_t partition);
  /// End of input: at-least-once waits for every ack; exactly-once leaves
  /// what it holds to the final checkpoint.
  Status flush();
  Result<std::string> snapshot(CheckpointId id);
  Status checkpoint_complete(CheckpointId id);
  Status close();

  int32_t partition_count() const { return partition_count_; }
  const std::string& transactional_id() const { return txn_id_; }
  /// Records held for checkpoints not yet committed (exactly-once).
  uint64_t pending_records() const;

 private:
  struct Batch {
    int64_t checkpoint = 0;
    std::string run;
    uint64_t count = 0;
    std::string records;  // encoded records, see encode_record
  };
  struct RestoredState {
    int32_t subtask = 0;
    std::vector<Batch> batches;
  };

  bool exactly_once() const { return config_.delivery == DeliveryGuarantee::kExactlyOnce; }
  Status step(EosStep s, EosPhase ph, int64_t checkpoint);
  Result<ClientHandle> make_producer(const std::string& txn_id);
  Status init_transactions(rd_kafka_t* rk);
  Status recover(rd_kafka_t* rk, const std::string& group, std::vector<Batch> batches);
  Status commit_batch(rd_kafka_t* rk, const std::string& group, const Batch& b);
  Status transaction_error(rd_kafka_t* rk, rd_kafka_error_t* e, const std::string& what);
  Status take_delivery_error();
  void update_queue_gauge();
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque);

  KafkaSinkConfig config_;
  KafkaSinkHooks hooks_;
  std::shared_ptr<EosMarkerStore> markers_;  // shared: one store serves every writer
  std::string job_;
  int subtask_ = 0;
  int parallelism_ = 1;
  std::string prefix_;
  std::string txn_id_;
  std::string run_;
  ClientHandle rk_;
  int32_t partition_count_ = 0;
  std::vector<RestoredState> restored_;
  bool restored_flag_ = false;
  // Exactly-once: the batch being filled and the batches of checkpoints
  // taken but not committed yet (ascending).
  Batch current_;
  std::vector<Batch> pending_;
  int64_t last_checkpoint_ = 0;
  bool in_transaction_ = false;
  bool crashed_ = false;
  Status crash_status_;
  uint64_t writes_since_poll_ = 0;
  Status delivery_error_;
  uint64_t delivered_ = 0;
  prometheus::Counter* records_metric_ = nullptr;
  prometheus::Counter* errors_metric_ = nullptr;
  prometheus::Gauge* queue_metric_ = nullptr;
  prometheus::Counter* commits_metric_ = nullptr;
  prometheus::Counter* aborts_metric_ = nullptr;
};

}  // namespace sluice::kafka
