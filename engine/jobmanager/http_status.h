// A minimal HTTP/1.1 server for the jobmanager's JSON status: GET only, one
// short-lived connection per request, answered by a callback. Enough for
// dashboards, curl and scripts; nothing here is meant for large responses.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "engine/common/status.h"

namespace sluice::jobmanager {

struct HttpResponse {
  int code = 200;
  std::string body;  // JSON
};

/// Owns a listening socket and one accept thread, which also answers each
/// request (the callback runs on that thread). Stops when destroyed.
class HttpStatusServer {
 public:
  using Handler = std::function<HttpResponse(const std::string& path)>;
  /// `bind` is host:port (port 0 = any free port).
  static Result<std::unique_ptr<HttpStatusServer>> start(const std::string& bind, Handler handler);
  ~HttpStatusServer();
  HttpStatusServer(const HttpStatusServer&) = delete;
  HttpStatusServer& operator=(const HttpStatusServer&) = delete;
  int port() const { return port_; }

 private:
  HttpStatusServer(int fd, int port, Handler h) : fd_(fd), port_(port), handler_(std::move(h)) {}
  void loop();
  void serve(int conn);
  int fd_;
  int port_;
  Handler handler_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// Splits "host:port"; false if it is not of that form.
bool split_host_port(const std::string& addr, std::string& host, int& port);

}  // namespace sluice::jobmanager
