// The heap keyed-state backend: state lives as C++ objects in hash maps,
// one map per state per key group. Fast, bounded by memory. A snapshot
// shares the key groups' maps copy-on-write at the barrier (task thread,
// O(key groups)) and serializes them on the snapshot thread.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/common/serde.h"
#include "state/heap_cow_groups.h"
#include "state/keyed_state_backend.h"

namespace sluice::state {

/// One heap table as of a barrier: its key groups' maps, shared with the
/// table until the task writes to them (CowGroups). Made on the task thread
/// by HeapTableBase::capture, then read on a snapshot thread only; holds
/// no reference to the table or backend, so it may outlive them.
class HeapTableSnapshot {
 public:
  virtual ~HeapTableSnapshot() = default;
  /// Appends the entries of group `g` (index in the range) live at `now`,
  /// in the table's snapshot body format.
  virtual void write_group(size_t g, std::string& out, int64_t now) const = 0;
};

/// HeapTableSnapshot of a table type with a static write_map(map, out, now).
template <class Table>
class HeapGroupsSnapshot final : public HeapTableSnapshot {
 public:
  using Map = typename Table::Map;
  explicit HeapGroupsSnapshot(std::vector<std::shared_ptr<const Map>> groups)
      : groups_(std::move(groups)) {}
  void write_group(size_t g, std::string& out, int64_t now) const override {
    Table::write_map(*groups_[g], out, now);
  }

 private:
  std::vector<std::shared_ptr<const Map>> groups_;  // shared with the table (CowGroups)
};

/// One state's entries in a heap backend, type-erased for snapshots.
/// Owned by the backend; task thread only.
class HeapTableBase {
 public:
  HeapTableBase(std::string signature, StateTtl ttl, const Clock* clock)
      : signature_(std::move(signature)), ttl_(ttl), clock_(clock) {}
  virtual ~HeapTableBase() = default;
  /// Appends the live entries of group `g` (index in the range) to `out`.
  virtual void write_group(size_t g, std::string& out, int64_t now) const = 0;
  /// Adds the entries encoded by write_group to group `g`. `legacy`: the
  /// bytes come from a format-1 snapshot (see heap_backend.cc).
  virtual Status read_group(size_t g, std::string_view bytes, bool legacy) = 0;
  /// The table as of now, for a snapshot (synchronous part: O(groups)).
  virtual std::unique_ptr<HeapTableSnapshot> capture() = 0;
  /// Key groups copied because a snapshot in progress held them.
  virtual uint64_t cow_copies() const = 0;
  /// Entries held in memory, expired or not (map entries one by one).
  virtual size_t entry_count() const = 0;
  /// Calls fn(composite key) for every key + namespace of group `g` that
  /// holds a live entry at `now` (KeyedStateBackend::keys_of_state).
  virtual void for_each_key(size_t g, int64_t now,
                            const std::function<void(std::string_view)>& fn) const = 0;
  /// The state's kind and type ("value<long>"), checked on restore.
  const std::string& signature() const { return signature_; }
  const StateTtl& ttl() const { return ttl_; }
  int64_t now() const { return clock_->now_ms(); }
  /// Whether an entry with this expiry is gone. An entry keeps the expiry
  /// it was written with whatever the descriptor says now (as on RocksDB):
  /// 0 never expires. The clock is read only for entries that can expire.
  bool expired(int64_t expiry) const { return expiry != 0 && expiry <= clock_->now_ms(); }
  /// Expiry of an entry written now: 0 without TTL.
  int64_t new_expiry() const { return ttl_.enabled() ? clock_->now_ms() + ttl_.ttl.count() : 0; }

 private:
  std::string signature_;
  StateTtl ttl_;
  const Clock* clock_;
};

/// A value of a heap table with its expiry.
template <class V>
struct HeapEntry {
  V value{};
  int64_t expiry = 0;  // epoch ms; 0 = never expires
};

/// Debian's Abseil has its own string_view type; lookups go through it so
/// they hash and compare the bytes in place instead of building a std::string.
inline absl::string_view absl_view(std::string_view s) { return {s.data(), s.size()}; }

/// Entries of one state: composite key (serialized key + namespace) -> V.
template <class V>
class HeapTable final : public HeapTableBase {
 public:
  using Entry = HeapEntry<V>;
  using Map = absl::flat_hash_map<std::string, Entry>;
  static absl::string_view view(std::string_view s) { return absl_view(s); }

  HeapTable(size_t groups, std::string signature, StateTtl ttl, const Clock* clock)
      : HeapTableBase(std::move(signature), ttl, clock), groups_(groups) {}

  /// The live entry or nullptr; an expired entry is removed on the way.
  /// The entry may be changed through the pointer: the group is the
  /// table's own (copied if a snapshot held it).
  Entry* find(size_t g, std::string_view key) {
    auto& m = mut(g);
    auto it = m.find(view(key));
    if (it == m.end()) return nullptr;
    if (expired(it->second.expiry)) {
      m.erase(it);
      return nullptr;
    }
    if (ttl().enabled() && ttl().refresh_on_read) it->second.expiry = new_expiry();
    return &it->second;
  }
  /// The entry for key, default-constructed if absent or expired, with the
  /// expiry of a write now; the second value tells whether it was created.
  std::pair<Entry*, bool> upsert(size_t g, std::string_view key) {
    auto& m = mut(g);
    auto it = m.find(view(key));
    bool created = false;
    if (it == m.end()) {
      it = m.emplace(std::string(key), Entry{}).first;
      created = true;
    } else if (expired(it->second.expiry)) {
      it->second = Entry{};
      created = true;
    }
    it->second.expiry = new_expiry();
    return {&it->second, created};
  }
  void erase(size_t g, std::string_view key) {
    auto& m = mut(g);
    auto it = m.find(view(key));
    if (it != m.end()) m.erase(it);
  }

  void write_group(size_t g, std::string& out, int64_t now) const override {
    write_map(groups_.read(g), out, now);
  }
  std::unique_ptr<HeapTableSnapshot> capture() override {
    return std::make_unique<HeapGroupsSnapshot<HeapTable>>(groups_.share());
  }
  uint64_t cow_copies() const override { return groups_.copies(); }
  /// Snapshot body of one group's map: varint count, then per live entry:
  /// bytes key, zigzag expiry, Serde<V>. Reads `m` only (snapshot thread).
  static void write_map(const Map& m, std::string& out, int64_t now) {
    ByteWriter w(out);
    uint64_t live = 0;
    auto gone = [now](const Entry& e) { return e.expiry != 0 && e.expiry <= now; };
    for (const auto& [k, e] : m) live += gone(e) ? 0 : 1;
    w.put_varint(live);
    for (const auto& [k, e] : m) {
      if (gone(e)) continue;  // expired entries are not carried on
      w.put_bytes(k);
      w.put_zigzag(e.expiry);
      Serde<V>::write(w, e.value);
    }
  }
  // The same layout in both formats.
  Status read_group(size_t g, std::string_view bytes, bool /*legacy*/) override {
    ByteReader r(bytes);
    uint64_t n;
    if (!r.get_varint(n)) return Status::corruption("heap state snapshot: bad entry count");
    auto& m = mut(g);
    for (uint64_t i = 0; i < n; ++i) {
      std::string_view k;
      Entry e;
      if (!r.get_bytes(k) || !r.get_zigzag(e.expiry) || !Serde<V>::read(r, e.value)) {
        return Status::corruption("heap state snapshot: truncated entry");
      }
      m[std::string(k)] = std::move(e);
    }
    if (!r.empty()) return Status::corruption("heap state snapshot: trailing bytes");
    return Status::ok();
  }
  size_t entry_count() const override {
    size_t n = 0;
    for (size_t g = 0; g < groups_.size(); ++g) n += groups_.read(g).size();
    return n;
  }
  void for_each_key(size_t g, int64_t now,
                    const std::function<void(std::string_view)>& fn) const override {
    for (const auto& [k, e] : groups_.read(g))
      if (e.expiry == 0 || e.expiry > now) fn(k);
  }

 private:
  // Group g, the table's own, for changes. The first change after a
  // snapshot drops the group's expired entries from memory (they were not
  // written into it either).
  Map& mut(size_t g) {
    bool first = false;
    Map& m = groups_.write(g, &first);
    if (first && ttl().enabled()) {
      const int64_t now = this->now();
      absl::erase_if(m, [now](const auto& kv) {
        return kv.second.expiry != 0 && kv.second.expiry <= now;
      });
    }
    return m;
  }

  CowGroups<Map> groups_;
};

/// Keyed state of one operator subtask as C++ objects, one table per
/// state. Lifecycle: created with the operator, optionally restored once
/// (before or after its states are registered: restored tables wait until
/// registered), snapshotted at each barrier (copy-on-write view on the task
/// thread, serialization on the snapshot thread), destroyed with the
/// operator. Task thread only; owned by the operator's context.
class HeapKeyedStateBackend final : public KeyedStateBackend {
 public:
  /// Version of the key-group blobs write_key_group writes (see heap_backend.cc).
  static constexpr int kFormat = 2;

  HeapKeyedStateBackend(KeyGroupRange range, int32_t max_parallelism, const Clock* clock)
      : KeyedStateBackend(range, max_parallelism, clock) {}
  BackendKind kind() const override { return BackendKind::kHeap; }

  /// Current key followed by `ns`, in a scratch buffer valid until the next call.
  std::string_view compose(std::string_view ns) {
    scratch_.assign(current_key_);
    scratch_.append(ns.data(), ns.size());
    return scratch_;
  }

  /// The table (T: a HeapTableBase) of state `name`, created on first use;
  /// restored entries waiting for it are loaded then. Throws StateTypeError
  /// if they were written by a state of another signature.
  template <class T>
  T* table(const std::string& name, std::string_view signature, StateTtl ttl) {
    auto it = tables_.find(name);
    if (it != tables_.end()) return static_cast<T*>(it->second.get());
    auto t = std::make_unique<T>(range_.size(), std::string(signature), ttl, clock_);
    auto* raw = t.get();
    load_pending(name, *raw);  // first: if it throws, the name stays free (and pending)
    tables_.emplace(name, std::move(t));
    return raw;
  }

  Result<AsyncSnapshot> snapshot(CheckpointId id, const SnapshotTarget& target) override;
  Status restore(const std::vector<KeyedStateHandle>& handles, const std::string& job_dir) override;
  std::vector<std::pair<std::string, KeyGroup>> keys_of_state(const std::string& name,
                                                              const KeyLength& key_length) override;

  /// Snapshot of one key group (index in the range): every table and timer
  /// queue, in format kFormat, as of now.
  std::string write_key_group(size_t g) const;
  /// Restores one key group written by write_key_group (possibly by another
  /// subtask with another range: kg is absolute) in format `format` (1 or 2).
  Status read_key_group(KeyGroup kg, std::string_view bytes, int format = kFormat);

  /// Entries of state `name` held in memory, expired or not (tests).
  size_t raw_entry_count(const std::string& name) const {
    auto it = tables_.find(name);
    return it == tables_.end() ? 0 : it->second->entry_count();
  }
  /// Key groups of every table copied because a snapshot in progress held
  /// them (tests; what the copy-on-write costs the task thread).
  uint64_t cow_copies() const {
    uint64_t n = 0;
    for (const auto& [name, t] : tables_) n += t->cow_copies();
    return n;
  }

 private:
  struct Frozen;  // heap_backend.cc: the backend as of a barrier
  /// The backend as of now, sharing the tables copy-on-write.
  std::shared_ptr<const Frozen> freeze();
  /// Fills in everything of `f` but the tables.
  void freeze_rest(Frozen& f) const;
  struct Pending {
    size_t group;           // index in the range
    std::string signature;  // "" if written in format 1
    std::string bytes;
  };
  void load_pending(const std::string& name, HeapTableBase& t);

  std::string scratch_;
  std::map<std::string, std::unique_ptr<HeapTableBase>> tables_;
  // Restored bytes of states not registered yet, by name.
  std::map<std::string, std::vector<Pending>> pending_;
};

// ---------------------------------------------------------------------------
// Heap state handles.

template <class V>
class HeapStateBase {
 protected:
  HeapStateBase(HeapKeyedStateBackend& b, HeapTable<V>* t) : b_(b), t_(t) {}
  std::string_view key() { return b_.compose(ns_); }
  typename HeapTable<V>::Entry* find() { return t_->find(b_.current_group_index(), key()); }
  std::pair<typename HeapTable<V>::Entry*, bool> upsert() {
    return t_->upsert(b_.current_group_index(), key());
  }
  void erase() { t_->erase(b_.current_group_index(), key()); }

  HeapKeyedStateBackend& b_;
  HeapTable<V>* t_;
  std::string ns_;
};

template <class T>
class HeapValueState final : public ValueState<T>, HeapStateBase<T> {
  using Base = HeapStateBase<T>;

 public:
  HeapValueState(HeapKeyedStateBackend& b, const ValueStateDescriptor<T>& d, std::string_view sig)
      : Base(b, b.table<HeapTable<T>>(d.name, sig, d.ttl)) {}
  void set_namespace(std::string_view ns) override { this->ns_.assign(ns); }
  std::optional<T> value() override {
    auto* e = this->find();
    if (!e) return std::nullopt;
    return e->value;
  }
  void update(const T& v) override { this->upsert().first->value = v; }
  void clear() override { this->erase(); }
};

template <class T>
class HeapListState final : public ListState<T>, HeapStateBase<std::vector<T>> {
  using Base = HeapStateBase<std::vector<T>>;

 public:
  HeapListState(HeapKeyedStateBackend& b, const ListStateDescriptor<T>& d, std::string_view sig)
      : Base(b, b.table<HeapTable<std::vector<T>>>(d.name, sig, d.ttl)) {}
  void set_namespace(std::string_view ns) override { this->ns_.assign(ns); }
  void add(const T& v) override { this->upsert().first->value.push_back(v); }
  void add_all(const std::vector<T>& vs) override {
    if (vs.empty()) return;
    auto& l = this->upsert().first->value;
    l.insert(l.end(), vs.begin(), vs.end());
  }
  std::vector<T> get() override {
    auto* e = this->find();
    return e ? e->value : std::vector<T>{};
  }
  void update(const std::vector<T>& vs) override {
    if (vs.empty()) this->erase();
    else this->upsert().first->value = vs;
  }
  void clear() override { this->erase(); }
  void merge_namespaces(std::string_view target, const std::vector<std::string>& sources) override {
    std::vector<T> merged;
    for (const auto& s : sources) {
      this->ns_.assign(s);
      if (auto* e = this->find()) {
        merged.insert(merged.end(), std::make_move_iterator(e->value.begin()),
                      std::make_move_iterator(e->value.end()));
        this->erase();
      }
    }
    this->ns_.assign(target);
    add_all(merged);
  }
};

template <class T>
class HeapReducingState final : public ReducingState<T>, HeapStateBase<T> {
  using Base = HeapStateBase<T>;

 public:
  HeapReducingState(HeapKeyedStateBackend& b, const ReducingStateDescriptor<T>& d,
                    std::string_view sig)
      : Base(b, b.table<HeapTable<T>>(d.name, sig, d.ttl)), reduce_(d.reduce) {}
  void set_namespace(std::string_view ns) override { this->ns_.assign(ns); }
  void add(const T& v) override {
    auto [e, created] = this->upsert();
    e->value = created ? v : reduce_(e->value, v);
  }
  std::optional<T> get() override {
    auto* e = this->find();
    if (!e) return std::nullopt;
    return e->value;
  }
  void clear() override { this->erase(); }
  void merge_namespaces(std::string_view target, const std::vector<std::string>& sources) override {
    std::optional<T> acc;
    for (const auto& s : sources) {
      this->ns_.assign(s);
      if (auto* e = this->find()) {
        acc = acc ? reduce_(*acc, e->value) : e->value;
        this->erase();
      }
    }
    this->ns_.assign(target);
    if (acc) add(*acc);
  }

 private:
  std::function<T(const T&, const T&)> reduce_;
};

template <class IN, class ACC, class OUT>
class HeapAggregatingState final : public AggregatingState<IN, ACC, OUT>, HeapStateBase<ACC> {
  using Base = HeapStateBase<ACC>;

 public:
  HeapAggregatingState(HeapKeyedStateBackend& b, const AggregatingStateDescriptor<IN, ACC, OUT>& d,
                       std::string_view sig)
      : Base(b, b.template table<HeapTable<ACC>>(d.name, sig, d.ttl)), fn_(d.function) {}
  void set_namespace(std::string_view ns) override { this->ns_.assign(ns); }
  void add(const IN& v) override {
    auto [e, created] = this->upsert();
    if (created) e->value = fn_->create_accumulator();
    fn_->add(e->value, v);
  }
  void add_accumulator(const ACC& acc) override {
    auto [e, created] = this->upsert();
    if (created) e->value = acc;
    else fn_->merge(e->value, acc);
  }
  std::optional<OUT> get() override {
    auto* e = this->find();
    if (!e) return std::nullopt;
    return fn_->get_result(e->value);
  }
  void clear() override { this->erase(); }
  void merge_namespaces(std::string_view target, const std::vector<std::string>& sources) override {
    std::optional<ACC> acc;
    for (const auto& s : sources) {
      this->ns_.assign(s);
      if (auto* e = this->find()) {
        if (!acc) acc = std::move(e->value);
        else fn_->merge(*acc, e->value);
        this->erase();
      }
    }
    this->ns_.assign(target);
    if (!acc) return;
    auto [e, created] = this->upsert();
    if (created) e->value = std::move(*acc);
    else fn_->merge(e->value, *acc);
  }

 private:
  std::shared_ptr<const AggregateFunction<IN, ACC, OUT>> fn_;
};

}  // namespace sluice::state
