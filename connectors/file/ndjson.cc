#include "connectors/file/ndjson.h"

#include <unistd.h>

#include <cerrno>

namespace sluice::file {

Result<std::unique_ptr<LineWriter>> LineWriter::open_file(const std::string& path, bool truncate) {
  std::FILE* f = std::fopen(path.c_str(), truncate ? "wb" : "ab");
  if (!f) return Status::from_errno("cannot open '" + path + "' for writing", errno);
  return std::unique_ptr<LineWriter>(new LineWriter(f, path, true));
}

std::unique_ptr<LineWriter> LineWriter::wrap(std::FILE* f) {
  return std::unique_ptr<LineWriter>(new LineWriter(f, f == stdout ? "stdout" : "stderr", false));
}

LineWriter::~LineWriter() {
  Status st = flush();
  (void)st;
  if (owned_ && f_) std::fclose(f_);
}

Status LineWriter::flush(bool durable) {
  if (!buf_.empty()) {
    size_t n = std::fwrite(buf_.data(), 1, buf_.size(), f_);
    if (n != buf_.size()) return Status::from_errno("writing '" + path_ + "'", errno);
    buf_.clear();
  }
  if (std::fflush(f_) != 0) return Status::from_errno("writing '" + path_ + "'", errno);
  if (durable && ::fsync(::fileno(f_)) != 0) {
    return Status::from_errno("syncing '" + path_ + "'", errno);
  }
  return Status::ok();
}

std::string subtask_path(const std::string& path, int subtask, int parallelism) {
  if (parallelism <= 1) return path;
  auto slash = path.find_last_of('/');
  auto dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) {
    return path + "-" + std::to_string(subtask);
  }
  return path.substr(0, dot) + "-" + std::to_string(subtask) + path.substr(dot);
}

}  // namespace sluice::file
