// The type-independent part of a Postgres sink subtask: connection with
// retries, table creation and schema check, and the exactly-once protocol
// (README.md, "Exactly-once"). PostgresSinkWriter<T> (postgres_sink.h)
// encodes records as COPY text rows and hands them here.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/postgres/config.h"
#include "connectors/postgres/connection.h"
#include "engine/common/serde.h"
#include "engine/runtime/operator.h"

namespace prometheus {
class Counter;
class Gauge;
}  // namespace prometheus

namespace sluice::postgres {

/// Column types a record field can map to.
enum class PgType { kBigint, kInteger, kDouble, kBoolean, kText, kTextArray };
/// The type as CREATE TABLE writes it and format_type() reports it.
std::string_view pg_type_sql(PgType t);

struct Column {
  std::string name;
  PgType type;
};

/// The steps of one batch commit, in order (README.md). Recovery runs the
/// same steps for every restored batch.
enum class PgStep {
  kLockProgress,    // BEGIN; lock this writer's progress row; already committed?
  kWriteRows,       // COPY (append) or COPY into staging + INSERT .. ON CONFLICT (upsert)
  kUpdateProgress,  // progress row := (checkpoint, run)
  kCommit,          // COMMIT
};
enum class PgPhase { kBefore, kAfter };
std::string_view pg_step_name(PgStep s);

/// Called before and after every step with the batch's checkpoint. A non-ok
/// result is an injected crash: the writer drops its connection right
/// there (the server rolls back what is open, as when a process dies) and
/// returns that status from then on. Tests only.
using PgHook = std::function<Status(PgStep, PgPhase, int64_t checkpoint)>;

struct PostgresSinkHooks {
  PgHook on_step;
};

/// The rows written between two barriers by one writer, kept in the
/// sink's checkpoint state until they are committed.
struct PgBatch {
  int64_t checkpoint = 0;
  std::string run;     // id of the writer instance that wrote it
  int32_t writer = 0;  // progress row: the subtask index that wrote it
  int64_t rows = 0;
  std::string data;  // COPY text rows
  SLUICE_FIELDS(checkpoint, run, writer, rows, data)
};

/// One sink subtask's connection and protocol. Lifecycle: initialize ->
/// open -> (append_row | snapshot | checkpoint_complete)* -> flush (end of
/// input) -> close. Task thread only; owned by its PostgresSinkWriter.
///
/// Waiting for the server never sleeps on the task thread. While the
/// input runs, a commit (or at-least-once batch) that fails on a retriable
/// error stays pending and is retried from a processing-time timer with
/// backoff, so barriers, checkpoints and timers keep flowing: the batches
/// that are not committed yet are part of every checkpoint taken meanwhile.
/// Past max_pending_rows (at-least-once: at once) the sink suspends its
/// input until the server is back. Where the sink must wait — open(), and
/// commits after the end of input — it yields to the task's mailbox
/// between attempts. Past retry_timeout of failures the task fails and the
/// job restarts from its last checkpoint, which holds every uncommitted batch.
class PgWriterCore {
 public:
  PgWriterCore(PostgresSinkConfig config, std::vector<Column> columns, PostgresSinkHooks hooks);
  ~PgWriterCore();
  PgWriterCore(const PgWriterCore&) = delete;
  PgWriterCore& operator=(const PgWriterCore&) = delete;

  Status initialize(const runtime::OperatorRestore& restore);
  /// Connects, creates/checks the tables and commits what the restored
  /// checkpoint holds but the database does not.
  Status open(runtime::OperatorContext& ctx);
  /// One row in COPY text format, ending in '\n'.
  Status append_row(std::string_view row);
  /// End of input: at-least-once commits what it holds; exactly-once leaves
  /// it to the final checkpoint.
  Status flush();
  Result<std::string> snapshot(CheckpointId id);
  Status checkpoint_complete(CheckpointId id);
  Status close();

  bool exactly_once() const { return exactly_once_; }
  uint64_t pending_rows() const;
  /// A failed commit or batch waits for its retry timer.
  bool retrying() const { return retry_scheduled_; }
  /// A completed checkpoint's batch is not committed yet (it waits for its
  /// retry): stop-with-savepoint waits for it (SinkWriter::commit_in_progress).
  bool commit_in_progress() const { return !pending_.empty() && pending_.front().checkpoint <= completed_; }
  const std::string& run_id() const { return run_; }
  const std::string& sink_id() const { return sink_id_; }

 private:
  Status step(PgStep s, PgPhase ph, int64_t checkpoint);
  /// One attempt of `attempt` on a (re)connected connection. A retriable
  /// failure drops the connection, counts as part of the current outage and
  /// comes back as kUnavailable; `expired` then says whether the outage
  /// has lasted retry_timeout.
  Status attempt_once(const std::string& what, const std::function<Status()>& attempt, bool& expired);
  /// Runs `attempt` until it succeeds, fails for good, or retry_timeout
  /// passes, yielding to the task's mailbox between attempts.
  Status with_retry(const std::string& what, const std::function<Status()>& attempt);
  /// Waits `ms` on the task's mailbox (timers and actions keep running).
  Status wait_ms(int64_t ms);
  /// Commits the pending batches of completed checkpoints; on a retriable
  /// failure leaves them pending and schedules a retry.
  Status commit_completed();
  /// At-least-once: commits the rows held; on a retriable failure keeps
  /// them, suspends the input and schedules a retry.
  Status flush_batch();
  void schedule_retry();
  void set_suspended(bool suspended);
  Status connect();
  Status setup_tables();
  Status check_schema();
  Status commit_batch(const PgBatch& b);
  Status write_rows(std::string_view data);
  Status commit_current();
  /// Commits the rows held (at-least-once), waiting for the server.
  Status commit_held();

  PostgresSinkConfig config_;
  std::vector<Column> columns_;
  PostgresSinkHooks hooks_;
  std::string target_;    // quoted, qualified
  std::string progress_;  // quoted, qualified
  std::string copy_target_sql_, copy_stage_sql_, merge_sql_, stage_sql_, delete_sql_;
  std::string sink_id_;
  std::string run_;
  std::string password_;
  int subtask_ = 0;
  int parallelism_ = 1;
  bool exactly_once_ = false;
  std::unique_ptr<PgConnection> conn_;
  runtime::OperatorRestore restore_;
  PgBatch current_;
  std::vector<PgBatch> pending_;  // ascending checkpoints
  bool crashed_ = false;
  Status crash_status_;
  runtime::OperatorContext* ctx_ = nullptr;
  int64_t completed_ = 0;       // newest completed checkpoint
  bool input_ended_ = false;    // flush() at the end of input was called
  bool retry_scheduled_ = false;
  bool waiting_ = false;        // inside with_retry: retry timers stand aside
  uint64_t retry_generation_ = 0;
  int64_t outage_start_ns_ = 0;  // first failure of the current outage; 0: none
  int64_t backoff_ms_ = 100;
  int failures_ = 0;
  bool suspended_ = false;
  prometheus::Counter* rows_metric_ = nullptr;
  prometheus::Counter* committed_metric_ = nullptr;
  prometheus::Counter* skipped_metric_ = nullptr;
  prometheus::Counter* retries_metric_ = nullptr;
  prometheus::Gauge* pending_metric_ = nullptr;
};

/// COPY text format: appends `s` escaped (backslash, tab, newline, CR).
void append_copy_text(std::string& out, std::string_view s);
/// COPY text format of a text[] value: the array literal {"a","b"} (every
/// element quoted, '"' and '\' escaped), then COPY-escaped.
void append_copy_text_array(std::string& out, const std::vector<std::string>& items);
/// Can `s` be stored in a TEXT column (valid UTF-8, no NUL byte)? Empty
/// when it can, else the reason.
std::string text_problem(std::string_view s);

}  // namespace sluice::postgres
