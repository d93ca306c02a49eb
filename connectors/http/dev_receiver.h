// DevPushReceiver: the receiving end of a push sink for demos and
// development (`sluice dev-receiver`, as `sluice dev-kafka` is a broker):
// an HTTP server that takes batches (the json format's
// {"idempotency_key":…,"records":[…]}, or NDJSON with an Idempotency-Key
// header), applies each batch once per key (a repeated key is answered
// 200 and ignored, as a receiver that dedupes retries must), keeps the
// latest record per key fields (e.g. minute,step of funnel updates), and
// serves them: GET /records (JSON array), GET /stats, GET /health.
//
// Bounded: at most max_keys records and max_batch_keys remembered batch
// keys (the oldest are forgotten first). Optionally requires a bearer token.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "engine/common/http_server.h"
#include "engine/common/status.h"

namespace sluice::http_sink {

struct DevReceiverOptions {
  std::string bind = "127.0.0.1:8090";   ///< host:port (port 0: any)
  std::string token;                      ///< [""] when set, requests need "Authorization: Bearer <token>"
  std::vector<std::string> key_fields;    ///< [] latest record per these fields; empty: every record is kept
  size_t max_keys = 100'000;
  size_t max_batch_keys = 100'000;
};

struct DevReceiverStats {
  uint64_t batches = 0;     // applied
  uint64_t duplicates = 0;  // repeated keys, ignored
  uint64_t records = 0;     // records applied
  uint64_t refused = 0;     // unauthorized or unreadable
};

/// Owns its server; thread-safe (handlers run on the server's threads).
class DevPushReceiver {
 public:
  static Result<std::unique_ptr<DevPushReceiver>> start(DevReceiverOptions options);
  int port() const { return server_->port(); }
  const std::string& address() const { return server_->address(); }
  DevReceiverStats stats() const;
  /// The kept records as a JSON array, ordered by key.
  std::string records_json() const;

 private:
  DevPushReceiver() = default;
  HttpResponse post(const HttpRequest& req);

  DevReceiverOptions options_;
  std::unique_ptr<HttpServer> server_;
  mutable std::mutex mu_;
  std::set<std::string> seen_;
  std::deque<std::string> seen_order_;
  std::map<std::string, std::string> records_;  // key -> record JSON
  uint64_t next_ = 0;                           // key of records without key fields
  DevReceiverStats stats_;
};

}  // namespace sluice::http_sink
