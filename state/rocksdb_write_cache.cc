// The RocksDB backend's write-back cache at a snapshot: what the cache holds
// that RocksDB does not (its dirty entries) is captured on the task thread
// as one flat byte string and written by the snapshot's asynchronous part as
// the side file "_cache" of the checkpoint; a restore writes it over the
// checkpoint's RocksDB files. The dirty entries themselves stay in the cache
// (still dirty). Between checkpoints the oldest dirty entries beyond
// options.write_cache_dirty_entries are written to RocksDB in small batches
// (drain_dirty_entries) and stay cached, clean: the copy at the barrier is
// bounded, and a full cache is emptied without a large write.
//
// Overlay format: magic, then per cached column with dirty entries: the
// state's name, a varint count, and per entry u8 (1 put, 0 delete), the
// full RocksDB key, and for a put the raw value (header + payload).
#include <rocksdb/write_batch.h>

#include "state/rocksdb_internal.h"

namespace sluice::state {

namespace {
constexpr std::string_view kCacheMagic = "SLUICE-ROCKSDB-CACHE-1\n";
// A cache-full write of at least this many bytes starts a memtable flush
// in the background when the backend takes snapshots: the next snapshot's
// RocksDB checkpoint then finds it (mostly) done instead of flushing on the
// task thread.
constexpr size_t kKickFlushBytes = 1u << 20;
// The same for the drained writes between checkpoints (drain_dirty_entries),
// counted over many small batches.
constexpr size_t kKickDrainedBytes = 4u << 20;

// The changed entries in a column's cache (a walk of the whole cache).
size_t dirty_in_cache(const RocksDBKeyedStateBackend::Column& c) {
  size_t n = 0;
  for (const auto& [k, e] : c.cache) n += e.dirty ? 1 : 0;
  return n;
}
}  // namespace

size_t RocksDBKeyedStateBackend::write_dirty_entries(bool keep) {
  if (cache_bytes_ == 0) return 0;
  rocksdb::WriteBatch batch;
  std::vector<Column::Entry*> written;
  for (Column* c : cached_columns_) {
    for (auto& [k, e] : c->cache) {
      if (!e.dirty) continue;
      rocksdb::Status s = e.present ? batch.Put(c->handle, k, e.value) : batch.Delete(c->handle, k);
      if (!s.ok()) throw StateAccessError("state '" + c->name + "': write failed: " + s.ToString());
      if (keep) written.push_back(&e);
    }
  }
  const size_t n = batch.Count();
  if (n > 0) {
    rocksdb::Status s = db_->db->Write(db_->write, &batch);
    if (!s.ok()) throw StateAccessError("writing cached state: " + s.ToString());
    if (snapshotted_ && batch.GetDataSize() >= kKickFlushBytes) {
      rocksdb::FlushOptions fo;
      fo.wait = false;
      fo.allow_write_stall = true;  // never block the task thread here
      for (Column* c : cached_columns_) {
        // Best effort: a failed start only leaves the flush to the checkpoint.
        (void)db_->db->Flush(fo, c->handle);
      }
    }
  }
  if (keep) {
    // The DB now holds what these entries say.
    for (Column::Entry* e : written) {
      e->dirty = false;
      e->in_db = e->present;
    }
    dirty_->unqueue_all();
    return n;
  }
  dirty_->items.clear();  // the entries go now
  for (Column* c : cached_columns_) c->cache.clear();
  cache_bytes_ = 0;
  return n;
}

void RocksDBKeyedStateBackend::drain_dirty_entries() {
  const size_t take = std::max<size_t>(1, static_cast<size_t>(options_.write_cache_dirty_entries) / 8);
  rocksdb::WriteBatch batch;
  std::vector<DirtyQueue::Item> written;
  written.reserve(take);
  // On a failure the entries are still dirty: queued again, in their order,
  // so that snapshots keep finding them.
  auto fail = [&](const std::string& what, const rocksdb::Status& s) {
    for (auto it = written.rbegin(); it != written.rend(); ++it) {
      it->entry->second.queued = true;
      dirty_->items.push_front(*it);
    }
    throw StateAccessError(what + ": " + s.ToString());
  };
  while (written.size() < take && !dirty_->items.empty()) {
    DirtyQueue::Item i = dirty_->items.front();
    dirty_->items.pop_front();
    Column::Entry& e = i.entry->second;
    e.queued = false;
    if (!e.dirty) continue;  // written since, or removed before it reached the DB
    const std::string& k = i.entry->first;
    written.push_back(i);
    rocksdb::Status s = e.present ? batch.Put(i.column->handle, k, e.value) : batch.Delete(i.column->handle, k);
    if (!s.ok()) fail("state '" + i.column->name + "': write failed", s);
  }
  if (written.empty()) return;
  rocksdb::Status s = db_->db->Write(db_->write, &batch);
  if (!s.ok()) fail("writing cached state", s);
  for (DirtyQueue::Item& i : written) {
    i.entry->second.dirty = false;
    i.entry->second.in_db = i.entry->second.present;
  }
  // A backend that takes snapshots starts a background flush every few
  // MiB of drained writes, so that a barrier's RocksDB checkpoint finds
  // little in the memtable to flush while the task thread waits.
  dirty_->drained_bytes += batch.GetDataSize();
  if (snapshotted_ && dirty_->drained_bytes >= kKickDrainedBytes) {
    dirty_->drained_bytes = 0;
    rocksdb::FlushOptions fo;
    fo.wait = false;
    fo.allow_write_stall = true;  // never block the task thread here
    for (Column* c : cached_columns_) (void)db_->db->Flush(fo, c->handle);  // best effort
  }
}

size_t RocksDBKeyedStateBackend::dirty_cache_entries() const {
  size_t n = 0;
  for (const Column* c : cached_columns_) n += dirty_in_cache(*c);
  return n;
}

std::string RocksDBKeyedStateBackend::capture_dirty_entries(size_t& entries) const {
  entries = 0;
  std::string out;
  // Sized for the usual case (most cached bytes dirty) so appends rarely
  // reallocate; the overhead counted per entry is larger than its framing.
  out.reserve(kCacheMagic.size() + cache_bytes_ / 2);
  out.append(kCacheMagic);
  ByteWriter w(out);
  auto put = [&w](const std::string& k, const Column::Entry& e) {
    w.put_u8(e.present ? 1 : 0);
    w.put_bytes(k);
    if (e.present) w.put_bytes(e.value);
  };
  for (const Column* c : cached_columns_) {
    // With the write-back between checkpoints on, every dirty entry is
    // queued: the queue (bounded) is walked instead of the whole cache.
    const bool queued = options_.write_cache_dirty_entries > 0;
    size_t n = 0;
    if (queued) {
      for (const DirtyQueue::Item& i : dirty_->items) n += i.column == c && i.entry->second.dirty ? 1 : 0;
    } else {
      n = dirty_in_cache(*c);
    }
    if (n == 0) continue;
    w.put_bytes(c->name);
    w.put_varint(n);
    if (queued) {
      for (const DirtyQueue::Item& i : dirty_->items) {
        if (i.column == c && i.entry->second.dirty) put(i.entry->first, i.entry->second);
      }
    } else {
      for (const auto& [k, e] : c->cache) {
        if (e.dirty) put(k, e);
      }
    }
    entries += n;
  }
  if (entries == 0) out.clear();
  return out;
}

Status RocksDBKeyedStateBackend::apply_cache_overlay(std::string_view bytes, KeyGroupRange part,
                                                     const std::string& what) {
  if (bytes.compare(0, kCacheMagic.size(), kCacheMagic) != 0) {
    return Status::corruption(what + " is not a RocksDB write-cache file");
  }
  ByteReader r(bytes.substr(kCacheMagic.size()));
  rocksdb::WriteBatch batch;
  while (!r.empty()) {
    std::string_view name;
    uint64_t n;
    if (!r.get_bytes(name) || !r.get_varint(n)) return Status::corruption(what + ": truncated");
    const std::string cf = std::string(rocks::kStatePrefix) + std::string(name);
    auto h = db_->handles.find(cf);
    if (h == db_->handles.end()) {
      rocksdb::ColumnFamilyHandle* handle = nullptr;
      SLUICE_RETURN_IF_ERROR(rocks::to_status(
          db_->db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(db_->options), cf, &handle), what));
      h = db_->handles.emplace(cf, handle).first;
    }
    for (uint64_t i = 0; i < n; ++i) {
      uint8_t op;
      std::string_view key, value;
      if (!r.get_u8(op) || op > 1 || !r.get_bytes(key) || (op == 1 && !r.get_bytes(value)) ||
          key.size() < 2) {
        return Status::corruption(what + ": truncated or bad entry");
      }
      const int32_t kg = (static_cast<uint8_t>(key[0]) << 8) | static_cast<uint8_t>(key[1]);
      if (!part.contains(KeyGroup(kg))) continue;  // another subtask's (rescaling)
      // An entry that expired since is not carried over (as the SSTs'
      // expired entries are not, when rescaling): a delete, so that no
      // older entry of the checkpoint's RocksDB files shows through.
      std::string_view payload = value;
      int64_t expiry = 0;
      if (op == 1 && !rocks::take_header(payload, expiry)) {
        return Status::corruption(what + ": a value of " + cf + " has a bad header");
      }
      rocksdb::Slice k(key.data(), key.size());
      rocksdb::Status s = op == 1 && !expired(expiry)
                              ? batch.Put(h->second, k, rocksdb::Slice(value.data(), value.size()))
                              : batch.Delete(h->second, k);
      SLUICE_RETURN_IF_ERROR(rocks::to_status(s, what));
    }
  }
  if (batch.Count() == 0) return Status::ok();
  return rocks::to_status(db_->db->Write(db_->write, &batch), what);
}

}  // namespace sluice::state
