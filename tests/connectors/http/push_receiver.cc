#include "tests/connectors/http/push_receiver.h"

#include "engine/common/clock.h"
#include "engine/common/time.h"

#include <tuple>

namespace sluice::push_test {

std::unique_ptr<PushReceiver> PushReceiver::start(int port) {
  std::unique_ptr<PushReceiver> r(new PushReceiver());
  if (!r->listen(port)) return nullptr;
  return r;
}

PushReceiver::~PushReceiver() { down(); }

bool PushReceiver::listen(int port) {
  HttpServerOptions o;
  o.bind = "127.0.0.1:" + std::to_string(port);
  o.name = "push-receiver";
  o.threads = 4;
  o.max_body_bytes = 16 << 20;
  auto s = HttpServer::create(o);
  if (!s.is_ok()) return false;
  (*s)->post(".*", [this](const HttpRequest& req) {
    Received r{req.path, req.header("Idempotency-Key"), req.header("Authorization"), req.header("X-Tenant"),
               req.header("Content-Type"), req.body, wall_clock_ms(), 200};
    std::function<int(const Received&)> f;
    std::function<Answer(const Received&)> h;
    {
      std::lock_guard lk(mu_);
      f = responder_;
      h = handler_;
    }
    if (f) r.code = f(r);
    std::string body = r.code / 100 == 2 ? "{\"ok\":true}" : "{\"error\":\"scripted\"}";
    if (h) std::tie(r.code, body) = h(r);
    {
      std::lock_guard lk(mu_);
      requests_.push_back(r);
    }
    return HttpResponse{r.code, std::move(body)};
  });
  (*s)->start();
  port_ = (*s)->port();
  std::lock_guard lk(mu_);
  server_ = std::move(*s);
  return true;
}

std::string PushReceiver::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void PushReceiver::down() {
  std::unique_ptr<HttpServer> s;
  {
    std::lock_guard lk(mu_);
    s = std::move(server_);
  }
  s.reset();  // joins the server's threads (outside the lock: handlers take it)
}

bool PushReceiver::up() { return listen(port_); }

void PushReceiver::set_responder(std::function<int(const Received&)> f) {
  std::lock_guard lk(mu_);
  responder_ = std::move(f);
}

void PushReceiver::set_handler(std::function<Answer(const Received&)> f) {
  std::lock_guard lk(mu_);
  handler_ = std::move(f);
}

std::vector<Received> PushReceiver::requests() const {
  std::lock_guard lk(mu_);
  return requests_;
}

size_t PushReceiver::count() const {
  std::lock_guard lk(mu_);
  return requests_.size();
}

}  // namespace sluice::push_test
