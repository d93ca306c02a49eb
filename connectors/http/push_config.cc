#include "connectors/http/push_config.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>

#include "engine/common/uri.h"

namespace sluice::http_sink {

SecretRef SecretRef::parse(const std::string& v) {
  if (v.rfind("env:", 0) == 0) return {Kind::kEnv, v.substr(4)};
  if (v.rfind("file:", 0) == 0) return {Kind::kFile, v.substr(5)};
  return {Kind::kLiteral, v};
}

Result<std::string> SecretRef::resolve(const std::string& what) const {
  switch (kind) {
    case Kind::kLiteral:
      return text;
    case Kind::kEnv: {
      const char* v = std::getenv(text.c_str());
      if (!v) return Status::failed_precondition(what + ": environment variable " + text + " is not set");
      return std::string(v);
    }
    case Kind::kFile: {
      std::ifstream in(text);
      if (!in) return Status::failed_precondition(what + ": cannot read file '" + text + "'");
      std::string line;
      std::getline(in, line);
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      return line;
    }
  }
  return Status::internal("bad secret reference");
}

bool PushSinkConfig::matches(const std::string& uri) {
  return uri.rfind("http://", 0) == 0 || uri.rfind("https://", 0) == 0;
}

namespace {

Result<int64_t> positive(const std::string& what, const std::string& v, int64_t max) {
  char* end = nullptr;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end || n < 1 || n > max) {
    return Status::invalid_argument(what + " must be an integer from 1 to " + std::to_string(max));
  }
  return static_cast<int64_t>(n);
}

Result<Duration> duration(const std::string& what, const std::string& v, bool zero_ok) {
  auto d = parse_duration(v);
  if (!d.is_ok() || d->count() < 0 || (!zero_ok && d->count() == 0)) {
    return Status::invalid_argument(what + " must be a " + (zero_ok ? "" : "positive ") + "duration such as 500ms or 10s");
  }
  return *d;
}

bool token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Options of one format are refused with another; each SIEM format's URL
// must name its endpoint.
template <class Params>
Status check_format_options(const PushSinkConfig& c, const std::string& what, const Params& params) {
  const bool hec = c.format == "splunk-hec", es = c.format == "es-bulk";
  for (const auto& [k, v] : params) {
    const bool hec_only = k == "time_field" || k == "host" || k == "source" || k == "sourcetype";
    const bool es_only = k == "op";
    const bool siem = k == "id_field" || k == "index";
    if ((hec_only && !hec) || (es_only && !es) || (siem && !hec && !es)) {
      return Status::invalid_argument(what + ": " + k + " is an option of format=" +
                                      (hec_only ? "splunk-hec" : es_only ? "es-bulk" : "splunk-hec or es-bulk"));
    }
  }
  auto ends_with = [&](std::string_view s) {
    return c.url_template.size() >= s.size() && c.url_template.compare(c.url_template.size() - s.size(), s.size(), s) == 0;
  };
  if (hec && !ends_with("/services/collector/event") && !ends_with("/services/collector")) {
    return Status::invalid_argument(what + ": format=splunk-hec sends JSON events to .../services/collector/event");
  }
  if (es) {
    if (!ends_with("/_bulk")) return Status::invalid_argument(what + ": format=es-bulk posts to .../_bulk or .../<index>/_bulk");
    if (c.id_field.empty()) {
      return Status::invalid_argument(what + ": format=es-bulk needs id_field= (the field that makes each document's _id, "
                                      "so that a redelivered record overwrites itself)");
    }
    if (c.url_fields.empty() && c.index.empty() && c.url_template.find("://") + 3 < c.url_template.size() &&
        c.url_template.substr(c.url_template.find('/', c.url_template.find("://") + 3)) == "/_bulk") {
      return Status::invalid_argument(what + ": format=es-bulk needs index= or a URL .../<index>/_bulk");
    }
  }
  return Status::ok();
}

}  // namespace

Result<PushSinkConfig> PushSinkConfig::parse(const std::string& uri) {
  PushSinkConfig c;
  c.uri = uri;
  if (!matches(uri)) return Status::invalid_argument("push sink '" + uri + "': the URI must start with http:// or https://");
  const std::string what = "push sink " + uri.substr(0, uri.find('?'));
  std::string base = uri, query;
  if (auto q = uri.find('?'); q != std::string::npos) {
    base = uri.substr(0, q);
    query = uri.substr(q + 1);
  }
  if (base.find('#') != std::string::npos) return Status::invalid_argument(what + ": a fragment (#...) is not sent; leave it out");
  const size_t host = base.find("://") + 3;
  if (host >= base.size() || base[host] == '/') return Status::invalid_argument(what + ": no host");
  if (base.find('@', host) != std::string::npos && base.find('@', host) < base.find('/', host)) {
    return Status::invalid_argument(what + ": credentials in the URL are not accepted; use auth_token=env:NAME or "
                                    "header.Authorization=file:PATH");
  }
  c.url_template = base;
  // {field} placeholders in the path.
  for (size_t i = base.find('{', host); i != std::string::npos; i = base.find('{', i + 1)) {
    size_t close = base.find('}', i);
    if (close == std::string::npos) return Status::invalid_argument(what + ": '{' without '}' in the URL");
    std::string field = base.substr(i + 1, close - i - 1);
    if (field.empty()) return Status::invalid_argument(what + ": empty {} in the URL");
    c.url_fields.push_back(field);
  }
  SLUICE_ASSIGN_OR_RETURN(auto params, parse_query(query, what));
  for (const auto& [k, v] : params) {
    if (k == "batch_size") {
      SLUICE_ASSIGN_OR_RETURN(c.batch_size, positive(what + ": batch_size", v, 1'000'000));
    } else if (k == "batch_bytes") {
      SLUICE_ASSIGN_OR_RETURN(c.batch_bytes, parse_bytes(v));
      if (c.batch_bytes < 1024 || c.batch_bytes > (int64_t{256} << 20)) {
        return Status::invalid_argument(what + ": batch_bytes must be from 1KB to 256MB");
      }
    } else if (k == "linger") {
      SLUICE_ASSIGN_OR_RETURN(c.linger, duration(what + ": linger", v, true));
    } else if (k == "timeout") {
      SLUICE_ASSIGN_OR_RETURN(c.timeout, duration(what + ": timeout", v, false));
    } else if (k == "connect_timeout") {
      SLUICE_ASSIGN_OR_RETURN(c.connect_timeout, duration(what + ": connect_timeout", v, false));
    } else if (k == "max_in_flight") {
      SLUICE_ASSIGN_OR_RETURN(c.max_in_flight, positive(what + ": max_in_flight", v, 64));
    } else if (k == "max_pending") {
      SLUICE_ASSIGN_OR_RETURN(c.max_pending, positive(what + ": max_pending", v, 100'000));
    } else if (k == "retry_initial") {
      SLUICE_ASSIGN_OR_RETURN(c.retry_initial, duration(what + ": retry_initial", v, false));
    } else if (k == "retry_max") {
      SLUICE_ASSIGN_OR_RETURN(c.retry_max, duration(what + ": retry_max", v, false));
    } else if (k == "retry_timeout") {
      SLUICE_ASSIGN_OR_RETURN(c.retry_timeout, duration(what + ": retry_timeout", v, true));
    } else if (k == "method") {
      if (v != "POST" && v != "PUT") return Status::invalid_argument(what + ": method must be POST or PUT");
      c.method = v;
    } else if (k == "format") {
      if (v != "json" && v != "ndjson" && v != "splunk-hec" && v != "es-bulk") {
        return Status::invalid_argument(what + ": format must be json, ndjson, splunk-hec or es-bulk");
      }
      c.format = v;
    } else if (k == "auth_scheme") {
      if (v != "Bearer" && v != "Splunk" && v != "ApiKey" && v != "Basic") {
        return Status::invalid_argument(what + ": auth_scheme must be Bearer, Splunk, ApiKey or Basic");
      }
      c.auth_scheme = v;
    } else if (k == "id_field" || k == "index" || k == "time_field" || k == "op" || k == "host" || k == "source" ||
               k == "sourcetype") {
      if (v.empty() || v.find_first_of("\"\\\r\n") != std::string::npos) {
        return Status::invalid_argument(what + ": " + k + " must be non-empty, without quotes, backslashes or line breaks");
      }
      if (k == "op" && v != "index" && v != "create") return Status::invalid_argument(what + ": op must be index or create");
      (k == "id_field" ? c.id_field : k == "index" ? c.index : k == "time_field" ? c.time_field : k == "op" ? c.es_op
       : k == "host" ? c.hec_host : k == "source" ? c.hec_source : c.hec_sourcetype) = v;
    } else if (k == "url_query") {
      c.url_query = v;
    } else if (k == "idempotency_header") {
      if (v.empty() || !std::all_of(v.begin(), v.end(), token_char)) {
        return Status::invalid_argument(what + ": idempotency_header must be a header name");
      }
      c.idempotency_header = v;
    } else if (k == "auth_token") {
      c.auth_token = SecretRef::parse(v);
      c.has_auth_token = true;
      if (c.auth_token.kind == SecretRef::Kind::kLiteral) {
        return Status::invalid_argument(what + ": auth_token must be env:NAME or file:PATH, never the token itself");
      }
    } else if (k.rfind("header.", 0) == 0) {
      const std::string name = k.substr(7);
      if (name.empty() || !std::all_of(name.begin(), name.end(), token_char)) {
        return Status::invalid_argument(what + ": '" + name + "' is not a header name");
      }
      if (v.find_first_of("\r\n") != std::string::npos) {
        return Status::invalid_argument(what + ": header " + name + " holds a line break");
      }
      c.headers.emplace_back(name, SecretRef::parse(v));
    } else if (k == "delivery") {
      if (v == "at_least_once") c.delivery = Delivery::kAtLeastOnce;
      else if (v == "after_checkpoint") c.delivery = Delivery::kAfterCheckpoint;
      else return Status::invalid_argument(what + ": delivery must be at_least_once or after_checkpoint");
    } else {
      return Status::invalid_argument(
          what + ": unknown parameter '" + k +
          "' (batch_size, batch_bytes, linger, timeout, connect_timeout, max_in_flight, max_pending, retry_initial, "
          "retry_max, retry_timeout, method, format, url_query, idempotency_header, auth_token, auth_scheme, header.NAME, "
          "delivery; splunk-hec: id_field, index, time_field, host, source, sourcetype; es-bulk: id_field, index, op)");
    }
  }
  SLUICE_RETURN_IF_ERROR(check_format_options(c, what, params));
  if (c.retry_max < c.retry_initial) c.retry_max = c.retry_initial;
  return c;
}

}  // namespace sluice::http_sink
