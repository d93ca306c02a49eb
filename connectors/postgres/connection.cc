#include "connectors/postgres/connection.h"

#include <cstring>

namespace sluice::postgres {

namespace {

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string param_or_env(const ConnectParams& p, const char* key, const char* env, const char* fallback) {
  if (auto it = p.find(key); it != p.end() && !it->second.empty()) return it->second;
  if (const char* e = std::getenv(env); e && *e) return e;
  return fallback;
}

}  // namespace

std::string describe_target(const ConnectParams& p) {
  return param_or_env(p, "user", "PGUSER", "(default user)") + "@" +
         param_or_env(p, "host", "PGHOST", "(default host)") + ":" + param_or_env(p, "port", "PGPORT", "5432") +
         "/" + param_or_env(p, "dbname", "PGDATABASE", "(default database)");
}

std::string quote_ident(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string quote_literal(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

bool is_retriable_sqlstate(std::string_view s) {
  if (s.empty()) return true;                // no SQLSTATE: the connection itself failed
  if (s.substr(0, 2) == "08") return true;   // connection exception
  if (s.substr(0, 3) == "57P") return true;  // admin/crash shutdown, cannot connect now
  return s == "40001" || s == "40P01" || s == "55P03" || s == "53300" || s == "53400" ||
         s == "58000" || s == "58030";
}

Result<std::unique_ptr<PgConnection>> PgConnection::connect(const ConnectParams& params) {
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : params) {
    if (v.empty()) continue;
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  std::string target = describe_target(params);
  PGconn* c = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/0);
  if (!c) return Status::unavailable("cannot connect to PostgreSQL " + target + ": out of memory");
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = trim(PQerrorMessage(c));
    PQfinish(c);
    // Authentication and unknown-database errors will not go away by
    // retrying, but a server that is starting says so too ("the database
    // system is starting up"): only those are retried.
    bool permanent = msg.find("password authentication failed") != std::string::npos ||
                     msg.find("no password supplied") != std::string::npos ||
                     (msg.find("database \"") != std::string::npos && msg.find("does not exist") != std::string::npos) ||
                     (msg.find("role \"") != std::string::npos && msg.find("does not exist") != std::string::npos) ||
                     msg.find("no pg_hba.conf entry") != std::string::npos;
    std::string text = "cannot connect to PostgreSQL " + target + ": " + msg;
    return permanent ? Status::permission_denied(text) : Status::unavailable(text);
  }
  return std::unique_ptr<PgConnection>(new PgConnection(c, std::move(target)));
}

PgConnection::~PgConnection() { abandon(); }

void PgConnection::abandon() {
  if (conn_) PQfinish(conn_);
  conn_ = nullptr;
}

bool PgConnection::ok() const { return conn_ && PQstatus(conn_) == CONNECTION_OK; }

Status PgConnection::connection_error(const std::string& what) {
  std::string msg = conn_ ? trim(PQerrorMessage(conn_)) : "connection closed";
  return Status::unavailable(what + " on PostgreSQL " + target_ + ": " + msg);
}

Status PgConnection::result_error(PGresult* r, const std::string& what) {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string sqlstate = state ? state : "";
  std::string msg = r ? trim(PQresultErrorMessage(r)) : "";
  if (msg.empty()) msg = conn_ ? trim(PQerrorMessage(conn_)) : "connection closed";
  std::string text = what + " on PostgreSQL " + target_ + ": " + msg +
                     (sqlstate.empty() ? "" : " (SQLSTATE " + sqlstate + ")");
  if (!ok() || is_retriable_sqlstate(sqlstate)) return Status::unavailable(text);
  if (sqlstate.substr(0, 2) == "42") return Status::failed_precondition(text);  // schema, privileges
  return Status::invalid_argument(text);
}

Status PgConnection::exec(const std::string& sql) {
  if (!conn_) return Status::unavailable("PostgreSQL " + target_ + ": not connected");
  ResultPtr r(PQexec(conn_, sql.c_str()));
  auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return result_error(r.get(), "statement failed");
  return Status::ok();
}

Result<QueryResult> PgConnection::query(const std::string& sql, const std::vector<std::string>& params) {
  if (!conn_) return Status::unavailable("PostgreSQL " + target_ + ": not connected");
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  ResultPtr r(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                           nullptr, nullptr, 0));
  auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return result_error(r.get(), "query failed");
  QueryResult out;
  int nf = PQnfields(r.get()), nt = PQntuples(r.get());
  for (int f = 0; f < nf; ++f) out.columns.emplace_back(PQfname(r.get(), f));
  out.rows.resize(nt);
  for (int t = 0; t < nt; ++t) {
    for (int f = 0; f < nf; ++f) {
      if (PQgetisnull(r.get(), t, f)) {
        out.rows[t].emplace_back(std::nullopt);
      } else {
        out.rows[t].emplace_back(std::string(PQgetvalue(r.get(), t, f), PQgetlength(r.get(), t, f)));
      }
    }
  }
  return out;
}

Status PgConnection::copy_in(const std::string& copy_sql, std::string_view data) {
  if (!conn_) return Status::unavailable("PostgreSQL " + target_ + ": not connected");
  ResultPtr r(PQexec(conn_, copy_sql.c_str()));
  if (!r || PQresultStatus(r.get()) != PGRES_COPY_IN) return result_error(r.get(), "COPY failed");
  r.reset();
  constexpr size_t kChunk = 1 << 20;
  for (size_t off = 0; off < data.size(); off += kChunk) {
    size_t n = std::min(kChunk, data.size() - off);
    if (PQputCopyData(conn_, data.data() + off, static_cast<int>(n)) != 1) {
      return connection_error("COPY failed");
    }
  }
  if (PQputCopyEnd(conn_, nullptr) != 1) return connection_error("COPY failed");
  Status first;
  while (PGresult* res = PQgetResult(conn_)) {
    ResultPtr rr(res);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && first.is_ok()) first = result_error(res, "COPY failed");
  }
  if (first.is_ok() && !ok()) return connection_error("COPY failed");
  return first;
}

}  // namespace sluice::postgres
