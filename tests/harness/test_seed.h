// The seed of a randomized test: SLUICE_SEED if set (to replay a failure
// the test printed), otherwise a fresh random one per process.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <random>

namespace sluice::harness {

inline uint64_t test_seed() {
  static const uint64_t seed = []() -> uint64_t {
    if (const char* s = std::getenv("SLUICE_SEED")) return std::strtoull(s, nullptr, 10);
    return std::random_device{}();
  }();
  return seed;
}

}  // namespace sluice::harness
