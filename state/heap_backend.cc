#include "state/heap_backend.h"

namespace sluice::state {

// Snapshot file: magic, then (varint key group, bytes blob) for every group
// of the range. The magic names the format of the blobs:
//
//   format 2 ("SLUICE-HEAP-2"), written now. Blob: varint table count, then
//     per table: bytes name, bytes signature ("map<...>", checked on
//     restore; "" for a table carried over unread from a format-1
//     snapshot), bytes body; then varint timer-queue count and per queue:
//     bytes name, bytes TimerQueue::write_key_groups encoding.
//   format 1 ("SLUICE-HEAP-1"), read only. The same without signatures; map
//     tables kept one expiry per map (HeapMapTable reads them).
//
// Bodies: HeapTable (value, list, reducing, aggregating state) and
// HeapMapTable (map and ordered map state) describe theirs.
namespace {
constexpr std::string_view kHeapMagicV1 = "SLUICE-HEAP-1\n";
constexpr std::string_view kHeapMagic = "SLUICE-HEAP-2\n";
}  // namespace

// The backend as of a barrier, for the snapshot thread: the tables'
// copy-on-write views, the restored bytes of unregistered states and the
// timers (serialized: TimerQueue is not shared). Made on the task thread by
// freeze(); read-only afterwards, independent of the backend.
struct HeapKeyedStateBackend::Frozen {
  struct Table {
    std::string name;
    std::string signature;
    std::unique_ptr<HeapTableSnapshot> view;
  };
  struct Parked {
    size_t group;
    std::string name;
    std::string signature;
    std::string bytes;
  };
  int64_t now = 0;  // expiry is judged at the barrier
  std::vector<Table> tables;
  std::vector<Parked> parked;
  std::vector<std::pair<std::string, std::vector<std::string>>> timers;  // per queue, per group

  // Blob of group g (layout: top of this file).
  std::string write_group(size_t g) const {
    std::string out;
    ByteWriter w(out);
    size_t n_parked = 0;
    for (const auto& p : parked) n_parked += p.group == g ? 1 : 0;
    w.put_varint(tables.size() + n_parked);
    std::string body;
    for (const auto& t : tables) {
      body.clear();
      t.view->write_group(g, body, now);
      w.put_bytes(t.name);
      w.put_bytes(t.signature);
      w.put_bytes(body);
    }
    for (const auto& p : parked) {
      if (p.group != g) continue;
      w.put_bytes(p.name);
      w.put_bytes(p.signature);
      w.put_bytes(p.bytes);
    }
    w.put_varint(timers.size());
    for (const auto& [name, per_group] : timers) {
      w.put_bytes(name);
      w.put_bytes(per_group[g]);
    }
    return out;
  }
};

namespace {
// A table read in place (write_key_group: no snapshot thread involved).
class LiveTable final : public HeapTableSnapshot {
 public:
  explicit LiveTable(const HeapTableBase& t) : t_(t) {}
  void write_group(size_t g, std::string& out, int64_t now) const override {
    t_.write_group(g, out, now);
  }

 private:
  const HeapTableBase& t_;
};
}  // namespace

std::shared_ptr<const HeapKeyedStateBackend::Frozen> HeapKeyedStateBackend::freeze() {
  auto f = std::make_shared<Frozen>();
  for (auto& [name, t] : tables_) f->tables.push_back({name, t->signature(), t->capture()});
  freeze_rest(*f);
  return f;
}

void HeapKeyedStateBackend::freeze_rest(Frozen& f) const {
  f.now = clock_->now_ms();
  // Restored state that no operator has registered yet is carried on as is:
  // a state registered lazily must survive a checkpoint taken before it is.
  for (const auto& [name, entries] : pending_)
    for (const auto& p : entries) f.parked.push_back({p.group, name, p.signature, p.bytes});
  for (const auto& [name, q] : timers_) {
    f.timers.emplace_back(name, std::vector<std::string>());
    q->write_key_groups(range_, f.timers.back().second);
  }
}

Result<AsyncSnapshot> HeapKeyedStateBackend::snapshot(CheckpointId id, const SnapshotTarget& target) {
  // Synchronous part: O(key groups x tables) for the tables, plus the
  // timers. Expired entries are not written (judged at the barrier); they
  // leave memory when their group is next changed (CowGroups).
  write_back_caches();  // operator-side caches hold part of the state
  std::shared_ptr<const Frozen> frozen = freeze();
  KeyedStateHandle handle;
  handle.backend = "heap";
  handle.kg_start = range_.start;
  handle.kg_end = range_.end;
  std::string rel = target.own_dir + "/" + target.file_stem + ".heap";
  std::string abs = target.job_dir + "/" + rel;
  const KeyGroupRange range = range_;
  return AsyncSnapshot([frozen, handle, rel, abs, range]() mutable -> Result<KeyedStateHandle> {
    std::string data(kHeapMagic);
    ByteWriter w(data);
    for (int32_t g = 0; g < range.size(); ++g) {
      w.put_varint(static_cast<uint64_t>(range.start + g));
      w.put_bytes(frozen->write_group(static_cast<size_t>(g)));
    }
    SLUICE_RETURN_IF_ERROR(write_file_atomic(abs, data));
    handle.files.push_back(StateFile{rel, static_cast<int64_t>(data.size()), false});
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
      int format = 0;
      if (data.compare(0, kHeapMagic.size(), kHeapMagic) == 0) format = 2;
      if (data.compare(0, kHeapMagicV1.size(), kHeapMagicV1) == 0) format = 1;
      if (format == 0) return Status::corruption("'" + f.path + "' is not a heap state snapshot");
      ByteReader r(std::string_view(data).substr(kHeapMagic.size()));
      while (!r.empty()) {
        uint64_t kg;
        std::string_view blob;
        if (!r.get_varint(kg) || !r.get_bytes(blob)) {
          return Status::corruption("'" + f.path + "' is truncated");
        }
        KeyGroup group(static_cast<int32_t>(kg));
        if (!range_.contains(group)) continue;
        SLUICE_RETURN_IF_ERROR(read_key_group(group, blob, format).with_context(f.path));
      }
    }
  }
  return Status::ok();
}

std::string HeapKeyedStateBackend::write_key_group(size_t g) const {
  Frozen f;
  for (const auto& [name, t] : tables_) {
    f.tables.push_back({name, t->signature(), std::make_unique<LiveTable>(*t)});
  }
  freeze_rest(f);
  return f.write_group(g);
}

Status HeapKeyedStateBackend::read_key_group(KeyGroup kg, std::string_view bytes, int format) {
  if (format != 1 && format != 2) {
    return Status::corruption("heap snapshot: unknown format " + std::to_string(format));
  }
  if (!range_.contains(kg)) {
    return Status::internal("key group " + std::to_string(kg.value()) + " is outside " +
                            range_.to_string());
  }
  size_t g = static_cast<size_t>(kg.value() - range_.start);
  ByteReader r(bytes);
  uint64_t n;
  if (!r.get_varint(n)) return Status::corruption("heap snapshot: bad table count");
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view name, signature, body;
    if (!r.get_bytes(name) || (format >= 2 && !r.get_bytes(signature)) || !r.get_bytes(body)) {
      return Status::corruption("heap snapshot: truncated table");
    }
    auto it = tables_.find(std::string(name));
    if (it == tables_.end()) {
      pending_[std::string(name)].push_back(Pending{g, std::string(signature), std::string(body)});
      continue;
    }
    if (!signature.empty() && signature != it->second->signature()) {
      return Status::failed_precondition("state '" + std::string(name) + "' was checkpointed as " +
                                         std::string(signature) + " and cannot be restored as " +
                                         it->second->signature());
    }
    SLUICE_RETURN_IF_ERROR(it->second->read_group(g, body, signature.empty()));
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
  for (auto& p : it->second) {
    if (!p.signature.empty() && p.signature != t.signature()) {
      throw StateTypeError("state '" + name + "' was checkpointed as " + p.signature +
                           " and cannot be restored as " + t.signature());
    }
    Status st = t.read_group(p.group, p.bytes, p.signature.empty());
    if (!st.is_ok()) throw StateTypeError("restoring state '" + name + "': " + st.message());
  }
  pending_.erase(it);
}

std::vector<std::pair<std::string, KeyGroup>> HeapKeyedStateBackend::keys_of_state(
    const std::string& name, const KeyLength& key_length) {
  write_back_caches();
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
