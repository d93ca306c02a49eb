// PushReceiver: a real HTTP server on a loopback port (Sluice's HttpServer,
// cpp-httplib) that records every batch a push sink sends and answers with
// a scripted status; it can go down (port closed, connections refused) and
// come back on the same port. Used by the push sink tests and the
// sessions_funnel job test.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/http_server.h"

namespace sluice::push_test {

/// One request as received.
struct Received {
  std::string path;
  std::string key;            // the Idempotency-Key header
  std::string authorization;  // the Authorization header
  std::string tenant;         // the X-Tenant header
  std::string content_type;
  std::string body;
  int64_t at_ms = 0;          // wall clock
  int code = 0;               // what the receiver answered
};

/// Thread-safe; the server's threads record, tests read.
class PushReceiver {
 public:
  /// Starts on `port` (0: any free loopback port); nullptr if it cannot bind.
  static std::unique_ptr<PushReceiver> start(int port = 0);
  ~PushReceiver();

  int port() const { return port_; }
  std::string url(const std::string& path) const;
  /// Stops listening: connections are refused until up().
  void down();
  bool up();
  /// The status code for each request (default 200); called on server threads.
  void set_responder(std::function<int(const Received&)> f);
  /// Status and body for each request (a receiver whose answers carry
  /// meaning: Splunk HEC codes, Elasticsearch bulk items); replaces set_responder's.
  using Answer = std::pair<int, std::string>;
  void set_handler(std::function<Answer(const Received&)> f);
  std::vector<Received> requests() const;
  size_t count() const;

 private:
  PushReceiver() = default;
  bool listen(int port);

  int port_ = 0;
  mutable std::mutex mu_;
  std::unique_ptr<HttpServer> server_;
  std::vector<Received> requests_;
  std::function<int(const Received&)> responder_;
  std::function<Answer(const Received&)> handler_;
};

}  // namespace sluice::push_test
