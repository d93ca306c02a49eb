// Cluster authentication: one shared secret (the cluster token) proves
// membership on every channel between Sluice processes.
//
// - Control plane (gRPC, both ways): every call carries the metadata entry
//   `sluice-auth: v1:<unix ms>:<nonce>:<hmac>` where
//   hmac = HMAC-SHA256(secret, "v1|<method>|<unix ms>|<nonce>"). The secret
//   never travels; a receiver recomputes the MAC, compares in constant time,
//   refuses timestamps outside a window and nonces it has seen (replay).
// - Data plane: a per-attempt key derived from the secret
//   (attempt_key(job, attempt)) signs a challenge–response handshake, so a
//   hello proves it belongs to that attempt of that job.
// - CLI and HTTP: the token itself as a bearer credential (TLS protects it
//   on the wire), compared in constant time.
//
// A standby jobmanager holding the same secret uses the same scheme.
// HMAC and randomness come from OpenSSL; nothing here is hand-written crypto.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>

#include "engine/common/status.h"

namespace sluice::auth {

/// Lower-case hex HMAC-SHA256(key, msg).
std::string hmac_sha256_hex(std::string_view key, std::string_view msg);
/// Raw 32-byte HMAC-SHA256(key, msg).
std::string hmac_sha256(std::string_view key, std::string_view msg);
/// Equality without an early exit (CRYPTO_memcmp); sizes may differ.
bool constant_time_equal(std::string_view a, std::string_view b);
/// `n` bytes from OpenSSL's CSPRNG.
std::string random_bytes(size_t n);
/// `n` random bytes as lower-case hex (2n characters).
std::string random_hex(size_t n);

/// Reads a secret from a file: the first line, trailing blanks removed.
/// Refused if empty or if the file is readable by group/others (it must be
/// 0600 or 0400; `allow_shared_mode` lifts that for read-only mounts).
Result<std::string> read_secret_file(const std::string& path, bool allow_shared_mode = false);

/// The name of the metadata entry that carries a call's signature.
inline constexpr const char* kMetadataKey = "sluice-auth";

/// Signs and verifies calls between cluster members with the cluster
/// secret. Thread-safe; one per process, owned by its service object, used
/// from every RPC thread. The replay cache is bounded: it holds the nonces
/// of the last `window` (at most kMaxNonces; beyond that calls are refused
/// until old ones expire, which bounds memory under a flood).
class CallAuthenticator {
 public:
  static constexpr size_t kMaxNonces = 1 << 20;

  /// `window`: accepted clock difference between caller and callee.
  explicit CallAuthenticator(std::string secret, std::chrono::milliseconds window = std::chrono::minutes(5));
  CallAuthenticator(const CallAuthenticator&) = delete;
  CallAuthenticator& operator=(const CallAuthenticator&) = delete;

  /// The metadata value for one call of `method` (e.g. "/sluice.proto.TaskManager/CancelTasks").
  std::string sign(std::string_view method) const;
  /// Ok if `value` is a fresh, valid signature of `method`; otherwise
  /// kUnauthenticated-like kPermissionDenied with the reason (for the log).
  Status verify(std::string_view method, std::string_view value);
  /// Constant-time check of a bearer token (CLI, HTTP).
  bool token_matches(std::string_view token) const { return constant_time_equal(token, secret_); }
  /// The per-attempt data-plane key of (job, attempt).
  std::string attempt_key(std::string_view job_id, int attempt) const;
  const std::string& secret() const { return secret_; }

 private:
  const std::string secret_;
  const std::chrono::milliseconds window_;
  std::mutex mu_;  // guards the replay cache
  std::deque<std::pair<int64_t, std::string>> nonce_order_;  // (expiry ms, nonce)
  std::unordered_set<std::string> nonces_;
};

/// The data-plane key of (job, attempt) under `secret` (see the file comment).
std::string derive_attempt_key(std::string_view secret, std::string_view job_id, int attempt);

}  // namespace sluice::auth
