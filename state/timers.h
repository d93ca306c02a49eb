// Timers of keyed operators: (timestamp, key, namespace) triples ordered by
// timestamp. One queue for event time and one for processing time per
// operator; both are part of the operator's keyed state and are snapshotted
// and restored per key group with it.
#pragma once

#include <cstdint>
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

/// An ordered set of timers without duplicates. Used on the task thread only.
class TimerQueue {
 public:
  /// Adds the timer; false if the same (ts, key, namespace) is already set.
  bool add(int64_t ts, KeyGroup kg, std::string_view key, std::string_view ns);
  /// Removes the timer; false if it was not set.
  bool remove(int64_t ts, KeyGroup kg, std::string_view key, std::string_view ns);
  /// Timestamp of the earliest timer.
  std::optional<int64_t> next_ts() const;
  /// Pops the earliest timer if its timestamp is <= max_ts.
  bool pop_due(int64_t max_ts, TimerEntry& out);
  size_t size() const { return timers_.size(); }
  bool empty() const { return timers_.empty(); }
  void clear() { timers_.clear(); }

  /// Snapshot: writes the timers of each key group of `range` to
  /// `per_group[kg - range.start]`.
  void write_key_groups(const KeyGroupRange& range, std::vector<std::string>& per_group) const;
  /// Restore: adds the timers that write_key_groups encoded for group kg.
  Status read_key_group(KeyGroup kg, std::string_view bytes);

 private:
  std::set<TimerEntry, TimerOrder> timers_;
};

}  // namespace sluice::state
