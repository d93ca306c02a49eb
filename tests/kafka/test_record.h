// The record type of the Kafka tests and their job library.
#pragma once

#include <cstdint>
#include <string>

#include "engine/common/serde.h"

namespace sluice::kafka::testing {

/// {"id":1,"body":"x"}
struct TestRecord {
  int64_t id = 0;
  std::string body;
  SLUICE_FIELDS(id, body)
  bool operator==(const TestRecord&) const = default;
};

}  // namespace sluice::kafka::testing
