// Key groups: the unit in which keyed state is partitioned, routed and
// rescaled. key_group = murmur3(serialized key) % max_parallelism; a
// subtask owns one contiguous range, so rescaling moves whole ranges.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/common/ids.h"
#include "engine/common/status.h"

namespace sluice::state {

inline constexpr int32_t kDefaultMaxParallelism = 128;
/// Key groups are stored as two big-endian bytes in RocksDB keys.
inline constexpr int32_t kMaxMaxParallelism = 32768;

/// An inclusive range [start, end] of key groups; empty when end < start.
struct KeyGroupRange {
  int32_t start = 0;
  int32_t end = -1;

  bool empty() const { return end < start; }
  int32_t size() const { return empty() ? 0 : end - start + 1; }
  bool contains(KeyGroup kg) const { return kg.value() >= start && kg.value() <= end; }
  KeyGroupRange intersect(const KeyGroupRange& o) const {
    return {std::max(start, o.start), std::min(end, o.end)};
  }
  bool operator==(const KeyGroupRange&) const = default;
  std::string to_string() const;
};

/// The key group of a serialized key.
KeyGroup key_group_for_key(std::string_view key_bytes, int32_t max_parallelism);

/// The key groups owned by `subtask` when `parallelism` subtasks share
/// `max_parallelism` groups. Ranges of consecutive subtasks are adjacent and
/// cover [0, max_parallelism).
KeyGroupRange key_group_range_for_subtask(int32_t max_parallelism, int32_t parallelism,
                                          int32_t subtask);

/// The subtask that owns `kg`; consistent with key_group_range_for_subtask.
int32_t subtask_for_key_group(int32_t max_parallelism, int32_t parallelism, KeyGroup kg);

/// Checks 1 <= parallelism <= max_parallelism <= kMaxMaxParallelism.
Status validate_parallelism(int32_t parallelism, int32_t max_parallelism);

}  // namespace sluice::state
