#include "state/rocksdb_backend.h"

#include <dirent.h>
#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <random>

#include "engine/common/assert.h"
#include "engine/common/hash.h"
#include "state/checkpoint_storage.h"
#include "state/rocksdb_internal.h"

namespace sluice::state {

namespace {
// Approximate memory of a cache entry beside its key and value bytes (hash
// node, two string headers, flags).
constexpr size_t kCacheEntryOverhead = 96;

/// The cache entry of `key` in column `c`, created (absent, clean) if new;
/// `bytes` counts a new entry.
auto cache_entry(RocksDBKeyedStateBackend::Column* c, std::string_view key, size_t& bytes) {
  auto it = c->cache.find(key);
  if (it != c->cache.end()) return it;
  bytes += key.size() + kCacheEntryOverhead;
  return c->cache.try_emplace(std::string(key)).first;
}
}  // namespace

// --- options -------------------------------------------------------------------

Result<RocksDBOptions> RocksDBOptions::from_config(const Configuration& c) {
  RocksDBOptions o;
  o.local_dir = c.get_string("state.rocksdb.local-dir", o.local_dir);
  SLUICE_ASSIGN_OR_RETURN(o.memory_bytes, c.get_bytes("state.rocksdb.memory", o.memory_bytes));
  SLUICE_ASSIGN_OR_RETURN(o.write_cache_bytes,
                          c.get_bytes("state.rocksdb.write-cache", o.write_cache_bytes));
  if (o.write_cache_bytes < 0) {
    return Status::invalid_argument("state.rocksdb.write-cache must not be negative");
  }
  SLUICE_ASSIGN_OR_RETURN(o.write_cache_dirty_entries,
                          c.get_int("state.rocksdb.write-cache-dirty", o.write_cache_dirty_entries));
  if (o.write_cache_dirty_entries < 0) {
    return Status::invalid_argument("state.rocksdb.write-cache-dirty must not be negative (entries; 0 = off)");
  }
  if (o.local_dir.empty()) {
    return Status::invalid_argument("state.rocksdb.local-dir must not be empty");
  }
  while (o.local_dir.size() > 1 && o.local_dir.back() == '/') o.local_dir.pop_back();
  constexpr int64_t kMinMemory = 8LL << 20;
  if (o.memory_bytes < kMinMemory) {
    return Status::invalid_argument("state.rocksdb.memory must be at least 8mb, got " +
                                    std::to_string(o.memory_bytes) + " bytes");
  }
  return o;
}

namespace rocks {

rocksdb::CompactionFilter::Decision TtlCompactionFilter::FilterV2(
    int, const rocksdb::Slice&, ValueType type, const rocksdb::Slice& value, std::string*,
    std::string*) const {
  if (type != ValueType::kValue) return Decision::kKeep;
  std::string_view v(value.data(), value.size());
  int64_t expiry;
  if (!take_header(v, expiry) || expiry == 0) return Decision::kKeep;
  return expiry <= clock_->now_ms() ? Decision::kRemove : Decision::kKeep;
}

bool ListAppendOperator::FullMergeV2(const MergeOperationInput& in,
                                     MergeOperationOutput* out) const {
  std::string& r = out->new_value;
  r.clear();
  put_header(r, 0);
  if (in.existing_value) {
    std::string_view v(in.existing_value->data(), in.existing_value->size());
    int64_t expiry;
    if (!take_header(v, expiry)) return false;  // RocksDB reports corruption
    r.append(v.data(), v.size());
  }
  for (const auto& op : in.operand_list) r.append(op.data(), op.size());
  return true;
}

bool ListAppendOperator::PartialMergeMulti(const rocksdb::Slice&,
                                           const std::deque<rocksdb::Slice>& operands,
                                           std::string* new_value, rocksdb::Logger*) const {
  new_value->clear();
  for (const auto& op : operands) new_value->append(op.data(), op.size());
  return true;
}

rocksdb::Options make_options(const RocksDBMemoryBudget& memory,
                              const rocksdb::CompactionFilter* filter) {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.create_missing_column_families = true;
  // Two cores is the common deployment; RocksDB shares the Env's pools
  // between all DBs of the process anyway.
  o.max_background_jobs = 2;
  o.write_buffer_manager = memory.write_buffer_manager();
  o.write_buffer_size = static_cast<size_t>(memory.write_buffer_size());
  o.max_write_buffer_number = 2;
  // Smaller files than RocksDB's default 64 MiB: incremental checkpoints
  // upload whole SSTs, so finer files mean less re-upload after compaction.
  o.target_file_size_base = 16ULL << 20;
  // A Bloom filter over the memtable: reads of keys that are not there
  // (every first touch of a key) skip the skiplist search.
  o.memtable_whole_key_filtering = true;
  o.memtable_prefix_bloom_size_ratio = 0.05;
  o.level_compaction_dynamic_level_bytes = true;
  // The MANIFEST is copied into every checkpoint: roll it over early.
  o.max_manifest_file_size = 4ULL << 20;
  // State is thrown away when the backend closes; checkpoints flush.
  o.avoid_flush_during_shutdown = true;
  o.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  o.keep_log_file_num = 2;
  o.max_log_file_size = 1ULL << 20;
  o.stats_dump_period_sec = 0;
  o.stats_persist_period_sec = 0;
  o.compression = rocksdb::kLZ4Compression;
  auto supported = rocksdb::GetSupportedCompressions();
  if (std::find(supported.begin(), supported.end(), rocksdb::kLZ4Compression) == supported.end()) {
    o.compression = rocksdb::kSnappyCompression;
  }
  // shared: every column family of every DB uses the one merge operator.
  static const std::shared_ptr<rocksdb::MergeOperator> kListAppend =
      std::make_shared<ListAppendOperator>();
  o.merge_operator = kListAppend;
  o.compaction_filter = filter;

  rocksdb::BlockBasedTableOptions t;
  t.block_cache = memory.cache();
  // Index and filter blocks live in the cache (they count against the
  // budget), partitioned into small blocks: a whole-file filter of a 16 MiB
  // SST is over 1 MiB, larger than a cache shard's high-priority pool, and
  // would be evicted and read again on every miss. Only the small top
  // level stays pinned.
  t.cache_index_and_filter_blocks = true;
  t.cache_index_and_filter_blocks_with_high_priority = true;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  t.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  t.partition_filters = true;
  t.metadata_block_size = 4096;
  t.pin_top_level_index_and_filter = true;
  // Whole-key Bloom filters: most point reads of fresh keys find nothing.
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}

std::string key_group_prefix(int32_t kg) {
  std::string out;
  ByteWriter(out).put_fixed16_be(static_cast<uint16_t>(kg));
  return out;
}

Status to_status(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::ok();
  std::string msg = std::string(what) + ": " + s.ToString();
  if (s.IsIOError()) return Status::io_error(msg);
  if (s.IsCorruption()) return Status::corruption(msg);
  if (s.IsNotFound()) return Status::not_found(msg);
  if (s.IsInvalidArgument()) return Status::invalid_argument(msg);
  return Status::internal(msg);
}

}  // namespace rocks

namespace {

// Instance names become file names: portable characters, bounded length
// (shared SST names add a tag and the SST's name; 255 bytes is the limit).
std::string file_safe(const std::string& s) {
  constexpr size_t kMaxLength = 120;
  std::string out;
  for (char c : s) {
    out.push_back(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '_');
  }
  if (out.size() > kMaxLength) {
    out = out.substr(0, kMaxLength - 9) + "_" + std::to_string(murmur3_32(s) % 100'000'000);
  }
  return out.empty() ? "backend" : out;
}

// Working directories are "<instance>.p<pid>.<tag>". Those of processes that
// died (SIGKILL skips destructors) are removed when the next backend starts.
void remove_stale_dirs(const std::string& local_dir) {
  DIR* d = ::opendir(local_dir.c_str());
  if (!d) return;
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    auto dot2 = n.rfind('.');
    if (dot2 == std::string::npos || dot2 == 0) continue;
    auto dot1 = n.rfind('.', dot2 - 1);
    if (dot1 == std::string::npos || n.compare(dot1 + 1, 1, "p") != 0) continue;
    std::string pid_text = n.substr(dot1 + 2, dot2 - dot1 - 2);
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::strtol(pid_text.c_str(), nullptr, 10));
    if (pid == ::getpid()) continue;
    if (::kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(local_dir + "/" + n);
  }
  ::closedir(d);
  for (const auto& p : stale) {
    Status st = remove_tree(p);
    if (!st.is_ok()) spdlog::warn("cannot remove stale RocksDB directory: {}", st.to_string());
  }
}

std::string random_tag() {
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(::getpid()));
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return std::string(buf, 10);
}

}  // namespace

// --- lifecycle ---------------------------------------------------------------------

RocksDBKeyedStateBackend::RocksDBKeyedStateBackend(const BackendSpec& spec, RocksDBOptions options,
                                                   std::shared_ptr<RocksDBMemoryBudget> memory,
                                                   std::string dir)
    : KeyedStateBackend(spec.range, spec.max_parallelism,
                        spec.clock ? spec.clock : &SystemClock::instance()),
      options_(std::move(options)),
      memory_(std::move(memory)),
      dir_(std::move(dir)),
      shared_(std::make_shared<SharedFiles>()),
      dirty_(std::make_unique<DirtyQueue>()) {
  key_buf_.reserve(64);
  value_buf_.reserve(64);
}

Result<std::unique_ptr<RocksDBKeyedStateBackend>> RocksDBKeyedStateBackend::create(
    const BackendSpec& spec, const RocksDBOptions& options) {
  if (spec.max_parallelism < 1 || spec.max_parallelism > kMaxMaxParallelism) {
    return Status::invalid_argument("max parallelism " + std::to_string(spec.max_parallelism) +
                                    " does not fit the RocksDB key layout (1.." +
                                    std::to_string(kMaxMaxParallelism) + ")");
  }
  SLUICE_RETURN_IF_ERROR(make_dirs(options.local_dir)
                             .with_context("state.rocksdb.local-dir '" + options.local_dir + "'"));
  remove_stale_dirs(options.local_dir);
  std::string tag = random_tag();
  std::string safe = file_safe(spec.instance_name);
  std::string dir = options.local_dir + "/" + safe + ".p" + std::to_string(::getpid()) + "." + tag;
  SLUICE_RETURN_IF_ERROR(remove_tree(dir));
  SLUICE_RETURN_IF_ERROR(make_dirs(dir));
  auto memory = RocksDBMemoryBudget::acquire(options.memory_bytes);
  std::unique_ptr<RocksDBKeyedStateBackend> b(
      new RocksDBKeyedStateBackend(spec, options, std::move(memory), dir));
  b->file_prefix_ = safe + "-" + tag;
  Status st = b->open_db();
  if (!st.is_ok()) return st.with_context("opening RocksDB state in '" + dir + "'");
  return b;
}

RocksDBKeyedStateBackend::~RocksDBKeyedStateBackend() {
  close_db();
  Status st = remove_tree(dir_);
  if (!st.is_ok()) spdlog::warn("RocksDB state backend: {}", st.to_string());
}

Status RocksDBKeyedStateBackend::open_db() {
  auto d = std::make_unique<Db>();
  d->filter = std::make_unique<rocks::TtlCompactionFilter>(clock_);
  d->options = rocks::make_options(*memory_, d->filter.get());
  d->write.disableWAL = true;  // durability comes from checkpoints
  const std::string path = dir_ + "/db";
  std::vector<std::string> names;
  if (::access((path + "/CURRENT").c_str(), F_OK) == 0) {
    SLUICE_RETURN_IF_ERROR(rocks::to_status(
        rocksdb::DB::ListColumnFamilies(d->options, path, &names), "listing column families"));
  }
  if (std::find(names.begin(), names.end(), rocksdb::kDefaultColumnFamilyName) == names.end()) {
    names.insert(names.begin(), rocksdb::kDefaultColumnFamilyName);
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const auto& n : names) cfs.emplace_back(n, rocksdb::ColumnFamilyOptions(d->options));
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  SLUICE_RETURN_IF_ERROR(rocks::to_status(
      rocksdb::DB::Open(rocksdb::DBOptions(d->options), path, cfs, &handles, &d->db),
      "opening '" + path + "'"));
  for (size_t i = 0; i < handles.size(); ++i) d->handles[names[i]] = handles[i];
  db_ = std::move(d);
  return Status::ok();
}

void RocksDBKeyedStateBackend::close_db() {
  if (!db_) return;
  dirty_->items.clear();  // its entries go with the columns
  columns_.clear();
  for (auto& [name, h] : db_->handles) {
    rocksdb::Status s = db_->db->DestroyColumnFamilyHandle(h);
    if (!s.ok()) spdlog::warn("closing column family {}: {}", name, s.ToString());
  }
  db_->handles.clear();
  rocksdb::Status s = db_->db->Close();
  if (!s.ok()) spdlog::warn("closing RocksDB in {}: {}", dir_, s.ToString());
  delete db_->db;
  db_.reset();
}

// --- state access ----------------------------------------------------------------

RocksDBKeyedStateBackend::Column* RocksDBKeyedStateBackend::column(const std::string& name,
                                                                   std::string_view signature) {
  auto it = columns_.find(name);
  if (it != columns_.end()) return it->second.get();
  auto* db = db_->db;
  // A restored state must come back with the type it was written with.
  std::string sig_key = std::string(rocks::kSignaturePrefix) + name;
  std::string stored;
  rocksdb::Status s = db->Get(db_->read, db->DefaultColumnFamily(), sig_key, &stored);
  if (s.ok()) {
    if (stored != signature) {
      throw StateTypeError("state '" + name + "' was checkpointed as " + stored +
                           " and cannot be restored as " + std::string(signature));
    }
  } else if (!s.IsNotFound()) {
    throw StateAccessError("state '" + name + "': reading its signature: " + s.ToString());
  } else {
    s = db->Put(db_->write, db->DefaultColumnFamily(), sig_key,
                rocksdb::Slice(signature.data(), signature.size()));
    if (!s.ok()) throw StateAccessError("state '" + name + "': " + s.ToString());
  }
  std::string cf_name = std::string(rocks::kStatePrefix) + name;
  auto h = db_->handles.find(cf_name);
  if (h == db_->handles.end()) {
    rocksdb::ColumnFamilyHandle* handle = nullptr;
    s = db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(db_->options), cf_name, &handle);
    if (!s.ok()) {
      throw StateAccessError("state '" + name + "': creating its column family: " + s.ToString());
    }
    h = db_->handles.emplace(cf_name, handle).first;
  }
  auto c = std::make_unique<Column>();
  c->handle = h->second;
  c->name = name;
  return columns_.emplace(name, std::move(c)).first->second.get();
}

template <typename CacheSlot>
void RocksDBKeyedStateBackend::note_dirty(Column* c, CacheSlot& slot) {
  const auto bound = static_cast<size_t>(options_.write_cache_dirty_entries);
  if (bound == 0) return;
  dirty_->push(c, slot);
  if (dirty_->items.size() > bound) drain_dirty_entries();
}

std::optional<std::string_view> RocksDBKeyedStateBackend::get(Column* c, std::string_view key) {
  Column::Entry* e = nullptr;
  if (c->cached) {
    auto it = c->cache.find(key);
    if (it != c->cache.end()) {
      if (!it->second.present) return std::nullopt;
      return std::string_view(it->second.value);
    }
    // Reads fill the cache too: keep it within its budget.
    if (cache_bytes_ > static_cast<size_t>(options_.write_cache_bytes)) flush_write_cache();
    e = &c->cache.try_emplace(std::string(key)).first->second;
    cache_bytes_ += key.size() + kCacheEntryOverhead;
  }
  db_->pin.Reset();
  rocksdb::Status s =
      db_->db->Get(db_->read, c->handle, rocksdb::Slice(key.data(), key.size()), &db_->pin);
  if (s.IsNotFound()) {
    if (e) e->in_db = false;
    return std::nullopt;
  }
  if (!s.ok()) {
    if (e) {
      c->cache.erase(c->cache.find(key));
      cache_bytes_ -= key.size() + kCacheEntryOverhead;
    }
    throw StateAccessError("state '" + c->name + "': read failed: " + s.ToString());
  }
  if (e) {
    e->value.assign(db_->pin.data(), db_->pin.size());
    e->present = true;
    cache_bytes_ += e->value.size();
    return std::string_view(e->value);
  }
  return std::string_view(db_->pin.data(), db_->pin.size());
}

void RocksDBKeyedStateBackend::put(Column* c, std::string_view key, std::string_view value) {
  if (c->cached) {
    auto it = cache_entry(c, key, cache_bytes_);
    Column::Entry& e = it->second;
    cache_bytes_ += value.size();
    cache_bytes_ -= e.value.size();
    e.value.assign(value.data(), value.size());
    e.present = true;
    e.dirty = true;
    if (cache_bytes_ > static_cast<size_t>(options_.write_cache_bytes)) {
      flush_write_cache();
    } else {
      note_dirty(c, *it);
    }
    return;
  }
  rocksdb::Status s = db_->db->Put(db_->write, c->handle, rocksdb::Slice(key.data(), key.size()),
                                   rocksdb::Slice(value.data(), value.size()));
  if (!s.ok()) throw StateAccessError("state '" + c->name + "': write failed: " + s.ToString());
}

void RocksDBKeyedStateBackend::merge(Column* c, std::string_view key, std::string_view elements) {
  if (c->cached) flush_write_cache();  // not used by cached states; kept correct anyway
  rocksdb::Status s =
      db_->db->Merge(db_->write, c->handle, rocksdb::Slice(key.data(), key.size()),
                     rocksdb::Slice(elements.data(), elements.size()));
  if (!s.ok()) throw StateAccessError("state '" + c->name + "': write failed: " + s.ToString());
}

void RocksDBKeyedStateBackend::remove(Column* c, std::string_view key) {
  if (c->cached) {
    auto it = cache_entry(c, key, cache_bytes_);
    Column::Entry& e = it->second;
    if (!e.in_db) {
      // Written and removed between two flushes: RocksDB never sees it.
      if (e.queued) {
        // The drain queue points at it: kept, as what it is, a clean
        // absent entry.
        cache_bytes_ -= e.value.size();
        e.value.clear();
        e.present = false;
        e.dirty = false;
        return;
      }
      cache_bytes_ -= key.size() + kCacheEntryOverhead + e.value.size();
      c->cache.erase(it);
      return;
    }
    cache_bytes_ -= e.value.size();
    e.value.clear();
    e.present = false;
    e.dirty = true;
    note_dirty(c, *it);
    return;
  }
  rocksdb::Status s =
      db_->db->Delete(db_->write, c->handle, rocksdb::Slice(key.data(), key.size()));
  if (!s.ok()) throw StateAccessError("state '" + c->name + "': delete failed: " + s.ToString());
}

void RocksDBKeyedStateBackend::enable_write_cache(Column* c) {
  if (c->cached || options_.write_cache_bytes == 0) return;
  c->cached = true;
  cached_columns_.push_back(c);
}

// --- cursors and range removal ------------------------------------------------------

struct RocksDBKeyedStateBackend::Cursor::Impl {
  std::string lower, upper;
  rocksdb::Slice lower_slice, upper_slice;
  rocksdb::ReadOptions read;
  std::unique_ptr<rocksdb::Iterator> it;
  const Column* column = nullptr;

  void check() const {
    if (!it->Valid() && !it->status().ok()) {
      throw StateAccessError("state '" + column->name + "': iteration failed: " +
                             it->status().ToString());
    }
  }
};

RocksDBKeyedStateBackend::Cursor::Cursor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RocksDBKeyedStateBackend::Cursor::Cursor(Cursor&&) noexcept = default;
RocksDBKeyedStateBackend::Cursor::~Cursor() = default;
bool RocksDBKeyedStateBackend::Cursor::valid() const { return impl_->it->Valid(); }
std::string_view RocksDBKeyedStateBackend::Cursor::key() const {
  rocksdb::Slice k = impl_->it->key();
  return {k.data(), k.size()};
}
std::string_view RocksDBKeyedStateBackend::Cursor::value() const {
  rocksdb::Slice v = impl_->it->value();
  return {v.data(), v.size()};
}
void RocksDBKeyedStateBackend::Cursor::seek_to_first() {
  impl_->it->SeekToFirst();  // the lower bound, since one is set
  impl_->check();
}
void RocksDBKeyedStateBackend::Cursor::seek_to_last() {
  impl_->it->SeekToLast();  // the last key below the upper bound
  impl_->check();
}
void RocksDBKeyedStateBackend::Cursor::next() {
  impl_->it->Next();
  impl_->check();
}
void RocksDBKeyedStateBackend::Cursor::prev() {
  impl_->it->Prev();
  impl_->check();
}

RocksDBKeyedStateBackend::Cursor RocksDBKeyedStateBackend::open_cursor(Column* c,
                                                                       std::string_view lower,
                                                                       std::string_view upper) {
  if (c->cached) write_back_dirty_entries();  // the DB as the cache has it
  auto impl = std::make_unique<Cursor::Impl>();
  impl->lower.assign(lower);
  impl->upper.assign(upper);
  impl->lower_slice = rocksdb::Slice(impl->lower);
  impl->upper_slice = rocksdb::Slice(impl->upper);
  impl->read.iterate_lower_bound = &impl->lower_slice;
  impl->read.iterate_upper_bound = &impl->upper_slice;
  impl->column = c;
  impl->it.reset(db_->db->NewIterator(impl->read, c->handle));
  return Cursor(std::move(impl));
}

void RocksDBKeyedStateBackend::remove_range(Column* c, std::string_view lower,
                                            std::string_view upper) {
  if (lower >= upper) return;
  if (c->cached) flush_write_cache();  // the cache must not keep what this deletes
  const size_t limit = options_.range_delete_threshold;
  if (limit > 0) {
    // Few entries: point deletes (no range tombstone for later reads to
    // consult). More than `limit`: stop counting, one DeleteRange.
    rocksdb::WriteBatch batch;
    size_t n = 0;
    Cursor cur = open_cursor(c, lower, upper);
    for (cur.seek_to_first(); cur.valid() && n <= limit; cur.next(), ++n) {
      std::string_view k = cur.key();
      rocksdb::Status s = batch.Delete(c->handle, rocksdb::Slice(k.data(), k.size()));
      if (!s.ok()) throw StateAccessError("state '" + c->name + "': delete failed: " + s.ToString());
    }
    if (n <= limit) {
      if (n == 0) return;
      rocksdb::Status s = db_->db->Write(db_->write, &batch);
      if (!s.ok()) throw StateAccessError("state '" + c->name + "': delete failed: " + s.ToString());
      return;
    }
  }
  rocksdb::Status s = db_->db->DeleteRange(db_->write, c->handle,
                                           rocksdb::Slice(lower.data(), lower.size()),
                                           rocksdb::Slice(upper.data(), upper.size()));
  if (!s.ok()) throw StateAccessError("state '" + c->name + "': range delete failed: " + s.ToString());
}

std::string RocksDBKeyedStateBackend::prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<uint8_t>(end.back()) == 0xff) end.pop_back();
  SLUICE_ASSERT(!end.empty(), "a state key prefix starts with its key group, below 0xff");
  end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
  return end;
}

void RocksDBKeyedStateBackend::corrupt(const Column* c, std::string_view what) const {
  throw StateAccessError("state '" + c->name + "' (key group " +
                         std::to_string(current_kg_.value()) + "): " + std::string(what) +
                         "; the stored bytes do not match the state's type");
}

const std::string& RocksDBKeyedStateBackend::state_name(const Column* c) const { return c->name; }

// --- inspection ------------------------------------------------------------------

Status RocksDBKeyedStateBackend::compact() {
  flush_write_cache();
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (auto& [name, h] : db_->handles) {
    SLUICE_RETURN_IF_ERROR(rocks::to_status(db_->db->Flush(rocksdb::FlushOptions(), h),
                                            "flushing " + name));
    SLUICE_RETURN_IF_ERROR(rocks::to_status(db_->db->CompactRange(co, h, nullptr, nullptr),
                                            "compacting " + name));
  }
  return Status::ok();
}

Result<uint64_t> RocksDBKeyedStateBackend::raw_entry_count(const std::string& name) {
  auto h = db_->handles.find(std::string(rocks::kStatePrefix) + name);
  if (h == db_->handles.end()) return Status::not_found("no state '" + name + "'");
  flush_write_cache();
  std::unique_ptr<rocksdb::Iterator> it(db_->db->NewIterator(rocksdb::ReadOptions(), h->second));
  uint64_t n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
  SLUICE_RETURN_IF_ERROR(rocks::to_status(it->status(), "scanning " + name));
  return n;
}

size_t RocksDBKeyedStateBackend::confirmed_shared_files() const {
  std::lock_guard lk(shared_->mu);
  return shared_->confirmed.by_sst.size() + shared_->confirmed.timer_files.size();
}

std::vector<std::pair<std::string, KeyGroup>> RocksDBKeyedStateBackend::keys_of_state(
    const std::string& name, const KeyLength& key_length) {
  write_back_caches();
  std::vector<std::pair<std::string, KeyGroup>> out;
  auto it = columns_.find(name);
  if (it == columns_.end()) return out;
  // Entry keys: key group (2 bytes) + key + varint namespace length + namespace
  // [+ map key]; in key order, so a key's entries are adjacent.
  std::string lower, last;
  ByteWriter(lower).put_fixed16_be(static_cast<uint16_t>(range_.start));
  ByteWriter(last).put_fixed16_be(static_cast<uint16_t>(range_.end));
  Cursor cur = open_cursor(it->second.get(), lower, prefix_end(last));
  for (cur.seek_to_first(); cur.valid(); cur.next()) {
    std::string_view k = cur.key(), raw = cur.value();
    if (k.size() < 3) continue;
    std::string_view rest = k.substr(2);
    size_t len = key_length(rest);
    if (len == 0 || len >= rest.size() || rest[len] != 0) continue;  // not the default namespace
    int64_t expiry = 0;
    if (!rocks::take_header(raw, expiry) || expired(expiry)) continue;
    std::string_view key = rest.substr(0, len);
    if (!out.empty() && out.back().first == key) continue;
    int32_t kg = (static_cast<uint8_t>(k[0]) << 8) | static_cast<uint8_t>(k[1]);
    out.emplace_back(std::string(key), KeyGroup(kg));
  }
  return out;
}

}  // namespace sluice::state
