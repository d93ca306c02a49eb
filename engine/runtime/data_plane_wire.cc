#include "engine/runtime/data_plane_wire.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "engine/common/auth.h"

namespace sluice::runtime {

namespace wire {

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

// --- message helpers (over a Connection: plaintext or TLS) -------------------

Status send_message(Connection& conn, MsgType type, std::string_view payload) {
  std::string head;
  head.push_back(static_cast<char>(type));
  put_u32(head, static_cast<uint32_t>(payload.size()));
  return conn.write(head, payload);
}

std::string plain_message(MsgType type, std::string_view payload) {
  std::string m;
  m.push_back(static_cast<char>(type));
  put_u32(m, static_cast<uint32_t>(payload.size()));
  m.append(payload);
  return m;
}

std::string peek_bytes(int fd, size_t n, std::chrono::steady_clock::time_point deadline) {
  std::string buf(n, '\0');
  while (true) {
    ssize_t r = ::recv(fd, buf.data(), n, MSG_PEEK | MSG_DONTWAIT);
    if (r >= static_cast<ssize_t>(n) || r == 0) {  // all there, or the peer closed
      buf.resize(static_cast<size_t>(r));
      return buf;
    }
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return std::string();
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      buf.resize(r > 0 ? static_cast<size_t>(r) : 0);
      return buf;
    }
    if (r > 0) {
      // Part of it is there (poll would return at once): the rest follows.
      std::this_thread::sleep_for(1ms);
      continue;
    }
    pollfd p{fd, POLLIN, 0};
    (void)::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 100)));
  }
}

bool looks_like_tls(std::string_view first) {
  // Content type 22 (handshake), then the record's major version 3.
  return first.size() >= 2 && first[0] == '\x16' && first[1] == '\x03';
}

// Reads exactly n bytes. *eof (if given) is set when the peer closed the
// connection before the first byte; a close in the middle is an error.
Status read_exact(Connection& conn, char* p, size_t n, bool* eof) {
  size_t got = 0;
  if (eof) *eof = false;
  while (got < n) {
    SLUICE_ASSIGN_OR_RETURN(size_t r, conn.read_some(p + got, n - got));
    if (r == 0) {
      if (got == 0 && eof) {
        *eof = true;
        return Status::ok();
      }
      return Status::io_error("connection closed in the middle of a message");
    }
    got += r;
  }
  return Status::ok();
}

// One message; on a clean close at a message boundary sets *eof.
Status read_message(Connection& conn, uint32_t max_bytes, MsgType& type, std::string& payload, bool* eof) {
  char head[kHeaderBytes];
  SLUICE_RETURN_IF_ERROR(read_exact(conn, head, kHeaderBytes, eof));
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
    SLUICE_RETURN_IF_ERROR(read_exact(conn, payload.data() + have, step, &mid_eof));
    if (mid_eof) return Status::io_error("connection closed in the middle of a message");
  }
  return Status::ok();
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


}  // namespace wire

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

}  // namespace sluice::runtime
