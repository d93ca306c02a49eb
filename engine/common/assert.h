// SLUICE_ASSERT guards invariants: a broken one is a bug in Sluice, so it
// logs where and why and aborts (in release builds too). Never use it for
// bad input or failures of other systems: those return Status.
#pragma once

namespace sluice::detail {
[[noreturn]] void assert_failed(const char* expr, const char* file, int line, const char* msg);
}

#define SLUICE_ASSERT(cond, msg)                                             \
  do {                                                                       \
    if (!(cond)) [[unlikely]]                                                \
      ::sluice::detail::assert_failed(#cond, __FILE__, __LINE__, (msg));     \
  } while (0)
