// Copy-on-write key groups of the heap backend: what lets a snapshot take a
// view of the state at the barrier in O(key groups) on the task thread and
// serialize it on the snapshot thread while the task goes on writing.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace sluice::state {

/// The per-key-group maps of one heap table, shared copy-on-write with the
/// snapshots in progress (Flink's CopyOnWriteStateMap, at the granularity of
/// a key group: Sluice's tables are already split by key group, and a key
/// group is the unit a restore reads).
///
/// `share()` (task thread, at the barrier) hands out a reference to every
/// group's map; a snapshot thread then reads them while it serializes. The
/// task thread reaches a map for writing only through `write(g)`, which
/// first copies the group if a snapshot still holds it, so what a snapshot
/// holds never changes. Groups the task does not write while a snapshot runs
/// are never copied; a group is copied at most once per snapshot, on its
/// first write after the barrier. Several snapshots may hold the same
/// version (overlapping checkpoints): it is copied once, and freed when the
/// last of them drops it.
///
/// `write(g)` also says whether it is the group's first write since the last
/// `share()`, so the table can drop expired entries of the group then (the
/// heap backend's cleanup at snapshots, moved off the barrier).
///
/// Owned by a heap table; task thread only (a snapshot thread only reads
/// the maps `share()` returned and drops its references).
template <class Map>
class CowGroups {
 public:
  explicit CowGroups(size_t groups) : maps_(groups), epoch_seen_(groups, 0) {
    for (auto& m : maps_) m = std::make_shared<Map>();
  }

  size_t size() const { return maps_.size(); }

  /// Group `g` for reading (task thread; no copy).
  const Map& read(size_t g) const { return *maps_[g]; }

  /// Group `g` for writing: copied first if a snapshot holds it. `first`
  /// is set when this is the group's first write since the last share().
  Map& write(size_t g, bool* first = nullptr) {
    auto& p = maps_[g];
    // A count of 1 means no snapshot holds the map any more: the snapshot
    // thread's last read happened before it dropped its reference (the
    // count's decrement releases), and the fence orders our writes after
    // that read. A count above 1 can only go down meanwhile: copying then
    // is at worst unneeded.
    if (p.use_count() > 1) {
      p = std::make_shared<Map>(*p);
      ++copies_;
    } else {
      std::atomic_thread_fence(std::memory_order_acquire);
    }
    const bool fresh = epoch_seen_[g] != epoch_;
    epoch_seen_[g] = epoch_;
    if (first) *first = fresh;
    return *p;
  }

  /// A reference to every group's map, as of now (the barrier): O(groups).
  std::vector<std::shared_ptr<const Map>> share() {
    ++epoch_;
    return {maps_.begin(), maps_.end()};
  }

  /// Groups copied because a snapshot held them (tests, metrics).
  uint64_t copies() const { return copies_; }

 private:
  // shared_ptr: the task thread and the snapshots in progress share a map
  // until the task writes to it.
  std::vector<std::shared_ptr<Map>> maps_;
  std::vector<uint64_t> epoch_seen_;  // epoch_ at the group's last write
  uint64_t epoch_ = 0;                // share() calls so far
  uint64_t copies_ = 0;
};

}  // namespace sluice::state
