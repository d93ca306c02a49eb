// HttpTestServer: a real HTTP/1.1 server on a loopback port (libevent's
// evhttp, one thread) for the async I/O tests and benchmark. Answers after
// a seeded random latency, fails a seeded share of requests with 503, and
// can go down (port closed) or stall (no answers) on request.
//
//   POST /score  {"id": N, ...}  -> {"id": N, "score": expected_score(N)}
//   POST /echo   body            -> the body
//   GET  /big?bytes=N            -> N bytes
//   GET  /status?code=N          -> an empty answer with status N
//   anything else                -> the handler set with set_handler (404 without one)
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/status.h"

namespace sluice::async_test {

/// Value type; defaults in brackets.
struct HttpServerOptions {
  /// [0] any free port; set to come back on a known one.
  int port = 0;
  /// [1] seeds the latency and failure draws.
  uint32_t seed = 1;
  /// [0, 0] each answer waits a uniform draw from [min, max] microseconds.
  int64_t min_latency_us = 0;
  int64_t max_latency_us = 0;
  /// [0] share of /score requests answered 503.
  double failure_rate = 0;
  /// [0] the server's thread waits this long before running its event
  /// loop: a loaded machine's scheduler, on demand (tests of the server).
  int64_t loop_start_delay_ms = 0;
};

/// A request as the server received it (for handlers: scripted answers
/// and checks of what a client sent). Value type.
struct RecordedRequest {
  std::string method;  // "POST"
  std::string uri;     // path and query, as sent
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;    // as received (still compressed if it was sent so)
  /// The value of header `name` (case-insensitive), empty if absent.
  std::string header(const std::string& name) const;
};

/// What a handler answers. Value type.
struct ScriptedReply {
  int code = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

/// Called on the server's thread for every request to a path the server
/// does not serve itself; the latency and stall settings apply as usual.
using RequestHandler = std::function<ScriptedReply(const RecordedRequest&)>;

/// Runs on its own thread from start() until destruction (or down()).
/// Every method is thread-safe: the outage controls may come from any
/// thread, at any time after start() — even before the server's thread ran
/// its loop. Not copyable.
class HttpTestServer {
 public:
  static Result<std::unique_ptr<HttpTestServer>> start(HttpServerOptions options = {});
  ~HttpTestServer();
  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  int port() const { return port_.load(); }
  /// http://127.0.0.1:<port><path>
  std::string url(const std::string& path) const;

  /// Outage: closes the port and every connection (requests waiting for
  /// their latency are dropped unanswered). up() listens on the same port again.
  void down();
  Status up();
  /// While stalled, requests are accepted and never answered (they are
  /// answered when the stall ends, long after any client gave up).
  void set_stalled(bool stalled);
  void set_failure_rate(double r);
  void set_latency_us(int64_t min_us, int64_t max_us);
  /// Serves every other path with `handler` (thread-safe; null: 404).
  void set_handler(RequestHandler handler);

  uint64_t requests() const { return requests_.load(); }
  uint64_t answered() const { return answered_.load(); }
  uint64_t failed() const { return failed_.load(); }
  /// Distinct TCP connections accepted so far.
  uint64_t connections() const { return connections_.load(); }
  /// CPU time of the server's thread so far (all runs since start).
  int64_t cpu_ns() const;

 private:
  class Loop;
  explicit HttpTestServer(HttpServerOptions options);
  Status run_loop();   // loop_mu_ held
  void stop_loop();    // loop_mu_ held
  std::shared_ptr<RequestHandler> handler();

  HttpServerOptions opts_;
  std::atomic<int> port_{0};
  // Guards loop_ and cpu_before_ns_ (the loop's own thread never takes it,
  // so a loop may be stopped and joined under it).
  mutable std::mutex loop_mu_;
  std::unique_ptr<Loop> loop_;
  int64_t cpu_before_ns_ = 0;  // CPU of loops already stopped
  std::atomic<uint64_t> requests_{0}, answered_{0}, failed_{0}, connections_{0};
  std::atomic<bool> stalled_{false};
  std::atomic<double> failure_rate_{0};
  std::atomic<int64_t> min_latency_us_{0}, max_latency_us_{0};
  std::mutex handler_mu_;
  std::shared_ptr<RequestHandler> handler_;  // shared: a request in progress keeps the one it started with
  friend class Loop;
};

}  // namespace sluice::async_test
