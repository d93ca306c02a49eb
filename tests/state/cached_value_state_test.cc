// CachedValueState (state/cached_value_state.h) and the KeyCache under it,
// on the heap and RocksDB backends: random changes against a std::map model
// with a cache bound small enough to evict all the time, checkpoints whose
// restore (same range, or split over two subtasks) must hold what only the
// cache held at the snapshot, and key listing through the cache.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/common/clock.h"
#include "engine/common/config.h"
#include "engine/common/serde.h"
#include "state/backend_factory.h"
#include "state/checkpoint_storage.h"
#include "state/key_groups.h"
#include "state/state_factory.h"
#include "tests/connectors/file/temp_dir.h"

namespace sluice::state {
namespace {

constexpr int32_t kMax = kDefaultMaxParallelism;
using Model = std::map<int, std::vector<int64_t>>;

class CachedValueStateTest : public ::testing::TestWithParam<const char*> {
 protected:
  std::unique_ptr<KeyedStateBackend> make(KeyGroupRange range) {
    Configuration c;
    c.set("state.backend", GetParam());
    c.set("state.rocksdb.local-dir", local_.path());
    c.set("state.rocksdb.memory", "16mb");
    BackendSpec spec;
    spec.range = range;
    spec.max_parallelism = kMax;
    spec.clock = &clock_;
    spec.instance_name = "cached-" + std::to_string(next_++);
    auto b = create_keyed_backend(c, spec, BackendKind::kHeap);
    EXPECT_TRUE(b.is_ok()) << b.status().to_string();
    return b.is_ok() ? std::move(*b) : nullptr;
  }
  static std::string key_bytes(int k) { return serialize("k" + std::to_string(k)); }
  static KeyGroup group_of(int k) { return key_group_for_key(key_bytes(k), kMax); }
  static void use_key(KeyedStateBackend& b, int k) { b.set_current_key(key_bytes(k), group_of(k)); }
  static CachedValueState<std::vector<int64_t>>* handle(KeyedStateBackend& b, size_t max_keys) {
    return get_cached_value_state(b, CachedValueStateDescriptor<std::vector<int64_t>>{"list", max_keys});
  }
  /// Keys 0..keys-1 of `b`'s range hold what `model` says (none if absent).
  static void expect_model(KeyedStateBackend& b, CachedValueState<std::vector<int64_t>>* s, const Model& model,
                           int keys) {
    for (int k = 0; k < keys; ++k) {
      if (!b.key_group_range().contains(group_of(k))) continue;
      use_key(b, k);
      const std::vector<int64_t>* got = s->value();
      auto it = model.find(k);
      if (it == model.end()) {
        EXPECT_EQ(got, nullptr) << "key " << k;
      } else {
        ASSERT_NE(got, nullptr) << "key " << k;
        EXPECT_EQ(*got, it->second) << "key " << k;
      }
    }
  }
  KeyedStateHandle checkpoint(KeyedStateBackend& b) {
    ++checkpoint_;
    auto part = b.snapshot(CheckpointId(checkpoint_), storage_.target(checkpoint_, false, "op"));
    EXPECT_TRUE(part.is_ok()) << part.status().to_string();
    auto h = (*part)();
    EXPECT_TRUE(h.is_ok()) << h.status().to_string();
    return *h;
  }

  ManualClock clock_{1'700'000'000'000};
  file_test::TempDir local_;
  file_test::TempDir store_;
  CheckpointStorage storage_{store_.path(), "job"};
  int64_t checkpoint_ = 0;
  int next_ = 0;
};

TEST_P(CachedValueStateTest, MatchesAModelThroughEvictionsCheckpointsAndRestores) {
  for (uint32_t seed = 1; seed <= 2; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const KeyGroupRange all{0, kMax - 1};
    auto b = make(all);
    auto* s = handle(*b, 4);  // 4 keys in memory of 30: evictions all the time
    Model model;
    for (int step = 0; step < 2000; ++step) {
      const int k = static_cast<int>(rng() % 30);
      use_key(*b, k);
      const int64_t x = static_cast<int64_t>(rng() % 1000);
      switch (rng() % 6) {
        case 0:
        case 1:
          s->mutable_value().push_back(x);  // changed in place
          model[k].push_back(x);
          break;
        case 2:
          s->update({x});
          model[k] = {x};
          break;
        case 3:
          s->clear();
          model.erase(k);
          break;
        case 4:
          if (rng() % 60 == 0) {
            // Only the cache holds most changes: the checkpoint must have them.
            KeyedStateHandle h = checkpoint(*b);
            b = make(all);
            ASSERT_TRUE(b->restore({h}, storage_.job_dir()).is_ok());
            s = handle(*b, 4);
          }
          break;
        default:
          break;
      }
      use_key(*b, k);
      const std::vector<int64_t>* got = s->value();
      auto it = model.find(k);
      if (it == model.end()) {
        ASSERT_EQ(got, nullptr) << "step " << step;
      } else {
        ASSERT_NE(got, nullptr) << "step " << step;
        ASSERT_EQ(*got, it->second) << "step " << step;
      }
    }
    // Split over two subtasks (rescaling): each finds its keys' values.
    KeyedStateHandle h = checkpoint(*b);
    const KeyGroupRange halves[] = {{0, kMax / 2 - 1}, {kMax / 2, kMax - 1}};
    for (const KeyGroupRange& r : halves) {
      auto part = make(r);
      ASSERT_TRUE(part->restore({h}, storage_.job_dir()).is_ok());
      expect_model(*part, handle(*part, 2), model, 30);
    }
  }
}

TEST_P(CachedValueStateTest, KeyListingSeesValuesOnlyTheCacheHolds) {
  auto b = make({0, kMax - 1});
  auto* s = handle(*b, 100);
  for (int k = 0; k < 10; ++k) {
    use_key(*b, k);
    s->mutable_value().push_back(k);
  }
  use_key(*b, 3);
  s->clear();
  std::set<std::string> got;
  auto key_length = [](std::string_view bytes) -> size_t {
    ByteReader r(bytes);
    std::string v;
    return Serde<std::string>::read(r, v) ? bytes.size() - r.remaining() : 0;
  };
  for (auto& [key, kg] : b->keys_of_state("list", key_length)) got.insert(key);
  EXPECT_EQ(got.size(), 9u);
  EXPECT_FALSE(got.count(key_bytes(3)));
  // The listing moved no current key under the caller.
  EXPECT_EQ(b->current_key(), key_bytes(3));
}

TEST_P(CachedValueStateTest, StaysWithinItsBoundOfKeys) {
  auto b = make({0, kMax - 1});
  auto* s = handle(*b, 8);
  for (int k = 0; k < 200; ++k) {
    use_key(*b, k);
    s->update({k});
    EXPECT_LE(s->cached_keys(), 9u);  // the bound, plus the key being used
  }
  for (int k = 0; k < 200; ++k) {  // evicted values were written back
    use_key(*b, k);
    ASSERT_NE(s->value(), nullptr);
    EXPECT_EQ(*s->value(), std::vector<int64_t>{k});
  }
}

// The asynchronous part of a snapshot runs while the task goes on (on the
// heap it reads the tables' key groups shared copy-on-write): a change
// after the barrier — in place, replaced, cleared, a new key, a key evicted
// (written back to the table) and loaded again — must not reach it.
TEST_P(CachedValueStateTest, ChangesAfterTheBarrierDoNotReachItsSnapshot) {
  for (uint32_t seed = 1; seed <= 3; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const KeyGroupRange all{0, kMax - 1};
    auto b = make(all);
    auto* s = handle(*b, 6);  // 6 of 40 keys cached: write-backs between barriers too
    Model model;
    auto change = [&](int steps) {
      for (int step = 0; step < steps; ++step) {
        const int k = static_cast<int>(rng() % 40);
        use_key(*b, k);
        const int64_t x = static_cast<int64_t>(rng() % 1000);
        switch (rng() % 5) {
          case 0:
          case 1:
          case 2:
            s->mutable_value().push_back(x);
            model[k].push_back(x);
            break;
          case 3:
            s->update({x});
            model[k] = {x};
            break;
          default:
            s->clear();
            model.erase(k);
        }
      }
    };
    std::vector<std::pair<KeyedStateHandle, Model>> taken;
    for (int round = 0; round < 4; ++round) {
      change(300);
      ++checkpoint_;
      auto part = b->snapshot(CheckpointId(checkpoint_), storage_.target(checkpoint_, false, "op"));
      ASSERT_TRUE(part.is_ok()) << part.status().to_string();
      const Model at_barrier = model;
      change(300);  // the task goes on before the snapshot thread runs
      auto h = (*part)();
      ASSERT_TRUE(h.is_ok()) << h.status().to_string();
      taken.emplace_back(*h, at_barrier);
    }
    for (size_t i = 0; i < taken.size(); ++i) {
      SCOPED_TRACE("checkpoint " + std::to_string(i + 1));
      auto r = make(all);
      ASSERT_TRUE(r->restore({taken[i].first}, storage_.job_dir()).is_ok());
      expect_model(*r, handle(*r, 100), taken[i].second, 40);
    }
  }
}

// The cached state's checkpoint is that of a plain ValueState<T> of the
// same name, and the reverse (operators may switch between the two).
TEST_P(CachedValueStateTest, RestoresIntoAPlainValueStateAndFromOne) {
  const KeyGroupRange all{0, kMax - 1};
  auto b = make(all);
  auto* s = handle(*b, 100);
  for (int k = 0; k < 20; ++k) {
    use_key(*b, k);
    s->update({k, 2 * k});
  }
  KeyedStateHandle h = checkpoint(*b);
  auto plain = make(all);
  ASSERT_TRUE(plain->restore({h}, storage_.job_dir()).is_ok());
  auto* ps = get_value_state(*plain, ValueStateDescriptor<std::vector<int64_t>>{"list", {}});
  for (int k = 0; k < 20; ++k) {
    use_key(*plain, k);
    ASSERT_EQ(ps->value(), (std::vector<int64_t>{k, 2 * k})) << "key " << k;
    ps->update({-k});
  }
  KeyedStateHandle back = checkpoint(*plain);
  auto c = make(all);
  ASSERT_TRUE(c->restore({back}, storage_.job_dir()).is_ok());
  auto* cs = handle(*c, 100);
  for (int k = 0; k < 20; ++k) {
    use_key(*c, k);
    ASSERT_NE(cs->value(), nullptr);
    EXPECT_EQ(*cs->value(), std::vector<int64_t>{-k}) << "key " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, CachedValueStateTest, ::testing::Values("heap", "rocksdb"));

}  // namespace
}  // namespace sluice::state
