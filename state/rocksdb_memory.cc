#include "state/rocksdb_memory.h"

#include <rocksdb/cache.h>
#include <rocksdb/write_buffer_manager.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>

namespace sluice::state {

namespace {
std::mutex g_mu;
std::weak_ptr<RocksDBMemoryBudget> g_current;

// Memtables may take this share of the budget; the rest is for blocks.
constexpr double kWriteBufferRatio = 0.5;
// Index and filter blocks live in the cache's high-priority pool, so scans
// of data blocks do not evict them.
constexpr double kHighPriorityRatio = 0.1;
}  // namespace

std::shared_ptr<RocksDBMemoryBudget> RocksDBMemoryBudget::acquire(int64_t bytes) {
  std::lock_guard lk(g_mu);
  if (auto b = g_current.lock()) {
    if (b->bytes() != bytes) {
      spdlog::warn(
          "state.rocksdb.memory={} ignored: this process already runs RocksDB state with a "
          "budget of {} bytes (one budget per process; the first configuration wins)",
          bytes, b->bytes());
    }
    return b;
  }
  auto b = std::make_shared<RocksDBMemoryBudget>(bytes);
  g_current = b;
  return b;
}

std::shared_ptr<RocksDBMemoryBudget> RocksDBMemoryBudget::current() {
  std::lock_guard lk(g_mu);
  return g_current.lock();
}

RocksDBMemoryBudget::RocksDBMemoryBudget(int64_t bytes) : bytes_(bytes) {
  rocksdb::LRUCacheOptions co;
  co.capacity = static_cast<size_t>(bytes);
  co.num_shard_bits = -1;  // RocksDB picks from the capacity
  // Not strict: a strict cache fails reads when pinned blocks exceed it.
  co.strict_capacity_limit = false;
  co.high_pri_pool_ratio = kHighPriorityRatio;
  cache_ = rocksdb::NewLRUCache(co);
  wbm_ = std::make_shared<rocksdb::WriteBufferManager>(
      static_cast<size_t>(static_cast<double>(bytes) * kWriteBufferRatio), cache_);
}

RocksDBMemoryBudget::~RocksDBMemoryBudget() = default;

int64_t RocksDBMemoryBudget::block_cache_capacity() const {
  return static_cast<int64_t>(cache_->GetCapacity());
}
int64_t RocksDBMemoryBudget::write_buffer_limit() const {
  return static_cast<int64_t>(wbm_->buffer_size());
}
int64_t RocksDBMemoryBudget::block_cache_usage() const {
  return static_cast<int64_t>(cache_->GetUsage());
}
int64_t RocksDBMemoryBudget::write_buffer_usage() const {
  return static_cast<int64_t>(wbm_->memory_usage());
}
int64_t RocksDBMemoryBudget::write_buffer_size() const {
  // An eighth of the budget, between 2 MiB and 64 MiB: large enough that
  // flushes are not tiny, small enough that many states fit.
  return std::clamp<int64_t>(bytes_ / 8, 2LL << 20, 64LL << 20);
}

}  // namespace sluice::state
