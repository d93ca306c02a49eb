// Conformance suite, part 2: ordered map state (ranges, bounds, composite
// keys, range removal, iteration rules), map-entry TTL, and snapshot /
// restore / rescale of map state through the backend's own checkpoint
// format. Runs on every backend (see backend_conformance.h); nothing in here
// may depend on which backend runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "engine/common/serde.h"
#include "state/state_factory.h"
#include "tests/state/backend_conformance.h"

namespace sluice::state::conformance {
namespace {

using I64Range = KeyRange<int64_t>;
using Entries = std::vector<std::pair<int64_t, std::string>>;

StateTtl ttl_ms(int64_t ms, bool refresh_on_read = false) {
  return refresh_on_read ? StateTtl::on_read_and_write(Duration(ms))
                         : StateTtl::on_create_and_write(Duration(ms));
}

template <class K, class V>
std::vector<std::pair<K, V>> collect(MapRange<K, V> r) {
  std::vector<std::pair<K, V>> out;
  for (const auto& [k, v] : r) out.emplace_back(k, v);
  return out;
}

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMaxI = std::numeric_limits<int64_t>::max();

/// Keys spread over the whole int64 range, negatives included, inserted out of order.
const std::vector<int64_t> kKeys = {300, -1, 0, 5, kMaxI, -70, 64, kMin, 63, -1'000'000, 1'000'000};

OrderedMapState<int64_t, std::string>* filled(KeyedStateBackend& b, const std::string& name = "m") {
  auto* m = get_ordered_map_state(b, OrderedMapStateDescriptor<int64_t, std::string>{name});
  for (int64_t k : kKeys) m->put(k, "v" + std::to_string(k));
  return m;
}

/// The entries of kKeys that `pred` accepts, ascending.
template <class Pred>
Entries expected(Pred pred) {
  std::map<int64_t, std::string> all;
  for (int64_t k : kKeys) all[k] = "v" + std::to_string(k);
  Entries out;
  for (const auto& [k, v] : all)
    if (pred(k)) out.emplace_back(k, v);
  return out;
}

// ============================================================================
// Order and ranges

TEST_P(KeyedStateConformance, OrderedMapIteratesInNumericOrderWithNegativeKeys) {
  auto& b = make_backend();
  use_key(b, "alice");
  auto* m = filled(b);
  Entries all = expected([](int64_t) { return true; });
  EXPECT_EQ(m->entries(), all);
  EXPECT_EQ(collect(m->iterate()), all);
  EXPECT_EQ(collect(m->range(I64Range::all())), all);
  Entries reversed(all.rbegin(), all.rend());
  EXPECT_EQ(collect(m->reverse_range(I64Range::all())), reversed);
}

TEST_P(KeyedStateConformance, OrderedMapRangeBoundsAreInclusiveOrExclusiveAsAsked) {
  auto& b = make_backend();
  use_key(b, "alice");
  auto* m = filled(b);
  struct Case {
    const char* what;
    I64Range range;
    bool (*pred)(int64_t);
  };
  const std::vector<Case> cases = {
      {"[0, 64)", I64Range::half_open(0, 64), [](int64_t k) { return k >= 0 && k < 64; }},
      {"[0, 64]", I64Range::closed(0, 64), [](int64_t k) { return k >= 0 && k <= 64; }},
      {"[-1, last]", I64Range::at_least(-1), [](int64_t k) { return k >= -1; }},
      {"(-1, last]", I64Range::greater_than(-1), [](int64_t k) { return k > -1; }},
      {"[first, 5)", I64Range::below(5), [](int64_t k) { return k < 5; }},
      {"[first, 5]", I64Range::at_most(5), [](int64_t k) { return k <= 5; }},
      {"(-70, 300)", I64Range{-70, false, 300, false}, [](int64_t k) { return k > -70 && k < 300; }},
      {"[63, 63]", I64Range::single(63), [](int64_t k) { return k == 63; }},
      {"[min, max]", I64Range::closed(kMin, kMaxI), [](int64_t) { return true; }},
      {"(max, last]", I64Range::greater_than(kMaxI), [](int64_t) { return false; }},
      {"[first, min)", I64Range::below(kMin), [](int64_t) { return false; }},
      {"[6, 63) no keys", I64Range::half_open(6, 63), [](int64_t) { return false; }},
      {"[5, 5) empty", I64Range::half_open(5, 5), [](int64_t) { return false; }},
      {"[300, 0] inverted", I64Range::closed(300, 0), [](int64_t) { return false; }},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    Entries want = expected(c.pred);
    EXPECT_EQ(collect(m->range(c.range)), want);
    EXPECT_EQ(collect(m->reverse_range(c.range)), Entries(want.rbegin(), want.rend()));
    EXPECT_EQ(m->count(c.range), want.size());
    EXPECT_EQ(m->is_empty(c.range), want.empty());
    if (want.empty()) {
      EXPECT_EQ(m->first(c.range), std::nullopt);
      EXPECT_EQ(m->last(c.range), std::nullopt);
      EXPECT_EQ(m->first_key(c.range), std::nullopt);
      EXPECT_EQ(m->last_key(c.range), std::nullopt);
    } else {
      EXPECT_EQ(m->first(c.range), want.front());
      EXPECT_EQ(m->last(c.range), want.back());
      EXPECT_EQ(m->first_key(c.range), want.front().first);
      EXPECT_EQ(m->last_key(c.range), want.back().first);
    }
  }
  EXPECT_EQ(m->first(), (std::pair<int64_t, std::string>{kMin, "v" + std::to_string(kMin)}));
  EXPECT_EQ(m->last_key(), kMaxI);
  EXPECT_EQ(m->count(), kKeys.size());
}

TEST_P(KeyedStateConformance, OrderedMapOnAnEmptyMap) {
  auto& b = make_backend();
  use_key(b, "alice");
  auto* m = get_ordered_map_state(b, OrderedMapStateDescriptor<int64_t, std::string>{"m"});
  EXPECT_TRUE(m->is_empty());
  EXPECT_TRUE(m->range(I64Range::all()).empty());
  EXPECT_EQ(m->first(), std::nullopt);
  EXPECT_EQ(m->last(), std::nullopt);
  EXPECT_EQ(m->count(), 0u);
  m->remove_range(I64Range::all());  // no-op
  m->clear();
  EXPECT_TRUE(m->is_empty());
}

TEST_P(KeyedStateConformance, OrderedMapPointOperations) {
  auto& b = make_backend();
  use_key(b, "alice");
  auto* m = filled(b);
  EXPECT_EQ(m->get(-70), "v-70");
  EXPECT_TRUE(m->contains(kMin));
  EXPECT_FALSE(m->contains(1));
  m->put(-70, "new");
  EXPECT_EQ(m->get(-70), "new");
  m->remove(-70);
  EXPECT_FALSE(m->contains(-70));
  EXPECT_EQ(m->count(), kKeys.size() - 1);
}

TEST_P(KeyedStateConformance, OrderedMapRangesStayWithinTheirKeyAndNamespace) {
  auto& b = make_backend();
  auto [k1, k2] = keys_sharing_a_group(b.max_parallelism());
  // "a" and "ab": the key bytes of one are a prefix of the other's.
  for (const std::string& key : {k1, k2, std::string("a"), std::string("ab")}) {
    use_key(b, key);
    auto* m = get_ordered_map_state(b, OrderedMapStateDescriptor<int64_t, std::string>{"m"});
    m->set_namespace("");
    m->put(1, key);
    m->put(kMaxI, key);
    m->set_namespace(ns("w"));
    m->put(2, key + "-w");
  }
  auto* m = get_ordered_map_state(b, OrderedMapStateDescriptor<int64_t, std::string>{"m"});
  use_key(b, "a");
  m->set_namespace("");
  EXPECT_EQ(collect(m->range(I64Range::all())), (Entries{{1, "a"}, {kMaxI, "a"}}));
  EXPECT_EQ(m->last(), (std::pair<int64_t, std::string>{kMaxI, "a"}));
  m->remove_range(I64Range::all());
  EXPECT_TRUE(m->is_empty());
  m->set_namespace(ns("w"));
  EXPECT_EQ(collect(m->range(I64Range::all())), (Entries{{2, "a-w"}}));
  for (const std::string& key : {k1, k2, std::string("ab")}) {
    SCOPED_TRACE(key);
    use_key(b, key);
    m->set_namespace("");
    EXPECT_EQ(collect(m->range(I64Range::all())), (Entries{{1, key}, {kMaxI, key}}));
    EXPECT_EQ(m->last(), (std::pair<int64_t, std::string>{kMaxI, key}));
    EXPECT_EQ(m->first(), (std::pair<int64_t, std::string>{1, key}));
    m->set_namespace(ns("w"));
    EXPECT_EQ(m->count(), 1u);
  }
  use_key(b, k1);
  m->set_namespace("");
  m->clear();
  use_key(b, k2);
  EXPECT_EQ(m->count(), 2u) << "clear touches only the current key";
}

TEST_P(KeyedStateConformance, OrderedMapRemoveRangeRemovesExactlyTheRange) {
  auto& b = make_backend();
  use_key(b, "alice");
  auto* m = filled(b);
  m->remove_range(I64Range::half_open(-70, 64));  // -70, -1, 0, 5, 63
  EXPECT_EQ(m->entries(), expected([](int64_t k) { return k < -70 || k >= 64; }));
  m->remove_range(I64Range::greater_than(300));  // 1'000'000, max
  EXPECT_EQ(m->entries(), expected([](int64_t k) { return k < -70 || (k >= 64 && k <= 300); }));
  m->remove_range(I64Range::at_most(-1'000'000));  // min, -1'000'000
  EXPECT_EQ(m->entries(), expected([](int64_t k) { return k >= 64 && k <= 300; }));
  m->remove_range(I64Range::closed(300, 64));  // inverted: nothing
  EXPECT_EQ(m->count(), 2u);
  m->remove_range(I64Range::all());
  EXPECT_TRUE(m->is_empty());
  m->put(7, "again");
  EXPECT_EQ(m->entries(), (Entries{{7, "again"}}));
}

TEST_P(KeyedStateConformance, OrderedMapRemoveRangeOfThousandsOfEntries) {
  // Large enough for RocksDB's range deletion, not only point deletes.
  auto& b = make_backend();
  auto [k1, k2] = keys_sharing_a_group(b.max_parallelism());
  auto* m = get_ordered_map_state(b, OrderedMapStateDescriptor<int64_t, int64_t>{"big"});
  for (const auto& key : {k1, k2}) {
    use_key(b, key);
    for (int64_t t = -2000; t < 3000; ++t) m->put(t, t * 2);
  }
  use_key(b, k1);
  m->remove_range(KeyRange<int64_t>::below(2500));  // the watermark passed 2500
  EXPECT_EQ(m->count(), 500u);
  EXPECT_EQ(m->first_key(), 2500);
  EXPECT_FALSE(m->contains(0));
  EXPECT_EQ(m->get(2999), 5998);
  int64_t expect = 2500;
  for (const auto& [t, v] : m->range(KeyRange<int64_t>::all())) {
    ASSERT_EQ(t, expect);
    ASSERT_EQ(v, t * 2);
    ++expect;
  }
  EXPECT_EQ(expect, 3000);
  m->put(-5, 1);  // below the removed range again
  EXPECT_EQ(m->first_key(), -5);
  use_key(b, k2);
  EXPECT_EQ(m->count(), 5000u) << "the other key keeps its entries";
  EXPECT_EQ(m->first_key(), -2000);
}

// ============================================================================
// Composite and string keys

TEST_P(KeyedStateConformance, OrderedMapWithTimestampAndSequenceKeys) {
  auto& b = make_backend();
  use_key(b, "alice");
  using Id = std::pair<int64_t, uint32_t>;
  auto* m = get_ordered_map_state(b, OrderedMapStateDescriptor<Id, std::string>{"events"});
  std::vector<Id> ids = {{10, 2}, {-3, 0}, {10, 0}, {10, 0xffffffff}, {11, 0}, {9, 7}, {-3, 1}};
  for (const auto& id : ids) m->put(id, std::to_string(id.first) + "." + std::to_string(id.second));
  std::vector<Id> keys;
  for (const auto& [id, v] : m->range(KeyRange<Id>::all())) keys.push_back(id);
  EXPECT_EQ(keys, (std::vector<Id>{{-3, 0}, {-3, 1}, {9, 7}, {10, 0}, {10, 2}, {10, 0xffffffff}, {11, 0}}));
  // Every event at timestamp 10: [(10, 0), (11, 0)).
  keys.clear();
  for (const auto& [id, v] : m->range(KeyRange<Id>::half_open({10, 0}, {11, 0}))) keys.push_back(id);
  EXPECT_EQ(keys, (std::vector<Id>{{10, 0}, {10, 2}, {10, 0xffffffff}}));
  // Prune everything before timestamp 10.
  m->remove_range(KeyRange<Id>::below({10, 0}));
  EXPECT_EQ(m->first_key(), (Id{10, 0}));
  EXPECT_EQ(m->count(), 4u);
  EXPECT_EQ(m->get({10, 2}), "10.2");
}

struct NodeId {
  std::string stage;
  int32_t version = 0;
  SLUICE_FIELDS(stage, version)
  static constexpr bool sluice_ordered_key = true;
  bool operator==(const NodeId&) const = default;
};

TEST_P(KeyedStateConformance, OrderedMapWithStringAndStructKeys) {
  auto& b = make_backend();
  use_key(b, "alice");
  auto* s = get_ordered_map_state(b, OrderedMapStateDescriptor<std::string, int64_t>{"s"});
  std::vector<std::string> words = {"b", "", "a", std::string("a\0", 2), "ab", std::string("\0", 1),
                                    "\xff", "a\xff"};
  for (size_t i = 0; i < words.size(); ++i) s->put(words[i], static_cast<int64_t>(i));
  std::vector<std::string> got;
  for (const auto& [w, i] : s->range(KeyRange<std::string>::all())) got.push_back(w);
  std::vector<std::string> want = words;
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  got.clear();
  for (const auto& [w, i] : s->range(KeyRange<std::string>::half_open("a", "b"))) got.push_back(w);
  EXPECT_EQ(got, (std::vector<std::string>{"a", std::string("a\0", 2), "ab", "a\xff"}));

  auto* n = get_ordered_map_state(b, OrderedMapStateDescriptor<NodeId, int64_t>{"nodes"});
  n->put({"end", 1}, 3);
  n->put({"begin", 2}, 2);
  n->put({"begin", -1}, 1);
  std::vector<int64_t> order;
  for (const auto& [id, v] : n->range(KeyRange<NodeId>::all())) order.push_back(v);
  EXPECT_EQ(order, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(n->last_key(), (NodeId{"end", 1}));
}

TEST_P(KeyedStateConformance, OrderedMapWithEventTimeKeysAtTheEndsOfTime) {
  auto& b = make_backend();
  use_key(b, "alice");
  auto* m = get_ordered_map_state(b, OrderedMapStateDescriptor<EventTime, int64_t>{"t"});
  for (EventTime t : {EventTime::max(), EventTime(0), EventTime::min(), EventTime(-5)}) m->put(t, t.ms());
  const EventTime probe = EventTime::max() - Duration(1);
  // probe + 10 ms saturates at max: the range reaches the last key.
  std::vector<int64_t> got;
  for (const auto& [t, v] : m->range(KeyRange<EventTime>::closed(probe, probe + Duration(10)))) got.push_back(v);
  EXPECT_EQ(got, (std::vector<int64_t>{EventTime::max().ms()}));
  m->remove_range(KeyRange<EventTime>::below(EventTime(0)));
  EXPECT_EQ(m->first_key(), EventTime(0));
}

// ============================================================================
// Iteration rules

TEST_P(KeyedStateConformance, ModifyingAMapWhileIteratingItThrowsOnEveryBackend) {
  auto& b = make_backend();
  use_key(b, "alice");
  auto* m = filled(b);
  auto* other = filled(b, "other");
  {
    auto r = m->range(I64Range::all());
    auto it = r.begin();
    EXPECT_THROW(m->put(1, "x"), StateUsageError);
    EXPECT_THROW(m->remove(0), StateUsageError);
    EXPECT_THROW(m->remove_range(I64Range::all()), StateUsageError);
    EXPECT_THROW(m->clear(), StateUsageError);
    // Reads, and other states, are fine.
    EXPECT_EQ(m->get(0), "v0");
    EXPECT_EQ(m->count(), kKeys.size());
    other->put(1, "x");
    EXPECT_EQ((*it).key, kMin) << "the iteration is undisturbed";
  }
  m->put(1, "x");  // the range is gone
  EXPECT_EQ(m->get(1), "x");
  // Breaking out of a loop closes the range too.
  for (const auto& [k, v] : m->range(I64Range::all())) {
    if (k > 0) break;
  }
  m->remove(1);
  EXPECT_FALSE(m->contains(1));
  // Plain MapState follows the same rule.
  auto* plain = get_map_state(b, MapStateDescriptor<std::string, int64_t>{"plain"});
  plain->put("a", 1);
  {
    auto r = plain->iterate();
    EXPECT_THROW(plain->put("b", 2), StateUsageError);
  }
  plain->put("b", 2);
  EXPECT_EQ(collect(plain->iterate()), (std::vector<std::pair<std::string, int64_t>>{{"a", 1}, {"b", 2}}));
}

TEST_P(KeyedStateConformance, RemovalAfterCollectingDuringIterationIsThePattern) {
  auto& b = make_backend();
  use_key(b, "alice");
  auto* m = filled(b);
  std::vector<int64_t> odd;
  for (const auto& [k, v] : m->range(I64Range::all()))
    if (k % 2 != 0) odd.push_back(k);
  for (int64_t k : odd) m->remove(k);
  EXPECT_EQ(m->entries(), expected([](int64_t k) { return k % 2 == 0; }));
}

// ============================================================================
// TTL of map entries (ManualClock)

TEST_P(KeyedStateConformance, MapEntriesExpireOneByOne) {
  auto& b = make_backend();
  use_key(b, "alice");
  auto* plain = get_map_state(b, MapStateDescriptor<std::string, int64_t>{"plain", ttl_ms(1000)});
  auto* ordered =
      get_ordered_map_state(b, OrderedMapStateDescriptor<int64_t, int64_t>{"ordered", ttl_ms(1000)});
  plain->put("old", 1);
  ordered->put(1, 1);
  clock_.advance(600);
  plain->put("young", 2);  // must not refresh "old"
  ordered->put(2, 2);
  clock_.advance(401);  // "old" is 1001 ms old, "young" 401
  EXPECT_EQ(plain->get("old"), std::nullopt);
  EXPECT_FALSE(plain->contains("old"));
  EXPECT_EQ(plain->entries(), (std::vector<std::pair<std::string, int64_t>>{{"young", 2}}));
  EXPECT_EQ(ordered->entries(), (std::vector<std::pair<int64_t, int64_t>>{{2, 2}}));
  EXPECT_EQ(ordered->count(), 1u);
  EXPECT_EQ(ordered->first_key(), 2);
  EXPECT_FALSE(ordered->is_empty());
  clock_.advance(600);
  EXPECT_TRUE(plain->is_empty());
  EXPECT_TRUE(ordered->is_empty());
  EXPECT_EQ(ordered->last(), std::nullopt);
}

TEST_P(KeyedStateConformance, RangeReadsNeverReturnExpiredEntries) {
  auto& b = make_backend();
  use_key(b, "alice");
  auto* m = get_ordered_map_state(b, OrderedMapStateDescriptor<int64_t, int64_t>{"m", ttl_ms(1000)});
  for (int64_t k = 0; k < 10; ++k) {
    m->put(k, k);
    clock_.advance(100);  // key k is written at +100k ms
  }
  clock_.advance(450);  // now +1450: keys 0..4 expired (written at +0..+400)
  std::vector<int64_t> keys;
  for (const auto& [k, v] : m->range(KeyRange<int64_t>::all())) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<int64_t>{5, 6, 7, 8, 9}));
  keys.clear();
  for (const auto& [k, v] : m->reverse_range(KeyRange<int64_t>::closed(2, 7))) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<int64_t>{7, 6, 5}));
  EXPECT_EQ(m->first(), (std::pair<int64_t, int64_t>{5, 5}));
  EXPECT_EQ(m->last(KeyRange<int64_t>::below(5)), std::nullopt);
  EXPECT_EQ(m->count(KeyRange<int64_t>::below(7)), 2u);
  EXPECT_TRUE(m->is_empty(KeyRange<int64_t>::below(5)));
  EXPECT_EQ(m->get(4), std::nullopt);
  m->put(4, 40);  // a fresh write of an expired key is a new entry
  EXPECT_EQ(m->first(), (std::pair<int64_t, int64_t>{4, 40}));
}

TEST_P(KeyedStateConformance, RefreshOnReadRefreshesTheMapEntriesARangeReads) {
  auto& b = make_backend();
  use_key(b, "alice");
  auto* m =
      get_ordered_map_state(b, OrderedMapStateDescriptor<int64_t, int64_t>{"m", ttl_ms(1000, true)});
  for (int64_t k = 0; k < 4; ++k) m->put(k, k);
  clock_.advance(800);
  // Values of 1 and 2 are read; 0 and 3 only have their keys looked at.
  for (const auto& [k, v] : m->range(KeyRange<int64_t>::closed(1, 2))) EXPECT_EQ(v, k);
  EXPECT_EQ(m->first_key(), 0);
  EXPECT_EQ(m->count(), 4u);
  clock_.advance(300);  // 1100 after the writes, 300 after the read
  EXPECT_EQ(m->entries(), (std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {2, 2}}));
  // entries() read (and refreshed) both again.
  clock_.advance(999);
  EXPECT_EQ(m->count(), 2u);
  clock_.advance(2);
  EXPECT_TRUE(m->is_empty());
}

TEST_P(KeyedStateConformance, ReadsWithoutRefreshOnReadLeaveMapExpiryAlone) {
  auto& b = make_backend();
  use_key(b, "alice");
  auto* m = get_ordered_map_state(b, OrderedMapStateDescriptor<int64_t, int64_t>{"m", ttl_ms(1000)});
  m->put(1, 1);
  clock_.advance(900);
  EXPECT_EQ(m->get(1), 1);
  EXPECT_EQ(m->first(), (std::pair<int64_t, int64_t>{1, 1}));
  EXPECT_TRUE(m->contains(1));
  clock_.advance(101);
  EXPECT_EQ(m->get(1), std::nullopt);
}

// ============================================================================
// Snapshot, restore, rescale

/// Per key: ordered entries at -i, 0, i*10 (value "k@t"), one in namespace "w".
void fill_keys(KeyedStateBackend& b, const std::vector<std::string>& keys) {
  auto* m = get_ordered_map_state(b, OrderedMapStateDescriptor<int64_t, std::string>{"buffer"});
  for (size_t i = 0; i < keys.size(); ++i) {
    std::string bytes = serialize(keys[i]);
    b.set_current_key(bytes, key_group_for_key(bytes, b.max_parallelism()));
    const int64_t n = static_cast<int64_t>(i) + 1;
    m->set_namespace("");
    for (int64_t t : {-n, int64_t{0}, n * 10}) m->put(t, keys[i] + "@" + std::to_string(t));
    m->set_namespace(serialize(std::string("w")));
    m->put(n, "w");
  }
  m->set_namespace("");
}

void expect_keys(KeyedStateBackend& b, const std::vector<std::string>& keys, size_t offset_of_first,
                 bool present) {
  auto* m = get_ordered_map_state(b, OrderedMapStateDescriptor<int64_t, std::string>{"buffer"});
  for (size_t i = 0; i < keys.size(); ++i) {
    SCOPED_TRACE(keys[i]);
    std::string bytes = serialize(keys[i]);
    b.set_current_key(bytes, key_group_for_key(bytes, b.max_parallelism()));
    m->set_namespace("");
    if (!present) {
      EXPECT_TRUE(m->is_empty());
      continue;
    }
    const int64_t n = static_cast<int64_t>(i + offset_of_first) + 1;
    Entries want;
    for (int64_t t : {-n, int64_t{0}, n * 10}) want.emplace_back(t, keys[i] + "@" + std::to_string(t));
    EXPECT_EQ(collect(m->range(I64Range::all())), want);
    EXPECT_EQ(m->last_key(), n * 10);
    m->set_namespace(serialize(std::string("w")));
    EXPECT_EQ(m->entries(), (Entries{{n, "w"}}));
  }
  m->set_namespace("");
}

TEST_P(KeyedStateConformance, OrderedMapSurvivesSnapshotAndRestore) {
  auto& a = make_backend();
  std::vector<std::string> keys = keys_in_range({0, kDefaultMaxParallelism - 1}, kDefaultMaxParallelism, 200);
  fill_keys(a, keys);
  KeyedStateHandle h = snapshot(a, 1);
  // Changes after the snapshot are not in it.
  use_key(a, keys[0]);
  get_ordered_map_state(a, OrderedMapStateDescriptor<int64_t, std::string>{"buffer"})
      ->remove_range(I64Range::all());

  auto& r = restore({h});
  expect_keys(r, keys, 0, true);
  // The restored state keeps working: ranges, removal, a second checkpoint.
  use_key(r, keys[1]);
  auto* m = get_ordered_map_state(r, OrderedMapStateDescriptor<int64_t, std::string>{"buffer"});
  m->remove_range(I64Range::below(0));
  m->put(-100, "late");
  KeyedStateHandle h2 = snapshot(r, 2);
  auto& r2 = restore({h2});
  use_key(r2, keys[1]);
  auto* m2 = get_ordered_map_state(r2, OrderedMapStateDescriptor<int64_t, std::string>{"buffer"});
  EXPECT_EQ(collect(m2->range(I64Range::all())),
            (Entries{{-100, "late"}, {0, keys[1] + "@0"}, {20, keys[1] + "@20"}}));
}

TEST_P(KeyedStateConformance, OrderedMapIsRedistributedWhenRescaling) {
  auto& a = make_backend();
  std::vector<std::string> keys = keys_in_range({0, kDefaultMaxParallelism - 1}, kDefaultMaxParallelism, 300);
  fill_keys(a, keys);
  KeyedStateHandle h = snapshot(a, 1);

  // 1 -> 3 subtasks: each gets exactly the keys of its key groups.
  std::vector<KeyedStateHandle> thirds;
  for (int32_t s = 0; s < 3; ++s) {
    KeyGroupRange range = key_group_range_for_subtask(kDefaultMaxParallelism, 3, s);
    auto& r = restore({h}, range);
    std::vector<std::string> mine, others;
    std::vector<size_t> mine_index;
    for (size_t i = 0; i < keys.size(); ++i) {
      bool in = range.contains(key_group_for_key(serialize(keys[i]), kDefaultMaxParallelism));
      (in ? mine : others).push_back(keys[i]);
      if (in) mine_index.push_back(i);
    }
    ASSERT_FALSE(mine.empty());
    for (size_t j = 0; j < mine.size(); ++j) expect_keys(r, {mine[j]}, mine_index[j], true);
    std::vector<std::string> others_here;
    for (const auto& k : others)
      if (range.contains(key_group_for_key(serialize(k), kDefaultMaxParallelism))) others_here.push_back(k);
    EXPECT_TRUE(others_here.empty());
    thirds.push_back(snapshot(r, 10 + s));
  }
  // 3 -> 1: everything is back in one backend.
  auto& all = restore(thirds);
  expect_keys(all, keys, 0, true);
}

TEST_P(KeyedStateConformance, RestoredMapEntriesKeepTheirExpiry) {
  auto& a = make_backend();
  use_key(a, "alice");
  auto* m = get_ordered_map_state(a, OrderedMapStateDescriptor<int64_t, int64_t>{"m", ttl_ms(1000)});
  auto* p = get_map_state(a, MapStateDescriptor<int64_t, int64_t>{"p", ttl_ms(1000)});
  m->put(1, 1);
  p->put(1, 1);
  clock_.advance(600);
  m->put(2, 2);
  p->put(2, 2);
  clock_.advance(500);  // 1 expired 100 ms ago, 2 has 100 ms left
  KeyedStateHandle h = snapshot(a, 1);
  auto& r = restore({h}, {0, 63});  // rescaled: whichever half holds alice
  auto& r2 = restore({h}, {64, kDefaultMaxParallelism - 1});
  KeyedStateBackend& mine =
      r.key_group_range().contains(key_group_for_key(serialize(std::string("alice")), kDefaultMaxParallelism)) ? r : r2;
  use_key(mine, "alice");
  auto* rm = get_ordered_map_state(mine, OrderedMapStateDescriptor<int64_t, int64_t>{"m", ttl_ms(1000)});
  auto* rp = get_map_state(mine, MapStateDescriptor<int64_t, int64_t>{"p", ttl_ms(1000)});
  EXPECT_EQ(rm->first_key(), 2) << "the expired entry stays invisible";
  EXPECT_EQ(rp->entries(), (std::vector<std::pair<int64_t, int64_t>>{{2, 2}}));
  clock_.set(kStartMs + 1600);  // 2 was written at +600
  EXPECT_TRUE(rm->is_empty()) << "restoring must not extend the time to live";
  EXPECT_TRUE(rp->is_empty());
}

TEST_P(KeyedStateConformance, EntriesKeepTheExpiryTheyWereWrittenWithWhenTheTtlChanges) {
  // Written: "a" without TTL, "b" with; restored with the TTLs swapped.
  auto& a = make_backend();
  use_key(a, "alice");
  get_value_state(a, ValueStateDescriptor<int64_t>{"a"})->update(1);
  get_ordered_map_state(a, OrderedMapStateDescriptor<int64_t, int64_t>{"ma"})->put(1, 1);
  get_value_state(a, ValueStateDescriptor<int64_t>{"b", ttl_ms(1000)})->update(2);
  get_ordered_map_state(a, OrderedMapStateDescriptor<int64_t, int64_t>{"mb", ttl_ms(1000)})->put(2, 2);
  KeyedStateHandle h = snapshot(a, 1);
  auto& r = restore({h});
  use_key(r, "alice");
  auto* va = get_value_state(r, ValueStateDescriptor<int64_t>{"a", ttl_ms(1000)});
  auto* ma = get_ordered_map_state(r, OrderedMapStateDescriptor<int64_t, int64_t>{"ma", ttl_ms(1000)});
  auto* vb = get_value_state(r, ValueStateDescriptor<int64_t>{"b"});
  auto* mb = get_ordered_map_state(r, OrderedMapStateDescriptor<int64_t, int64_t>{"mb"});
  ma->put(10, 10);  // written under the new TTL: expires at +1000
  mb->put(20, 20);  // written without TTL: never expires
  clock_.advance(1001);
  EXPECT_EQ(va->value(), 1) << "written without an expiry, it never expires";
  EXPECT_EQ(vb->value(), std::nullopt) << "written with an expiry, it keeps it";
  EXPECT_EQ(ma->entries(), (std::vector<std::pair<int64_t, int64_t>>{{1, 1}}));
  EXPECT_EQ(mb->entries(), (std::vector<std::pair<int64_t, int64_t>>{{20, 20}}));
  vb->update(3);
  clock_.advance(int64_t{1} << 40);
  EXPECT_EQ(vb->value(), 3);
}

TEST_P(KeyedStateConformance, MapAndOrderedMapStateCannotBeRestoredAsEachOther) {
  auto& a = make_backend();
  use_key(a, "alice");
  get_map_state(a, MapStateDescriptor<int64_t, int64_t>{"plain"})->put(1, 1);
  get_ordered_map_state(a, OrderedMapStateDescriptor<int64_t, int64_t>{"ordered"})->put(1, 1);
  KeyedStateHandle h = snapshot(a, 1);
  auto& r = restore({h});
  EXPECT_THROW((get_ordered_map_state(r, OrderedMapStateDescriptor<int64_t, int64_t>{"plain"})),
               StateTypeError);
  EXPECT_THROW((get_map_state(r, MapStateDescriptor<int64_t, int64_t>{"ordered"})), StateTypeError);
  use_key(r, "alice");
  EXPECT_EQ(get_map_state(r, MapStateDescriptor<int64_t, int64_t>{"plain"})->get(1), 1);
  EXPECT_EQ(get_ordered_map_state(r, OrderedMapStateDescriptor<int64_t, int64_t>{"ordered"})->get(1), 1);
}

}  // namespace
}  // namespace sluice::state::conformance
