// Broadcast state (Flink's): a key/value map per state descriptor that the
// broadcast side of a broadcast-process operator writes and the other side
// only reads. Every subtask applies the same broadcast records, so every
// copy is the same; it is operator state, snapshotted by every subtask and,
// on restore at any parallelism, taken from old subtask 0 by every new one.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/common/serde.h"
#include "engine/common/status.h"
#include "state/keyed_state.h"
#include "state/keyed_state_backend.h"

namespace sluice::join {

/// Type-erased face of one broadcast state, for snapshots.
class BroadcastStateBase {
 public:
  virtual ~BroadcastStateBase() = default;
  virtual std::string serialize() const = 0;
  virtual Status restore(std::string_view bytes) = 0;
};

/// What the non-broadcast side sees: lookups only. Entries are ordered by
/// serialized key, the same order on every subtask. Task thread only.
template <class K, class V>
class ReadOnlyBroadcastState {
 public:
  virtual ~ReadOnlyBroadcastState() = default;
  /// The value of `key`, or null (valid until the state changes).
  const V* find(const K& key) const {
    auto it = entries_.find(sluice::serialize(key));
    return it == entries_.end() ? nullptr : &it->second.second;
  }
  std::optional<V> get(const K& key) const {
    const V* v = find(key);
    return v ? std::optional<V>(*v) : std::nullopt;
  }
  bool contains(const K& key) const { return find(key) != nullptr; }
  std::vector<std::pair<K, V>> entries() const {
    std::vector<std::pair<K, V>> out;
    out.reserve(entries_.size());
    for (const auto& [bytes, e] : entries_) out.push_back(e);
    return out;
  }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }

 protected:
  std::map<std::string, std::pair<K, V>> entries_;  // serialized key -> entry
};

/// The broadcast side's view: reads and writes. Owned by its operator's
/// BroadcastStates; task thread only.
template <class K, class V>
class BroadcastState final : public ReadOnlyBroadcastState<K, V>, public BroadcastStateBase {
 public:
  void put(const K& key, const V& value) { this->entries_[sluice::serialize(key)] = {key, value}; }
  void remove(const K& key) { this->entries_.erase(sluice::serialize(key)); }
  void clear() { this->entries_.clear(); }

  // varint count, then per entry: bytes (serialized key), Serde<V>
  std::string serialize() const override {
    std::string out;
    ByteWriter w(out);
    w.put_varint(this->entries_.size());
    for (const auto& [bytes, e] : this->entries_) {
      w.put_bytes(bytes);
      Serde<V>::write(w, e.second);
    }
    return out;
  }
  Status restore(std::string_view data) override {
    ByteReader r(data);
    uint64_t n = 0;
    if (!r.get_varint(n)) return Status::corruption("broadcast state: bad entry count");
    for (uint64_t i = 0; i < n; ++i) {
      std::string_view key_bytes;
      std::pair<K, V> e{};
      if (!r.get_bytes(key_bytes) || !Serde<V>::read(r, e.second) ||
          !deserialize(key_bytes, e.first).is_ok()) {
        return Status::corruption("broadcast state: entry " + std::to_string(i) + " does not decode");
      }
      this->entries_[std::string(key_bytes)] = std::move(e);
    }
    if (!r.empty()) return Status::corruption("broadcast state: trailing bytes");
    return Status::ok();
  }
};

/// The broadcast states of one operator subtask, by descriptor name. Only
/// the names declared with DataStream::broadcast(descriptors...) exist.
/// Snapshot = every state's bytes by name; a restored state waits as bytes
/// until it is first used (and is snapshotted as those bytes meanwhile).
/// Owned by the operator; task thread only.
class BroadcastStates {
 public:
  explicit BroadcastStates(std::vector<std::string> declared) : declared_(std::move(declared)) {}

  /// The state of descriptor `d`. Throws state::StateTypeError (which
  /// fails the task) for an undeclared name or another key/value type.
  template <class K, class V>
  BroadcastState<K, V>& get(const state::MapStateDescriptor<K, V>& d) {
    std::string sig = "map<" + std::string(type_name<K>()) + "," + std::string(type_name<V>()) + ">";
    auto it = states_.find(d.name);
    if (it != states_.end()) {
      if (it->second.signature != sig) {
        throw state::StateTypeError("broadcast state '" + d.name + "' is " + it->second.signature +
                                    ", not " + sig);
      }
      return static_cast<BroadcastState<K, V>&>(*it->second.state);
    }
    bool declared = false;
    for (const auto& n : declared_) declared = declared || n == d.name;
    if (!declared) {
      throw state::StateTypeError("broadcast state '" + d.name +
                                  "' was not declared; pass its descriptor to broadcast(...)");
    }
    auto state = std::make_unique<BroadcastState<K, V>>();
    if (auto p = pending_.find(d.name); p != pending_.end()) {
      Status st = state->restore(p->second);
      if (!st.is_ok()) throw state::StateTypeError(st.with_context("broadcast state '" + d.name + "'").to_string());
      pending_.erase(p);
    }
    auto& ref = *state;
    states_.emplace(d.name, Entry{std::move(sig), std::move(state)});
    return ref;
  }

  /// varint count, then per state: bytes name, bytes state
  std::string snapshot() const {
    std::map<std::string, std::string> all = pending_;
    for (const auto& [name, e] : states_) all[name] = e.state->serialize();
    std::string out;
    ByteWriter w(out);
    w.put_varint(all.size());
    for (const auto& [name, bytes] : all) {
      w.put_bytes(name);
      w.put_bytes(bytes);
    }
    return out;
  }
  /// Before first use: the states as snapshot() wrote them.
  Status restore(std::string_view data) {
    ByteReader r(data);
    uint64_t n = 0;
    if (!r.get_varint(n)) return Status::corruption("broadcast states: bad count");
    for (uint64_t i = 0; i < n; ++i) {
      std::string_view name, bytes;
      if (!r.get_bytes(name) || !r.get_bytes(bytes)) return Status::corruption("broadcast states: truncated");
      pending_[std::string(name)] = std::string(bytes);
    }
    if (!r.empty()) return Status::corruption("broadcast states: trailing bytes");
    return Status::ok();
  }

 private:
  struct Entry {
    std::string signature;
    std::unique_ptr<BroadcastStateBase> state;
  };
  std::vector<std::string> declared_;
  std::map<std::string, Entry> states_;
  std::map<std::string, std::string> pending_;  // restored, not used yet
};

}  // namespace sluice::join
