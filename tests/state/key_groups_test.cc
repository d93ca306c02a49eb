#include "state/key_groups.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/serde.h"

namespace sluice::state {
namespace {

// (max_parallelism, parallelism) pairs: small and odd maxima, the default,
// the upper limit, parallelism 1, equal to the maximum, and uneven splits.
std::vector<std::pair<int32_t, int32_t>> parallelism_pairs() {
  std::vector<std::pair<int32_t, int32_t>> out;
  for (int32_t m : {1, 2, 3, 5, 7, 10, 16, 100, 127, 128, 129, 1000, 4096, kMaxMaxParallelism}) {
    std::set<int32_t> ps;
    for (int32_t p = 1; p <= std::min(m, 40); ++p) ps.insert(p);
    for (int32_t p : {m / 3, m / 2, m - 1, m, 96, 127, 128, 1000, 3000}) {
      if (p >= 1 && p <= m) ps.insert(p);
    }
    for (int32_t p : ps) out.emplace_back(m, p);
  }
  return out;
}

TEST(KeyGroups, RangesCoverAllGroupsWithoutOverlap) {
  for (auto [m, p] : parallelism_pairs()) {
    SCOPED_TRACE("max " + std::to_string(m) + " parallelism " + std::to_string(p));
    int32_t next = 0;
    for (int32_t i = 0; i < p; ++i) {
      KeyGroupRange r = key_group_range_for_subtask(m, p, i);
      ASSERT_EQ(r.start, next) << "subtask " << i << " does not start where " << i - 1 << " ended";
      ASSERT_FALSE(r.empty()) << "subtask " << i << " owns no key group";
      next = r.end + 1;
    }
    ASSERT_EQ(next, m) << "the last range does not end at max - 1";
  }
}

TEST(KeyGroups, RangesAreBalancedWithinOneGroup) {
  for (auto [m, p] : parallelism_pairs()) {
    SCOPED_TRACE("max " + std::to_string(m) + " parallelism " + std::to_string(p));
    for (int32_t i = 0; i < p; ++i) {
      int32_t size = key_group_range_for_subtask(m, p, i).size();
      ASSERT_GE(size, m / p);
      ASSERT_LE(size, (m + p - 1) / p);
    }
  }
}

TEST(KeyGroups, RangesAgreeWithSubtaskForKeyGroup) {
  for (auto [m, p] : parallelism_pairs()) {
    SCOPED_TRACE("max " + std::to_string(m) + " parallelism " + std::to_string(p));
    for (int32_t i = 0; i < p; ++i) {
      KeyGroupRange r = key_group_range_for_subtask(m, p, i);
      for (int32_t kg = r.start; kg <= r.end; ++kg) {
        ASSERT_EQ(subtask_for_key_group(m, p, KeyGroup(kg)), i) << "key group " << kg;
        ASSERT_TRUE(r.contains(KeyGroup(kg)));
      }
    }
  }
}

TEST(KeyGroups, SubtaskOfAGroupIsMonotonic) {
  // Contiguous ranges imply that walking the key groups in order never goes
  // back to an earlier subtask.
  for (auto [m, p] : parallelism_pairs()) {
    int32_t prev = 0;
    for (int32_t kg = 0; kg < m; ++kg) {
      int32_t s = subtask_for_key_group(m, p, KeyGroup(kg));
      ASSERT_GE(s, prev) << m << "/" << p << " kg " << kg;
      ASSERT_LT(s, p);
      prev = s;
    }
    ASSERT_EQ(prev, p - 1) << m << "/" << p;
  }
}

TEST(KeyGroups, KeyGroupOfAKeyIsInRangeAndDeterministic) {
  for (int32_t m : {1, 2, 7, 128, 32768}) {
    for (int i = 0; i < 500; ++i) {
      std::string key = serialize(std::string("user-") + std::to_string(i));
      KeyGroup kg = key_group_for_key(key, m);
      ASSERT_GE(kg.value(), 0);
      ASSERT_LT(kg.value(), m);
      ASSERT_EQ(kg, key_group_for_key(std::string(key), m));
    }
  }
}

TEST(KeyGroups, KeyGroupIsOneHashModuloMaxParallelism) {
  // key_group = hash(key) % max: for max parallelisms where one divides the
  // other, the smaller group is the larger one reduced modulo the smaller.
  for (int i = 0; i < 1000; ++i) {
    std::string key = serialize(int64_t{i} * 7919);
    int32_t big = key_group_for_key(key, 32768).value();
    EXPECT_EQ(key_group_for_key(key, 128).value(), big % 128);
    EXPECT_EQ(key_group_for_key(key, 1024).value(), big % 1024);
    EXPECT_EQ(key_group_for_key(key, 1).value(), 0);
  }
}

TEST(KeyGroups, KeysSpreadOverAllGroups) {
  constexpr int32_t kGroups = 128;
  constexpr int kKeys = 128 * 100;
  std::vector<int> counts(kGroups, 0);
  for (int i = 0; i < kKeys; ++i) {
    ++counts[key_group_for_key(serialize(std::string("k") + std::to_string(i)), kGroups).value()];
  }
  // Expected 100 per group; a decent hash stays well inside [50, 150].
  for (int32_t g = 0; g < kGroups; ++g) {
    EXPECT_GT(counts[g], 50) << "group " << g;
    EXPECT_LT(counts[g], 150) << "group " << g;
  }
}

TEST(KeyGroupRange, SizeContainsAndEmptiness) {
  KeyGroupRange r{4, 9};
  EXPECT_FALSE(r.empty());
  EXPECT_EQ(r.size(), 6);
  EXPECT_TRUE(r.contains(KeyGroup(4)));
  EXPECT_TRUE(r.contains(KeyGroup(9)));
  EXPECT_FALSE(r.contains(KeyGroup(3)));
  EXPECT_FALSE(r.contains(KeyGroup(10)));

  KeyGroupRange empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.size(), 0);
  EXPECT_FALSE(empty.contains(KeyGroup(0)));
  EXPECT_EQ((KeyGroupRange{3, 3}).size(), 1);
}

TEST(KeyGroupRange, IntersectsRanges) {
  EXPECT_EQ((KeyGroupRange{0, 63}).intersect({32, 127}), (KeyGroupRange{32, 63}));
  EXPECT_EQ((KeyGroupRange{32, 127}).intersect({0, 63}), (KeyGroupRange{32, 63}));
  EXPECT_EQ((KeyGroupRange{0, 127}).intersect({10, 20}), (KeyGroupRange{10, 20}));
  EXPECT_TRUE((KeyGroupRange{0, 63}).intersect({64, 127}).empty());
  EXPECT_TRUE((KeyGroupRange{0, 10}).intersect({}).empty());
}

TEST(KeyGroupRange, ToString) {
  EXPECT_EQ((KeyGroupRange{0, 63}).to_string(), "[0, 63]");
  EXPECT_EQ(KeyGroupRange{}.to_string(), "[]");
}

TEST(ValidateParallelism, AcceptsTheValidRange) {
  EXPECT_TRUE(validate_parallelism(1, 1).is_ok());
  EXPECT_TRUE(validate_parallelism(4, 128).is_ok());
  EXPECT_TRUE(validate_parallelism(128, 128).is_ok());
  EXPECT_TRUE(validate_parallelism(kMaxMaxParallelism, kMaxMaxParallelism).is_ok());
}

bool has(const Status& st, const std::string& s) {
  return st.message().find(s) != std::string::npos;
}

TEST(ValidateParallelism, RejectsParallelismBelowOne) {
  for (int32_t p : {0, -1}) {
    Status st = validate_parallelism(p, 128);
    ASSERT_FALSE(st.is_ok());
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(has(st, "at least 1")) << st.message();
    EXPECT_TRUE(has(st, std::to_string(p))) << st.message();
  }
}

TEST(ValidateParallelism, RejectsMaxParallelismOutsideItsLimits) {
  for (int32_t m : {0, -5, kMaxMaxParallelism + 1}) {
    Status st = validate_parallelism(1, m);
    ASSERT_FALSE(st.is_ok()) << m;
    EXPECT_TRUE(has(st, "max parallelism")) << st.message();
    EXPECT_TRUE(has(st, std::to_string(kMaxMaxParallelism))) << st.message();
    EXPECT_TRUE(has(st, std::to_string(m))) << st.message();
  }
}

TEST(ValidateParallelism, RejectsParallelismAboveMaxAndSaysHowToFixIt) {
  Status st = validate_parallelism(200, 128);
  ASSERT_FALSE(st.is_ok());
  EXPECT_TRUE(has(st, "200")) << st.message();
  EXPECT_TRUE(has(st, "128")) << st.message();
  EXPECT_TRUE(has(st, "raise max parallelism")) << st.message();
}

}  // namespace
}  // namespace sluice::state
