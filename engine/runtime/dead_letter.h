// DeadLetter: a record Sluice could not process, kept with why and where
// from. Bad records are never dropped silently and never crash a task:
// they become dead letters and go to the job's dead-letter output.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <algorithm>
#include <string>
#include <string_view>

#include "engine/common/json.h"
#include "engine/common/serde.h"

namespace sluice {

/// Records larger than this (bytes) are dead letters at the sources that
/// read them (file lines, Kafka messages) unless the source is told
/// otherwise (`max-record-bytes`): a bound on what one record can make a
/// task allocate. 4 MiB.
inline constexpr size_t kDefaultMaxRecordBytes = size_t{4} << 20;

struct DeadLetter {
  std::string reason;         // what was wrong, for a human
  std::string origin;         // where it came from: file path, Kafka topic, operator
  int32_t partition = -1;     // Kafka partition (-1 if none)
  int64_t offset = -1;        // Kafka offset or byte offset in a file (-1 if none)
  int64_t line = -1;          // 1-based line number in a file (-1 if none)
  std::string payload;        // the record: its bytes if UTF-8, else base64 (see payload_encoding)
  std::string payload_encoding = "utf8";  // "utf8" or "base64"; set_payload() chooses
  std::string job;            // filled in by the runtime
  std::string operator_name;  // filled in by the runtime
  int64_t time_ms = 0;        // wall clock when it was rejected
  int64_t payload_bytes = -1;  // size of the whole record when payload keeps only its start (-1: all of it)
  SLUICE_FIELDS(reason, origin, partition, offset, line, payload, job, operator_name, time_ms, payload_encoding,
                payload_bytes)

  /// Keeps at most `max` bytes of `raw` (payload_bytes says how many there
  /// were when cut); bytes that are not UTF-8 are kept base64-encoded, so
  /// that a dead-letter file or topic is always valid JSON.
  void set_payload(std::string_view raw, size_t max = std::string::npos) {
    std::string_view kept = raw.substr(0, std::min(max, raw.size()));
    if (kept.size() < raw.size()) payload_bytes = static_cast<int64_t>(raw.size());
    if (is_valid_utf8(kept)) {
      payload.assign(kept);
      payload_encoding = "utf8";
    } else {
      payload = base64_encode(kept);
      payload_encoding = "base64";
    }
  }
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
