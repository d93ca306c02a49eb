#include "state/timers.h"

namespace sluice::state {

bool TimerQueue::add(int64_t ts, KeyGroup kg, std::string_view key, std::string_view ns) {
  // Most registrations repeat a timer already set (a window's end for every
  // record of the window): look up by view first so they allocate nothing.
  TimerView v{ts, kg, key, ns};
  auto it = timers_.lower_bound(v);
  if (it != timers_.end() && !TimerOrder{}(v, *it)) return false;
  timers_.insert(it, TimerEntry{ts, kg, std::string(key), std::string(ns)});
  return true;
}

bool TimerQueue::remove(int64_t ts, KeyGroup kg, std::string_view key, std::string_view ns) {
  auto it = timers_.find(TimerView{ts, kg, key, ns});
  if (it == timers_.end()) return false;
  timers_.erase(it);
  return true;
}

std::optional<int64_t> TimerQueue::next_ts() const {
  if (timers_.empty()) return std::nullopt;
  return timers_.begin()->ts;
}

bool TimerQueue::pop_due(int64_t max_ts, TimerEntry& out) {
  if (timers_.empty() || timers_.begin()->ts > max_ts) return false;
  auto node = timers_.extract(timers_.begin());
  out = std::move(node.value());
  return true;
}

void TimerQueue::write_key_groups(const KeyGroupRange& range,
                                  std::vector<std::string>& per_group) const {
  per_group.assign(range.size(), std::string());
  std::vector<uint64_t> counts(range.size(), 0);
  std::vector<std::string> bodies(range.size());
  for (const auto& t : timers_) {
    if (!range.contains(t.kg)) continue;
    size_t i = static_cast<size_t>(t.kg.value() - range.start);
    ByteWriter w(bodies[i]);
    w.put_zigzag(t.ts);
    w.put_bytes(t.key);
    w.put_bytes(t.ns);
    ++counts[i];
  }
  for (size_t i = 0; i < per_group.size(); ++i) {
    if (counts[i] == 0) continue;
    ByteWriter w(per_group[i]);
    w.put_varint(counts[i]);
    w.put_raw(bodies[i].data(), bodies[i].size());
  }
}

Status TimerQueue::read_key_group(KeyGroup kg, std::string_view bytes) {
  if (bytes.empty()) return Status::ok();
  ByteReader r(bytes);
  uint64_t n;
  if (!r.get_varint(n)) return Status::corruption("timer snapshot: bad count");
  for (uint64_t i = 0; i < n; ++i) {
    int64_t ts;
    std::string_view key, ns;
    if (!r.get_zigzag(ts) || !r.get_bytes(key) || !r.get_bytes(ns)) {
      return Status::corruption("timer snapshot: truncated entry");
    }
    timers_.insert(TimerEntry{ts, kg, std::string(key), std::string(ns)});
  }
  if (!r.empty()) return Status::corruption("timer snapshot: trailing bytes");
  return Status::ok();
}

}  // namespace sluice::state
