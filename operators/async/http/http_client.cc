#include "operators/async/http/http_client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "engine/common/clock.h"

namespace sluice::http_client {

std::string describe_status(long status) { return "HTTP " + std::to_string(status); }

namespace {

std::once_flag g_curl_init;

/// One request while the client works on it (loop thread, once started).
struct Transfer {
  Request request;
  Callback done;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string body;
  size_t limit = 0;
  bool too_large = false;
  char error[CURL_ERROR_SIZE] = {0};
  ~Transfer() {
    if (headers) curl_slist_free_all(headers);
  }
};

size_t on_write(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  if (t->body.size() + len > t->limit) {
    t->too_large = true;
    return 0;  // makes curl fail the transfer with CURLE_WRITE_ERROR
  }
  t->body.append(data, len);
  return len;
}

Status error_of(CURLcode rc, const Transfer& t) {
  std::string detail = t.error[0] ? std::string(t.error) : std::string(curl_easy_strerror(rc));
  std::string what = t.request.url + ": " + detail;
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: return Status::timeout(what);
    case CURLE_WRITE_ERROR:
      if (t.too_large) {
        return Status::resource_exhausted(t.request.url + ": response larger than " + std::to_string(t.limit) +
                                          " bytes");
      }
      return Status::io_error(what);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT: return Status::invalid_argument(what);
    default: return Status::unavailable(what);
  }
}

}  // namespace

class HttpClient::Impl {
 public:
  explicit Impl(HttpClientOptions o) : opts_(std::move(o)) {}

  Status init() {
    std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    multi_ = curl_multi_init();
    if (!multi_) return Status::internal("curl_multi_init failed");
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) return Status::from_errno("epoll_create1", errno);
    wakefd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wakefd_ < 0) return Status::from_errno("eventfd", errno);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wakefd_;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev) != 0) return Status::from_errno("epoll_ctl", errno);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Impl::on_socket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Impl::on_timer);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    if (opts_.max_host_connections > 0) curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, opts_.max_host_connections);
    if (opts_.max_total_connections > 0) curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS, opts_.max_total_connections);
    // Keep every connection the client may use open between requests.
    long cache = opts_.max_total_connections > 0 ? opts_.max_total_connections
                                                 : static_cast<long>(std::min<size_t>(opts_.max_pending, 100'000));
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, cache);
    thread_ = std::thread([this] { loop(); });
    return Status::ok();
  }

  ~Impl() {
    if (thread_.joinable()) {
      {
        std::lock_guard lk(mu_);
        stopping_ = true;
      }
      wake();
      thread_.join();
    }
    for (CURL* e : idle_) curl_easy_cleanup(e);
    if (multi_) curl_multi_cleanup(multi_);
    if (wakefd_ >= 0) ::close(wakefd_);
    if (epfd_ >= 0) ::close(epfd_);
  }

  Status submit(Request request, Callback done) {
    if (pending_.fetch_add(1, std::memory_order_acq_rel) >= opts_.max_pending) {
      pending_.fetch_sub(1, std::memory_order_acq_rel);
      return Status::resource_exhausted("HTTP client '" + opts_.name + "': " + std::to_string(opts_.max_pending) +
                                        " requests pending");
    }
    bool was_empty;
    {
      std::lock_guard lk(mu_);
      if (stopping_) {
        pending_.fetch_sub(1, std::memory_order_acq_rel);
        return Status::cancelled("HTTP client '" + opts_.name + "' is stopping");
      }
      was_empty = queued_.empty();
      auto t = std::make_unique<Transfer>();
      t->request = std::move(request);
      t->done = std::move(done);
      queued_.push_back(std::move(t));
    }
    submitted_.fetch_add(1, std::memory_order_relaxed);
    if (was_empty) wake();
    return Status::ok();
  }

  HttpClientStats stats() const {
    HttpClientStats s;
    s.submitted = submitted_.load(std::memory_order_relaxed);
    s.completed = completed_.load(std::memory_order_relaxed);
    s.failed = failed_.load(std::memory_order_relaxed);
    s.connections = connections_.load(std::memory_order_relaxed);
    s.pending = pending_.load(std::memory_order_relaxed);
    std::lock_guard lk(cpu_mu_);
    if (cpu_clock_valid_) {
      timespec ts{};
      if (::clock_gettime(cpu_clock_, &ts) == 0) last_cpu_ns_ = ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
    }
    s.loop_cpu_ns = last_cpu_ns_;
    return s;
  }

  const HttpClientOptions& options() const { return opts_; }

 private:
  void wake() {
    uint64_t one = 1;
    ssize_t r = ::write(wakefd_, &one, sizeof one);
    (void)r;  // EAGAIN: the counter is already non-zero, the loop wakes anyway
  }

  static int on_socket(CURL*, curl_socket_t s, int what, void* userp, void*) {
    auto* self = static_cast<Impl*>(userp);
    if (what == CURL_POLL_REMOVE) {
      ::epoll_ctl(self->epfd_, EPOLL_CTL_DEL, s, nullptr);  // ENOENT/EBADF: already gone
      return 0;
    }
    epoll_event ev{};
    ev.data.fd = s;
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    if (::epoll_ctl(self->epfd_, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT) {
      ::epoll_ctl(self->epfd_, EPOLL_CTL_ADD, s, &ev);
    }
    return 0;
  }

  static int on_timer(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<Impl*>(userp);
    self->timer_deadline_ns_ = timeout_ms < 0 ? -1 : monotonic_ns() + timeout_ms * 1'000'000LL;
    return 0;
  }

  void loop() {
    std::string tname = ("http-" + opts_.name).substr(0, 15);
    ::pthread_setname_np(::pthread_self(), tname.c_str());
    {
      std::lock_guard lk(cpu_mu_);
      cpu_clock_valid_ = ::pthread_getcpuclockid(::pthread_self(), &cpu_clock_) == 0;
    }
    epoll_event events[256];
    int running = 0;
    bool stop = false;
    while (!stop) {
      int timeout_ms = -1;
      if (timer_deadline_ns_ >= 0) {
        int64_t d = timer_deadline_ns_ - monotonic_ns();
        timeout_ms = d <= 0 ? 0 : static_cast<int>(std::min<int64_t>((d + 999'999) / 1'000'000, 60'000));
      }
      int n = ::epoll_wait(epfd_, events, 256, timeout_ms);
      if (n < 0) {
        if (errno == EINTR) continue;
        spdlog::error("HTTP client '{}': epoll_wait: {}", opts_.name, std::strerror(errno));
        break;
      }
      bool woken = false;
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == wakefd_) {
          woken = true;
          continue;
        }
        int flags = 0;
        if (events[i].events & EPOLLIN) flags |= CURL_CSELECT_IN;
        if (events[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
        if (events[i].events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
        curl_multi_socket_action(multi_, fd, flags, &running);
      }
      if (timer_deadline_ns_ >= 0 && monotonic_ns() >= timer_deadline_ns_) {
        timer_deadline_ns_ = -1;
        curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
      }
      if (woken) {
        uint64_t v;
        while (::read(wakefd_, &v, sizeof v) > 0) {
        }
        std::vector<std::unique_ptr<Transfer>> batch;
        {
          std::lock_guard lk(mu_);
          batch.swap(queued_);
          stop = stopping_;
        }
        for (auto& t : batch) {
          if (stop) deliver(std::move(t), Status::cancelled("HTTP client '" + opts_.name + "' stopped"));
          else waiting_.push_back(std::move(t));
        }
      }
      collect_done();
      start_waiting();
    }
    // Stopping: every transfer still running is called back, then dropped.
    for (Transfer* t : active_) {
      curl_multi_remove_handle(multi_, t->easy);
      curl_easy_cleanup(t->easy);
      t->easy = nullptr;
      deliver(std::unique_ptr<Transfer>(t), Status::cancelled("HTTP client '" + opts_.name + "' stopped"));
    }
    active_.clear();
    for (auto& t : waiting_) deliver(std::move(t), Status::cancelled("HTTP client '" + opts_.name + "' stopped"));
    waiting_.clear();
    std::lock_guard lk(cpu_mu_);
    timespec ts{};
    if (cpu_clock_valid_ && ::clock_gettime(cpu_clock_, &ts) == 0) last_cpu_ns_ = ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
    cpu_clock_valid_ = false;
  }

  void start_waiting() {
    bool started = false;
    while (!waiting_.empty() && (opts_.max_active == 0 || active_.size() < opts_.max_active)) {
      start(std::move(waiting_.front()));
      waiting_.pop_front();
      started = true;
    }
    // New transfers do their first steps at once (curl asks for a 0 ms timer).
    if (started) {
      int running = 0;
      curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
      collect_done();
      if (!waiting_.empty() && (opts_.max_active == 0 || active_.size() < opts_.max_active)) start_waiting();
    }
  }

  void start(std::unique_ptr<Transfer> t) {
    CURL* e;
    if (!idle_.empty()) {
      e = idle_.back();
      idle_.pop_back();
      curl_easy_reset(e);
    } else {
      e = curl_easy_init();
      if (!e) {
        deliver(std::move(t), Status::resource_exhausted("curl_easy_init failed"));
        return;
      }
    }
    t->easy = e;
    t->limit = opts_.max_response_bytes;
    const Request& r = t->request;
    curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    // Small transfer buffers: curl allocates them per transfer, and freeing
    // 64 KiB blocks makes malloc consolidate its heap every time.
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 16384L);
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, opts_.user_agent.c_str());
    long timeout = (r.timeout.count() > 0 ? r.timeout : opts_.default_timeout).count();
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opts_.connect_timeout.count()));
    if (!opts_.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, opts_.ca_file.c_str());
    if (!opts_.verify_tls) {
      curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    // No "Expect: 100-continue" round trip before bodies.
    t->headers = curl_slist_append(t->headers, "Expect:");
    for (const auto& [k, v] : r.headers) t->headers = curl_slist_append(t->headers, (k + ": " + v).c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    switch (r.method) {
      case Method::kGet: curl_easy_setopt(e, CURLOPT_HTTPGET, 1L); break;
      case Method::kHead: curl_easy_setopt(e, CURLOPT_NOBODY, 1L); break;
      case Method::kPost: set_body(e, r); break;
      case Method::kPut: set_body(e, r), curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT"); break;
      case Method::kPatch: set_body(e, r), curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PATCH"); break;
      case Method::kDelete:
        if (!r.body.empty()) set_body(e, r);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
        break;
    }
    Transfer* raw = t.release();
    if (CURLMcode mc = curl_multi_add_handle(multi_, e); mc != CURLM_OK) {
      raw->easy = nullptr;
      curl_easy_cleanup(e);
      deliver(std::unique_ptr<Transfer>(raw), Status::internal(std::string("curl_multi_add_handle: ") +
                                                               curl_multi_strerror(mc)));
      return;
    }
    active_.insert(raw);
  }

  static void set_body(CURL* e, const Request& r) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r.body.data());
  }

  void collect_done() {
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      CURL* e = m->easy_handle;
      CURLcode rc = m->data.result;
      Transfer* raw = nullptr;
      curl_easy_getinfo(e, CURLINFO_PRIVATE, reinterpret_cast<char**>(&raw));
      std::unique_ptr<Transfer> t(raw);
      active_.erase(raw);
      long connects = 0;
      curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &connects);
      connections_.fetch_add(static_cast<uint64_t>(connects), std::memory_order_relaxed);
      Result<Response> result = Status::ok();
      if (rc == CURLE_OK) {
        Response resp;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp.status);
        char* ct = nullptr;
        if (curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct) resp.content_type = ct;
        curl_off_t retry_after = 0;
        if (curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK && retry_after > 0) {
          resp.retry_after_s = retry_after;
        }
        resp.body = std::move(t->body);
        result = std::move(resp);
      } else {
        result = error_of(rc, *t);
      }
      curl_multi_remove_handle(multi_, e);
      t->easy = nullptr;
      if (idle_.size() < 4096) idle_.push_back(e);
      else curl_easy_cleanup(e);
      deliver(std::move(t), std::move(result));
    }
  }

  void deliver(std::unique_ptr<Transfer> t, Result<Response> result) {
    (result.is_ok() ? completed_ : failed_).fetch_add(1, std::memory_order_relaxed);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
    try {
      t->done(std::move(result));
    } catch (const std::exception& ex) {
      spdlog::error("HTTP client '{}': callback for {} threw: {}", opts_.name, t->request.url, ex.what());
    } catch (...) {
      spdlog::error("HTTP client '{}': callback for {} threw", opts_.name, t->request.url);
    }
  }

  HttpClientOptions opts_;
  CURLM* multi_ = nullptr;
  int epfd_ = -1;
  int wakefd_ = -1;
  std::thread thread_;

  std::mutex mu_;  // guards queued_, stopping_
  std::vector<std::unique_ptr<Transfer>> queued_;
  bool stopping_ = false;

  std::atomic<size_t> pending_{0};
  std::atomic<uint64_t> submitted_{0}, completed_{0}, failed_{0}, connections_{0};

  // Loop thread only.
  std::vector<CURL*> idle_;
  std::unordered_set<Transfer*> active_;
  std::deque<std::unique_ptr<Transfer>> waiting_;
  int64_t timer_deadline_ns_ = -1;

  mutable std::mutex cpu_mu_;  // guards the loop thread's CPU clock while it lives
  clockid_t cpu_clock_{};
  bool cpu_clock_valid_ = false;
  mutable int64_t last_cpu_ns_ = 0;
};

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::~HttpClient() = default;

Result<std::unique_ptr<HttpClient>> HttpClient::start(HttpClientOptions options) {
  if (options.max_pending == 0) return Status::invalid_argument("HTTP client max_pending must be positive");
  if (options.default_timeout.count() <= 0) return Status::invalid_argument("HTTP client timeout must be positive");
  auto impl = std::make_unique<Impl>(std::move(options));
  SLUICE_RETURN_IF_ERROR(impl->init());
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(impl)));
}

Result<std::shared_ptr<HttpClient>> HttpClient::shared(const HttpClientOptions& options) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<HttpClient>> clients;
  std::lock_guard lk(mu);
  if (auto c = clients[options.name].lock()) return c;
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<HttpClient> c, start(options));
  std::shared_ptr<HttpClient> s(std::move(c));
  clients[options.name] = s;
  return s;
}

Status HttpClient::submit(Request request, Callback done) { return impl_->submit(std::move(request), std::move(done)); }
HttpClientStats HttpClient::stats() const { return impl_->stats(); }
const HttpClientOptions& HttpClient::options() const { return impl_->options(); }

}  // namespace sluice::http_client
