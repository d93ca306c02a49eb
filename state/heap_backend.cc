#include "state/heap_backend.h"

namespace sluice::state {

std::string HeapKeyedStateBackend::write_key_group(size_t g) const {
  std::string out;
  ByteWriter w(out);
  int64_t now = clock_->now_ms();
  w.put_varint(tables_.size());
  std::string body;
  for (const auto& [name, t] : tables_) {
    body.clear();
    t->write_group(g, body, now);
    w.put_bytes(name);
    w.put_bytes(body);
  }
  // Timers of this group only.
  KeyGroupRange one{range_.start + static_cast<int32_t>(g), range_.start + static_cast<int32_t>(g)};
  w.put_varint(timers_.size());
  std::vector<std::string> per_group;
  for (const auto& [name, q] : timers_) {
    q->write_key_groups(one, per_group);
    w.put_bytes(name);
    w.put_bytes(per_group[0]);
  }
  return out;
}

Status HeapKeyedStateBackend::read_key_group(KeyGroup kg, std::string_view bytes) {
  if (!range_.contains(kg)) {
    return Status::internal("key group " + std::to_string(kg.value()) + " is outside " +
                            range_.to_string());
  }
  size_t g = static_cast<size_t>(kg.value() - range_.start);
  ByteReader r(bytes);
  uint64_t n;
  if (!r.get_varint(n)) return Status::corruption("heap snapshot: bad table count");
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view name, body;
    if (!r.get_bytes(name) || !r.get_bytes(body)) {
      return Status::corruption("heap snapshot: truncated table");
    }
    auto it = tables_.find(std::string(name));
    if (it != tables_.end()) {
      SLUICE_RETURN_IF_ERROR(it->second->read_group(g, body));
    } else {
      pending_[std::string(name)].emplace_back(g, std::string(body));
    }
  }
  if (!r.get_varint(n)) return Status::corruption("heap snapshot: bad timer count");
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view name, body;
    if (!r.get_bytes(name) || !r.get_bytes(body)) {
      return Status::corruption("heap snapshot: truncated timers");
    }
    SLUICE_RETURN_IF_ERROR(timer_queue(std::string(name)).read_key_group(kg, body));
  }
  if (!r.empty()) return Status::corruption("heap snapshot: trailing bytes");
  return Status::ok();
}

void HeapKeyedStateBackend::load_pending(const std::string& name, HeapTableBase& t) {
  auto it = pending_.find(name);
  if (it == pending_.end()) return;
  for (auto& [g, bytes] : it->second) {
    Status st = t.read_group(g, bytes);
    if (!st.is_ok()) throw StateTypeError("restoring state '" + name + "': " + st.message());
  }
  pending_.erase(it);
}

}  // namespace sluice::state
