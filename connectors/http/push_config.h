// The HTTP push sink's URI and its parsed form.
//
//   http://127.0.0.1:8080/funnel?batch_size=200&linger=200ms&auth_token=env:FUNNEL_TOKEN
//   https://hooks.example.com/v1/{user_id}/events?header.X-Tenant=acme&url_query=api-version%3D2
//
// The URL (http or https) is where batches go; `{field}` placeholders in
// its path are filled from each record (records of one URL share a batch).
// Every query parameter is a sink option (the target's own query string
// goes in url_query=). Secrets never appear in the URI: a header value or
// auth_token is `env:NAME` or `file:PATH`, read when the sink opens.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/status.h"
#include "engine/common/time.h"

namespace sluice::http_sink {

/// A header or token value: literal text, or where to read it at open.
struct SecretRef {
  enum class Kind { kLiteral, kEnv, kFile };
  Kind kind = Kind::kLiteral;
  std::string text;  // the literal, the variable name or the path
  /// The value; an error names the header and what is missing (never the value).
  Result<std::string> resolve(const std::string& what) const;
  static SecretRef parse(const std::string& v);
};

enum class Delivery {
  /// Send batches as soon as they are full or lingered; unacknowledged
  /// batches are in the checkpoint and re-sent with their key after a restore.
  kAtLeastOnce,
  /// Send a batch only after the checkpoint that covers it completed: its
  /// key and content are fixed before the first attempt, so a receiver that
  /// drops repeated keys sees every record exactly once (latency: the
  /// checkpoint interval).
  kAfterCheckpoint,
};

/// A parsed push-sink URI. Value type; defaults as written.
struct PushSinkConfig {
  std::string uri;           // as given
  std::string url_template;  // scheme://host[:port]/path with {field} placeholders
  std::vector<std::string> url_fields;  // the placeholders' fields, in order
  std::string url_query;     // appended as ?url_query
  std::string method = "POST";
  /// json: {"idempotency_key":..,"records":[..]}; ndjson: one record per line;
  /// splunk-hec: Splunk HTTP Event Collector events; es-bulk: Elasticsearch _bulk.
  std::string format = "json";
  int64_t batch_size = 500;            // records per batch
  int64_t batch_bytes = 1 << 20;       // encoded records per batch
  Duration linger{200};                // a batch waits at most this for more records
  Duration timeout{10'000};            // per request
  Duration connect_timeout{3'000};
  int64_t max_in_flight = 1;           // 1: batches of a subtask arrive in order
  int64_t max_pending = 16;            // released batches not yet acknowledged; beyond: input suspended
  Duration retry_initial{200};
  Duration retry_max{30'000};
  Duration retry_timeout{0};           // 0: retry forever; else fail the task after failing this long
  std::vector<std::pair<std::string, SecretRef>> headers;
  SecretRef auth_token;                // Authorization: Bearer <token>; empty text: none
  bool has_auth_token = false;
  std::string idempotency_header = "Idempotency-Key";
  /// The Authorization scheme of auth_token: "" = the format's (Bearer;
  /// Splunk for splunk-hec; ApiKey for es-bulk), Bearer, Splunk, ApiKey or
  /// Basic (the secret is "user:password").
  std::string auth_scheme;
  /// SIEM formats. es-bulk: the record field whose value is each document's
  /// _id (required: a redelivered alert overwrites itself); splunk-hec: a
  /// field every event must have, also sent as an indexed field ("fields").
  std::string id_field;
  /// es-bulk: "_index" of each action (default: the URL's /<index>/_bulk);
  /// splunk-hec: the event's "index" (default: the token's).
  std::string index;
  /// es-bulk: "index" (default; a repeat overwrites the same _id) or
  /// "create" (a repeat is answered 409, counted as delivered).
  std::string es_op = "index";
  /// splunk-hec: the event's "time" from this field (epoch ms); default the
  /// record's event time.
  std::string time_field;
  /// splunk-hec: the event's "host", "source", "sourcetype" (default: none, HEC's defaults).
  std::string hec_host, hec_source, hec_sourcetype;
  Delivery delivery = Delivery::kAtLeastOnce;

  static Result<PushSinkConfig> parse(const std::string& uri);
  /// Whether `uri` is an http:// or https:// URI.
  static bool matches(const std::string& uri);
};

}  // namespace sluice::http_sink
