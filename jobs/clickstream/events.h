// The records of the clickstream example: input click events and output
// counts. Shared by the job, the generator and the tests.
#pragma once

#include <cstdint>
#include <string>

#include "engine/common/serde.h"
#include "engine/common/text.h"

namespace sluice::jobs {

/// {"user_id":"u1","page_url":"/p/1","event_type":"click","ts":1700000000123}
/// The strings are Text: the file source hands the job views into the
/// bytes it read (no copy per event); a copy of the event owns its strings.
struct ClickEvent {
  Text user_id;
  Text page_url;
  Text event_type;
  int64_t ts = 0;  // event time, epoch milliseconds
  SLUICE_FIELDS(user_id, page_url, event_type, ts)
  bool operator==(const ClickEvent&) const = default;
};

/// {"window_start":..., "window_end":..., "page_url":"...", "count":N}
struct PageCount {
  int64_t window_start = 0;
  int64_t window_end = 0;
  std::string page_url;
  int64_t count = 0;
  SLUICE_FIELDS(window_start, window_end, page_url, count)
  bool operator==(const PageCount&) const = default;
};

}  // namespace sluice::jobs
