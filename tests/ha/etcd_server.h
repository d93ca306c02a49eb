// A real etcd (Debian's etcd-server) for tests: a one-member cluster on
// loopback, on free ports, in a fresh directory; killed and removed when
// the object goes.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

namespace sluice::ha::testing {

class EtcdServer {
 public:
  /// Starts etcd and waits until it answers; nullptr and `error` on failure.
  static std::unique_ptr<EtcdServer> start(std::string* error);
  ~EtcdServer();
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  /// "127.0.0.1:PORT" of the client API.
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(client_port_); }
  /// `etcd://127.0.0.1:PORT/<cluster>`, what --ha and --jobmanager take.
  std::string uri(const std::string& cluster) const { return "etcd://" + endpoint() + "/" + cluster; }
  const std::string& log_path() const { return log_; }

 private:
  EtcdServer() = default;
  std::string dir_, log_;
  int client_port_ = 0, peer_port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace sluice::ha::testing
