// Snapshots and restore of the RocksDB backend.
//
// Snapshot N, synchronous part (task thread): copy the write cache's dirty
// entries (rocksdb_write_cache.cc), a RocksDB checkpoint (memtables
// flushed, SSTs hard-linked, MANIFEST, CURRENT and OPTIONS copied) into
// <working dir>/chk-N, then the timers' changes.
// Asynchronous part (snapshot thread): every file of chk-N goes to
// checkpoint storage, then chk-N is removed:
//   - SSTs of a checkpoint go to <job>/shared/<instance>-<tag>-<sst name>
//     (StateFile::shared). One SST always gets the same shared name, so
//     every checkpoint that contains it names the same file; an SST that
//     the last completed checkpoint of this backend already holds is
//     referenced without copying (incremental);
//   - everything else (and, for savepoints, the SSTs too) goes to
//     <own dir>/<file stem>/<name>.
// Timers: a savepoint writes every timer to <own dir>/<file stem>/_timers.
// A checkpoint references the timers files of the last completed checkpoint
// (shared: every timer, then deltas) and adds one delta, the changes since
// then (timers set, removed, popped), to <job>/shared/<instance>-timers-<N>;
// it writes every timer again, as the chain's new first file, when there is
// no chain yet, a change is not known, or the deltas would outgrow the
// full file. A million live timers are ~35 MB; a second's changes are what
// the window operator registered or fired in that second.
// The write cache's dirty entries at the barrier go to <own dir>/<file
// stem>/_cache; a restore writes them over the RocksDB files.
// The handle's meta lists each file's name in the DB directory.
#include <dirent.h>
#include <fcntl.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/utilities/checkpoint.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <random>

#include "state/checkpoint_storage.h"
#include "state/rocksdb_internal.h"

namespace sluice::state {

namespace {

constexpr std::string_view kTimersMagic = "SLUICE-ROCKSDB-TIMERS-1\n";
constexpr std::string_view kTimersDeltaMagic = "SLUICE-ROCKSDB-TIMERS-DELTA-1\n";
// At most this many deltas follow a full timers file.
constexpr size_t kMaxTimerDeltas = 64;
// Changes kept for unconfirmed checkpoints beyond this (and beyond the last
// full file's size) are dropped: the next checkpoint writes every timer.
constexpr size_t kMaxPendingTimerDeltaBytes = 8u << 20;
// A synchronous part at least this long logs its split at info (as the
// runtime logs each operator's from 5 ms on).
constexpr int64_t kSlowSnapshotMs = 5;

/// What a RocksDB keyed-state handle carries in KeyedStateHandle::meta.
struct RocksHandleMeta {
  int32_t format = 1;
  /// For each of the handle's files (same order): its name in the DB
  /// directory ("000012.sst", "MANIFEST-000005", "_timers").
  std::vector<std::string> local_names;
  SLUICE_FIELDS(format, local_names)
};

bool is_sst(const std::string& name) {
  return name.size() > 4 && name.compare(name.size() - 4, 4, ".sst") == 0;
}

std::string parent_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// The directory as the file system names it (symlinks resolved), so two
// spellings of one job directory compare equal.
std::string canonical(const std::string& dir) {
  char* real = ::realpath(dir.c_str(), nullptr);
  if (!real) return dir;
  std::string out = real;
  std::free(real);
  return out;
}

Status fsync_path(const std::string& path, bool dir) {
  int fd = ::open(path.c_str(), (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return Status::from_errno("cannot open '" + path + "'", errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::from_errno("cannot sync '" + path + "'", err);
  return Status::ok();
}

// Copies src to dst through a temporary file; with `durable`, fsyncs the
// file and its directory (checkpoint storage), otherwise not (local files).
Status copy_file(const std::string& src, const std::string& dst, bool durable) {
  SLUICE_RETURN_IF_ERROR(make_dirs(parent_of(dst)));
  int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return Status::from_errno("cannot read '" + src + "'", errno);
  // Unique: an aborted checkpoint's upload may still write the same file.
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string tmp = dst + ".tmp-" + std::to_string(rng());
  int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    int err = errno;
    ::close(in);
    return Status::from_errno("cannot create '" + tmp + "'", err);
  }
  Status st;
  bool fallback = false;
  for (;;) {
    ssize_t n = fallback ? 0 : ::copy_file_range(in, nullptr, out, nullptr, 1 << 24, 0);
    if (!fallback && n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL)) {
      fallback = true;
    }
    if (fallback) {
      char buf[1 << 16];
      n = ::read(in, buf, sizeof buf);
      if (n > 0) {
        const char* p = buf;
        ssize_t left = n;
        while (left > 0) {
          ssize_t w = ::write(out, p, static_cast<size_t>(left));
          if (w < 0) {
            if (errno == EINTR) continue;
            st = Status::from_errno("cannot write '" + tmp + "'", errno);
            break;
          }
          p += w;
          left -= w;
        }
        if (!st.is_ok()) break;
        continue;
      }
    }
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      st = Status::from_errno("cannot copy '" + src + "' to '" + tmp + "'", errno);
      break;
    }
  }
  ::close(in);
  if (st.is_ok() && durable && ::fsync(out) != 0) {
    st = Status::from_errno("cannot sync '" + tmp + "'", errno);
  }
  ::close(out);
  if (st.is_ok() && ::rename(tmp.c_str(), dst.c_str()) != 0) {
    st = Status::from_errno("cannot rename '" + tmp + "' to '" + dst + "'", errno);
  }
  if (!st.is_ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  return durable ? fsync_path(parent_of(dst), true) : Status::ok();
}

// SSTs are immutable: a hard link is a copy that costs nothing (falls back
// to copying across file systems).
Status link_or_copy(const std::string& src, const std::string& dst) {
  ::unlink(dst.c_str());
  if (::link(src.c_str(), dst.c_str()) == 0) return Status::ok();
  if (errno == ENOENT) return Status::from_errno("cannot read '" + src + "'", errno);
  return copy_file(src, dst, false);
}

struct LocalFile {
  std::string name;
  int64_t size = 0;
};

Result<std::vector<LocalFile>> list_files(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return Status::from_errno("cannot list '" + dir + "'", errno);
  std::vector<LocalFile> out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    struct stat st {};
    if (::stat((dir + "/" + n).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    out.push_back({n, static_cast<int64_t>(st.st_size)});
  }
  ::closedir(d);
  return out;
}

bool is_timers_delta(const std::string& local) { return local == rocks::kTimersDeltaName; }

/// A timers file of a handle: is it a delta (or every timer), its bytes.
using TimersFile = std::pair<bool, std::string>;

// Fetches the files of `h` (restored from `job_dir`) into `dir`; returns
// its timers files' contents, in the handle's order, and sets
// `cache_overlay` to its write-cache file's (empty if none).
Result<std::vector<TimersFile>> fetch_handle(const KeyedStateHandle& h, const std::string& job_dir,
                                             const std::string& dir, RocksHandleMeta& meta,
                                             std::string& cache_overlay) {
  cache_overlay.clear();
  SLUICE_RETURN_IF_ERROR(deserialize(h.meta, meta).with_context("RocksDB handle metadata"));
  if (meta.local_names.size() != h.files.size()) {
    return Status::corruption("RocksDB handle metadata names " +
                              std::to_string(meta.local_names.size()) + " files, the handle has " +
                              std::to_string(h.files.size()));
  }
  SLUICE_RETURN_IF_ERROR(make_dirs(dir));
  std::vector<TimersFile> timers;
  for (size_t i = 0; i < h.files.size(); ++i) {
    const std::string& local = meta.local_names[i];
    std::string src = job_dir + "/" + h.files[i].path;
    if (local == rocks::kTimersName || is_timers_delta(local)) {
      if (is_timers_delta(local) && timers.empty()) {
        return Status::corruption("RocksDB handle has a timers delta before its timers file");
      }
      SLUICE_ASSIGN_OR_RETURN(std::string bytes, read_file(src));
      timers.emplace_back(is_timers_delta(local), std::move(bytes));
    } else if (local == rocks::kCacheOverlayName) {
      SLUICE_ASSIGN_OR_RETURN(cache_overlay, read_file(src));
    } else if (local.empty() || local.find('/') != std::string::npos || local[0] == '.') {
      return Status::corruption("RocksDB handle names a bad local file '" + local + "'");
    } else if (is_sst(local)) {
      SLUICE_RETURN_IF_ERROR(link_or_copy(src, dir + "/" + local));
    } else {
      SLUICE_RETURN_IF_ERROR(copy_file(src, dir + "/" + local, false));
    }
  }
  return timers;
}

}  // namespace

// --- timers ------------------------------------------------------------------------

// magic, varint queue count, then per queue: name, varint group count,
// (varint key group, bytes as TimerQueue::write_key_groups encodes them)*.
std::string RocksDBKeyedStateBackend::write_timers() const {
  std::string out(kTimersMagic);
  ByteWriter w(out);
  w.put_varint(timers_.size());
  std::vector<std::string> per_group;
  for (const auto& [name, q] : timers_) {
    w.put_bytes(name);
    q->write_key_groups(range_, per_group);
    uint64_t n = 0;
    for (const auto& g : per_group) n += g.empty() ? 0 : 1;
    w.put_varint(n);
    for (size_t i = 0; i < per_group.size(); ++i) {
      if (per_group[i].empty()) continue;
      w.put_varint(static_cast<uint64_t>(range_.start) + i);
      w.put_bytes(per_group[i]);
    }
  }
  return out;
}

Status RocksDBKeyedStateBackend::restore_timers(const std::string& bytes, const std::string& what) {
  if (bytes.compare(0, kTimersMagic.size(), kTimersMagic) != 0) {
    return Status::corruption(what + " is not a RocksDB timers file");
  }
  ByteReader r(std::string_view(bytes).substr(kTimersMagic.size()));
  uint64_t queues;
  if (!r.get_varint(queues)) return Status::corruption(what + ": bad queue count");
  for (uint64_t q = 0; q < queues; ++q) {
    std::string_view name;
    uint64_t groups;
    if (!r.get_bytes(name) || !r.get_varint(groups)) return Status::corruption(what + ": truncated");
    for (uint64_t g = 0; g < groups; ++g) {
      uint64_t kg;
      std::string_view blob;
      if (!r.get_varint(kg) || !r.get_bytes(blob)) return Status::corruption(what + ": truncated");
      KeyGroup group(static_cast<int32_t>(kg));
      if (!range_.contains(group)) continue;
      SLUICE_RETURN_IF_ERROR(timer_queue(std::string(name)).read_key_group(group, blob)
                                 .with_context(what));
    }
  }
  if (!r.empty()) return Status::corruption(what + ": trailing bytes");
  return Status::ok();
}

// Every timer of the first file, then each delta in order; the queues'
// change logs start afresh (what was restored is no change).
Status RocksDBKeyedStateBackend::restore_timer_files(const std::vector<TimersFile>& files,
                                                     const std::string& what) {
  for (const auto& [delta, bytes] : files) {
    SLUICE_RETURN_IF_ERROR(delta ? apply_timer_delta(bytes, what) : restore_timers(bytes, what));
  }
  (void)take_timer_changes();
  timer_deltas_.clear();
  return Status::ok();
}

// Delta: magic, then per change: queue name, varint key group, u8 (1 set,
// 0 gone), zigzag timestamp, key bytes, namespace bytes. Deltas of
// consecutive snapshots concatenate (without their magic) into one.
std::optional<std::string> RocksDBKeyedStateBackend::take_timer_changes() {
  std::string out;
  ByteWriter w(out);
  bool known = true;
  for (const auto& [name, q] : timers_) {
    auto changes = q->take_changes();  // every queue: each starts a new log
    if (!changes) {
      known = false;
      continue;
    }
    if (!known) continue;
    for (const auto& c : *changes) {
      w.put_bytes(name);
      w.put_varint(static_cast<uint64_t>(c.entry.kg.value()));
      w.put_u8(c.added ? 1 : 0);
      w.put_zigzag(c.entry.ts);
      w.put_bytes(c.entry.key);
      w.put_bytes(c.entry.ns);
    }
  }
  if (!known) return std::nullopt;
  return out;
}

Status RocksDBKeyedStateBackend::apply_timer_delta(std::string_view bytes, const std::string& what) {
  if (bytes.compare(0, kTimersDeltaMagic.size(), kTimersDeltaMagic) != 0) {
    return Status::corruption(what + " is not a RocksDB timers delta");
  }
  ByteReader r(bytes.substr(kTimersDeltaMagic.size()));
  while (!r.empty()) {
    std::string_view name, key, ns;
    uint64_t kg;
    uint8_t op;
    int64_t ts;
    if (!r.get_bytes(name) || !r.get_varint(kg) || !r.get_u8(op) || !r.get_zigzag(ts) ||
        !r.get_bytes(key) || !r.get_bytes(ns) || op > 1 || kg > static_cast<uint64_t>(INT32_MAX)) {
      return Status::corruption(what + ": truncated or bad change");
    }
    KeyGroup group(static_cast<int32_t>(kg));
    if (!range_.contains(group)) continue;
    TimerQueue& q = timer_queue(std::string(name));
    if (op == 1) q.add(ts, group, key, ns);
    else q.remove(ts, group, key, ns);
  }
  return Status::ok();
}

std::string RocksDBKeyedStateBackend::timers_for_snapshot(int64_t id, bool incremental,
                                                          const std::vector<StateFile>& chain,
                                                          int64_t chain_base_bytes, bool& full) {
  // This snapshot's changes are kept until a checkpoint that covers them
  // completes: a checkpoint after an aborted one still needs them.
  timer_deltas_[id] = take_timer_changes();
  size_t pending = 0;
  for (const auto& [cid, d] : timer_deltas_) pending += d ? d->size() : 0;
  if (pending > std::max(kMaxPendingTimerDeltaBytes, static_cast<size_t>(chain_base_bytes))) {
    timer_deltas_.clear();
    timer_deltas_[id] = std::nullopt;
  }
  full = !incremental || chain.empty() || chain.size() > kMaxTimerDeltas;
  std::string delta(kTimersDeltaMagic);
  if (!full) {
    for (const auto& [cid, d] : timer_deltas_) {
      if (cid > id) break;
      if (!d) {
        full = true;
        break;
      }
      delta += *d;
    }
  }
  if (!full) {
    int64_t deltas = static_cast<int64_t>(delta.size());
    for (size_t i = 1; i < chain.size(); ++i) deltas += chain[i].size;
    full = deltas > chain_base_bytes;  // the chain stays below twice the full file
  }
  if (full) return write_timers();
  if (delta.size() == kTimersDeltaMagic.size()) return std::string();  // no change: the chain as it is
  return delta;
}

// --- snapshot ----------------------------------------------------------------------

Result<AsyncSnapshot> RocksDBKeyedStateBackend::snapshot(CheckpointId id,
                                                         const SnapshotTarget& target) {
  // The write-back cache holds the newest values: they belong in this
  // checkpoint, and so do the changes of the operators' caches (written
  // into the backend first). The cache's dirty entries are copied, not
  // written to RocksDB: the copy becomes the "_cache" file in the
  // asynchronous part, and the entries stay cached and dirty.
  const int64_t t0 = monotonic_ns();
  snapshotted_ = true;
  size_t cache_entries = 0;
  std::shared_ptr<const std::string> cache_overlay;
  try {
    write_back_caches();
    cache_overlay = std::make_shared<const std::string>(capture_dirty_entries(cache_entries));
  } catch (const StateAccessError& e) {
    return Status::io_error(e.what());
  }
  const int64_t t1 = monotonic_ns();
  const std::string local = dir_ + "/chk-" + std::to_string(id.value());
  SLUICE_RETURN_IF_ERROR(remove_tree(local));
  {
    rocksdb::Checkpoint* raw = nullptr;
    SLUICE_RETURN_IF_ERROR(
        rocks::to_status(rocksdb::Checkpoint::Create(db_->db, &raw), "RocksDB checkpoint"));
    std::unique_ptr<rocksdb::Checkpoint> cp(raw);
    // Flushes every memtable first (log_size_for_flush = 0): there is no
    // WAL, so the flushed SSTs are the state.
    SLUICE_RETURN_IF_ERROR(
        rocks::to_status(cp->CreateCheckpoint(local, 0), "RocksDB checkpoint into '" + local + "'"));
  }
  const int64_t t2 = monotonic_ns();
  SLUICE_ASSIGN_OR_RETURN(std::vector<LocalFile> files, list_files(local));

  const bool incremental = !target.self_contained;
  SLUICE_RETURN_IF_ERROR(make_dirs(target.job_dir));
  const std::string job_dir = canonical(target.job_dir);
  std::map<std::string, StateFile> reuse;
  std::vector<StateFile> timer_chain;
  int64_t timer_base_bytes = 0;
  if (incremental) {
    std::lock_guard lk(shared_->mu);
    if (shared_->confirmed.job_dir == job_dir) {
      reuse = shared_->confirmed.by_sst;
      timer_chain = shared_->confirmed.timer_files;
      timer_base_bytes = shared_->confirmed.timer_base_bytes;
    }
  }
  bool timers_full = true;
  auto timers = std::make_shared<std::string>(
      timers_for_snapshot(id.value(), incremental, timer_chain, timer_base_bytes, timers_full));
  if (timers_full) timer_chain.clear();
  {
    // What the task thread spent, by part: the copy of the write cache's
    // dirty entries, RocksDB's checkpoint (it waits for the memtable flush),
    // the timers.
    const int64_t t3 = monotonic_ns();
    const int64_t ms = (t3 - t0) / 1'000'000;
    spdlog::log(ms >= kSlowSnapshotMs ? spdlog::level::info : spdlog::level::debug,
                "checkpoint {}: RocksDB state of '{}' took {} ms on the task thread: write cache "
                "copy {} ms ({} entries), RocksDB checkpoint with memtable flush {} ms, timers {} ms "
                "({}, {} bytes)",
                id.value(), file_prefix_, ms, (t1 - t0) / 1'000'000, cache_entries,
                (t2 - t1) / 1'000'000, (t3 - t2) / 1'000'000, timers_full ? "every timer" : "delta",
                timers->size());
  }
  const std::string own =
      (target.own_dir.empty() || target.own_dir == "." ? "" : target.own_dir + "/") +
      target.file_stem + "/";

  struct Item {
    std::string local_name;
    StateFile file;
    bool upload = true;
  };
  std::vector<Item> plan;
  for (const auto& f : files) {
    Item it;
    it.local_name = f.name;
    if (incremental && is_sst(f.name)) {
      auto r = reuse.find(f.name);
      if (r != reuse.end() && r->second.size == f.size) {
        it.file = r->second;
        it.upload = false;
      } else {
        it.file = StateFile{"shared/" + file_prefix_ + "-" + f.name, f.size, true};
      }
    } else {
      it.file = StateFile{own + f.name, f.size, false};
    }
    plan.push_back(std::move(it));
  }

  KeyedStateHandle proto;
  proto.backend = std::string(backend_kind_name(BackendKind::kRocksDB));
  proto.kg_start = range_.start;
  proto.kg_end = range_.end;
  std::shared_ptr<SharedFiles> shared = shared_;
  const std::string target_dir = target.job_dir;
  // Checkpoints share their timers files (a later checkpoint may reference
  // them); a savepoint keeps its one file to itself.
  const StateFile timers_file =
      incremental ? StateFile{"shared/" + file_prefix_ + "-timers-" + std::to_string(id.value()),
                              static_cast<int64_t>(timers->size()), true}
                  : StateFile{own + std::string(rocks::kTimersName), static_cast<int64_t>(timers->size()), false};
  const int64_t cid = id.value();

  const StateFile cache_file{own + std::string(rocks::kCacheOverlayName),
                             static_cast<int64_t>(cache_overlay->size()), false};
  return AsyncSnapshot([plan = std::move(plan), timers, cache_overlay, cache_file, local, target_dir,
                        job_dir, timers_file,
                        timer_chain = std::move(timer_chain), timers_full, timer_base_bytes, shared, cid,
                        incremental, handle = std::move(proto)]() mutable -> Result<KeyedStateHandle> {
    struct RemoveLocal {
      const std::string& dir;
      ~RemoveLocal() { (void)remove_tree(dir); }
    } cleanup{local};
    RocksHandleMeta meta;
    SharedFiles::Upload upload;
    upload.job_dir = job_dir;
    for (const auto& it : plan) {
      if (it.upload) {
        SLUICE_RETURN_IF_ERROR(
            copy_file(local + "/" + it.local_name, target_dir + "/" + it.file.path, true));
      }
      handle.files.push_back(it.file);
      meta.local_names.push_back(it.local_name);
      if (it.file.shared) upload.by_sst[it.local_name] = it.file;
    }
    for (size_t i = 0; i < timer_chain.size(); ++i) {  // empty when this file has every timer
      handle.files.push_back(timer_chain[i]);
      meta.local_names.emplace_back(i == 0 ? rocks::kTimersName : rocks::kTimersDeltaName);
    }
    if (!timers->empty()) {  // empty: no timer changed since the chain
      SLUICE_RETURN_IF_ERROR(write_file_atomic(target_dir + "/" + timers_file.path, *timers));
      handle.files.push_back(timers_file);
      meta.local_names.emplace_back(timers_full ? rocks::kTimersName : rocks::kTimersDeltaName);
    }
    if (!cache_overlay->empty()) {  // empty: the cache had no dirty entry
      SLUICE_RETURN_IF_ERROR(write_file_atomic(target_dir + "/" + cache_file.path, *cache_overlay));
      handle.files.push_back(cache_file);
      meta.local_names.emplace_back(rocks::kCacheOverlayName);
    }
    handle.meta = serialize(meta);
    if (incremental) {
      upload.timer_files = std::move(timer_chain);
      if (!timers->empty()) upload.timer_files.push_back(timers_file);
      upload.timer_base_bytes = timers_full ? timers_file.size : timer_base_bytes;
      std::lock_guard lk(shared->mu);
      shared->uploaded[cid] = std::move(upload);
    }
    return handle;
  });
}

void RocksDBKeyedStateBackend::notify_checkpoint_complete(CheckpointId id) {
  std::lock_guard lk(shared_->mu);
  auto it = shared_->uploaded.find(id.value());
  if (it == shared_->uploaded.end()) return;  // a savepoint, or not ours
  shared_->confirmed = std::move(it->second);
  shared_->uploaded.erase(shared_->uploaded.begin(), std::next(it));
  // Its timers files hold every change up to it.
  timer_deltas_.erase(timer_deltas_.begin(), timer_deltas_.upper_bound(id.value()));
}

// --- restore -----------------------------------------------------------------------

Status RocksDBKeyedStateBackend::restore(const std::vector<KeyedStateHandle>& handles,
                                         const std::string& job_dir) {
  if (!columns_.empty()) {
    return Status::failed_precondition("RocksDB state must be restored before states are used");
  }
  std::vector<const KeyedStateHandle*> relevant;
  for (const auto& h : handles) {
    if (h.backend != backend_kind_name(BackendKind::kRocksDB)) {
      return Status::failed_precondition(
          "cannot restore '" + h.backend +
          "' keyed state into the RocksDB backend; restore with state.backend=" + h.backend);
    }
    if (!h.range().intersect(range_).empty()) relevant.push_back(&h);
  }
  if (relevant.empty()) return Status::ok();
  if (relevant.size() == 1 && relevant[0]->range() == range_) {
    return restore_exact(*relevant[0], job_dir);
  }
  std::vector<KeyedStateHandle> list;
  for (const auto* h : relevant) list.push_back(*h);
  return restore_ranges(list, job_dir);
}

// The same key groups: the snapshot's files become the DB.
Status RocksDBKeyedStateBackend::restore_exact(const KeyedStateHandle& h,
                                               const std::string& job_dir) {
  close_db();
  const std::string path = dir_ + "/db";
  SLUICE_RETURN_IF_ERROR(remove_tree(path));
  RocksHandleMeta meta;
  std::string cache_overlay;
  auto timers_or = fetch_handle(h, job_dir, path, meta, cache_overlay);
  if (!timers_or.is_ok()) {
    // Leave an empty, usable DB behind (the caller fails the task anyway).
    (void)remove_tree(path);
    (void)open_db();
    return timers_or.status();
  }
  const std::vector<TimersFile> timers = std::move(*timers_or);
  SLUICE_RETURN_IF_ERROR(open_db().with_context("opening restored RocksDB state"));
  if (!cache_overlay.empty()) {
    SLUICE_RETURN_IF_ERROR(apply_cache_overlay(cache_overlay, range_, "restored write cache"));
  }
  SLUICE_RETURN_IF_ERROR(restore_timer_files(timers, "restored timers"));
  // The shared SSTs and timers files stay where they are: the next
  // checkpoint references them.
  SharedFiles::Upload restored;
  restored.job_dir = canonical(job_dir);
  bool timers_shared = true;
  for (size_t i = 0; i < h.files.size(); ++i) {
    const std::string& local = meta.local_names[i];
    if (h.files[i].shared && is_sst(local)) restored.by_sst[local] = h.files[i];
    if (local == rocks::kTimersName || is_timers_delta(local)) {
      timers_shared = timers_shared && h.files[i].shared;
      if (local == rocks::kTimersName) restored.timer_base_bytes = h.files[i].size;
      restored.timer_files.push_back(h.files[i]);
    }
  }
  if (!timers_shared) restored.timer_files.clear();
  std::lock_guard lk(shared_->mu);
  shared_->confirmed = std::move(restored);
  return Status::ok();
}

// Other key groups (rescaling): each snapshot is opened as a temporary DB
// and the key groups of this backend's range are copied out of every
// column family into SST files that are ingested into the DB.
Status RocksDBKeyedStateBackend::restore_ranges(const std::vector<KeyedStateHandle>& handles,
                                                const std::string& job_dir) {
  rocksdb::Options opts = rocks::make_options(*memory_, nullptr);
  int64_t now = clock_->now_ms();
  for (size_t i = 0; i < handles.size(); ++i) {
    const KeyedStateHandle& h = handles[i];
    const KeyGroupRange part = h.range().intersect(range_);
    const std::string tmp = dir_ + "/restore-" + std::to_string(i);
    SLUICE_RETURN_IF_ERROR(remove_tree(tmp));
    RocksHandleMeta meta;
    std::string cache_overlay;
    SLUICE_ASSIGN_OR_RETURN(std::vector<TimersFile> timers,
                            fetch_handle(h, job_dir, tmp + "/db", meta, cache_overlay));
    const std::string what = "restoring key groups " + part.to_string() + " from a snapshot of " +
                             h.range().to_string();

    std::vector<std::string> names;
    SLUICE_RETURN_IF_ERROR(rocks::to_status(
        rocksdb::DB::ListColumnFamilies(opts, tmp + "/db", &names), what));
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const auto& n : names) cfs.emplace_back(n, rocksdb::ColumnFamilyOptions(opts));
    std::vector<rocksdb::ColumnFamilyHandle*> src_handles;
    rocksdb::DB* src_raw = nullptr;
    SLUICE_RETURN_IF_ERROR(rocks::to_status(
        rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(opts), tmp + "/db", cfs, &src_handles,
                                     &src_raw),
        what));
    std::unique_ptr<rocksdb::DB> src(src_raw);
    auto close_src = [&]() {
      for (auto* sh : src_handles) (void)src->DestroyColumnFamilyHandle(sh);
      src_handles.clear();
      src.reset();
    };

    Status st;
    const std::string lower = rocks::key_group_prefix(part.start);
    const std::string upper = rocks::key_group_prefix(part.end + 1);
    for (size_t c = 0; c < names.size() && st.is_ok(); ++c) {
      const std::string& cf = names[c];
      if (cf == rocksdb::kDefaultColumnFamilyName) {
        // State signatures: the same in every snapshot of the operator.
        std::unique_ptr<rocksdb::Iterator> it(src->NewIterator(rocksdb::ReadOptions(), src_handles[c]));
        for (it->SeekToFirst(); it->Valid() && st.is_ok(); it->Next()) {
          st = rocks::to_status(db_->db->Put(db_->write, db_->db->DefaultColumnFamily(), it->key(),
                                             it->value()),
                                what);
        }
        if (st.is_ok()) st = rocks::to_status(it->status(), what);
        continue;
      }
      if (cf.rfind(rocks::kStatePrefix, 0) != 0) continue;
      auto dst = db_->handles.find(cf);
      if (dst == db_->handles.end()) {
        rocksdb::ColumnFamilyHandle* handle = nullptr;
        st = rocks::to_status(
            db_->db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(db_->options), cf, &handle),
            what);
        if (!st.is_ok()) break;
        dst = db_->handles.emplace(cf, handle).first;
      }
      rocksdb::ReadOptions ro;
      rocksdb::Slice lo(lower), hi(upper);
      ro.iterate_lower_bound = &lo;
      ro.iterate_upper_bound = &hi;
      std::unique_ptr<rocksdb::Iterator> it(src->NewIterator(ro, src_handles[c]));
      rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), opts, dst->second);
      const std::string sst = tmp + "/ingest-" + std::to_string(c) + ".sst";
      uint64_t n = 0;
      for (it->Seek(lo); it->Valid() && st.is_ok(); it->Next()) {
        std::string_view v(it->value().data(), it->value().size());
        int64_t expiry;
        if (!rocks::take_header(v, expiry)) {
          st = Status::corruption(what + ": a value of " + cf + " has a bad header");
          break;
        }
        if (expiry != 0 && expiry <= now) continue;  // expired: not carried over
        if (n == 0) st = rocks::to_status(writer.Open(sst), what);
        if (st.is_ok()) st = rocks::to_status(writer.Put(it->key(), it->value()), what);
        ++n;
      }
      if (st.is_ok()) st = rocks::to_status(it->status(), what);
      if (st.is_ok() && n > 0) {
        st = rocks::to_status(writer.Finish(), what);
        rocksdb::IngestExternalFileOptions io;
        io.move_files = true;
        if (st.is_ok()) st = rocks::to_status(db_->db->IngestExternalFile(dst->second, {sst}, io), what);
      }
    }
    close_src();
    // After the SSTs' ingestion, so that its entries are the newer ones.
    if (st.is_ok() && !cache_overlay.empty()) {
      st = apply_cache_overlay(cache_overlay, part, what + " (write cache)");
    }
    if (st.is_ok()) st = restore_timer_files(timers, what + " (timers)");
    Status rm = remove_tree(tmp);
    SLUICE_RETURN_IF_ERROR(st);
    SLUICE_RETURN_IF_ERROR(rm);
  }
  return Status::ok();
}

}  // namespace sluice::state
