// Heap snapshots are copy-on-write: the barrier takes a view, the snapshot
// thread serializes it while the task keeps changing the state. A seeded
// random workload over every state kind (TTL included) and the timers runs
// against a model; at each barrier the model is copied, the snapshot's
// asynchronous part runs on another thread while the workload goes on
// (overlapping with the next checkpoint for every other one), and each
// checkpoint is restored at other parallelisms and compared with the model
// of its barrier. The seed is printed; SLUICE_TEST_SEED replays one.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "engine/common/clock.h"
#include "engine/common/serde.h"
#include "state/checkpoint_storage.h"
#include "state/heap_backend.h"
#include "state/key_groups.h"
#include "state/state_factory.h"

namespace sluice::state {
namespace {

constexpr int32_t kMax = kDefaultMaxParallelism;
constexpr int64_t kStart = 1'700'000'000'000;
constexpr int64_t kTtlMs = 40;

using Acc = std::pair<int64_t, int64_t>;  // (sum, count)

class SumCount final : public AggregateFunction<int64_t, Acc, Acc> {
 public:
  Acc create_accumulator() const override { return {0, 0}; }
  void add(Acc& acc, const int64_t& v) const override {
    acc.first += v;
    acc.second += 1;
  }
  Acc get_result(const Acc& acc) const override { return acc; }
  void merge(Acc& into, const Acc& other) const override {
    into.first += other.first;
    into.second += other.second;
  }
};

std::string key_bytes(const std::string& key) { return serialize(key); }
KeyGroup group_of(const std::string& key) { return key_group_for_key(key_bytes(key), kMax); }

/// Every state kind, registered on one backend.
struct States {
  ValueState<std::string>* value;
  ValueState<int64_t>* ttl_value;
  ListState<int64_t>* list;
  ReducingState<int64_t>* sum;
  AggregatingState<int64_t, Acc, Acc>* agg;
  MapState<std::string, int64_t>* map;
  OrderedMapState<int64_t, std::string>* ordered;

  static States register_on(KeyedStateBackend& b) {
    return {
        get_value_state(b, ValueStateDescriptor<std::string>{"value"}),
        get_value_state(b, ValueStateDescriptor<int64_t>{
                               "ttl", StateTtl::on_create_and_write(Duration(kTtlMs))}),
        get_list_state(b, ListStateDescriptor<int64_t>{"list"}),
        get_reducing_state(b, ReducingStateDescriptor<int64_t>{
                                  "sum", [](const int64_t& a, const int64_t& c) { return a + c; }}),
        get_aggregating_state(b, AggregatingStateDescriptor<int64_t, Acc, Acc>{
                                     "agg", std::make_shared<const SumCount>()}),
        get_map_state(b, MapStateDescriptor<std::string, int64_t>{"map"}),
        get_ordered_map_state(b, OrderedMapStateDescriptor<int64_t, std::string>{"ordered"}),
    };
  }
  void set_namespace(const std::string& n) {
    value->set_namespace(n);
    ttl_value->set_namespace(n);
    list->set_namespace(n);
    sum->set_namespace(n);
    agg->set_namespace(n);
    map->set_namespace(n);
    ordered->set_namespace(n);
  }
};

using Slot = std::pair<std::string, std::string>;  // (key, serialized namespace)

/// What the state holds, written independently of the backend.
struct Model {
  std::map<Slot, std::string> value;
  std::map<Slot, std::pair<int64_t, int64_t>> ttl_value;  // value, expiry
  std::map<Slot, std::vector<int64_t>> list;
  std::map<Slot, int64_t> sum;
  std::map<Slot, Acc> agg;
  std::map<Slot, std::map<std::string, int64_t>> map;
  std::map<Slot, std::map<int64_t, std::string>> ordered;
  std::set<std::tuple<int64_t, std::string>> timers;  // (ts, key)
};

uint64_t seed_of_run() {
  if (const char* s = std::getenv("SLUICE_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  return std::random_device{}();
}

class HeapCowSnapshot : public ::testing::Test {
 protected:
  HeapCowSnapshot() {
    const char* tmp = std::getenv("TMPDIR");
    dir_ = std::string(tmp && *tmp ? tmp : "/tmp") + "/sluice-heap-cow-XXXXXX";
    EXPECT_NE(::mkdtemp(dir_.data()), nullptr);
  }
  ~HeapCowSnapshot() override { (void)remove_tree(dir_); }

  // One random change to the task's state and the model.
  void step(std::mt19937_64& rng, HeapKeyedStateBackend& b, States& s, Model& m) {
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
    const std::string key = "user-" + std::to_string(pick(400));
    const std::string ns = pick(3) == 0 ? serialize(std::string("w")) : std::string();
    const Slot slot{key, ns};
    b.set_current_key(key_bytes(key), group_of(key));
    s.set_namespace(ns);
    const int64_t x = pick(1000);
    switch (pick(16)) {
      case 0: s.value->update("v" + std::to_string(x)); m.value[slot] = "v" + std::to_string(x); break;
      case 1: s.value->clear(); m.value.erase(slot); break;
      case 2:
        s.ttl_value->update(x);
        m.ttl_value[slot] = {x, clock_.now_ms() + kTtlMs};
        break;
      case 3: s.list->add(x); m.list[slot].push_back(x); break;
      case 4: {
        std::vector<int64_t> l(static_cast<size_t>(pick(3)), x);
        s.list->update(l);
        if (l.empty()) m.list.erase(slot);
        else m.list[slot] = l;
        break;
      }
      case 5: s.sum->add(x); m.sum[slot] += x; break;
      case 6: s.sum->clear(); m.sum.erase(slot); break;
      case 7: {
        s.agg->add(x);
        auto& a = m.agg[slot];
        a.first += x;
        a.second += 1;
        break;
      }
      case 8: s.agg->clear(); m.agg.erase(slot); s.list->clear(); m.list.erase(slot); break;
      case 9: {
        const std::string mk = "k" + std::to_string(pick(8));
        s.map->put(mk, x);
        m.map[slot][mk] = x;
        break;
      }
      case 10: {
        const std::string mk = "k" + std::to_string(pick(8));
        s.map->remove(mk);
        auto it = m.map.find(slot);
        if (it != m.map.end()) {
          it->second.erase(mk);
          if (it->second.empty()) m.map.erase(it);
        }
        break;
      }
      case 11: s.map->clear(); m.map.erase(slot); break;
      case 12: {
        const int64_t ok = pick(20);
        s.ordered->put(ok, "o" + std::to_string(x));
        m.ordered[slot][ok] = "o" + std::to_string(x);
        break;
      }
      case 13: {
        const int64_t below = pick(20);
        s.ordered->remove_range(KeyRange<int64_t>::below(below));
        auto it = m.ordered.find(slot);
        if (it != m.ordered.end()) {
          it->second.erase(it->second.begin(), it->second.lower_bound(below));
          if (it->second.empty()) m.ordered.erase(it);
        }
        break;
      }
      case 14: {
        const int64_t ts = pick(50);
        b.timer_queue("event").add(ts, group_of(key), key_bytes(key), "");
        m.timers.insert({ts, key});
        break;
      }
      case 15: {
        const int64_t ts = pick(50);
        b.timer_queue("event").remove(ts, group_of(key), key_bytes(key), "");
        m.timers.erase({ts, key});
        break;
      }
    }
    if (pick(200) == 0) clock_.advance(pick(15));
  }

  // Restores checkpoint `h` at `parallelism` and checks it equals `want`,
  // taken at the barrier (time `at`).
  void check(const KeyedStateHandle& h, const Model& want, int64_t at, int32_t parallelism) {
    ManualClock clock(at);
    std::vector<std::unique_ptr<HeapKeyedStateBackend>> subtasks;
    std::vector<States> states;
    for (int32_t i = 0; i < parallelism; ++i) {
      subtasks.push_back(std::make_unique<HeapKeyedStateBackend>(
          key_group_range_for_subtask(kMax, parallelism, i), kMax, &clock));
      ASSERT_TRUE(subtasks.back()->restore({h}, dir_).is_ok());
      states.push_back(States::register_on(*subtasks.back()));
    }
    auto owner = [&](const std::string& key) -> std::pair<HeapKeyedStateBackend&, States&> {
      for (size_t i = 0; i < subtasks.size(); ++i) {
        if (subtasks[i]->key_group_range().contains(group_of(key))) {
          subtasks[i]->set_current_key(key_bytes(key), group_of(key));
          return {*subtasks[i], states[i]};
        }
      }
      ADD_FAILURE() << "no subtask owns " << key;
      return {*subtasks[0], states[0]};
    };
    std::set<Slot> slots;
    for (const auto& [k, v] : want.value) slots.insert(k);
    for (const auto& [k, v] : want.ttl_value) slots.insert(k);
    for (const auto& [k, v] : want.list) slots.insert(k);
    for (const auto& [k, v] : want.sum) slots.insert(k);
    for (const auto& [k, v] : want.agg) slots.insert(k);
    for (const auto& [k, v] : want.map) slots.insert(k);
    for (const auto& [k, v] : want.ordered) slots.insert(k);
    size_t live_ttl = 0;
    for (const auto& slot : slots) {
      auto [b, s] = owner(slot.first);
      s.set_namespace(slot.second);
      SCOPED_TRACE("key " + slot.first + " namespace bytes " + std::to_string(slot.second.size()));
      auto v = want.value.find(slot);
      EXPECT_EQ(s.value->value(), v == want.value.end() ? std::nullopt : std::optional(v->second));
      auto t = want.ttl_value.find(slot);
      const bool live = t != want.ttl_value.end() && t->second.second > at;
      live_ttl += live ? 1 : 0;
      EXPECT_EQ(s.ttl_value->value(), live ? std::optional(t->second.first) : std::nullopt);
      auto l = want.list.find(slot);
      EXPECT_EQ(s.list->get(), l == want.list.end() ? std::vector<int64_t>{} : l->second);
      auto su = want.sum.find(slot);
      EXPECT_EQ(s.sum->get(), su == want.sum.end() ? std::nullopt : std::optional(su->second));
      auto a = want.agg.find(slot);
      EXPECT_EQ(s.agg->get(), a == want.agg.end() ? std::nullopt : std::optional(a->second));
      auto mp = want.map.find(slot);
      std::vector<std::pair<std::string, int64_t>> map_want;
      if (mp != want.map.end()) map_want.assign(mp->second.begin(), mp->second.end());
      auto map_got = s.map->entries();
      std::sort(map_got.begin(), map_got.end());
      EXPECT_EQ(map_got, map_want);
      auto o = want.ordered.find(slot);
      std::vector<std::pair<int64_t, std::string>> ordered_want;
      if (o != want.ordered.end()) ordered_want.assign(o->second.begin(), o->second.end());
      EXPECT_EQ(s.ordered->entries(), ordered_want);
    }
    // Nothing beyond the model: entries held in all subtasks together.
    auto total = [&](const std::string& name) {
      size_t n = 0;
      for (const auto& b : subtasks) n += b->raw_entry_count(name);
      return n;
    };
    size_t map_entries = 0, ordered_entries = 0;
    for (const auto& [k, mm] : want.map) map_entries += mm.size();
    for (const auto& [k, mm] : want.ordered) ordered_entries += mm.size();
    EXPECT_EQ(total("value"), want.value.size());
    EXPECT_EQ(total("ttl"), live_ttl);
    EXPECT_EQ(total("list"), want.list.size());
    EXPECT_EQ(total("sum"), want.sum.size());
    EXPECT_EQ(total("agg"), want.agg.size());
    EXPECT_EQ(total("map"), map_entries);
    EXPECT_EQ(total("ordered"), ordered_entries);
    std::set<std::tuple<int64_t, std::string>> timers;
    for (const auto& b : subtasks) {
      TimerEntry e;
      while (b->timer_queue("event").pop_due(INT64_MAX, e)) {
        std::string key;
        ASSERT_TRUE(deserialize(e.key, key).is_ok());
        EXPECT_TRUE(timers.insert({e.ts, key}).second);
      }
    }
    EXPECT_EQ(timers, want.timers);
  }

  ManualClock clock_{kStart};
  std::string dir_;
};

TEST_F(HeapCowSnapshot, SnapshotsEqualTheStateAtTheirBarrierWhileTheTaskKeepsWriting) {
  const uint64_t seed = seed_of_run();
  std::cout << "seed " << seed << " (SLUICE_TEST_SEED to replay)\n";
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  HeapKeyedStateBackend b({0, kMax - 1}, kMax, &clock_);
  States s = States::register_on(b);
  Model m;

  struct Taken {
    Model model;
    int64_t at;
    std::future<Result<KeyedStateHandle>> handle;
  };
  std::vector<Taken> taken;
  std::promise<void> release;  // holds back the async part of the previous odd checkpoint
  std::shared_future<void> held;
  constexpr int kCheckpoints = 8;
  for (int cp = 1; cp <= kCheckpoints; ++cp) {
    for (int i = 0; i < 3000; ++i) step(rng, b, s, m);
    auto part = b.snapshot(CheckpointId(cp), SnapshotTarget{dir_, "chk-" + std::to_string(cp), "op"});
    ASSERT_TRUE(part.is_ok()) << part.status().to_string();
    if (held.valid()) release.set_value();  // checkpoint cp - 1 starts writing only now
    std::shared_future<void> gate;
    if (cp % 2 == 1) {
      release = std::promise<void>();
      held = release.get_future().share();
      gate = held;
    } else {
      held = {};
    }
    taken.push_back(Taken{m, clock_.now_ms(),
                          std::async(std::launch::async, [fn = std::move(*part), gate]() mutable {
                            if (gate.valid()) gate.wait();
                            return fn();
                          })});
  }
  if (held.valid()) release.set_value();
  // The task wrote while snapshots held its groups: some were copied.
  EXPECT_GT(b.cow_copies(), 0u);
  // The state is still the model's (the copies did not lose writes).
  for (auto& t : taken) {
    auto h = t.handle.get();
    ASSERT_TRUE(h.is_ok()) << h.status().to_string();
    t.handle = {};
    for (int32_t p : {1, 3}) {
      SCOPED_TRACE("checkpoint at " + std::to_string(t.at - kStart) + " ms, parallelism " +
                   std::to_string(p));
      check(*h, t.model, t.at, p);
    }
  }
  auto live = b.snapshot(CheckpointId(99), SnapshotTarget{dir_, "chk-99", "op"});
  ASSERT_TRUE(live.is_ok());
  auto h = (*live)();
  ASSERT_TRUE(h.is_ok());
  check(*h, m, clock_.now_ms(), 2);
}

}  // namespace
}  // namespace sluice::state
