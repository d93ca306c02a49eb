#include "engine/runtime/data_plane.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>

#include "engine/common/auth.h"
#include "engine/proto/jobgraph.pb.h"

namespace sluice::runtime {

namespace detail {

/// Wakes one data-plane thread: notified by a Channel (push into empty,
/// pop), by the plane (channel bound, stop) and by the thread's partner.
class Wake final : public ChannelObserver {
 public:
  void on_push() override { signal.notify(); }
  void on_pop() override { signal.notify(); }
  TaskSignal signal;
};

}  // namespace detail

namespace {

using namespace std::chrono_literals;

enum class MsgType : uint8_t { kHello = 1, kAccept = 2, kRefuse = 3, kCredit = 4, kData = 5, kChallenge = 6 };

constexpr size_t kNonceBytes = frames::kHelloNonceBytes;
constexpr size_t kHeaderBytes = 5;
constexpr uint32_t kMaxControlBytes = 64 * 1024;
constexpr auto kHandshakeTimeout = 5s;
// Data messages are read in steps that at most double what has arrived.
constexpr size_t kReadStep = 64 * 1024;
constexpr auto kConnectTimeout = 5s;
constexpr auto kInitialBackoff = 20ms;
constexpr auto kMaxBackoff = 1s;

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

std::string key_name(const ChannelKey& k) {
  return "e" + std::to_string(k.edge) + ":" + std::to_string(k.producer) + "->" +
         std::to_string(k.consumer);
}

std::shared_ptr<Channel> broken_channel(const ChannelKey& key, size_t capacity, std::string why) {
  auto c = std::make_shared<Channel>(key_name(key), capacity);
  c->fail(std::move(why));
  return c;
}

// --- socket helpers (blocking sockets; every send uses MSG_NOSIGNAL) --------

Status send_all(int fd, std::string_view head, std::string_view body) {
  iovec iov[2] = {{const_cast<char*>(head.data()), head.size()},
                  {const_cast<char*>(body.data()), body.size()}};
  int n = body.empty() ? 1 : 2;
  iovec* v = iov;
  while (n > 0) {
    msghdr msg{};
    msg.msg_iov = v;
    msg.msg_iovlen = n;
    ssize_t w = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
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

Status send_message(int fd, MsgType type, std::string_view payload) {
  std::string head;
  head.push_back(static_cast<char>(type));
  put_u32(head, static_cast<uint32_t>(payload.size()));
  return send_all(fd, head, payload);
}

// Reads exactly n bytes. *eof (if given) is set when the peer closed the
// connection before the first byte; a close in the middle is an error.
Status read_exact(int fd, char* p, size_t n, bool* eof) {
  size_t got = 0;
  if (eof) *eof = false;
  while (got < n) {
    ssize_t r = ::recv(fd, p + got, n - got, 0);
    if (r == 0) {
      if (got == 0 && eof) {
        *eof = true;
        return Status::ok();
      }
      return Status::io_error("connection closed in the middle of a message");
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::timeout("read timed out");
      return Status::from_errno("recv", errno);
    }
    got += static_cast<size_t>(r);
  }
  return Status::ok();
}

// One message; on a clean close at a message boundary sets *eof.
Status read_message(int fd, uint32_t max_bytes, MsgType& type, std::string& payload, bool* eof) {
  char head[kHeaderBytes];
  SLUICE_RETURN_IF_ERROR(read_exact(fd, head, kHeaderBytes, eof));
  if (*eof) return Status::ok();
  type = static_cast<MsgType>(head[0]);
  uint32_t len = get_u32(head + 1);
  if (len > max_bytes) {
    return Status::corruption("message of " + std::to_string(len) + " bytes (type " +
                              std::to_string(static_cast<int>(head[0])) + ") exceeds the limit");
  }
  // Allocated as the bytes arrive: a header announcing a huge message costs
  // nothing until the peer really sends (and is owed credit for) it.
  payload.clear();
  while (payload.size() < len) {
    size_t have = payload.size();
    size_t step = std::min<size_t>(len - have, std::max(kReadStep, have));
    payload.resize(have + step);
    bool mid_eof = false;
    SLUICE_RETURN_IF_ERROR(read_exact(fd, payload.data() + have, step, &mid_eof));
    if (mid_eof) return Status::io_error("connection closed in the middle of a message");
  }
  return Status::ok();
}

void set_recv_timeout(int fd, std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

/// Every data-plane connection: no Nagle delay, and a dead or unreachable
/// peer is noticed within ~2 s while data flows (TCP_USER_TIMEOUT: sent
/// data unacknowledged that long) and ~3 s when nothing flows (keepalive
/// probes) — so that a network partition between taskmanagers fails the
/// attempt (which restarts elsewhere, with rows again within 5 s) instead
/// of hanging it. Reaching 2 s takes a segment and its three retransmissions
/// (RTO 200, 400, 800 ms) all lost, which a lossy but working link (5 %
/// loss: 6e-6 per segment) practically never does.
/// A slow, stalled or frozen peer is not affected: its kernel keeps
/// acknowledging (zero-window probes too).
void configure_socket(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int idle = 1, interval = 1, count = 2;
  unsigned int user_timeout_ms = 2000;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
}

bool set_nonblocking(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFL, 0);
  if (flags < 0) return false;
  flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  return ::fcntl(fd, F_SETFL, flags) == 0;
}

/// "host:port" or "[v6]:port".
Result<std::pair<std::string, std::string>> split_address(const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return Status::invalid_argument("data address '" + address + "' is not host:port");
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return std::make_pair(host, address.substr(colon + 1));
}

std::string numeric_host(const sockaddr* sa, socklen_t len) {
  char host[NI_MAXHOST];
  if (::getnameinfo(sa, len, host, sizeof host, nullptr, 0, NI_NUMERICHOST) != 0) return "?";
  return host;
}

frames::WireHello to_wire(const DataPlane::Hello& h) {
  return {h.job_id, h.attempt, h.key.edge, h.key.producer, h.key.consumer, h.sender_port, h.nonce, h.mac};
}
std::string hello_fields(const DataPlane::Hello& h) { return frames::hello_fields(to_wire(h)); }

/// What the producer's mac covers: both nonces and every field of its hello.
std::string hello_mac(const std::string& key, const std::string& server_nonce, const DataPlane::Hello& h) {
  return auth::hmac_sha256(key, "hello|" + server_nonce + h.nonce + hello_fields(h));
}
std::string accept_mac(const std::string& key, const std::string& server_nonce, const std::string& client_nonce) {
  return auth::hmac_sha256(key, "accept|" + server_nonce + client_nonce);
}

/// Decodes every frame of a buffer: collects its barriers and whether it
/// holds the end of partition. Corruption if a frame does not decode.
Status scan_frames(std::string_view data, std::vector<Barrier>* barriers, bool* end_of_partition) {
  size_t pos = 0;
  frames::Frame f;
  *end_of_partition = false;
  while (pos < data.size()) {
    size_t at = pos;
    if (!frames::next(data, pos, f)) {
      return Status::corruption("undecodable frame at offset " + std::to_string(at));
    }
    if (f.kind == FrameKind::kBarrier && barriers) barriers->push_back(f.barrier);
    if (f.kind == FrameKind::kEndOfPartition) *end_of_partition = true;
  }
  return Status::ok();
}

}  // namespace

std::string DataPlane::encode_hello(const Hello& h) { return frames::encode_hello(to_wire(h)); }

Result<DataPlane::Hello> DataPlane::decode_hello(std::string_view p) {
  frames::WireHello w;
  std::string error;
  if (!frames::decode_hello(p, w, error)) return Status::corruption(error);
  Hello h;
  h.job_id = std::move(w.job_id);
  h.attempt = w.attempt;
  h.key = ChannelKey{w.edge, w.producer, w.consumer};
  h.sender_port = w.sender_port;
  h.nonce = std::move(w.nonce);
  h.mac = std::move(w.mac);
  return h;
}

// --- Slot: the inbound channel of one key --------------------------------------

/// The consumer end of one remote channel. Created by whichever comes first:
/// the consuming task (inbound()) or the producer's connection (admit()).
/// The Channel itself exists once the task asked, because only the task
/// knows its capacity; until then the connection grants no credit, so no
/// data can arrive. Shared by the plane's map and the connection.
struct DataPlane::Slot {
  explicit Slot(std::string n) : name(std::move(n)) {}

  /// The task's side: creates the channel (failed already if the connection
  /// broke before) and lets the connection start granting credit.
  std::shared_ptr<Channel> bind(size_t capacity) {
    std::shared_ptr<detail::Wake> wake;
    std::shared_ptr<Channel> ch;
    {
      std::lock_guard lk(mu);
      if (!channel) {
        channel = std::make_shared<Channel>(name, capacity);
        if (!failure.empty()) channel->fail(failure);
        else if (closed) channel->close();
        if (observer) channel->set_observer(observer);
      }
      wake = observer;
      ch = channel;
    }
    if (wake) wake->signal.notify();
    return ch;
  }
  /// The connection's side; false if another connection already had it.
  bool attach(std::shared_ptr<detail::Wake> wake) {
    std::lock_guard lk(mu);
    if (connected) return false;
    connected = true;
    observer = wake;
    if (channel) channel->set_observer(wake);
    return true;
  }
  std::shared_ptr<Channel> get() {
    std::lock_guard lk(mu);
    return channel;
  }
  void fail(const std::string& why) {
    std::lock_guard lk(mu);
    if (channel) channel->fail(why);
    else if (failure.empty()) failure = why;
  }
  void close() {
    std::lock_guard lk(mu);
    closed = true;
    if (channel) {
      channel->set_observer(nullptr);
      channel->close();
    }
  }

  const std::string name;
  std::mutex mu;  // guards the fields below
  std::shared_ptr<Channel> channel;  // null until the consuming task asks
  std::string failure;               // the connection broke before that
  bool closed = false;
  bool connected = false;
  std::shared_ptr<detail::Wake> observer;  // the connection's credit thread
};

// --- Receiver: one accepted connection -----------------------------------------

/// One accepted connection, the consumer side of one remote channel.
/// Threads: `thread_` reads the hello, binds the slot, then reads kData
/// messages and pushes them into the inbound Channel; `credits_` (started
/// after the handshake) grants credit whenever the Channel has room not yet
/// promised. Owned (shared) by the plane, which stops and joins it.
class DataPlane::Receiver {
 public:
  Receiver(DataPlane& plane, int fd, std::string remote_ip)
      : plane_(plane), fd_(fd), remote_ip_(std::move(remote_ip)), peer_(remote_ip_),
        wake_(std::make_shared<detail::Wake>()) {}
  ~Receiver() { ::close(fd_); }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  void start() { thread_ = std::thread([this] { run(); }); }
  /// Called once, by whoever took the receiver out of the plane's list.
  void stop_and_join() {
    stop_.store(true);
    ::shutdown(fd_, SHUT_RDWR);
    wake_->signal.notify();
    if (thread_.joinable()) thread_.join();
  }
  bool done() const { return done_.load(); }
  const std::shared_ptr<detail::Wake>& wake() const { return wake_; }

  // Set by DataPlane::admit under the plane's mutex.
  bool admitted = false;
  std::string job_id;
  int attempt = 0;

 private:
  void run() {
    Status st = handshake();
    plane_.pending_handshakes_.fetch_sub(1);
    if (st.is_ok()) {
      credits_ = std::thread([this] { grant_credits(); });
      st = read_loop();
      const bool stopping = stop_.load();
      if (!eop_seen_.load() && !stopping) {
        std::string why = "connection from producer " + peer_ + " lost before end of partition: " +
                          (st.is_ok() ? std::string("closed by the peer") : st.message());
        spdlog::warn("data plane: channel {} of job {} attempt {}: {}", slot_->name, job_id, attempt,
                     why);
        slot_->fail(why);
      } else if (!st.is_ok() && !stopping) {
        spdlog::warn("data plane: dropping connection from {} after end of partition: {}", peer_,
                     st.to_string());
      }
      stop_.store(true);
      wake_->signal.notify();
      ::shutdown(fd_, SHUT_RDWR);
      credits_.join();
    } else {
      if (slot_) slot_->fail("connection from producer " + peer_ + " lost during handshake: " +
                             st.message());
      if (!stop_.load()) {
        spdlog::warn("data plane: dropped connection from {}: {}", peer_, st.to_string());
      }
    }
    // FIN (never RST): the producer waits for it after its last buffer.
    ::shutdown(fd_, SHUT_RDWR);
    done_.store(true);
  }

  Status handshake() {
    set_recv_timeout(fd_, kHandshakeTimeout);
    const std::string server_nonce = auth::random_bytes(kNonceBytes);
    SLUICE_RETURN_IF_ERROR(send_message(fd_, MsgType::kChallenge, server_nonce));
    MsgType type;
    std::string payload;
    bool eof = false;
    SLUICE_RETURN_IF_ERROR(read_message(fd_, kMaxControlBytes, type, payload, &eof));
    if (eof) return Status::unavailable("closed before the handshake");
    if (type != MsgType::kHello) return Status::corruption("expected a hello");
    SLUICE_ASSIGN_OR_RETURN(Hello hello, decode_hello(payload));
    const std::string key = auth::derive_attempt_key(plane_.secret_, hello.job_id, hello.attempt);
    if (!auth::constant_time_equal(hello_mac(key, server_nonce, hello), hello.mac)) {
      (void)send_message(fd_, MsgType::kRefuse, "not authenticated (wrong cluster secret?)");
      return Status::permission_denied("refused a hello for job " + hello.job_id.substr(0, 64) + " attempt " +
                                       std::to_string(hello.attempt) +
                                       " that does not prove the cluster secret");
    }
    peer_ = remote_ip_ + ":" + std::to_string(hello.sender_port);
    auto slot = plane_.admit(hello, this);
    if (!slot.is_ok()) {
      (void)send_message(fd_, MsgType::kRefuse, slot.status().message());
      return slot.status().with_context("refused " + key_name(hello.key) + " of job " +
                                        hello.job_id);
    }
    slot_ = *slot;
    SLUICE_RETURN_IF_ERROR(send_message(fd_, MsgType::kAccept, accept_mac(key, server_nonce, hello.nonce)));
    set_recv_timeout(fd_, 0ms);
    spdlog::debug("data plane: accepted {} of job {} attempt {} from {}", slot_->name, job_id,
                  attempt, peer_);
    return Status::ok();
  }

  Status read_loop() {
    MsgType type;
    std::string payload;
    std::vector<Barrier> barriers;
    while (true) {
      bool eof = false;
      SLUICE_RETURN_IF_ERROR(read_message(fd_, kMaxMessageBytes, type, payload, &eof));
      if (eof) return Status::ok();
      if (type != MsgType::kData) {
        return Status::corruption("unexpected message type " + std::to_string(static_cast<int>(type)));
      }
      if (eop_seen_.load()) return Status::corruption("data after the end of partition");
      barriers.clear();
      bool eop = false;
      SLUICE_RETURN_IF_ERROR(scan_frames(payload, &barriers, &eop));
      std::shared_ptr<Channel> ch = slot_->get();
      {
        std::lock_guard lk(mu_);
        if (outstanding_ <= 0 || !ch) return Status::corruption("data without credit");
        // Never blocks: the credit promised this much room.
        ch->push_unbounded(Buffer{std::move(payload)});
        --outstanding_;
      }
      payload = std::string();
      for (const auto& b : barriers) ch->announce_barrier(b);
      if (eop) eop_seen_.store(true);
    }
  }

  void grant_credits() {
    while (!stop_.load()) {
      std::shared_ptr<Channel> ch = eop_seen_.load() ? nullptr : slot_->get();
      if (ch && !ch->closed()) {
        int64_t n;
        {
          std::lock_guard lk(mu_);
          n = static_cast<int64_t>(ch->capacity()) - static_cast<int64_t>(ch->size()) - outstanding_;
          if (n > 0) outstanding_ += n;
        }
        if (n > 0) {
          std::string p;
          put_u32(p, static_cast<uint32_t>(n));
          Status st = send_message(fd_, MsgType::kCredit, p);
          if (!st.is_ok()) {
            if (!stop_.load()) spdlog::debug("data plane: credit to {} failed: {}", peer_, st.to_string());
            ::shutdown(fd_, SHUT_RDWR);  // the read loop ends too
            return;
          }
        }
      }
      // Woken by pops, by the task binding the channel, and by stop.
      wake_->signal.wait_until(std::chrono::steady_clock::now() + 200ms);
    }
  }

  DataPlane& plane_;
  const int fd_;
  const std::string remote_ip_;
  std::string peer_;  // "ip:data-port" of the producer once the hello names it
  const std::shared_ptr<detail::Wake> wake_;
  std::shared_ptr<Slot> slot_;  // set by the handshake, before credits_ starts
  std::mutex mu_;               // guards outstanding_ together with the push
  int64_t outstanding_ = 0;     // credit granted and not yet used
  std::atomic<bool> stop_{false};
  std::atomic<bool> eop_seen_{false};
  std::atomic<bool> done_{false};
  std::thread thread_;
  std::thread credits_;
};

// --- Sender: one outbound channel -----------------------------------------------

/// The producer side of one remote channel. Threads: `thread_` connects
/// (retrying with backoff), handshakes, then pops the outbound Channel and
/// writes one kData per buffer while it has credit; `credits_` reads the
/// consumer's kCredit messages. After the end-of-partition buffer it half-
/// closes and waits for the consumer's FIN. Owned (shared) by the plane.
class DataPlane::Sender {
 public:
  Sender(Hello hello, std::string key, std::string peer, std::shared_ptr<Channel> channel)
      : hello_(std::move(hello)), key_(std::move(key)), peer_(std::move(peer)), channel_(std::move(channel)),
        wake_(std::make_shared<detail::Wake>()) {
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
      if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
    }
    cv_.notify_all();
    wake_->signal.notify();
    channel_->set_observer(nullptr);
    channel_->close();
    if (thread_.joinable()) thread_.join();
  }

 private:
  bool stopping() const { return stop_.load(); }
  void fail(const std::string& why) {
    spdlog::warn("data plane: channel {} of job {} attempt {}: {}", channel_->name(), hello_.job_id,
                 hello_.attempt, why);
    channel_->fail(why);
  }

  void run() {
    Result<int> fd = connect_with_backoff();
    if (!fd.is_ok()) {
      if (!stopping()) fail(fd.status().message());
      return;
    }
    credits_ = std::thread([this, f = *fd] { read_credits(f); });
    Status st = send_loop(*fd);
    if (!st.is_ok() && !stopping()) fail("sending to consumer at " + peer_ + " failed: " + st.message());
    // After the last buffer: FIN, then wait for the consumer's FIN (read by
    // credits_), so that closing never resets a connection with data in it.
    ::shutdown(*fd, st.is_ok() && eop_sent_.load() ? SHUT_WR : SHUT_RDWR);
    credits_.join();
    std::lock_guard lk(mu_);
    ::close(fd_);
    fd_ = -1;
  }

  Result<int> connect_with_backoff() {
    SLUICE_ASSIGN_OR_RETURN(auto hp, split_address(peer_));
    auto backoff = std::chrono::duration_cast<std::chrono::milliseconds>(kInitialBackoff);
    int failures = 0;
    while (!stopping()) {
      Result<int> fd = connect_once(hp.first, hp.second);
      Status st = fd.status();
      if (fd.is_ok()) {
        {
          std::lock_guard lk(mu_);
          if (stop_.load()) {
            ::close(*fd);
            break;
          }
          fd_ = *fd;
        }
        st = handshake(*fd);
        if (st.is_ok()) return *fd;
        std::lock_guard lk(mu_);
        ::close(fd_);
        fd_ = -1;
        if (st.code() == StatusCode::kPermissionDenied) return st;  // refused: final
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

  Status handshake(int fd) {
    set_recv_timeout(fd, kHandshakeTimeout);
    MsgType type;
    std::string payload;
    bool eof = false;
    SLUICE_RETURN_IF_ERROR(read_message(fd, kMaxControlBytes, type, payload, &eof));
    if (eof) return Status::unavailable("consumer at " + peer_ + " closed before the handshake");
    if (type != MsgType::kChallenge || payload.size() != kNonceBytes) {
      return Status::corruption("consumer at " + peer_ + " sent no challenge (an older or foreign peer?)");
    }
    const std::string server_nonce = payload;
    Hello hello = hello_;
    hello.nonce = auth::random_bytes(kNonceBytes);
    hello.mac = hello_mac(key_, server_nonce, hello);
    SLUICE_RETURN_IF_ERROR(send_message(fd, MsgType::kHello, DataPlane::encode_hello(hello)));
    SLUICE_RETURN_IF_ERROR(read_message(fd, kMaxControlBytes, type, payload, &eof));
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
    set_recv_timeout(fd, 0ms);
    return Status::ok();
  }

  Status send_loop(int fd) {
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
          SLUICE_RETURN_IF_ERROR(send_message(fd, MsgType::kData, b.data));
          if (eop) return Status::ok();
          continue;
        }
      }
      // Woken by a push into the empty channel, by credit, and by stop.
      wake_->signal.wait_until(std::chrono::steady_clock::now() + 100ms);
    }
    return Status::ok();
  }

  void read_credits(int fd) {
    MsgType type;
    std::string payload;
    while (true) {
      bool eof = false;
      Status st = read_message(fd, kMaxControlBytes, type, payload, &eof);
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
      ::shutdown(fd, SHUT_RDWR);  // unblocks a write in progress
      wake_->signal.notify();
      return;
    }
  }

  const Hello hello_;
  const std::string key_;  // the attempt's data-plane key
  const std::string peer_;
  const std::shared_ptr<Channel> channel_;
  const std::shared_ptr<detail::Wake> wake_;
  std::mutex mu_;  // guards fd_ (closed only under it, so stop never hits a reused fd)
  std::condition_variable cv_;  // backoff waits
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<bool> eop_sent_{false};
  std::atomic<bool> peer_gone_{false};
  std::atomic<int64_t> credit_{0};
  std::thread thread_;
  std::thread credits_;
};

// --- DataPlane ----------------------------------------------------------------------

Result<std::unique_ptr<DataPlane>> DataPlane::start(const std::string& bind_host, int port,
                                                    DataPlaneOptions options) {
  if (options.secret.empty()) options.secret = auth::random_bytes(32);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  std::string port_s = std::to_string(port);
  int rc = ::getaddrinfo(bind_host.empty() ? nullptr : bind_host.c_str(), port_s.c_str(), &hints, &res);
  if (rc != 0) return Status::invalid_argument("data plane: resolve " + bind_host + ": " + ::gai_strerror(rc));
  Status last = Status::unavailable("data plane: no address for " + bind_host);
  int fd = -1;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last = Status::from_errno("data plane: socket", errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) break;
    last = Status::from_errno("data plane: bind " + bind_host + ":" + port_s, errno);
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0) return last;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    Status st = Status::from_errno("data plane: getsockname", errno);
    ::close(fd);
    return st;
  }
  int bound = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                       : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) {
    Status st = Status::from_errno("data plane: pipe", errno);
    ::close(fd);
    return st;
  }
  for (int p : pipe_fds) ::fcntl(p, F_SETFD, FD_CLOEXEC);
  std::unique_ptr<DataPlane> plane(new DataPlane(fd, bound, pipe_fds[0], pipe_fds[1], std::move(options.secret)));
  plane->accept_thread_ = std::thread([p = plane.get()] { p->accept_loop(); });
  spdlog::info("data plane listening on {}:{}", bind_host, bound);
  return plane;
}

DataPlane::DataPlane(int listen_fd, int port, int wake_read, int wake_write, std::string secret)
    : listen_fd_(listen_fd), port_(port), wake_read_(wake_read), wake_write_(wake_write),
      secret_(std::move(secret)) {}

DataPlane::~DataPlane() {
  stopping_.store(true);
  char x = 1;
  (void)!::write(wake_write_, &x, 1);
  if (accept_thread_.joinable()) accept_thread_.join();
  std::vector<std::shared_ptr<Slot>> slots;
  std::vector<std::shared_ptr<Sender>> senders;
  std::vector<std::shared_ptr<Receiver>> receivers;
  {
    std::lock_guard lk(mu_);
    for (auto& [k, s] : slots_) slots.push_back(s);
    for (auto& [k, s] : senders_) senders.push_back(s);
    receivers.swap(receivers_);
    slots_.clear();
    senders_.clear();
  }
  for (auto& r : receivers) r->stop_and_join();
  for (auto& s : slots) s->close();
  for (auto& s : senders) s->stop_and_join();
  ::close(listen_fd_);
  ::close(wake_read_);
  ::close(wake_write_);
}

void DataPlane::accept_loop() {
  while (!stopping_.load()) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
    int n = ::poll(fds, 2, 1000);
    if (stopping_.load()) break;
    reap_receivers();
    if (n < 0) {
      if (errno != EINTR) {
        spdlog::error("data plane: poll: {}", std::strerror(errno));
        std::this_thread::sleep_for(100ms);
      }
      continue;
    }
    if (!(fds[0].revents & POLLIN)) continue;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
        spdlog::warn("data plane: accept: {}", std::strerror(errno));
        std::this_thread::sleep_for(50ms);  // e.g. out of file descriptors
      }
      continue;
    }
    if (pending_handshakes_.load() >= kMaxPendingHandshakes) {
      // A flood of connections that do not complete their handshake.
      spdlog::warn("data plane: {} handshakes pending; dropping a connection from {}", kMaxPendingHandshakes,
                   numeric_host(reinterpret_cast<sockaddr*>(&ss), len));
      ::close(fd);
      continue;
    }
    pending_handshakes_.fetch_add(1);
    configure_socket(fd);
    auto r = std::make_shared<Receiver>(*this, fd, numeric_host(reinterpret_cast<sockaddr*>(&ss), len));
    {
      // Started under the lock: release() and the destructor may only see
      // it with its thread_ set (its thread needs mu_ to be admitted).
      std::lock_guard lk(mu_);
      receivers_.push_back(r);
      r->start();
    }
  }
}

// Joins receivers whose connection ended on its own (end of partition,
// error, refused). Accept thread only.
void DataPlane::reap_receivers() {
  std::vector<std::shared_ptr<Receiver>> done;
  {
    std::lock_guard lk(mu_);
    auto it = std::stable_partition(receivers_.begin(), receivers_.end(),
                                    [](const auto& r) { return !r->done(); });
    done.assign(std::make_move_iterator(it), std::make_move_iterator(receivers_.end()));
    receivers_.erase(it, receivers_.end());
  }
  for (auto& r : done) r->stop_and_join();
}

std::string DataPlane::refusal(const std::string& job_id, int attempt, bool stale_too) const {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return "";
  const JobAttempts& j = it->second;
  if (attempt <= j.released_through || j.released.count(attempt)) {
    return "attempt " + std::to_string(attempt) + " of job " + job_id + " was released";
  }
  if (stale_too && attempt < j.newest) {
    return "attempt " + std::to_string(attempt) + " of job " + job_id + " is stale (attempt " +
           std::to_string(j.newest) + " is running)";
  }
  return "";
}

void DataPlane::note_attempt(const std::string& job_id, int attempt) {
  auto& j = jobs_[job_id];
  j.newest = std::max(j.newest, attempt);
}

Result<std::shared_ptr<DataPlane::Slot>> DataPlane::admit(const Hello& hello, Receiver* r) {
  std::lock_guard lk(mu_);
  if (stopping_.load()) return Status::unavailable("data plane is stopping");
  std::string why = refusal(hello.job_id, hello.attempt, /*stale_too=*/true);
  if (!why.empty()) return Status::permission_denied(why);
  note_attempt(hello.job_id, hello.attempt);
  auto& slot = slots_[SlotKey{hello.job_id, hello.attempt, hello.key}];
  if (!slot) slot = std::make_shared<Slot>(key_name(hello.key));
  if (!slot->attach(r->wake())) {
    return Status::failed_precondition("channel " + slot->name + " already has a connection");
  }
  r->admitted = true;
  r->job_id = hello.job_id;
  r->attempt = hello.attempt;
  return slot;
}

std::shared_ptr<Channel> DataPlane::inbound(const std::string& job_id, int attempt,
                                            const ChannelKey& key, size_t capacity) {
  std::shared_ptr<Slot> slot;
  {
    std::lock_guard lk(mu_);
    std::string why = refusal(job_id, attempt, /*stale_too=*/false);
    if (!why.empty()) return broken_channel(key, capacity, why);
    note_attempt(job_id, attempt);
    auto& s = slots_[SlotKey{job_id, attempt, key}];
    if (!s) s = std::make_shared<Slot>(key_name(key));
    slot = s;
  }
  return slot->bind(capacity);
}

std::shared_ptr<Channel> DataPlane::outbound(const std::string& peer_address, const std::string& job_id,
                                             int attempt, const ChannelKey& key, size_t capacity) {
  if (job_id.empty() || job_id.size() > kMaxControlBytes / 2) {
    return broken_channel(key, capacity, "job id of " + std::to_string(job_id.size()) +
                                             " bytes cannot go over the data plane");
  }
  std::lock_guard lk(mu_);
  std::string why = refusal(job_id, attempt, /*stale_too=*/false);
  if (!why.empty()) return broken_channel(key, capacity, why);
  if (stopping_.load()) return broken_channel(key, capacity, "data plane is stopping");
  note_attempt(job_id, attempt);
  auto& s = senders_[SlotKey{job_id, attempt, key}];
  if (!s) {
    s = std::make_shared<Sender>(Hello{job_id, attempt, key, port_, {}, {}},
                                 auth::derive_attempt_key(secret_, job_id, attempt), peer_address,
                                 std::make_shared<Channel>(key_name(key), capacity));
    s->start();
  }
  return s->channel();
}

void DataPlane::release(const std::string& job_id, int attempt) {
  std::vector<std::shared_ptr<Slot>> slots;
  std::vector<std::shared_ptr<Sender>> senders;
  std::vector<std::shared_ptr<Receiver>> receivers;
  {
    std::lock_guard lk(mu_);
    JobAttempts& j = jobs_[job_id];
    if (attempt < 0) {
      int top = std::max(j.newest, j.released.empty() ? -1 : *j.released.rbegin());
      j.released_through = std::max(j.released_through, top);
    } else {
      j.released.insert(attempt);
    }
    auto matches = [&](const std::string& job, int a) {
      return job == job_id && (attempt < 0 || a == attempt);
    };
    for (auto it = slots_.begin(); it != slots_.end();) {
      if (matches(it->first.job_id, it->first.attempt)) {
        slots.push_back(std::move(it->second));
        it = slots_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = senders_.begin(); it != senders_.end();) {
      if (matches(it->first.job_id, it->first.attempt)) {
        senders.push_back(std::move(it->second));
        it = senders_.erase(it);
      } else {
        ++it;
      }
    }
    auto it = std::stable_partition(receivers_.begin(), receivers_.end(), [&](const auto& r) {
      return !(r->admitted && matches(r->job_id, r->attempt));
    });
    receivers.assign(std::make_move_iterator(it), std::make_move_iterator(receivers_.end()));
    receivers_.erase(it, receivers_.end());
  }
  // Outside the lock: the threads being joined may need it (admit).
  for (auto& r : receivers) r->stop_and_join();
  for (auto& s : slots) s->close();
  for (auto& s : senders) s->stop_and_join();
}

size_t DataPlane::num_inbound() const {
  std::lock_guard lk(mu_);
  return slots_.size();
}

size_t DataPlane::num_outbound() const {
  std::lock_guard lk(mu_);
  return senders_.size();
}

// --- NetworkChannelProvider ---------------------------------------------------------

NetworkChannelProvider::NetworkChannelProvider(
    std::string job_id, int attempt, size_t capacity, DataPlane& plane,
    std::shared_ptr<const proto::JobGraph> graph,
    std::function<std::string(int vertex, int subtask)> remote_of)
    : job_id_(std::move(job_id)), attempt_(attempt), capacity_(capacity), plane_(plane),
      graph_(std::move(graph)), remote_of_(std::move(remote_of)) {}

namespace {
const proto::JobEdge* find_edge(const proto::JobGraph& g, int id) {
  for (const auto& e : g.edges())
    if (e.id() == id) return &e;
  return nullptr;
}
}  // namespace

std::shared_ptr<Channel> NetworkChannelProvider::output_channel(const ChannelKey& key) {
  const proto::JobEdge* e = find_edge(*graph_, key.edge);
  if (!e) return broken_channel(key, capacity_, "no edge " + std::to_string(key.edge) + " in the job graph");
  std::string remote = remote_of_(e->target_vertex(), key.consumer);
  if (remote.empty()) return local(key);
  return plane_.outbound(remote, job_id_, attempt_, key, capacity_);
}

std::shared_ptr<Channel> NetworkChannelProvider::input_channel(const ChannelKey& key) {
  const proto::JobEdge* e = find_edge(*graph_, key.edge);
  if (!e) return broken_channel(key, capacity_, "no edge " + std::to_string(key.edge) + " in the job graph");
  std::string remote = remote_of_(e->source_vertex(), key.producer);
  if (remote.empty()) return local(key);
  return plane_.inbound(job_id_, attempt_, key, capacity_);
}

std::shared_ptr<Channel> NetworkChannelProvider::local(const ChannelKey& key) {
  std::lock_guard lk(mu_);
  auto& c = local_[key];
  if (!c) c = std::make_shared<Channel>(key_name(key), capacity_);
  return c;
}

void NetworkChannelProvider::close_all() {
  {
    std::lock_guard lk(mu_);
    for (auto& [k, c] : local_) c->close();
  }
  plane_.release(job_id_, attempt_);
}

}  // namespace sluice::runtime
