// The type-independent part of an InfluxDB sink subtask: batches of
// line-protocol points, the checkpoint protocol (README.md, "Exactly-once
// in effect"), and writing them with the async HTTP client — retries with
// backoff on processing-time timers, a point the server refuses split out
// of its batch and sent to the dead-letter output, input suspended while
// too much is waiting. InfluxDbSinkWriter<T> (influxdb_sink.h) turns
// records into lines and hands them here.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "connectors/influxdb/config.h"
#include "engine/common/serde.h"
#include "engine/runtime/operator.h"
#include "operators/async/http/http_client.h"

namespace prometheus {
class Counter;
class Gauge;
}  // namespace prometheus

namespace sluice::influxdb {

/// Points written between two barriers (or, without checkpointing, one
/// batch), kept in memory and in the sink's checkpoint state until the
/// server has accepted them. At most batch_points / batch_bytes each: one
/// chunk is one write request.
struct InfluxChunk {
  /// kOpen: written after the last barrier; kCommitted: to be written now
  /// (restored from a completed checkpoint, or no checkpointing); N > 0:
  /// sealed at barrier N, written once checkpoint N completes.
  static constexpr int64_t kOpen = -1;
  static constexpr int64_t kCommitted = 0;
  int64_t checkpoint = kOpen;
  std::string lines;          // line protocol, every point ending in '\n'
  std::vector<uint32_t> ends;  // end offset in `lines` of each point
  SLUICE_FIELDS(checkpoint, lines, ends)
};

/// What one writer did. Task thread.
struct InfluxWriterStats {
  uint64_t points_accepted = 0;  // points the server acknowledged
  uint64_t points_refused = 0;   // points the server refused (dead letters)
  uint64_t requests = 0;         // write requests answered, whatever the answer
  uint64_t retries = 0;          // failed attempts retried after a backoff
  uint64_t bytes_sent = 0;       // request bodies as sent (compressed with gzip)
};

/// One sink subtask's batches and requests. Lifecycle: initialize -> open
/// -> (append | reject | snapshot | checkpoint_complete)* -> flush (end of
/// input) -> close. Task thread only, except the HTTP client's callbacks,
/// which only post to the task's mailbox. Owned by its InfluxDbSinkWriter.
class InfluxWriterCore {
 public:
  explicit InfluxWriterCore(InfluxSinkConfig config);
  ~InfluxWriterCore();
  InfluxWriterCore(const InfluxWriterCore&) = delete;
  InfluxWriterCore& operator=(const InfluxWriterCore&) = delete;

  Status initialize(const runtime::OperatorRestore& restore);
  /// Reads the secret, starts the HTTP client, and starts writing what the
  /// restored checkpoint holds (asynchronously: nothing blocks here).
  Status open(runtime::OperatorContext& ctx);
  /// One point: a line of line protocol ending in '\n'.
  Status append(std::string_view line);
  /// A record the sink cannot write goes to the dead-letter output.
  void reject(const std::string& reason, std::string payload);
  /// End of input. Without checkpointing: writes everything and waits for
  /// it. With checkpointing the final checkpoint covers the rest, and its
  /// completion waits for the writes.
  Status flush();
  Result<std::string> snapshot(CheckpointId id);
  Status checkpoint_complete(CheckpointId id);
  /// Stops the client; what is not written yet is in the last checkpoint.
  Status close();

  const InfluxWriterStats& stats() const { return stats_; }
  bool exactly_once() const { return exactly_once_; }
  /// Points held (not yet accepted by the server).
  uint64_t pending_points() const;
  bool input_suspended() const { return suspended_; }

 private:
  enum class Step { kCreateDatabase, kProbe, kWrites };
  using Range = std::pair<uint32_t, uint32_t>;  // points [first, last) of the front chunk

  bool publishable(const InfluxChunk& c) const;
  InfluxChunk& open_chunk();
  void seal_for_time(uint64_t seq);
  void pump();
  void send_write();
  void send_control();
  void submit(http_client::Request request, Step step, uint32_t points);
  void on_answer(Step step, uint32_t points, Result<http_client::Response> result);
  void advance();
  void refuse(const Range& r, const std::string& why);
  void retry_later(const std::string& why, int64_t retry_after_s);
  void fail(Status st);
  void update_backpressure();
  Status drain(const char* what);
  std::string_view range_text(const InfluxChunk& c, const Range& r) const;

  InfluxSinkConfig config_;
  runtime::OperatorContext* ctx_ = nullptr;
  runtime::OperatorRestore restore_;
  bool exactly_once_ = false;
  std::string write_url_;
  std::string authorization_;
  std::unique_ptr<http_client::HttpClient> client_;
  /// Shared with the actions the client's callbacks post: false once the
  /// core closed, so a late action does nothing. Task thread only.
  std::shared_ptr<bool> alive_;

  std::deque<InfluxChunk> chunks_;  // oldest first
  std::deque<Range> todo_;          // the front chunk's points not yet written, once it is being written
  int64_t completed_ = 0;           // latest completed checkpoint
  uint64_t open_seq_ = 0;           // numbers open chunks (flush_interval timers)
  Step step_ = Step::kProbe;
  bool in_flight_ = false;
  bool retry_scheduled_ = false;
  bool finished_ = false;
  bool suspended_ = false;
  int64_t first_failure_ms_ = -1;
  int64_t backoff_ms_ = 100;
  int failures_ = 0;
  Status failed_;
  InfluxWriterStats stats_;

  prometheus::Counter* points_metric_ = nullptr;
  prometheus::Counter* refused_metric_ = nullptr;
  prometheus::Counter* retries_metric_ = nullptr;
  prometheus::Counter* bytes_metric_ = nullptr;
  prometheus::Gauge* pending_metric_ = nullptr;
};

}  // namespace sluice::influxdb
