// What the NFA keeps per key, and the small storage interface it keeps it
// behind.
//
// The shared buffer: every event a partial match took is stored once per
// key (by its tick: the per-key sequence number of the step that processed
// it), with a reference count. Partial matches share their prefixes as a
// tree of entries: an entry is (event tick, occurrence, parent entry), and
// a partial match that takes an event gets a new entry whose parent is its
// old last entry. Entries are immutable (each extension is a new version of
// the match) and reference-counted by the partial matches, held matches and
// child entries that point at them; the last release frees the entry and,
// through its parent chain, the events nobody uses any more. So a thousand
// partial matches that share four events store four events, not four
// thousand (Flink's shared buffer, without its Dewey versions: branches of
// a tree need no version numbers).
//
// Ordered indexes make every per-event operation independent of the number
// of partial matches of the key: by group (state, alive candidates,
// freshness: an event that cannot affect a group skips the whole group), by
// start (skip strategies, the oldest match for the cap, hold-back of
// matches) and by deadline (within() and timers), plus the matches held
// back until earlier-starting partial matches are resolved.
//
// NfaStore is implemented over keyed state (keyed_store.h: heap or
// RocksDB, snapshotted and rescaled with the key groups) and in memory
// (MemoryNfaStore: library tests, benchmarks). A store serves the key its
// owner selected; one store per operator subtask, task thread only.
#pragma once

#include <algorithm>
#include <compare>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/common/serde.h"

namespace sluice::cep {

inline constexpr int64_t kNoTime = std::numeric_limits<int64_t>::max();

/// An event of the shared buffer.
template <class E>
struct StoredEvent {
  E event{};
  int64_t ts = 0;
  int32_t refs = 0;  ///< entries that point at it
  SLUICE_FIELDS(event, ts, refs)
};

/// One version of a partial match: its last event and where it came from.
struct BufferEntry {
  int64_t tick = 0;    ///< the event
  int64_t parent = 0;  ///< previous entry; 0 = none (first event)
  int32_t occ = 0;     ///< the occurrence that took it
  int32_t refs = 0;    ///< partial matches, held matches and child entries
  // Declared so that it packs into 24 bytes (a key's entries are most of
  // what it holds); serialized in the order of the original layout.
  SLUICE_FIELDS(tick, occ, parent, refs)
};

/// A partial match waiting in an NFA state.
struct PartialMatchState {
  int32_t node = 0;
  uint32_t alive = 0;     ///< candidates of the node still possible
  bool fresh = true;      ///< no event processed since its last one
  bool complete = false;  ///< its events were emitted as a match already
  int64_t start_tick = 0;
  int64_t start_ts = 0;
  int64_t last_ts = 0;
  int64_t entry = 0;          ///< last entry
  int64_t deadline = kNoTime;  ///< where it is filed in the deadline index
  SLUICE_FIELDS(node, alive, fresh, complete, start_tick, start_ts, last_ts, entry, deadline)

  int64_t group() const { return group_key(node, alive, fresh); }
  static int64_t group_key(int32_t node, uint32_t alive, bool fresh) {
    return (static_cast<int64_t>(node) << 33) | (static_cast<int64_t>(alive) << 1) | (fresh ? 1 : 0);
  }
};

/// A non-empty group of partial matches (same state, alive candidates,
/// freshness) and the lowest id that may be in it.
struct GroupCount {
  int64_t key = 0;
  int64_t count = 0;
  int64_t floor = INT64_MIN;
  SLUICE_FIELDS(key, count, floor)
};

/// Per-key bookkeeping.
///
/// Floors: every key of an index (its first field; for a group, the member
/// id) is at least the index's floor. An insert lowers the floor to its key;
/// a scan from the floor raises it to the first key found (kNoTime when
/// none). Scans start at the floor, not at the front of the index: on
/// RocksDB removed entries are tombstones until compaction, and a read from
/// the front walks over every one of them — work per event that would grow
/// with the partial matches a key ever had.
struct KeyMeta {
  int64_t tick = 0;     ///< last tick (events processed and deadlines passed)
  int64_t next_id = 1;  ///< ids of entries, partial matches and held matches
  int64_t partial_matches = 0;
  int64_t held = 0;
  int64_t events = 0;          ///< events in the shared buffer
  int64_t timer = kNoTime;     ///< deadline the host has a timer for
  /// Non-empty groups.
  std::vector<GroupCount> groups;
  int64_t start_floor = INT64_MIN;     ///< of kStart
  int64_t deadline_floor = INT64_MIN;  ///< of kDeadline
  int64_t held_floor = INT64_MIN;      ///< of kHeld
  SLUICE_FIELDS(tick, next_id, partial_matches, held, events, timer, groups, start_floor, deadline_floor, held_floor)

  bool empty() const { return partial_matches == 0 && held == 0 && events == 0; }
};

/// Key of an ordered index: compared as a tuple.
struct IndexKey {
  int64_t a = 0, b = 0, c = 0;
  auto operator<=>(const IndexKey&) const = default;
  // Spelled out: the B-trees of the indexes compare with these, and the
  // defaulted <=> was not inlined into them.
  bool operator<(const IndexKey& o) const { return a != o.a ? a < o.a : b != o.b ? b < o.b : c < o.c; }
  bool operator==(const IndexKey& o) const { return a == o.a && b == o.b && c == o.c; }
  SLUICE_FIELDS(a, b, c)
  /// Ordered map state keys it by its fields in order (state/ordered_codec.h).
  static constexpr bool sluice_ordered_key = true;
};

enum class NfaIndex : uint8_t {
  kGroup,     ///< (group key, partial match) -> 0
  kStart,     ///< (start tick, partial match) -> 0
  kDeadline,  ///< (deadline, partial match) -> 0
  kHeld,      ///< (start tick, completion tick, sequence) -> entry
};

/// The NFA's view of one key's state (the key its owner selected).
template <class E>
class NfaStore {
 public:
  virtual ~NfaStore() = default;

  virtual std::optional<KeyMeta> meta() = 0;
  /// meta() into `out` (reusing its memory); false if the key has none.
  virtual bool meta_into(KeyMeta& out) {
    std::optional<KeyMeta> m = meta();
    if (!m) return false;
    out = std::move(*m);
    return true;
  }
  virtual void put_meta(const KeyMeta& m) = 0;
  virtual void remove_meta() = 0;

  virtual std::optional<StoredEvent<E>> event(int64_t tick) = 0;
  virtual void put_event(int64_t tick, const StoredEvent<E>& e) = 0;
  virtual void remove_event(int64_t tick) = 0;

  virtual std::optional<BufferEntry> entry(int64_t id) = 0;
  virtual void put_entry(int64_t id, const BufferEntry& e) = 0;
  virtual void remove_entry(int64_t id) = 0;

  virtual std::optional<PartialMatchState> partial_match(int64_t id) = 0;
  virtual void put_partial_match(int64_t id, const PartialMatchState& pm) = 0;
  virtual void remove_partial_match(int64_t id) = 0;

  virtual void index_put(NfaIndex index, const IndexKey& key, int64_t value) = 0;
  virtual void index_remove(NfaIndex index, const IndexKey& key) = 0;
  /// Appends the entries with lo <= key <= hi in key order, at most `limit`.
  virtual void index_scan(NfaIndex index, const IndexKey& lo, const IndexKey& hi, size_t limit,
                          std::vector<std::pair<IndexKey, int64_t>>& out) = 0;
};

/// An NfaStore in plain maps, one set per key; select() chooses the key.
/// For library tests and benchmarks (no snapshots). Single-threaded.
template <class E>
class MemoryNfaStore final : public NfaStore<E> {
 public:
  void select(const std::string& key) { cur_ = &keys_[key]; }
  /// Keys that hold anything.
  size_t key_count() const {
    size_t n = 0;
    for (const auto& [k, s] : keys_) n += s.empty() ? 0 : 1;
    return n;
  }
  /// Everything stored for the selected key (tests check for leaks).
  size_t stored_items() const {
    const KeyData& d = *cur_;
    size_t n = d.meta ? 1 : 0;
    n += d.events.size() + d.entries.size() + d.pms.size();
    for (const auto& i : d.index) n += i.size();
    return n;
  }

  std::optional<KeyMeta> meta() override { return cur_->meta; }
  void put_meta(const KeyMeta& m) override { cur_->meta = m; }
  void remove_meta() override { cur_->meta.reset(); }

  std::optional<StoredEvent<E>> event(int64_t tick) override { return find(cur_->events, tick); }
  void put_event(int64_t tick, const StoredEvent<E>& e) override { cur_->events[tick] = e; }
  void remove_event(int64_t tick) override { cur_->events.erase(tick); }

  std::optional<BufferEntry> entry(int64_t id) override { return find(cur_->entries, id); }
  void put_entry(int64_t id, const BufferEntry& e) override { cur_->entries[id] = e; }
  void remove_entry(int64_t id) override { cur_->entries.erase(id); }

  std::optional<PartialMatchState> partial_match(int64_t id) override { return find(cur_->pms, id); }
  void put_partial_match(int64_t id, const PartialMatchState& pm) override { cur_->pms[id] = pm; }
  void remove_partial_match(int64_t id) override { cur_->pms.erase(id); }

  void index_put(NfaIndex i, const IndexKey& k, int64_t v) override { idx(i)[k] = v; }
  void index_remove(NfaIndex i, const IndexKey& k) override { idx(i).erase(k); }
  void index_scan(NfaIndex i, const IndexKey& lo, const IndexKey& hi, size_t limit,
                  std::vector<std::pair<IndexKey, int64_t>>& out) override {
    auto& m = idx(i);
    for (auto it = m.lower_bound(lo); it != m.end() && !(hi < it->first) && limit > 0; ++it, --limit) {
      out.emplace_back(it->first, it->second);
    }
  }

 private:
  struct KeyData {
    std::optional<KeyMeta> meta;
    std::unordered_map<int64_t, StoredEvent<E>> events;
    std::unordered_map<int64_t, BufferEntry> entries;
    std::unordered_map<int64_t, PartialMatchState> pms;
    std::map<IndexKey, int64_t> index[4];
    bool empty() const {
      bool e = !meta && events.empty() && entries.empty() && pms.empty();
      for (const auto& i : index) e = e && i.empty();
      return e;
    }
  };
  template <class M>
  static std::optional<typename M::mapped_type> find(const M& m, int64_t k) {
    auto it = m.find(k);
    if (it == m.end()) return std::nullopt;
    return it->second;
  }
  std::map<IndexKey, int64_t>& idx(NfaIndex i) { return cur_->index[static_cast<int>(i)]; }

  std::unordered_map<std::string, KeyData> keys_;
  KeyData* cur_ = nullptr;
};

}  // namespace sluice::cep
