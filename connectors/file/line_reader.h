// LineReader: reads the lines of a subtask's file ranges in big chunks,
// keeping each line in a buffer with the padding simdjson needs after it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "connectors/file/file_splits.h"
#include "connectors/file/zstd_stream.h"
#include "engine/common/serde.h"
#include "engine/common/status.h"

namespace sluice::file {

/// One line, valid until the next call to next().
struct Line {
  const char* data = nullptr;
  size_t size = 0;      // without the line break
  size_t readable = 0;  // bytes readable from data (>= size + padding)
  /// 1-based, within its file — once the reader knows how many lines come
  /// before its range (see LineReader::resolve_line_no).
  int64_t line_no = 0;
  int64_t offset = 0;   // byte offset of the line in its file
  const std::string* path = nullptr;
  /// The line is longer than the reader's limit: data/size hold only its
  /// first bytes (at least min(limit, kOversizeKeep), at most
  /// kOversizeKeep), full_size its length. The rest was skipped without
  /// being buffered.
  bool oversize = false;
  size_t full_size = 0;
};

/// Bytes of an over-long line kept for its dead letter.
inline constexpr size_t kOversizeKeep = 64 * 1024;

/// Where reading resumes: range index, byte offset of the next line and
/// its line number. Part of the source's checkpoint state.
struct LinePosition {
  int32_t range = 0;
  int64_t offset = -1;  // -1: at the start of the range (not yet aligned to a line)
  int64_t line_no = 0;
  SLUICE_FIELDS(range, offset, line_no)
};

/// Used by one source reader on its task thread.
class LineReader {
 public:
  /// `padding`: bytes that must be readable after every line. Lines longer
  /// than `max_line_bytes` come back as `oversize` (memory stays bounded by
  /// about twice the limit, whatever the file holds).
  LineReader(std::vector<FileInfo> files, std::vector<FileRange> ranges, size_t padding,
             size_t chunk_bytes = 4 << 20, size_t max_line_bytes = 4 << 20);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  /// Continues from `pos` (restore).
  void seek(const LinePosition& pos) {
    pos_ = pos;
    opened_ = false;
    lines_before_pending_ = false;
  }
  /// The next line; false at the end of the last range. Its line_no counts
  /// from the range's first line until resolve_line_no() is called: a range
  /// that starts inside a file does not read the file's earlier bytes to
  /// count their lines unless a line number is asked for (a dead letter, a
  /// checkpoint's position).
  Result<bool> next(Line& line);
  /// Makes `line` (the last one next() returned) and every later line carry
  /// its line number within its file; counts the lines before the range
  /// once.
  Status resolve_line_no(Line& line);
  /// Where the next call to next() starts (counts the lines before the
  /// range, once, if not done yet).
  Result<LinePosition> position();
  const std::vector<FileRange>& ranges() const { return ranges_; }

 private:
  Status open_range();
  Status count_lines_before();  // makes pos_.line_no absolute
  Status fill();  // reads more bytes into the buffer (keeps the unread tail)
  /// The unread tail is a line over the limit: keeps its start, skips the
  /// rest up to its line break without buffering it.
  Result<bool> skip_long_line(Line& line);
  void close_file();
  // Reads the next bytes of the open file at buf_offset_ + end_ into dst.
  Result<size_t> read_more(char* dst, size_t room);

  std::vector<FileInfo> files_;
  std::vector<FileRange> ranges_;
  size_t padding_;
  size_t chunk_;
  size_t max_line_;
  std::string oversize_;  // the kept start of the last over-long line (plus padding)
  LinePosition pos_;
  bool opened_ = false;
  // pos_.line_no counts from the range's first line (at lines_before_at_):
  // the lines before it are not counted yet.
  bool lines_before_pending_ = false;
  int64_t lines_before_at_ = 0;
  int fd_ = -1;
  std::vector<char> buf_;
  size_t begin_ = 0;  // next unread byte in buf_
  size_t end_ = 0;    // end of valid bytes in buf_
  int64_t buf_offset_ = 0;  // file offset of buf_[0]
  bool eof_ = false;
  std::unique_ptr<ZstdFileReader> zstd_;  // the open file is compressed
};

}  // namespace sluice::file
