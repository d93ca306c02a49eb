#include "state/timers.h"

#include <absl/hash/hash.h>

#include <algorithm>
#include <tuple>

namespace sluice::state {

size_t TimerQueue::NodeHash::operator()(const TimerView& v) const {
  return absl::Hash<std::tuple<int64_t, int32_t, absl::string_view, absl::string_view>>{}(
      std::make_tuple(v.ts, v.kg.value(), absl::string_view(v.key.data(), v.key.size()),
                      absl::string_view(v.ns.data(), v.ns.size())));
}

bool TimerQueue::add(int64_t ts, KeyGroup kg, std::string_view key, std::string_view ns) {
  // Most registrations repeat a timer already set: one hash lookup by view,
  // nothing allocated.
  if (index_.contains(TimerView{ts, kg, key, ns})) return false;
  auto node = std::make_unique<Node>();
  node->entry = TimerEntry{ts, kg, std::string(key), std::string(ns)};
  Bucket& b = buckets_[ts];
  if (b.sorted && b.nodes.size() > b.next && !TimerOrder{}(b.nodes.back()->entry, node->entry)) b.sorted = false;
  index_.insert(node.get());
  if (recording_) log_change(true, node->entry);
  b.nodes.push_back(std::move(node));
  ++b.alive;
  return true;
}

void TimerQueue::log_change(bool added, const TimerEntry& e) {
  if (!log_complete_) return;
  if (log_.size() >= index_.size() + 1024) {
    // A full rewrite is smaller than this delta: stop logging until the
    // next take_changes().
    log_complete_ = false;
    std::vector<Change>().swap(log_);
    return;
  }
  log_.push_back(Change{added, e});
}

std::optional<std::vector<TimerQueue::Change>> TimerQueue::take_changes() {
  std::optional<std::vector<Change>> out;
  if (recording_ && log_complete_) out = std::move(log_);
  log_.clear();
  recording_ = true;
  log_complete_ = true;
  return out;
}

void TimerQueue::maybe_compact(Bucket& b) {
  const size_t pending = b.nodes.size() - b.next;
  if (pending < 2 * b.alive + 16) return;
  decltype(b.nodes) keep;
  keep.reserve(b.alive);
  for (size_t i = b.next; i < b.nodes.size(); ++i) {
    if (b.nodes[i]->alive) keep.push_back(std::move(b.nodes[i]));
  }
  b.nodes = std::move(keep);  // the order of the live nodes is kept, so `sorted` still holds
  b.next = 0;
}

bool TimerQueue::remove(int64_t ts, KeyGroup kg, std::string_view key, std::string_view ns) {
  auto it = index_.find(TimerView{ts, kg, key, ns});
  if (it == index_.end()) return false;
  Node* n = *it;
  index_.erase(it);
  n->alive = false;
  if (recording_) log_change(false, n->entry);
  auto b = buckets_.find(ts);
  if (--b->second.alive == 0) buckets_.erase(b);  // frees its nodes, n among them
  else maybe_compact(b->second);
  return true;
}

std::optional<int64_t> TimerQueue::next_ts() const {
  if (buckets_.empty()) return std::nullopt;
  return buckets_.begin()->first;
}

bool TimerQueue::pop_due(int64_t max_ts, TimerEntry& out) {
  if (buckets_.empty() || buckets_.begin()->first > max_ts) return false;
  auto it = buckets_.begin();
  Bucket& b = it->second;
  if (!b.sorted) {
    std::sort(b.nodes.begin() + static_cast<std::ptrdiff_t>(b.next), b.nodes.end(),
              [](const auto& x, const auto& y) { return TimerOrder{}(x->entry, y->entry); });
    b.sorted = true;
  }
  while (!b.nodes[b.next]->alive) ++b.next;  // alive > 0: a live node follows
  Node* n = b.nodes[b.next++].get();
  index_.erase(n);  // before the entry moves out: the hash reads it
  n->alive = false;
  if (recording_) log_change(false, n->entry);
  out = std::move(n->entry);
  if (--b.alive == 0) buckets_.erase(it);
  return true;
}

void TimerQueue::clear() {
  index_.clear();
  buckets_.clear();
  log_complete_ = false;
  std::vector<Change>().swap(log_);
}

void TimerQueue::write_key_groups(const KeyGroupRange& range,
                                  std::vector<std::string>& per_group) const {
  // By timestamp, then in the order the timers were set: O(n), no string
  // compares (a checkpoint writes every live timer; with a million keys
  // sorting them would cost the task thread far more), and independent of
  // the hash set's iteration order. The restore re-adds them, and pops
  // order them again.
  std::vector<std::vector<const TimerEntry*>> groups(range.size());
  for (const auto& [ts, b] : buckets_) {
    for (size_t i = b.next; i < b.nodes.size(); ++i) {
      const Node* n = b.nodes[i].get();
      if (n->alive && range.contains(n->entry.kg)) groups[n->entry.kg.value() - range.start].push_back(&n->entry);
    }
  }
  per_group.assign(range.size(), std::string());
  for (size_t i = 0; i < groups.size(); ++i) {
    auto& g = groups[i];
    if (g.empty()) continue;
    ByteWriter w(per_group[i]);
    w.put_varint(g.size());
    for (const TimerEntry* t : g) {
      w.put_zigzag(t->ts);
      w.put_bytes(t->key);
      w.put_bytes(t->ns);
    }
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
    add(ts, kg, key, ns);
  }
  if (!r.empty()) return Status::corruption("timer snapshot: trailing bytes");
  return Status::ok();
}

}  // namespace sluice::state
