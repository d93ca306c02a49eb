// DeadLetter: a record Sluice could not process, kept with why and where
// from. Bad records are never dropped silently and never crash a task:
// they become dead letters and go to the job's dead-letter output.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "engine/common/serde.h"

namespace sluice {

struct DeadLetter {
  std::string reason;         // what was wrong, for a human
  std::string origin;         // where it came from: file path, Kafka topic, operator
  int32_t partition = -1;     // Kafka partition (-1 if none)
  int64_t offset = -1;        // Kafka offset or byte offset in a file (-1 if none)
  int64_t line = -1;          // 1-based line number in a file (-1 if none)
  std::string payload;        // the raw record (or its JSON rendering)
  std::string job;            // filled in by the runtime
  std::string operator_name;  // filled in by the runtime
  int64_t time_ms = 0;        // wall clock when it was rejected
  SLUICE_FIELDS(reason, origin, partition, offset, line, payload, job, operator_name, time_ms)
};

/// Thrown by user functions to reject the current record as invalid: the
/// runtime turns it into a dead letter (with this message as the reason)
/// and carries on. Any other exception fails the task, which then restarts
/// from its last checkpoint.
class InvalidRecord : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace sluice
