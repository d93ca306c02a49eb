#include "connectors/kafka/client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "engine/common/clock.h"

namespace sluice::kafka {

void ClientDeleter::operator()(rd_kafka_t* rk) const {
  if (rk) rd_kafka_destroy(rk);
}

Status status_from(rd_kafka_resp_err_t err, std::string_view context) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::ok();
  std::string msg = std::string(context) + ": " + rd_kafka_err2name(err) + ": " + rd_kafka_err2str(err);
  switch (err) {
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
      return Status::timeout(std::move(msg));
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
      return Status::unavailable(std::move(msg));
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      return Status::not_found(std::move(msg));
    default:
      return Status::io_error(std::move(msg));
  }
}

Status status_from(rd_kafka_error_t* error, std::string_view context) {
  if (!error) return Status::ok();
  std::string msg = std::string(context) + ": " + rd_kafka_error_name(error) + ": " +
                    rd_kafka_error_string(error);
  bool fatal = rd_kafka_error_is_fatal(error);
  rd_kafka_resp_err_t code = rd_kafka_error_code(error);
  rd_kafka_error_destroy(error);
  if (fatal || code == RD_KAFKA_RESP_ERR__FENCED || code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
      code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH) {
    return Status::failed_precondition(std::move(msg));
  }
  if (code == RD_KAFKA_RESP_ERR__TIMED_OUT) return Status::timeout(std::move(msg));
  return Status::io_error(std::move(msg));
}

Result<ClientHandle> make_client(rd_kafka_type_t type, const ClientProperties& props,
                                 const ClientProperties& user_props,
                                 const std::function<void(rd_kafka_conf_t*)>& configure) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto* list : {&props, &user_props}) {
    for (const auto& [k, v] : *list) {
      if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return Status::invalid_argument("Kafka client property " + k + "=" + v + ": " + err);
      }
    }
  }
  if (configure) configure(conf);
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);  // owns conf on success
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return Status::invalid_argument(std::string("cannot create Kafka client: ") + err);
  }
  return ClientHandle(rk);
}

Result<std::map<std::string, int>> partition_counts(rd_kafka_t* rk,
                                                    const std::vector<std::string>& topics,
                                                    int timeout_ms) {
  // Metadata of all topics: asking for named topics can create them on
  // brokers with auto-creation (and the dev broker always creates them),
  // which would turn a misspelled topic into a new empty one.
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, nullptr, &md, timeout_ms);
  if (err) return status_from(err, "reading the cluster's topic metadata");
  std::unique_ptr<const rd_kafka_metadata_t, decltype(&rd_kafka_metadata_destroy)> guard(
      md, &rd_kafka_metadata_destroy);
  std::map<std::string, int> out;
  for (int i = 0; i < md->topic_cnt; ++i) {
    const auto& mt = md->topics[i];
    if (std::find(topics.begin(), topics.end(), mt.topic) == topics.end()) continue;
    if (mt.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || mt.err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
      continue;
    }
    if (mt.err) return status_from(mt.err, "metadata of topic '" + std::string(mt.topic) + "'");
    out[mt.topic] = mt.partition_cnt;
  }
  return out;
}

Result<Watermarks> query_watermarks(rd_kafka_t* rk, const std::string& topic, int32_t partition,
                                    int timeout_ms) {
  Watermarks w;
  rd_kafka_resp_err_t err =
      rd_kafka_query_watermark_offsets(rk, topic.c_str(), partition, &w.low, &w.high, timeout_ms);
  if (err) {
    return status_from(err, "querying offsets of " + topic + "[" + std::to_string(partition) + "]");
  }
  return w;
}

std::vector<KafkaHeader> KafkaRecordView::headers() const {
  std::vector<KafkaHeader> out;
  rd_kafka_headers_t* hdrs = nullptr;
  if (!message || rd_kafka_message_headers(message, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return out;
  const char* name;
  const void* val;
  size_t size;
  for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
       ++i) {
    out.push_back({name, val ? std::string(static_cast<const char*>(val), size) : std::string()});
  }
  return out;
}

std::optional<std::string> KafkaRecordView::header(std::string_view name) const {
  rd_kafka_headers_t* hdrs = nullptr;
  if (!message || rd_kafka_message_headers(message, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return std::nullopt;
  }
  const void* val;
  size_t size;
  std::string n(name);
  if (rd_kafka_header_get_last(hdrs, n.c_str(), &val, &size) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return std::nullopt;
  }
  return val ? std::string(static_cast<const char*>(val), size) : std::string();
}

Status produce_blocking(rd_kafka_t* rk, const std::string& topic, int32_t partition,
                        std::string_view value, const std::optional<std::string_view>& key,
                        const std::vector<KafkaHeader>& headers, int64_t timestamp_ms,
                        int max_wait_ms) {
  const int64_t deadline = monotonic_ns() + int64_t{max_wait_ms} * 1'000'000;
  std::vector<rd_kafka_vu_t> vus(6 + headers.size());
  size_t n = 0;
  vus[n].vtype = RD_KAFKA_VTYPE_TOPIC;
  vus[n++].u.cstr = topic.c_str();
  vus[n].vtype = RD_KAFKA_VTYPE_PARTITION;
  vus[n++].u.i32 = partition < 0 ? RD_KAFKA_PARTITION_UA : partition;
  vus[n].vtype = RD_KAFKA_VTYPE_VALUE;
  vus[n].u.mem.ptr = const_cast<char*>(value.data());
  vus[n++].u.mem.size = value.size();
  vus[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
  vus[n++].u.i32 = RD_KAFKA_MSG_F_COPY;
  if (key) {
    vus[n].vtype = RD_KAFKA_VTYPE_KEY;
    vus[n].u.mem.ptr = const_cast<char*>(key->data());
    vus[n++].u.mem.size = key->size();
  }
  if (timestamp_ms > 0) {
    vus[n].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
    vus[n++].u.i64 = timestamp_ms;
  }
  for (const auto& h : headers) {  // copied by librdkafka
    vus[n].vtype = RD_KAFKA_VTYPE_HEADER;
    vus[n].u.header.name = h.key.c_str();
    vus[n].u.header.val = h.value.data();
    vus[n++].u.header.size = static_cast<ssize_t>(h.value.size());
  }
  while (true) {
    rd_kafka_error_t* error = rd_kafka_produceva(rk, vus.data(), n);
    if (!error) return Status::ok();
    rd_kafka_resp_err_t code = rd_kafka_error_code(error);
    if (code != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      return status_from(error, "producing to topic '" + topic + "'");
    }
    rd_kafka_error_destroy(error);
    if (monotonic_ns() > deadline) {
      return Status::timeout("producing to topic '" + topic + "': the local queue stayed full for " +
                             std::to_string(max_wait_ms) + " ms");
    }
    rd_kafka_poll(rk, 10);  // serve delivery reports so the queue drains
  }
}

// --- SimpleProducer ---------------------------------------------------------

Result<std::unique_ptr<SimpleProducer>> SimpleProducer::create(const std::string& bootstrap,
                                                               const ClientProperties& extra) {
  std::unique_ptr<SimpleProducer> p(new SimpleProducer());
  ClientProperties props = {{"bootstrap.servers", bootstrap},
                            {"enable.idempotence", "true"},
                            {"acks", "all"},
                            {"linger.ms", "5"}};
  SimpleProducer* self = p.get();
  SLUICE_ASSIGN_OR_RETURN(p->rk_, make_client(RD_KAFKA_PRODUCER, props, extra, [self](rd_kafka_conf_t* c) {
                            rd_kafka_conf_set_opaque(c, self);
                            rd_kafka_conf_set_dr_msg_cb(c, &SimpleProducer::on_delivery);
                          }));
  return p;
}

SimpleProducer::~SimpleProducer() {
  if (rk_) rd_kafka_flush(rk_.get(), 5000);
}

void SimpleProducer::on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* self = static_cast<SimpleProducer*>(opaque);
  if (m->err) {
    if (self->first_error_.is_ok()) self->first_error_ = status_from(m->err, "delivering a message");
  } else {
    ++self->delivered_;
  }
}

Status SimpleProducer::produce(const std::string& topic, std::string_view value,
                               std::optional<std::string_view> key, int32_t partition,
                               const std::vector<KafkaHeader>& headers, int64_t timestamp_ms) {
  SLUICE_RETURN_IF_ERROR(first_error_);
  SLUICE_RETURN_IF_ERROR(produce_blocking(rk_.get(), topic, partition, value, key, headers, timestamp_ms));
  rd_kafka_poll(rk_.get(), 0);
  return Status::ok();
}

void SimpleProducer::TopicDeleter::operator()(rd_kafka_topic_t* t) const {
  if (t) rd_kafka_topic_destroy(t);
}

void SimpleProducer::prepare(const std::vector<std::string>& topics, int timeout_ms) {
  for (const auto& name : topics) {
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk_.get(), name.c_str(), nullptr);
    if (!t) continue;
    topics_.emplace_back(t);
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(rk_.get(), 0, t, &md, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_metadata_destroy(md);
    }
  }
}

Status SimpleProducer::flush(int timeout_ms) {
  rd_kafka_resp_err_t err = rd_kafka_flush(rk_.get(), timeout_ms);
  if (err) return status_from(err, "flushing the producer");
  return first_error_;
}

}  // namespace sluice::kafka
