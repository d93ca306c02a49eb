#include "connectors/kafka/reader_core.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "connectors/kafka/metrics.h"
#include "engine/common/clock.h"
#include "engine/common/hash.h"

namespace sluice::kafka {

namespace {
constexpr int kMetadataTimeoutMs = 10'000;
constexpr int kDiscoveryTimeoutMs = 2'000;
constexpr int kQueryTimeoutMs = 10'000;
constexpr uint8_t kStateVersion = 1;
constexpr size_t kMaxPendingCommits = 32;
// How long a poll that finds nothing queued waits for the first message:
// the task thread returns to its mailbox (barriers, timers) at least this often.
constexpr int kIdleWaitMs = 10;

std::string tp_name(const std::string& topic, int32_t partition) {
  return topic + "[" + std::to_string(partition) + "]";
}

void on_offset_commit(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* offsets,
                      void* opaque) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR && offsets) {
    for (int i = 0; i < offsets->cnt; ++i)
      if (offsets->elems[i].err) {
        err = offsets->elems[i].err;
        break;
      }
  }
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
  auto* group = static_cast<const std::string*>(opaque);
  spdlog::warn("Kafka source: committing checkpointed offsets for group '{}' failed: {} (lag tools "
               "will show an older position; checkpoints are unaffected)",
               *group, rd_kafka_err2str(err));
  kafka_metrics().commit_failures.Add({{"group", *group}}).Increment();
}
}  // namespace

int owner_of(const std::string& topic, int32_t partition, int parallelism) {
  if (parallelism <= 1) return 0;
  uint32_t start = murmur3_32(topic) % static_cast<uint32_t>(parallelism);
  return static_cast<int>((start + static_cast<uint32_t>(partition)) % static_cast<uint32_t>(parallelism));
}

std::string encode_positions(const std::vector<PartitionPosition>& positions) {
  std::string out;
  ByteWriter w(out);
  w.put_u8(kStateVersion);
  Serde<std::vector<PartitionPosition>>::write(w, positions);
  return out;
}

Status decode_positions(std::string_view blob, std::vector<PartitionPosition>& out) {
  ByteReader r(blob);
  uint8_t version = 0;
  if (!r.get_u8(version)) return Status::corruption("Kafka source state: empty");
  if (version != kStateVersion) {
    return Status::corruption("Kafka source state: unknown format version " + std::to_string(version));
  }
  std::vector<PartitionPosition> v;
  if (!Serde<std::vector<PartitionPosition>>::read(r, v) || !r.empty()) {
    return Status::corruption("Kafka source state: truncated or corrupt");
  }
  out.insert(out.end(), v.begin(), v.end());
  return Status::ok();
}

KafkaReaderCore::KafkaReaderCore(KafkaSourceConfig config) : config_(std::move(config)) {}

KafkaReaderCore::~KafkaReaderCore() { close(); }

Status KafkaReaderCore::restore(const runtime::OperatorRestore& restore) {
  restored_ = restore.restored;
  for (const auto& blob : restore.states) {
    if (blob.empty()) continue;
    std::vector<PartitionPosition> ps;
    SLUICE_RETURN_IF_ERROR(decode_positions(blob, ps));
    for (auto& p : ps) {
      auto key = std::make_pair(p.topic, p.partition);
      auto [it, inserted] = restored_positions_.emplace(key, p);
      if (!inserted) {
        return Status::corruption("Kafka source state: two subtasks claim " +
                                  tp_name(p.topic, p.partition));
      }
    }
  }
  return Status::ok();
}

Status KafkaReaderCore::open(runtime::OperatorContext& ctx, SplitListener& splits) {
  ctx_ = &ctx;
  job_ = ctx.info().job_name;
  subtask_ = ctx.info().subtask;
  parallelism_ = std::max(1, ctx.info().parallelism);
  group_ = config_.group.empty() ? "sluice-" + job_ : config_.group;

  ClientProperties props = {
      {"bootstrap.servers", config_.bootstrap},
      {"group.id", group_},
      {"client.id", "sluice-" + job_ + "-source-" + std::to_string(subtask_)},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "error"},  // detected and handled here, never silently reset
      {"enable.partition.eof", "true"},
      {"isolation.level", config_.read_committed ? "read_committed" : "read_uncommitted"},
  };
  SLUICE_ASSIGN_OR_RETURN(rk_, make_client(RD_KAFKA_CONSUMER, props, config_.client,
                                           [this](rd_kafka_conf_t* c) {
                                             rd_kafka_conf_set_opaque(c, &group_);
                                             rd_kafka_conf_set_offset_commit_cb(c, &on_offset_commit);
                                           }));
  rd_kafka_poll_set_consumer(rk_.get());
  queue_.reset(rd_kafka_queue_get_consumer(rk_.get()));

  SLUICE_ASSIGN_OR_RETURN(auto counts, partition_counts(rk_.get(), config_.topics, kMetadataTimeoutMs));
  std::vector<std::pair<std::string, int32_t>> mine;
  for (const auto& t : config_.topics) {
    auto it = counts.find(t);
    if (it == counts.end()) {
      if (config_.missing_topic == MissingTopicPolicy::kFail) {
        return Status::not_found("Kafka topic '" + t + "' does not exist on " + config_.bootstrap +
                                 " (create it first, or set missing_topic=wait to wait for it)");
      }
      spdlog::warn("Kafka source: topic '{}' does not exist yet; waiting for it", t);
      continue;
    }
    for (int32_t p = 0; p < it->second; ++p)
      if (owner_of(t, p, parallelism_) == subtask_) mine.emplace_back(t, p);
  }
  splits.set_split_count(0);
  SLUICE_RETURN_IF_ERROR(add_partitions(mine, /*initial=*/true, splits));
  if (!config_.bounded() && config_.discovery_interval.count() > 0) {
    next_discovery_ms_ = ctx.processing_time().now_ms() + config_.discovery_interval.count();
  }
  spdlog::info("Kafka source {}/{} of '{}': {} partitions of {}, group '{}'", subtask_, parallelism_,
               job_, parts_.size(), config_.uri, group_);
  return Status::ok();
}

Status KafkaReaderCore::resolve_start(std::vector<Partition>& parts, bool initial) {
  std::vector<Partition*> todo;
  for (auto& p : parts) {
    auto it = restored_positions_.find({p.topic, p.partition});
    if (it != restored_positions_.end()) {
      p.position = it->second.offset;
      if (config_.bounded()) p.stop = it->second.stop;
    } else {
      todo.push_back(&p);
    }
  }
  if (todo.empty()) return Status::ok();
  // A partition the checkpoint does not know (or one found later) is new:
  // read it from its beginning, so nothing written to it is missed.
  StartMode mode = (restored_ || !initial) ? StartMode::kEarliest : config_.start;
  if (mode == StartMode::kCommitted) {
    PartitionList list = new_partition_list(static_cast<int>(todo.size()));
    for (auto* p : todo)
      rd_kafka_topic_partition_list_add(list.get(), p->topic.c_str(), p->partition)->offset = RD_KAFKA_OFFSET_INVALID;
    rd_kafka_resp_err_t err = rd_kafka_committed(rk_.get(), list.get(), kQueryTimeoutMs);
    if (err) return status_from(err, "reading committed offsets of group '" + group_ + "'");
    std::vector<Partition*> fallback;
    for (int i = 0; i < list->cnt; ++i) {
      const auto& e = list->elems[i];
      if (e.err) return status_from(e.err, "start offset of " + tp_name(todo[i]->topic, todo[i]->partition));
      if (e.offset >= 0) todo[i]->position = e.offset;
      else fallback.push_back(todo[i]);  // no committed offset: start.fallback
    }
    return lookup_offsets(fallback, config_.committed_fallback == StartMode::kEarliest
                                        ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END,
                          "start offset", [](Partition& p, int64_t o) { p.position = o; });
  }
  if (mode == StartMode::kTimestamp) {
    std::vector<Partition*> fallback;
    SLUICE_RETURN_IF_ERROR(lookup_offsets(todo, config_.start_timestamp_ms,
                                          "start offset (start=timestamp:" + std::to_string(config_.start_timestamp_ms) + ")",
                                          [&](Partition& p, int64_t o) {
                                            if (o >= 0) p.position = o;
                                            else fallback.push_back(&p);
                                          }));
    // No record at or after the timestamp: the end (what is written from now on).
    return lookup_offsets(fallback, RD_KAFKA_OFFSET_END, "start offset",
                          [](Partition& p, int64_t o) { p.position = o; });
  }
  return lookup_offsets(todo, mode == StartMode::kEarliest ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END,
                        "start offset", [](Partition& p, int64_t o) { p.position = o; });
}

Status KafkaReaderCore::lookup_offsets(const std::vector<Partition*>& parts, int64_t what,
                                       const std::string& context,
                                       const std::function<void(Partition&, int64_t)>& found) {
  if (parts.empty()) return Status::ok();
  // One ListOffsets request per leader for all of them: asked one by one, a
  // consumer that is already fetching (partitions discovered later) waits
  // out a fetch long-poll (fetch.wait.max.ms) per partition on the broker's
  // connection, and the task thread with it.
  PartitionList list = new_partition_list(static_cast<int>(parts.size()));
  for (auto* p : parts) rd_kafka_topic_partition_list_add(list.get(), p->topic.c_str(), p->partition)->offset = what;
  rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk_.get(), list.get(), kQueryTimeoutMs);
  if (err) return status_from(err, "looking up the " + context + " of " + tp_name(parts[0]->topic, parts[0]->partition) +
                                       (parts.size() > 1 ? " and " + std::to_string(parts.size() - 1) + " more" : ""));
  for (int i = 0; i < list->cnt; ++i) {
    const auto& e = list->elems[i];
    if (e.err) return status_from(e.err, context + " of " + tp_name(parts[i]->topic, parts[i]->partition));
    found(*parts[i], e.offset);
  }
  return Status::ok();
}

Status KafkaReaderCore::resolve_stop(std::vector<Partition>& parts) {
  if (!config_.bounded()) return Status::ok();
  std::vector<Partition*> todo;
  for (auto& p : parts)
    if (p.stop < 0) todo.push_back(&p);
  if (todo.empty()) return Status::ok();
  if (config_.stop == StopMode::kTimestamp) {
    // -1: no record that late yet -> the end, below.
    SLUICE_RETURN_IF_ERROR(lookup_offsets(todo, config_.stop_timestamp_ms,
                                          "stop offset (stop=timestamp:" + std::to_string(config_.stop_timestamp_ms) + ")",
                                          [](Partition& p, int64_t o) { p.stop = o; }));
  }
  std::vector<Partition*> at_end;
  for (auto* p : todo)
    if (p->stop < 0) at_end.push_back(p);
  return lookup_offsets(at_end, RD_KAFKA_OFFSET_END, "stop offset", [](Partition& p, int64_t o) { p.stop = o; });
}

Status KafkaReaderCore::add_partitions(const std::vector<std::pair<std::string, int32_t>>& tps,
                                       bool initial, SplitListener& splits) {
  if (tps.empty()) return Status::ok();
  std::vector<Partition> fresh;
  for (const auto& [t, p] : tps) {
    Partition part;
    part.topic = t;
    part.partition = p;
    part.split = static_cast<int>(parts_.size() + fresh.size());
    part.lag = &kafka_metrics().consumer_lag.Add(
        {{"job", job_}, {"topic", t}, {"partition", std::to_string(p)}});
    fresh.push_back(std::move(part));
  }
  SLUICE_RETURN_IF_ERROR(resolve_start(fresh, initial));
  SLUICE_RETURN_IF_ERROR(resolve_stop(fresh));

  PartitionList assign = new_partition_list(static_cast<int>(fresh.size()));
  std::vector<size_t> done;
  for (auto& p : fresh) {
    size_t i = parts_.size();
    index_[{p.topic, p.partition}] = i;
    bool at_end = p.stop >= 0 && p.position >= p.stop;
    if (!at_end) {
      rd_kafka_topic_partition_list_add(assign.get(), p.topic.c_str(), p.partition)->offset = p.position;
      ++unfinished_;
    } else {
      done.push_back(i);
    }
    parts_.push_back(std::move(p));
  }
  splits.set_split_count(static_cast<int>(parts_.size()));
  for (size_t i : done) {
    parts_[i].finished = true;
    splits.split_finished(parts_[i].split);
  }
  if (assign->cnt > 0) {
    SLUICE_RETURN_IF_ERROR(status_from(rd_kafka_incremental_assign(rk_.get(), assign.get()),
                                       "assigning partitions to the Kafka consumer"));
  }
  for (const auto& p : parts_) {
    spdlog::debug("Kafka source {}: {} from offset {}{}", subtask_, tp_name(p.topic, p.partition),
                  p.position, p.stop >= 0 ? " to " + std::to_string(p.stop) : std::string());
  }
  return Status::ok();
}

Status KafkaReaderCore::discovered(const Result<std::map<std::string, int>>& counts, SplitListener& splits) {
  if (!counts.is_ok()) {
    spdlog::warn("Kafka source: partition discovery failed (will retry): {}", counts.status().message());
    return Status::ok();
  }
  std::vector<std::pair<std::string, int32_t>> added;
  for (const auto& [t, n] : *counts) {
    for (int32_t p = 0; p < n; ++p) {
      if (owner_of(t, p, parallelism_) != subtask_) continue;
      if (index_.count({t, p})) continue;
      added.emplace_back(t, p);
    }
  }
  if (!added.empty()) {
    spdlog::info("Kafka source {}: discovered {} new partitions (first {})", subtask_, added.size(),
                 tp_name(added[0].first, added[0].second));
    SLUICE_RETURN_IF_ERROR(add_partitions(added, /*initial=*/false, splits));
  }
  return Status::ok();
}

KafkaReaderCore::Partition* KafkaReaderCore::find(const rd_kafka_message_t* m) {
  if (!m->rkt) return nullptr;
  const char* topic = rd_kafka_topic_name(m->rkt);
  // Few partitions per subtask: a linear scan beats building a key string.
  for (auto& p : parts_)
    if (p.partition == m->partition && p.topic == topic) return &p;
  return nullptr;
}

void KafkaReaderCore::finish(Partition& p) {
  if (p.finished) return;
  p.finished = true;
  --unfinished_;
  // Announced at the next call, after this batch's records were emitted.
  finished_pending_.push_back(p.split);
  PartitionList l = new_partition_list();
  rd_kafka_topic_partition_list_add(l.get(), p.topic.c_str(), p.partition);
  rd_kafka_pause_partitions(rk_.get(), l.get());  // stop fetching what will not be read
}

Status KafkaReaderCore::on_out_of_range(Partition& p, int64_t requested, const std::string& detail,
                                        SplitListener& splits) {
  kafka_metrics()
      .offset_out_of_range.Add({{"job", job_}, {"topic", p.topic}, {"partition", std::to_string(p.partition)}})
      .Increment();
  SLUICE_ASSIGN_OR_RETURN(Watermarks w, query_watermarks(rk_.get(), p.topic, p.partition, kQueryTimeoutMs));
  std::string what;
  if (requested < w.low) {
    what = "records " + std::to_string(requested) + ".." + std::to_string(w.low - 1) + " (" +
           std::to_string(w.low - requested) +
           " records) were deleted (retention) before this job read them";
  } else {
    what = "the partition ends at offset " + std::to_string(w.high) +
           " (was the topic deleted and recreated?); what it held past that is unknown";
  }
  std::string msg = "Kafka source: position " + std::to_string(requested) + " of " +
                    tp_name(p.topic, p.partition) + " is out of range [" + std::to_string(w.low) +
                    ", " + std::to_string(w.high) + "): " + what + " (" + detail + ")";
  if (config_.on_out_of_range == OutOfRangePolicy::kFail) {
    spdlog::error("{}", msg);
    return Status::failed_precondition(
        msg + ". The job stops rather than skip data silently; to continue from the earliest "
              "available record set on_out_of_range=earliest on the source URI (or =latest)");
  }
  int64_t to = config_.on_out_of_range == OutOfRangePolicy::kEarliest ? w.low : w.high;
  spdlog::error("{}; continuing at offset {} (on_out_of_range)", msg, to);
  p.position = to;
  if (p.stop >= 0 && p.position >= p.stop) {
    finish(p);
    return Status::ok();
  }
  // After an offset error the partition's fetcher is stopped; assigning it
  // again at the new offset restarts it (a seek is refused in that state).
  PartitionList l = new_partition_list();
  rd_kafka_topic_partition_list_add(l.get(), p.topic.c_str(), p.partition)->offset = to;
  SLUICE_RETURN_IF_ERROR(status_from(rd_kafka_incremental_unassign(rk_.get(), l.get()),
                                     "unassigning " + tp_name(p.topic, p.partition)));
  SLUICE_RETURN_IF_ERROR(status_from(rd_kafka_incremental_assign(rk_.get(), l.get()),
                                     "assigning " + tp_name(p.topic, p.partition)));
  return Status::ok();
}

void KafkaReaderCore::release_batch() {
  for (auto* m : batch_) rd_kafka_message_destroy(m);
  batch_.clear();
}

Result<runtime::PollStatus> KafkaReaderCore::next_batch(std::vector<Item>& items,
                                                        SplitListener& splits) {
  items.clear();
  release_batch();
  for (int split : finished_pending_) splits.split_finished(split);
  finished_pending_.clear();
  if (config_.bounded() && unfinished_ == 0) return runtime::PollStatus::kEndOfInput;
  if (discovery_.valid()) {
    if (discovery_.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      SLUICE_RETURN_IF_ERROR(discovered(discovery_.get(), splits));
      next_discovery_ms_ = ctx_->processing_time().now_ms() + config_.discovery_interval.count();
    }
  } else if (next_discovery_ms_ > 0 && ctx_->processing_time().now_ms() >= next_discovery_ms_) {
    discovery_ = std::async(std::launch::async, [rk = rk_.get(), topics = config_.topics] {
      return partition_counts(rk, topics, kDiscoveryTimeoutMs);
    });
  }
  batch_.resize(config_.batch_size);
  ssize_t n = rd_kafka_consume_batch_queue(queue_.get(), 0, batch_.data(), batch_.size());
  if (n == 0) {
    // Nothing queued: wait up to 10 ms for the first message, then take
    // whatever else is queued. (rd_kafka_consume_batch_queue with a timeout
    // returns only when the batch is full or the timeout passed, so at a low
    // rate every record waited up to the whole 10 ms: workload 4's probe.)
    if (rd_kafka_message_t* first = rd_kafka_consumer_poll(rk_.get(), kIdleWaitMs)) {
      batch_[0] = first;
      n = rd_kafka_consume_batch_queue(queue_.get(), 0, batch_.data() + 1, batch_.size() - 1);
      n = n < 0 ? 1 : n + 1;  // an error here shows again at the next poll
    }
  }
  if (n < 0) {
    batch_.clear();
    return status_from(rd_kafka_last_error(), "consuming from Kafka");
  }
  batch_.resize(static_cast<size_t>(n));
  items.reserve(batch_.size());
  for (rd_kafka_message_t* m : batch_) {
    if (m->err) {
      Partition* p = find(m);
      switch (m->err) {
        case RD_KAFKA_RESP_ERR__PARTITION_EOF:
          // Everything up to m->offset is read; offsets this consumer never
          // sees (transaction markers, aborted records) are skipped too.
          if (p && !p->finished) {
            p->position = std::max(p->position, m->offset);
            if (p->stop >= 0 && p->position >= p->stop) finish(*p);
          }
          break;
        case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
        case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
          if (p && !p->finished) {
            SLUICE_RETURN_IF_ERROR(on_out_of_range(*p, m->offset >= 0 ? m->offset : p->position,
                                                   rd_kafka_message_errstr(m), splits));
          }
          break;
        default: {
          char fatal[512];
          if (rd_kafka_fatal_error(rk_.get(), fatal, sizeof fatal)) {
            return Status::io_error(std::string("Kafka consumer failed: ") + fatal);
          }
          int64_t now = monotonic_ns();
          if (now >= next_lag_update_ns_) {  // at most one warning per lag period
            spdlog::warn("Kafka source {}: {} (librdkafka retries)", subtask_, rd_kafka_message_errstr(m));
          }
          break;
        }
      }
      continue;
    }
    Partition* p = find(m);
    if (!p || p->finished || m->offset < p->position) continue;  // stale after a seek
    if (p->stop >= 0 && m->offset >= p->stop) {
      finish(*p);
      continue;
    }
    Item it;
    it.split = p->split;
    KafkaRecordView& v = it.view;
    v.topic = p->topic;
    v.partition = p->partition;
    v.offset = m->offset;
    rd_kafka_timestamp_type_t tstype;
    v.timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
    v.has_key = m->key != nullptr;
    if (v.has_key) v.key = std::string_view(static_cast<const char*>(m->key), m->key_len);
    v.has_value = m->payload != nullptr;
    if (v.has_value) v.value = std::string_view(static_cast<const char*>(m->payload), m->len);
    v.message = m;
    items.push_back(it);
    p->position = m->offset + 1;
    if (p->stop >= 0 && p->position >= p->stop) finish(*p);
    ++records_local_;
    bytes_local_ += m->len + m->key_len;
  }
  int64_t now = monotonic_ns();
  if (now >= next_lag_update_ns_) {
    next_lag_update_ns_ = now + 1'000'000'000;
    update_lag();
  }
  if (!items.empty()) return runtime::PollStatus::kMoreAvailable;
  return runtime::PollStatus::kNothingAvailable;
}

void KafkaReaderCore::update_lag() {
  if (!rk_) return;
  for (auto& p : parts_) {
    int64_t lo = -1, hi = -1;
    if (p.finished) {
      p.lag->Set(0);
      continue;
    }
    if (rd_kafka_get_watermark_offsets(rk_.get(), p.topic.c_str(), p.partition, &lo, &hi) == 0 && hi >= 0) {
      p.lag->Set(static_cast<double>(std::max<int64_t>(0, hi - p.position)));
    }
  }
  if (records_local_ > 0 && !parts_.empty()) {
    // Attributed to the first topic when a source reads several (rare).
    const std::string& t = parts_.front().topic;
    auto& c = topic_counters_[t];
    if (!c.first) {
      c.first = &kafka_metrics().consumer_records.Add({{"job", job_}, {"topic", t}});
      c.second = &kafka_metrics().consumer_bytes.Add({{"job", job_}, {"topic", t}});
    }
    c.first->Increment(static_cast<double>(records_local_));
    c.second->Increment(static_cast<double>(bytes_local_));
    records_local_ = bytes_local_ = 0;
  }
}

std::vector<PartitionPosition> KafkaReaderCore::positions() const {
  std::vector<PartitionPosition> out;
  out.reserve(parts_.size());
  for (const auto& p : parts_) out.push_back({p.topic, p.partition, p.position, p.stop});
  return out;
}

Result<std::string> KafkaReaderCore::snapshot(CheckpointId id) {
  auto ps = positions();
  if (config_.commit_offsets) {
    pending_commits_[id.value()] = ps;
    while (pending_commits_.size() > kMaxPendingCommits) pending_commits_.erase(pending_commits_.begin());
  }
  return encode_positions(ps);
}

Status KafkaReaderCore::checkpoint_complete(CheckpointId id) {
  auto it = pending_commits_.upper_bound(id.value());
  if (it == pending_commits_.begin()) return Status::ok();
  --it;  // the newest snapshot covered by checkpoint `id`
  if (rk_ && config_.commit_offsets) {
    PartitionList list = new_partition_list(static_cast<int>(it->second.size()));
    for (const auto& p : it->second)
      if (p.offset >= 0)
        rd_kafka_topic_partition_list_add(list.get(), p.topic.c_str(), p.partition)->offset = p.offset;
    if (list->cnt > 0) {
      // Asynchronous: the task thread does not wait for the group
      // coordinator; failures are logged and counted (on_offset_commit).
      rd_kafka_resp_err_t err = rd_kafka_commit(rk_.get(), list.get(), 1);
      if (err) {
        spdlog::warn("Kafka source: cannot commit offsets for group '{}': {}", group_, rd_kafka_err2str(err));
        kafka_metrics().commit_failures.Add({{"group", group_}}).Increment();
      }
    }
  }
  pending_commits_.erase(pending_commits_.begin(), std::next(it));
  return Status::ok();
}

void KafkaReaderCore::close() {
  if (discovery_.valid()) discovery_.wait();  // uses rk_; bounded by its timeout
  release_batch();
  if (rk_) update_lag();
  queue_.reset();
  if (rk_) {
    rd_kafka_consumer_close(rk_.get());
    rk_.reset();
  }
}

}  // namespace sluice::kafka
