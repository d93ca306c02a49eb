// A small client of etcd's v3 API through its HTTP/JSON gateway (the
// /v3/... endpoints every etcd >= 3.4 serves next to gRPC), on libcurl:
// leases, reads, and the compare-and-put transactions leader election and
// fencing need. Keys and values are base64 on the wire; 64-bit numbers
// are JSON strings.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/common/status.h"
#include "engine/common/time.h"

namespace sluice::ha {

/// One key as etcd returns it.
struct EtcdKeyValue {
  std::string key, value;
  int64_t create_revision = 0;  // the revision that created it: unique per creation, increasing
  int64_t mod_revision = 0;
  int64_t lease = 0;
};

/// Blocking calls to an etcd cluster. Thread-safe (a libcurl easy handle
/// per call); each call tries the endpoints in turn, starting with the one
/// that answered last. Owned by the election or retriever that uses it.
class EtcdClient {
 public:
  /// `endpoints`: "http://host:port" of etcd members. `timeout` per call and endpoint.
  explicit EtcdClient(std::vector<std::string> endpoints, Duration timeout = Duration(1500));

  /// A lease of `ttl_seconds`; its id.
  Result<int64_t> grant_lease(int64_t ttl_seconds);
  /// Renews a lease; its remaining TTL in seconds (0: the lease is gone).
  Result<int64_t> keep_alive(int64_t lease);
  Status revoke_lease(int64_t lease);

  Result<std::optional<EtcdKeyValue>> get(const std::string& key);
  /// Creates `key` = `value` (attached to `lease`, 0 = none) unless it
  /// exists. Returns whether it was created and the key as it now stands.
  Result<std::pair<bool, EtcdKeyValue>> create(const std::string& key, const std::string& value, int64_t lease);
  /// Puts `key` = `value` only if `guard_key` exists with creation revision
  /// `guard_revision` (the caller still holds what it created). False if not.
  Result<bool> put_if(const std::string& guard_key, int64_t guard_revision, const std::string& key,
                      const std::string& value);
  /// Deletes `key` only if `guard_key` still has creation revision `guard_revision`.
  Result<bool> delete_if(const std::string& guard_key, int64_t guard_revision, const std::string& key);

  const std::vector<std::string>& endpoints() const { return endpoints_; }

 private:
  /// A transaction running `operation` (one request of etcd's txn) only if
  /// `guard_key` has creation revision `guard_revision`; whether it ran.
  Result<bool> guarded(const std::string& operation, const std::string& guard_key, int64_t guard_revision);
  /// POSTs `body` to `path` on the first endpoint that answers; the response body.
  Result<std::string> post(const std::string& path, const std::string& body);

  const std::vector<std::string> endpoints_;
  const Duration timeout_;
  std::mutex mu_;
  size_t preferred_ = 0;  // guarded by mu_
};

}  // namespace sluice::ha
