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
  const std::string& run_id() const { return run_; }
  const std::string& sink_id() const { return sink_id_; }

 private:
  Status step(PgStep s, PgPhase ph, int64_t checkpoint);
  /// Runs `attempt` until it succeeds, fails for good, or retry_timeout
  /// passes; (re)connects first and after every retriable failure.
  Status with_retry(const std::string& what, const std::function<Status()>& attempt);
  Status connect();
  Status setup_tables();
  Status check_schema();
  Status commit_batch(const PgBatch& b);
  Status write_rows(std::string_view data);

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
