#include "connectors/http/push_core.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "engine/common/auth.h"
#include "engine/common/clock.h"
#include "engine/common/json.h"
#include "engine/common/metrics.h"
#include "connectors/http/siem_formats.h"

namespace sluice::http_sink {

// --- formats -------------------------------------------------------------------

PushFormat::Outcome PushFormat::classify(const http_client::Response& r) const {
  if (r.ok()) return Outcome::kAcked;
  const long s = r.status;
  if (s == 408 || s == 425 || s == 429 || s >= 500 || s == 401 || s == 403 || s == 404) return Outcome::kRetry;
  return Outcome::kRefused;
}

PushFormat::Verdict PushFormat::judge(const http_client::Response& r, size_t) const {
  Verdict v;
  v.outcome = classify(r);
  return v;
}

namespace {

class JsonBatchFormat final : public PushFormat {
 public:
  std::string content_type() const override { return "application/json"; }
  std::string body(const std::string& key, const std::vector<std::string>& records) const override {
    std::string out = "{\"idempotency_key\":";
    json_append_string(out, key);
    out += ",\"records\":[";
    for (size_t i = 0; i < records.size(); ++i) {
      if (i) out += ',';
      out += records[i];
    }
    out += "]}";
    return out;
  }
};

class NdjsonBatchFormat final : public PushFormat {
 public:
  std::string content_type() const override { return "application/x-ndjson"; }
  std::string body(const std::string&, const std::vector<std::string>& records) const override {
    std::string out;
    for (const auto& r : records) {
      out += r;
      out += '\n';
    }
    return out;
  }
};

struct PushMetricFamilies {
  prometheus::Family<prometheus::Counter>& batches;
  prometheus::Family<prometheus::Counter>& records;
  prometheus::Family<prometheus::Gauge>& pending;
};

PushMetricFamilies& push_metrics() {
  static PushMetricFamilies* f = [] {
    auto& r = metrics::registry();
    return new PushMetricFamilies{
        prometheus::BuildCounter()
            .Name("sluice_push_sink_batches_total")
            .Help("Batches of HTTP push sinks by outcome (acked, retried: an attempt failed and is retried, "
                  "refused: the receiver refused it, its records became dead letters)")
            .Register(r),
        prometheus::BuildCounter()
            .Name("sluice_push_sink_records_total")
            .Help("Records of HTTP push sinks in acknowledged batches")
            .Register(r),
        prometheus::BuildGauge()
            .Name("sluice_push_sink_pending_batches")
            .Help("Batches an HTTP push sink subtask has sealed and not had acknowledged")
            .Register(r),
    };
  }();
  return *f;
}

// Job names in keys: letters, digits, '.', '_' and '-' only.
std::string key_safe(const std::string& s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-') ? c : '_';
  return out;
}

}  // namespace

std::shared_ptr<const PushFormat> make_format(const PushSinkConfig& c) {
  if (c.format == "ndjson") return std::make_shared<NdjsonBatchFormat>();
  if (c.format == "splunk-hec") return make_splunk_hec_format(c);
  if (c.format == "es-bulk") return make_es_bulk_format(c);
  return std::make_shared<JsonBatchFormat>();
}

// --- gate ------------------------------------------------------------------------

bool MailboxGate::post(runtime::MailboxExecutor::Action action) {
  std::lock_guard lk(mu_);
  if (!open_) return false;
  return mailbox_->execute(std::move(action), "push sink answer");
}

void MailboxGate::close() {
  std::lock_guard lk(mu_);
  open_ = false;
}

bool MailboxGate::is_open() const {
  std::lock_guard lk(mu_);
  return open_;
}

// --- core ------------------------------------------------------------------------

PushSinkCore::PushSinkCore(PushSinkConfig config, std::shared_ptr<const PushFormat> format)
    : config_(std::move(config)), format_(std::move(format)), run_(auth::random_hex(4)) {}

PushSinkCore::~PushSinkCore() {
  if (gate_) gate_->close();
}

Status PushSinkCore::initialize(const runtime::OperatorRestore& restore) {
  restore_ = restore;
  return Status::ok();
}

int64_t PushSinkCore::now() const { return ctx_->processing_time().now_ms(); }

Status PushSinkCore::open(runtime::OperatorContext& ctx) {
  ctx_ = &ctx;
  const auto& info = ctx.info();
  const std::string what = "push sink " + config_.url_template;
  headers_.push_back({"Content-Type", format_->content_type()});
  for (const auto& [name, ref] : config_.headers) {
    SLUICE_ASSIGN_OR_RETURN(std::string v, ref.resolve(what + " header " + name));
    if (v.find_first_of("\r\n") != std::string::npos) return Status::invalid_argument(what + ": header " + name + " holds a line break");
    headers_.push_back({name, v});
  }
  if (config_.has_auth_token) {
    SLUICE_ASSIGN_OR_RETURN(std::string token, config_.auth_token.resolve(what + " auth_token"));
    if (token.empty() || token.find_first_of("\r\n") != std::string::npos) {
      return Status::invalid_argument(what + ": the auth_token is empty or holds a line break");
    }
    const std::string scheme = config_.auth_scheme.empty() ? format_->auth_scheme() : config_.auth_scheme;
    if (scheme == "Basic") {
      const auto colon = token.find(':');
      if (colon == std::string::npos) return Status::invalid_argument(what + ": auth_scheme=Basic needs the secret as user:password");
      headers_.push_back({"Authorization", http_client::basic_authorization(token.substr(0, colon), token.substr(colon + 1))});
    } else {
      headers_.push_back({"Authorization", scheme + " " + token});
    }
  }
  http_client::HttpClientOptions o;
  o.name = "push";
  o.connect_timeout = config_.connect_timeout;
  o.default_timeout = config_.timeout;
  SLUICE_ASSIGN_OR_RETURN(client_, http_client::HttpClient::shared(o));
  gate_ = std::make_shared<MailboxGate>(&ctx.mailbox());
  key_prefix_ = key_safe(info.job_name) + "-" + std::to_string(info.subtask) + "-" + run_ + "-c";
  rng_ ^= std::hash<std::string>{}(run_);

  auto& m = push_metrics();
  std::map<std::string, std::string> labels{{"job", info.job_name}, {"sink", info.uid}};
  auto with = [&](const char* k, std::string v) {
    auto l = labels;
    l[k] = std::move(v);
    return l;
  };
  acked_metric_ = &m.batches.Add(with("outcome", "acked"));
  retried_metric_ = &m.batches.Add(with("outcome", "retried"));
  refused_metric_ = &m.batches.Add(with("outcome", "refused"));
  records_metric_ = &m.records.Add(labels);
  pending_metric_ = &m.pending.Add(with("subtask", std::to_string(info.subtask)));

  if (restore_.restored) {
    // Batches of old subtask j are re-sent by new subtask j % parallelism,
    // with their keys and bodies: the restored checkpoint completed, so
    // everything it holds may go.
    for (size_t j = 0; j < restore_.states.size(); ++j) {
      if (restore_.states[j].empty()) continue;
      PushWriterState s;
      SLUICE_RETURN_IF_ERROR(deserialize(restore_.states[j], s).with_context("push sink state"));
      last_checkpoint_ = std::max(last_checkpoint_, s.checkpoint);  // keys of new batches follow it
      if (static_cast<int>(j % info.parallelism) != info.subtask) continue;
      for (auto& b : s.batches) {
        b.released = true;
        queue_.push_back(Queued{std::move(b)});
      }
    }
    if (!queue_.empty()) spdlog::info("{}: re-sending {} batches of the restored checkpoint", what, queue_.size());
  }
  pump();
  update_suspension();
  return Status::ok();
}

Status PushSinkCore::add(const std::string& url, std::string json, EventTime ts) {
  auto kept = format_->encode(json, ts);
  if (!kept.is_ok()) {
    DeadLetter dl;
    dl.reason = "push sink: " + kept.status().message();
    dl.origin = "push sink " + config_.url_template;
    dl.payload = std::move(json);
    ctx_->dead_letter(std::move(dl));
    return Status::ok();
  }
  std::string record = std::move(kept).value();
  auto [it, fresh] = open_.try_emplace(url);
  Open& o = it->second;
  if (fresh || o.records.empty()) {
    o.generation = ++generation_;
    if (config_.linger.count() == 0) {
      // no waiting: sealed below
    } else {
      auto gate = gate_;
      const uint64_t gen = o.generation;
      ctx_->processing_time().schedule(now() + config_.linger.count(), [this, gate, url, gen](int64_t) {
        if (!gate->is_open()) return;
        auto it = open_.find(url);
        if (it != open_.end() && it->second.generation == gen && !it->second.records.empty()) seal(url);
      });
    }
  }
  o.bytes += static_cast<int64_t>(record.size()) + 1;
  o.records.push_back(std::move(record));
  if (static_cast<int64_t>(o.records.size()) >= config_.batch_size || o.bytes >= config_.batch_bytes ||
      config_.linger.count() == 0) {
    seal(url);
  }
  return Status::ok();
}

void PushSinkCore::seal(const std::string& url) {
  auto it = open_.find(url);
  if (it == open_.end() || it->second.records.empty()) return;
  Queued q;
  q.batch.key = key_prefix_ + std::to_string(last_checkpoint_) + "-" + std::to_string(seq_++);
  q.batch.url = url;
  q.batch.records = std::move(it->second.records);
  q.batch.released = config_.delivery == Delivery::kAtLeastOnce;
  open_.erase(it);
  queue_.push_back(std::move(q));
  pump();
  update_suspension();
}

void PushSinkCore::seal_all() {
  while (!open_.empty()) {
    const std::string url = open_.begin()->first;
    if (open_.begin()->second.records.empty()) {
      open_.erase(open_.begin());
      continue;
    }
    seal(url);
  }
}

void PushSinkCore::pump() {
  const int64_t t = ctx_ ? now() : 0;
  for (auto& q : queue_) {
    if (in_flight_ >= static_cast<size_t>(config_.max_in_flight)) break;
    if (q.sending) continue;
    if (!q.batch.released) break;  // later batches are released later still
    if (q.next_try_ms > t) {
      if (config_.max_in_flight == 1) break;  // in order: the next one waits for this one
      continue;
    }
    send(q);
  }
}

void PushSinkCore::send(Queued& q) {
  http_client::Request req;
  req.method = config_.method == "PUT" ? http_client::Method::kPut : http_client::Method::kPost;
  req.url = q.batch.url + (config_.url_query.empty() ? "" : "?" + config_.url_query);
  req.headers = headers_;
  req.headers.push_back({config_.idempotency_header, q.batch.key});
  req.body = format_->body(q.batch.key, q.batch.records);
  req.timeout = config_.timeout;
  auto gate = gate_;
  const std::string key = q.batch.key;
  Status st = client_->submit(std::move(req), [this, gate, key](Result<http_client::Response> r) {
    // The client's thread: hand the answer to the task thread.
    gate->post([this, gate, key, r = std::move(r)]() mutable {
      if (gate->is_open()) on_answer(key, std::move(r));
    });
  });
  q.sending = true;
  ++in_flight_;
  ++stats_.sent;
  if (!st.is_ok()) {
    // Not accepted (the client is full or stopping): a failed attempt,
    // answered through the mailbox like any other.
    gate->post([this, gate, key, st]() {
      if (gate->is_open()) on_answer(key, st);
    });
  }
}

int64_t PushSinkCore::backoff_ms(int attempt, int64_t retry_after_s) {
  double d = static_cast<double>(config_.retry_initial.count());
  for (int i = 1; i < attempt && d < static_cast<double>(config_.retry_max.count()); ++i) d *= 2;
  d = std::min(d, static_cast<double>(config_.retry_max.count()));
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  d *= 0.8 + 0.4 * static_cast<double>(rng_ >> 11) * 0x1.0p-53;  // +-20 % jitter
  int64_t ms = static_cast<int64_t>(d);
  if (retry_after_s > 0) ms = std::max(ms, std::min<int64_t>(retry_after_s * 1000, config_.retry_max.count()));
  return std::max<int64_t>(ms, 1);
}

void PushSinkCore::on_answer(const std::string& key, Result<http_client::Response> r) {
  auto it = std::find_if(queue_.begin(), queue_.end(), [&](const Queued& q) { return q.batch.key == key; });
  if (it == queue_.end()) return;
  Queued& q = *it;
  q.sending = false;
  --in_flight_;
  PushFormat::Verdict v;
  v.outcome = PushFormat::Outcome::kRetry;
  std::string why;
  int64_t retry_after = -1;
  if (r.is_ok()) {
    v = format_->judge(*r, q.batch.records.size());
    retry_after = r->retry_after_s;
    why = http_client::describe_status(r->status) + (r->body.empty() ? "" : ": " + r->body.substr(0, 200));
  } else {
    why = r.status().message();
  }
  if (!v.items.empty() && v.items.size() != q.batch.records.size()) {
    v.items.clear();  // an answer that does not match the batch: send it all again
    v.outcome = PushFormat::Outcome::kRetry;
    why = "the answer has " + std::to_string(v.items.size()) + " items for " + std::to_string(q.batch.records.size()) +
          " records";
  }
  if (v.outcome == PushFormat::Outcome::kFail && v.items.empty()) {
    ctx_->fail(Status::permission_denied("push sink " + config_.url_template + ": " + q.batch.url + " refused: " +
                                         (v.why.empty() ? why : v.why)));
    return;
  }
  // Per record: acknowledged, refused (a dead letter each) or kept to retry.
  std::vector<std::string> retry;
  size_t acked = 0, refused = 0;
  if (!v.items.empty()) why.clear();  // the items say why, not the whole answer
  for (size_t i = 0; i < q.batch.records.size(); ++i) {
    const auto outcome = v.items.empty() ? v.outcome : v.items[i].first;
    if (outcome == PushFormat::Outcome::kAcked) {
      ++acked;
    } else if (outcome == PushFormat::Outcome::kRefused) {
      ++refused;
      refuse(q, q.batch.records[i], v.items.empty() ? why : v.items[i].second);
    } else {
      retry.push_back(std::move(q.batch.records[i]));
      if (!v.items.empty() && why.size() < 400) why += (why.empty() ? "" : "; ") + v.items[i].second;
    }
  }
  const int64_t t = now();
  stats_.records_acked += acked;
  records_metric_->Increment(static_cast<double>(acked));
  if (refused) {
    ++stats_.refused;
    refused_metric_->Increment();
    spdlog::warn("push sink {}: {} refused {} records of batch {}; they go to the dead-letter output",
                 config_.url_template, q.batch.url, refused, q.batch.key);
  }
  if (retry.empty()) {
    if (q.failing_since_ms >= 0) {
      spdlog::info("push sink {}: {} answers again after {} ms", config_.url_template, q.batch.url, t - q.failing_since_ms);
    }
    if (acked) {
      ++stats_.acked;
      acked_metric_->Increment();
    }
    queue_.erase(it);
  } else {
    if (retry.size() < q.batch.records.size()) {
      // Part of the batch went through: the rest is a new body, so it gets a
      // key of its own (a key never names two bodies).
      q.batch.key += "." + std::to_string(++q.splits);
    }
    q.batch.records = std::move(retry);
    if (!retry_later(q, why, retry_after)) return;  // the task failed
  }
  pump();
  update_suspension();
}

bool PushSinkCore::retry_later(Queued& q, const std::string& why, int64_t retry_after_s) {
  const int64_t t = now();
  ++q.attempt;
  ++stats_.retried;
  retried_metric_->Increment();
  if (q.failing_since_ms < 0) {
    q.failing_since_ms = t;
    spdlog::warn("push sink {}: batch {} to {} failed ({}); retrying with backoff", config_.url_template, q.batch.key,
                 q.batch.url, why);
  }
  if (config_.retry_timeout.count() > 0 && t - q.failing_since_ms >= config_.retry_timeout.count()) {
    ctx_->fail(Status::unavailable("push sink " + config_.url_template + ": " + q.batch.url + " failed for " +
                                   format_duration(Duration(t - q.failing_since_ms)) + " (" + why +
                                   "); the job restarts from its last checkpoint, which holds the batch"));
    return false;
  }
  q.next_try_ms = t + backoff_ms(q.attempt, retry_after_s);
  auto gate = gate_;
  ctx_->processing_time().schedule(q.next_try_ms, [this, gate](int64_t) {
    if (gate->is_open()) pump();
  });
  return true;
}

void PushSinkCore::refuse(const Queued& q, const std::string& record, const std::string& why) {
  DeadLetter dl;
  dl.reason = "push sink: " + q.batch.url + " refused a record of batch " + q.batch.key + ": " + why;
  dl.origin = "push sink " + config_.url_template;
  dl.payload = format_->dead_letter_payload(record);
  ctx_->dead_letter(std::move(dl));
}

void PushSinkCore::update_suspension() {
  size_t released = 0;
  for (const auto& q : queue_) released += q.batch.released ? 1 : 0;
  stats_.pending = queue_.size();
  if (pending_metric_) pending_metric_->Set(static_cast<double>(queue_.size()));
  // Only released batches count: batches waiting for their checkpoint must
  // not hold back the input that carries its barrier.
  const bool suspend = released >= static_cast<size_t>(config_.max_pending);
  if (suspend != suspended_ && ctx_) {
    suspended_ = suspend;
    stats_.suspended = suspend;
    ctx_->mailbox().set_input_suspended(suspend);
  }
}

Status PushSinkCore::wait_until_empty(const char* why) {
  while (!queue_.empty()) {
    if (!ctx_->mailbox().yield()) {
      return Status::cancelled(std::string("push sink: stopped while ") + why + " (" + std::to_string(queue_.size()) +
                               " batches not acknowledged; the last checkpoint holds them)");
    }
  }
  return Status::ok();
}

Status PushSinkCore::flush() {
  seal_all();
  end_of_input_ = true;
  if (config_.delivery == Delivery::kAtLeastOnce) return wait_until_empty("sending the last batches");
  return Status::ok();
}

Result<std::string> PushSinkCore::snapshot(CheckpointId id) {
  // Records before the barrier are in batches with keys from here on.
  seal_all();
  PushWriterState s;
  s.checkpoint = id.value();
  for (auto& q : queue_) {
    if (!q.batch.released && q.batch.release_after == 0) q.batch.release_after = id.value();
    s.batches.push_back(q.batch);
  }
  last_checkpoint_ = id.value();
  return serialize(s);
}

Status PushSinkCore::checkpoint_complete(CheckpointId id) {
  bool released = false;
  for (auto& q : queue_) {
    if (!q.batch.released && q.batch.release_after > 0 && q.batch.release_after <= id.value()) {
      q.batch.released = true;
      released = true;
    }
  }
  if (released) {
    pump();
    update_suspension();
  }
  if (end_of_input_ && config_.delivery == Delivery::kAfterCheckpoint) {
    return wait_until_empty("sending the batches of the final checkpoint");
  }
  return Status::ok();
}

Status PushSinkCore::close() {
  if (gate_) gate_->close();
  if (suspended_ && ctx_) ctx_->mailbox().set_input_suspended(false);
  return Status::ok();
}

}  // namespace sluice::http_sink
