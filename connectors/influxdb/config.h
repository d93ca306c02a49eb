// The InfluxDB sink's URI and its parsed form (README.md lists every
// parameter).
//
//   influxdb://[USER@]HOST:PORT/DB?measurement=M&tags=a,b&fields=x,y&time=field&precision=ms   (1.x /write)
//   influxdb://HOST:PORT?org=O&bucket=B&measurement=M&...                                     (2.x /api/v2/write)
//
// Secrets are never in the URI: the 1.x password comes from password_file=
// or the environment variable password_env= (default INFLUX_PASSWORD), the
// 2.x token from token_file= or token_env= (default INFLUX_TOKEN), read
// when the sink opens on the machine that runs it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/status.h"
#include "engine/common/time.h"

namespace sluice::influxdb {

enum class ApiVersion { kV1, kV2 };

/// Unit of the timestamps written (and of the `time` field's values).
enum class Precision { kNanoseconds, kMicroseconds, kMilliseconds, kSeconds };
/// "ns", "us", "ms", "s": the API's `precision` parameter.
std::string_view precision_name(Precision p);
/// Nanoseconds per unit of `p`.
int64_t nanos_per_unit(Precision p);

/// A parsed sink URI. Value type; defaults as written.
struct InfluxSinkConfig {
  /// The URI as messages show it: everything but secrets (which the URI
  /// never holds: they are refused).
  std::string uri;
  ApiVersion api = ApiVersion::kV1;
  bool tls = false;              // tls=true: https
  std::string ca_file;           // https: CA bundle (default: the system's)
  std::string host;
  int port = 8086;
  std::string database;          // 1.x: the path
  std::string retention_policy;  // 1.x: rp= (default: the database's default)
  std::string org, bucket;       // 2.x
  std::string user;              // 1.x basic auth: USER@ (empty: no auth)
  std::string password_file;
  std::string password_env = "INFLUX_PASSWORD";
  std::string token_file;
  std::string token_env = "INFLUX_TOKEN";

  std::string measurement;
  std::vector<std::string> tags;    // record fields that become tags
  std::vector<std::string> fields;  // empty: every field that is not a tag or the time
  std::string time_field;           // empty: the record's event timestamp (ms)
  Precision precision = Precision::kMilliseconds;
  bool create_database = false;     // 1.x: CREATE DATABASE at open (needs admin rights with auth)

  /// Points and (uncompressed) bytes per write request.
  int64_t batch_points = 5000;
  int64_t batch_bytes = 1 << 20;
  /// Without checkpointing: a batch older than this is written even if not full.
  Duration flush_interval = std::chrono::seconds(1);
  bool gzip = true;
  /// One request, connect included.
  Duration request_timeout = std::chrono::seconds(10);
  /// How long failing writes are retried before the task fails (it then
  /// restarts from its checkpoint, which still holds them).
  Duration retry_timeout = std::chrono::seconds(60);
  /// Bytes of committed points not yet written at which the sink stops
  /// taking input (backpressure) until the server catches up.
  int64_t max_pending_bytes = 64 << 20;

  /// http(s)://host:port
  std::string base_url() const;
  /// The write endpoint with its query string (db/rp or org/bucket, precision).
  std::string write_url() const;
  /// "database sluice" / "bucket clicks (org acme)", for messages.
  std::string target() const;
};

Result<InfluxSinkConfig> parse_sink_uri(const std::string& uri);

}  // namespace sluice::influxdb
