// DevBroker's sockets: the mock brokers' connections must have Nagle off, or
// a response written while the client has not acknowledged the previous one
// waits for the client's delayed ACK (bench/README.md, "Sixth pass").
#include "connectors/kafka/dev_broker.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace sluice::kafka {
namespace {

struct BrokerSocket {
  int fd = -1;
  bool listening = false;
};

/// This process's IPv4 TCP sockets bound to 127.0.0.1:`port` (the mock runs in-process).
std::vector<BrokerSocket> sockets_on_port(int port) {
  std::vector<BrokerSocket> out;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return out;
  while (dirent* e = readdir(dir)) {
    int fd = std::atoi(e->d_name);
    if (fd <= 2 || fd == dirfd(dir)) continue;
    sockaddr_in a{};
    socklen_t len = sizeof a;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0 || a.sin_family != AF_INET) continue;
    if (ntohs(a.sin_port) != port) continue;
    int listening = 0;
    socklen_t ll = sizeof listening;
    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ll);
    out.push_back({fd, listening != 0});
  }
  closedir(dir);
  return out;
}

int nodelay(int fd) {
  int v = -1;
  socklen_t len = sizeof v;
  if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) != 0) return -1;
  return v;
}

TEST(DevBroker, ListenersAndAcceptedConnectionsHaveNagleOff) {
  DevBrokerOptions o;
  o.topics.push_back({"t", 1});
  auto broker = DevBroker::start(o);
  ASSERT_TRUE(broker.is_ok()) << broker.status().message();
  const std::string& bs = (*broker)->bootstrap();
  int port = std::atoi(bs.substr(bs.rfind(':') + 1).c_str());
  ASSERT_GT(port, 0) << bs;

  int client = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(client, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);

  // The mock's thread accepts asynchronously.
  int listeners = 0, accepted = 0;
  for (int i = 0; i < 200 && accepted == 0; ++i) {
    listeners = accepted = 0;
    for (const auto& s : sockets_on_port(port)) {
      EXPECT_EQ(nodelay(s.fd), 1) << (s.listening ? "listening" : "accepted") << " socket " << s.fd;
      (s.listening ? listeners : accepted)++;
    }
    if (accepted == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(listeners, 1);
  EXPECT_EQ(accepted, 1);
  close(client);
}

}  // namespace
}  // namespace sluice::kafka
