// InfluxDB line protocol, the text the sink writes:
//
//   measurement[,tag_key=tag_value...] field_key=field_value[,...] timestamp\n
//
// Escaping, as InfluxDB 1.x and 2.x parse it (checked against a real
// influxd 1.6 by tests/influxdb): measurement names escape ',' and ' ';
// tag keys, tag values and field keys escape ',', '=' and ' '; string
// field values are double-quoted with '"' and '\' escaped. A backslash is
// otherwise literal and cannot itself be escaped, so a name or tag value
// that ends in a backslash cannot be written (the parser would read the
// separator after it as escaped); neither can a line break in one. Such
// values are refused with a reason (the record goes to the dead-letter
// output), never written mangled. Pure functions; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "connectors/influxdb/config.h"

namespace sluice::influxdb {

/// InfluxDB's documented limit on a string field value.
constexpr size_t kMaxStringFieldBytes = 64 * 1024;
/// Timestamps InfluxDB stores, in nanoseconds: strictly between these
/// (influxd answers "time outside range" for the bounds themselves).
constexpr int64_t kMinTimeNs = std::numeric_limits<int64_t>::min() + 2;
constexpr int64_t kMaxTimeNs = std::numeric_limits<int64_t>::max() - 1;

/// The parts of a line that hold names or tag values.
enum class Element { kMeasurement, kTagKey, kTagValue, kFieldKey };

/// Why `s` cannot be written as `e`: empty, a line break, a trailing
/// backslash, invalid UTF-8, or (for keys) the reserved name "time".
/// Empty when it can.
std::string name_problem(std::string_view s, Element e);
/// Appends `s` escaped for `e` (check name_problem first).
void append_escaped(std::string& out, std::string_view s, Element e);

/// Why `s` cannot be a string field value (invalid UTF-8, longer than
/// kMaxStringFieldBytes); empty when it can. Line breaks are fine.
std::string string_value_problem(std::string_view s);
/// Appends `"s"` with '"' and '\' escaped.
void append_string_value(std::string& out, std::string_view s);

/// 42 -> "42i" (InfluxDB integers are signed 64-bit).
void append_integer(std::string& out, int64_t v);
/// The shortest text that reads back as `v` ("0.1", "1e+100", "1"); `v`
/// must be finite (InfluxDB stores no NaN or infinity).
void append_float(std::string& out, double v);
void append_bool(std::string& out, bool v);
/// Decimal digits, for tag values and timestamps.
void append_decimal(std::string& out, int64_t v);

/// `value` in units of `p` as nanoseconds, false if InfluxDB cannot store
/// it (outside kMinTimeNs..kMaxTimeNs, or overflowing on the way).
bool timestamp_in_range(int64_t value, Precision p);
/// An event time (epoch ms) in units of `p` (seconds round down).
int64_t from_millis(int64_t ms, Precision p, bool* overflow);

// --- the server's answers (not line protocol, but its other half) -------

/// The error message of an InfluxDB answer: the "error" (1.x) or
/// "message" (2.x) member of its JSON body, else the body itself, cut to
/// 2000 bytes.
std::string server_message(std::string_view body);
/// The first statement error of a 1.x /query answer
/// ({"results":[{"statement_id":0,"error":"..."}]}); empty if none.
std::string statement_error(std::string_view body);
/// `name` as an InfluxQL double-quoted identifier.
std::string influxql_identifier(std::string_view name);
/// Does a 1.x "partial write: ... dropped=N" message say that all
/// `points` of the request were dropped?
bool all_points_dropped(std::string_view message, uint64_t points);

}  // namespace sluice::influxdb
