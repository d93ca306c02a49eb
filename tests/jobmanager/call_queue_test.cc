#include "engine/jobmanager/call_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace sluice::jobmanager {
namespace {

using namespace std::chrono_literals;

TEST(CallQueue, RunsCallsInOrderWithTheirDeadline) {
  CallQueue q("tm");
  std::vector<int> order;
  std::vector<std::future<grpc::Status>> done;
  for (int i = 0; i < 20; ++i) {
    done.push_back(q.submit(
        [&, i](grpc::ClientContext& ctx) {
          EXPECT_LT(ctx.deadline(), std::chrono::system_clock::now() + 2s);
          order.push_back(i);
          return grpc::Status::OK;
        },
        Duration(1000)));
  }
  for (auto& f : done) EXPECT_TRUE(f.get().ok());
  for (int i = 0; i < 20; ++i) EXPECT_EQ(order[i], i);
}

TEST(CallQueue, ClosingDropsQueuedCallsAndReleasesTheOneInFlight) {
  std::atomic<bool> in_flight{false}, released{false};
  std::atomic<int> later_ran{0};
  auto q = std::make_unique<CallQueue>("tm-hung");
  // A call that hangs until cancelled, as a call to a stopped process does.
  auto hung = q->submit(
      [&](grpc::ClientContext& ctx) {
        in_flight = true;
        while (!released) std::this_thread::sleep_for(5ms);
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      },
      Duration(60'000));
  auto queued = q->submit([&](grpc::ClientContext&) { ++later_ran; return grpc::Status::OK; }, Duration(1000));
  while (!in_flight) std::this_thread::sleep_for(1ms);
  q->close();
  EXPECT_EQ(queued.wait_for(0s), std::future_status::ready) << "queued calls fail at once";
  EXPECT_EQ(queued.get().error_code(), grpc::StatusCode::CANCELLED);
  auto after = q->submit([&](grpc::ClientContext&) { ++later_ran; return grpc::Status::OK; }, Duration(1000));
  EXPECT_EQ(after.get().error_code(), grpc::StatusCode::CANCELLED);
  released = true;
  EXPECT_EQ(hung.get().error_code(), grpc::StatusCode::CANCELLED);
  q.reset();
  EXPECT_EQ(later_ran.load(), 0);
}

// A cancel that timed out on a loaded machine (deploy_test: two live
// taskmanagers dropped that way, and the next submit found none) drops a
// taskmanager only if it also stopped heartbeating.
TEST(LostOnFailedCall, OnlyAnUnreachableOrSilentTaskManagerIsLost) {
  const grpc::Status refused(grpc::StatusCode::UNAVAILABLE, "connection refused");
  const grpc::Status timed_out(grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded");
  const int64_t queued = 10'000;
  EXPECT_TRUE(lost_on_failed_call(refused, queued, queued + 500)) << "cannot be reached: lost, heartbeats or not";
  EXPECT_TRUE(lost_on_failed_call(timed_out, queued, queued - 300)) << "no heartbeat since the call: frozen or cut off";
  EXPECT_TRUE(lost_on_failed_call(timed_out, queued, queued)) << "no heartbeat after the call was queued";
  EXPECT_FALSE(lost_on_failed_call(timed_out, queued, queued + 1)) << "it heartbeats: alive, only slow";
  EXPECT_FALSE(lost_on_failed_call(grpc::Status::OK, queued, 0));
  EXPECT_FALSE(lost_on_failed_call(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "refused"), queued, 0))
      << "an answer, even a refusal, is not a lost taskmanager";
}

}  // namespace
}  // namespace sluice::jobmanager
