#include "connectors/file/line_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sluice::file {

namespace {

Result<int64_t> count_newlines(int fd, int64_t upto, const std::string& path) {
  std::vector<char> b(1 << 20);
  int64_t n = 0, off = 0;
  while (off < upto) {
    ssize_t want = static_cast<ssize_t>(std::min<int64_t>(b.size(), upto - off));
    ssize_t got = ::pread(fd, b.data(), want, off);
    if (got < 0) return Status::from_errno("reading '" + path + "'", errno);
    if (got == 0) break;
    n += std::count(b.data(), b.data() + got, '\n');
    off += got;
  }
  return n;
}

}  // namespace

LineReader::LineReader(std::vector<FileInfo> files, std::vector<FileRange> ranges, size_t padding,
                       size_t chunk_bytes, size_t max_line_bytes)
    : files_(std::move(files)), ranges_(std::move(ranges)), padding_(padding), chunk_(chunk_bytes),
      max_line_(std::max<size_t>(1, max_line_bytes)) {}

LineReader::~LineReader() { close_file(); }

void LineReader::close_file() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  zstd_.reset();
}

Result<size_t> LineReader::read_more(char* dst, size_t room) {
  if (zstd_) return zstd_->read(dst, room);  // sequential: buf_offset_ + end_ is where it stands
  ssize_t got = ::pread(fd_, dst, room, buf_offset_ + static_cast<int64_t>(end_));
  if (got < 0) return Status::from_errno("reading '" + files_[ranges_[pos_.range].file].path + "'", errno);
  return static_cast<size_t>(got);
}

Status LineReader::open_range() {
  close_file();
  const FileRange& r = ranges_[pos_.range];
  const std::string& path = files_[r.file].path;
  if (files_[r.file].compressed) {
    // Read front to back; a restored position is reached by skipping.
    zstd_ = std::make_unique<ZstdFileReader>();
    SLUICE_RETURN_IF_ERROR(zstd_->open(path));
    if (pos_.offset < 0) {
      pos_.offset = 0;
      pos_.line_no = 1;
    }
    std::vector<char> skip(64 << 10);
    for (int64_t left = pos_.offset; left > 0;) {
      SLUICE_ASSIGN_OR_RETURN(size_t got, zstd_->read(skip.data(), static_cast<size_t>(std::min<int64_t>(left, skip.size()))));
      if (got == 0) return Status::corruption("'" + path + "' is shorter than the position to resume at");
      left -= static_cast<int64_t>(got);
    }
  } else {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return Status::from_errno("cannot open '" + path + "'", errno);
  }
  if (pos_.offset < 0) {
    // Align to the first line that starts inside the range.
    int64_t start = r.start;
    if (start > 0) {
      char prev = 0;
      if (::pread(fd_, &prev, 1, start - 1) != 1) {
        return Status::from_errno("reading '" + path + "'", errno);
      }
      if (prev != '\n') {
        std::vector<char> b(64 << 10);
        int64_t off = start;
        bool found = false;
        while (!found) {
          ssize_t got = ::pread(fd_, b.data(), b.size(), off);
          if (got < 0) return Status::from_errno("reading '" + path + "'", errno);
          if (got == 0) break;
          if (auto* nl = static_cast<char*>(std::memchr(b.data(), '\n', got))) {
            off += (nl - b.data()) + 1;
            found = true;
          } else {
            off += got;
          }
        }
        start = off;
      }
    }
    // The lines before `start` are counted when a line number is asked for.
    pos_.offset = start;
    pos_.line_no = 1;
    lines_before_pending_ = start > 0;
    lines_before_at_ = start;
  }
  if (buf_.size() < chunk_ + padding_) buf_.assign(chunk_ + padding_, '\0');
  begin_ = end_ = 0;
  buf_offset_ = pos_.offset;
  eof_ = false;
  opened_ = true;
  return Status::ok();
}

Status LineReader::count_lines_before() {
  if (!lines_before_pending_) return Status::ok();
  const std::string& path = files_[ranges_[pos_.range].file].path;
  SLUICE_ASSIGN_OR_RETURN(int64_t n, count_newlines(fd_, lines_before_at_, path));
  pos_.line_no += n;
  lines_before_pending_ = false;
  return Status::ok();
}

Status LineReader::resolve_line_no(Line& line) {
  if (!lines_before_pending_) return Status::ok();
  const int64_t before = pos_.line_no;
  SLUICE_RETURN_IF_ERROR(count_lines_before());
  line.line_no += pos_.line_no - before;
  return Status::ok();
}

Result<LinePosition> LineReader::position() {
  if (opened_ && pos_.range < static_cast<int32_t>(ranges_.size())) SLUICE_RETURN_IF_ERROR(count_lines_before());
  return pos_;
}

Status LineReader::fill() {
  // Keep the unread tail (a partial line) at the front.
  size_t tail = end_ - begin_;
  if (begin_ > 0) {
    std::memmove(buf_.data(), buf_.data() + begin_, tail);
    buf_offset_ += static_cast<int64_t>(begin_);
    begin_ = 0;
    end_ = tail;
  }
  // Grow when less than half a chunk (at least one byte) is free: the
  // unread tail is a line longer than the buffer.
  if (end_ + std::max<size_t>(1, chunk_ / 2) > buf_.size() - padding_) {
    buf_.resize(buf_.size() * 2, '\0');
  }
  size_t room = buf_.size() - padding_ - end_;
  SLUICE_ASSIGN_OR_RETURN(size_t got, read_more(buf_.data() + end_, room));
  if (got == 0) eof_ = true;
  end_ += got;
  return Status::ok();
}

Result<bool> LineReader::next(Line& line) {
  while (pos_.range < static_cast<int32_t>(ranges_.size())) {
    if (!opened_) SLUICE_RETURN_IF_ERROR(open_range());
    const FileRange& r = ranges_[pos_.range];
    if (pos_.offset >= r.end) {  // the next line belongs to the next range
      ++pos_.range;
      pos_.offset = -1;
      opened_ = false;
      lines_before_pending_ = false;
      continue;
    }
    char* start = buf_.data() + begin_;
    char* nl = static_cast<char*>(std::memchr(start, '\n', end_ - begin_));
    if (!nl && !eof_) {
      if (end_ - begin_ > max_line_) return skip_long_line(line);
      SLUICE_RETURN_IF_ERROR(fill());
      continue;
    }
    size_t len = nl ? static_cast<size_t>(nl - start) : end_ - begin_;
    line.oversize = len > max_line_;
    line.full_size = len;
    if (!nl && len == 0) {  // end of file
      ++pos_.range;
      pos_.offset = -1;
      opened_ = false;
      lines_before_pending_ = false;
      continue;
    }
    line.data = start;
    line.size = (len > 0 && start[len - 1] == '\r') ? len - 1 : len;
    if (line.oversize) line.size = std::min(line.size, kOversizeKeep);
    line.readable = static_cast<size_t>(buf_.data() + buf_.size() - start);
    line.line_no = pos_.line_no;
    line.offset = pos_.offset;
    line.path = &files_[r.file].path;
    size_t consumed = len + (nl ? 1 : 0);
    begin_ += consumed;
    pos_.offset += static_cast<int64_t>(consumed);
    ++pos_.line_no;
    return true;
  }
  close_file();
  return false;
}

Result<bool> LineReader::skip_long_line(Line& line) {
  const FileRange& r = ranges_[pos_.range];
  const std::string& path = files_[r.file].path;
  oversize_.assign(buf_.data() + begin_, std::min(end_ - begin_, kOversizeKeep));
  const size_t kept = oversize_.size();
  oversize_.append(padding_, '\0');
  size_t total = end_ - begin_;
  buf_offset_ += static_cast<int64_t>(end_);
  begin_ = end_ = 0;
  bool found = false;
  while (!found && !eof_) {
    SLUICE_ASSIGN_OR_RETURN(size_t got, read_more(buf_.data(), buf_.size() - padding_));  // at buf_offset_ (end_ is 0)
    if (got == 0) {
      eof_ = true;
      break;
    }
    if (auto* nl = static_cast<char*>(std::memchr(buf_.data(), '\n', got))) {
      size_t k = static_cast<size_t>(nl - buf_.data());
      total += k;
      begin_ = k + 1;
      end_ = got;
      found = true;
    } else {
      total += got;
      buf_offset_ += static_cast<int64_t>(got);
    }
  }
  line.data = oversize_.data();
  line.size = kept;
  line.readable = oversize_.size();
  line.line_no = pos_.line_no;
  line.offset = pos_.offset;
  line.path = &path;
  line.oversize = true;
  line.full_size = total;
  pos_.offset += static_cast<int64_t>(total + (found ? 1 : 0));
  ++pos_.line_no;
  return true;
}

}  // namespace sluice::file
