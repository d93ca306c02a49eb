#include "connectors/postgres/config.h"

#include <cctype>

namespace sluice::postgres {

namespace {

Result<std::string> percent_decode(std::string_view s, const std::string& what) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
        return Status::invalid_argument(what + ": bad percent-encoding");
      }
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) break;
    start = p + 1;
  }
  return out;
}

bool valid_identifier(const std::string& s) { return !s.empty() && s.find('\0') == std::string::npos; }

}  // namespace

std::string qualified(const std::string& schema, const std::string& name) {
  return schema.empty() ? quote_ident(name) : quote_ident(schema) + "." + quote_ident(name);
}

Result<PostgresSinkConfig> parse_sink_uri(const std::string& uri) {
  static constexpr std::string_view kUsage =
      "use postgres://USER@HOST:PORT/DB?table=NAME[&mode=append|upsert&key=col1,col2&create_table=true]";
  PostgresSinkConfig c;
  std::string rest;
  if (uri.rfind("postgres://", 0) == 0) {
    rest = uri.substr(11);
  } else if (uri.rfind("postgresql://", 0) == 0) {
    rest = uri.substr(13);
  } else {
    return Status::invalid_argument("not a postgres:// URI; " + std::string(kUsage));
  }
  std::string query;
  if (auto q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  std::string authority = rest, db;
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    authority = rest.substr(0, slash);
    db = rest.substr(slash + 1);
  }
  // Only the sink's own description is quoted in messages below, and it
  // is built without the user-info part, so a password typed into the URI
  // by mistake is never echoed.
  std::string safe_uri = "postgres://";
  if (auto at = authority.rfind('@'); at != std::string::npos) {
    std::string userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    if (userinfo.find(':') != std::string::npos) {
      return Status::invalid_argument(
          "postgres sink: the URI must not contain a password (user:password@); set PGPASSWORD, "
          "use ~/.pgpass (PGPASSFILE) or password_file=PATH");
    }
    SLUICE_ASSIGN_OR_RETURN(c.connect["user"], percent_decode(userinfo, "postgres sink user"));
    safe_uri += userinfo + "@";
  }
  safe_uri += authority + "/" + db;
  if (!authority.empty()) {
    std::string host = authority, port;
    if (authority.front() == '[') {  // [ipv6]:port
      auto close = authority.find(']');
      if (close == std::string::npos) return Status::invalid_argument("postgres sink: bad host '" + authority + "'");
      host = authority.substr(1, close - 1);
      if (close + 1 < authority.size() && authority[close + 1] == ':') port = authority.substr(close + 2);
    } else if (auto colon = authority.rfind(':'); colon != std::string::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
    }
    if (!port.empty()) {
      for (char ch : port)
        if (!std::isdigit(static_cast<unsigned char>(ch))) {
          return Status::invalid_argument("postgres sink: port '" + port + "' is not a number");
        }
      c.connect["port"] = port;
    }
    c.connect["host"] = host;
  }
  if (!db.empty()) {
    SLUICE_ASSIGN_OR_RETURN(c.connect["dbname"], percent_decode(db, "postgres sink database"));
  }
  c.connect["application_name"] = "sluice";
  c.connect["connect_timeout"] = "10";

  std::string params_text;
  for (const auto& kv : query.empty() ? std::vector<std::string>{} : split(query, '&')) {
    if (kv.empty()) continue;
    auto eq = kv.find('=');
    std::string name = kv.substr(0, eq);
    std::string raw = eq == std::string::npos ? "" : kv.substr(eq + 1);
    SLUICE_ASSIGN_OR_RETURN(std::string value, percent_decode(raw, "postgres sink parameter " + name));
    if (name == "table") {
      if (auto dot = value.find('.'); dot != std::string::npos) {
        c.schema = value.substr(0, dot);
        c.table = value.substr(dot + 1);
      } else {
        c.table = value;
      }
    } else if (name == "mode") {
      if (value == "append") {
        c.mode = WriteMode::kAppend;
      } else if (value == "upsert") {
        c.mode = WriteMode::kUpsert;
      } else {
        return Status::invalid_argument("postgres sink: mode must be append or upsert, not '" + value + "'");
      }
    } else if (name == "key") {
      c.key = split(value, ',');
      for (const auto& k : c.key)
        if (!valid_identifier(k)) return Status::invalid_argument("postgres sink: key has an empty column name");
    } else if (name == "delete_when") {
      if (!valid_identifier(value)) return Status::invalid_argument("postgres sink: delete_when names a bool field");
      c.delete_when = value;
    } else if (name == "create_table") {
      if (value != "true" && value != "false") {
        return Status::invalid_argument("postgres sink: create_table must be true or false");
      }
      c.create_table = value == "true";
    } else if (name == "password_file") {
      c.password_file = value;
    } else if (name == "password") {
      return Status::invalid_argument(
          "postgres sink: password= is not accepted in the URI; set PGPASSWORD, use ~/.pgpass or "
          "password_file=PATH");
    } else if (name == "sink_id") {
      if (value.empty()) return Status::invalid_argument("postgres sink: sink_id must not be empty");
      c.sink_id = value;
    } else if (name == "progress_table") {
      if (!valid_identifier(value)) return Status::invalid_argument("postgres sink: bad progress_table");
      c.progress_table = value;
    } else if (name == "batch_rows" || name == "max_pending_rows") {
      char* end = nullptr;
      long long n = std::strtoll(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || n < 1) {
        return Status::invalid_argument("postgres sink: " + name + " must be a positive integer");
      }
      (name == "batch_rows" ? c.batch_rows : c.max_pending_rows) = n;
    } else if (name == "retry_timeout") {
      auto d = parse_duration(value);
      if (!d.is_ok() || d->count() < 0) {
        return Status::invalid_argument("postgres sink: retry_timeout must be a duration such as 60s");
      }
      c.retry_timeout = *d;
    } else if (name == "sslmode" || name == "connect_timeout" || name == "application_name" ||
               name == "sslrootcert" || name == "options" || name == "target_session_attrs") {
      c.connect[name] = value;
    } else {
      return Status::invalid_argument(
          "postgres sink: unknown parameter '" + name +
          "' (known: table, mode, key, delete_when, create_table, password_file, sink_id, progress_table, batch_rows, "
          "retry_timeout, max_pending_rows, sslmode, connect_timeout, application_name, sslrootcert, options, "
          "target_session_attrs)");
    }
    params_text += (params_text.empty() ? "?" : "&") + name + "=" + raw;
  }
  c.uri = safe_uri + params_text;
  if (!valid_identifier(c.table)) {
    return Status::invalid_argument("postgres sink '" + c.uri + "': table= is required; " + std::string(kUsage));
  }
  if (c.mode == WriteMode::kUpsert && c.key.empty()) {
    return Status::invalid_argument("postgres sink '" + c.uri +
                                    "': mode=upsert needs key=col1,col2 (the conflict columns)");
  }
  if (c.mode == WriteMode::kAppend && !c.key.empty()) {
    return Status::invalid_argument("postgres sink '" + c.uri + "': key= is only used with mode=upsert");
  }
  if (c.mode == WriteMode::kAppend && !c.delete_when.empty()) {
    return Status::invalid_argument("postgres sink '" + c.uri + "': delete_when= is only used with mode=upsert");
  }
  return c;
}

}  // namespace sluice::postgres
