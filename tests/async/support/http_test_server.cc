#include "tests/async/support/http_test_server.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include "tests/async/support/scoring.h"

namespace sluice::async_test {

namespace {
std::once_flag g_threads;

const char* method_name(evhttp_cmd_type c) {
  switch (c) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_PATCH: return "PATCH";
    case EVHTTP_REQ_HEAD: return "HEAD";
    default: return "OTHER";
  }
}

/// The "id" of a JSON object, found without a JSON library (the server is
/// test scaffolding; the code under test parses with simdjson).
bool find_id(std::string_view body, int64_t& id) {
  auto k = body.find("\"id\"");
  if (k == std::string_view::npos) return false;
  auto c = body.find(':', k);
  if (c == std::string_view::npos) return false;
  std::string num(body.substr(c + 1, 24));
  char* end = nullptr;
  id = std::strtoll(num.c_str(), &end, 10);
  return end != num.c_str();
}
}  // namespace

/// One event loop (one listening run of the server: down() ends it).
class HttpTestServer::Loop {
 public:
  struct Pending {
    Loop* loop;
    evhttp_request* req;
    int code;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
  };

  Loop(HttpTestServer* owner, uint32_t seed, int64_t start_delay_ms)
      : owner_(owner), rng_(seed), start_delay_ms_(start_delay_ms) {}
  ~Loop() {
    if (thread_.joinable()) {
      // Not event_base_loopbreak(): it only stops a loop already running —
      // event_base_loop() clears the flag on entry — so a server stopped
      // before its thread got the CPU (a test that never needed it, on a
      // loaded machine) waited for its thread forever. loopexit queues an
      // event, which the loop runs whenever it starts.
      event_base_loopexit(base_, nullptr);
      thread_.join();
    }
    if (http_) evhttp_free(http_);  // closes connections, frees their requests
    for (Pending* p : pending_) delete p;
    for (Pending* p : parked_) delete p;
    if (base_) event_base_free(base_);
  }

  Status start(int port, int* bound) {
    base_ = event_base_new();
    if (!base_) return Status::internal("event_base_new failed");
    http_ = evhttp_new(base_);
    evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                          EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD);
    evhttp_set_gencb(http_, &Loop::on_request, this);
    evhttp_set_timeout(http_, 60);
    auto* handle = evhttp_bind_socket_with_handle(http_, "127.0.0.1", static_cast<uint16_t>(port));
    if (!handle) return Status::unavailable("cannot listen on 127.0.0.1:" + std::to_string(port));
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    getsockname(evhttp_bound_socket_get_fd(handle), reinterpret_cast<sockaddr*>(&addr), &len);
    *bound = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "http-test-srv");
      pthread_getcpuclockid(pthread_self(), &cpu_clock_);
      cpu_ready_.store(true);
      if (start_delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(start_delay_ms_));
      event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY);
    });
    return Status::ok();
  }

  int64_t cpu_ns() const {
    if (!cpu_ready_.load()) return 0;
    timespec ts{};
    if (clock_gettime(cpu_clock_, &ts) != 0) return 0;
    return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
  }

  void unpark_soon() {
    timeval zero{0, 0};
    event_base_once(base_, -1, EV_TIMEOUT, &Loop::on_unpark, this, &zero);
  }

 private:
  static void on_request(evhttp_request* req, void* arg) { static_cast<Loop*>(arg)->handle(req); }

  static void on_close(evhttp_connection* c, void* arg) { static_cast<Loop*>(arg)->live_.erase(c); }

  void handle(evhttp_request* req) {
    owner_->requests_.fetch_add(1);
    evhttp_connection* conn = evhttp_request_get_connection(req);
    if (conn && live_.insert(conn).second) {
      owner_->connections_.fetch_add(1);
      evhttp_connection_set_closecb(conn, &Loop::on_close, this);
      // evhttp writes status line, headers and body separately: without
      // TCP_NODELAY, Nagle holds the tail back until the client's delayed ACK.
      int one = 1;
      evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(conn));
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    auto* p = new Pending{this, req, 200, {}, {}};
    const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
    std::string path = evhttp_uri_get_path(uri) ? evhttp_uri_get_path(uri) : "/";
    evkeyvalq query{};
    const char* q = evhttp_uri_get_query(uri);
    if (q) evhttp_parse_query_str(q, &query);
    evbuffer* in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    std::string_view body(n ? reinterpret_cast<const char*>(evbuffer_pullup(in, -1)) : "", n);
    if (path == "/score") {
      int64_t id = 0;
      std::uniform_real_distribution<double> u(0, 1);
      if (!find_id(body, id)) {
        p->code = 400;
        p->body = "{\"error\":\"no id\"}";
      } else if (u(rng_) < owner_->failure_rate_.load()) {
        p->code = 503;
        p->body = "{\"error\":\"overloaded\"}";
      } else {
        char buf[96];
        std::snprintf(buf, sizeof buf, "{\"id\":%lld,\"score\":%.1f}", static_cast<long long>(id), expected_score(id));
        p->body = buf;
      }
    } else if (path == "/echo") {
      p->body.assign(body);
    } else if (path == "/big") {
      const char* b = evhttp_find_header(&query, "bytes");
      p->body.assign(b ? std::strtoull(b, nullptr, 10) : 0, 'x');
    } else if (path == "/status") {
      const char* c = evhttp_find_header(&query, "code");
      p->code = c ? std::atoi(c) : 500;
    } else if (auto handler = owner_->handler()) {
      RecordedRequest rec;
      rec.method = method_name(evhttp_request_get_command(req));
      rec.uri = evhttp_request_get_uri(req);
      evkeyvalq* in_headers = evhttp_request_get_input_headers(req);
      for (evkeyval* h = in_headers->tqh_first; h; h = h->next.tqe_next) rec.headers.emplace_back(h->key, h->value);
      rec.body.assign(body);
      ScriptedReply r = (*handler)(rec);
      p->code = r.code;
      p->body = std::move(r.body);
      p->headers = std::move(r.headers);
    } else {
      p->code = 404;
    }
    evhttp_clear_headers(&query);
    if (owner_->stalled_.load()) {
      parked_.push_back(p);
      return;
    }
    int64_t lo = owner_->min_latency_us_.load(), hi = owner_->max_latency_us_.load();
    int64_t d = hi > lo ? std::uniform_int_distribution<int64_t>(lo, hi)(rng_) : lo;
    if (d <= 0) {
      respond(p);
      return;
    }
    pending_.insert(p);
    timeval tv{static_cast<time_t>(d / 1'000'000), static_cast<suseconds_t>(d % 1'000'000)};
    if (lo == hi) {
      // One latency for all: libevent's O(1) common-timeout queue.
      if (common_us_ != d) {
        common_ = *event_base_init_common_timeout(base_, &tv);
        common_us_ = d;
      }
      tv = common_;
    }
    event_base_once(base_, -1, EV_TIMEOUT, &Loop::on_due, p, &tv);
  }

  static void on_due(evutil_socket_t, short, void* arg) {
    auto* p = static_cast<Pending*>(arg);
    p->loop->pending_.erase(p);
    p->loop->respond(p);
  }

  static void on_unpark(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Loop*>(arg);
    auto parked = std::move(self->parked_);
    self->parked_.clear();
    for (Pending* p : parked) self->respond(p);
  }

  void respond(Pending* p) {
    evbuffer* out = evbuffer_new();
    evbuffer_add(out, p->body.data(), p->body.size());
    evhttp_add_header(evhttp_request_get_output_headers(p->req), "Content-Type", "application/json");
    for (const auto& [k, v] : p->headers) evhttp_add_header(evhttp_request_get_output_headers(p->req), k.c_str(), v.c_str());
    // A request whose connection is gone is freed by libevent here.
    evhttp_send_reply(p->req, p->code, p->code == 200 ? "OK" : "Error", out);
    evbuffer_free(out);
    (p->code == 200 ? owner_->answered_ : owner_->failed_).fetch_add(1);
    delete p;
  }

  HttpTestServer* owner_;
  std::mt19937_64 rng_;
  const int64_t start_delay_ms_;
  event_base* base_ = nullptr;
  evhttp* http_ = nullptr;
  std::thread thread_;
  clockid_t cpu_clock_{};
  std::atomic<bool> cpu_ready_{false};
  // Loop thread only (and the destructor, after the thread ended).
  std::unordered_set<Pending*> pending_;
  std::vector<Pending*> parked_;
  std::unordered_set<evhttp_connection*> live_;
  timeval common_{};
  int64_t common_us_ = -1;
};

HttpTestServer::HttpTestServer(HttpServerOptions options) : opts_(options) {
  failure_rate_ = options.failure_rate;
  min_latency_us_ = options.min_latency_us;
  max_latency_us_ = options.max_latency_us;
}

HttpTestServer::~HttpTestServer() {
  std::lock_guard lk(loop_mu_);
  stop_loop();
}

Result<std::unique_ptr<HttpTestServer>> HttpTestServer::start(HttpServerOptions options) {
  std::call_once(g_threads, [] { evthread_use_pthreads(); });
  std::unique_ptr<HttpTestServer> s(new HttpTestServer(options));
  s->port_ = options.port;
  std::lock_guard lk(s->loop_mu_);
  SLUICE_RETURN_IF_ERROR(s->run_loop());
  return s;
}

Status HttpTestServer::run_loop() {
  auto loop = std::make_unique<Loop>(this, opts_.seed + static_cast<uint32_t>(cpu_before_ns_ % 7919),
                                     opts_.loop_start_delay_ms);
  int bound = 0;
  SLUICE_RETURN_IF_ERROR(loop->start(port_, &bound));
  port_ = bound;
  loop_ = std::move(loop);
  return Status::ok();
}

void HttpTestServer::stop_loop() {
  if (!loop_) return;
  cpu_before_ns_ += loop_->cpu_ns();
  loop_.reset();
}

std::string HttpTestServer::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_.load()) + path;
}

void HttpTestServer::down() {
  std::lock_guard lk(loop_mu_);
  stop_loop();
}

Status HttpTestServer::up() {
  std::lock_guard lk(loop_mu_);
  if (loop_) return Status::ok();
  // The port was just closed: retry briefly while the kernel lets go of it.
  Status st;
  for (int i = 0; i < 50; ++i) {
    st = run_loop();
    if (st.is_ok()) return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return st;
}

void HttpTestServer::set_stalled(bool stalled) {
  std::lock_guard lk(loop_mu_);
  bool was = stalled_.exchange(stalled);
  if (was && !stalled && loop_) loop_->unpark_soon();
}

void HttpTestServer::set_failure_rate(double r) { failure_rate_ = r; }

void HttpTestServer::set_latency_us(int64_t min_us, int64_t max_us) {
  min_latency_us_ = min_us;
  max_latency_us_ = max_us;
}

void HttpTestServer::set_handler(RequestHandler handler) {
  std::lock_guard lk(handler_mu_);
  handler_ = handler ? std::make_shared<RequestHandler>(std::move(handler)) : nullptr;
}

std::shared_ptr<RequestHandler> HttpTestServer::handler() {
  std::lock_guard lk(handler_mu_);
  return handler_;
}

std::string RecordedRequest::header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() &&
        std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
      return v;
    }
  }
  return "";
}

int64_t HttpTestServer::cpu_ns() const {
  std::lock_guard lk(loop_mu_);
  return cpu_before_ns_ + (loop_ ? loop_->cpu_ns() : 0);
}

}  // namespace sluice::async_test
