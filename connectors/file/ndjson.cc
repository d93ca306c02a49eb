#include "connectors/file/ndjson.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "state/snapshot.h"

namespace sluice::file {

NdjsonReaderState make_share(const std::vector<FileInfo>& files, int share, int shares) {
  NdjsonReaderState s;
  s.share = share;
  s.shares = shares;
  std::vector<int> index(files.size(), -1);
  for (FileRange r : split_share(files, share, shares)) {
    if (index[r.file] < 0) {
      index[r.file] = static_cast<int>(s.files.size());
      s.files.push_back(files[r.file]);
    }
    r.file = index[r.file];
    s.ranges.push_back(r);
  }
  return s;
}

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
  size_t base = slash == std::string::npos ? 0 : slash + 1;
  auto dot = path.find_last_of('.');
  // No extension, or only a leading dot (".out" is a hidden file, not an extension).
  if (dot == std::string::npos || dot <= base) return path + "-" + std::to_string(subtask);
  return path.substr(0, dot) + "-" + std::to_string(subtask) + path.substr(dot);
}

}  // namespace sluice::file

namespace sluice::file {

namespace {

std::string hidden_sibling(const std::string& target, const std::string& suffix) {
  auto slash = target.find_last_of('/');
  std::string dir = slash == std::string::npos ? "" : target.substr(0, slash + 1);
  std::string base = slash == std::string::npos ? target : target.substr(slash + 1);
  return dir + "." + base + suffix;
}

std::string marker_path(const std::string& target) { return hidden_sibling(target, ".sluice-commit"); }

struct Marker {
  int64_t checkpoint = 0;
  int64_t length = 0;
};

Result<Marker> read_marker(const std::string& target) {
  Marker m;
  std::FILE* f = std::fopen(marker_path(target).c_str(), "rb");
  if (!f) {
    if (errno == ENOENT) return m;
    return Status::from_errno("cannot read '" + marker_path(target) + "'", errno);
  }
  long long cp = 0, len = 0;
  int n = std::fscanf(f, "%lld %lld", &cp, &len);
  std::fclose(f);
  if (n != 2) return Status::corruption("'" + marker_path(target) + "' is not a commit marker");
  m.checkpoint = cp;
  m.length = len;
  return m;
}

Status write_marker(const std::string& target, const Marker& m) {
  return state::write_file_atomic(marker_path(target), std::to_string(m.checkpoint) + " " +
                                                           std::to_string(m.length) + "\n");
}

int64_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

// Removes "<dir>/.<base>.part-*" and ".inprogress" files of `target`,
// except those listed in `keep`.
void remove_leftovers(const std::string& target, const std::set<std::string>& keep) {
  auto slash = target.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : target.substr(0, slash);
  std::string prefix = "." + (slash == std::string::npos ? target : target.substr(slash + 1));
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.rfind(prefix + ".part-", 0) != 0 && n != prefix + ".inprogress") continue;
    std::string full = (slash == std::string::npos ? "" : dir + "/") + n;
    if (!keep.count(full)) ::unlink(full.c_str());
  }
  ::closedir(d);
}

}  // namespace

TransactionalFile::TransactionalFile(std::string target)
    : target_(std::move(target)), in_progress_(hidden_sibling(target_, ".inprogress")) {}

Status TransactionalFile::open_in_progress() {
  SLUICE_ASSIGN_OR_RETURN(out_, LineWriter::open_file(in_progress_, /*truncate=*/true));
  empty_ = true;
  return Status::ok();
}

Status TransactionalFile::start_fresh() {
  remove_leftovers(target_, {});
  ::unlink(marker_path(target_).c_str());
  std::FILE* f = std::fopen(target_.c_str(), "wb");
  if (!f) return Status::from_errno("cannot create '" + target_ + "'", errno);
  std::fclose(f);
  return open_in_progress();
}

Status TransactionalFile::recover(const std::vector<PendingPart>& parts_in) {
  std::vector<PendingPart> parts = parts_in;
  std::sort(parts.begin(), parts.end(),
            [](const PendingPart& a, const PendingPart& b) { return a.checkpoint < b.checkpoint; });
  // Cut every target back to its last commit (drops a half-done append).
  std::set<std::string> targets{target_};
  for (const auto& p : parts) targets.insert(p.target);
  for (const auto& t : targets) {
    SLUICE_ASSIGN_OR_RETURN(Marker m, read_marker(t));
    int64_t size = file_size(t);
    if (size < 0) {
      std::FILE* f = std::fopen(t.c_str(), "wb");
      if (!f) return Status::from_errno("cannot create '" + t + "'", errno);
      std::fclose(f);
      size = 0;
    }
    if (size < m.length) {
      return Status::corruption("'" + t + "' is shorter (" + std::to_string(size) +
                                " bytes) than its last commit (" + std::to_string(m.length) +
                                " bytes): committed output was removed");
    }
    if (size > m.length && ::truncate(t.c_str(), m.length) != 0) {
      return Status::from_errno("cannot truncate '" + t + "'", errno);
    }
  }
  for (const auto& p : parts) SLUICE_RETURN_IF_ERROR(commit(p));
  for (const auto& t : targets) remove_leftovers(t, {});
  return open_in_progress();
}

void TransactionalFile::append(std::string_view line) {
  out_->append(line);
  empty_ = false;
}

Status TransactionalFile::pre_commit(int64_t id, std::vector<PendingPart>& pending, DeferredSync& syncs) {
  SLUICE_RETURN_IF_ERROR(out_->take_error());
  if (empty_) return Status::ok();
  SLUICE_RETURN_IF_ERROR(out_->flush(/*durable=*/false));
  // The descriptor outlives the FILE: the snapshot thread syncs it.
  int dup = ::fcntl(out_->fd(), F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return Status::from_errno("duplicating the descriptor of '" + in_progress_ + "'", errno);
  out_.reset();
  std::string part = hidden_sibling(target_, ".part-" + std::to_string(id));
  syncs.add_file(dup, part);
  if (::rename(in_progress_.c_str(), part.c_str()) != 0) {
    return Status::from_errno("cannot rename '" + in_progress_ + "'", errno);
  }
  auto slash = part.find_last_of('/');
  syncs.add_dir(slash == std::string::npos ? "." : slash == 0 ? "/" : part.substr(0, slash));
  pending.push_back(PendingPart{id, part, target_});
  return open_in_progress();
}

Status TransactionalFile::commit(const PendingPart& p) {
  SLUICE_ASSIGN_OR_RETURN(Marker m, read_marker(p.target));
  if (p.checkpoint <= m.checkpoint) {  // committed before a crash
    ::unlink(p.part.c_str());
    return Status::ok();
  }
  auto data = state::read_file(p.part);
  if (!data.is_ok()) {
    return Status::io_error("part '" + p.part + "' of checkpoint " + std::to_string(p.checkpoint) +
                            " is missing; its output cannot be committed: " +
                            data.status().message());
  }
  if (file_size(p.target) > m.length && ::truncate(p.target.c_str(), m.length) != 0) {
    return Status::from_errno("cannot truncate '" + p.target + "'", errno);
  }
  SLUICE_ASSIGN_OR_RETURN(auto out, LineWriter::open_file(p.target, /*truncate=*/false));
  out->append_raw(*data);
  SLUICE_RETURN_IF_ERROR(out->flush(/*durable=*/true));
  out.reset();
  SLUICE_RETURN_IF_ERROR(write_marker(p.target, Marker{p.checkpoint, m.length + static_cast<int64_t>(data->size())}));
  ::unlink(p.part.c_str());
  return Status::ok();
}

Status TransactionalFile::close() {
  if (!out_) return Status::ok();
  // What was written after the last barrier stays in progress: it is not
  // covered by a checkpoint, and recovery discards it.
  Status st = out_->flush();
  out_.reset();
  return st;
}

}  // namespace sluice::file
