// The byte streams under the data plane: one connected TCP socket per
// remote channel, plaintext or mutual TLS (OpenSSL), behind one interface,
// so that the protocol above (engine/runtime/data_plane.cc: challenge,
// hello, credits, data) is the same either way.
//
// TLS: TLS 1.3 only, both ends present a certificate signed by the cluster
// CA (`--tls-ca`), the consumer's certificate must name the host the
// producer dialled (IP SAN or DNS name), no session tickets, no
// renegotiation. A peer without such a certificate fails the TLS handshake
// and never reaches the data plane's own handshake. The data plane's HMAC
// challenge (the cluster secret, per job and attempt) runs inside TLS,
// unchanged.
//
// Threads: a connection is used by two threads at once — one reads, one
// writes (the data plane's receiver/credit and sender/credit-reader pairs)
// — and abort() may come from a third. The plaintext connection uses
// blocking socket calls as before; the TLS connection keeps its socket
// non-blocking, makes every OpenSSL call under one mutex and waits for the
// socket in poll() without it, so a reader waiting for data never holds up
// the writer.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <openssl/types.h>

#include "engine/common/status.h"

namespace sluice::runtime {

/// PEM files for the data plane's mutual TLS (the taskmanager's --tls-cert,
/// --tls-key, --tls-ca). Default all empty: plaintext.
struct DataPlaneTls {
  std::string cert;  // this process's certificate, valid for the host it advertises
  std::string key;   // its private key
  std::string ca;    // the cluster CA: peers must present a certificate it signed
  bool enabled() const { return !cert.empty() || !key.empty() || !ca.empty(); }
};

/// Counts a connection that failed because one end runs the data plane
/// with TLS and the other without (sluice_data_plane_tls_mismatches_total
/// {side}), where it was found: `side` "producer" (a dial found the
/// consumer's setting differs) or "consumer" (an accepted connection was
/// refused). Thread-safe; process-wide.
void count_tls_mismatch(const char* side);
/// The process-wide count of one side so far (tests).
uint64_t tls_mismatch_count(const char* side);

/// The start of every error about such a mismatch (logs, channel failures).
inline constexpr std::string_view kTlsMismatch = "TLS mismatch: ";

/// One connected data-plane socket. Owns the file descriptor (closed on
/// destruction). Created by a Transport after connect()/accept(); owned by
/// the data plane's Sender or Receiver. Thread-safe for one reader, one
/// writer and any number of abort() callers at the same time.
class Connection {
 public:
  virtual ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  int fd() const { return fd_; }
  /// The TLS handshake (nothing in plaintext), within `timeout`.
  /// PermissionDenied when the peer's certificate (or ours, to the peer) is
  /// refused or the peer does not speak TLS (kTlsMismatch, counted):
  /// retrying will not help.
  virtual Status handshake(std::chrono::milliseconds timeout) { return Status::ok(); }
  /// Writes `head` then `body`, all of it (one protocol message).
  virtual Status write(std::string_view head, std::string_view body) = 0;
  /// Reads up to `n` (> 0) bytes; 0 when the peer closed the stream.
  /// Status::timeout after the read timeout (if set) without data.
  virtual Result<size_t> read_some(char* p, size_t n) = 0;
  /// Bounds how long read_some waits; 0 = forever (the default).
  void set_read_timeout(std::chrono::milliseconds t);
  /// After the last message: TLS close_notify, then FIN. Reading goes on
  /// (until the peer closes too).
  virtual void finish_writes();
  /// Ends the connection at once (shutdown both ways): every thread blocked
  /// in it returns. The descriptor stays open until destruction.
  void abort();

 protected:
  explicit Connection(int fd) : fd_(fd) {}
  const int fd_;
  std::chrono::milliseconds read_timeout_{0};  // set before the reading thread starts
};

/// Turns connected sockets into Connections: plaintext, or TLS with the
/// certificates loaded once at start. One per DataPlane, shared read-only
/// by its threads; must outlive every Connection it made.
class Transport {
 public:
  /// Plaintext when `tls` is empty; otherwise cert, key and CA are all
  /// required and must load (an error names the file).
  static Result<std::unique_ptr<Transport>> create(const DataPlaneTls& tls);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  bool tls() const { return server_ctx_ != nullptr; }
  /// The consumer's side of an accepted socket (takes ownership of `fd`).
  std::unique_ptr<Connection> accepted(int fd) const;
  /// The producer's side of a socket connected to `host` (takes ownership
  /// of `fd`); with TLS the peer's certificate must be valid for `host`.
  Result<std::unique_ptr<Connection>> connected(int fd, const std::string& host) const;

 private:
  Transport() = default;
  SSL_CTX* server_ctx_ = nullptr;  // null in plaintext
  SSL_CTX* client_ctx_ = nullptr;
};

}  // namespace sluice::runtime
