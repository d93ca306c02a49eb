#include "state/heap_backend.h"

namespace sluice::state {

namespace {
constexpr std::string_view kHeapMagic = "SLUICE-HEAP-1\n";
}  // namespace

// File: magic, then (varint key group, bytes blob) for every non-empty group.
Result<AsyncSnapshot> HeapKeyedStateBackend::snapshot(CheckpointId id, const SnapshotTarget& target) {
  auto data = std::make_shared<std::string>(kHeapMagic);
  ByteWriter w(*data);
  for (int32_t g = 0; g < range_.size(); ++g) {
    std::string blob = write_key_group(static_cast<size_t>(g));
    w.put_varint(static_cast<uint64_t>(range_.start + g));
    w.put_bytes(blob);
  }
  KeyedStateHandle handle;
  handle.backend = "heap";
  handle.kg_start = range_.start;
  handle.kg_end = range_.end;
  std::string rel = target.own_dir + "/" + target.file_stem + ".heap";
  std::string abs = target.job_dir + "/" + rel;
  return AsyncSnapshot([data, handle, rel, abs]() mutable -> Result<KeyedStateHandle> {
    SLUICE_RETURN_IF_ERROR(write_file_atomic(abs, *data));
    handle.files.push_back(StateFile{rel, static_cast<int64_t>(data->size()), false});
    return handle;
  });
}

Status HeapKeyedStateBackend::restore(const std::vector<KeyedStateHandle>& handles,
                                      const std::string& job_dir) {
  for (const auto& h : handles) {
    if (h.backend != "heap") {
      return Status::failed_precondition("cannot restore '" + h.backend +
                                         "' keyed state into the heap backend; restore with "
                                         "state.backend=" + h.backend);
    }
    if (h.range().intersect(range_).empty()) continue;
    for (const auto& f : h.files) {
      SLUICE_ASSIGN_OR_RETURN(std::string data, read_file(job_dir + "/" + f.path));
      if (data.compare(0, kHeapMagic.size(), kHeapMagic) != 0) {
        return Status::corruption("'" + f.path + "' is not a heap state snapshot");
      }
      ByteReader r(std::string_view(data).substr(kHeapMagic.size()));
      while (!r.empty()) {
        uint64_t kg;
        std::string_view blob;
        if (!r.get_varint(kg) || !r.get_bytes(blob)) {
          return Status::corruption("'" + f.path + "' is truncated");
        }
        KeyGroup group(static_cast<int32_t>(kg));
        if (!range_.contains(group)) continue;
        SLUICE_RETURN_IF_ERROR(read_key_group(group, blob).with_context(f.path));
      }
    }
  }
  return Status::ok();
}

std::string HeapKeyedStateBackend::write_key_group(size_t g) const {
  std::string out;
  ByteWriter w(out);
  int64_t now = clock_->now_ms();
  // Restored state that no operator has registered yet is carried on as is:
  // a state registered lazily must survive a checkpoint taken before it is.
  size_t parked = 0;
  for (const auto& [name, entries] : pending_)
    for (const auto& [pg, bytes] : entries) parked += pg == g ? 1 : 0;
  w.put_varint(tables_.size() + parked);
  std::string body;
  for (const auto& [name, t] : tables_) {
    body.clear();
    t->write_group(g, body, now);
    w.put_bytes(name);
    w.put_bytes(body);
  }
  for (const auto& [name, entries] : pending_) {
    for (const auto& [pg, bytes] : entries) {
      if (pg != g) continue;
      w.put_bytes(name);
      w.put_bytes(bytes);
    }
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

std::vector<std::pair<std::string, KeyGroup>> HeapKeyedStateBackend::keys_of_state(
    const std::string& name, const KeyLength& key_length) {
  std::vector<std::pair<std::string, KeyGroup>> out;
  auto it = tables_.find(name);
  if (it == tables_.end()) return out;
  const int64_t now = now_ms();
  for (size_t g = 0; g < static_cast<size_t>(range_.size()); ++g) {
    const KeyGroup kg(range_.start + static_cast<int32_t>(g));
    // Composite keys are key + namespace: the default namespace is empty.
    it->second->for_each_key(g, now, [&](std::string_view composite) {
      if (key_length(composite) == composite.size()) out.emplace_back(std::string(composite), kg);
    });
  }
  return out;
}

}  // namespace sluice::state
