// Internals of the RocksDB backend shared by rocksdb_backend.cc (state
// access) and rocksdb_snapshot.cc (snapshots, restore). Not part of the
// state API: include only from state/rocksdb_*.cc.
#pragma once

#include <deque>
#include <rocksdb/compaction_filter.h>
#include <rocksdb/db.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/options.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/common/clock.h"
#include "state/rocksdb_backend.h"

namespace sluice::state {

namespace rocks {

/// Column family name of a state.
inline constexpr std::string_view kStatePrefix = "state:";
/// Default-column-family key of a state's type signature.
inline constexpr std::string_view kSignaturePrefix = "sig:";
/// Name of the timers side file inside a snapshot (every timer).
inline constexpr std::string_view kTimersName = "_timers";
/// Name of a timers delta inside a snapshot: changes to apply, in the
/// handle's order, to the timers of the `_timers` file before it.
inline constexpr std::string_view kTimersDeltaName = "_timers.delta";
/// Name of the write cache's side file inside a snapshot: the entries only
/// the cache held at the barrier, written over the snapshot's RocksDB files
/// on restore (rocksdb_write_cache.cc).
inline constexpr std::string_view kCacheOverlayName = "_cache";

/// Drops entries whose stored expiry has passed. Values without an expiry
/// (and list merge operands, which carry none) are kept. Stateless apart
/// from the clock, so one instance serves every (sub)compaction; the clock
/// must outlive the DB.
class TtlCompactionFilter final : public rocksdb::CompactionFilter {
 public:
  explicit TtlCompactionFilter(const Clock* clock) : clock_(clock) {}
  Decision FilterV2(int level, const rocksdb::Slice& key, ValueType type,
                    const rocksdb::Slice& value, std::string* new_value,
                    std::string* skip_until) const override;
  const char* Name() const override { return "SluiceTtlFilter"; }

 private:
  const Clock* clock_;
};

/// List append: operands are element bytes; the result is a plain header
/// followed by the existing list's elements and every operand's. Lists
/// with TTL never use it (they are rewritten), so the result never expires.
class ListAppendOperator final : public rocksdb::MergeOperator {
 public:
  bool FullMergeV2(const MergeOperationInput& in, MergeOperationOutput* out) const override;
  bool PartialMergeMulti(const rocksdb::Slice& key, const std::deque<rocksdb::Slice>& operands,
                         std::string* new_value, rocksdb::Logger* logger) const override;
  const char* Name() const override { return "SluiceListAppend"; }
};

/// Options of every DB of the backend (its own and temporary ones opened
/// for restore): shared memory budget, merge operator, TTL filter (nullptr
/// for read-only DBs).
rocksdb::Options make_options(const RocksDBMemoryBudget& memory,
                              const rocksdb::CompactionFilter* filter);

/// Two big-endian bytes of a key group: the first bytes of every key.
std::string key_group_prefix(int32_t kg);

Status to_status(const rocksdb::Status& s, std::string_view what);

}  // namespace rocks

struct RocksDBKeyedStateBackend::Db {
  std::unique_ptr<rocks::TtlCompactionFilter> filter;
  rocksdb::Options options;
  rocksdb::DB* db = nullptr;
  // Every open column family by its RocksDB name (default included).
  std::map<std::string, rocksdb::ColumnFamilyHandle*, std::less<>> handles;
  rocksdb::ReadOptions read;
  rocksdb::WriteOptions write;
  rocksdb::PinnableSlice pin;
};

struct RocksDBKeyedStateBackend::Column {
  rocksdb::ColumnFamilyHandle* handle = nullptr;
  std::string name;  // the state's name
  /// Write-back cache of this column (enable_write_cache): entries read or
  /// written since the last flush, by full RocksDB key. Node-based, so a
  /// view into an entry survives inserts of other entries.
  bool cached = false;
  struct Entry {
    std::string value;     // raw value (header + payload) when present
    bool present = false;  // false: no live entry (deleted, or never written)
    bool dirty = false;    // differs from the DB: written at the next flush
    bool in_db = true;     // the DB may hold an entry for the key
    bool queued = false;   // in the backend's DirtyQueue (never erased while queued)
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view k) const { return std::hash<std::string_view>{}(k); }
  };
  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> cache;
};

/// The write cache's changed entries in the order they changed, for the
/// write-back between checkpoints (options.write_cache_dirty_entries > 0):
/// every dirty entry is queued once (Entry::queued). A queued entry is never
/// erased from its column's cache (a remove turns it into a clean absent
/// entry instead), so the pointers stay valid until the caches are emptied,
/// which empties the queue too. Task thread.
struct RocksDBKeyedStateBackend::DirtyQueue {
  struct Item {
    Column* column;
    std::pair<const std::string, Column::Entry>* entry;
  };
  std::deque<Item> items;
  void push(Column* c, std::pair<const std::string, Column::Entry>& kv) {
    if (kv.second.queued) return;
    kv.second.queued = true;
    items.push_back({c, &kv});
  }
  /// Forgets every item; their entries (still cached) are no longer queued.
  void unqueue_all() {
    for (Item& i : items) i.entry->second.queued = false;
    items.clear();
  }
  size_t drained_bytes = 0;  // written by drains since the last background flush started
};

/// Which shared files hold this backend's SSTs. Written by the snapshot
/// thread (an upload finished) and the task thread (a checkpoint completed,
/// a restore); guarded by `mu`.
struct RocksDBKeyedStateBackend::SharedFiles {
  struct Upload {
    std::string job_dir;                      // canonical job dir of the paths
    std::map<std::string, StateFile> by_sst;  // local SST name -> shared file
    /// The checkpoint's timers files, all shared: every timer, then the
    /// deltas to apply in order (empty: none a later checkpoint can use).
    std::vector<StateFile> timer_files;
    int64_t timer_base_bytes = 0;  // size of timer_files[0]
  };
  std::mutex mu;
  std::map<int64_t, Upload> uploaded;  // by checkpoint id, until it completes
  Upload confirmed;                    // of the last completed checkpoint (or restore)
};

}  // namespace sluice::state
