#include "state/key_groups.h"

#include <algorithm>

#include "engine/common/hash.h"

namespace sluice::state {

std::string KeyGroupRange::to_string() const {
  if (empty()) return "[]";
  return "[" + std::to_string(start) + ", " + std::to_string(end) + "]";
}

KeyGroup key_group_for_key(std::string_view key_bytes, int32_t max_parallelism) {
  return KeyGroup(static_cast<int32_t>(murmur3_32(key_bytes, 0x5eed) %
                                       static_cast<uint32_t>(max_parallelism)));
}

// Subtask i owns the key groups kg with floor(kg * p / m) == i, i.e.
// kg in [ceil(i*m/p), ceil((i+1)*m/p) - 1].
KeyGroupRange key_group_range_for_subtask(int32_t max_parallelism, int32_t parallelism,
                                          int32_t subtask) {
  int64_t m = max_parallelism, p = parallelism, i = subtask;
  int64_t start = (i * m + p - 1) / p;
  int64_t end = ((i + 1) * m + p - 1) / p - 1;
  return {static_cast<int32_t>(start), static_cast<int32_t>(end)};
}

int32_t subtask_for_key_group(int32_t max_parallelism, int32_t parallelism, KeyGroup kg) {
  return static_cast<int32_t>(static_cast<int64_t>(kg.value()) * parallelism / max_parallelism);
}

Status validate_parallelism(int32_t parallelism, int32_t max_parallelism) {
  if (parallelism < 1) {
    return Status::invalid_argument("parallelism must be at least 1, got " +
                                    std::to_string(parallelism));
  }
  if (max_parallelism < 1 || max_parallelism > kMaxMaxParallelism) {
    return Status::invalid_argument("max parallelism must be between 1 and " +
                                    std::to_string(kMaxMaxParallelism) + ", got " +
                                    std::to_string(max_parallelism));
  }
  if (parallelism > max_parallelism) {
    return Status::invalid_argument("parallelism " + std::to_string(parallelism) +
                                    " exceeds max parallelism " + std::to_string(max_parallelism) +
                                    " (the number of key groups); raise max parallelism");
  }
  return Status::ok();
}

}  // namespace sluice::state
