// HttpClient: asynchronous HTTP/1.1 (and HTTP/2 over TLS) requests on
// libcurl's multi interface. One event-loop thread per client runs every
// transfer of the client (epoll + curl_multi_socket_action), connections
// are kept alive and reused, and callbacks run on that thread. No thread
// per request, no blocking of the caller.
//
//   auto client = HttpClient::start({.name = "scorer"});
//   (*client)->submit({.method = Method::kPost, .url = "http://127.0.0.1:8080/score",
//                      .headers = {{"Content-Type", "application/json"}}, .body = json},
//                     [](Result<Response> r) { ... });   // on the client's thread
//
// Used by async I/O functions (operators/async) and meant for HTTP push
// sinks too; depends on engine/common and libcurl only.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/common/status.h"
#include "engine/common/time.h"

namespace sluice::http_client {

enum class Method { kGet, kPost, kPut, kPatch, kDelete, kHead };

/// One request. Value type; the client keeps its own copy until done.
struct Request {
  Method method = Method::kGet;
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  /// Default 0: the client's default_timeout. Whole transfer, connect included.
  Duration timeout{0};
};

/// An HTTP answer, whatever its status code (only transport failures are errors).
struct Response {
  long status = 0;
  std::string body;
  std::string content_type;
  /// Value of a Retry-After header in seconds, -1 if none (429/503 answers).
  int64_t retry_after_s = -1;
  bool ok() const { return status >= 200 && status < 300; }
};

/// Called exactly once per accepted request, on the client's thread: a
/// Response, or an error for a transport failure — kTimeout (the request's
/// timeout passed), kUnavailable (connection refused/reset, DNS),
/// kResourceExhausted (response over max_response_bytes), kCancelled (the
/// client stopped first), kInvalidArgument (bad URL). Keep it short: it
/// holds up every other transfer of the client.
using Callback = std::function<void(Result<Response>)>;

/// Value type. Defaults in brackets.
struct HttpClientOptions {
  /// ["http"] names the event-loop thread ("http-<name>", cut to 15 chars).
  std::string name = "http";
  /// [10'000] requests accepted and not yet called back; submit() refuses
  /// more with kResourceExhausted. Bounds the client's memory.
  size_t max_pending = 10'000;
  /// [0 = no limit] open connections per host; beyond it transfers wait
  /// inside the client for a free connection.
  long max_host_connections = 0;
  /// [0 = no limit] open connections overall.
  long max_total_connections = 0;
  /// [0 = no limit] transfers handed to libcurl at once; the others wait
  /// in the client's FIFO. libcurl's cost per transfer grows with the
  /// transfers it juggles, so with connection limits set this to the limit.
  size_t max_active = 0;
  /// [30 s] per request unless Request::timeout says otherwise.
  Duration default_timeout{30'000};
  /// [5 s] TCP (and TLS) connect.
  Duration connect_timeout{5'000};
  /// [16 MiB] a longer response body fails the request (kResourceExhausted).
  size_t max_response_bytes = 16u << 20;
  /// ["sluice"]
  std::string user_agent = "sluice";
  /// [""] CA bundle for https (empty: the system's); [true] verify peers.
  std::string ca_file;
  bool verify_tls = true;
};

/// What the client did so far. Counters are exact; read from any thread.
struct HttpClientStats {
  uint64_t submitted = 0;
  uint64_t completed = 0;         ///< callbacks with a Response
  uint64_t failed = 0;            ///< callbacks with an error
  uint64_t connections = 0;       ///< new connections opened (reuse keeps this low)
  size_t pending = 0;             ///< accepted, not yet called back
  int64_t loop_cpu_ns = 0;        ///< CPU time of the event-loop thread (callbacks included)
};

/// A running client. Thread-safe: submit() from any thread. Created by
/// start(); owned by its user (a shared_ptr when several functions of a
/// process share it, see shared()). Destruction stops the loop: requests
/// not yet done are called back with kCancelled on the loop thread before
/// the destructor returns, so no callback runs afterwards.
class HttpClient {
 public:
  static Result<std::unique_ptr<HttpClient>> start(HttpClientOptions options = {});
  /// The process's client named `options.name`, started on first use and
  /// stopped when the last holder lets go (options of later callers are
  /// ignored while it runs).
  static Result<std::shared_ptr<HttpClient>> shared(const HttpClientOptions& options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// Queues `request`. OK: `done` will be called exactly once. An error
  /// (kResourceExhausted at max_pending, kCancelled once stopping): `done`
  /// is dropped without being called.
  Status submit(Request request, Callback done);
  HttpClientStats stats() const;
  const HttpClientOptions& options() const;

 private:
  class Impl;
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Reason phrase for logs and errors: "HTTP 503".
std::string describe_status(long status);

/// `body` compressed as gzip (RFC 1952) at zlib `level` (1 fastest .. 9
/// smallest), for a request sent with "Content-Encoding: gzip". Any thread.
Result<std::string> gzip(std::string_view body, int level = 1);

/// The value of an "Authorization" header for HTTP basic authentication:
/// "Basic " + base64(user ":" password). Any thread.
std::string basic_authorization(std::string_view user, std::string_view password);

}  // namespace sluice::http_client
