// Which field of a record becomes a tag, a field or the timestamp of its
// point: decided once, when the job is built, from the sink URI and the
// record type's SLUICE_FIELDS (influxdb_sink.h describes T's fields with
// FieldInfo; make_layout checks them against the configuration).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "connectors/influxdb/config.h"
#include "engine/common/status.h"

namespace sluice::influxdb {

/// What a record field can be, from its C++ type (std::optional<X> as X).
struct FieldInfo {
  std::string name;
  std::string type;       // for messages
  bool can_tag = false;   // text, numbers, bool
  bool can_field = false;  // the same
  bool can_time = false;  // integers
};

enum class Role : uint8_t { kSkip, kTag, kField, kTime };

/// The mapping for one record type and URI. Immutable once made; shared
/// by every writer of the sink.
struct PointLayout {
  /// Per record field (declaration order): its role.
  std::vector<Role> roles;
  /// Per record field: for a tag its position among the tags (sorted by
  /// key, as InfluxDB prefers them), else -1.
  std::vector<int> tag_slot;
  /// Per record field: the escaped text before its value: ",key=" for a
  /// tag, "key=" for a field.
  std::vector<std::string> prefix;
  /// Per tag slot: the record field it comes from.
  std::vector<int> tag_field;
  std::string measurement;  // escaped
  bool has_time_field = false;
  Precision precision = Precision::kMilliseconds;
};

/// Checks the URI's measurement, tags, fields and time against the
/// record's fields; the error names what to change and lists the fields.
Result<PointLayout> make_layout(const InfluxSinkConfig& config, const std::vector<FieldInfo>& fields);

}  // namespace sluice::influxdb
