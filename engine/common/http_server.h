// HttpServer: the HTTP(S) server every Sluice process uses for its JSON
// status and /metrics, and that the web dashboard adds routes and static
// pages to. A thin layer over cpp-httplib (Debian's libcpp-httplib-dev):
// a pool of worker threads (one slow client holds one worker, never the
// others), keep-alive, read/write timeouts, bounded request sizes,
// optional TLS (mutual with a CA) and an optional bearer token.
//
//   auto s = HttpServer::create(options);          // binds the port
//   (*s)->get("/jobs", [](const HttpRequest&) { return HttpResponse{200, "[]"}; });
//   (*s)->get(R"(/jobs/([^/]+))", handler);         // regex; captures in req.matches
//   (*s)->mount("/ui", "/usr/share/sluice/ui");     // static files
//   (*s)->start();                                   // serves until destroyed
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/common/status.h"

namespace httplib {
class Server;
}

namespace sluice {

struct HttpServerOptions {
  /// host:port; port 0 = any free port. Required.
  std::string bind;
  /// PEM certificate and key: HTTPS when set. Default: plain HTTP.
  std::string tls_cert, tls_key;
  /// PEM CA: clients must present a certificate it signed (mutual TLS). Default: none.
  std::string tls_ca;
  /// When set, every route not marked public needs `Authorization: Bearer <token>`. Default: open.
  std::string bearer_token;
  /// Worker threads (concurrent requests). Default 8.
  int threads = 8;
  /// Per read/write of a connection (a client idle longer is dropped). Default 5 s.
  int read_timeout_s = 5, write_timeout_s = 5;
  /// Keep-alive: requests per connection and idle time between them. Defaults 100, 5 s.
  int keep_alive_max = 100, keep_alive_timeout_s = 5;
  /// Largest request body accepted. Default 1 MiB. (Request line and
  /// headers are bounded at 8 KiB each by the library.)
  size_t max_body_bytes = 1 << 20;
  /// Logged with refusals and the listening line, e.g. "status", "metrics".
  std::string name = "http";
};

struct HttpRequest {
  std::string method;
  std::string path;
  std::vector<std::string> matches;  // regex captures of the route (matches[0] = whole path)
  std::string body;
  std::string remote;                // peer address
  std::string header(const std::string& name) const;
  std::string param(const std::string& name) const;  // query parameter
  const void* impl = nullptr;        // the library's request
};

struct HttpResponse {
  int code = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra response headers
};

/// Owns the server and its threads (an accept thread and the worker pool).
/// Routes are added between create() and start(), from one thread; handlers
/// then run on the worker threads and must be thread-safe. Destroying it
/// stops accepting and joins every thread.
class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  static Result<std::unique_ptr<HttpServer>> create(const HttpServerOptions& options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// GET (and HEAD) of paths matching the regex `pattern`. `is_public`:
  /// served without the bearer token (e.g. a health check).
  void get(const std::string& pattern, Handler handler, bool is_public = false);
  /// POST to paths matching `pattern` (body bounded by max_body_bytes).
  void post(const std::string& pattern, Handler handler);
  /// Serves the files under `dir` at `prefix` (static pages).
  Status mount(const std::string& prefix, const std::string& dir);
  /// Starts serving (once).
  void start();

  int port() const { return port_; }
  /// host:port as bound.
  const std::string& address() const { return address_; }
  bool tls() const { return tls_; }

 private:
  HttpServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  std::string address_;
  bool tls_ = false;
  std::vector<std::string> public_patterns_;
};

/// Splits "host:port" ([v6]:port too); false if it is not of that form.
bool split_host_port(const std::string& addr, std::string& host, int& port);

}  // namespace sluice
