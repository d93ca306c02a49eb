// Stable hashing: the same bytes hash the same on every process and
// platform, because key groups (routing and state placement) depend on it.
#pragma once

#include <cstdint>
#include <string_view>

namespace sluice {

/// MurmurHash3, x86 32-bit variant.
uint32_t murmur3_32(std::string_view data, uint32_t seed = 0);

}  // namespace sluice
