// HttpClient against a real HTTP server on a loopback port (libevent's
// evhttp in the test process): answers, errors, limits, connection reuse,
// many requests in flight on one thread, shutdown.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "operators/async/http/http_client.h"
#include "tests/async/support/http_test_server.h"
#include "tests/async/support/scoring.h"

namespace sluice::http_client {
namespace {

using namespace std::chrono_literals;
using async_test::HttpServerOptions;
using async_test::HttpTestServer;

std::unique_ptr<HttpTestServer> server(HttpServerOptions o = {}) {
  auto s = HttpTestServer::start(o);
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  return std::move(s).value();
}

std::unique_ptr<HttpClient> client(HttpClientOptions o = {}) {
  auto c = HttpClient::start(std::move(o));
  EXPECT_TRUE(c.is_ok()) << c.status().to_string();
  return std::move(c).value();
}

/// Submits and waits for the callback.
Result<Response> call(HttpClient& c, Request r) {
  std::promise<Result<Response>> p;
  auto f = p.get_future();
  Status st = c.submit(std::move(r), [&p](Result<Response> res) { p.set_value(std::move(res)); });
  if (!st.is_ok()) return st;
  if (f.wait_for(20s) != std::future_status::ready) return Status::timeout("no callback within 20 s");
  return f.get();
}

Request post(const std::string& url, std::string body) {
  Request r;
  r.method = Method::kPost;
  r.url = url;
  r.body = std::move(body);
  r.headers = {{"Content-Type", "application/json"}};
  return r;
}

TEST(HttpClient, PostsJsonAndReadsTheAnswer) {
  auto s = server();
  auto c = client();
  auto r = call(*c, post(s->url("/score"), R"({"id":42,"amount":3.5})"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->status, 200);
  char want[64];
  std::snprintf(want, sizeof want, "{\"id\":42,\"score\":%.1f}", async_test::expected_score(42));
  EXPECT_EQ(r->body, want);
  EXPECT_EQ(r->content_type, "application/json");
  // Bodies of every size come back whole (no Expect: 100-continue stall).
  std::string big(200'000, 'a');
  auto e = call(*c, post(s->url("/echo"), big));
  ASSERT_TRUE(e.is_ok());
  EXPECT_EQ(e->body, big);
}

TEST(HttpClient, HttpErrorsAreAnswersNotFailures) {
  auto s = server();
  auto c = client();
  Request r;
  r.url = s->url("/status?code=503");
  auto res = call(*c, r);
  ASSERT_TRUE(res.is_ok());
  EXPECT_EQ(res->status, 503);
  EXPECT_FALSE(res->ok());
}

TEST(HttpClient, ReusesConnectionsAcrossRequests) {
  auto s = server();
  auto c = client();
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(call(*c, post(s->url("/score"), "{\"id\":1}")).is_ok());
  EXPECT_EQ(s->connections(), 1u);
  EXPECT_EQ(c->stats().connections, 1u);
  EXPECT_EQ(c->stats().completed, 50u);
}

TEST(HttpClient, ManyRequestsInFlightCompleteOnOneThreadWithABoundedPool) {
  HttpServerOptions so;
  so.min_latency_us = 5'000;
  so.max_latency_us = 20'000;
  auto s = server(so);
  HttpClientOptions co;
  co.max_host_connections = 32;
  co.max_active = 32;
  auto c = client(co);
  constexpr int kN = 2000;
  std::mutex mu;
  std::condition_variable cv;
  std::set<std::thread::id> threads;
  std::set<int64_t> ids;
  int done = 0, bad = 0;
  for (int i = 0; i < kN; ++i) {
    ASSERT_TRUE(c->submit(post(s->url("/score"), "{\"id\":" + std::to_string(i) + "}"), [&, i](Result<Response> r) {
                  std::lock_guard lk(mu);
                  threads.insert(std::this_thread::get_id());
                  if (!r.is_ok() || r->status != 200 || r->body.find("\"id\":" + std::to_string(i) + ",") == std::string::npos) {
                    ++bad;
                  } else {
                    ids.insert(i);
                  }
                  if (++done == kN) cv.notify_all();
                }).is_ok());
  }
  std::unique_lock lk(mu);
  ASSERT_TRUE(cv.wait_for(lk, 60s, [&] { return done == kN; }));
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(ids.size(), static_cast<size_t>(kN));
  EXPECT_EQ(threads.size(), 1u);  // every callback on the client's loop thread
  EXPECT_LE(s->connections(), 32u);
  EXPECT_EQ(c->stats().pending, 0u);
}

TEST(HttpClient, ARequestPastItsTimeoutFailsWithTimeout) {
  auto s = server();
  s->set_stalled(true);
  auto c = client();
  Request r = post(s->url("/score"), "{\"id\":1}");
  r.timeout = 150ms;
  auto t0 = std::chrono::steady_clock::now();
  auto res = call(*c, r);
  ASSERT_FALSE(res.is_ok());
  EXPECT_EQ(res.status().code(), StatusCode::kTimeout) << res.status().to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  s->set_stalled(false);
}

TEST(HttpClient, AClosedPortFailsWithUnavailableAndTheClientRecoversWhenItIsBack) {
  auto s = server();
  auto c = client();
  ASSERT_TRUE(call(*c, post(s->url("/score"), "{\"id\":1}")).is_ok());
  s->down();
  auto res = call(*c, post(s->url("/score"), "{\"id\":1}"));
  ASSERT_FALSE(res.is_ok());
  EXPECT_EQ(res.status().code(), StatusCode::kUnavailable) << res.status().to_string();
  ASSERT_TRUE(s->up().is_ok());
  auto again = call(*c, post(s->url("/score"), "{\"id\":1}"));
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ(again->status, 200);
}

TEST(HttpClient, AResponseOverTheLimitFailsWithoutBeingKept) {
  auto s = server();
  HttpClientOptions o;
  o.max_response_bytes = 1000;
  auto c = client(o);
  Request r;
  r.url = s->url("/big?bytes=1000");
  EXPECT_TRUE(call(*c, r).is_ok());
  r.url = s->url("/big?bytes=100000");
  auto res = call(*c, r);
  ASSERT_FALSE(res.is_ok());
  EXPECT_EQ(res.status().code(), StatusCode::kResourceExhausted);
}

TEST(HttpClient, RefusesRequestsBeyondMaxPendingAndOtherSchemes) {
  auto s = server();
  s->set_stalled(true);
  HttpClientOptions o;
  o.max_pending = 3;
  auto c = client(o);
  std::atomic<int> callbacks{0};
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c->submit(post(s->url("/score"), "{\"id\":1}"), [&](Result<Response>) { ++callbacks; }).is_ok());
  }
  Status st = c->submit(post(s->url("/score"), "{\"id\":1}"), [&](Result<Response>) { ++callbacks; });
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  // Only http and https: a file:// URL (say, from a record) is refused.
  c.reset();  // stops: the three pending requests are called back (cancelled)
  EXPECT_EQ(callbacks.load(), 3);
  auto c2 = client();
  Request f;
  f.url = "file:///etc/passwd";
  auto res = call(*c2, f);
  ASSERT_FALSE(res.is_ok());
  EXPECT_EQ(res.status().code(), StatusCode::kInvalidArgument) << res.status().to_string();
  s->set_stalled(false);
}

// The server's stop once hung when it came before its thread had started
// its event loop (a test that never needed the server, on a loaded
// machine): libevent's loopbreak is lost on a loop not yet running.
TEST(HttpTestServer, StopsEvenBeforeItsThreadRunsItsLoop) {
  HttpServerOptions o;
  o.loop_start_delay_ms = 200;
  auto s = server(o);
  auto c = client();
  std::atomic<int> callbacks{0};
  ASSERT_TRUE(c->submit(post(s->url("/score"), "{\"id\":1}"), [&](Result<Response>) { ++callbacks; }).is_ok());
  c.reset();
  EXPECT_EQ(callbacks.load(), 1);
  auto t0 = std::chrono::steady_clock::now();
  s.reset();  // before the loop runs: it must still end
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

// An outage started right after start() — before, while or just after the
// server's thread starts its loop — must end at once, and up() must bring
// the server back on its port, serving, whatever the timing.
TEST(HttpTestServer, GoesDownRightAfterStartAndComesBackUp) {
  auto c = client();
  for (int64_t delay_ms : {0, 1, 10}) {
    for (int i = 0; i < 30; ++i) {
      HttpServerOptions o;
      o.loop_start_delay_ms = delay_ms;
      auto s = server(o);
      auto t0 = std::chrono::steady_clock::now();
      s->down();
      ASSERT_LT(std::chrono::steady_clock::now() - t0, 5s) << "down() " << i << " with the loop starting after "
                                                           << delay_ms << " ms";
      s->down();  // twice: nothing to do
      if (i % 10 == 0) {
        ASSERT_TRUE(s->up().is_ok());
        auto r = call(*c, post(s->url("/score"), "{\"id\":7}"));
        ASSERT_TRUE(r.is_ok()) << r.status().to_string();
        EXPECT_EQ(r->status, 200);
        t0 = std::chrono::steady_clock::now();
        s->down();
        ASSERT_LT(std::chrono::steady_clock::now() - t0, 5s);
      }
      t0 = std::chrono::steady_clock::now();
      s.reset();
      ASSERT_LT(std::chrono::steady_clock::now() - t0, 5s);
    }
  }
}

// The outage controls may come from two threads at once (a test's helper
// thread takes the server down and up while the test stalls it and reads
// its counters), with requests arriving meanwhile.
TEST(HttpTestServer, OutageAndStallControlsFromTwoThreadsAtOnceAreSafe) {
  auto s = server();
  auto c = client();
  std::atomic<bool> done{false};
  std::thread flapper([&] {
    for (int i = 0; i < 10; ++i) {
      s->down();
      EXPECT_TRUE(s->up().is_ok());
    }
    done.store(true);
  });
  for (int i = 0; !done.load(); ++i) {
    s->set_stalled(i % 2 == 0);
    EXPECT_GE(s->cpu_ns(), 0);
    if (i % 50 == 0) (void)c->submit(post(s->url("/score"), "{\"id\":1}"), [](Result<Response>) {});
  }
  flapper.join();
  s->set_stalled(false);
  auto r = call(*c, post(s->url("/score"), "{\"id\":3}"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->status, 200);
}

TEST(HttpClient, StoppingCallsBackEveryPendingRequestWithCancelled) {
  auto s = server();
  s->set_stalled(true);
  auto c = client();
  std::mutex mu;
  std::vector<StatusCode> codes;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(c->submit(post(s->url("/score"), "{\"id\":1}"), [&](Result<Response> r) {
                  std::lock_guard lk(mu);
                  codes.push_back(r.status().code());
                }).is_ok());
  }
  std::this_thread::sleep_for(50ms);
  c.reset();
  ASSERT_EQ(codes.size(), 20u);
  for (auto code : codes) EXPECT_EQ(code, StatusCode::kCancelled);
  s->set_stalled(false);
}

TEST(HttpClient, SharedClientsAreOnePerNameWhileHeld) {
  HttpClientOptions o;
  o.name = "shared-probe";
  auto a = HttpClient::shared(o);
  auto b = HttpClient::shared(o);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(a->get(), b->get());
  HttpClient* first = a->get();
  a = Status::cancelled("drop");
  b = Status::cancelled("drop");
  auto c = HttpClient::shared(o);
  ASSERT_TRUE(c.is_ok());
  (void)first;  // a new client: the first one stopped with its last holder
  EXPECT_EQ((*c)->stats().submitted, 0u);
}

}  // namespace
}  // namespace sluice::http_client
