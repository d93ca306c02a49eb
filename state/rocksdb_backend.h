// The RocksDB keyed-state backend: state lives in an embedded RocksDB on
// local disk, so it can be much larger than memory; snapshots are RocksDB
// checkpoints (hard links) uploaded incrementally.
//
// Layout (see state/README.md for the whole picture):
//   one column family per declared state, named "state:<name>";
//   key   = key group (2 bytes big-endian) + serialized key (Serde, self-
//           delimiting) + varint length + namespace [+ serialized map key],
//           so one key group, and a range of them, is one contiguous scan;
//   value = tag byte (0 plain, 1 = an 8-byte expiry follows) + Serde bytes.
//   The default column family holds "sig:<name>" -> type signature, to
//   refuse restoring a state as another type.
// Timers stay in memory (TimerQueue) and are written to a side file of
// each snapshot.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/common/config.h"
#include "engine/common/serde.h"
#include "state/backend_factory.h"
#include "state/keyed_state_backend.h"
#include "state/rocksdb_memory.h"

namespace sluice::state {

/// Options of the RocksDB backend, from the job configuration.
struct RocksDBOptions {
  /// state.rocksdb.local-dir: where backends keep their working
  /// directories. Default /tmp/sluice-rocksdb.
  std::string local_dir = "/tmp/sluice-rocksdb";
  /// state.rocksdb.memory: the process's RocksDB budget (block cache +
  /// memtables, shared by every backend). Default 256mb.
  int64_t memory_bytes = 256LL << 20;
  /// Map-state range removal (OrderedMapState::remove_range, clear): a
  /// range of at most this many entries is deleted entry by entry in one
  /// write batch, a larger one with a single DeleteRange. DeleteRange costs
  /// one write however large the range, but while its tombstone sits in the
  /// memtable every new iterator re-fragments all of the memtable's range
  /// tombstones (RocksDB 7.8): removals interleaved with reads, as in a
  /// join, became 25x slower than point deletes in state_bench. Point
  /// deletes cost a scan of the range. Default 512; 0 = always DeleteRange.
  size_t range_delete_threshold = 512;
  /// state.rocksdb.write-cache: bytes of value, reducing and aggregating
  /// state each backend keeps in memory between checkpoints (a write-back
  /// cache: a read-modify-write per record touches RocksDB once per
  /// checkpoint, not per record). Written into RocksDB in one write batch
  /// before an iteration over a cached state and when full; a snapshot
  /// copies its changed entries into a side file of the checkpoint instead
  /// (rocksdb_write_cache.cc). Default 16mb; 0 = no cache.
  int64_t write_cache_bytes = 16LL << 20;
  /// state.rocksdb.write-cache-dirty: changed entries the write cache may
  /// hold at most. Beyond it the oldest are written to RocksDB in small
  /// batches (an eighth of it) between checkpoints and stay cached, clean:
  /// a barrier then copies at most this many entries, and the cache, when
  /// full, has few left to write, instead of a pause of the task thread
  /// every few seconds. 0 (the default) = entries are written only when the
  /// cache is full or before an iteration: the drain rewrites hot keys, and
  /// cost the fraud job 5-10 % of its throughput on RocksDB (bench/README.md).
  int64_t write_cache_dirty_entries = 0;

  static Result<RocksDBOptions> from_config(const Configuration& c);
};

namespace rocks {
/// Value header: a tag byte, then the expiry (epoch ms, little endian) when
/// the tag says so. 0 = never expires.
inline constexpr uint8_t kTagPlain = 0;
inline constexpr uint8_t kTagExpiry = 1;

inline void put_header(std::string& out, int64_t expiry) {
  if (expiry == 0) {
    out.push_back(static_cast<char>(kTagPlain));
    return;
  }
  out.push_back(static_cast<char>(kTagExpiry));
  ByteWriter(out).put_fixed64(static_cast<uint64_t>(expiry));
}
/// Strips the header off `v`; false if it is malformed.
inline bool take_header(std::string_view& v, int64_t& expiry) {
  if (v.empty()) return false;
  uint8_t tag = static_cast<uint8_t>(v[0]);
  if (tag == kTagPlain) {
    expiry = 0;
    v.remove_prefix(1);
    return true;
  }
  if (tag != kTagExpiry || v.size() < 9) return false;
  uint64_t e;
  std::memcpy(&e, v.data() + 1, 8);
  expiry = static_cast<int64_t>(e);
  v.remove_prefix(9);
  return true;
}
}  // namespace rocks

/// Keyed state of one operator subtask in a local RocksDB instance.
///
/// Lifecycle: created by create_keyed_backend (opens an empty DB in its own
/// working directory under state.rocksdb.local-dir), optionally restored
/// once before states are registered, used, destroyed with the operator
/// (closes the DB, removes the working directory). Used only on the task
/// thread, except the AsyncSnapshot it returns (a snapshot thread; it
/// touches files only and may outlive the backend) and RocksDB's own
/// background threads (flush, compaction with the TTL filter). Owned by the
/// operator's context.
class RocksDBKeyedStateBackend final : public KeyedStateBackend {
 public:
  struct Column;  // one state's column family (opaque)
  struct Db;      // the RocksDB objects (opaque, keeps RocksDB out of this header)
  struct SharedFiles;
  struct DirtyQueue;  // the write cache's changed entries, oldest first

  static Result<std::unique_ptr<RocksDBKeyedStateBackend>> create(const BackendSpec& spec,
                                                                  const RocksDBOptions& options);
  ~RocksDBKeyedStateBackend() override;

  BackendKind kind() const override { return BackendKind::kRocksDB; }
  Result<AsyncSnapshot> snapshot(CheckpointId id, const SnapshotTarget& target) override;
  Status restore(const std::vector<KeyedStateHandle>& handles, const std::string& job_dir) override;
  void notify_checkpoint_complete(CheckpointId id) override;
  std::vector<std::pair<std::string, KeyGroup>> keys_of_state(const std::string& name,
                                                              const KeyLength& key_length) override;

  // --- for state handles (task thread) ------------------------------------
  /// The column family of state `name`, created on first use. Throws
  /// StateTypeError if a restored snapshot holds `name` with another
  /// signature.
  Column* column(const std::string& name, std::string_view signature);
  /// Key group + current key + namespace, in a buffer reused by every call
  /// (valid until the next compose).
  std::string& compose(std::string_view ns) {
    key_buf_.clear();
    ByteWriter w(key_buf_);
    w.put_fixed16_be(static_cast<uint16_t>(current_kg_.value()));
    w.put_raw(current_key_.data(), current_key_.size());
    w.put_bytes(ns);
    return key_buf_;
  }
  /// An empty scratch buffer for encoding a value (reused).
  std::string& value_buffer() {
    value_buf_.clear();
    return value_buf_;
  }
  /// The raw value of `key`, valid until the next get, put or remove;
  /// nullopt if absent.
  std::optional<std::string_view> get(Column* c, std::string_view key);
  void put(Column* c, std::string_view key, std::string_view value);
  /// Appends `elements` to the list at `key` (list-append merge operator).
  void merge(Column* c, std::string_view key, std::string_view elements);
  void remove(Column* c, std::string_view key);
  /// Routes get/put/remove of column `c` through the write-back cache
  /// (options.write_cache_bytes). Only for states accessed by point
  /// lookups: merge, cursors and range removal bypass the cache (a cursor
  /// over a cached column writes its dirty entries first; merge and range
  /// removal empty the cache first).
  void enable_write_cache(Column* c);
  /// Writes every dirty cached entry to RocksDB in one batch and empties
  /// the cache (it is full, or something will write the DB around it).
  /// Throws StateAccessError if RocksDB refuses the write.
  void flush_write_cache() { (void)write_dirty_entries(/*keep=*/false); }
  /// Writes every dirty cached entry to RocksDB in one batch and keeps the
  /// entries, now clean, for the reads that follow: a cursor needs the DB
  /// to hold what the cache holds, not an empty cache (the keys just used
  /// are the likeliest to come again). Returns how many entries it wrote.
  /// (A snapshot does not write the cache: it captures the dirty entries
  /// into a side file of the checkpoint.)
  size_t write_back_dirty_entries() { return write_dirty_entries(/*keep=*/true); }
  /// A RocksDB iterator over the keys in [lower, upper) of one column
  /// family (the bounds are copied). Throws StateAccessError if RocksDB
  /// reports an error while moving. The state may be written while a
  /// cursor is open; the cursor does not see those writes (it reads the DB
  /// as of its creation). Must not outlive the backend.
  class Cursor {
   public:
    struct Impl;
    explicit Cursor(std::unique_ptr<Impl> impl);
    Cursor(Cursor&&) noexcept;
    ~Cursor();
    bool valid() const;
    std::string_view key() const;
    std::string_view value() const;
    void seek_to_first();
    void seek_to_last();
    void next();
    void prev();

   private:
    std::unique_ptr<Impl> impl_;
  };
  Cursor open_cursor(Column* c, std::string_view lower, std::string_view upper);
  /// Deletes every key in [lower, upper): a batch of point deletes for up to
  /// options.range_delete_threshold keys, one DeleteRange above that.
  void remove_range(Column* c, std::string_view lower, std::string_view upper);
  /// The smallest key greater than every key that starts with `prefix`
  /// (the exclusive upper bound of a prefix scan). `prefix` must start with
  /// a key group, so it always has one.
  static std::string prefix_end(std::string_view prefix);
  [[noreturn]] void corrupt(const Column* c, std::string_view what) const;
  const std::string& state_name(const Column* c) const;

  /// Expiry for an entry written now (0 without TTL).
  int64_t expiry_for(const StateTtl& ttl) const {
    return ttl.enabled() ? now_ms() + ttl.ttl.count() : 0;
  }
  bool expired(int64_t expiry) const { return expiry != 0 && expiry <= now_ms(); }

  // --- inspection (tests, benchmarks) ---------------------------------------
  /// The working directory (DB under db/, local checkpoints under chk-N/).
  const std::string& local_dir() const { return dir_; }
  const RocksDBMemoryBudget& memory() const { return *memory_; }
  /// Flushes memtables and compacts every state fully (runs the TTL filter).
  Status compact();
  /// Cached entries that RocksDB does not hold yet (what a snapshot now
  /// would copy into its "_cache" file).
  size_t dirty_cache_entries() const;
  /// Entries stored for state `name`, expired or not (bypasses TTL).
  Result<uint64_t> raw_entry_count(const std::string& name);
  /// Shared files (SSTs, timers files) referenced by this backend's last
  /// confirmed checkpoint.
  size_t confirmed_shared_files() const;

 private:
  RocksDBKeyedStateBackend(const BackendSpec& spec, RocksDBOptions options,
                           std::shared_ptr<RocksDBMemoryBudget> memory, std::string dir);
  Status open_db();
  void close_db();
  Status restore_exact(const KeyedStateHandle& h, const std::string& job_dir);
  Status restore_ranges(const std::vector<KeyedStateHandle>& handles, const std::string& job_dir);
  Status restore_timers(const std::string& bytes, const std::string& what);
  std::string write_timers() const;
  /// Every queue's changes since the last snapshot, encoded as a timers
  /// delta (without its magic); nullopt when some queue's are not known.
  std::optional<std::string> take_timer_changes();
  Status apply_timer_delta(std::string_view bytes, const std::string& what);
  /// Restores timers files (is it a delta, its bytes) in order.
  Status restore_timer_files(const std::vector<std::pair<bool, std::string>>& files,
                             const std::string& what);
  /// Writes the dirty cached entries; keeps them (clean) or empties the
  /// cache. Returns how many entries it wrote.
  size_t write_dirty_entries(bool keep);
  /// Queues a cached entry of `c` that just became dirty (when the
  /// write-back between checkpoints is on) and, past the bound, writes the
  /// oldest (drain_dirty_entries).
  template <typename CacheSlot>
  void note_dirty(Column* c, CacheSlot& slot);
  /// Writes the oldest eighth of the bound's queued dirty entries to
  /// RocksDB in one batch; they stay cached, clean.
  void drain_dirty_entries();
  /// The dirty cached entries, serialized (the snapshot's "_cache" file;
  /// empty when there are none); they stay dirty. `entries` counts them.
  std::string capture_dirty_entries(size_t& entries) const;
  /// Writes the entries of a "_cache" file whose key groups are in `part`
  /// into the DB (over what the snapshot's RocksDB files hold).
  Status apply_cache_overlay(std::string_view bytes, KeyGroupRange part, const std::string& what);
  /// The timers part of snapshot `id`: a delta on the confirmed chain of
  /// timers files, or nullptr with `full` set when the whole set must be
  /// written.
  std::string timers_for_snapshot(int64_t id, bool incremental,
                                  const std::vector<StateFile>& chain, int64_t chain_base_bytes,
                                  bool& full);

  RocksDBOptions options_;
  // shared: the process-wide budget, held by every backend.
  std::shared_ptr<RocksDBMemoryBudget> memory_;
  std::string dir_;          // working directory of this instance
  std::string file_prefix_;  // unique prefix of this instance's shared files
  std::unique_ptr<Db> db_;
  std::map<std::string, std::unique_ptr<Column>> columns_;
  // shared: the asynchronous parts of snapshots record uploads here from a
  // snapshot thread, and may outlive the backend.
  std::shared_ptr<SharedFiles> shared_;
  std::string key_buf_;
  std::string value_buf_;
  // Timer changes of each snapshot that no confirmed checkpoint covers yet,
  // by checkpoint id (nullopt: not known, the next snapshots write every
  // timer). Task thread.
  std::map<int64_t, std::optional<std::string>> timer_deltas_;
  std::vector<Column*> cached_columns_;
  std::unique_ptr<DirtyQueue> dirty_;
  size_t cache_bytes_ = 0;  // approximate memory of every column's cache
  // A snapshot was taken: a large cache-full write starts a background
  // flush, so the next snapshot does not wait for it.
  bool snapshotted_ = false;
};

// ---------------------------------------------------------------------------
// RocksDB state handles. Each keeps its namespace; every access composes
// the key in the backend's reused buffer.

class RocksStateBase {
 protected:
  RocksStateBase(RocksDBKeyedStateBackend& b, const std::string& name, std::string_view signature,
                 StateTtl ttl)
      : b_(b), col_(b.column(name, signature)), ttl_(ttl) {}

  std::string& key() { return b_.compose(ns_); }
  /// The live payload at `key` (header stripped), or nullopt; an expired
  /// entry is removed, a read refreshes the expiry if the TTL says so.
  std::optional<std::string_view> load(std::string_view key) {
    auto raw = b_.get(col_, key);
    if (!raw) return std::nullopt;
    std::string_view v = *raw;
    int64_t expiry;
    if (!rocks::take_header(v, expiry)) b_.corrupt(col_, "bad value header");
    if (b_.expired(expiry)) {
      b_.remove(col_, key);
      return std::nullopt;
    }
    if (ttl_.enabled() && ttl_.refresh_on_read) {
      std::string& out = b_.value_buffer();
      rocks::put_header(out, b_.expiry_for(ttl_));
      out.append(v.data(), v.size());
      b_.put(col_, key, out);
      return std::string_view(out).substr(out.size() - v.size());
    }
    return v;
  }
  template <class T>
  void decode(std::string_view bytes, T& out) {
    ByteReader r(bytes);
    if (!Serde<T>::read(r, out) || !r.empty()) b_.corrupt(col_, "value does not decode");
  }
  template <class T>
  void store(std::string_view key, const T& v) {
    std::string& out = b_.value_buffer();
    rocks::put_header(out, b_.expiry_for(ttl_));
    ByteWriter w(out);
    Serde<T>::write(w, v);
    b_.put(col_, key, out);
  }

  RocksDBKeyedStateBackend& b_;
  RocksDBKeyedStateBackend::Column* col_;
  StateTtl ttl_;
  std::string ns_;
};

template <class T>
class RocksValueState final : public ValueState<T>, RocksStateBase {
 public:
  RocksValueState(RocksDBKeyedStateBackend& b, const ValueStateDescriptor<T>& d,
                  std::string_view sig)
      : RocksStateBase(b, d.name, sig, d.ttl) { b.enable_write_cache(col_); }
  void set_namespace(std::string_view ns) override { ns_.assign(ns); }
  std::optional<T> value() override {
    auto v = load(key());
    if (!v) return std::nullopt;
    T out{};
    decode(*v, out);
    return out;
  }
  void update(const T& v) override { store(key(), v); }
  void clear() override { b_.remove(col_, key()); }
};

/// A list is its elements' Serde bytes one after another behind one header.
/// Without TTL, add appends through the merge operator (no read); with TTL
/// it reads, appends and rewrites, because the whole list shares one expiry
/// that every write refreshes (as on the heap).
template <class T>
class RocksListState final : public ListState<T>, RocksStateBase {
 public:
  RocksListState(RocksDBKeyedStateBackend& b, const ListStateDescriptor<T>& d,
                 std::string_view sig)
      : RocksStateBase(b, d.name, sig, d.ttl) {}
  void set_namespace(std::string_view ns) override { ns_.assign(ns); }
  void add(const T& v) override {
    elems_.clear();
    ByteWriter w(elems_);
    Serde<T>::write(w, v);
    append(key(), elems_);
  }
  void add_all(const std::vector<T>& vs) override {
    if (vs.empty()) return;
    elems_.clear();
    ByteWriter w(elems_);
    for (const auto& v : vs) Serde<T>::write(w, v);
    append(key(), elems_);
  }
  std::vector<T> get() override {
    std::vector<T> out;
    auto v = load(key());
    if (!v) return out;
    ByteReader r(*v);
    while (!r.empty()) {
      T x{};
      if (!Serde<T>::read(r, x)) b_.corrupt(col_, "list element does not decode");
      out.push_back(std::move(x));
    }
    return out;
  }
  void update(const std::vector<T>& vs) override {
    std::string& k = key();
    if (vs.empty()) {
      b_.remove(col_, k);
      return;
    }
    std::string& out = b_.value_buffer();
    rocks::put_header(out, b_.expiry_for(ttl_));
    ByteWriter w(out);
    for (const auto& v : vs) Serde<T>::write(w, v);
    b_.put(col_, k, out);
  }
  void clear() override { b_.remove(col_, key()); }
  void merge_namespaces(std::string_view target, const std::vector<std::string>& sources) override {
    elems_.clear();
    for (const auto& s : sources) {
      ns_.assign(s);
      std::string& k = key();
      if (auto v = load(k)) {
        elems_.append(v->data(), v->size());
        b_.remove(col_, k);
      }
    }
    ns_.assign(target);
    if (!elems_.empty()) append(key(), elems_);
  }

 private:
  void append(std::string& k, const std::string& elems) {
    if (!ttl_.enabled()) {
      b_.merge(col_, k, elems);
      return;
    }
    // Copy the live list before the value buffer is reused.
    old_.clear();
    if (auto v = load(k)) old_.assign(v->data(), v->size());
    std::string& out = b_.value_buffer();
    rocks::put_header(out, b_.expiry_for(ttl_));
    out.append(old_);
    out.append(elems);
    b_.put(col_, k, out);
  }
  std::string elems_;
  std::string old_;
};

template <class T>
class RocksReducingState final : public ReducingState<T>, RocksStateBase {
 public:
  RocksReducingState(RocksDBKeyedStateBackend& b, const ReducingStateDescriptor<T>& d,
                     std::string_view sig)
      : RocksStateBase(b, d.name, sig, d.ttl), reduce_(d.reduce) { b.enable_write_cache(col_); }
  void set_namespace(std::string_view ns) override { ns_.assign(ns); }
  void add(const T& v) override {
    std::string& k = key();
    if (auto old = load(k)) {
      decode(*old, acc_);
      store(k, reduce_(acc_, v));
    } else {
      store(k, v);
    }
  }
  std::optional<T> get() override {
    auto v = load(key());
    if (!v) return std::nullopt;
    T out{};
    decode(*v, out);
    return out;
  }
  void clear() override { b_.remove(col_, key()); }
  void merge_namespaces(std::string_view target, const std::vector<std::string>& sources) override {
    std::optional<T> acc;
    for (const auto& s : sources) {
      ns_.assign(s);
      std::string& k = key();
      if (auto v = load(k)) {
        T x{};
        decode(*v, x);
        acc = acc ? reduce_(*acc, x) : std::move(x);
        b_.remove(col_, k);
      }
    }
    ns_.assign(target);
    if (acc) add(*acc);
  }

 private:
  std::function<T(const T&, const T&)> reduce_;
  T acc_{};
};

/// Read-modify-write of the accumulator (no merge operator: a merge would
/// have to run the user's add() inside RocksDB, on its threads).
template <class IN, class ACC, class OUT>
class RocksAggregatingState final : public AggregatingState<IN, ACC, OUT>, RocksStateBase {
 public:
  RocksAggregatingState(RocksDBKeyedStateBackend& b,
                        const AggregatingStateDescriptor<IN, ACC, OUT>& d, std::string_view sig)
      : RocksStateBase(b, d.name, sig, d.ttl), fn_(d.function) { b.enable_write_cache(col_); }
  void set_namespace(std::string_view ns) override { ns_.assign(ns); }
  void add(const IN& v) override {
    std::string& k = key();
    if (auto old = load(k)) {
      decode(*old, acc_);
    } else {
      acc_ = fn_->create_accumulator();
    }
    fn_->add(acc_, v);
    store(k, acc_);
  }
  void add_accumulator(const ACC& acc) override {
    std::string& k = key();
    if (auto old = load(k)) {
      decode(*old, acc_);
      fn_->merge(acc_, acc);
      store(k, acc_);
    } else {
      store(k, acc);
    }
  }
  std::optional<OUT> get() override {
    auto v = load(key());
    if (!v) return std::nullopt;
    decode(*v, acc_);
    return fn_->get_result(acc_);
  }
  void clear() override { b_.remove(col_, key()); }
  void merge_namespaces(std::string_view target, const std::vector<std::string>& sources) override {
    std::optional<ACC> acc;
    for (const auto& s : sources) {
      ns_.assign(s);
      std::string& k = key();
      if (auto v = load(k)) {
        ACC x{};
        decode(*v, x);
        if (!acc) acc = std::move(x);
        else fn_->merge(*acc, x);
        b_.remove(col_, k);
      }
    }
    ns_.assign(target);  // the handle stays on the target
    if (!acc) return;
    std::string& k = key();
    if (auto v = load(k)) {
      decode(*v, acc_);
      fn_->merge(acc_, *acc);
      store(k, acc_);
    } else {
      store(k, *acc);
    }
  }

 private:
  // shared: one immutable function object serves every handle of the state.
  std::shared_ptr<const AggregateFunction<IN, ACC, OUT>> fn_;
  ACC acc_{};
};

}  // namespace sluice::state
