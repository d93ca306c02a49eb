#include "engine/runtime/data_plane_transport.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>

#include <prometheus/counter.h>

#include "engine/common/metrics.h"

namespace sluice::runtime {

namespace {

using Clock = std::chrono::steady_clock;

// --- plaintext ------------------------------------------------------------------

/// Blocking socket calls, every send with MSG_NOSIGNAL; the read timeout is
/// SO_RCVTIMEO (set by set_read_timeout).
class PlainConnection final : public Connection {
 public:
  explicit PlainConnection(int fd) : Connection(fd) {}

  Status write(std::string_view head, std::string_view body) override {
    iovec iov[2] = {{const_cast<char*>(head.data()), head.size()},
                    {const_cast<char*>(body.data()), body.size()}};
    int n = body.empty() ? 1 : 2;
    iovec* v = iov;
    while (n > 0) {
      msghdr msg{};
      msg.msg_iov = v;
      msg.msg_iovlen = n;
      ssize_t w = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        return Status::from_errno("send", errno);
      }
      size_t left = static_cast<size_t>(w);
      while (n > 0 && left >= v->iov_len) {
        left -= v->iov_len;
        ++v;
        --n;
      }
      if (n > 0) {
        v->iov_base = static_cast<char*>(v->iov_base) + left;
        v->iov_len -= left;
      }
    }
    return Status::ok();
  }

  Result<size_t> read_some(char* p, size_t n) override {
    while (true) {
      ssize_t r = ::recv(fd_, p, n, 0);
      if (r >= 0) return static_cast<size_t>(r);
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::timeout("read timed out");
      return Status::from_errno("recv", errno);
    }
  }
};

// --- TLS ------------------------------------------------------------------------

// A socket BIO that sends with MSG_NOSIGNAL: OpenSSL's own uses write(),
// and a peer that goes away must not raise SIGPIPE in a taskmanager.
int bio_write(BIO* b, const char* data, int len) {
  BIO_clear_retry_flags(b);
  ssize_t n = ::send(static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(b))), data, static_cast<size_t>(len),
                     MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_write(b);
  return static_cast<int>(n);
}
int bio_read(BIO* b, char* out, int len) {
  BIO_clear_retry_flags(b);
  ssize_t n = ::recv(static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(b))), out, static_cast<size_t>(len), 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_read(b);
  return static_cast<int>(n);
}
long bio_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }
int bio_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}
int bio_destroy(BIO*) { return 1; }  // the Connection closes the descriptor

const BIO_METHOD* socket_bio_method() {
  static const BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sluice data-plane socket");
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    BIO_meth_set_destroy(m, bio_destroy);
    return m;
  }();
  return method;
}

/// OpenSSL's error queue of this thread as one line (and cleared).
std::string ssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    const char* reason = ERR_reason_error_string(e);
    if (!out.empty()) out += "; ";
    out += reason ? reason : buf;
  }
  return out;
}

/// Non-blocking socket, every OpenSSL call under mu_, waits in poll()
/// outside it (see the header).
class TlsConnection final : public Connection {
 public:
  TlsConnection(int fd, SSL* ssl, bool server, std::string peer)
      : Connection(fd), ssl_(ssl), server_(server), peer_(std::move(peer)) {
    BIO* bio = BIO_new(socket_bio_method());
    BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
    SSL_set_bio(ssl_, bio, bio);
    int flags = ::fcntl(fd, F_GETFL, 0);
    if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  }
  ~TlsConnection() override { SSL_free(ssl_); }

  Status handshake(std::chrono::milliseconds timeout) override {
    const auto deadline = Clock::now() + timeout;
    while (true) {
      int r, err;
      std::string errors;
      {
        std::lock_guard lk(mu_);
        ERR_clear_error();
        r = server_ ? SSL_accept(ssl_) : SSL_connect(ssl_);
        err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
        if (err == SSL_ERROR_SSL) errors = ssl_errors();
      }
      if (err == SSL_ERROR_NONE) return Status::ok();
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        SLUICE_RETURN_IF_ERROR(wait(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, "TLS handshake"));
        continue;
      }
      return handshake_error(err, errors);
    }
  }

  Status write(std::string_view head, std::string_view body) override {
    // One buffer, so that a small message is one TLS record (and packet).
    std::string msg;
    msg.reserve(head.size() + body.size());
    msg.append(head).append(body);
    size_t done = 0;
    while (done < msg.size()) {
      size_t wrote = 0;
      int r, err;
      std::string errors;
      {
        std::lock_guard lk(mu_);
        ERR_clear_error();
        r = SSL_write_ex(ssl_, msg.data() + done, msg.size() - done, &wrote);
        err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
        if (err == SSL_ERROR_SSL) errors = ssl_errors();
      }
      if (err == SSL_ERROR_NONE) {
        done += wrote;
        continue;
      }
      if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
        // Retried with the same bytes, as OpenSSL requires.
        SLUICE_RETURN_IF_ERROR(wait(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, {}, "send"));
        continue;
      }
      if (err == SSL_ERROR_SYSCALL && errno != 0) return Status::from_errno("send", errno);
      return Status::io_error("TLS send to " + peer_ + " failed: " + (errors.empty() ? "connection closed" : errors));
    }
    return Status::ok();
  }

  Result<size_t> read_some(char* p, size_t n) override {
    std::optional<Clock::time_point> deadline;
    if (read_timeout_.count() > 0) deadline = Clock::now() + read_timeout_;
    while (true) {
      size_t got = 0;
      int r, err;
      std::string errors;
      {
        std::lock_guard lk(mu_);
        ERR_clear_error();
        r = SSL_read_ex(ssl_, p, n, &got);
        err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
        if (err == SSL_ERROR_SSL) errors = ssl_errors();
      }
      if (err == SSL_ERROR_NONE) return got;
      // close_notify, or (SSL_OP_IGNORE_UNEXPECTED_EOF) a bare FIN: the
      // protocol above notices a stream that ends too early on its own.
      if (err == SSL_ERROR_ZERO_RETURN) return size_t{0};
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        Status st = wait(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, "read");
        if (!st.is_ok()) return st;
        continue;
      }
      if (err == SSL_ERROR_SYSCALL && errno != 0) return Status::from_errno("recv", errno);
      std::string msg = "TLS read from " + peer_ + " failed: " + (errors.empty() ? "connection closed" : errors);
      // TLS 1.3 checks the client's certificate after the client's side of
      // the handshake is done: the refusal arrives as an alert here.
      if (errors.find("alert") != std::string::npos) return Status::permission_denied(msg);
      return Status::io_error(msg);
    }
  }

  void finish_writes() override {
    {
      std::lock_guard lk(mu_);
      ERR_clear_error();
      (void)SSL_shutdown(ssl_);  // queues close_notify; a full socket buffer just loses it (FIN follows)
      ERR_clear_error();
    }
    Connection::finish_writes();
  }

 private:
  /// Waits until the socket is ready for `events`, the deadline (if any)
  /// passes (timeout) or the connection is aborted (the next call fails).
  Status wait(short events, std::optional<Clock::time_point> deadline, const char* what) {
    while (true) {
      int ms = -1;
      if (deadline) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
        if (left.count() <= 0) return Status::timeout(std::string(what) + " timed out");
        ms = static_cast<int>(std::min<int64_t>(left.count(), 60'000));
      }
      pollfd pfd{fd_, events, 0};
      int n = ::poll(&pfd, 1, ms);
      if (n > 0) return Status::ok();  // ready, or HUP/ERR: the SSL call reports it
      if (n < 0 && errno != EINTR) return Status::from_errno("poll", errno);
    }
  }

  Status handshake_error(int err, const std::string& errors) const {
    long verify = SSL_get_verify_result(ssl_);
    std::string why = errors;
    if (verify != X509_V_OK) why = std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
    if (why.empty()) why = err == SSL_ERROR_SYSCALL && errno ? std::strerror(errno) : "connection closed";
    // The peer closed or reset during the handshake (e.g. a consumer at its
    // limit of pending handshakes, or stopping): worth another try. Every
    // other failure is about certificates or protocol: it will not go away.
    bool transient = err == SSL_ERROR_SYSCALL || why.find("unexpected eof") != std::string::npos;
    std::string msg = "TLS handshake with " + peer_ + " failed: " + why;
    if (!transient && !server_ && why.find("wrong version number") != std::string::npos) {
      // What came back is not TLS: the consumer's plane runs in plaintext
      // (its challenge, in clear, is what OpenSSL could not read).
      count_tls_mismatch("producer");
      return Status::permission_denied(
          std::string(kTlsMismatch) + "the " + peer_ +
          " runs the data plane without TLS, this taskmanager with it (--tls-cert, --tls-key, --tls-ca): give "
          "every taskmanager of the cluster the same TLS settings (" + why + ")");
    }
    if (!transient && why.find("wrong version number") != std::string::npos) {
      msg += " (does the peer run without TLS?)";
    }
    return transient ? Status::unavailable(msg) : Status::permission_denied(msg);
  }

  SSL* const ssl_;
  const bool server_;
  const std::string peer_;
  std::mutex mu_;  // every call on ssl_
};

Status check_readable(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) return Status::not_found(std::string("data plane TLS: cannot read ") + what + " '" + path + "'");
  return Status::ok();
}

bool is_ip(const std::string& host) {
  in6_addr a6;
  in_addr a4;
  return ::inet_pton(AF_INET, host.c_str(), &a4) == 1 || ::inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

prometheus::Family<prometheus::Counter>& tls_mismatches() {
  static auto& family = prometheus::BuildCounter()
                            .Name("sluice_data_plane_tls_mismatches_total")
                            .Help("Data-plane connections that failed because one end runs TLS and the other not")
                            .Register(metrics::registry());
  return family;
}

}  // namespace

void count_tls_mismatch(const char* side) { tls_mismatches().Add({{"side", side}}).Increment(); }

uint64_t tls_mismatch_count(const char* side) {
  return static_cast<uint64_t>(tls_mismatches().Add({{"side", side}}).Value());
}

// --- Connection -------------------------------------------------------------------

Connection::~Connection() { ::close(fd_); }

void Connection::set_read_timeout(std::chrono::milliseconds t) {
  read_timeout_ = t;
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

void Connection::finish_writes() { ::shutdown(fd_, SHUT_WR); }

void Connection::abort() { ::shutdown(fd_, SHUT_RDWR); }

// --- Transport --------------------------------------------------------------------

Result<std::unique_ptr<Transport>> Transport::create(const DataPlaneTls& tls) {
  std::unique_ptr<Transport> t(new Transport());
  if (!tls.enabled()) return t;
  if (tls.cert.empty() || tls.key.empty() || tls.ca.empty()) {
    return Status::invalid_argument(
        "the data plane's mutual TLS needs all of --tls-cert, --tls-key and --tls-ca (the cluster CA)");
  }
  SLUICE_RETURN_IF_ERROR(check_readable(tls.cert, "--tls-cert"));
  SLUICE_RETURN_IF_ERROR(check_readable(tls.key, "--tls-key"));
  SLUICE_RETURN_IF_ERROR(check_readable(tls.ca, "--tls-ca"));
  for (bool server : {true, false}) {
    SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!ctx) return Status::internal("data plane TLS: " + ssl_errors());
    (server ? t->server_ctx_ : t->client_ctx_) = ctx;
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert.c_str()) != 1) {
      return Status::invalid_argument("data plane TLS: --tls-cert '" + tls.cert + "': " + ssl_errors());
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, tls.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      return Status::invalid_argument("data plane TLS: --tls-key '" + tls.key + "': " + ssl_errors());
    }
    if (SSL_CTX_load_verify_locations(ctx, tls.ca.c_str(), nullptr) != 1) {
      return Status::invalid_argument("data plane TLS: --tls-ca '" + tls.ca + "': " + ssl_errors());
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (server) SSL_CTX_set_num_tickets(ctx, 0);
  }
  return t;
}

Transport::~Transport() {
  SSL_CTX_free(server_ctx_);
  SSL_CTX_free(client_ctx_);
}

std::unique_ptr<Connection> Transport::accepted(int fd) const {
  if (!server_ctx_) return std::make_unique<PlainConnection>(fd);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  char host[INET6_ADDRSTRLEN] = "?";
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    const void* a = ss.ss_family == AF_INET6 ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr)
                                             : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&ss)->sin_addr);
    ::inet_ntop(ss.ss_family, a, host, sizeof host);
  }
  return std::make_unique<TlsConnection>(fd, SSL_new(server_ctx_), /*server=*/true, std::string("producer at ") + host);
}

Result<std::unique_ptr<Connection>> Transport::connected(int fd, const std::string& host) const {
  if (!client_ctx_) return std::unique_ptr<Connection>(std::make_unique<PlainConnection>(fd));
  SSL* ssl = SSL_new(client_ctx_);
  auto conn = std::make_unique<TlsConnection>(fd, ssl, /*server=*/false, "consumer at " + host);
  // The consumer's certificate must be for the address dialled.
  bool ok = is_ip(host) ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) == 1
                        : SSL_set1_host(ssl, host.c_str()) == 1 && SSL_set_tlsext_host_name(ssl, host.c_str()) == 1;
  if (!ok) return Status::invalid_argument("data plane TLS: cannot verify host '" + host + "': " + ssl_errors());
  return std::unique_ptr<Connection>(std::move(conn));
}

}  // namespace sluice::runtime
