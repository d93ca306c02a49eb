// DelayProxy: a TCP proxy on a loopback port in front of a real service
// (the scorer, or anything else), for tests of slowness and outages
// without a "be slow" switch in the service itself. Protocol-blind: works
// for gRPC (HTTP/2) and HTTP/1.1 alike.
//
//   auto proxy = DelayProxy::start("127.0.0.1:" + std::to_string(scorer_port));
//   (*proxy)->set_delay(300ms);   // every chunk waits 300 ms each way: a slow scorer
//   (*proxy)->set_down(true);     // connections reset, new ones closed at once: an outage
//   client endpoint: "grpc://" + (*proxy)->address()
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/common/status.h"

namespace sluice::scorer_test {

/// Owns a listening socket, an accept thread and two pump threads per
/// connection; destruction closes everything and joins. Setters are
/// thread-safe and apply to chunks read after the call.
class DelayProxy {
 public:
  static Result<std::unique_ptr<DelayProxy>> start(const std::string& upstream);
  ~DelayProxy();
  DelayProxy(const DelayProxy&) = delete;
  DelayProxy& operator=(const DelayProxy&) = delete;

  void set_delay(std::chrono::milliseconds d) { delay_ms_ = d.count(); }
  /// Down: open connections are reset and new ones closed right after accept.
  void set_down(bool down);
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  uint64_t connections() const { return connections_.load(); }

 private:
  struct Conn {
    int client = -1, upstream = -1;
    std::thread a, b;
  };
  DelayProxy() = default;
  void accept_loop();
  void pump(int from, int to);
  void reset_all();

  std::string host_;
  int upstream_port_ = 0;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false}, down_{false};
  std::atomic<int64_t> delay_ms_{0};
  std::atomic<uint64_t> connections_{0};
  std::mutex mu_;  // guards conns_
  std::vector<std::unique_ptr<Conn>> conns_;
  std::thread acceptor_;
};

}  // namespace sluice::scorer_test
