// NDJSON files: a bounded source of JSON records, one per line, and sinks
// that write records as JSON lines (to a file, stdout or stderr).
//
// Source: `file:///path` is a file or a directory of files; with
// `partition=` a data lake's layout read back for a time range (lake.h).
// Subtask i of p reads the i-th p-th share of the bytes (whole lines). A
// line that is not valid JSON for T becomes a dead letter with the reason,
// path, line number and byte offset. Blank lines are skipped. Checkpointed:
// each share's files and byte ranges (listed once, when the job started)
// and the next line to read.
#pragma once

#include <simdjson.h>

#include <cstdio>
#include <deque>
#include <memory>
#include <string>

#include "connectors/file/commit_queue.h"
#include "connectors/file/deferred_sync.h"
#include "connectors/file/file_splits.h"
#include "connectors/file/lake.h"
#include "connectors/file/line_reader.h"
#include "engine/common/clock.h"
#include "engine/common/json.h"
#include "engine/common/json_read.h"
#include "engine/runtime/sink.h"
#include "engine/runtime/source.h"

namespace sluice::file {

/// Checkpoint state of one share of an NDJSON source: the files and byte
/// ranges it reads (ranges index `files`) and where it stands. The files
/// are those listed when the job started: a restore reads the same ones.
struct NdjsonReaderState {
  int32_t share = 0;
  int32_t shares = 1;
  LinePosition position;
  std::vector<FileInfo> files;
  std::vector<FileRange> ranges;
  SLUICE_FIELDS(share, shares, position, files, ranges)
};

/// The state before files were kept (read on restore: the input is listed
/// again, as it was then).
struct NdjsonReaderStateV1 {
  int32_t share = 0;
  int32_t shares = 1;
  LinePosition position;
  SLUICE_FIELDS(share, shares, position)
};

/// Leads a state blob of NdjsonReaderState; a V1 blob leads with its
/// count of shares, which is never this large.
inline constexpr uint64_t kNdjsonStateV2 = 0x4e444a32;

/// Share `share` of `shares` over `files`, keeping only the files it reads.
NdjsonReaderState make_share(const std::vector<FileInfo>& files, int share, int shares);

/// How many bytes of a malformed line a dead letter keeps.
inline constexpr size_t kMaxDeadLetterPayload = 64 * 1024;

/// Reads one subtask's shares of an NDJSON source. Task thread only;
/// created by NdjsonFileSource per subtask.
template <class T>
class NdjsonReader final : public runtime::SourceReader<T> {
 public:
  /// `time_field`: index of the field `config.lake` selects records by
  /// (lake_time_field_index), or -1. Lines longer than `max_record_bytes`
  /// become dead letters (their first bytes kept), without being read into
  /// memory whole.
  /// Strings longer than `max_field_bytes` make the line a dead letter too.
  NdjsonReader(FileSourceConfig config, int time_field)
      : c_(std::move(config)),
        time_field_(time_field),
        parser_(JsonLimits{c_.max_field_bytes, "source parameter max-field-bytes"}, /*borrow=*/true) {}

  Status restore_state(const runtime::OperatorRestore& restore) override {
    for (const auto& blob : restore.states) {
      if (blob.empty()) continue;
      ByteReader r(blob);
      uint64_t n;
      if (!r.get_varint(n)) return Status::corruption("file source state: bad count");
      const bool v2 = n == kNdjsonStateV2;
      if (v2 && !r.get_varint(n)) return Status::corruption("file source state: bad count");
      for (uint64_t i = 0; i < n; ++i) {
        NdjsonReaderState s;
        if (v2) {
          if (!Serde<NdjsonReaderState>::read(r, s)) return Status::corruption("file source state: truncated");
        } else {
          NdjsonReaderStateV1 old;
          if (!Serde<NdjsonReaderStateV1>::read(r, old)) return Status::corruption("file source state: truncated");
          s.share = old.share;
          s.shares = old.shares;
          s.position = old.position;
          relist_ = true;
        }
        restored_.push_back(std::move(s));
      }
    }
    is_restored_ = restore.restored;
    return Status::ok();
  }

  Status open(runtime::OperatorContext& ctx, runtime::SourceOutput<T>& out) override {
    const int me = ctx.info().subtask, p = ctx.info().parallelism;
    if (is_restored_) {
      // Shares of the previous run are dealt round-robin to this run's
      // subtasks, each resuming where it stopped.
      for (size_t i = 0; i < restored_.size(); ++i)
        if (static_cast<int>(i % p) == me) shares_.push_back(std::move(restored_[i]));
      restored_.clear();
    }
    if (!is_restored_ || relist_) {
      SLUICE_ASSIGN_OR_RETURN(auto files, c_.lake ? list_lake_files(c_.path, *c_.lake) : list_input_files(c_.path));
      if (!is_restored_) shares_.push_back(make_share(files, me, p));
      for (auto& s : shares_) {
        if (!s.files.empty() || !s.ranges.empty()) continue;
        LinePosition pos = s.position;
        s = make_share(files, s.share, s.shares);
        s.position = pos;
      }
    }
    out.set_split_count(1);
    rate_per_subtask_ = c_.rate / p;
    start_ns_ = monotonic_ns();
    return start_share();
  }

  Result<runtime::PollStatus> poll_next(runtime::SourceOutput<T>& out) override {
    if (current_ >= shares_.size()) {
      out.split_finished(0);
      return runtime::PollStatus::kEndOfInput;
    }
    int batch = kBatch;
    if (rate_per_subtask_ > 0) {
      double allowed = static_cast<double>(monotonic_ns() - start_ns_) / 1e9 * rate_per_subtask_;
      double budget = allowed - static_cast<double>(lines_);
      if (budget < 1) return runtime::PollStatus::kNothingAvailable;
      batch = static_cast<int>(std::min<double>(budget, kBatch));
    }
    file::Line line;
    for (int n = 0; n < batch; ++n, ++lines_) {
      SLUICE_ASSIGN_OR_RETURN(bool more, reader_->next(line));
      if (!more) {
        SLUICE_ASSIGN_OR_RETURN(shares_[current_].position, reader_->position());
        ++current_;
        if (current_ >= shares_.size()) {
          out.split_finished(0);
          return runtime::PollStatus::kEndOfInput;
        }
        SLUICE_RETURN_IF_ERROR(start_share());
        return runtime::PollStatus::kMoreAvailable;
      }
      if (line.oversize) {
        SLUICE_RETURN_IF_ERROR(reader_->resolve_line_no(line));
        DeadLetter dl;
        dl.reason = "record of " + std::to_string(line.full_size) + " bytes exceeds the limit of " +
                    std::to_string(c_.max_record_bytes) + " bytes (source parameter max-record-bytes)";
        dl.origin = *line.path;
        dl.line = line.line_no;
        dl.offset = line.offset;
        dl.set_payload(std::string_view(line.data, line.size), kMaxDeadLetterPayload);
        dl.payload_bytes = static_cast<int64_t>(line.full_size);
        out.dead_letter(std::move(dl));
        continue;
      }
      if (is_blank(line)) continue;
      std::string err = parser_.parse_padded(line.data, line.size, line.readable, value_);
      if (err.empty()) {
        if (time_field_ >= 0) {
          // A record outside the selected time range is not part of this input.
          const int64_t t = lake_time_of(value_, time_field_);
          if (t < c_.lake->from_ms || t >= c_.lake->to_ms) continue;
        }
        out.collect(value_, 0);
      } else {
        SLUICE_RETURN_IF_ERROR(reader_->resolve_line_no(line));
        DeadLetter dl;
        dl.reason = std::move(err);
        dl.origin = *line.path;
        dl.line = line.line_no;
        dl.offset = line.offset;
        dl.set_payload(std::string_view(line.data, line.size), kMaxDeadLetterPayload);
        out.dead_letter(std::move(dl));
      }
    }
    return runtime::PollStatus::kMoreAvailable;
  }

  Result<std::string> snapshot_state(CheckpointId) override {
    if (current_ < shares_.size()) {
      SLUICE_ASSIGN_OR_RETURN(shares_[current_].position, reader_->position());
    }
    std::string out;
    ByteWriter w(out);
    w.put_varint(kNdjsonStateV2);
    w.put_varint(shares_.size());
    for (const auto& s : shares_) Serde<NdjsonReaderState>::write(w, s);
    return out;
  }

 private:
  static constexpr int kBatch = 1024;
  static constexpr size_t kChunkBytes = size_t{256} << 10;

  Status start_share() {
    if (current_ >= shares_.size()) return Status::ok();
    const NdjsonReaderState& s = shares_[current_];
    // 256 KiB chunks: a chunk stays in the core's L2 cache while its lines are parsed.
    reader_ = std::make_unique<LineReader>(s.files, s.ranges, simdjson::SIMDJSON_PADDING, kChunkBytes,
                                           c_.max_record_bytes);
    reader_->seek(s.position);
    return Status::ok();
  }
  static bool is_blank(const file::Line& l) {
    for (size_t i = 0; i < l.size; ++i)
      if (l.data[i] != ' ' && l.data[i] != '\t') return false;
    return true;
  }

  FileSourceConfig c_;
  int time_field_ = -1;
  double rate_per_subtask_ = 0;
  int64_t start_ns_ = 0;
  int64_t lines_ = 0;
  std::vector<NdjsonReaderState> restored_;
  bool is_restored_ = false;
  bool relist_ = false;  // restored from V1 state: list the input again
  std::vector<NdjsonReaderState> shares_;
  size_t current_ = 0;
  std::unique_ptr<LineReader> reader_;
  // Borrows: Text fields of value_ point into the line (or the parser's
  // buffer) until the next line is read; the chained operators process
  // value_ within collect(), and whatever keeps it copies it.
  JsonParser parser_;
  T value_{};
};

/// A bounded source of NDJSON records of type T (SLUICE_FIELDS struct):
/// a file, a directory tree, or a data lake's partitions in a time range.
/// Immutable description; creates one NdjsonReader per subtask.
template <class T>
class NdjsonFileSource final : public runtime::Source<T> {
 public:
  /// A file source URI (FileSourceConfig::parse); checks the lake's time field against T.
  static Result<std::shared_ptr<const NdjsonFileSource>> from_uri(const std::string& uri) {
    SLUICE_ASSIGN_OR_RETURN(FileSourceConfig c, FileSourceConfig::parse(uri));
    int time_field = -1;
    if (c.lake) {
      SLUICE_ASSIGN_OR_RETURN(time_field, lake_time_field_index<T>(*c.lake));
    }
    return std::shared_ptr<const NdjsonFileSource>(new NdjsonFileSource(std::move(c), time_field));
  }
  /// `rate`: lines per second over all subtasks (replay at a pace); 0 = as fast as possible.
  /// `max_record_bytes`: longer lines are dead letters. Default kDefaultMaxRecordBytes.
  /// `max_field_bytes`: lines with a longer string are dead letters. Default kDefaultMaxFieldBytes.
  explicit NdjsonFileSource(std::string path, double rate = 0, size_t max_record_bytes = kDefaultMaxRecordBytes,
                            size_t max_field_bytes = kDefaultMaxFieldBytes) {
    c_.path = std::move(path);
    c_.rate = rate;
    c_.max_record_bytes = max_record_bytes;
    c_.max_field_bytes = max_field_bytes;
  }
  std::string description() const override {
    if (c_.lake) return c_.uri;
    std::string q;
    if (c_.rate > 0) q += "rate=" + std::to_string(static_cast<int64_t>(c_.rate));
    if (c_.max_record_bytes != kDefaultMaxRecordBytes) {
      q += (q.empty() ? "" : "&") + std::string("max-record-bytes=") + std::to_string(c_.max_record_bytes);
    }
    if (c_.max_field_bytes != kDefaultMaxFieldBytes) {
      q += (q.empty() ? "" : "&") + std::string("max-field-bytes=") + std::to_string(c_.max_field_bytes);
    }
    return "file://" + c_.path + (q.empty() ? "" : "?" + q);
  }
  bool bounded() const override { return true; }
  std::unique_ptr<runtime::SourceReader<T>> create_reader() const override {
    return std::make_unique<NdjsonReader<T>>(c_, time_field_);
  }
  Status check_input() const override {
    return (c_.lake ? list_lake_files(c_.path, *c_.lake) : list_input_files(c_.path)).status();
  }

 private:
  NdjsonFileSource(FileSourceConfig c, int time_field) : c_(std::move(c)), time_field_(time_field) {}
  FileSourceConfig c_;
  int time_field_ = -1;
};

// ---------------------------------------------------------------------------

/// Appends lines to a FILE*, buffering in memory.
class LineWriter {
 public:
  /// Opens `path` for appending (truncating first if `truncate`).
  static Result<std::unique_ptr<LineWriter>> open_file(const std::string& path, bool truncate);
  /// Wraps stdout/stderr (not closed).
  static std::unique_ptr<LineWriter> wrap(std::FILE* f);
  ~LineWriter();

  void append(std::string_view line) {
    buf_.append(line);
    buf_.push_back('\n');
    if (buf_.size() >= (1 << 20)) pending_error_ = flush();
  }
  /// Appends bytes as they are (no newline added).
  void append_raw(std::string_view bytes) {
    buf_.append(bytes);
    if (buf_.size() >= (1 << 20)) pending_error_ = flush();
  }
  /// Writes the buffer out; fsync if `durable`.
  Status flush(bool durable = false);
  const std::string& path() const { return path_; }
  /// The file's descriptor (after flush(): everything appended is in it).
  int fd() const { return ::fileno(f_); }
  Status take_error() { return std::exchange(pending_error_, Status::ok()); }

 private:
  LineWriter(std::FILE* f, std::string path, bool owned) : f_(f), path_(std::move(path)), owned_(owned) {}
  std::FILE* f_;
  std::string path_;
  bool owned_;
  std::string buf_;
  Status pending_error_;
};

/// Path of subtask `subtask`'s file: the path itself when there is one
/// writer, else "<stem>-<subtask><ext>".
std::string subtask_path(const std::string& path, int subtask, int parallelism);

/// A part of a file sink's output written between two barriers, waiting
/// for its checkpoint to complete before it is appended to `target`.
struct PendingPart {
  int64_t checkpoint = 0;
  std::string part;    // the part file
  std::string target;  // the output file it belongs to
  SLUICE_FIELDS(checkpoint, part, target)
};

/// Exactly-once output to one file. Records go to a hidden in-progress
/// file; at barrier N it becomes part N (pre-commit: renamed at the barrier,
/// fsynced in the checkpoint's asynchronous part, deferred_sync.h); when N
/// completes the part is appended to the target and a commit marker next
/// to the target records (N, new length) atomically. Recovery truncates the
/// target to the marker's length and commits the restored checkpoint's
/// parts that the marker does not cover, so a crash at any point neither
/// loses nor repeats output. Task thread only, but for commit(), which the
/// writer's commit queue runs on its own thread (commit_queue.h).
class TransactionalFile {
 public:
  explicit TransactionalFile(std::string target);
  /// Fresh start: empties the target and removes leftovers of earlier runs.
  Status start_fresh();
  /// Restore: cuts the target back to its last commit and commits `parts`
  /// (in checkpoint order) that are not committed yet; discards the rest.
  Status recover(const std::vector<PendingPart>& parts);
  void append(std::string_view line);
  /// Pre-commit at barrier `id`; adds the part (if any) to `pending` and
  /// its fsync (and its directory's) to `syncs`.
  Status pre_commit(int64_t id, std::vector<PendingPart>& pending, DeferredSync& syncs);
  /// Commits one part (idempotent).
  static Status commit(const PendingPart& p);
  Status close();

 private:
  Status open_in_progress();
  std::string target_;
  std::string in_progress_;
  std::unique_ptr<LineWriter> out_;
  bool empty_ = true;
};

/// One subtask of an NDJSON sink: a TransactionalFile with checkpointing
/// (its commits on a CommitQueue's thread), else appends to the file,
/// stdout or stderr. Created by NdjsonSink per subtask; task thread.
template <class T>
class NdjsonWriter final : public runtime::SinkWriter<T> {
 public:
  NdjsonWriter(std::string path, bool to_stdout, bool to_stderr)
      : path_(std::move(path)), stdout_(to_stdout), stderr_(to_stderr) {}

  Status initialize_state(const runtime::OperatorRestore& restore) override {
    restore_ = restore;
    return Status::ok();
  }

  Status open(runtime::OperatorContext& ctx) override {
    if (stdout_) {
      out_ = LineWriter::wrap(stdout);
      return Status::ok();
    }
    if (stderr_) {
      out_ = LineWriter::wrap(stderr);
      return Status::ok();
    }
    std::string target = subtask_path(path_, ctx.info().subtask, ctx.info().parallelism);
    if (!ctx.job_config().contains("checkpoint.dir")) {
      SLUICE_ASSIGN_OR_RETURN(out_, LineWriter::open_file(target, /*truncate=*/true));
      return Status::ok();
    }
    txn_ = std::make_unique<TransactionalFile>(target);
    SLUICE_RETURN_IF_ERROR(commits_.open(ctx));
    if (!restore_.restored) return txn_->start_fresh();
    // Parts of old subtask j are committed by new subtask j % parallelism.
    std::vector<PendingPart> mine;
    for (size_t j = 0; j < restore_.states.size(); ++j) {
      if (static_cast<int>(j % ctx.info().parallelism) != ctx.info().subtask) continue;
      if (restore_.states[j].empty()) continue;
      std::vector<PendingPart> parts;
      SLUICE_RETURN_IF_ERROR(deserialize(restore_.states[j], parts).with_context("file sink state"));
      mine.insert(mine.end(), parts.begin(), parts.end());
    }
    return txn_->recover(mine);
  }

  Status write(const T& v, EventTime) override {
    line_.clear();
    JsonSerde<T>::write(line_, v);
    if (txn_) {
      if (syncs_->failed() || commits_.failed()) return take_error();
      txn_->append(line_);
      return Status::ok();
    }
    out_->append(line_);
    return out_->take_error();
  }
  Status flush() override {
    if (txn_) return Status::ok();  // made durable by the (final) checkpoint
    return out_ ? out_->flush() : Status::ok();
  }
  Result<std::string> snapshot_state(CheckpointId id) override {
    return runtime::complete_inline(snapshot_state_async(id));
  }
  // The barrier renames the in-progress file; the fsync of the part runs in
  // the checkpoint's asynchronous part, which the acknowledgement waits for.
  Result<runtime::OperatorStateSnapshot> snapshot_state_async(CheckpointId id) override {
    runtime::OperatorStateSnapshot out;
    if (!txn_) {
      SLUICE_RETURN_IF_ERROR(flush());
      return out;
    }
    SLUICE_RETURN_IF_ERROR(take_error());
    SLUICE_RETURN_IF_ERROR(txn_->pre_commit(id.value(), pending_, *syncs_));
    // Parts whose commit is not done yet are in the state as well: a
    // restore commits them (again: TransactionalFile::commit is idempotent).
    const int64_t done = commits_.committed_through();
    while (!committing_.empty() && committing_.front().checkpoint <= done) committing_.pop_front();
    std::vector<PendingPart> parts(committing_.begin(), committing_.end());
    parts.insert(parts.end(), pending_.begin(), pending_.end());
    out.state = serialize(parts);
    const uint64_t batch = syncs_->seal();
    out.async = [syncs = syncs_, batch, blob = out.state]() -> Result<std::string> {
      SLUICE_RETURN_IF_ERROR(syncs->sync_through(batch));
      return blob;
    };
    return out;
  }
  // The parts of the checkpoints up to `id` are appended to the target on
  // the commit queue's thread, in order; they stay in the state until done.
  Status notify_checkpoint_complete(CheckpointId id) override {
    if (!txn_) return Status::ok();
    SLUICE_RETURN_IF_ERROR(take_error());
    std::vector<PendingPart> parts;
    while (!pending_.empty() && pending_.front().checkpoint <= id.value()) {
      parts.push_back(pending_.front());
      committing_.push_back(std::move(pending_.front()));
      pending_.erase(pending_.begin());
    }
    if (parts.empty()) return Status::ok();
    commits_.submit(id.value(), [parts = std::move(parts)]() -> Status {
      for (const auto& p : parts) SLUICE_RETURN_IF_ERROR(TransactionalFile::commit(p));
      return Status::ok();
    });
    return Status::ok();
  }
  bool commit_in_progress() const override { return commits_.in_progress(); }
  Status close() override {
    commits_.stop();  // after the commit running now; a restore commits the rest
    if (txn_) return txn_->close();
    return flush();
  }

 private:
  /// A failed deferred fsync or commit.
  Status take_error() const {
    if (syncs_->failed()) return syncs_->error().with_context("file sink " + path_);
    if (commits_.failed()) return commits_.error();
    return Status::ok();
  }

  std::string path_;
  bool stdout_, stderr_;
  runtime::OperatorRestore restore_;
  std::unique_ptr<LineWriter> out_;
  std::unique_ptr<TransactionalFile> txn_;
  std::vector<PendingPart> pending_;      // pre-committed, checkpoint not complete yet
  std::deque<PendingPart> committing_;    // handed to commits_, maybe not done yet
  CommitQueue commits_{"file sink " + path_};
  // Parts to fsync; shared with the asynchronous parts of checkpoints,
  // which may outlive the writer.
  std::shared_ptr<DeferredSync> syncs_ = std::make_shared<DeferredSync>();
  std::string line_;
};

/// Writes records as JSON lines to a file (one per sink subtask), stdout or
/// stderr. With checkpointing, file output is exactly-once
/// (TransactionalFile); stdout/stderr are at-least-once.
template <class T>
class NdjsonSink final : public runtime::Sink<T> {
 public:
  static std::shared_ptr<const NdjsonSink> to_file(std::string path) {
    return std::make_shared<NdjsonSink>(std::move(path), false, false);
  }
  static std::shared_ptr<const NdjsonSink> to_stdout() {
    return std::make_shared<NdjsonSink>("", true, false);
  }
  static std::shared_ptr<const NdjsonSink> to_stderr() {
    return std::make_shared<NdjsonSink>("", false, true);
  }
  NdjsonSink(std::string path, bool to_stdout, bool to_stderr)
      : path_(std::move(path)), stdout_(to_stdout), stderr_(to_stderr) {}
  std::string description() const override {
    return stdout_ ? "stdout:" : stderr_ ? "stderr:" : "file://" + path_;
  }
  std::unique_ptr<runtime::SinkWriter<T>> create_writer() const override {
    return std::make_unique<NdjsonWriter<T>>(path_, stdout_, stderr_);
  }

 private:
  std::string path_;
  bool stdout_, stderr_;
};

}  // namespace sluice::file
