// NDJSON files: a bounded source of JSON records, one per line, and sinks
// that write records as JSON lines (to a file, stdout or stderr).
//
// Source: `file:///path` is a file or a directory of files. Subtask i of p
// reads the i-th p-th share of the bytes (whole lines). A line that is not
// valid JSON for T becomes a dead letter with the reason, path, line number
// and byte offset. Blank lines are skipped. Checkpointed position: the
// next line of the subtask's share.
#pragma once

#include <simdjson.h>

#include <cstdio>
#include <memory>
#include <string>

#include "connectors/file/file_splits.h"
#include "connectors/file/line_reader.h"
#include "engine/common/json.h"
#include "engine/common/json_read.h"
#include "engine/runtime/sink.h"
#include "engine/runtime/source.h"

namespace sluice::file {

/// Checkpoint state of one NDJSON reader: its share and where it stands.
struct NdjsonReaderState {
  int32_t share = 0;
  int32_t shares = 1;
  LinePosition position;
  SLUICE_FIELDS(share, shares, position)
};

/// How many bytes of a malformed line a dead letter keeps.
inline constexpr size_t kMaxDeadLetterPayload = 64 * 1024;

template <class T>
class NdjsonReader final : public runtime::SourceReader<T> {
 public:
  explicit NdjsonReader(std::string path) : path_(std::move(path)) {}

  Status restore_state(const runtime::OperatorRestore& restore) override {
    for (const auto& blob : restore.states) {
      if (blob.empty()) continue;
      ByteReader r(blob);
      uint64_t n;
      if (!r.get_varint(n)) return Status::corruption("file source state: bad count");
      for (uint64_t i = 0; i < n; ++i) {
        NdjsonReaderState s;
        if (!Serde<NdjsonReaderState>::read(r, s)) {
          return Status::corruption("file source state: truncated");
        }
        restored_.push_back(s);
      }
    }
    is_restored_ = restore.restored;
    return Status::ok();
  }

  Status open(runtime::OperatorContext& ctx, runtime::SourceOutput<T>& out) override {
    SLUICE_ASSIGN_OR_RETURN(files_, list_input_files(path_));
    const int me = ctx.info().subtask, p = ctx.info().parallelism;
    if (is_restored_) {
      // Shares of the previous run are dealt round-robin to this run's
      // subtasks, each resuming where it stopped.
      for (size_t i = 0; i < restored_.size(); ++i)
        if (static_cast<int>(i % p) == me) shares_.push_back(restored_[i]);
    } else {
      NdjsonReaderState s;
      s.share = me;
      s.shares = p;
      shares_.push_back(s);
    }
    out.set_split_count(1);
    return start_share();
  }

  Result<runtime::PollStatus> poll_next(runtime::SourceOutput<T>& out) override {
    if (current_ >= shares_.size()) {
      out.split_finished(0);
      return runtime::PollStatus::kEndOfInput;
    }
    file::Line line;
    for (int n = 0; n < kBatch; ++n) {
      SLUICE_ASSIGN_OR_RETURN(bool more, reader_->next(line));
      if (!more) {
        shares_[current_].position = reader_->position();
        ++current_;
        if (current_ >= shares_.size()) {
          out.split_finished(0);
          return runtime::PollStatus::kEndOfInput;
        }
        SLUICE_RETURN_IF_ERROR(start_share());
        return runtime::PollStatus::kMoreAvailable;
      }
      if (is_blank(line)) continue;
      std::string err = parser_.parse_padded(line.data, line.size, line.readable, value_);
      if (err.empty()) {
        out.collect(value_, 0);
      } else {
        DeadLetter dl;
        dl.reason = std::move(err);
        dl.origin = *line.path;
        dl.line = line.line_no;
        dl.offset = line.offset;
        dl.payload.assign(line.data, std::min(line.size, kMaxDeadLetterPayload));
        out.dead_letter(std::move(dl));
      }
    }
    return runtime::PollStatus::kMoreAvailable;
  }

  Result<std::string> snapshot_state(CheckpointId) override {
    if (current_ < shares_.size()) shares_[current_].position = reader_->position();
    std::string out;
    ByteWriter w(out);
    w.put_varint(shares_.size());
    for (const auto& s : shares_) Serde<NdjsonReaderState>::write(w, s);
    return out;
  }

 private:
  static constexpr int kBatch = 1024;

  Status start_share() {
    if (current_ >= shares_.size()) return Status::ok();
    const NdjsonReaderState& s = shares_[current_];
    reader_ = std::make_unique<LineReader>(files_, split_share(files_, s.share, s.shares),
                                           simdjson::SIMDJSON_PADDING);
    reader_->seek(s.position);
    return Status::ok();
  }
  static bool is_blank(const file::Line& l) {
    for (size_t i = 0; i < l.size; ++i)
      if (l.data[i] != ' ' && l.data[i] != '\t') return false;
    return true;
  }

  std::string path_;
  std::vector<FileInfo> files_;
  std::vector<NdjsonReaderState> restored_;
  bool is_restored_ = false;
  std::vector<NdjsonReaderState> shares_;
  size_t current_ = 0;
  std::unique_ptr<LineReader> reader_;
  JsonParser parser_;
  T value_{};
};

/// A bounded source of NDJSON records of type T (SLUICE_FIELDS struct).
template <class T>
class NdjsonFileSource final : public runtime::Source<T> {
 public:
  explicit NdjsonFileSource(std::string path) : path_(std::move(path)) {}
  std::string description() const override { return "file://" + path_; }
  bool bounded() const override { return true; }
  std::unique_ptr<runtime::SourceReader<T>> create_reader() const override {
    return std::make_unique<NdjsonReader<T>>(path_);
  }

 private:
  std::string path_;
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
  /// Writes the buffer out; fsync if `durable`.
  Status flush(bool durable = false);
  const std::string& path() const { return path_; }
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

template <class T>
class NdjsonWriter final : public runtime::SinkWriter<T> {
 public:
  NdjsonWriter(std::string path, bool to_stdout, bool to_stderr)
      : path_(std::move(path)), stdout_(to_stdout), stderr_(to_stderr) {}
  Status open(runtime::OperatorContext& ctx) override {
    if (stdout_) {
      out_ = LineWriter::wrap(stdout);
    } else if (stderr_) {
      out_ = LineWriter::wrap(stderr);
    } else {
      SLUICE_ASSIGN_OR_RETURN(
          out_, LineWriter::open_file(subtask_path(path_, ctx.info().subtask, ctx.info().parallelism),
                                      /*truncate=*/true));
    }
    return Status::ok();
  }
  Status write(const T& v, EventTime) override {
    line_.clear();
    JsonSerde<T>::write(line_, v);
    out_->append(line_);
    return out_->take_error();
  }
  Status flush() override { return out_ ? out_->flush() : Status::ok(); }
  Status close() override { return flush(); }

 private:
  std::string path_;
  bool stdout_, stderr_;
  std::unique_ptr<LineWriter> out_;
  std::string line_;
};

/// Writes records as JSON lines to a file (one per sink subtask), stdout or
/// stderr.
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
