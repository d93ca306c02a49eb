#include "engine/common/http_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <regex>

#include "engine/common/auth.h"

namespace sluice {

bool split_host_port(const std::string& addr, std::string& host, int& port) {
  auto colon = addr.rfind(':');
  if (colon == std::string::npos || colon + 1 >= addr.size()) return false;
  host = addr.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  char* end = nullptr;
  long p = std::strtol(addr.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || p < 0 || p > 65535) return false;
  port = static_cast<int>(p);
  return true;
}

std::string HttpRequest::header(const std::string& name) const {
  return impl ? static_cast<const httplib::Request*>(impl)->get_header_value(name) : std::string();
}

std::string HttpRequest::param(const std::string& name) const {
  return impl ? static_cast<const httplib::Request*>(impl)->get_param_value(name) : std::string();
}

namespace {

HttpRequest to_request(const httplib::Request& r) {
  HttpRequest q;
  q.method = r.method;
  q.path = r.path;
  for (const auto& m : r.matches) q.matches.push_back(m.str());
  q.body = r.body;
  q.remote = r.remote_addr + ":" + std::to_string(r.remote_port);
  q.impl = &r;
  return q;
}

httplib::Server::Handler wrap(HttpServer::Handler h) {
  return [h = std::move(h)](const httplib::Request& req, httplib::Response& res) {
    HttpResponse r;
    try {
      r = h(to_request(req));
    } catch (const std::exception& e) {
      spdlog::error("http {} {}: {}", req.method, req.path, e.what());
      r = {500, "{\"error\":\"internal error\"}"};
    }
    res.status = r.code;
    for (const auto& [k, v] : r.headers) res.set_header(k, v);
    res.set_content(r.body, r.content_type.c_str());
  };
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::create(const HttpServerOptions& o) {
  std::string host;
  int port = 0;
  if (!split_host_port(o.bind, host, port)) return Status::invalid_argument("'" + o.bind + "' is not host:port");
  std::unique_ptr<HttpServer> s(new HttpServer());
  if (!o.tls_cert.empty() || !o.tls_key.empty() || !o.tls_ca.empty()) {
    if (o.tls_cert.empty() || o.tls_key.empty()) {
      return Status::invalid_argument(o.name + ": TLS needs a certificate and its key");
    }
    auto ssl = std::make_unique<httplib::SSLServer>(o.tls_cert.c_str(), o.tls_key.c_str(),
                                                    o.tls_ca.empty() ? nullptr : o.tls_ca.c_str());
    if (!ssl->is_valid()) {
      return Status::invalid_argument(o.name + ": cannot load TLS certificate '" + o.tls_cert + "', key '" +
                                      o.tls_key + "'" + (o.tls_ca.empty() ? "" : " or CA '" + o.tls_ca + "'"));
    }
    s->server_ = std::move(ssl);
    s->tls_ = true;
  } else {
    s->server_ = std::make_unique<httplib::Server>();
  }
  auto& svr = *s->server_;
  int threads = std::max(1, o.threads);
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  svr.set_read_timeout(o.read_timeout_s, 0);
  svr.set_write_timeout(o.write_timeout_s, 0);
  svr.set_keep_alive_max_count(static_cast<size_t>(std::max(1, o.keep_alive_max)));
  svr.set_keep_alive_timeout(o.keep_alive_timeout_s);
  svr.set_payload_max_length(o.max_body_bytes);
  // Headers and body go out in separate writes: without this, Nagle and the
  // peer's delayed ACK hold each small response back ~40 ms.
  svr.set_tcp_nodelay(true);
  if (!o.bearer_token.empty()) {
    std::string token = o.bearer_token, name = o.name;
    HttpServer* self = s.get();
    svr.set_pre_routing_handler([token, name, self](const httplib::Request& req, httplib::Response& res) {
      for (const auto& p : self->public_patterns_)
        if (std::regex_match(req.path, std::regex(p))) return httplib::Server::HandlerResponse::Unhandled;
      std::string h = req.get_header_value("Authorization");
      std::string_view given = h.rfind("Bearer ", 0) == 0 ? std::string_view(h).substr(7) : std::string_view();
      if (auth::constant_time_equal(given, token)) return httplib::Server::HandlerResponse::Unhandled;
      spdlog::warn("{}: refused {} {} from {}: {}", name, req.method, req.path, req.remote_addr,
                   h.empty() ? "no credentials" : "wrong token");
      res.status = 401;
      res.set_header("WWW-Authenticate", "Bearer realm=\"sluice\"");
      res.set_content("{\"error\":\"this endpoint needs the cluster token: Authorization: Bearer <token>\"}",
                      "application/json");
      return httplib::Server::HandlerResponse::Handled;
    });
  }
  if (port == 0) {
    port = svr.bind_to_any_port(host);
    if (port <= 0) return Status::unavailable(o.name + ": cannot listen on " + o.bind);
  } else if (!svr.bind_to_port(host, port)) {
    return Status::unavailable(o.name + ": cannot listen on " + o.bind + " (in use?)");
  }
  s->port_ = port;
  s->address_ = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  return s;
}

HttpServer::~HttpServer() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

void HttpServer::get(const std::string& pattern, Handler handler, bool is_public) {
  if (is_public) public_patterns_.push_back(pattern);
  server_->Get(pattern, wrap(std::move(handler)));
}

void HttpServer::post(const std::string& pattern, Handler handler) { server_->Post(pattern, wrap(std::move(handler))); }

Status HttpServer::mount(const std::string& prefix, const std::string& dir) {
  if (!server_->set_mount_point(prefix, dir)) return Status::not_found("cannot serve '" + dir + "': not a directory");
  return Status::ok();
}

void HttpServer::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([s = server_.get()] { s->listen_after_bind(); });
  // Until it runs, stop() would not stop it: wait (briefly) for it.
  for (int i = 0; i < 2000 && !server_->is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

}  // namespace sluice
