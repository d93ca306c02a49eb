// A thin RAII wrapper over one libpq connection, with errors as Status:
// retriable failures (the server is unreachable, restarting, or dropped
// the connection; serialization failures, deadlocks, lock timeouts) are
// StatusCode::kUnavailable, everything else keeps its meaning (bad SQL or
// schema: kInvalidArgument / kFailedPrecondition; data: kInvalidArgument).
// Messages name host/port/database/user at most, never the password or a
// connection string.
#pragma once

#include <libpq-fe.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/status.h"

namespace sluice::postgres {

/// libpq connection keywords (host, port, user, dbname, password, ...).
/// Keywords left out fall back to libpq's environment variables (PGHOST,
/// PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGPASSFILE, PGSSLMODE, ...).
using ConnectParams = std::map<std::string, std::string>;

/// "user@host:port/db" for messages (never a password).
std::string describe_target(const ConnectParams& p);

/// `"name"` with embedded quotes doubled.
std::string quote_ident(std::string_view name);
/// `'text'` with embedded quotes doubled (standard_conforming_strings on).
std::string quote_literal(std::string_view text);

/// Is this SQLSTATE (or a broken connection) worth retrying?
bool is_retriable_sqlstate(std::string_view sqlstate);

/// The rows of a query, as text (NULL reads as nullopt).
struct QueryResult {
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;
};

/// One connection. Not thread-safe; owned by one writer (task thread) or a
/// test. Non-copyable.
class PgConnection {
 public:
  static Result<std::unique_ptr<PgConnection>> connect(const ConnectParams& params);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  /// Runs one or more statements without parameters.
  Status exec(const std::string& sql);
  /// Runs one statement with text parameters, returning its rows.
  Result<QueryResult> query(const std::string& sql, const std::vector<std::string>& params = {});
  /// COPY ... FROM STDIN with `data` (COPY text format, complete lines).
  Status copy_in(const std::string& copy_sql, std::string_view data);
  /// Closes the socket at once (an open transaction is rolled back by the
  /// server, as when the process dies).
  void abandon();
  bool ok() const;
  const std::string& target() const { return target_; }

 private:
  PgConnection(PGconn* c, std::string target) : conn_(c), target_(std::move(target)) {}
  Status result_error(PGresult* r, const std::string& what);
  Status connection_error(const std::string& what);
  PGconn* conn_;
  std::string target_;
};

}  // namespace sluice::postgres
