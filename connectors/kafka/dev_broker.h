// DevBroker: librdkafka's mock cluster (rdkafka_mock.h) as the broker of
// `sluice dev-kafka`, the quickstart and the Kafka tests. It speaks the
// Kafka protocol on 127.0.0.1 (random ports). Its limits are measured and
// listed in connectors/kafka/README.md; nothing in the connector relies
// on them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/common/status.h"

struct rd_kafka_s;
struct rd_kafka_mock_cluster_s;

namespace sluice::kafka {

/// A topic to create at start.
struct DevTopic {
  std::string name;
  int partitions = 1;
};

/// "name:partitions" (or "name", one partition).
Result<DevTopic> parse_dev_topic(const std::string& spec);

struct DevBrokerOptions {
  int brokers = 1;  // default 1
  std::vector<DevTopic> topics;
};

/// A running mock cluster. Created and destroyed by one thread; the
/// cluster itself runs on librdkafka's threads. Destroying it stops the
/// brokers (clients see their connections close).
class DevBroker {
 public:
  static Result<std::unique_ptr<DevBroker>> start(const DevBrokerOptions& options);
  ~DevBroker();
  DevBroker(const DevBroker&) = delete;
  DevBroker& operator=(const DevBroker&) = delete;

  /// host:port[,host:port...] for bootstrap.servers.
  const std::string& bootstrap() const { return bootstrap_; }

 private:
  DevBroker() = default;
  rd_kafka_s* rk_ = nullptr;
  rd_kafka_mock_cluster_s* cluster_ = nullptr;
  std::string bootstrap_;
};

}  // namespace sluice::kafka
