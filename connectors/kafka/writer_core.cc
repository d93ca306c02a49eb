#include "connectors/kafka/writer_core.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>

#include "connectors/kafka/metrics.h"
#include "engine/common/clock.h"
#include "engine/common/serde.h"

namespace sluice::kafka {

namespace {

constexpr uint8_t kStateVersion = 1;
constexpr int kTxnApiTimeoutMs = 60'000;
constexpr int kMetadataTimeoutMs = 10'000;
constexpr std::string_view kMarkerPrefix = "sluice-eos/1 run=";

void encode_record(std::string& arena, const std::optional<std::string_view>& key,
                   std::string_view value, const std::vector<KafkaHeader>& headers,
                   int32_t partition) {
  ByteWriter w(arena);
  w.put_u8(key ? 1 : 0);
  if (key) w.put_bytes(*key);
  w.put_bytes(value);
  w.put_zigzag(partition);
  w.put_varint(headers.size());
  for (const auto& h : headers) {
    w.put_bytes(h.key);
    w.put_bytes(h.value);
  }
}

struct DecodedRecord {
  std::optional<std::string_view> key;
  std::string_view value;
  int32_t partition = -1;
  std::vector<KafkaHeader> headers;
};

bool decode_record(ByteReader& r, DecodedRecord& out) {
  uint8_t has_key;
  if (!r.get_u8(has_key) || has_key > 1) return false;
  out.key.reset();
  if (has_key) {
    std::string_view k;
    if (!r.get_bytes(k)) return false;
    out.key = k;
  }
  int64_t partition;
  uint64_t n;
  if (!r.get_bytes(out.value) || !r.get_zigzag(partition) || !r.get_varint(n) || n > r.remaining()) {
    return false;
  }
  out.partition = static_cast<int32_t>(partition);
  out.headers.resize(n);
  for (auto& h : out.headers) {
    std::string_view k, v;
    if (!r.get_bytes(k) || !r.get_bytes(v)) return false;
    h.key.assign(k);
    h.value.assign(v);
  }
  return true;
}

std::string random_run_id() {
  std::random_device rd;
  uint64_t x = (uint64_t{rd()} << 32) ^ rd() ^ static_cast<uint64_t>(monotonic_ns());
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(x));
  return buf;
}

/// Markers as transactional offset commits: the offset of partition 0 of
/// the output topic in group `group` is the checkpoint id, its metadata
/// names the run. Committed or discarded atomically with the batch.
class KafkaOffsetsMarkerStore final : public EosMarkerStore {
 public:
  Result<std::optional<EosMarker>> read(const std::string& bootstrap, const ClientProperties& client,
                                        const std::string& group, const std::string& topic) override {
    // read_committed makes the offset fetch wait for pending transactional
    // commits of the group (KIP-447 "require stable").
    ClientProperties props = {{"bootstrap.servers", bootstrap},
                              {"group.id", group},
                              {"enable.auto.commit", "false"},
                              {"isolation.level", "read_committed"}};
    SLUICE_ASSIGN_OR_RETURN(ClientHandle c, make_client(RD_KAFKA_CONSUMER, props, client));
    PartitionList list = new_partition_list();
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), 0);
    rd_kafka_resp_err_t err = rd_kafka_committed(c.get(), list.get(), kTxnApiTimeoutMs);
    if (err) return status_from(err, "reading the exactly-once marker of group '" + group + "'");
    const auto& e = list->elems[0];
    if (e.err) return status_from(e.err, "reading the exactly-once marker of group '" + group + "'");
    rd_kafka_consumer_close(c.get());
    if (e.offset < 0) return std::optional<EosMarker>();
    auto run = decode_marker_metadata(
        std::string_view(static_cast<const char*>(e.metadata), e.metadata ? e.metadata_size : 0));
    if (!run) {
      spdlog::warn("Kafka sink: group '{}' has an offset that is not a Sluice marker; ignoring it", group);
      return std::optional<EosMarker>();
    }
    return std::optional<EosMarker>(EosMarker{e.offset, *run});
  }

  Status stage(rd_kafka_t* producer, const std::string& group, const std::string& topic,
               const EosMarker& marker, int timeout_ms) override {
    PartitionList list = new_partition_list();
    auto* e = rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), 0);
    e->offset = marker.checkpoint;
    std::string meta = encode_marker_metadata(marker);
    e->metadata = malloc(meta.size());  // freed with the list
    std::memcpy(e->metadata, meta.data(), meta.size());
    e->metadata_size = meta.size();
    rd_kafka_consumer_group_metadata_t* cgmd = rd_kafka_consumer_group_metadata_new(group.c_str());
    rd_kafka_error_t* err = rd_kafka_send_offsets_to_transaction(producer, list.get(), cgmd, timeout_ms);
    rd_kafka_consumer_group_metadata_destroy(cgmd);
    return status_from(err, "adding the exactly-once marker to the transaction");
  }
};

}  // namespace

std::string_view eos_step_name(EosStep s) {
  switch (s) {
    case EosStep::kInitTransactions: return "init_transactions";
    case EosStep::kReadMarker: return "read_marker";
    case EosStep::kBeginTransaction: return "begin_transaction";
    case EosStep::kProduce: return "produce";
    case EosStep::kSendMarker: return "send_marker";
    case EosStep::kCommitTransaction: return "commit_transaction";
  }
  return "?";
}

std::string encode_marker_metadata(const EosMarker& m) { return std::string(kMarkerPrefix) + m.run; }

std::optional<std::string> decode_marker_metadata(std::string_view metadata) {
  if (metadata.substr(0, kMarkerPrefix.size()) != kMarkerPrefix) return std::nullopt;
  std::string run(metadata.substr(kMarkerPrefix.size()));
  if (run.empty()) return std::nullopt;
  return run;
}

namespace {
std::mutex g_override_mu;
std::shared_ptr<EosMarkerStore> g_override;  // shared: held by the test and every writer
}  // namespace

void set_marker_store_override_for_testing(std::shared_ptr<EosMarkerStore> store) {
  std::lock_guard lk(g_override_mu);
  g_override = std::move(store);
}

std::shared_ptr<EosMarkerStore> kafka_offsets_marker_store() {
  // shared: stateless, one instance serves every writer of the process.
  static const auto store = std::make_shared<KafkaOffsetsMarkerStore>();
  return store;
}

KafkaWriterCore::KafkaWriterCore(KafkaSinkConfig config, KafkaSinkHooks hooks)
    : config_(std::move(config)), hooks_(std::move(hooks)) {}

KafkaWriterCore::~KafkaWriterCore() { (void)close(); }

uint64_t KafkaWriterCore::pending_records() const {
  uint64_t n = current_.count;
  for (const auto& b : pending_) n += b.count;
  return n;
}

Status KafkaWriterCore::initialize(const runtime::OperatorRestore& restore) {
  restored_flag_ = restore.restored;
  for (const auto& blob : restore.states) {
    if (blob.empty()) continue;  // an at-least-once writer has no state
    ByteReader r(blob);
    uint8_t version;
    uint64_t subtask, nbatches;
    std::string_view run;
    if (!r.get_u8(version) || version != kStateVersion) {
      return Status::corruption("Kafka sink state: unknown format");
    }
    if (!r.get_varint(subtask) || !r.get_bytes(run) || !r.get_varint(nbatches) ||
        nbatches > r.remaining()) {
      return Status::corruption("Kafka sink state: truncated");
    }
    RestoredState rs;
    rs.subtask = static_cast<int32_t>(subtask);
    for (uint64_t i = 0; i < nbatches; ++i) {
      Batch b;
      std::string_view brun, records;
      if (!r.get_zigzag(b.checkpoint) || !r.get_bytes(brun) || !r.get_varint(b.count) ||
          !r.get_bytes(records)) {
        return Status::corruption("Kafka sink state: truncated batch");
      }
      b.run.assign(brun);
      b.records.assign(records);
      rs.batches.push_back(std::move(b));
    }
    if (!r.empty()) return Status::corruption("Kafka sink state: trailing bytes");
    restored_.push_back(std::move(rs));
  }
  std::sort(restored_.begin(), restored_.end(),
            [](const RestoredState& a, const RestoredState& b) { return a.subtask < b.subtask; });
  if (!exactly_once() && !restored_.empty()) {
    return Status::failed_precondition(
        "the checkpoint holds exactly-once state of this Kafka sink but the sink now runs "
        "at-least-once; restore with delivery=exactly-once first so the held records are "
        "committed");
  }
  return Status::ok();
}

Status KafkaWriterCore::step(EosStep s, EosPhase ph, int64_t checkpoint) {
  if (!hooks_.on_step) return Status::ok();
  Status st = hooks_.on_step(s, ph, checkpoint);
  if (!st.is_ok()) {
    crashed_ = true;
    crash_status_ = st;
  }
  return st;
}

void KafkaWriterCore::on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* self = static_cast<KafkaWriterCore*>(opaque);
  if (m->err) {
    if (self->errors_metric_) self->errors_metric_->Increment();
    if (self->delivery_error_.is_ok()) {
      self->delivery_error_ = status_from(
          m->err, "Kafka did not accept a record for topic '" + self->config_.topic + "'");
    }
  } else {
    ++self->delivered_;
  }
}

Status KafkaWriterCore::take_delivery_error() {
  Status st = delivery_error_;
  delivery_error_ = Status::ok();
  return st;
}

Result<ClientHandle> KafkaWriterCore::make_producer(const std::string& txn_id) {
  ClientProperties props = {
      {"bootstrap.servers", config_.bootstrap},
      {"client.id", "sluice-" + job_ + "-sink-" + std::to_string(subtask_)},
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"partitioner", config_.partitioner},
  };
  if (!txn_id.empty()) {
    props.emplace_back("transactional.id", txn_id);
    props.emplace_back("transaction.timeout.ms", std::to_string(config_.transaction_timeout.count()));
    bool user_timeout = std::any_of(config_.client.begin(), config_.client.end(),
                                    [](const auto& kv) { return kv.first == "message.timeout.ms"; });
    if (!user_timeout) {
      props.emplace_back("message.timeout.ms", std::to_string(config_.transaction_timeout.count()));
    }
  }
  return make_client(RD_KAFKA_PRODUCER, props, config_.client, [this](rd_kafka_conf_t* c) {
    rd_kafka_conf_set_opaque(c, this);
    rd_kafka_conf_set_dr_msg_cb(c, &KafkaWriterCore::on_delivery);
  });
}

Status KafkaWriterCore::init_transactions(rd_kafka_t* rk) {
  SLUICE_RETURN_IF_ERROR(step(EosStep::kInitTransactions, EosPhase::kBefore, 0));
  rd_kafka_error_t* e = rd_kafka_init_transactions(rk, kTxnApiTimeoutMs);
  if (e) {
    bool bad_timeout = rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_INVALID_TRANSACTION_TIMEOUT;
    Status st = status_from(e, "init_transactions for transactional id '" +
                                   std::string(rd_kafka_name(rk)) + "'");
    if (bad_timeout) {
      return Status::invalid_argument(
          st.message() + ": transaction.timeout " + format_duration(config_.transaction_timeout) +
          " is above the brokers' transaction.max.timeout.ms; lower it on the sink URI");
    }
    return st;
  }
  return step(EosStep::kInitTransactions, EosPhase::kAfter, 0);
}

Status KafkaWriterCore::open(runtime::OperatorContext& ctx) {
  const auto& info = ctx.info();
  job_ = info.job_name;
  subtask_ = info.subtask;
  parallelism_ = std::max(1, info.parallelism);
  prefix_ = config_.transactional_id_prefix.empty() ? "sluice-" + job_ + "-" + info.uid
                                                    : config_.transactional_id_prefix;
  run_ = random_run_id();
  auto& m = kafka_metrics();
  records_metric_ = &m.producer_records.Add({{"job", job_}, {"topic", config_.topic}});
  errors_metric_ = &m.delivery_errors.Add({{"job", job_}, {"topic", config_.topic}});
  queue_metric_ = &m.producer_queue.Add(
      {{"job", job_}, {"topic", config_.topic}, {"subtask", std::to_string(subtask_)}});
  commits_metric_ = &m.transactions.Add({{"job", job_}, {"topic", config_.topic}, {"outcome", "committed"}});
  aborts_metric_ = &m.transactions.Add({{"job", job_}, {"topic", config_.topic}, {"outcome", "aborted"}});

  if (exactly_once()) {
    if (!ctx.job_config().contains("checkpoint.dir")) {
      return Status::failed_precondition(
          "the Kafka sink " + config_.uri +
          " is exactly-once, which commits on checkpoints, but the job runs without "
          "checkpointing; run it with --checkpoint-dir (and --checkpoint-interval) or use "
          "delivery=at-least-once");
    }
    // Refuse to start rather than lose transactions to the broker's timeout.
    auto interval = ctx.job_config().get_duration("checkpoint.interval", Duration(0));
    if (!interval.is_ok()) return interval.status();
    std::optional<Duration> iv;
    if (interval->count() > 0) iv = *interval;
    SLUICE_RETURN_IF_ERROR(check_transaction_timeout(config_.transaction_timeout, iv));
    txn_id_ = prefix_ + "-" + std::to_string(subtask_);
    markers_ = hooks_.marker_store;
    if (!markers_) {
      std::lock_guard lk(g_override_mu);
      markers_ = g_override;
    }
    if (!markers_) markers_ = kafka_offsets_marker_store();
  }
  SLUICE_ASSIGN_OR_RETURN(rk_, make_producer(txn_id_));
  SLUICE_ASSIGN_OR_RETURN(auto counts, partition_counts(rk_.get(), {config_.topic}, kMetadataTimeoutMs));
  auto it = counts.find(config_.topic);
  if (it == counts.end()) {
    return Status::not_found("Kafka topic '" + config_.topic + "' does not exist on " +
                             config_.bootstrap + "; create it before starting the job");
  }
  partition_count_ = it->second;
  if (!exactly_once()) return Status::ok();

  // Recovery. Batches of old subtasks that map to this one are committed
  // under their own transactional id (fencing that id's zombies) and
  // checked against their own marker; then this subtask's own.
  for (auto& rs : restored_) {
    if (rs.subtask == subtask_ || rs.subtask % parallelism_ != subtask_) continue;
    std::string tid = prefix_ + "-" + std::to_string(rs.subtask);
    SLUICE_ASSIGN_OR_RETURN(ClientHandle tmp, make_producer(tid));
    SLUICE_RETURN_IF_ERROR(init_transactions(tmp.get()));
    SLUICE_RETURN_IF_ERROR(recover(tmp.get(), tid, std::move(rs.batches)));
    rd_kafka_flush(tmp.get(), kTxnApiTimeoutMs);
  }
  SLUICE_RETURN_IF_ERROR(init_transactions(rk_.get()));
  for (auto& rs : restored_) {
    if (rs.subtask == subtask_) SLUICE_RETURN_IF_ERROR(recover(rk_.get(), txn_id_, std::move(rs.batches)));
  }
  restored_.clear();
  return Status::ok();
}

Status KafkaWriterCore::recover(rd_kafka_t* rk, const std::string& group, std::vector<Batch> batches) {
  if (batches.empty()) return Status::ok();
  for (const auto& b : batches) last_checkpoint_ = std::max(last_checkpoint_, b.checkpoint);
  SLUICE_RETURN_IF_ERROR(step(EosStep::kReadMarker, EosPhase::kBefore, 0));
  SLUICE_ASSIGN_OR_RETURN(std::optional<EosMarker> marker,
                          markers_->read(config_.bootstrap, config_.client, group, config_.topic));
  SLUICE_RETURN_IF_ERROR(step(EosStep::kReadMarker, EosPhase::kAfter, 0));
  std::sort(batches.begin(), batches.end(),
            [](const Batch& a, const Batch& b) { return a.checkpoint < b.checkpoint; });
  for (const auto& b : batches) {
    if (marker && marker->run == b.run && marker->checkpoint >= b.checkpoint) {
      spdlog::info("Kafka sink {}: batch of checkpoint {} ({} records) was committed before the "
                   "restart; skipping it",
                   group, b.checkpoint, b.count);
      continue;
    }
    spdlog::info("Kafka sink {}: committing the batch of checkpoint {} ({} records) held in the "
                 "restored checkpoint",
                 group, b.checkpoint, b.count);
    SLUICE_RETURN_IF_ERROR(commit_batch(rk, group, b));
  }
  return Status::ok();
}

Status KafkaWriterCore::transaction_error(rd_kafka_t* rk, rd_kafka_error_t* e, const std::string& what) {
  if (!e) return Status::ok();
  bool abortable = rd_kafka_error_txn_requires_abort(e);
  Status st = status_from(e, what);
  if (abortable && in_transaction_) {
    rd_kafka_error_t* ae = rd_kafka_abort_transaction(rk, kTxnApiTimeoutMs);
    in_transaction_ = false;
    if (aborts_metric_) aborts_metric_->Increment();
    Status ast = status_from(ae, "aborting the transaction");
    return st.with_context(ast.is_ok() ? "transaction aborted; the job restarts from its last "
                                         "checkpoint and commits the batch again"
                                       : ast.message());
  }
  return st;
}

Status KafkaWriterCore::commit_batch(rd_kafka_t* rk, const std::string& group, const Batch& b) {
  if (b.count == 0) return Status::ok();
  const int64_t cp = b.checkpoint;
  SLUICE_RETURN_IF_ERROR(step(EosStep::kBeginTransaction, EosPhase::kBefore, cp));
  SLUICE_RETURN_IF_ERROR(status_from(rd_kafka_begin_transaction(rk), "begin_transaction"));
  in_transaction_ = true;
  SLUICE_RETURN_IF_ERROR(step(EosStep::kBeginTransaction, EosPhase::kAfter, cp));

  SLUICE_RETURN_IF_ERROR(step(EosStep::kProduce, EosPhase::kBefore, cp));
  ByteReader r(b.records);
  DecodedRecord rec;
  Status st;
  for (uint64_t i = 0; i < b.count && st.is_ok(); ++i) {
    if (!decode_record(r, rec)) {
      st = Status::corruption("Kafka sink: corrupt record in the batch of checkpoint " + std::to_string(cp));
      break;
    }
    st = produce_blocking(rk, config_.topic, rec.partition, rec.value, rec.key, rec.headers, 0);
    if ((i & 1023) == 1023) rd_kafka_poll(rk, 0);
  }
  if (st.is_ok()) {
    rd_kafka_resp_err_t err = rd_kafka_flush(rk, static_cast<int>(config_.flush_timeout.count()));
    if (err) st = status_from(err, "waiting for Kafka to acknowledge the batch of checkpoint " + std::to_string(cp));
  }
  if (st.is_ok()) st = take_delivery_error();
  if (!st.is_ok()) {
    rd_kafka_error_t* ae = rd_kafka_abort_transaction(rk, kTxnApiTimeoutMs);
    in_transaction_ = false;
    aborts_metric_->Increment();
    Status ast = status_from(ae, "aborting the transaction");
    return st.with_context(ast.is_ok() ? "transaction aborted" : ast.message());
  }
  SLUICE_RETURN_IF_ERROR(step(EosStep::kProduce, EosPhase::kAfter, cp));

  SLUICE_RETURN_IF_ERROR(step(EosStep::kSendMarker, EosPhase::kBefore, cp));
  EosMarker marker{cp, b.run};
  st = markers_->stage(rk, group, config_.topic, marker, kTxnApiTimeoutMs);
  if (!st.is_ok()) {
    if (in_transaction_) {
      rd_kafka_error_t* ae = rd_kafka_abort_transaction(rk, kTxnApiTimeoutMs);
      in_transaction_ = false;
      aborts_metric_->Increment();
      Status ast = status_from(ae, "aborting the transaction");
      return st.with_context(ast.is_ok() ? "transaction aborted" : ast.message());
    }
    return st;
  }
  SLUICE_RETURN_IF_ERROR(step(EosStep::kSendMarker, EosPhase::kAfter, cp));

  SLUICE_RETURN_IF_ERROR(step(EosStep::kCommitTransaction, EosPhase::kBefore, cp));
  for (int attempt = 0;; ++attempt) {
    rd_kafka_error_t* e = rd_kafka_commit_transaction(rk, kTxnApiTimeoutMs);
    if (!e) break;
    if (rd_kafka_error_is_retriable(e) && attempt < 5) {
      spdlog::warn("Kafka sink {}: commit_transaction: {} (retrying)", group, rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
      continue;
    }
    return transaction_error(rk, e, "commit_transaction of checkpoint " + std::to_string(cp));
  }
  in_transaction_ = false;
  commits_metric_->Increment();
  records_metric_->Increment(static_cast<double>(b.count));
  markers_->committed(group, marker);
  return step(EosStep::kCommitTransaction, EosPhase::kAfter, cp);
}

void KafkaWriterCore::update_queue_gauge() {
  if (rk_ && queue_metric_) queue_metric_->Set(rd_kafka_outq_len(rk_.get()));
}

Status KafkaWriterCore::write(const std::optional<std::string_view>& key, std::string_view value,
                              const std::vector<KafkaHeader>& headers, int32_t partition) {
  if (crashed_) return crash_status_;
  if (exactly_once()) {
    encode_record(current_.records, key, value, headers, partition);
    ++current_.count;
    return Status::ok();
  }
  SLUICE_RETURN_IF_ERROR(produce_blocking(rk_.get(), config_.topic, partition, value, key, headers, 0,
                                          static_cast<int>(config_.flush_timeout.count())));
  if (++writes_since_poll_ >= 1000) {
    writes_since_poll_ = 0;
    rd_kafka_poll(rk_.get(), 0);
    update_queue_gauge();
    if (delivered_ > 0) {
      records_metric_->Increment(static_cast<double>(delivered_));
      delivered_ = 0;
    }
    return take_delivery_error();
  }
  return Status::ok();
}

Status KafkaWriterCore::flush() {
  if (crashed_) return crash_status_;
  if (!rk_) return Status::ok();
  if (!exactly_once()) {
    rd_kafka_resp_err_t err = rd_kafka_flush(rk_.get(), static_cast<int>(config_.flush_timeout.count()));
    update_queue_gauge();
    records_metric_->Increment(static_cast<double>(delivered_));
    delivered_ = 0;
    if (err) {
      return status_from(err, "waiting for Kafka to acknowledge " +
                                  std::to_string(rd_kafka_outq_len(rk_.get())) + " records of topic '" +
                                  config_.topic + "'");
    }
    return take_delivery_error();
  }
  // Exactly-once: what is held is committed by the final checkpoint the
  // runtime takes after the end of the input (open() insists on
  // checkpointing), exactly like every other checkpoint.
  return Status::ok();
}

Result<std::string> KafkaWriterCore::snapshot(CheckpointId id) {
  if (crashed_) return crash_status_;
  if (!exactly_once()) {
    SLUICE_RETURN_IF_ERROR(flush());  // at-least-once: acked before the barrier passes
    return std::string();
  }
  last_checkpoint_ = std::max(last_checkpoint_, id.value());
  if (current_.count > 0) {
    current_.checkpoint = id.value();
    current_.run = run_;
    pending_.push_back(std::move(current_));
    current_ = Batch{};
  }
  std::string out;
  ByteWriter w(out);
  w.put_u8(kStateVersion);
  w.put_varint(static_cast<uint64_t>(subtask_));
  w.put_bytes(run_);
  w.put_varint(pending_.size());
  for (const auto& b : pending_) {
    w.put_zigzag(b.checkpoint);
    w.put_bytes(b.run);
    w.put_varint(b.count);
    w.put_bytes(b.records);
  }
  return out;
}

Status KafkaWriterCore::checkpoint_complete(CheckpointId id) {
  if (crashed_) return crash_status_;
  if (!exactly_once()) return Status::ok();
  while (!pending_.empty() && pending_.front().checkpoint <= id.value()) {
    SLUICE_RETURN_IF_ERROR(commit_batch(rk_.get(), txn_id_, pending_.front()));
    pending_.erase(pending_.begin());
  }
  update_queue_gauge();
  return Status::ok();
}

Status KafkaWriterCore::close() {
  if (!rk_) return Status::ok();
  Status st;
  if (crashed_) {
    // A simulated crash: nothing is flushed, aborted or committed. Queued
    // messages are dropped; requests already sent are up to the broker.
    rd_kafka_purge(rk_.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_NON_BLOCKING);
  } else if (exactly_once()) {
    if (in_transaction_) {
      st = status_from(rd_kafka_abort_transaction(rk_.get(), kTxnApiTimeoutMs), "aborting at close");
      in_transaction_ = false;
      if (aborts_metric_) aborts_metric_->Increment();
    }
  } else {
    st = flush();
    if (!st.is_ok()) spdlog::warn("Kafka sink: closing: {}", st.message());
  }
  update_queue_gauge();
  rk_.reset();
  return st;
}

}  // namespace sluice::kafka
