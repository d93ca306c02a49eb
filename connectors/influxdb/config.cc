#include "connectors/influxdb/config.h"

#include <cctype>
#include <charconv>
#include <functional>
#include <map>

#include "engine/common/uri.h"

namespace sluice::influxdb {

std::string_view precision_name(Precision p) {
  switch (p) {
    case Precision::kNanoseconds: return "ns";
    case Precision::kMicroseconds: return "us";
    case Precision::kMilliseconds: return "ms";
    case Precision::kSeconds: return "s";
  }
  return "ms";
}

int64_t nanos_per_unit(Precision p) {
  switch (p) {
    case Precision::kNanoseconds: return 1;
    case Precision::kMicroseconds: return 1'000;
    case Precision::kMilliseconds: return 1'000'000;
    case Precision::kSeconds: return 1'000'000'000;
  }
  return 1'000'000;
}

std::string InfluxSinkConfig::base_url() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;  // IPv6 literal
  return std::string(tls ? "https://" : "http://") + h + ":" + std::to_string(port);
}

std::string InfluxSinkConfig::write_url() const {
  std::string url = base_url();
  if (api == ApiVersion::kV1) {
    url += "/write?db=" + percent_encode(database);
    if (!retention_policy.empty()) url += "&rp=" + percent_encode(retention_policy);
  } else {
    url += "/api/v2/write?org=" + percent_encode(org) + "&bucket=" + percent_encode(bucket);
  }
  return url + "&precision=" + std::string(precision_name(precision));
}

std::string InfluxSinkConfig::target() const {
  if (api == ApiVersion::kV2) return "bucket " + bucket + " (org " + org + ")";
  return "database " + database + (retention_policy.empty() ? "" : " (retention policy " + retention_policy + ")");
}

namespace {

constexpr std::string_view kUsage =
    "use influxdb://[USER@]HOST:PORT/DB?measurement=NAME[&tags=a,b&fields=x,y&time=FIELD&precision=ms] "
    "(InfluxDB 1.x) or influxdb://HOST:PORT?org=ORG&bucket=BUCKET&measurement=NAME[&...] (2.x)";

Status bad(const std::string& uri, const std::string& what) {
  return Status::invalid_argument("influxdb sink '" + uri + "': " + what);
}

Result<int64_t> positive_int(const std::string& uri, const std::string& name, const std::string& value) {
  int64_t n = 0;
  auto r = std::from_chars(value.data(), value.data() + value.size(), n);
  if (value.empty() || r.ec != std::errc() || r.ptr != value.data() + value.size() || n < 1) {
    return bad(uri, name + " must be a positive integer, not '" + value + "'");
  }
  return n;
}

Result<Duration> duration(const std::string& uri, const std::string& name, const std::string& value, bool zero_ok) {
  auto d = parse_duration(value);
  if (!d.is_ok() || d->count() < 0 || (!zero_ok && d->count() == 0)) {
    return bad(uri, name + " must be a " + (zero_ok ? "" : "positive ") + "duration such as 10s or 500ms, not '" +
                        value + "'");
  }
  return *d;
}

Result<bool> boolean(const std::string& uri, const std::string& name, const std::string& value) {
  if (value == "true") return true;
  if (value == "false") return false;
  return bad(uri, name + " must be true or false, not '" + value + "'");
}

/// Splits "host:port", "[v6]:port", "host"; the port defaults to 8086.
Status parse_authority(const std::string& uri, std::string authority, InfluxSinkConfig& c) {
  std::string port;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos) return bad(uri, "unclosed '[' in the host");
    c.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return bad(uri, "expected ':PORT' after the IPv6 address");
      port = authority.substr(close + 2);
    }
  } else if (auto colon = authority.rfind(':'); colon != std::string::npos) {
    c.host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  } else {
    c.host = authority;
  }
  if (c.host.empty()) return bad(uri, "no host; " + std::string(kUsage));
  if (!port.empty()) {
    int p = 0;
    auto r = std::from_chars(port.data(), port.data() + port.size(), p);
    if (r.ec != std::errc() || r.ptr != port.data() + port.size() || p < 1 || p > 65535) {
      return bad(uri, "port '" + port + "' is not a number from 1 to 65535");
    }
    c.port = p;
  }
  return Status::ok();
}

}  // namespace

Result<InfluxSinkConfig> parse_sink_uri(const std::string& uri) {
  InfluxSinkConfig c;
  if (uri.rfind("influxdb://", 0) != 0) {
    return Status::invalid_argument("not an influxdb:// URI; " + std::string(kUsage));
  }
  std::string rest = uri.substr(11), query;
  if (auto q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  std::string authority = rest, path;
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    authority = rest.substr(0, slash);
    path = rest.substr(slash + 1);
  }
  // Messages quote `safe`, built without anything that could be a secret:
  // a password typed into the URI by mistake is refused, never echoed.
  std::string safe = "influxdb://";
  if (auto at = authority.rfind('@'); at != std::string::npos) {
    std::string userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    if (userinfo.find(':') != std::string::npos) {
      return Status::invalid_argument(
          "influxdb sink: the URI must not contain a password (user:password@); use password_file=PATH or the "
          "environment variable INFLUX_PASSWORD (or the one password_env= names)");
    }
    SLUICE_ASSIGN_OR_RETURN(c.user, percent_decode(userinfo, "influxdb sink user"));
    if (c.user.empty()) return Status::invalid_argument("influxdb sink: empty user before '@'");
    safe += userinfo + "@";
  }
  safe += authority + (path.empty() ? "" : "/" + path);
  SLUICE_RETURN_IF_ERROR(parse_authority(safe, authority, c));
  if (path.find('/') != std::string::npos) return bad(safe, "the path is one database name, not '" + path + "'");
  SLUICE_ASSIGN_OR_RETURN(c.database, percent_decode(path, "influxdb sink database"));

  SLUICE_ASSIGN_OR_RETURN(auto params, parse_query(query, "influxdb sink '" + safe + "'"));
  std::string shown;
  for (const auto& [name, value] : params) {
    if (name == "password" || name == "token" || name == "p" || name == "u") {
      return Status::invalid_argument("influxdb sink '" + safe + "': " + name +
                                      "= is not accepted in the URI; put the secret in a file (password_file=, "
                                      "token_file=) or an environment variable (password_env=, token_env=)");
    }
    shown += (shown.empty() ? "?" : "&") + name + "=" + value;
  }
  c.uri = safe + shown;
  const std::string& u = c.uri;

  bool fields_given = false;
  using Setter = std::function<Status(const std::string&)>;
  auto str = [&](std::string& dst) -> Setter {
    return [&dst](const std::string& v) {
      dst = v;
      return Status::ok();
    };
  };
  auto num = [&](int64_t& dst, const char* name) -> Setter {
    return [&dst, &u, name](const std::string& v) {
      SLUICE_ASSIGN_OR_RETURN(dst, positive_int(u, name, v));
      return Status::ok();
    };
  };
  auto dur = [&](Duration& dst, const char* name, bool zero_ok) -> Setter {
    return [&dst, &u, name, zero_ok](const std::string& v) {
      SLUICE_ASSIGN_OR_RETURN(dst, duration(u, name, v, zero_ok));
      return Status::ok();
    };
  };
  auto flag = [&](bool& dst, const char* name) -> Setter {
    return [&dst, &u, name](const std::string& v) {
      SLUICE_ASSIGN_OR_RETURN(dst, boolean(u, name, v));
      return Status::ok();
    };
  };
  const std::map<std::string, Setter> setters = {
      {"measurement", str(c.measurement)},
      {"tags", [&](const std::string& v) { c.tags = split_list(v); return Status::ok(); }},
      {"fields", [&](const std::string& v) { c.fields = split_list(v); fields_given = true; return Status::ok(); }},
      {"time", str(c.time_field)},
      {"precision",
       [&](const std::string& v) {
         for (Precision p : {Precision::kNanoseconds, Precision::kMicroseconds, Precision::kMilliseconds,
                             Precision::kSeconds}) {
           if (v == precision_name(p)) {
             c.precision = p;
             return Status::ok();
           }
         }
         return bad(u, "precision must be ns, us, ms or s, not '" + v + "'");
       }},
      {"rp", str(c.retention_policy)},
      {"org", str(c.org)},
      {"bucket", str(c.bucket)},
      {"password_file", str(c.password_file)},
      {"password_env", str(c.password_env)},
      {"token_file", str(c.token_file)},
      {"token_env", str(c.token_env)},
      {"create_database", flag(c.create_database, "create_database")},
      {"batch_points", num(c.batch_points, "batch_points")},
      {"batch_bytes",
       [&](const std::string& v) {
         auto b = parse_bytes(v);
         if (!b.is_ok() || *b < 1) return bad(u, "batch_bytes must be a size such as 1mb or 262144, not '" + v + "'");
         c.batch_bytes = *b;
         return Status::ok();
       }},
      {"max_pending_bytes",
       [&](const std::string& v) {
         auto b = parse_bytes(v);
         if (!b.is_ok() || *b < 1) return bad(u, "max_pending_bytes must be a size such as 64mb, not '" + v + "'");
         c.max_pending_bytes = *b;
         return Status::ok();
       }},
      {"flush_interval", dur(c.flush_interval, "flush_interval", false)},
      {"gzip", flag(c.gzip, "gzip")},
      {"timeout", dur(c.request_timeout, "timeout", false)},
      {"retry_timeout", dur(c.retry_timeout, "retry_timeout", true)},
      {"tls", flag(c.tls, "tls")},
      {"ca_file", str(c.ca_file)},
  };
  for (const auto& [name, value] : params) {
    auto it = setters.find(name);
    if (it == setters.end()) {
      std::string known;
      for (const auto& [k, _] : setters) known += (known.empty() ? "" : ", ") + k;
      return bad(u, "unknown parameter '" + name + "' (known: " + known + ")");
    }
    SLUICE_RETURN_IF_ERROR(it->second(value));
  }

  if (c.measurement.empty()) return bad(u, "measurement= is required; " + std::string(kUsage));
  if (c.measurement.front() == '#') {
    return bad(u, "a measurement name must not start with '#' (line protocol reads such a line as a comment)");
  }
  if (fields_given && c.fields.empty()) return bad(u, "fields= names no field");
  if (!c.bucket.empty() || !c.org.empty()) {
    c.api = ApiVersion::kV2;
    if (c.bucket.empty() || c.org.empty()) return bad(u, "the 2.x API needs both org= and bucket=");
    if (!c.database.empty()) {
      return bad(u, "give either a database in the path (InfluxDB 1.x) or org= and bucket= (2.x), not both");
    }
    if (!c.user.empty() || !c.password_file.empty() || !c.retention_policy.empty() || c.create_database) {
      return bad(u, "USER@, password_file=, rp= and create_database= belong to the 1.x API; the 2.x API "
                    "authenticates with a token (token_file= or the environment variable INFLUX_TOKEN)");
    }
  } else {
    if (c.database.empty()) return bad(u, "no database: put it in the path, " + std::string(kUsage));
    if (!c.token_file.empty()) return bad(u, "token_file= belongs to the 2.x API (org=, bucket=)");
    if (!c.password_file.empty() && c.user.empty()) {
      return bad(u, "password_file= needs a user: influxdb://USER@HOST:PORT/DB?...");
    }
  }
  if (!c.ca_file.empty() && !c.tls) return bad(u, "ca_file= needs tls=true");
  return c;
}

}  // namespace sluice::influxdb
