// The RocksDB backend's incremental timer snapshots: a checkpoint references
// the last completed checkpoint's timers files and adds a delta. Checked
// against a std::set model under random timer adds, removes and pops,
// checkpoints that complete or are never confirmed (aborted), restores of
// any checkpoint, restores into other key-group ranges (rescaling), and
// checkpoints taken after a restore.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "engine/common/clock.h"
#include "engine/common/serde.h"
#include "state/checkpoint_storage.h"
#include "state/key_groups.h"
#include "state/rocksdb_backend.h"
#include "tests/connectors/file/temp_dir.h"

namespace sluice::state {
namespace {

constexpr int32_t kMax = kDefaultMaxParallelism;
using Timer = std::tuple<int64_t, int32_t, std::string, std::string>;  // ts, key group, key, ns
using Model = std::map<std::string, std::set<Timer>>;                   // by queue name
const char* const kQueues[] = {"event", "processing"};

class TimerSnapshotTest : public ::testing::Test {
 protected:
  std::unique_ptr<RocksDBKeyedStateBackend> make(KeyGroupRange range = {0, kMax - 1}) {
    BackendSpec spec;
    spec.range = range;
    spec.max_parallelism = kMax;
    spec.clock = &clock_;
    spec.instance_name = "timers-" + std::to_string(next_++);
    RocksDBOptions o;
    o.local_dir = local_.path();
    o.memory_bytes = 64LL << 20;
    auto b = RocksDBKeyedStateBackend::create(spec, o);
    EXPECT_TRUE(b.is_ok()) << b.status().to_string();
    return b.is_ok() ? std::move(*b) : nullptr;
  }
  KeyedStateHandle snapshot(RocksDBKeyedStateBackend& b, int64_t id) {
    auto part = b.snapshot(CheckpointId(id), storage_.target(id, false, "op"));
    EXPECT_TRUE(part.is_ok()) << part.status().to_string();
    if (!part.is_ok()) return {};
    auto h = (*part)();
    EXPECT_TRUE(h.is_ok()) << h.status().to_string();
    return h.is_ok() ? *h : KeyedStateHandle{};
  }

  ManualClock clock_{1'700'000'000'000};
  file_test::TempDir local_;
  file_test::TempDir store_;
  CheckpointStorage storage_{store_.path(), "job"};
  int next_ = 0;
};

/// Random changes to the backend's queues and the model alike: adds
/// (often of a timer already set), removes, and pops up to a random time.
void mutate(std::mt19937_64& rng, RocksDBKeyedStateBackend& b, Model& m, int ops) {
  for (int i = 0; i < ops; ++i) {
    const std::string q = kQueues[rng() % 2];
    const int what = static_cast<int>(rng() % 10);
    if (what < 7 || m[q].empty()) {
      std::string key = serialize("k" + std::to_string(rng() % 3000));
      KeyGroup kg = key_group_for_key(key, kMax);
      int64_t ts = 1000 * static_cast<int64_t>(1 + rng() % 20);
      std::string ns = "w" + std::to_string(rng() % 2);
      bool added = b.timer_queue(q).add(ts, kg, key, ns);
      EXPECT_EQ(added, m[q].emplace(ts, kg.value(), key, ns).second);
    } else if (what < 9) {
      auto it = m[q].begin();
      std::advance(it, static_cast<long>(rng() % m[q].size()));
      const auto& [ts, kg, key, ns] = *it;
      EXPECT_TRUE(b.timer_queue(q).remove(ts, KeyGroup(kg), key, ns));
      m[q].erase(it);
    } else {
      const int64_t upto = std::get<0>(*m[q].begin()) + 1000 * static_cast<int64_t>(rng() % 2);
      TimerEntry e;
      while (b.timer_queue(q).pop_due(upto, e)) {
        ASSERT_FALSE(m[q].empty());
        EXPECT_EQ(Timer(e.ts, e.kg.value(), e.key, e.ns), *m[q].begin());
        m[q].erase(m[q].begin());
      }
      EXPECT_TRUE(m[q].empty() || std::get<0>(*m[q].begin()) > upto);
    }
  }
}

/// The model's timers of `range`.
Model within(const Model& m, KeyGroupRange range) {
  Model out;
  for (const auto& [q, set] : m)
    for (const auto& t : set)
      if (range.contains(KeyGroup(std::get<1>(t)))) out[q].insert(t);
  return out;
}

/// Every timer of the backend's queues (drained, in pop order).
Model drain(RocksDBKeyedStateBackend& b) {
  Model out;
  for (const char* q : kQueues) {
    TimerEntry e;
    std::set<Timer>& set = out[q];
    while (b.timer_queue(q).pop_due(std::numeric_limits<int64_t>::max(), e)) {
      Timer t(e.ts, e.kg.value(), e.key, e.ns);
      EXPECT_TRUE(set.empty() || *set.rbegin() < t) << "pops out of order";
      set.insert(t);
    }
  }
  return out;
}

size_t timers_files(const KeyedStateHandle& h) {
  size_t n = 0;
  for (const auto& f : h.files) n += f.path.find("-timers-") != std::string::npos ? 1 : 0;
  return n;
}

TEST_F(TimerSnapshotTest, DeltaChainsMatchAModelThroughAbortsRestoresAndRescaling) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto b = make();
  Model model;
  mutate(rng, *b, model, 3000);  // a large set, then small changes: deltas pay
  std::vector<std::pair<KeyedStateHandle, Model>> taken;
  size_t max_files = 0;
  int64_t id = 0;
  for (int round = 0; round < 40; ++round) {
    mutate(rng, *b, model, static_cast<int>(rng() % 60));
    KeyedStateHandle h = snapshot(*b, ++id);
    max_files = std::max(max_files, timers_files(h));
    taken.emplace_back(h, model);
    if (rng() % 4 != 0) b->notify_checkpoint_complete(CheckpointId(id));  // else: aborted
    if (round % 10 == 9) {
      // Restore a random earlier checkpoint: the same range, then halves.
      const auto& [old, expected] = taken[rng() % taken.size()];
      auto r = make();
      ASSERT_TRUE(r->restore({old}, storage_.job_dir()).is_ok());
      EXPECT_EQ(drain(*r), within(expected, {0, kMax - 1}));
      for (KeyGroupRange half : {KeyGroupRange{0, kMax / 2 - 1}, KeyGroupRange{kMax / 2, kMax - 1}}) {
        auto part = make(half);
        ASSERT_TRUE(part->restore({old}, storage_.job_dir()).is_ok());
        EXPECT_EQ(drain(*part), within(expected, half));
      }
    }
  }
  EXPECT_GT(max_files, 1u) << "some checkpoint referenced earlier timers files and added a delta";

  // A restored backend continues the chain it restored.
  auto r = make();
  ASSERT_TRUE(r->restore({taken.back().first}, storage_.job_dir()).is_ok());
  Model restored = taken.back().second;
  KeyedStateHandle same = snapshot(*r, ++id);
  EXPECT_EQ(timers_files(same), timers_files(taken.back().first)) << "nothing changed: no new file";
  r->notify_checkpoint_complete(CheckpointId(id));
  mutate(rng, *r, restored, 40);
  KeyedStateHandle next = snapshot(*r, ++id);
  auto again = make();
  ASSERT_TRUE(again->restore({next}, storage_.job_dir()).is_ok());
  EXPECT_EQ(drain(*again), within(restored, {0, kMax - 1}));
}

TEST_F(TimerSnapshotTest, SavepointHoldsEveryTimerInOneFileOfItsOwn) {
  auto b = make();
  std::mt19937_64 rng(7);
  Model model;
  mutate(rng, *b, model, 500);
  (void)snapshot(*b, 1);
  b->notify_checkpoint_complete(CheckpointId(1));
  mutate(rng, *b, model, 20);
  const SnapshotTarget t = storage_.target(2, true, "op");
  auto part = b->snapshot(CheckpointId(2), t);
  ASSERT_TRUE(part.is_ok());
  auto h = (*part)();
  ASSERT_TRUE(h.is_ok());
  size_t own_timers = 0;
  for (const auto& f : h->files) {
    EXPECT_FALSE(f.shared) << f.path;
    own_timers += f.path.find("timers") != std::string::npos ? 1 : 0;
  }
  EXPECT_EQ(own_timers, 1u);
  auto r = make();
  auto st = r->restore({*h}, t.job_dir);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(drain(*r), within(model, {0, kMax - 1}));
}

}  // namespace
}  // namespace sluice::state
