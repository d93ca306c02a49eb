#include "connectors/file/partitioned.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <filesystem>
#include <set>

#include "connectors/file/file_splits.h"
#include "engine/common/auth.h"
#include "engine/common/clock.h"
#include "engine/common/uri.h"

namespace sluice::file {

namespace {

Status write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::from_errno("writing '" + path + "'", errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::ok();
}

Status fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::from_errno("cannot open directory '" + dir + "'", errno);
  int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? Status::ok() : Status::from_errno("syncing directory '" + dir + "'", errno);
}

std::string parent_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

int64_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

// Hidden files of the runs in `runs` under dir (recursively), except `keep`.
void remove_leftovers(const std::string& dir, const std::string& prefix, const std::set<std::string>& runs,
                      const std::set<std::string>& keep) {
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string name = it->path().filename().string();
    if (name.rfind("." + prefix + "-", 0) != 0 || name.size() < 11 || name.substr(name.size() - 11) != ".inprogress") {
      continue;
    }
    for (const auto& run : runs) {
      if (name.find("-" + run + "-") == std::string::npos) continue;
      const std::string full = it->path().string();
      if (!keep.count(full)) {
        spdlog::info("partitioned file sink: removing {} (written after the restored checkpoint)", full);
        ::unlink(full.c_str());
      }
    }
  }
}

}  // namespace

// --- configuration ----------------------------------------------------------

bool PartitionedSinkConfig::matches(const std::string& uri) {
  if (uri.rfind("file://", 0) != 0) return false;
  return uri.find('?') != std::string::npos || (!uri.empty() && uri.back() == '/');
}

std::string PartitionedSinkConfig::extension() const {
  return std::string(format == Format::kCsv ? ".csv" : ".ndjson") + (zstd ? ".zst" : "");
}

Result<std::vector<PartitionSpec>> parse_partition_specs(const std::string& v, const std::string& what) {
  std::vector<PartitionSpec> out;
  for (const auto& item : split_list(v)) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
      size_t colon = item.find(':', start);
      parts.push_back(item.substr(start, colon == std::string::npos ? std::string::npos : colon - start));
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
    if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty()) {
      return Status::invalid_argument(what + ": partition '" + item +
                                      "' is not NAME:FIELD or NAME:FIELD:FORMAT (e.g. dt:session_start:date)");
    }
    for (char ch : parts[0]) {
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_') {
        return Status::invalid_argument(what + ": partition name '" + parts[0] + "' may hold letters, digits and _ only");
      }
    }
    PartitionSpec p{parts[0], parts[1], PartitionSpec::Format::kValue};
    if (parts.size() == 3) {
      const std::string& f = parts[2];
      if (f == "date") p.format = PartitionSpec::Format::kDate;
      else if (f == "month") p.format = PartitionSpec::Format::kMonth;
      else if (f == "hour") p.format = PartitionSpec::Format::kHour;
      else if (f == "minute") p.format = PartitionSpec::Format::kMinute;
      else if (f != "value") {
        return Status::invalid_argument(what + ": partition format '" + f + "' is not value, date, month, hour or minute");
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

Result<PartitionedSinkConfig> PartitionedSinkConfig::parse(const std::string& uri) {
  PartitionedSinkConfig c;
  c.uri = uri;
  const std::string what = "partitioned file sink '" + uri + "'";
  std::string rest = path_from_uri(uri), query;
  if (auto q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  while (rest.size() > 1 && rest.back() == '/') rest.pop_back();
  if (rest.empty() || rest[0] != '/') return Status::invalid_argument(what + ": give an absolute directory, file:///path/to/dir/");
  c.dir = rest;
  SLUICE_ASSIGN_OR_RETURN(auto params, parse_query(query, what));
  for (const auto& [k, v] : params) {
    if (k == "partition") {
      SLUICE_ASSIGN_OR_RETURN(c.partitions, parse_partition_specs(v, what));
    } else if (k == "format") {
      if (v == "ndjson") c.format = Format::kNdjson;
      else if (v == "csv") c.format = Format::kCsv;
      else return Status::invalid_argument(what + ": format must be ndjson or csv");
    } else if (k == "compression") {
      if (v == "zstd") c.zstd = true;
      else if (v == "none") c.zstd = false;
      else return Status::invalid_argument(what + ": compression must be none or zstd");
    } else if (k == "level") {
      char* end = nullptr;
      long l = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end || l < 1 || l > 19) return Status::invalid_argument(what + ": level must be 1..19");
      c.zstd_level = static_cast<int>(l);
    } else if (k == "roll_size") {
      SLUICE_ASSIGN_OR_RETURN(c.roll_bytes, parse_bytes(v));
      if (c.roll_bytes < 1024) return Status::invalid_argument(what + ": roll_size must be at least 1KB");
    } else if (k == "roll_interval") {
      SLUICE_ASSIGN_OR_RETURN(c.roll_interval, parse_duration(v));
      if (c.roll_interval.count() < 1000) return Status::invalid_argument(what + ": roll_interval must be at least 1s");
    } else if (k == "max_open_files") {
      char* end = nullptr;
      long long n = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end || n < 1 || n > 100'000) return Status::invalid_argument(what + ": max_open_files must be 1..100000");
      c.max_open_files = n;
    } else if (k == "prefix") {
      if (v.empty() || v.find('/') != std::string::npos || v[0] == '.') {
        return Status::invalid_argument(what + ": prefix must be a file name start without '/' or a leading '.'");
      }
      c.prefix = v;
    } else {
      return Status::invalid_argument(what + ": unknown parameter '" + k +
                                      "' (partition, format, compression, level, roll_size, roll_interval, "
                                      "max_open_files, prefix)");
    }
  }
  return c;
}

std::string escape_partition_value(std::string_view v) {
  if (v.empty()) return "__HIVE_DEFAULT_PARTITION__";
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : v) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == ' ' || (ch == '.' && v != "." && v != "..")) {
      out += static_cast<char>(ch);
    } else {
      out += '%';
      out += kHex[ch >> 4];
      out += kHex[ch & 15];
    }
  }
  return out;
}

std::string format_time_partition(int64_t ms, PartitionSpec::Format f) {
  time_t secs = static_cast<time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[32];
  switch (f) {
    case PartitionSpec::Format::kDate: std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm); break;
    case PartitionSpec::Format::kMonth: std::strftime(buf, sizeof buf, "%Y-%m", &tm); break;
    case PartitionSpec::Format::kHour: std::strftime(buf, sizeof buf, "%H", &tm); break;
    case PartitionSpec::Format::kMinute: std::strftime(buf, sizeof buf, "%M", &tm); break;
    case PartitionSpec::Format::kValue: return std::to_string(ms);
  }
  return buf;
}

void append_csv_cell(std::string& out, std::string_view v) {
  if (v.find_first_of(",\"\r\n") == std::string_view::npos) {
    out.append(v);
    return;
  }
  out.push_back('"');
  for (char ch : v) {
    if (ch == '"') out.push_back('"');
    out.push_back(ch);
  }
  out.push_back('"');
}

// --- the writer core ----------------------------------------------------------

struct PartitionedWriterCore::OpenFile {
  PartFileState st;
  int fd = -1;
  std::unique_ptr<ZstdCompressor> zstd;
  std::string raw;       // records not yet compressed/written
  std::string out;       // bytes ready for the file
  int64_t on_disk = 0;   // bytes written to the file
  int64_t opened_ms = 0;
  int64_t last_use = 0;
  ~OpenFile() {
    if (fd >= 0) ::close(fd);
  }
};

PartitionedWriterCore::PartitionedWriterCore(PartitionedSinkConfig config, std::string csv_header)
    : config_(std::move(config)),
      csv_header_(std::move(csv_header)),
      run_(auth::random_hex(4)),
      commits_("partitioned file sink " + config_.uri) {}

PartitionedWriterCore::~PartitionedWriterCore() = default;

Status PartitionedWriterCore::initialize(const runtime::OperatorRestore& restore) {
  restore_ = restore;
  return Status::ok();
}

Status PartitionedWriterCore::open(runtime::OperatorContext& ctx) {
  ctx_ = &ctx;
  subtask_ = ctx.info().subtask;
  exactly_once_ = ctx.job_config().contains("checkpoint.dir");
  SLUICE_RETURN_IF_ERROR(commits_.open(ctx));
  std::error_code ec;
  std::filesystem::create_directories(config_.dir, ec);
  if (ec) return Status::io_error("partitioned file sink: cannot create '" + config_.dir + "': " + ec.message());
  if (!exactly_once_) {
    spdlog::warn("partitioned file sink {}: the job has no checkpointing, so files are published when they roll "
                 "and at the end, at-least-once (a restart may repeat records); set --checkpoint-dir for exactly-once",
                 config_.uri);
  }
  if (restore_.restored) {
    // States of old subtask j are recovered by new subtask j % parallelism.
    std::vector<PartitionedWriterState> mine;
    for (size_t j = 0; j < restore_.states.size(); ++j) {
      if (static_cast<int>(j % ctx.info().parallelism) != subtask_ || restore_.states[j].empty()) continue;
      PartitionedWriterState s;
      SLUICE_RETURN_IF_ERROR(deserialize(restore_.states[j], s).with_context("partitioned file sink state"));
      mine.push_back(std::move(s));
    }
    SLUICE_RETURN_IF_ERROR(recover(mine));
  }
  schedule_roll_check();
  return Status::ok();
}

Status PartitionedWriterCore::recover(const std::vector<PartitionedWriterState>& states) {
  std::set<std::string> runs, keep;
  for (const auto& s : states) {
    runs.insert(s.run);
    for (const auto& f : s.files) {
      keep.insert(f.hidden);
      // Whatever it was (open or closed), the restored checkpoint completed,
      // so what it covers is final: publish it as it was then.
      SLUICE_RETURN_IF_ERROR(publish(f));
    }
  }
  if (!runs.empty()) remove_leftovers(config_.dir, config_.prefix, runs, keep);
  return Status::ok();
}

Status PartitionedWriterCore::publish(const PartFileState& st) {
  const int64_t size = file_size(st.hidden);
  if (size < 0) {
    if (file_size(st.target) >= 0 || st.length == 0) return Status::ok();  // published before a crash
    return Status::io_error("partitioned file sink: part file '" + st.hidden + "' (" + std::to_string(st.length) +
                            " bytes of a completed checkpoint) is missing; its records cannot be published");
  }
  if (size < st.length) {
    return Status::corruption("partitioned file sink: '" + st.hidden + "' is shorter (" + std::to_string(size) +
                              " bytes) than its checkpoint says (" + std::to_string(st.length) + ")");
  }
  if (size > st.length && ::truncate(st.hidden.c_str(), st.length) != 0) {
    return Status::from_errno("cannot truncate '" + st.hidden + "'", errno);
  }
  if (st.length == 0) {
    ::unlink(st.hidden.c_str());
    return Status::ok();
  }
  if (::rename(st.hidden.c_str(), st.target.c_str()) != 0) {
    return Status::from_errno("cannot publish '" + st.target + "'", errno);
  }
  return fsync_dir(parent_of(st.target));
}

Result<PartitionedWriterCore::OpenFile*> PartitionedWriterCore::file_for(const std::string& partition) {
  auto it = open_.find(partition);
  if (it != open_.end()) return it->second.get();
  if (static_cast<int64_t>(open_.size()) >= config_.max_open_files) {
    // Close the least recently written file.
    auto lru = std::min_element(open_.begin(), open_.end(),
                                [](const auto& a, const auto& b) { return a.second->last_use < b.second->last_use; });
    SLUICE_RETURN_IF_ERROR(roll(lru->first));
  }
  const std::string dir = partition.empty() ? config_.dir : config_.dir + "/" + partition;
  std::error_code ec;
  if (exactly_once_ && !partition.empty() && !std::filesystem::is_directory(dir, ec)) {
    // The new folders' entries must be as durable as the file in them.
    for (std::string d = dir; d.size() > config_.dir.size(); d = parent_of(d)) {
      if (std::filesystem::is_directory(d, ec)) break;
      syncs_->add_dir(parent_of(d));
    }
  }
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::io_error("partitioned file sink: cannot create '" + dir + "': " + ec.message());
  const std::string name = config_.prefix + "-" + std::to_string(subtask_) + "-" + run_ + "-" +
                           std::to_string(seq_++) + config_.extension();
  auto f = std::make_unique<OpenFile>();
  f->st.hidden = dir + "/." + name + ".inprogress";
  f->st.target = dir + "/" + name;
  f->fd = ::open(f->st.hidden.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f->fd < 0) return Status::from_errno("cannot create '" + f->st.hidden + "'", errno);
  if (exactly_once_) syncs_->add_dir(dir);  // the hidden file's entry
  if (config_.zstd) f->zstd = std::make_unique<ZstdCompressor>(config_.zstd_level);
  f->opened_ms = ctx_ ? ctx_->processing_time().now_ms() : 0;
  if (!csv_header_.empty()) {
    f->raw += csv_header_;
    f->raw.push_back('\n');
  }
  OpenFile* raw = f.get();
  open_[partition] = std::move(f);
  return raw;
}

Status PartitionedWriterCore::write_out(OpenFile& f, bool end_frame) {
  if (f.zstd) {
    SLUICE_RETURN_IF_ERROR(f.zstd->append(f.raw, f.out));
    if (end_frame) SLUICE_RETURN_IF_ERROR(f.zstd->end_frame(f.out));
  } else {
    f.out.append(f.raw);
  }
  f.raw.clear();
  SLUICE_RETURN_IF_ERROR(write_all(f.fd, f.out, f.st.hidden));
  f.on_disk += static_cast<int64_t>(f.out.size());
  f.out.clear();
  return Status::ok();
}

Status PartitionedWriterCore::take_error() {
  if (syncs_->failed()) return syncs_->error().with_context("partitioned file sink " + config_.uri);
  if (commits_.failed()) return commits_.error();
  return std::exchange(deferred_, Status::ok());
}

Status PartitionedWriterCore::append(const std::string& partition, std::string_view line) {
  if (!deferred_.is_ok() || syncs_->failed() || commits_.failed()) return take_error();
  SLUICE_ASSIGN_OR_RETURN(OpenFile * f, file_for(partition));
  f->raw.append(line);
  f->raw.push_back('\n');
  f->last_use = ++use_;
  if (f->raw.size() >= (256u << 10)) SLUICE_RETURN_IF_ERROR(write_out(*f, false));
  if (f->on_disk + static_cast<int64_t>(f->raw.size() / (f->zstd ? 4 : 1)) >= config_.roll_bytes) {
    return roll(partition);
  }
  return Status::ok();
}

Status PartitionedWriterCore::roll(const std::string& partition) {
  auto it = open_.find(partition);
  if (it == open_.end()) return Status::ok();
  OpenFile& f = *it->second;
  SLUICE_RETURN_IF_ERROR(write_out(f, true));
  PartFileState st = f.st;
  st.length = f.on_disk;
  st.closed = true;
  if (!exactly_once_) {
    if (::fsync(f.fd) != 0) return Status::from_errno("syncing '" + f.st.hidden + "'", errno);
    open_.erase(it);
    return publish(st);
  }
  // Synced by the next checkpoint's asynchronous part, which hands it over
  // for publishing; not here on the task thread.
  syncs_->add_file(std::exchange(f.fd, -1), f.st.hidden);
  open_.erase(it);
  pending_.push_back(std::move(st));
  return Status::ok();
}

void PartitionedWriterCore::schedule_roll_check() {
  auto& pts = ctx_->processing_time();
  pts.schedule(pts.now_ms() + 1000, [this](int64_t now) {
    if (closed_) return;
    std::vector<std::string> old;
    for (const auto& [p, f] : open_)
      if (now - f->opened_ms >= config_.roll_interval.count()) old.push_back(p);
    for (const auto& p : old) {
      Status st = roll(p);
      if (!st.is_ok() && deferred_.is_ok()) deferred_ = st;
    }
    if (!deferred_.is_ok() || syncs_->failed() || commits_.failed()) {
      ctx_->fail(take_error());
      return;
    }
    schedule_roll_check();
  });
}

Status PartitionedWriterCore::flush() {
  if (!deferred_.is_ok() || syncs_->failed() || commits_.failed()) return take_error();
  while (!open_.empty()) SLUICE_RETURN_IF_ERROR(roll(open_.begin()->first));
  return Status::ok();
}

// The barrier's share is a write() per open file (the rest of its frame)
// and a dup() of its descriptor; the fsyncs of what the checkpoint covers
// run in the asynchronous part, which the task's acknowledgement waits for.
Result<runtime::OperatorStateSnapshot> PartitionedWriterCore::snapshot(CheckpointId id) {
  if (!deferred_.is_ok() || syncs_->failed() || commits_.failed()) return take_error();
  PartitionedWriterState s;
  s.run = run_;
  for (auto& [p, f] : open_) {
    // Everything so far in the file; a restore cuts back to here.
    SLUICE_RETURN_IF_ERROR(write_out(*f, true));
    PartFileState st = f->st;
    st.length = f->on_disk;
    s.files.push_back(std::move(st));
    if (!exactly_once_) continue;
    // The writer goes on appending to its descriptor (and may close it):
    // the snapshot thread syncs a duplicate.
    int dup = ::fcntl(f->fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) return Status::from_errno("duplicating the descriptor of '" + f->st.hidden + "'", errno);
    syncs_->add_file(dup, f->st.hidden);
  }
  // Files whose publishing is not done yet are in the state as well: a
  // restore publishes them (again: publish() is idempotent).
  const int64_t done = commits_.committed_through();
  while (!committing_.empty() && committing_.front().checkpoint <= done) committing_.pop_front();
  s.files.insert(s.files.end(), committing_.begin(), committing_.end());
  for (auto& p : pending_) {
    if (p.checkpoint == 0) p.checkpoint = id.value();
    s.files.push_back(p);
  }
  runtime::OperatorStateSnapshot out;
  out.state = serialize(s);
  if (!exactly_once_) return out;
  const uint64_t batch = syncs_->seal();
  out.async = [syncs = syncs_, batch, blob = out.state]() -> Result<std::string> {
    SLUICE_RETURN_IF_ERROR(syncs->sync_through(batch));
    return blob;
  };
  return out;
}

Status PartitionedWriterCore::checkpoint_complete(CheckpointId id) {
  // A completed checkpoint's asynchronous part synced everything it covers.
  if (syncs_->failed() || commits_.failed()) return take_error();
  std::vector<PartFileState> files;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->checkpoint > 0 && it->checkpoint <= id.value()) {
      files.push_back(*it);
      committing_.push_back(std::move(*it));
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  if (files.empty()) return Status::ok();
  commits_.submit(id.value(), [files = std::move(files)]() -> Status {
    for (const auto& f : files) SLUICE_RETURN_IF_ERROR(publish(f));
    return Status::ok();
  });
  return Status::ok();
}

Status PartitionedWriterCore::close() {
  closed_ = true;
  commits_.stop();  // after the publishing running now; a restore does the rest
  if (exactly_once_) {
    // Records after the last checkpoint stay hidden: a restore deletes them
    // and the replay writes them again.
    for (auto& [p, f] : open_) {
      Status st = write_out(*f, true);
      (void)st;
    }
    open_.clear();
    return Status::ok();
  }
  return flush();
}

}  // namespace sluice::file
