// Buffers the data-plane tests send: numbered record frames and the end of
// a partition. Shared by data_plane_test.cc and data_plane_tls_test.cc,
// which are linked into one binary.
#pragma once

#include <string>

#include "engine/common/time.h"
#include "engine/runtime/frames.h"

namespace sluice::runtime::test_buffers {

/// A buffer of `n` record frames with payloads "<tag>:<i>" for i from `first`.
inline Buffer records(const std::string& tag, int first, int n) {
  Buffer b;
  for (int i = first; i < first + n; ++i) {
    size_t at = frames::begin_record(b.data, EventTime(i));
    b.data += tag + ":" + std::to_string(i);
    frames::end_record(b.data, at);
  }
  return b;
}

/// The end of data followed by the end of the partition.
inline Buffer end_of_partition() {
  Buffer b;
  frames::append_end_of_data(b.data);
  frames::append_end_of_partition(b.data);
  return b;
}

}  // namespace sluice::runtime::test_buffers
