// Probes of the cluster's doors for the security tests: the taskmanagers
// as the jobmanager lists them, a process's RSS, and a raw TCP connection
// that speaks the data plane's message framing (or does not).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/cluster/cluster_harness.h"

namespace sluice::it {

/// A taskmanager as GET /taskmanagers lists it.
struct TmInfo {
  std::string id, control, data;
};

inline std::vector<TmInfo> taskmanagers_of(Cluster& c) {
  std::vector<TmInfo> out;
  auto r = c.http_get("/taskmanagers");
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  if (p.parse(r.out).get(doc) != simdjson::SUCCESS) return out;
  for (auto t : doc.get_array()) {
    std::string_view id, control, data;
    if (t["id"].get(id) || t["control_address"].get(control) || t["data_address"].get(data)) continue;
    out.push_back({std::string(id), std::string(control), std::string(data)});
  }
  return out;
}

inline int64_t rss_kb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  return -1;
}

/// A TCP connection to a loopback port (blocking, with a receive timeout).
class Conn {
 public:
  explicit Conn(const std::string& address) {
    auto colon = address.rfind(':');
    int port = std::stoi(address.substr(colon + 1));
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    timeval tv{8, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Conn() { ::close(fd_); }
  bool connected() const { return connected_; }
  bool send(std::string_view b) { return ::send(fd_, b.data(), b.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(b.size()); }
  /// One data-plane message: type and payload; type -1 at EOF, -2 on a timeout.
  std::pair<int, std::string> read_message() {
    char head[5];
    if (!read_exact(head, 5)) return {eof_ ? -1 : -2, ""};
    uint32_t len = 0;
    std::memcpy(&len, head + 1, 4);
    if (len > 1 << 20) return {-3, ""};
    std::string p(len, '\0');
    if (len && !read_exact(p.data(), len)) return {eof_ ? -1 : -2, ""};
    return {static_cast<uint8_t>(head[0]), p};
  }
  /// True if the peer closed the connection (within the receive timeout).
  bool closed_by_peer() {
    char b[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, b, sizeof b, 0);
      if (n == 0) return true;
      if (n < 0) return false;
    }
  }

 private:
  bool read_exact(char* p, size_t n) {
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::recv(fd_, p + got, n - got, 0);
      if (r == 0) eof_ = true;
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  }
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
};

/// One data-plane message: u8 type, u32 length (little-endian), payload.
inline std::string message(uint8_t type, std::string_view payload) {
  std::string m(1, static_cast<char>(type));
  uint32_t len = static_cast<uint32_t>(payload.size());
  m.append(reinterpret_cast<const char*>(&len), 4);
  m += payload;
  return m;
}

}  // namespace sluice::it
