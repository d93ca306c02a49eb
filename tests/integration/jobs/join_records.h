// Records of it_join_job and of the tests that check it (join_test.cc).
#pragma once

#include <cstdint>

#include "engine/common/serde.h"

namespace sluice::it_jobs {

/// One record of either input: {"key":K,"id":N,"ts":T}.
struct JoinEvent {
  int64_t key = 0;
  int64_t id = 0;
  int64_t ts = 0;
  SLUICE_FIELDS(key, id, ts)
};

/// One result: the left and right ids (right -1: a left outer row without
/// a partner).
struct JoinRow {
  int64_t key = 0;
  int64_t left = 0;
  int64_t right = 0;
  SLUICE_FIELDS(key, left, right)
};

}  // namespace sluice::it_jobs
