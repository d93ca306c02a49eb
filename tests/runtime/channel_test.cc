#include "engine/runtime/channel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

namespace sluice::runtime {
namespace {

using namespace std::chrono_literals;

// Generous bound for "this happens promptly"; a test only waits this long
// when the behaviour under test is broken.
constexpr auto kTimeout = 10s;

Buffer buf(std::string s) { return Buffer{std::move(s)}; }

/// Pushes `b` on another thread; the future holds push()'s result.
std::future<bool> push_async(Channel& ch, Buffer b, const CancelFlag* cancel) {
  return std::async(std::launch::async, [&ch, b = std::move(b), cancel]() mutable {
    return ch.push(std::move(b), cancel);
  });
}

TEST(Channel, KeepsFifoOrderUpToCapacity) {
  Channel ch("c", 3);
  CancelFlag cancel{false};
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(ch.push(buf(std::to_string(i)), &cancel));
  EXPECT_EQ(ch.size(), 3u);
  Buffer out;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(ch.try_pop(out));
    EXPECT_EQ(out.data, std::to_string(i));
  }
  EXPECT_FALSE(ch.try_pop(out)) << "an empty channel has nothing to pop";
  EXPECT_EQ(ch.size(), 0u);
}

TEST(Channel, PushBlocksWhenFullAndResumesWhenTheConsumerPops) {
  Channel ch("c", 2);
  CancelFlag cancel{false};
  ASSERT_TRUE(ch.push(buf("a"), &cancel));
  ASSERT_TRUE(ch.push(buf("b"), &cancel));

  auto blocked = push_async(ch, buf("c"), &cancel);
  // The producer must still be waiting: the channel is full and nobody pops.
  EXPECT_EQ(blocked.wait_for(200ms), std::future_status::timeout);
  EXPECT_EQ(ch.size(), 2u) << "a full channel must not grow";

  Buffer out;
  ASSERT_TRUE(ch.try_pop(out));
  EXPECT_EQ(out.data, "a");
  ASSERT_EQ(blocked.wait_for(kTimeout), std::future_status::ready)
      << "popping from a full channel must wake the blocked producer";
  EXPECT_TRUE(blocked.get());
  ASSERT_TRUE(ch.try_pop(out));
  EXPECT_EQ(out.data, "b");
  ASSERT_TRUE(ch.try_pop(out));
  EXPECT_EQ(out.data, "c");
}

TEST(Channel, SettingTheCancelFlagUnblocksAFullPushWhichFails) {
  Channel ch("c", 1);
  CancelFlag cancel{false};
  ASSERT_TRUE(ch.push(buf("a"), &cancel));
  auto blocked = push_async(ch, buf("b"), &cancel);
  EXPECT_EQ(blocked.wait_for(100ms), std::future_status::timeout);
  cancel.store(true);
  ASSERT_EQ(blocked.wait_for(kTimeout), std::future_status::ready)
      << "a cancelled producer must stop waiting for space";
  EXPECT_FALSE(blocked.get()) << "a push abandoned by cancellation reports failure";
  EXPECT_EQ(ch.size(), 1u) << "the abandoned buffer must not be queued";
}

TEST(Channel, CloseUnblocksAFullPushAndDropsLaterPushes) {
  Channel ch("c", 1);
  CancelFlag cancel{false};
  ASSERT_TRUE(ch.push(buf("a"), &cancel));
  auto blocked = push_async(ch, buf("b"), &cancel);
  EXPECT_EQ(blocked.wait_for(100ms), std::future_status::timeout);
  ch.close();
  ASSERT_EQ(blocked.wait_for(kTimeout), std::future_status::ready)
      << "closing the channel must wake the blocked producer";
  EXPECT_FALSE(blocked.get());
  EXPECT_TRUE(ch.closed());
  EXPECT_FALSE(ch.push(buf("c"), &cancel)) << "pushes to a closed channel fail";
  ch.push_unbounded(buf("d"));
  EXPECT_EQ(ch.size(), 1u) << "nothing is queued after close";
}

TEST(Channel, PushWithoutCancelFlagIsUnblockedByClose) {
  Channel ch("c", 1);
  ASSERT_TRUE(ch.push(buf("a"), nullptr));
  auto blocked = push_async(ch, buf("b"), nullptr);
  EXPECT_EQ(blocked.wait_for(100ms), std::future_status::timeout);
  ch.close();
  ASSERT_EQ(blocked.wait_for(kTimeout), std::future_status::ready);
  EXPECT_FALSE(blocked.get());
}

TEST(Channel, PushUnboundedGoesPastCapacity) {
  Channel ch("c", 1);
  CancelFlag cancel{false};
  ASSERT_TRUE(ch.push(buf("a"), &cancel));
  ch.push_unbounded(buf("end"));
  EXPECT_EQ(ch.size(), 2u);
  Buffer out;
  ASSERT_TRUE(ch.try_pop(out));
  EXPECT_EQ(out.data, "a");
  ASSERT_TRUE(ch.try_pop(out));
  EXPECT_EQ(out.data, "end");
}

TEST(Channel, BlockedTimeIsAccounted) {
  Channel ch("c", 1);
  CancelFlag cancel{false};
  ASSERT_TRUE(ch.push(buf("a"), &cancel));
  int64_t blocked_ns = 0;
  std::atomic<bool> started{false}, pushed{false};
  std::thread producer([&] {
    started.store(true);
    EXPECT_TRUE(ch.push(buf("b"), &cancel, &blocked_ns));
    pushed.store(true);
  });
  while (!started.load()) std::this_thread::yield();
  // Keep the channel full for a known time (this sleep sets up the
  // duration being measured; it does not wait for a condition).
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(pushed.load()) << "the push cannot complete while the channel is full";
  Buffer out;
  ASSERT_TRUE(ch.try_pop(out));
  producer.join();
  EXPECT_TRUE(pushed.load());
  EXPECT_GE(blocked_ns, 100'000'000) << "the producer waited ~200 ms for space";
}

// The consumer's TaskSignal is how a sleeping task learns of new data: a
// wait that is not notified would sleep to its deadline.
TEST(Channel, PushNotifiesTheConsumerSignal) {
  Channel ch("c", 4);
  TaskSignal signal;
  ch.set_consumer_signal(&signal);
  CancelFlag cancel{false};

  std::atomic<bool> woke{false};
  auto waiter = std::async(std::launch::async, [&] {
    signal.wait_until(std::chrono::steady_clock::now() + 60s);
    woke.store(true);
  });
  std::this_thread::sleep_for(50ms);  // let the consumer go to sleep (not an assertion)
  ASSERT_TRUE(ch.push(buf("x"), &cancel));
  ASSERT_EQ(waiter.wait_for(kTimeout), std::future_status::ready)
      << "a push into an empty channel must wake its consumer";
  EXPECT_TRUE(woke.load());
}

TEST(Channel, PushUnboundedNotifiesTheConsumerSignal) {
  Channel ch("c", 1);
  TaskSignal signal;
  ch.set_consumer_signal(&signal);
  ch.push_unbounded(buf("end"));
  // The notification was recorded as pending: this wait returns at once.
  auto start = std::chrono::steady_clock::now();
  signal.wait_until(start + 60s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, kTimeout);
}

TEST(TaskSignal, NotifyBeforeWaitIsNotLost) {
  TaskSignal signal;
  signal.notify();
  auto start = std::chrono::steady_clock::now();
  signal.wait_until(start + 60s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, kTimeout);
}

TEST(Channel, ManyBuffersPassThroughASmallChannelInOrder) {
  Channel ch("c", 2);
  CancelFlag cancel{false};
  constexpr int kN = 5000;
  std::thread producer([&] {
    for (int i = 0; i < kN; ++i) ASSERT_TRUE(ch.push(buf(std::to_string(i)), &cancel));
  });
  int next = 0;
  size_t max_size = 0;
  auto deadline = std::chrono::steady_clock::now() + kTimeout;
  Buffer out;
  while (next < kN && std::chrono::steady_clock::now() < deadline) {
    max_size = std::max(max_size, ch.size());
    if (ch.try_pop(out)) {
      ASSERT_EQ(out.data, std::to_string(next));
      ++next;
    } else {
      std::this_thread::yield();
    }
  }
  producer.join();
  EXPECT_EQ(next, kN);
  EXPECT_LE(max_size, 2u) << "the queue never holds more than its capacity";
}

}  // namespace
}  // namespace sluice::runtime
