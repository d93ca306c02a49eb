// Internal to the data plane (included by data_plane.cc only): the
// producer end of a remote channel, the Sender that connects (with
// backoff), handshakes and writes while it has credit.
#pragma once

#include <netdb.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "engine/common/auth.h"
#include "engine/runtime/data_plane_wire.h"

namespace sluice::runtime {

// --- Sender: one outbound channel -----------------------------------------------

/// The producer side of one remote channel. Threads: `thread_` connects
/// (retrying with backoff), handshakes, then pops the outbound Channel and
/// writes one kData per buffer while it has credit; `credits_` reads the
/// consumer's kCredit messages. After the end-of-partition buffer it half-
/// closes and waits for the consumer's FIN. Owned (shared) by the plane.
class DataPlane::Sender {
 public:
  Sender(const Transport& transport, Hello hello, std::string key, std::string peer,
         std::shared_ptr<Channel> channel)
      : transport_(transport), hello_(std::move(hello)), key_(std::move(key)), peer_(std::move(peer)),
        channel_(std::move(channel)), wake_(std::make_shared<detail::Wake>()) {
    channel_->set_observer(wake_);
  }
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;

  const std::shared_ptr<Channel>& channel() const { return channel_; }
  void start() { thread_ = std::thread([this] { run(); }); }
  /// Released: closes the channel (the producer's push fails, as with a
  /// cancelled local consumer) and drops the connection. Called once.
  void stop_and_join() {
    {
      std::lock_guard lk(mu_);
      stop_.store(true);
      if (conn_) conn_->abort();
    }
    cv_.notify_all();
    wake_->signal.notify();
    channel_->set_observer(nullptr);
    channel_->close();
    if (thread_.joinable()) thread_.join();
  }

 private:
  bool stopping() const { return stop_.load(); }
  void fail(const std::string& why, StatusCode code = StatusCode::kUnavailable) {
    spdlog::warn("data plane: channel {} of job {} attempt {}: {}", channel_->name(), hello_.job_id,
                 hello_.attempt, why);
    channel_->fail(why, code);
  }

  void run() {
    Result<Connection*> conn = connect_with_backoff();
    if (!conn.is_ok()) {
      // Only a TLS set-up that cannot work (tls_refused) fails the job for
      // good; a refused attempt (released, stale) is part of a restart.
      const Status& st = conn.status();
      if (!stopping()) fail(st.message(), st.code() == StatusCode::kFailedPrecondition ? st.code() : StatusCode::kUnavailable);
      return;
    }
    Connection& c = **conn;  // conn_, reset only below
    credits_ = std::thread([this, &c] { read_credits(c); });
    Status st = send_loop(c);
    if (!st.is_ok() && !stopping()) fail("sending to consumer at " + peer_ + " failed: " + st.message());
    // After the last buffer: FIN, then wait for the consumer's FIN (read by
    // credits_), so that closing never resets a connection with data in it.
    if (st.is_ok() && eop_sent_.load()) {
      c.finish_writes();
    } else {
      c.abort();
    }
    credits_.join();
    std::lock_guard lk(mu_);
    conn_.reset();
  }

  Result<Connection*> connect_with_backoff() {
    SLUICE_ASSIGN_OR_RETURN(auto hp, split_address(peer_));
    auto backoff = std::chrono::duration_cast<std::chrono::milliseconds>(kInitialBackoff);
    int failures = 0;
    while (!stopping()) {
      Result<int> fd = connect_once(hp.first, hp.second);
      Status st = fd.status();
      Result<std::unique_ptr<Connection>> conn = st;
      if (fd.is_ok()) {
        conn = transport_.connected(*fd, hp.first);
        st = conn.status();
      }
      if (conn.is_ok()) {
        Connection* c = nullptr;
        {
          std::lock_guard lk(mu_);
          if (stop_.load()) break;  // conn closes the socket
          conn_ = std::move(conn).value();
          c = conn_.get();
        }
        st = handshake(*c);
        if (st.is_ok()) return c;
        std::lock_guard lk(mu_);
        conn_.reset();
        if (st.code() == StatusCode::kPermissionDenied || st.code() == StatusCode::kFailedPrecondition) {
          return st;  // refused: final
        }
      }
      if (++failures == 25) {  // ~15 s: worth a line, keep trying
        spdlog::warn("data plane: still cannot reach consumer at {} for {} of job {}: {}", peer_,
                     channel_->name(), hello_.job_id, st.to_string());
      }
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, backoff, [&] { return stop_.load(); });
      backoff = std::min(backoff * 2, std::chrono::duration_cast<std::chrono::milliseconds>(kMaxBackoff));
    }
    return Status::cancelled("released");
  }

  // Non-blocking connect polled in slices, so that a release is noticed.
  Result<int> connect_once(const std::string& host, const std::string& port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) return Status::unavailable("resolve " + host + ": " + ::gai_strerror(rc));
    Status last = Status::unavailable("no address for " + host);
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
      int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
      if (fd < 0) {
        last = Status::from_errno("socket", errno);
        continue;
      }
      set_nonblocking(fd, true);
      int r = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
      int err = r == 0 ? 0 : errno;
      if (err == EINPROGRESS) {
        auto deadline = std::chrono::steady_clock::now() + kConnectTimeout;
        err = ETIMEDOUT;
        while (!stopping() && std::chrono::steady_clock::now() < deadline) {
          pollfd p{fd, POLLOUT, 0};
          int n = ::poll(&p, 1, 100);
          if (n < 0 && errno != EINTR) {
            err = errno;
            break;
          }
          if (n > 0) {
            socklen_t len = sizeof err;
            if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
            break;
          }
        }
      }
      if (err == 0 && set_nonblocking(fd, false)) {
        configure_socket(fd);
        ::freeaddrinfo(res);
        return fd;
      }
      last = Status::from_errno("connect to " + peer_, err);
      ::close(fd);
    }
    ::freeaddrinfo(res);
    return last;
  }

  /// A TLS handshake that failed for good (Connection::handshake's
  /// kPermissionDenied: one end without TLS, a certificate of another CA
  /// or not for the address dialled): the cluster's configuration is
  /// wrong and a restart would fail the same way, so the job fails
  /// (kFailedPrecondition, permanent). Names the consumer's data-plane
  /// address (the jobmanager says whose it is) and what to fix.
  Status tls_refused(const Status& st) const {
    std::string msg = "data plane TLS between this taskmanager (producer) and the consumer's at " + peer_ +
                      " cannot work: " + st.message();
    if (msg.find(kTlsMismatch) == std::string::npos) {
      msg += "; give every taskmanager a certificate signed by the same cluster CA (--tls-ca) and valid for "
             "the data-plane address it is dialled at";
    }
    return Status::failed_precondition(msg);
  }

  Status handshake(Connection& conn) {
    if (Status st = conn.handshake(kHandshakeTimeout); !st.is_ok()) {
      return st.code() == StatusCode::kPermissionDenied ? tls_refused(st) : st;
    }
    // The preface first: a TLS consumer tells a plaintext producer by it
    // and refuses at once (kRefuse, in clear) instead of waiting for a
    // ClientHello that never comes.
    SLUICE_RETURN_IF_ERROR(send_message(conn, MsgType::kPreface, kPrefaceText));
    conn.set_read_timeout(kHandshakeTimeout);
    MsgType type;
    std::string payload;
    bool eof = false;
    SLUICE_RETURN_IF_ERROR(read_message(conn, kMaxControlBytes, type, payload, &eof));
    if (eof) return Status::unavailable("consumer at " + peer_ + " closed before the handshake");
    if (type == MsgType::kRefuse) {
      // Before any challenge only a TLS consumer refuses (this plane is plaintext).
      count_tls_mismatch("producer");
      return tls_refused(Status::permission_denied("the consumer refused the connection: " + payload));
    }
    if (type != MsgType::kChallenge || payload.size() != kNonceBytes) {
      return Status::corruption("consumer at " + peer_ + " sent no challenge (an older or foreign peer?)");
    }
    const std::string server_nonce = payload;
    Hello hello = hello_;
    hello.nonce = auth::random_bytes(kNonceBytes);
    hello.mac = hello_mac(key_, server_nonce, hello);
    SLUICE_RETURN_IF_ERROR(send_message(conn, MsgType::kHello, DataPlane::encode_hello(hello)));
    SLUICE_RETURN_IF_ERROR(read_message(conn, kMaxControlBytes, type, payload, &eof));
    if (eof) return Status::unavailable("consumer at " + peer_ + " closed during the handshake");
    if (type == MsgType::kRefuse) {
      return Status::permission_denied("consumer at " + peer_ + " refused channel " +
                                       channel_->name() + ": " + payload);
    }
    if (type != MsgType::kAccept) return Status::corruption("unexpected handshake reply");
    if (!auth::constant_time_equal(payload, accept_mac(key_, server_nonce, hello.nonce))) {
      return Status::permission_denied("consumer at " + peer_ +
                                       " did not prove the cluster secret; not sending it data");
    }
    conn.set_read_timeout(0ms);
    return Status::ok();
  }

  Status send_loop(Connection& conn) {
    while (!stopping() && !peer_gone_.load()) {
      if (credit_.load() > 0) {
        Buffer b;
        if (channel_->try_pop(b)) {
          credit_.fetch_sub(1);
          bool eop = false;
          (void)scan_frames(b.data, nullptr, &eop);  // a bad frame is the consumer's to reject
          // Set before the write: a consumer that closes right after the
          // last buffer arrived is then a normal end, not a lost peer.
          if (eop) eop_sent_.store(true);
          SLUICE_RETURN_IF_ERROR(send_message(conn, MsgType::kData, b.data));
          if (eop) return Status::ok();
          continue;
        }
      }
      // Woken by a push into the empty channel, by credit, and by stop.
      wake_->signal.wait_until(std::chrono::steady_clock::now() + 100ms);
    }
    return Status::ok();
  }

  void read_credits(Connection& conn) {
    MsgType type;
    std::string payload;
    while (true) {
      bool eof = false;
      Status st = read_message(conn, kMaxControlBytes, type, payload, &eof);
      if (st.is_ok() && !eof && type == MsgType::kCredit && payload.size() == 4) {
        credit_.fetch_add(get_u32(payload.data()));
        wake_->signal.notify();
        continue;
      }
      if (stopping() || eop_sent_.load()) return;  // the expected end
      std::string why = eof ? std::string("consumer closed the connection")
                            : !st.is_ok() ? st.message() : std::string("unexpected message");
      peer_gone_.store(true);
      fail("connection to consumer at " + peer_ + " lost: " + why);
      conn.abort();  // unblocks a write in progress
      wake_->signal.notify();
      return;
    }
  }

  const Transport& transport_;  // the plane's
  const Hello hello_;
  const std::string key_;  // the attempt's data-plane key
  const std::string peer_;
  const std::shared_ptr<Channel> channel_;
  const std::shared_ptr<detail::Wake> wake_;
  std::mutex mu_;  // guards conn_ (closed only under it, so stop never hits a reused fd)
  std::condition_variable cv_;  // backoff waits
  std::unique_ptr<Connection> conn_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> eop_sent_{false};
  std::atomic<bool> peer_gone_{false};
  std::atomic<int64_t> credit_{0};
  std::thread thread_;
  std::thread credits_;
};

}  // namespace sluice::runtime
