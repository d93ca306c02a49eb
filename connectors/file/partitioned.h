// The partitioned file sink (a data lake's layout): records as NDJSON or
// CSV files under Hive-style folders named from record fields, optionally
// zstd-compressed, rolled by size and age, and published exactly once:
//
//   file:///lake/sessions/?partition=dt:session_start:date,hour:session_start:hour&compression=zstd
//   -> /lake/sessions/dt=2026-12-06/hour=14/part-0-3f2a9c1e-7.ndjson.zst
//
// A file is written under a hidden name (".part-….inprogress", which the
// file source and most readers skip) and renamed to its final name when
// the checkpoint after which it was closed completes (on the writer's
// commit thread, commit_queue.h). At every checkpoint
// the open files are flushed (a zstd frame ends) and their lengths go into
// the checkpoint; they, the files closed since the last checkpoint and new
// directory entries are fsynced in the checkpoint's asynchronous part
// (deferred_sync.h), before it is acknowledged; a restore publishes each file the
// checkpoint knows, cut back to the length it had then, and deletes what
// the failed run wrote after it. So every record is in exactly one
// published file, whatever crashes. The file source reads the published
// files back (directories recursively, .zst transparently) for backfills.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "connectors/file/commit_queue.h"
#include "connectors/file/deferred_sync.h"
#include "connectors/file/zstd_stream.h"
#include "engine/common/json.h"
#include "engine/common/serde.h"
#include "engine/common/status.h"
#include "engine/common/time.h"
#include "engine/runtime/sink.h"

namespace sluice::file {

/// One folder level: NAME=<value of FIELD, formatted>.
struct PartitionSpec {
  enum class Format { kValue, kDate, kMonth, kHour, kMinute };
  std::string name;
  std::string field;
  /// kValue: the field as text; the others: an epoch-millisecond field in
  /// UTC as 2026-12-06 (date), 2026-12 (month), 14 (hour), 05 (minute).
  Format format = Format::kValue;
};

/// `NAME:FIELD[:value|date|month|hour|minute],...` (outermost first), as the
/// sink's and the lake source's `partition=` take it; `what` prefixes errors.
Result<std::vector<PartitionSpec>> parse_partition_specs(const std::string& list, const std::string& what);

/// A parsed partitioned-sink URI. Value type; defaults as written.
struct PartitionedSinkConfig {
  enum class Format { kNdjson, kCsv };
  std::string uri;
  std::string dir;
  std::vector<PartitionSpec> partitions;  // folder levels, outermost first; may be empty
  Format format = Format::kNdjson;
  bool zstd = false;
  int zstd_level = 3;
  int64_t roll_bytes = 128 << 20;        // a file this big (on disk) is closed
  Duration roll_interval{15 * 60'000};   // a file open this long is closed
  int64_t max_open_files = 64;           // beyond: the least recently written file is closed
  std::string prefix = "part";

  /// file:///DIR/?partition=NAME:FIELD[:date|month|hour|minute],...&format=ndjson|csv
  ///   &compression=none|zstd&level=3&roll_size=128MB&roll_interval=15m&max_open_files=64&prefix=part
  static Result<PartitionedSinkConfig> parse(const std::string& uri);
  /// Whether `uri` names a partitioned sink (a file:// URI with a query or
  /// ending in '/') rather than a single NDJSON file.
  static bool matches(const std::string& uri);
  std::string extension() const;
};

/// A partition value as a folder name component: the characters of Hive's
/// escaping (and anything outside [A-Za-z0-9._ -]) as %XX; an empty value
/// is __HIVE_DEFAULT_PARTITION__.
std::string escape_partition_value(std::string_view v);
/// An epoch-millisecond time in a partition format.
std::string format_time_partition(int64_t ms, PartitionSpec::Format f);
/// A CSV cell (RFC 4180): quoted when it holds a comma, quote, CR or LF.
void append_csv_cell(std::string& out, std::string_view v);

/// One file of the sink as its checkpoint state knows it.
struct PartFileState {
  std::string hidden;       // the name while it is written
  std::string target;       // the name it is published under
  int64_t length = 0;       // bytes the checkpoint covers
  bool closed = false;      // complete, waiting for its checkpoint
  int64_t checkpoint = 0;   // closed: the checkpoint that publishes it
  SLUICE_FIELDS(hidden, target, length, closed, checkpoint)
};

/// A writer's checkpoint state.
struct PartitionedWriterState {
  std::string run;  // random id of the writer instance; in its file names
  std::vector<PartFileState> files;
  SLUICE_FIELDS(run, files)
};

/// The type-independent part of one sink subtask: open files per
/// partition, rolling, the checkpoint protocol and recovery. Lifecycle:
/// initialize -> open -> (append | snapshot | checkpoint_complete)* ->
/// flush -> close. Task thread only (its roll timer runs there too); the
/// publishing of completed checkpoints' files runs on its CommitQueue.
class PartitionedWriterCore {
 public:
  PartitionedWriterCore(PartitionedSinkConfig config, std::string csv_header);
  ~PartitionedWriterCore();
  PartitionedWriterCore(const PartitionedWriterCore&) = delete;
  PartitionedWriterCore& operator=(const PartitionedWriterCore&) = delete;

  Status initialize(const runtime::OperatorRestore& restore);
  /// Recovers the restored state (publishes, cuts back, deletes leftovers).
  Status open(runtime::OperatorContext& ctx);
  /// One record (without its newline) into the file of `partition` (a
  /// relative folder such as "dt=2026-12-06/hour=14", or "").
  Status append(const std::string& partition, std::string_view line);
  /// End of input: closes every file (the final checkpoint publishes them;
  /// without checkpointing they are published now).
  Status flush();
  /// At the barrier: ends the open files' frames and captures their lengths
  /// (task thread); the returned asynchronous part fsyncs what the
  /// checkpoint covers and returns the state blob.
  Result<runtime::OperatorStateSnapshot> snapshot(CheckpointId id);
  /// Hands the files the checkpoints up to `id` closed to the commit queue,
  /// which publishes them on its own thread, in order.
  Status checkpoint_complete(CheckpointId id);
  /// Publishing of a completed checkpoint's files still runs.
  bool commit_in_progress() const { return commits_.in_progress(); }
  Status close();

  size_t open_files() const { return open_.size(); }
  const std::string& run_id() const { return run_; }

 private:
  struct OpenFile;
  Result<OpenFile*> file_for(const std::string& partition);
  Status write_out(OpenFile& f, bool end_frame);
  Status roll(const std::string& partition);
  /// Renames a file of a completed checkpoint to its final name (cut back
  /// to the checkpoint's length); idempotent. Any thread.
  static Status publish(const PartFileState& st);
  Status recover(const std::vector<PartitionedWriterState>& states);
  void schedule_roll_check();
  /// The first failed deferred fsync, then the roll timer's error.
  Status take_error();

  PartitionedSinkConfig config_;
  std::string csv_header_;
  std::string run_;
  runtime::OperatorContext* ctx_ = nullptr;
  runtime::OperatorRestore restore_;
  bool exactly_once_ = false;
  int subtask_ = 0;
  int64_t seq_ = 0;
  int64_t use_ = 0;
  std::map<std::string, std::unique_ptr<OpenFile>> open_;  // by partition
  std::vector<PartFileState> pending_;                     // closed, not yet published
  std::deque<PartFileState> committing_;                   // handed to commits_, maybe not published yet
  CommitQueue commits_;
  Status deferred_;  // an error of the roll timer, returned by the next call
  // What the next checkpoint must fsync (exactly-once only); shared with
  // the asynchronous parts of checkpoints, which may outlive the writer.
  std::shared_ptr<DeferredSync> syncs_ = std::make_shared<DeferredSync>();
  bool closed_ = false;
};

namespace detail {

template <class F>
constexpr bool kScalarField = std::is_arithmetic_v<F> || std::is_same_v<F, std::string>;

/// A field as partition text (kValue) or formatted time.
template <class F>
std::string partition_text(const F& f, PartitionSpec::Format fmt) {
  if constexpr (std::is_same_v<F, std::string>) {
    return f;
  } else if constexpr (std::is_same_v<F, bool>) {
    return f ? "true" : "false";
  } else if constexpr (std::is_integral_v<F>) {
    if (fmt != PartitionSpec::Format::kValue) return format_time_partition(static_cast<int64_t>(f), fmt);
    return std::to_string(f);
  } else if constexpr (std::is_floating_point_v<F>) {
    std::string out;
    JsonSerde<F>::write(out, f);
    return out;
  } else {
    return {};
  }
}

}  // namespace detail

/// Checks the partition fields against T: they exist, are scalars, and
/// time formats name integer fields.
template <class T>
Status check_partition_fields(const PartitionedSinkConfig& c) {
  if constexpr (!HasFields<T> || !std::is_default_constructible_v<T>) {
    return Status::invalid_argument("partitioned file sink: records of type " + std::string(type_name<T>()) +
                                    " do not declare SLUICE_FIELDS");
  } else {
    for (const auto& p : c.partitions) {
      bool found = false, ok = false, integral = false;
      std::string names;
      T probe{};
      probe.sluice_visit([&](const char* name, const auto& f) {
        using F = std::decay_t<decltype(f)>;
        names += (names.empty() ? "" : ", ") + std::string(name);
        if (p.field != name) return;
        found = true;
        ok = detail::kScalarField<F>;
        integral = std::is_integral_v<F> && !std::is_same_v<F, bool>;
      });
      if (!found) {
        return Status::invalid_argument("partitioned file sink: partition " + p.name + " names no field '" + p.field +
                                        "' (fields: " + names + ")");
      }
      if (!ok) return Status::invalid_argument("partitioned file sink: field '" + p.field + "' is not a number, bool or string");
      if (p.format != PartitionSpec::Format::kValue && !integral) {
        return Status::invalid_argument("partitioned file sink: time formats need an integer epoch-millisecond field; '" +
                                        p.field + "' is not one");
      }
    }
    return Status::ok();
  }
}

/// Encodes records of T and hands them to the core. Task thread only.
template <class T>
class PartitionedFileWriter final : public runtime::SinkWriter<T> {
 public:
  PartitionedFileWriter(const PartitionedSinkConfig& c) : c_(c), core_(c, csv_header()) {}

  Status initialize_state(const runtime::OperatorRestore& restore) override { return core_.initialize(restore); }
  Status open(runtime::OperatorContext& ctx) override { return core_.open(ctx); }
  Status write(const T& v, EventTime) override {
    partition_.clear();
    for (const auto& p : c_.partitions) {
      v.sluice_visit([&](const char* name, const auto& f) {
        if (p.field != name) return;
        if (!partition_.empty()) partition_.push_back('/');
        partition_ += p.name;
        partition_.push_back('=');
        partition_ += escape_partition_value(detail::partition_text(f, p.format));
      });
    }
    line_.clear();
    if (c_.format == PartitionedSinkConfig::Format::kNdjson) {
      JsonSerde<T>::write(line_, v);
    } else {
      bool first = true;
      v.sluice_visit([&](const char*, const auto& f) {
        using F = std::decay_t<decltype(f)>;
        if (!first) line_.push_back(',');
        first = false;
        if constexpr (std::is_same_v<F, std::string>) {
          append_csv_cell(line_, f);
        } else if constexpr (std::is_arithmetic_v<F>) {
          JsonSerde<F>::write(line_, f);
        } else {
          cell_.clear();
          JsonSerde<F>::write(cell_, f);  // nested values as JSON text
          append_csv_cell(line_, cell_);
        }
      });
    }
    return core_.append(partition_, line_);
  }
  Status flush() override { return core_.flush(); }
  Result<std::string> snapshot_state(CheckpointId id) override {
    return runtime::complete_inline(core_.snapshot(id));
  }
  Result<runtime::OperatorStateSnapshot> snapshot_state_async(CheckpointId id) override {
    return core_.snapshot(id);
  }
  Status notify_checkpoint_complete(CheckpointId id) override { return core_.checkpoint_complete(id); }
  bool commit_in_progress() const override { return core_.commit_in_progress(); }
  Status close() override { return core_.close(); }

 private:
  std::string csv_header() const {
    if (c_.format != PartitionedSinkConfig::Format::kCsv) return {};
    std::string h;
    T probe{};
    probe.sluice_visit([&](const char* name, const auto&) {
      if (!h.empty()) h.push_back(',');
      append_csv_cell(h, name);
    });
    return h;
  }

  PartitionedSinkConfig c_;
  PartitionedWriterCore core_;
  std::string partition_, line_, cell_;
};

/// The partitioned file sink of T (immutable description).
template <class T>
class PartitionedFileSink final : public runtime::Sink<T> {
 public:
  static Result<std::shared_ptr<const PartitionedFileSink>> from_uri(const std::string& uri) {
    SLUICE_ASSIGN_OR_RETURN(PartitionedSinkConfig c, PartitionedSinkConfig::parse(uri));
    SLUICE_RETURN_IF_ERROR(check_partition_fields<T>(c));
    return std::shared_ptr<const PartitionedFileSink>(new PartitionedFileSink(std::move(c)));
  }
  std::string description() const override { return c_.uri; }
  std::unique_ptr<runtime::SinkWriter<T>> create_writer() const override {
    return std::make_unique<PartitionedFileWriter<T>>(c_);
  }

 private:
  explicit PartitionedFileSink(PartitionedSinkConfig c) : c_(std::move(c)) {}
  PartitionedSinkConfig c_;
};

}  // namespace sluice::file
