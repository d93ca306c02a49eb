// The RocksDB backend's write-back cache (RocksDBOptions::write_cache_bytes):
// value, reducing and aggregating state against a std::map model under
// random updates, removals, reads, budget-forced flushes, key iteration and
// checkpoint/restore; a checkpoint must hold what only the cache held.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/clock.h"
#include "engine/common/serde.h"
#include "state/checkpoint_storage.h"
#include "state/key_groups.h"
#include "state/rocksdb_backend.h"
#include "state/state_factory.h"
#include "tests/connectors/file/temp_dir.h"

namespace sluice::state {
namespace {

constexpr int32_t kMax = kDefaultMaxParallelism;

/// Sum of the inputs as an aggregate (accumulator = running sum).
class Sum final : public AggregateFunction<int64_t, int64_t, int64_t> {
 public:
  int64_t create_accumulator() const override { return 0; }
  void add(int64_t& acc, const int64_t& v) const override { acc += v; }
  int64_t get_result(const int64_t& acc) const override { return acc; }
  void merge(int64_t& acc, const int64_t& other) const override { acc += other; }
};

class WriteCacheTest : public ::testing::Test {
 protected:
  std::unique_ptr<RocksDBKeyedStateBackend> make(int64_t cache_bytes,
                                                 KeyGroupRange range = {0, kMax - 1},
                                                 int64_t dirty_entries = 0) {  // 0: the default (no drain)
    BackendSpec spec;
    spec.range = range;
    spec.max_parallelism = kMax;
    spec.clock = &clock_;
    spec.instance_name = "cache-" + std::to_string(next_++);
    RocksDBOptions o;
    o.local_dir = local_.path();
    o.memory_bytes = 64LL << 20;
    o.write_cache_bytes = cache_bytes;
    o.write_cache_dirty_entries = dirty_entries;
    auto b = RocksDBKeyedStateBackend::create(spec, o);
    EXPECT_TRUE(b.is_ok()) << b.status().to_string();
    return b.is_ok() ? std::move(*b) : nullptr;
  }
  static void use_key(KeyedStateBackend& b, int k) {
    std::string bytes = serialize("k" + std::to_string(k));
    b.set_current_key(bytes, key_group_for_key(bytes, kMax));
  }

  ManualClock clock_{1'700'000'000'000};
  file_test::TempDir local_;
  file_test::TempDir store_;
  int next_ = 0;
};

struct Handles {
  ValueState<int64_t>* value;
  AggregatingState<int64_t, int64_t, int64_t>* sum;
  ReducingState<int64_t>* max;

  static Handles on(KeyedStateBackend& b) {
    return {get_value_state(b, ValueStateDescriptor<int64_t>{"value"}),
            get_aggregating_state(
                b, AggregatingStateDescriptor<int64_t, int64_t, int64_t>{"sum",
                                                                         std::make_shared<Sum>()}),
            get_reducing_state(
                b, ReducingStateDescriptor<int64_t>{
                       "max", [](const int64_t& a, const int64_t& c) { return std::max(a, c); }})};
  }
};

size_t key_length(std::string_view bytes) {
  ByteReader r(bytes);
  std::string s;
  return Serde<std::string>::read(r, s) ? bytes.size() - r.remaining() : 0;
}

// (key, namespace) -> value of each state; absent = no entry.
using Model = std::map<std::pair<int, int>, int64_t>;

std::string namespace_name(int ns) { return ns == 0 ? "" : "w" + std::to_string(ns); }

void set_namespaces(Handles& h, const std::string& nss) {
  h.value->set_namespace(nss);
  h.sum->set_namespace(nss);
  h.max->set_namespace(nss);
}

/// Draws 0-4 change the value and sum states of `at` (the handles' current
/// key and namespace) and their models with `x`: 0-1 update, 2-3 add, 4
/// clear both. Returns false for any other draw.
bool random_update(uint32_t draw, Handles& h, std::pair<int, int> at, int64_t x, Model& value,
                   Model& sum, Model& max) {
  switch (draw) {
    case 0:
    case 1:
      h.value->update(x);
      value[at] = x;
      return true;
    case 2:
    case 3:
      h.sum->add(x);
      sum[at] += x;
      h.max->add(x);
      max[at] = max.count(at) ? std::max(max[at], x) : x;
      return true;
    case 4:
      h.value->clear();
      value.erase(at);
      h.sum->clear();
      sum.erase(at);
      return true;
    default:
      return false;
  }
}

TEST_F(WriteCacheTest, MatchesAModelThroughFlushesIterationAndCheckpoints) {
  CheckpointStorage storage(store_.path(), "job");
  int64_t checkpoint = 0;  // ids stay unique across the runs sharing the storage
  // Cache 0: no cache (the reference path), 2 KiB (a flush every few
  // records), 16 MiB (never full); at most 8192 dirty entries (never
  // reached here) or 8 (the oldest written back every few records).
  for (auto [cache, dirty] : {std::pair<int64_t, int64_t>{0, 8192}, {2048, 8192}, {16 << 20, 8192},
                              {2048, 8}, {16 << 20, 8}}) {
    for (uint32_t seed = 1; seed <= 2; ++seed) {
      SCOPED_TRACE("seed " + std::to_string(seed) + ", cache " + std::to_string(cache) + ", dirty " +
                   std::to_string(dirty));
      std::mt19937 rng(seed);
      auto b = make(cache, {0, kMax - 1}, dirty);
      Handles h = Handles::on(*b);
      Model value, sum, max;
      for (int step = 0; step < 3000; ++step) {
        int k = static_cast<int>(rng() % 40), ns = static_cast<int>(rng() % 3);
        // Namespace 0 is the default one (keys_of_state lists its keys).
        std::string nss = namespace_name(ns);
        use_key(*b, k);
        set_namespaces(h, nss);
        auto at = std::make_pair(k, ns);
        int64_t x = static_cast<int64_t>(rng() % 1000);
        const uint32_t draw = rng() % 8;
        (void)random_update(draw, h, at, x, value, sum, max);
        switch (draw) {
          case 5: {
            // Every key with a value in the default namespace, cached or not.
            std::set<std::string> want;
            for (const auto& [kn, v] : value)
              if (kn.second == 0) want.insert(serialize("k" + std::to_string(kn.first)));
            std::set<std::string> got;
            for (auto& [key, kg] : b->keys_of_state("value", key_length)) got.insert(key);
            ASSERT_EQ(got, want) << "step " << step;
            break;
          }
          case 6: {
            if (rng() % 60 != 0) break;
            // Checkpoint, then continue on a restored backend: what was
            // only in the cache must be in the checkpoint. Every other
            // time the same backend goes on (its cache stays warm across
            // the snapshot), so the next restore also checks that what
            // changed after a checkpoint reaches the next one.
            ++checkpoint;
            auto part =
                b->snapshot(CheckpointId(checkpoint), storage.target(checkpoint, false, "op"));
            ASSERT_TRUE(part.is_ok()) << part.status().to_string();
            auto handle = (*part)();
            ASSERT_TRUE(handle.is_ok()) << handle.status().to_string();
            if (rng() % 2 == 0) {
              b->notify_checkpoint_complete(CheckpointId(checkpoint));
              break;
            }
            b = make(cache, {0, kMax - 1}, dirty);
            Status st = b->restore({*handle}, storage.job_dir());
            ASSERT_TRUE(st.is_ok()) << st.to_string();
            h = Handles::on(*b);
            break;
          }
          default:
            break;
        }
        // Read back the touched (key, namespace) every step.
        use_key(*b, k);
        set_namespaces(h, nss);
        auto want = [&](const Model& m) -> std::optional<int64_t> {
          auto it = m.find(at);
          return it == m.end() ? std::nullopt : std::optional<int64_t>(it->second);
        };
        ASSERT_EQ(h.value->value(), want(value)) << "step " << step;
        ASSERT_EQ(h.sum->get(), want(sum)) << "step " << step;
        if (auto m = want(max)) {
          ASSERT_EQ(h.max->get(), m) << "step " << step;
        }
      }
      // Whole state in RocksDB after a flush: one entry per live value.
      b->flush_write_cache();
      auto n = b->raw_entry_count("value");
      ASSERT_TRUE(n.is_ok());
      EXPECT_EQ(*n, value.size());
    }
  }
}

// A checkpoint's synchronous part captures the write cache; its
// asynchronous part writes the capture later, while the task thread goes
// on. Writes after the barrier — cached and uncached states, removals,
// cache-full flushes, cursors — must not reach the checkpoint, restored
// into the same key groups or split over two subtasks (rescaling).
TEST_F(WriteCacheTest, WritesAfterTheBarrierDoNotLeakIntoTheCheckpoint) {
  CheckpointStorage storage(store_.path(), "job");
  int64_t checkpoint = 0;
  // The last: dirty entries written back between checkpoints, also after
  // the barrier.
  for (auto [cache, dirty] : {std::pair<int64_t, int64_t>{4096, 8192}, {16 << 20, 8192}, {16 << 20, 16}}) {
    for (uint32_t seed = 1; seed <= 2; ++seed) {
      SCOPED_TRACE("seed " + std::to_string(seed) + ", cache " + std::to_string(cache) + ", dirty " +
                   std::to_string(dirty));
      std::mt19937 rng(seed);
      auto b = make(cache, {0, kMax - 1}, dirty);
      Handles h = Handles::on(*b);
      auto* list = get_list_state(*b, ListStateDescriptor<int64_t>{"list"});  // never cached
      Model value, sum, max;  // max: not checked here
      std::map<std::pair<int, int>, std::vector<int64_t>> lists;
      auto steps = [&](int n) {
        for (int step = 0; step < n; ++step) {
          int k = static_cast<int>(rng() % 200), ns = static_cast<int>(rng() % 3);
          use_key(*b, k);
          std::string nss = namespace_name(ns);
          set_namespaces(h, nss);
          list->set_namespace(nss);
          auto at = std::make_pair(k, ns);
          int64_t x = static_cast<int64_t>(rng() % 1000);
          const uint32_t draw = rng() % 7;
          if (random_update(draw, h, at, x, value, sum, max)) continue;
          switch (draw) {
            case 5:
              list->add(x);
              lists[at].push_back(x);
              break;
            default:
              if (rng() % 50 == 0) b->flush_write_cache();
              if (rng() % 50 == 0) (void)b->keys_of_state("value", key_length);
              break;
          }
        }
      };
      // Every (key, namespace) of the models, read back from `r` when it
      // owns the key's group.
      auto expect = [&](KeyedStateBackend& r, const Model& mv, const Model& ms,
                        const std::map<std::pair<int, int>, std::vector<int64_t>>& ml,
                        const std::string& what) {
        Handles rh = Handles::on(r);
        auto* rl = get_list_state(r, ListStateDescriptor<int64_t>{"list"});
        for (int k = 0; k < 200; ++k) {
          std::string bytes = serialize("k" + std::to_string(k));
          if (!r.key_group_range().contains(key_group_for_key(bytes, kMax))) continue;
          use_key(r, k);
          for (int ns = 0; ns < 3; ++ns) {
            std::string nss = namespace_name(ns);
            set_namespaces(rh, nss);
            rl->set_namespace(nss);
            auto at = std::make_pair(k, ns);
            auto want = [&](const Model& m) -> std::optional<int64_t> {
              auto it = m.find(at);
              return it == m.end() ? std::nullopt : std::optional<int64_t>(it->second);
            };
            ASSERT_EQ(rh.value->value(), want(mv)) << what << ", key " << k << " ns " << ns;
            ASSERT_EQ(rh.sum->get(), want(ms)) << what << ", key " << k << " ns " << ns;
            auto l = ml.find(at);
            ASSERT_EQ(rl->get(), l == ml.end() ? std::vector<int64_t>{} : l->second)
                << what << ", key " << k << " ns " << ns;
          }
        }
      };
      auto restored = [&](const KeyedStateHandle& handle, KeyGroupRange range) {
        auto r = make(cache, range, dirty);
        Status st = r->restore({handle}, storage.job_dir());
        EXPECT_TRUE(st.is_ok()) << st.to_string();
        return r;
      };

      steps(1500);
      ++checkpoint;
      auto part = b->snapshot(CheckpointId(checkpoint), storage.target(checkpoint, false, "op"));
      ASSERT_TRUE(part.is_ok()) << part.status().to_string();
      const Model value_at = value, sum_at = sum;
      const auto lists_at = lists;
      steps(1500);  // after the barrier, before the asynchronous part runs
      auto handle = (*part)();
      ASSERT_TRUE(handle.is_ok()) << handle.status().to_string();
      b->notify_checkpoint_complete(CheckpointId(checkpoint));

      expect(*restored(*handle, {0, kMax - 1}), value_at, sum_at, lists_at, "same key groups");
      expect(*restored(*handle, {0, kMax / 2 - 1}), value_at, sum_at, lists_at, "first half");
      expect(*restored(*handle, {kMax / 2, kMax - 1}), value_at, sum_at, lists_at, "second half");

      // What changed after the barrier reaches the next checkpoint.
      ++checkpoint;
      auto next = b->snapshot(CheckpointId(checkpoint), storage.target(checkpoint, false, "op"));
      ASSERT_TRUE(next.is_ok());
      auto handle2 = (*next)();
      ASSERT_TRUE(handle2.is_ok()) << handle2.status().to_string();
      expect(*restored(*handle2, {0, kMax - 1}), value, sum, lists, "next checkpoint");
    }
  }
}

TEST_F(WriteCacheTest, EntriesWrittenAndRemovedBetweenFlushesNeverReachRocksDB) {
  auto b = make(16 << 20);
  Handles h = Handles::on(*b);
  for (int k = 0; k < 100; ++k) {
    use_key(*b, k);
    h.sum->set_namespace("w");
    h.sum->add(k);
    h.sum->clear();
  }
  auto n = b->raw_entry_count("sum");
  ASSERT_TRUE(n.is_ok());
  EXPECT_EQ(*n, 0u);
}

// state.rocksdb.write-cache-dirty: past the bound the oldest changed
// entries reach RocksDB between checkpoints (the cache is far from full),
// so a barrier finds at most the bound still only in the cache; with 0
// they stay in the cache until it is full.
TEST_F(WriteCacheTest, ChangedEntriesBeyondTheDirtyBoundReachRocksDBBetweenCheckpoints) {
  for (int64_t dirty : {int64_t{64}, int64_t{0}}) {
    SCOPED_TRACE("dirty " + std::to_string(dirty));
    auto b = make(16 << 20, {0, kMax - 1}, dirty);
    Handles h = Handles::on(*b);
    h.value->set_namespace("");
    for (int k = 0; k < 1000; ++k) {
      use_key(*b, k);
      h.value->update(k);
    }
    if (dirty == 0) {
      EXPECT_EQ(b->dirty_cache_entries(), 1000u);
    } else {
      EXPECT_LE(b->dirty_cache_entries(), 64u);
      EXPECT_GE(b->dirty_cache_entries(), 64u - 64u / 8u);
    }
    // Every value still reads back, cached or not.
    for (int k = 0; k < 1000; ++k) {
      use_key(*b, k);
      ASSERT_EQ(h.value->value(), std::optional<int64_t>(k)) << "key " << k;
    }
  }
}

// An entry that never reached RocksDB and is removed while it waits in the
// write-back queue stays cached as absent (the queue points at it); the
// queue then skips it, and neither the DB nor a checkpoint holds it.
TEST_F(WriteCacheTest, AnEntryRemovedWhileQueuedForWriteBackStaysAbsent) {
  CheckpointStorage storage(store_.path(), "job");
  auto b = make(16 << 20, {0, kMax - 1}, 16);
  Handles h = Handles::on(*b);
  h.sum->set_namespace("w");
  // Keys 0-99: added, then every third cleared: some while still queued
  // (never in the DB), some after the queue wrote them (a delete then).
  for (int k = 0; k < 100; ++k) {
    use_key(*b, k);
    h.sum->add(k + 1);
    if (k >= 3 && (k - 3) % 3 == 0) {
      use_key(*b, k - 3);
      h.sum->clear();
    }
  }
  auto live = [](int k) { return !(k <= 96 && k % 3 == 0); };
  auto check = [&](KeyedStateBackend& r, const std::string& what) {
    Handles rh = Handles::on(r);
    rh.sum->set_namespace("w");
    for (int k = 0; k < 100; ++k) {
      use_key(r, k);
      ASSERT_EQ(rh.sum->get(), live(k) ? std::optional<int64_t>(k + 1) : std::nullopt) << what << ", key " << k;
    }
  };
  check(*b, "same backend");
  auto part = b->snapshot(CheckpointId(1), storage.target(1, false, "op"));
  ASSERT_TRUE(part.is_ok()) << part.status().to_string();
  auto handle = (*part)();
  ASSERT_TRUE(handle.is_ok()) << handle.status().to_string();
  auto r = make(16 << 20, {0, kMax - 1}, 16);
  ASSERT_TRUE(r->restore({*handle}, storage.job_dir()).is_ok());
  check(*r, "restored");
  b->flush_write_cache();
  auto n = b->raw_entry_count("sum");
  ASSERT_TRUE(n.is_ok());
  int want = 0;
  for (int k = 0; k < 100; ++k) want += live(k) ? 1 : 0;
  EXPECT_EQ(*n, static_cast<uint64_t>(want));
}

TEST_F(WriteCacheTest, KeysOfStateSeeValuesOnlyTheCacheHolds) {
  auto b = make(16 << 20);
  Handles h = Handles::on(*b);
  for (int k = 0; k < 10; ++k) {
    use_key(*b, k);
    h.value->set_namespace("");
    h.value->update(k);
  }
  auto keys = b->keys_of_state("value", key_length);
  EXPECT_EQ(keys.size(), 10u);
}

}  // namespace
}  // namespace sluice::state
