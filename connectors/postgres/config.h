// The Postgres sink's URI and its parsed form.
//
//   postgres://USER@HOST:PORT/DB?table=NAME&mode=append|upsert&key=c1,c2&delete_when=FIELD&create_table=true
//
// Every part before '?' is optional: what is left out comes from libpq's
// environment (PGUSER, PGHOST, PGPORT, PGDATABASE, ...). The password is
// never in the URI: PGPASSWORD, PGPASSFILE (~/.pgpass) or password_file=.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "connectors/postgres/connection.h"
#include "engine/common/status.h"
#include "engine/common/time.h"

namespace sluice::postgres {

enum class WriteMode { kAppend, kUpsert };

/// A parsed sink URI. Defaults as written.
struct PostgresSinkConfig {
  std::string uri;            // as given; holds no password (refused)
  ConnectParams connect;      // host, port, user, dbname, sslmode, ...
  std::string password_file;  // read at open; empty: libpq's own sources
  std::string schema;         // table=schema.name; empty: the search_path
  std::string table;
  WriteMode mode = WriteMode::kAppend;
  std::vector<std::string> key;  // upsert: the conflict columns
  /// upsert: a bool field of the record; rows where it is true delete the
  /// row of their key instead of upserting it (it is not a column). Empty: none.
  std::string delete_when;
  bool create_table = false;
  /// Names this sink in the progress table; empty: "<job name>/<operator uid>".
  std::string sink_id;
  std::string progress_table = "sluice_sink_progress";
  /// Without checkpointing: rows per commit (at-least-once).
  int64_t batch_rows = 10000;
  /// How long an unreachable/restarting server is retried before the task
  /// fails (it then restarts from its checkpoint; nothing is lost).
  Duration retry_timeout = std::chrono::seconds(60);
  /// Rows held while the server is down (uncommitted batches and rows
  /// since the last barrier) before the sink suspends its input.
  int64_t max_pending_rows = 1'000'000;
};

Result<PostgresSinkConfig> parse_sink_uri(const std::string& uri);

/// `"schema"."table"` or `"table"`.
std::string qualified(const std::string& schema, const std::string& name);

}  // namespace sluice::postgres
