// AsyncUnaryClient against a real gRPC server (the test Scorer service) on
// a loopback port: replies, deadlines, server errors, outages, shutdown.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "operators/async/grpc/grpc_client.h"
#include "tests/async/support/grpc_test_server.h"
#include "tests/async/support/scoring.grpc.pb.h"
#include "tests/async/support/scoring.h"

namespace sluice::grpc_client {
namespace {

using namespace std::chrono_literals;
using async_test::GrpcServerOptions;
using async_test::GrpcTestServer;
using sluice::test::ScoreReply;
using sluice::test::Scorer;
using sluice::test::ScoreRequest;

std::unique_ptr<GrpcTestServer> server(GrpcServerOptions o = {}) {
  auto s = GrpcTestServer::start(o);
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  return std::move(s).value();
}

struct Reply {
  grpc::Status status;
  ScoreReply reply;
};

Reply score(AsyncUnaryClient& c, Scorer::Stub& stub, int64_t id, Duration deadline = 5000ms) {
  std::promise<Reply> p;
  auto f = p.get_future();
  ScoreRequest req;
  req.set_id(id);
  Status st = c.call(stub, &Scorer::Stub::PrepareAsyncScore, req, deadline,
                     std::function<void(const grpc::Status&, ScoreReply&&)>(
                         [&p](const grpc::Status& s, ScoreReply&& r) { p.set_value({s, std::move(r)}); }));
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  if (f.wait_for(20s) != std::future_status::ready) return {grpc::Status(grpc::StatusCode::UNKNOWN, "no callback"), {}};
  return f.get();
}

TEST(AsyncUnaryClient, CallsAGeneratedStubAndDeliversTheReply) {
  auto s = server();
  auto stub = Scorer::NewStub(grpc::CreateChannel(s->address(), grpc::InsecureChannelCredentials()));
  AsyncUnaryClient c;
  Reply r = score(c, *stub, 77);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.reply.id(), 77);
  EXPECT_DOUBLE_EQ(r.reply.score(), async_test::expected_score(77));
}

TEST(AsyncUnaryClient, ManyCallsInFlightAllCompleteOnTheQueueThread) {
  GrpcServerOptions o;
  o.min_latency_us = 1000;
  o.max_latency_us = 10'000;
  auto s = server(o);
  auto stub = Scorer::NewStub(grpc::CreateChannel(s->address(), grpc::InsecureChannelCredentials()));
  AsyncUnaryClient c;
  constexpr int kN = 1000;
  std::mutex mu;
  std::condition_variable cv;
  std::set<int64_t> ids;
  std::set<std::thread::id> threads;
  int done = 0;
  for (int i = 0; i < kN; ++i) {
    ScoreRequest req;
    req.set_id(i);
    ASSERT_TRUE(c.call(*stub, &Scorer::Stub::PrepareAsyncScore, req, 10000ms,
                       std::function<void(const grpc::Status&, ScoreReply&&)>(
                           [&](const grpc::Status& st, ScoreReply&& r) {
                             std::lock_guard lk(mu);
                             if (st.ok() && r.score() == async_test::expected_score(r.id())) ids.insert(r.id());
                             threads.insert(std::this_thread::get_id());
                             if (++done == kN) cv.notify_all();
                           }))
                    .is_ok());
  }
  std::unique_lock lk(mu);
  ASSERT_TRUE(cv.wait_for(lk, 60s, [&] { return done == kN; }));
  EXPECT_EQ(ids.size(), static_cast<size_t>(kN));
  EXPECT_EQ(threads.size(), 1u);
  EXPECT_EQ(c.pending(), 0u);
}

TEST(AsyncUnaryClient, ADeadlinePassedIsReportedAsATimeout) {
  GrpcServerOptions o;
  o.min_latency_us = o.max_latency_us = 500'000;
  auto s = server(o);
  auto stub = Scorer::NewStub(grpc::CreateChannel(s->address(), grpc::InsecureChannelCredentials()));
  AsyncUnaryClient c;
  Reply r = score(c, *stub, 1, 50ms);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(from_grpc(r.status).code(), StatusCode::kTimeout);
}

TEST(AsyncUnaryClient, ServerFailuresAndOutagesAreReportedAndTheChannelRecovers) {
  auto s = server();
  auto stub = Scorer::NewStub(grpc::CreateChannel(s->address(), grpc::InsecureChannelCredentials()));
  AsyncUnaryClient c;
  s->set_failure_rate(1.0);
  Reply failed = score(c, *stub, 1);
  EXPECT_EQ(failed.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  s->set_failure_rate(0);
  s->down();
  Reply down = score(c, *stub, 2, 300ms);
  EXPECT_FALSE(down.status.ok());
  EXPECT_TRUE(from_grpc(down.status).code() == StatusCode::kUnavailable ||
              from_grpc(down.status).code() == StatusCode::kTimeout)
      << down.status.error_message();
  ASSERT_TRUE(s->up().is_ok());
  Reply ok;
  for (int i = 0; i < 50 && !ok.status.ok(); ++i) {  // the channel reconnects with its own backoff
    ok = score(c, *stub, 3, 1000ms);
    if (!ok.status.ok()) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
}

TEST(AsyncUnaryClient, DestructionCancelsCallsStillRunningAndCallsThemBack) {
  GrpcServerOptions o;
  o.min_latency_us = o.max_latency_us = 10'000'000;
  auto s = server(o);
  auto stub = Scorer::NewStub(grpc::CreateChannel(s->address(), grpc::InsecureChannelCredentials()));
  std::atomic<int> cancelled{0}, callbacks{0};
  {
    AsyncUnaryClient c;
    for (int i = 0; i < 10; ++i) {
      ScoreRequest req;
      req.set_id(i);
      ASSERT_TRUE(c.call(*stub, &Scorer::Stub::PrepareAsyncScore, req, 60000ms,
                         std::function<void(const grpc::Status&, ScoreReply&&)>(
                             [&](const grpc::Status& st, ScoreReply&&) {
                               ++callbacks;
                               if (st.error_code() == grpc::StatusCode::CANCELLED) ++cancelled;
                             }))
                      .is_ok());
    }
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(callbacks.load(), 10);
  EXPECT_EQ(cancelled.load(), 10);
}

TEST(AsyncUnaryClient, RefusesCallsBeyondMaxPending) {
  GrpcServerOptions o;
  o.min_latency_us = o.max_latency_us = 200'000;
  auto s = server(o);
  auto stub = Scorer::NewStub(grpc::CreateChannel(s->address(), grpc::InsecureChannelCredentials()));
  AsyncUnaryClientOptions co;
  co.max_pending = 2;
  AsyncUnaryClient c(co);
  auto cb = std::function<void(const grpc::Status&, ScoreReply&&)>([](const grpc::Status&, ScoreReply&&) {});
  ScoreRequest req;
  EXPECT_TRUE(c.call(*stub, &Scorer::Stub::PrepareAsyncScore, req, 5000ms, cb).is_ok());
  EXPECT_TRUE(c.call(*stub, &Scorer::Stub::PrepareAsyncScore, req, 5000ms, cb).is_ok());
  EXPECT_EQ(c.call(*stub, &Scorer::Stub::PrepareAsyncScore, req, 5000ms, cb).code(), StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace sluice::grpc_client
