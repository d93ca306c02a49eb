#include "state/timers.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace sluice::state {
namespace {

using Timer = std::tuple<int64_t, int32_t, std::string, std::string>;  // ts, kg, key, ns

Timer as_tuple(const TimerEntry& e) { return {e.ts, e.kg.value(), e.key, e.ns}; }

std::vector<Timer> drain(TimerQueue& q) {
  std::vector<Timer> out;
  TimerEntry e;
  while (q.pop_due(std::numeric_limits<int64_t>::max(), e)) out.push_back(as_tuple(e));
  return out;
}

TEST(TimerQueue, StartsEmpty) {
  TimerQueue q;
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.next_ts(), std::nullopt);
  TimerEntry e;
  EXPECT_FALSE(q.pop_due(std::numeric_limits<int64_t>::max(), e));
}

TEST(TimerQueue, PopsInTimestampOrderRegardlessOfInsertionOrder) {
  TimerQueue q;
  std::vector<int64_t> ts = {50, -10, 30, 1000, 0, 20, 40, std::numeric_limits<int64_t>::max(),
                             std::numeric_limits<int64_t>::min()};
  for (size_t i = 0; i < ts.size(); ++i) {
    EXPECT_TRUE(q.add(ts[i], KeyGroup(static_cast<int32_t>(i % 3)), "k" + std::to_string(i), ""));
  }
  std::vector<int64_t> sorted = ts;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(q.next_ts(), sorted.front());
  std::vector<int64_t> popped;
  for (const auto& t : drain(q)) popped.push_back(std::get<0>(t));
  EXPECT_EQ(popped, sorted);
  EXPECT_TRUE(q.empty());
}

TEST(TimerQueue, EqualTimestampsAreOrderedByKeyGroupKeyAndNamespace) {
  TimerQueue q;
  q.add(5, KeyGroup(2), "a", "x");
  q.add(5, KeyGroup(1), "z", "x");
  q.add(5, KeyGroup(1), "b", "y");
  q.add(5, KeyGroup(1), "b", "x");
  q.add(4, KeyGroup(9), "q", "q");
  std::vector<Timer> expected = {
      {4, 9, "q", "q"}, {5, 1, "b", "x"}, {5, 1, "b", "y"}, {5, 1, "z", "x"}, {5, 2, "a", "x"}};
  EXPECT_EQ(drain(q), expected);
}

TEST(TimerQueue, AddingTheSameTimerTwiceKeepsOne) {
  TimerQueue q;
  EXPECT_TRUE(q.add(10, KeyGroup(3), "key", "ns"));
  EXPECT_FALSE(q.add(10, KeyGroup(3), "key", "ns"));
  EXPECT_EQ(q.size(), 1u);
  // Any difference makes it another timer.
  EXPECT_TRUE(q.add(11, KeyGroup(3), "key", "ns"));
  EXPECT_TRUE(q.add(10, KeyGroup(3), "key2", "ns"));
  EXPECT_TRUE(q.add(10, KeyGroup(3), "key", "ns2"));
  EXPECT_TRUE(q.add(10, KeyGroup(3), "key", ""));
  EXPECT_EQ(q.size(), 5u);
}

TEST(TimerQueue, KeysAndNamespacesAreBinarySafe) {
  TimerQueue q;
  std::string k1("a\0b", 3), k2("a\0c", 3);
  EXPECT_TRUE(q.add(1, KeyGroup(0), k1, std::string("\0", 1)));
  EXPECT_TRUE(q.add(1, KeyGroup(0), k2, std::string("\0", 1)));
  EXPECT_FALSE(q.add(1, KeyGroup(0), k1, std::string("\0", 1)));
  EXPECT_EQ(q.size(), 2u);
  EXPECT_TRUE(q.remove(1, KeyGroup(0), k2, std::string("\0", 1)));
  auto rest = drain(q);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(std::get<2>(rest[0]), k1);
}

TEST(TimerQueue, RemoveDeletesOnlyTheExactTimer) {
  TimerQueue q;
  q.add(10, KeyGroup(1), "k", "a");
  q.add(10, KeyGroup(1), "k", "b");
  q.add(20, KeyGroup(1), "k", "a");
  EXPECT_FALSE(q.remove(10, KeyGroup(1), "k", "c"));
  EXPECT_FALSE(q.remove(15, KeyGroup(1), "k", "a"));
  EXPECT_FALSE(q.remove(10, KeyGroup(1), "other", "a"));
  EXPECT_TRUE(q.remove(10, KeyGroup(1), "k", "a"));
  EXPECT_FALSE(q.remove(10, KeyGroup(1), "k", "a")) << "already removed";
  std::vector<Timer> expected = {{10, 1, "k", "b"}, {20, 1, "k", "a"}};
  EXPECT_EQ(drain(q), expected);
}

TEST(TimerQueue, RemovedTimerCanBeAddedAgain) {
  TimerQueue q;
  q.add(10, KeyGroup(0), "k", "");
  ASSERT_TRUE(q.remove(10, KeyGroup(0), "k", ""));
  EXPECT_TRUE(q.add(10, KeyGroup(0), "k", ""));
  EXPECT_EQ(q.size(), 1u);
}

TEST(TimerQueue, PopDueReturnsOnlyTimersAtOrBeforeTheLimit) {
  TimerQueue q;
  for (int64_t ts : {100, 200, 300}) q.add(ts, KeyGroup(0), "k" + std::to_string(ts), "");
  TimerEntry e;
  EXPECT_FALSE(q.pop_due(99, e));
  EXPECT_EQ(q.size(), 3u);
  ASSERT_TRUE(q.pop_due(200, e));
  EXPECT_EQ(as_tuple(e), (Timer{100, 0, "k100", ""}));
  ASSERT_TRUE(q.pop_due(200, e)) << "a timer exactly at the limit is due";
  EXPECT_EQ(as_tuple(e), (Timer{200, 0, "k200", ""}));
  EXPECT_FALSE(q.pop_due(200, e));
  EXPECT_EQ(q.next_ts(), 300);
  EXPECT_EQ(q.size(), 1u);
}

TEST(TimerQueue, PoppedTimerCanBeSetAgain) {
  // A timer firing may register the same timer (e.g. a periodic one).
  TimerQueue q;
  q.add(5, KeyGroup(0), "k", "");
  TimerEntry e;
  ASSERT_TRUE(q.pop_due(5, e));
  EXPECT_TRUE(q.add(5, KeyGroup(0), "k", ""));
}

TEST(TimerQueue, ClearRemovesEverything) {
  TimerQueue q;
  q.add(1, KeyGroup(0), "a", "");
  q.add(2, KeyGroup(1), "b", "");
  q.clear();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.next_ts(), std::nullopt);
}

// Timers spread over key groups 0..9 with several per group.
TimerQueue sample_queue(std::vector<Timer>& all) {
  TimerQueue q;
  for (int32_t kg = 0; kg < 10; ++kg) {
    for (int i = 0; i < kg % 4; ++i) {
      int64_t ts = (i % 2 ? -1 : 1) * (int64_t{1} << (kg * 5 + i)) + kg;
      std::string key = "key-" + std::to_string(kg) + "-" + std::to_string(i);
      std::string ns = i == 1 ? std::string("\0ns", 3) : "";
      q.add(ts, KeyGroup(kg), key, ns);
      all.push_back({ts, kg, key, ns});
    }
  }
  return q;
}

std::vector<Timer> only_groups(std::vector<Timer> ts, int32_t lo, int32_t hi) {
  std::vector<Timer> out;
  for (auto& t : ts)
    if (std::get<1>(t) >= lo && std::get<1>(t) <= hi) out.push_back(std::move(t));
  // Tuple order is the queue's order: (ts, key group, key bytes, namespace bytes).
  std::sort(out.begin(), out.end());
  return out;
}

TEST(TimerQueue, SnapshotRoundTripsEveryKeyGroup) {
  std::vector<Timer> all;
  TimerQueue q = sample_queue(all);
  KeyGroupRange range{0, 9};
  std::vector<std::string> per_group;
  q.write_key_groups(range, per_group);
  ASSERT_EQ(per_group.size(), 10u);

  TimerQueue restored;
  for (int32_t kg = 0; kg <= 9; ++kg) {
    ASSERT_TRUE(restored.read_key_group(KeyGroup(kg), per_group[kg]).is_ok()) << kg;
  }
  EXPECT_EQ(restored.size(), all.size());
  EXPECT_EQ(drain(restored), only_groups(all, 0, 9));
  EXPECT_EQ(q.size(), all.size()) << "writing a snapshot leaves the queue as it was";
}

TEST(TimerQueue, SnapshotOfASubRangeHoldsOnlyThatRange) {
  std::vector<Timer> all;
  TimerQueue q = sample_queue(all);
  KeyGroupRange range{3, 6};
  std::vector<std::string> per_group;
  q.write_key_groups(range, per_group);
  ASSERT_EQ(per_group.size(), 4u);

  TimerQueue restored;
  for (int32_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(restored.read_key_group(KeyGroup(3 + i), per_group[i]).is_ok());
  }
  EXPECT_EQ(drain(restored), only_groups(all, 3, 6));
}

TEST(TimerQueue, GroupsWithoutTimersSnapshotAsEmptyAndRestoreAsNothing) {
  TimerQueue q;
  q.add(1, KeyGroup(2), "k", "");
  std::vector<std::string> per_group;
  q.write_key_groups({0, 3}, per_group);
  ASSERT_EQ(per_group.size(), 4u);
  EXPECT_TRUE(per_group[0].empty());
  EXPECT_TRUE(per_group[1].empty());
  EXPECT_FALSE(per_group[2].empty());
  EXPECT_TRUE(per_group[3].empty());
  TimerQueue restored;
  EXPECT_TRUE(restored.read_key_group(KeyGroup(0), "").is_ok());
  EXPECT_TRUE(restored.empty());
}

TEST(TimerQueue, RestoreMergesWithTimersAlreadySetAndDedupes) {
  TimerQueue q;
  q.add(1, KeyGroup(4), "a", "");
  q.add(2, KeyGroup(4), "b", "");
  std::vector<std::string> per_group;
  q.write_key_groups({4, 4}, per_group);

  TimerQueue target;
  target.add(2, KeyGroup(4), "b", "");
  target.add(3, KeyGroup(4), "c", "");
  ASSERT_TRUE(target.read_key_group(KeyGroup(4), per_group[0]).is_ok());
  std::vector<Timer> expected = {{1, 4, "a", ""}, {2, 4, "b", ""}, {3, 4, "c", ""}};
  EXPECT_EQ(drain(target), expected);
}

TEST(TimerQueue, RestoreRejectsCorruptBytes) {
  TimerQueue q;
  q.add(123456789, KeyGroup(1), "some-key", "some-namespace");
  q.add(5, KeyGroup(1), "k2", "");
  std::vector<std::string> per_group;
  q.write_key_groups({1, 1}, per_group);
  const std::string& good = per_group[0];

  for (size_t n = 1; n < good.size(); ++n) {
    TimerQueue t;
    Status st = t.read_key_group(KeyGroup(1), std::string_view(good).substr(0, n));
    EXPECT_EQ(st.code(), StatusCode::kCorruption) << "truncated to " << n;
  }
  TimerQueue t;
  Status st = t.read_key_group(KeyGroup(1), good + "x");
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
  EXPECT_NE(st.message().find("trailing"), std::string::npos) << st.message();
}

// Differential: random adds (many repeats), removes, pops and snapshot
// round trips against a std::set of tuples, the obvious reference.
TEST(TimerQueue, ChangesAreRecordedOnlyAfterTheFirstTakeAndInOrder) {
  TimerQueue q;
  q.add(10, KeyGroup(1), "a", "w");
  EXPECT_FALSE(q.take_changes().has_value()) << "not recording until asked: unknown";
  q.add(10, KeyGroup(1), "a", "w");  // already set: no change
  q.add(20, KeyGroup(2), "b", "w");
  q.remove(10, KeyGroup(1), "a", "w");
  TimerEntry e;
  ASSERT_TRUE(q.pop_due(20, e));
  auto changes = q.take_changes();
  ASSERT_TRUE(changes.has_value());
  ASSERT_EQ(changes->size(), 3u);
  EXPECT_TRUE((*changes)[0].added);
  EXPECT_EQ((*changes)[0].entry.key, "b");
  EXPECT_FALSE((*changes)[1].added);
  EXPECT_EQ((*changes)[1].entry.key, "a");
  EXPECT_FALSE((*changes)[2].added);
  EXPECT_EQ((*changes)[2].entry.key, "b");
  auto none = q.take_changes();
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
  q.add(30, KeyGroup(3), "c", "w");
  q.clear();
  EXPECT_FALSE(q.take_changes().has_value()) << "after clear() only a full snapshot is right";
}

TEST(TimerQueue, ChangeLogThatOutgrowsTheSetIsDropped) {
  TimerQueue q;
  (void)q.take_changes();
  for (int i = 0; i < 3000; ++i) {
    q.add(i, KeyGroup(0), "k", "w");
    q.remove(i, KeyGroup(0), "k", "w");
  }
  EXPECT_FALSE(q.take_changes().has_value());
  q.add(1, KeyGroup(0), "k", "w");
  auto next = q.take_changes();
  ASSERT_TRUE(next.has_value()) << "recording resumes after the take";
  EXPECT_EQ(next->size(), 1u);
}

TEST(TimerQueue, BehavesLikeAnOrderedSetUnderRandomOperations) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };
    TimerQueue q;
    std::set<Timer> ref;
    auto random_timer = [&] {
      // Few distinct values so that repeats, equal timestamps and shared
      // keys are common; keys and namespaces may hold zero bytes.
      int64_t ts = pick(40) - 5;
      int32_t kg = pick(6);
      std::string key = "k" + std::to_string(pick(8));
      std::string ns = pick(3) == 0 ? std::string("\0w", 2) + std::to_string(pick(3)) : "";
      return Timer{ts, kg, key, ns};
    };
    for (int step = 0; step < 3000; ++step) {
      const int op = pick(10);
      if (op < 5) {
        Timer t = random_timer();
        bool added = q.add(std::get<0>(t), KeyGroup(std::get<1>(t)), std::get<2>(t), std::get<3>(t));
        ASSERT_EQ(added, ref.insert(t).second) << "step " << step;
      } else if (op < 7) {
        Timer t = pick(2) == 0 && !ref.empty() ? *std::next(ref.begin(), pick(static_cast<int>(ref.size())))
                                               : random_timer();
        bool removed = q.remove(std::get<0>(t), KeyGroup(std::get<1>(t)), std::get<2>(t), std::get<3>(t));
        ASSERT_EQ(removed, ref.erase(t) == 1) << "step " << step;
      } else if (op < 9) {
        int64_t limit = pick(40) - 5;
        TimerEntry e;
        while (q.pop_due(limit, e)) {
          ASSERT_FALSE(ref.empty());
          ASSERT_EQ(as_tuple(e), *ref.begin()) << "step " << step;
          ref.erase(ref.begin());
        }
        ASSERT_TRUE(ref.empty() || std::get<0>(*ref.begin()) > limit) << "step " << step;
      } else {
        // Snapshot and restore into a fresh queue, which replaces the old one.
        std::vector<std::string> per_group;
        q.write_key_groups(KeyGroupRange{0, 5}, per_group);
        TimerQueue restored;
        for (int32_t kg = 0; kg <= 5; ++kg) ASSERT_TRUE(restored.read_key_group(KeyGroup(kg), per_group[kg]).is_ok());
        q = std::move(restored);
      }
      ASSERT_EQ(q.size(), ref.size()) << "step " << step;
      ASSERT_EQ(q.next_ts(), ref.empty() ? std::nullopt : std::optional<int64_t>(std::get<0>(*ref.begin())));
    }
    std::vector<Timer> rest(ref.begin(), ref.end());
    EXPECT_EQ(drain(q), rest);
  }
}

}  // namespace
}  // namespace sluice::state
