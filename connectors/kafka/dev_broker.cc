#include "connectors/kafka/dev_broker.h"

#include <dirent.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>
#include <thread>
#include <vector>

#include "engine/common/config.h"

namespace sluice::kafka {

Result<DevTopic> parse_dev_topic(const std::string& spec) {
  DevTopic t;
  size_t colon = spec.rfind(':');
  t.name = spec.substr(0, colon);
  if (colon != std::string::npos) {
    auto n = parse_int(std::string_view(spec).substr(colon + 1));
    if (!n.is_ok() || *n < 1 || *n > 10'000) {
      return Status::invalid_argument("--topic " + spec + ": partitions must be a number from 1 to 10000");
    }
    t.partitions = static_cast<int>(*n);
  }
  if (t.name.empty()) return Status::invalid_argument("--topic " + spec + ": no topic name");
  return t;
}

namespace {

/// Sets TCP_NODELAY on the mock brokers' listening sockets (found among this
/// process's descriptors by their ports); accepted connections inherit it on
/// Linux. librdkafka 2.0's mock leaves Nagle on: a response written while the
/// client has not yet acknowledged the previous one waits for the client's
/// delayed ACK (~40 ms), which an idempotent producer waiting for that very
/// response never sends sooner. Best effort: nothing else depends on it.
void disable_nagle_on_listeners(const std::string& bootstraps) {
  std::vector<int> ports;
  for (size_t at = 0; at < bootstraps.size();) {
    size_t end = bootstraps.find(',', at);
    if (end == std::string::npos) end = bootstraps.size();
    size_t colon = bootstraps.rfind(':', end - 1);
    if (colon != std::string::npos && colon >= at) ports.push_back(std::atoi(bootstraps.c_str() + colon + 1));
    at = end + 1;
  }
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return;
  while (dirent* e = readdir(dir)) {
    int fd = std::atoi(e->d_name);
    if (fd <= 2 || fd == dirfd(dir)) continue;
    sockaddr_in a{};
    socklen_t len = sizeof a;
    int listening = 0;
    socklen_t ll = sizeof listening;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0 || a.sin_family != AF_INET) continue;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ll) != 0 || !listening) continue;
    if (std::find(ports.begin(), ports.end(), ntohs(a.sin_port)) == ports.end()) continue;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  closedir(dir);
}

}  // namespace

Result<std::unique_ptr<DevBroker>> DevBroker::start(const DevBrokerOptions& options) {
  if (options.brokers < 1 || options.brokers > 16) {
    return Status::invalid_argument("--brokers must be from 1 to 16");
  }
  std::unique_ptr<DevBroker> b(new DevBroker());
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The handle only hosts the cluster; keep its own logging quiet.
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  b->rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!b->rk_) {
    rd_kafka_conf_destroy(conf);
    return Status::internal(std::string("cannot create the mock cluster's handle: ") + err);
  }
  b->cluster_ = rd_kafka_mock_cluster_new(b->rk_, options.brokers);
  if (!b->cluster_) return Status::internal("cannot start librdkafka's mock cluster");
  b->bootstrap_ = rd_kafka_mock_cluster_bootstraps(b->cluster_);
  disable_nagle_on_listeners(b->bootstrap_);
  // Each creation is a synchronous request to the mock's thread, which
  // sometimes answers only at its next ~1 s poll timeout; issued from
  // parallel threads they are served together.
  std::vector<rd_kafka_resp_err_t> errors(options.topics.size(), RD_KAFKA_RESP_ERR_NO_ERROR);
  {
    std::vector<std::thread> threads;
    for (size_t i = 0; i < options.topics.size(); ++i) {
      threads.emplace_back([&, i] {
        const auto& t = options.topics[i];
        errors[i] = rd_kafka_mock_topic_create(b->cluster_, t.name.c_str(), t.partitions,
                                               std::min(options.brokers, 3));
      });
    }
    for (auto& th : threads) th.join();
  }
  for (size_t i = 0; i < errors.size(); ++i) {
    if (errors[i]) {
      return Status::invalid_argument("creating topic '" + options.topics[i].name +
                                      "': " + rd_kafka_err2str(errors[i]));
    }
  }
  return b;
}

DevBroker::~DevBroker() {
  if (cluster_) rd_kafka_mock_cluster_destroy(cluster_);
  if (rk_) rd_kafka_destroy(rk_);
}

}  // namespace sluice::kafka
