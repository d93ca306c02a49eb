// The format-independent part of HTTP push sinks: batching, idempotency
// keys, sending through the async HTTP client, retries with backoff on
// processing-time timers, backpressure through the task's mailbox, and the
// checkpoint state that makes delivery at-least-once (or, with
// delivery=after_checkpoint, exactly-once for a receiver that drops
// repeated keys). A format (PushFormat) turns a batch's records into a
// request body and says what an answer means; the webhook JSON and NDJSON
// formats are here, the SIEM ones (Splunk HEC, Elasticsearch bulk) in
// siem_formats.h.
//
// Batch keys: "<job>-<subtask>-<run>-c<checkpoint>-<seq>", given when the
// batch is sealed (full, lingered, or at a barrier) and kept with it: every
// attempt, in this run or after a restore, sends the same key with the same
// body. <run> is random per writer instance, <checkpoint> the last one the
// writer took (or was restored from), <seq> counts batches of the run.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "connectors/http/push_config.h"
#include "engine/common/serde.h"
#include "engine/runtime/operator.h"
#include "operators/async/http/http_client.h"

namespace prometheus {
class Counter;
class Gauge;
}  // namespace prometheus

namespace sluice::http_sink {

/// How a batch becomes a request, and what an answer means. Immutable;
/// shared by the writers of a sink (any thread).
class PushFormat {
 public:
  /// kFail: the task fails with the reason (kPermissionDenied: the job
  /// fails at once instead of restarting), e.g. credentials refused.
  enum class Outcome { kAcked, kRetry, kRefused, kFail };
  /// What an answer means: for the whole batch, or per record when the
  /// receiver answers per record (Elasticsearch bulk items).
  struct Verdict {
    Outcome outcome = Outcome::kAcked;                    // the batch, when `items` is empty
    std::vector<std::pair<Outcome, std::string>> items;  // else one per record: outcome, reason
    std::string why;                                      // kFail: the reason
  };
  virtual ~PushFormat() = default;
  virtual std::string content_type() const = 0;
  /// The Authorization scheme of auth_token unless the URI says auth_scheme=.
  virtual std::string auth_scheme() const { return "Bearer"; }
  /// The form a record is kept in (in batches, checkpoints and every
  /// attempt's body), made once when the record enters the sink from its
  /// JSON and event time. An error makes the record a dead letter with it.
  virtual Result<std::string> encode(std::string record, EventTime ts) const { return record; }
  /// A kept record as its dead letter shows it. Default: as kept.
  virtual std::string dead_letter_payload(const std::string& kept) const { return kept; }
  /// The request body of a batch: its key and its kept records.
  virtual std::string body(const std::string& key, const std::vector<std::string>& records) const = 0;
  /// Default: 2xx acknowledged; 408, 425, 429, 5xx and 401/403/404 (a
  /// receiver or credentials not there yet) retried; any other answer
  /// refuses the batch (its records become dead letters).
  virtual Outcome classify(const http_client::Response& r) const;
  /// Default: classify() for the whole batch of `records` records.
  virtual Verdict judge(const http_client::Response& r, size_t records) const;
};

/// By config.format: "json": {"idempotency_key":"…","records":[…]};
/// "ndjson": one record per line; "splunk-hec", "es-bulk": siem_formats.h.
std::shared_ptr<const PushFormat> make_format(const PushSinkConfig& config);

/// One batch, as the checkpoint keeps it.
struct PushBatch {
  std::string key;
  std::string url;
  std::vector<std::string> records;
  int64_t release_after = 0;  // after_checkpoint: the checkpoint that releases it (0: the next)
  bool released = false;      // may be sent
  SLUICE_FIELDS(key, url, records, release_after, released)
};

struct PushWriterState {
  int64_t checkpoint = 0;          // the checkpoint this state belongs to
  std::vector<PushBatch> batches;  // sealed and not acknowledged, in order
  SLUICE_FIELDS(checkpoint, batches)
};

/// Posts completions from the HTTP client's thread to the task's mailbox
/// until closed; shared by the core and its requests in flight (a request
/// may answer after the core is gone).
class MailboxGate {
 public:
  explicit MailboxGate(runtime::MailboxExecutor* mailbox) : mailbox_(mailbox) {}
  /// Any thread: false if closed (the action is dropped).
  bool post(runtime::MailboxExecutor::Action action);
  /// Task thread: no action posted after this returns runs.
  void close();
  bool is_open() const;

 private:
  mutable std::mutex mu_;
  bool open_ = true;
  runtime::MailboxExecutor* mailbox_;
};

/// One push-sink subtask. Lifecycle: initialize -> open -> (add | snapshot
/// | checkpoint_complete)* -> flush -> close. Everything runs on the task
/// thread (answers come back through the mailbox, retries on timers).
class PushSinkCore {
 public:
  struct Stats {
    uint64_t sent = 0, acked = 0, retried = 0, refused = 0, records_acked = 0;
    size_t pending = 0;  // sealed, not acknowledged
    bool suspended = false;
  };

  PushSinkCore(PushSinkConfig config, std::shared_ptr<const PushFormat> format);
  ~PushSinkCore();
  PushSinkCore(const PushSinkCore&) = delete;
  PushSinkCore& operator=(const PushSinkCore&) = delete;

  Status initialize(const runtime::OperatorRestore& restore);
  /// Resolves secrets, starts (or joins) the process's HTTP client and
  /// re-sends the batches of the restored checkpoint.
  Status open(runtime::OperatorContext& ctx);
  /// One record (JSON) for `url`; the format keeps it in its own form (a
  /// record it cannot encode becomes a dead letter).
  Status add(const std::string& url, std::string record, EventTime ts = EventTime());
  /// End of input: seals everything; at-least-once waits until every batch
  /// is acknowledged (after_checkpoint does at the next completed checkpoint).
  Status flush();
  Result<std::string> snapshot(CheckpointId id);
  Status checkpoint_complete(CheckpointId id);
  Status close();

  const Stats& stats() const { return stats_; }
  const std::string& run_id() const { return run_; }

 private:
  struct Open {
    std::vector<std::string> records;
    int64_t bytes = 0;
    uint64_t generation = 0;
  };
  struct Queued {
    PushBatch batch;
    bool sending = false;
    int attempt = 0;
    int64_t next_try_ms = 0;
    int64_t failing_since_ms = -1;
    int splits = 0;  // times part of the batch was taken and the rest kept (renamed key)
  };

  void seal(const std::string& url);
  void seal_all();
  void pump();
  void send(Queued& q);
  void on_answer(const std::string& key, Result<http_client::Response> r);
  void refuse(const Queued& q, const std::string& record, const std::string& why);
  /// Schedules the next attempt; false if the task failed instead (retry_timeout).
  bool retry_later(Queued& q, const std::string& why, int64_t retry_after_s);
  void update_suspension();
  Status wait_until_empty(const char* why);
  int64_t now() const;
  int64_t backoff_ms(int attempt, int64_t retry_after_s);

  PushSinkConfig config_;
  std::shared_ptr<const PushFormat> format_;
  std::string run_;
  runtime::OperatorContext* ctx_ = nullptr;
  runtime::OperatorRestore restore_;
  std::shared_ptr<http_client::HttpClient> client_;  // shared: one per process (all push sinks)
  std::shared_ptr<MailboxGate> gate_;                // shared: with requests in flight
  std::vector<std::pair<std::string, std::string>> headers_;
  std::string key_prefix_;
  int64_t last_checkpoint_ = 0;
  uint64_t seq_ = 0;
  uint64_t generation_ = 0;
  std::map<std::string, Open> open_;  // by URL
  std::deque<Queued> queue_;          // sealed, in order
  size_t in_flight_ = 0;
  bool end_of_input_ = false;
  bool suspended_ = false;
  bool retry_scheduled_ = false;
  uint64_t rng_ = 0x9e3779b97f4a7c15ull;
  Stats stats_;
  prometheus::Counter* acked_metric_ = nullptr;
  prometheus::Counter* retried_metric_ = nullptr;
  prometheus::Counter* refused_metric_ = nullptr;
  prometheus::Counter* records_metric_ = nullptr;
  prometheus::Gauge* pending_metric_ = nullptr;
};

}  // namespace sluice::http_sink
