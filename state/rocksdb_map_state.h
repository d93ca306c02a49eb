// Map state on the RocksDB backend: MapState (keys in Serde bytes) and
// OrderedMapState (keys in OrderedCodec bytes) share one implementation.
//
// One RocksDB entry per map entry: key = the (key group, key, namespace)
// prefix of the state (RocksDBKeyedStateBackend::compose) followed by the
// encoded map key; value = the usual header (expiry) + Serde<V>. The prefix
// is prefix-free across (key, namespace) pairs, so one map is one
// contiguous key range and a range of map keys is a sub-range of it: reads
// are iterators with lower and upper bounds, removal is a write batch or a
// DeleteRange (RocksDBOptions::range_delete_threshold). TTL is per entry.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "state/map_state_common.h"
#include "state/ordered_map_state.h"
#include "state/rocksdb_backend.h"

namespace sluice::state {

/// A RocksDB map iteration over one (key, namespace) within an encoded
/// range, ascending or descending. Expired entries are skipped and deleted;
/// a value is decoded (and, with refresh_on_read, rewritten with a new
/// expiry) only when read. Created by the map handle, owned by a MapRange
/// (or a handle method); task thread only.
template <class K, class V, class Codec>
class RocksMapCursor final : public MapCursor<K, V> {
 public:
  RocksMapCursor(RocksDBKeyedStateBackend& b, RocksDBKeyedStateBackend::Column* col,
                 const StateTtl& ttl, int* open, std::string_view prefix, const EncodedRange& r,
                 bool reverse)
      : b_(b),
        col_(col),
        ttl_(ttl),
        open_(open),
        prefix_len_(prefix.size()),
        reverse_(reverse),
        now_(b.now_ms()),
        cur_(b.open_cursor(col, std::string(prefix) + r.lower,
                           r.upper ? std::string(prefix) + *r.upper
                                   : RocksDBKeyedStateBackend::prefix_end(prefix))) {
    ++*open_;
    if (r.empty()) return;  // lower >= upper: RocksDB finds nothing
    if (reverse_) cur_.seek_to_last();
    else cur_.seek_to_first();
    settle();
  }
  ~RocksMapCursor() override { --*open_; }
  RocksMapCursor(const RocksMapCursor&) = delete;
  RocksMapCursor& operator=(const RocksMapCursor&) = delete;

  bool valid() const override { return cur_.valid(); }
  const K& key() const override {
    if (!key_decoded_) {
      if (!Codec::decode(cur_.key().substr(prefix_len_), k_)) {
        b_.corrupt(col_, "map key does not decode");
      }
      key_decoded_ = true;
    }
    return k_;
  }
  const V& value() override {
    if (value_decoded_) return v_;
    ByteReader r(payload_);
    if (!Serde<V>::read(r, v_) || !r.empty()) b_.corrupt(col_, "value does not decode");
    value_decoded_ = true;
    if (ttl_.enabled() && ttl_.refresh_on_read) {
      std::string& out = b_.value_buffer();
      rocks::put_header(out, now_ + ttl_.ttl.count());
      out.append(payload_.data(), payload_.size());
      b_.put(col_, cur_.key(), out);
    }
    return v_;
  }
  void next() override {
    if (reverse_) cur_.prev();
    else cur_.next();
    settle();
  }

 private:
  // Skips (and deletes) expired entries from the current position on.
  void settle() {
    key_decoded_ = value_decoded_ = false;
    for (; cur_.valid(); reverse_ ? cur_.prev() : cur_.next()) {
      std::string_view v = cur_.value();
      int64_t expiry;
      if (!rocks::take_header(v, expiry)) b_.corrupt(col_, "bad value header");
      if (expiry == 0 || expiry > now_) {
        payload_ = v;
        return;
      }
      b_.remove(col_, cur_.key());
    }
  }

  RocksDBKeyedStateBackend& b_;
  RocksDBKeyedStateBackend::Column* col_;
  StateTtl ttl_;
  int* open_;
  size_t prefix_len_;
  bool reverse_;
  int64_t now_;
  RocksDBKeyedStateBackend::Cursor cur_;
  std::string_view payload_;  // value bytes of the current entry (in the iterator)
  mutable K k_{};
  mutable bool key_decoded_ = false;
  V v_{};
  bool value_decoded_ = false;
};

/// The RocksDB map handle: MapState<K, V> with Serde keys (Iface =
/// MapState; the layout every existing map state has on disk) or
/// OrderedMapState<K, V> with ordered keys. Owned by the backend; task
/// thread only.
template <class K, class V, class Codec, class Iface>
class RocksMapStateImpl final : public Iface, RocksStateBase {
 public:
  template <class Desc>
  RocksMapStateImpl(RocksDBKeyedStateBackend& b, const Desc& d, std::string_view sig)
      : RocksStateBase(b, d.name, sig, d.ttl), name_(d.name) {}

  void set_namespace(std::string_view ns) override { ns_.assign(ns); }
  std::optional<V> get(const K& k) override {
    auto v = load(entry_key(k));
    if (!v) return std::nullopt;
    V out{};
    decode(*v, out);
    return out;
  }
  void put(const K& k, const V& value) override {
    check_writable("put");
    store(entry_key(k), value);
  }
  void remove(const K& k) override {
    check_writable("remove");
    b_.remove(col_, entry_key(k));
  }
  bool contains(const K& k) override { return load(entry_key(k)).has_value(); }
  std::unique_ptr<MapCursor<K, V>> open_all() override { return open_cursor(EncodedRange{}, false); }
  void clear() override {
    check_writable("clear");
    const std::string& prefix = key();
    b_.remove_range(col_, prefix, RocksDBKeyedStateBackend::prefix_end(prefix));
  }

  // OrderedMapState (plain members when Iface is MapState).
  std::unique_ptr<MapCursor<K, V>> open_cursor(const EncodedRange& r, bool reverse) {
    return std::make_unique<RocksMapCursor<K, V, Codec>>(b_, col_, ttl_, &open_cursors_, key(), r,
                                                          reverse);
  }
  void remove_encoded_range(const EncodedRange& r) {
    check_writable("remove_range");
    if (r.empty()) return;
    std::string lower = key();
    std::string upper = r.upper ? lower + *r.upper : RocksDBKeyedStateBackend::prefix_end(lower);
    lower += r.lower;
    b_.remove_range(col_, lower, upper);
  }

 private:
  std::string& entry_key(const K& k) {
    std::string& out = key();
    Codec::encode(out, k);
    return out;
  }
  void check_writable(const char* op) const { throw_if_iterating(open_cursors_, name_, op); }


  std::string name_;
  int open_cursors_ = 0;
};

template <class K, class V>
using RocksMapState = RocksMapStateImpl<K, V, SerdeKeyCodec<K>, MapState<K, V>>;
template <class K, class V>
using RocksOrderedMapState = RocksMapStateImpl<K, V, OrderedKeyCodec<K>, OrderedMapState<K, V>>;

}  // namespace sluice::state
