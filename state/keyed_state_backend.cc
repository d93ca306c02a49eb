#include "state/keyed_state_backend.h"

namespace sluice::state {

std::string_view backend_kind_name(BackendKind kind) {
  switch (kind) {
    case BackendKind::kHeap: return "heap";
    case BackendKind::kRocksDB: return "rocksdb";
  }
  return "unknown";
}

Result<BackendKind> parse_backend_kind(std::string_view name) {
  if (name == "heap") return BackendKind::kHeap;
  if (name == "rocksdb") return BackendKind::kRocksDB;
  return Status::invalid_argument("unknown state backend '" + std::string(name) +
                                  "'; use heap or rocksdb");
}

KeyedStateBackend::KeyedStateBackend(KeyGroupRange range, int32_t max_parallelism,
                                     const Clock* clock)
    : range_(range), max_parallelism_(max_parallelism), clock_(clock) {}

KeyedStateBackend::~KeyedStateBackend() = default;

TimerQueue& KeyedStateBackend::timer_queue(const std::string& name) {
  auto& q = timers_[name];
  if (!q) q = std::make_unique<TimerQueue>();
  return *q;
}

void KeyedStateBackend::write_back_caches() {
  if (caches_.empty()) return;
  const std::string key = current_key_;
  const KeyGroup kg = current_kg_;
  for (StateCache* c : caches_) c->write_back_all();
  set_current_key(key, kg);
}

}  // namespace sluice::state
