// GrpcTestServer: a real gRPC server (the Scorer service of scoring.proto)
// on a loopback port, in the test process. Answers after a seeded random
// latency, fails a seeded share of calls with UNAVAILABLE, and can go down
// and come back on the same port.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>

#include "engine/common/status.h"
#include "tests/async/support/delay_queue.h"

namespace sluice::async_test {

/// Value type; defaults in brackets.
struct GrpcServerOptions {
  int port = 0;  ///< [0] any free port
  uint32_t seed = 1;
  int64_t min_latency_us = 0;  ///< [0, 0] uniform latency per call
  int64_t max_latency_us = 0;
  double failure_rate = 0;  ///< [0] share of calls failed with UNAVAILABLE
};

/// Runs from start() until destruction; gRPC's threads serve, one
/// DelayQueue thread answers. Thread-safe setters and counters.
class GrpcTestServer {
 public:
  static Result<std::unique_ptr<GrpcTestServer>> start(GrpcServerOptions options = {});
  ~GrpcTestServer();
  GrpcTestServer(const GrpcTestServer&) = delete;
  GrpcTestServer& operator=(const GrpcTestServer&) = delete;

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  /// Outage: answers what is waiting with UNAVAILABLE and shuts the server
  /// down; up() serves on the same port again.
  void down();
  Status up();
  void set_failure_rate(double r) { failure_rate_ = r; }

  uint64_t calls() const { return calls_.load(); }
  uint64_t answered() const { return answered_.load(); }
  uint64_t failed() const { return failed_.load(); }

 private:
  class Service;
  explicit GrpcTestServer(GrpcServerOptions options);
  Status serve();

  GrpcServerOptions opts_;
  int port_ = 0;
  std::unique_ptr<DelayQueue> delays_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
  std::atomic<double> failure_rate_{0};
  std::atomic<uint64_t> calls_{0}, answered_{0}, failed_{0};
};

}  // namespace sluice::async_test
