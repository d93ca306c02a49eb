#include "tests/scorer/support/delay_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "engine/common/http_server.h"

namespace sluice::scorer_test {

namespace {

int connect_to(const std::string& host, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, host.c_str(), &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

}  // namespace

Result<std::unique_ptr<DelayProxy>> DelayProxy::start(const std::string& upstream) {
  std::unique_ptr<DelayProxy> p(new DelayProxy());
  if (!split_host_port(upstream, p->host_, p->upstream_port_)) {
    return Status::invalid_argument("delay proxy: '" + upstream + "' is not host:port");
  }
  p->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (p->listen_fd_ < 0 || ::bind(p->listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(p->listen_fd_, 64) != 0 || ::getsockname(p->listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    return Status::from_errno("delay proxy: listen", errno);
  }
  p->port_ = ntohs(a.sin_port);
  p->acceptor_ = std::thread([raw = p.get()] { raw->accept_loop(); });
  return p;
}

DelayProxy::~DelayProxy() {
  stop_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  reset_all();
  std::lock_guard lk(mu_);
  for (auto& c : conns_) {
    if (c->a.joinable()) c->a.join();
    if (c->b.joinable()) c->b.join();
    ::close(c->client);
    ::close(c->upstream);
  }
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void DelayProxy::set_down(bool down) {
  down_ = down;
  if (down) reset_all();
}

void DelayProxy::reset_all() {
  std::lock_guard lk(mu_);
  for (auto& c : conns_) {
    ::shutdown(c->client, SHUT_RDWR);
    ::shutdown(c->upstream, SHUT_RDWR);
  }
}

void DelayProxy::accept_loop() {
  while (!stop_) {
    pollfd pfd{listen_fd_, POLLIN, 0};
    if (::poll(&pfd, 1, 50) <= 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    int up = down_ ? -1 : connect_to(host_, upstream_port_);
    if (up < 0) {
      ::close(fd);  // down, or the service behind is: the client sees a closed connection
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ++connections_;
    auto c = std::make_unique<Conn>();
    c->client = fd;
    c->upstream = up;
    c->a = std::thread([this, fd, up] { pump(fd, up); });
    c->b = std::thread([this, fd, up] { pump(up, fd); });
    std::lock_guard lk(mu_);
    conns_.push_back(std::move(c));
  }
}

void DelayProxy::pump(int from, int to) {
  char buf[16384];
  while (!stop_) {
    pollfd pfd{from, POLLIN, 0};
    int r = ::poll(&pfd, 1, 50);
    if (r == 0) continue;
    if (r < 0) break;
    ssize_t n = ::read(from, buf, sizeof buf);
    if (n <= 0) break;
    const int64_t d = delay_ms_.load();
    if (d > 0) std::this_thread::sleep_for(std::chrono::milliseconds(d));
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::send(to, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
      if (w <= 0) return (void)::shutdown(from, SHUT_RDWR);
      off += w;
    }
  }
  ::shutdown(to, SHUT_RDWR);  // the other direction ends too
}

}  // namespace sluice::scorer_test
