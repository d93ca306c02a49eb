// Timers of keyed operators: (timestamp, key, namespace) triples ordered by
// timestamp. One queue for event time and one for processing time per
// operator; both are part of the operator's keyed state and are snapshotted
// and restored per key group with it.
#pragma once

#include <absl/container/btree_map.h>
#include <absl/container/flat_hash_set.h>
#include <absl/container/inlined_vector.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/ids.h"
#include "engine/common/serde.h"
#include "engine/common/status.h"
#include "state/key_groups.h"

namespace sluice::state {

struct TimerEntry {
  int64_t ts = 0;
  KeyGroup kg{0};
  std::string key;  // serialized key
  std::string ns;   // serialized namespace
  auto operator<=>(const TimerEntry&) const = default;
};

/// A timer by reference, to look one up without copying its strings.
struct TimerView {
  int64_t ts = 0;
  KeyGroup kg{0};
  std::string_view key;
  std::string_view ns;
};

/// Orders timers by (ts, key group, key, namespace); transparent over views.
struct TimerOrder {
  using is_transparent = void;
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    if (a.ts != b.ts) return a.ts < b.ts;
    if (a.kg != b.kg) return a.kg < b.kg;
    int c = std::string_view(a.key).compare(std::string_view(b.key));
    if (c != 0) return c < 0;
    return std::string_view(a.ns) < std::string_view(b.ns);
  }
};

/// An ordered set of timers without duplicates. Timers sit in buckets by
/// timestamp (a B-tree over the distinct timestamps), and a hash
/// set over the same nodes answers "is this timer already set?" — the
/// common case: a window's end is registered for every record of the
/// window — with one hash lookup, no walk down a tree of string compares.
/// A bucket is sorted by (key group, key, namespace) once, when its first
/// timer pops (and again only if a timer is added to it afterwards), so
/// pops come in exactly the order a std::set<TimerEntry, TimerOrder> gives.
/// Removed timers stay in their bucket as dead nodes until it is consumed
/// or compacted. Used on the task thread only.
class TimerQueue {
 public:
  TimerQueue() = default;
  TimerQueue(TimerQueue&&) = default;  // nodes are on the heap: pointers stay valid
  TimerQueue& operator=(TimerQueue&&) = default;

  /// Adds the timer; false if the same (ts, key, namespace) is already set.
  bool add(int64_t ts, KeyGroup kg, std::string_view key, std::string_view ns);
  /// Removes the timer; false if it was not set.
  bool remove(int64_t ts, KeyGroup kg, std::string_view key, std::string_view ns);
  /// Timestamp of the earliest timer.
  std::optional<int64_t> next_ts() const;
  /// Pops the earliest timer if its timestamp is <= max_ts.
  bool pop_due(int64_t max_ts, TimerEntry& out);
  size_t size() const { return index_.size(); }
  bool empty() const { return index_.empty(); }
  void clear();

  /// Snapshot: writes the timers of each key group of `range` to
  /// `per_group[kg - range.start]`, each group by timestamp, then in the
  /// order the timers were set.
  void write_key_groups(const KeyGroupRange& range, std::vector<std::string>& per_group) const;
  /// Restore: adds the timers that write_key_groups encoded for group kg.
  Status read_key_group(KeyGroup kg, std::string_view bytes);

  /// A change of the set: a timer set (`added`) or gone (removed or popped).
  struct Change {
    bool added = false;
    TimerEntry entry;
  };
  /// The changes since the previous call, in order, and starts recording
  /// the next ones (incremental timer snapshots of the RocksDB backend).
  /// nullopt when they are not known — recording was off until now, or the
  /// log outgrew the set (more changes than live timers + 1024: rewriting
  /// the whole set is then cheaper, and the log's memory stays bounded), or
  /// clear() ran: the caller must then write the whole set.
  /// Recording is off until the first call, so other users pay nothing.
  std::optional<std::vector<Change>> take_changes();

 private:
  struct Node {
    TimerEntry entry;
    bool alive = true;
  };
  /// The timers of one timestamp; nodes before `next` have popped.
  struct Bucket {
    /// Mostly one timer per timestamp (a key's deadline): held inline.
    absl::InlinedVector<std::unique_ptr<Node>, 1> nodes;
    size_t next = 0;
    size_t alive = 0;
    bool sorted = true;  // nodes[next..] in TimerOrder
  };
  struct NodeHash {
    using is_transparent = void;
    size_t operator()(const TimerView& v) const;
    size_t operator()(const Node* n) const {
      return (*this)(TimerView{n->entry.ts, n->entry.kg, n->entry.key, n->entry.ns});
    }
  };
  struct NodeEq {
    using is_transparent = void;
    static TimerView view(const Node* n) { return {n->entry.ts, n->entry.kg, n->entry.key, n->entry.ns}; }
    static const TimerView& view(const TimerView& v) { return v; }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      const TimerView x = view(a), y = view(b);
      return x.ts == y.ts && x.kg == y.kg && x.key == y.key && x.ns == y.ns;
    }
  };

  /// Drops the dead nodes of a bucket once they outnumber the live ones.
  static void maybe_compact(Bucket& b);

  void log_change(bool added, const TimerEntry& e);

  /// Only buckets with live timers. A B-tree: operators with a timer per
  /// key (CEP deadlines, session gaps) have about as many buckets as keys,
  /// and a red-black tree costs an allocation and cache misses per bucket.
  absl::btree_map<int64_t, Bucket> buckets_;
  absl::flat_hash_set<Node*, NodeHash, NodeEq> index_;  // the live nodes
  bool recording_ = false;     // take_changes() was called: log changes
  bool log_complete_ = false;  // log_ holds every change since the last take
  std::vector<Change> log_;
};

}  // namespace sluice::state
