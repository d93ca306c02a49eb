// The RocksDB memory budget of a process: one LRU block cache and one
// WriteBufferManager that every RocksDB keyed-state backend of the process
// uses, so the memory RocksDB takes is bounded by one number
// (`state.rocksdb.memory`) however many operator subtasks run here.
#pragma once

#include <cstdint>
#include <memory>

namespace rocksdb {
class Cache;
class WriteBufferManager;
}  // namespace rocksdb

namespace sluice::state {

/// The shared RocksDB memory of this process.
///
/// The block cache has capacity = the budget; the WriteBufferManager limits
/// memtables to half of it and charges their memory to the same cache, so
/// data blocks, index/filter blocks and memtables together stay near the
/// budget (RocksDB's "cost write buffers to the block cache" mode; the
/// limit is soft: a burst can overshoot until flushes catch up).
///
/// Lifecycle: created by the first backend that acquires it and released
/// when the last backend holding it is destroyed; a backend created while
/// one exists shares it even if its job configuration asks for another
/// size (the process has one budget; the first configuration wins and the
/// mismatch is logged). Thread-safe; shared by backends on every task
/// thread and by RocksDB's background threads.
class RocksDBMemoryBudget {
 public:
  /// The budget every backend alive in the process shares; creates it with
  /// `bytes` when none exists.
  // shared: every backend of the process holds it; it goes with the last one.
  static std::shared_ptr<RocksDBMemoryBudget> acquire(int64_t bytes);
  /// The budget in use now, or nullptr when no backend holds one.
  static std::shared_ptr<RocksDBMemoryBudget> current();

  explicit RocksDBMemoryBudget(int64_t bytes);
  ~RocksDBMemoryBudget();
  RocksDBMemoryBudget(const RocksDBMemoryBudget&) = delete;
  RocksDBMemoryBudget& operator=(const RocksDBMemoryBudget&) = delete;

  int64_t bytes() const { return bytes_; }
  int64_t block_cache_capacity() const;
  int64_t write_buffer_limit() const;
  /// Bytes the cache holds now (data blocks, index/filter blocks and the
  /// reservations that stand for memtables).
  int64_t block_cache_usage() const;
  /// Bytes of memtables now (all backends).
  int64_t write_buffer_usage() const;
  /// Memtable size per column family that suits this budget (the manager
  /// still flushes early when the shared limit is reached).
  int64_t write_buffer_size() const;

  // shared: handed to the options of every DB of the process.
  const std::shared_ptr<rocksdb::Cache>& cache() const { return cache_; }
  const std::shared_ptr<rocksdb::WriteBufferManager>& write_buffer_manager() const { return wbm_; }

 private:
  int64_t bytes_;
  std::shared_ptr<rocksdb::Cache> cache_;
  std::shared_ptr<rocksdb::WriteBufferManager> wbm_;
};

}  // namespace sluice::state
