// The keyed-state backend conformance suite (see backend_conformance.h):
// value, list, map, reducing and aggregating state; TTL in
// backend_conformance_ttl_test.cc. Nothing in here may depend on which
// backend runs.
#include "tests/state/backend_conformance.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/serde.h"
#include "state/state_factory.h"

namespace sluice::state::conformance {
namespace {

using namespace std::chrono_literals;

struct Session {
  std::string user;
  int64_t start = 0;
  std::vector<std::string> pages;
  std::optional<double> score;
  SLUICE_FIELDS(user, start, pages, score)
  bool operator==(const Session&) const = default;
};

/// Collects the distinct strings seen (accumulator: a vector kept sorted).
class DistinctFn final
    : public AggregateFunction<std::string, std::vector<std::string>, std::string> {
 public:
  std::vector<std::string> create_accumulator() const override { return {}; }
  void add(std::vector<std::string>& acc, const std::string& v) const override {
    auto it = std::lower_bound(acc.begin(), acc.end(), v);
    if (it == acc.end() || *it != v) acc.insert(it, v);
  }
  std::string get_result(const std::vector<std::string>& acc) const override {
    std::string out;
    for (const auto& s : acc) out += (out.empty() ? "" : ",") + s;
    return out;
  }
  void merge(std::vector<std::string>& into, const std::vector<std::string>& other) const override {
    for (const auto& s : other) add(into, s);
  }
};

// ============================================================================
// Value state

TEST_P(KeyedStateConformance, ValueStateIsEmptyUntilUpdated) {
  auto& b = make_backend();
  auto* s = get_value_state(b, ValueStateDescriptor<int64_t>{"count"});
  use_key(b, "alice");
  EXPECT_EQ(s->value(), std::nullopt);
  EXPECT_EQ(s->value_or(-1), -1);
  s->update(7);
  EXPECT_EQ(s->value(), 7);
  EXPECT_EQ(s->value_or(-1), 7);
  s->update(8);
  EXPECT_EQ(s->value(), 8) << "update overwrites";
}

TEST_P(KeyedStateConformance, ValueStateHoldsStructsAndEmptyValues) {
  auto& b = make_backend();
  auto* s = get_value_state(b, ValueStateDescriptor<Session>{"session"});
  auto* str = get_value_state(b, ValueStateDescriptor<std::string>{"str"});
  use_key(b, "alice");
  Session v{"alice", -5, {"/a", "", std::string("\0x", 2)}, 0.25};
  s->update(v);
  EXPECT_EQ(s->value(), v);
  str->update("");
  ASSERT_TRUE(str->value().has_value()) << "an empty string is a value, not absence";
  EXPECT_EQ(*str->value(), "");
}

TEST_P(KeyedStateConformance, ValueStateIsIsolatedPerKeyAcrossKeyGroups) {
  auto& b = make_backend();
  auto [a, c] = keys_in_different_groups(b.max_parallelism());
  auto* s = get_value_state(b, ValueStateDescriptor<std::string>{"name"});
  use_key(b, a);
  s->update("value-a");
  use_key(b, c);
  EXPECT_EQ(s->value(), std::nullopt);
  s->update("value-c");
  use_key(b, a);
  EXPECT_EQ(s->value(), "value-a");
  use_key(b, c);
  EXPECT_EQ(s->value(), "value-c");
}

TEST_P(KeyedStateConformance, ValueStateIsIsolatedBetweenKeysOfOneKeyGroup) {
  auto& b = make_backend();
  auto [a, c] = keys_sharing_a_group(b.max_parallelism());
  ASSERT_NE(a, c);
  auto* s = get_value_state(b, ValueStateDescriptor<int64_t>{"n"});
  use_key(b, a);
  s->update(1);
  use_key(b, c);
  EXPECT_EQ(s->value(), std::nullopt);
  s->update(2);
  use_key(b, a);
  EXPECT_EQ(s->value(), 1);
  s->clear();
  use_key(b, c);
  EXPECT_EQ(s->value(), 2) << "clear touches only the current key";
}

TEST_P(KeyedStateConformance, KeysThatArePrefixesOfEachOtherDoNotCollide) {
  auto& b = make_backend();
  auto* s = get_value_state(b, ValueStateDescriptor<int64_t>{"n"});
  // With namespaces too: (key "ab", ns "c") vs (key "a", ns "bc").
  use_key(b, "ab");
  s->set_namespace(ns("c"));
  s->update(1);
  use_key(b, "a");
  s->set_namespace(ns("bc"));
  EXPECT_EQ(s->value(), std::nullopt);
  s->update(2);
  use_key(b, "ab");
  s->set_namespace(ns("c"));
  EXPECT_EQ(s->value(), 1);
}

TEST_P(KeyedStateConformance, ManyKeysEachKeepTheirOwnValue) {
  auto& b = make_backend();
  auto* s = get_value_state(b, ValueStateDescriptor<int64_t>{"n"});
  for (int64_t k = 0; k < 2000; ++k) {
    use_key(b, k);
    s->update(k * k);
  }
  for (int64_t k = 1999; k >= 0; --k) {
    use_key(b, k);
    ASSERT_EQ(s->value(), k * k) << "key " << k;
  }
}

TEST_P(KeyedStateConformance, BackendOwningASubRangeServesItsKeys) {
  KeyGroupRange range{32, 63};
  auto& b = make_backend(range);
  auto* s = get_value_state(b, ValueStateDescriptor<std::string>{"v"});
  auto keys = keys_in_range(range, b.max_parallelism(), 50);
  for (const auto& k : keys) {
    use_key(b, k);
    ASSERT_TRUE(range.contains(b.current_key_group()));
    s->update("v-" + k);
  }
  for (const auto& k : keys) {
    use_key(b, k);
    EXPECT_EQ(s->value(), "v-" + k);
  }
}

TEST_P(KeyedStateConformance, NonDefaultMaxParallelism) {
  auto& b = make_backend({0, 9}, 10);
  auto* s = get_value_state(b, ValueStateDescriptor<int64_t>{"v"});
  for (int64_t k = 0; k < 100; ++k) {
    use_key(b, k);
    s->update(k + 1);
  }
  for (int64_t k = 0; k < 100; ++k) {
    use_key(b, k);
    EXPECT_EQ(s->value(), k + 1);
  }
}

TEST_P(KeyedStateConformance, NamespacesAreIsolated) {
  auto& b = make_backend();
  auto* s = get_value_state(b, ValueStateDescriptor<int64_t>{"n"});
  use_key(b, "alice");
  s->update(0);  // default (empty) namespace
  s->set_namespace(ns("w1"));
  EXPECT_EQ(s->value(), std::nullopt);
  s->update(1);
  s->set_namespace(ns("w2"));
  EXPECT_EQ(s->value(), std::nullopt);
  s->update(2);

  s->set_namespace(ns("w1"));
  EXPECT_EQ(s->value(), 1);
  s->clear();
  EXPECT_EQ(s->value(), std::nullopt);
  s->set_namespace(ns("w2"));
  EXPECT_EQ(s->value(), 2) << "clear touches only the current namespace";
  s->set_namespace("");
  EXPECT_EQ(s->value(), 0);
}

TEST_P(KeyedStateConformance, NamespaceStaysSelectedAcrossKeyChanges) {
  auto& b = make_backend();
  auto* s = get_value_state(b, ValueStateDescriptor<int64_t>{"n"});
  s->set_namespace(ns("w"));
  use_key(b, "alice");
  s->update(1);
  use_key(b, "bob");
  s->update(2);
  s->set_namespace("");
  EXPECT_EQ(s->value(), std::nullopt);
  s->set_namespace(ns("w"));
  use_key(b, "alice");
  EXPECT_EQ(s->value(), 1);
}

TEST_P(KeyedStateConformance, StatesWithDifferentNamesAreIndependent) {
  auto& b = make_backend();
  auto* x = get_value_state(b, ValueStateDescriptor<int64_t>{"x"});
  auto* y = get_value_state(b, ValueStateDescriptor<int64_t>{"y"});
  use_key(b, "alice");
  x->update(1);
  EXPECT_EQ(y->value(), std::nullopt);
  y->update(2);
  x->clear();
  EXPECT_EQ(y->value(), 2);
}

TEST_P(KeyedStateConformance, RegisteringTheSameStateTwiceReturnsTheSameHandle) {
  auto& b = make_backend();
  auto* first = get_value_state(b, ValueStateDescriptor<int64_t>{"n"});
  auto* second = get_value_state(b, ValueStateDescriptor<int64_t>{"n"});
  EXPECT_EQ(first, second);
  use_key(b, "alice");
  first->update(5);
  EXPECT_EQ(second->value(), 5);
}

TEST_P(KeyedStateConformance, RegisteringANameWithAnotherTypeThrows) {
  auto& b = make_backend();
  get_value_state(b, ValueStateDescriptor<int64_t>{"v"});
  EXPECT_THROW(get_value_state(b, ValueStateDescriptor<std::string>{"v"}), StateTypeError);
  EXPECT_THROW(get_list_state(b, ListStateDescriptor<int64_t>{"v"}), StateTypeError);
  EXPECT_THROW(get_reducing_state(b, sum_desc("v")), StateTypeError);
  EXPECT_THROW((get_map_state(b, MapStateDescriptor<std::string, int64_t>{"v"})), StateTypeError);
  EXPECT_THROW(get_aggregating_state(b, avg_desc("v")), StateTypeError);

  get_map_state(b, MapStateDescriptor<std::string, int64_t>{"m"});
  EXPECT_THROW((get_map_state(b, MapStateDescriptor<std::string, double>{"m"})), StateTypeError);
  EXPECT_THROW((get_map_state(b, MapStateDescriptor<int64_t, int64_t>{"m"})), StateTypeError);

  get_list_state(b, ListStateDescriptor<std::string>{"l"});
  EXPECT_THROW(get_value_state(b, ValueStateDescriptor<std::vector<std::string>>{"l"}),
               StateTypeError);
}

TEST_P(KeyedStateConformance, TypeErrorNamesTheState) {
  auto& b = make_backend();
  get_value_state(b, ValueStateDescriptor<int64_t>{"page-count"});
  try {
    get_list_state(b, ListStateDescriptor<int64_t>{"page-count"});
    FAIL() << "no StateTypeError";
  } catch (const StateTypeError& e) {
    EXPECT_NE(std::string(e.what()).find("'page-count'"), std::string::npos) << e.what();
  }
}

TEST_P(KeyedStateConformance, AFailedRegistrationLeavesTheOriginalStateUsable) {
  auto& b = make_backend();
  auto* s = get_value_state(b, ValueStateDescriptor<int64_t>{"v"});
  use_key(b, "alice");
  s->update(3);
  EXPECT_THROW(get_value_state(b, ValueStateDescriptor<std::string>{"v"}), StateTypeError);
  EXPECT_EQ(s->value(), 3);
  EXPECT_EQ(get_value_state(b, ValueStateDescriptor<int64_t>{"v"}), s);
}

// ============================================================================
// List state

TEST_P(KeyedStateConformance, ListStateKeepsInsertionOrder) {
  auto& b = make_backend();
  auto* l = get_list_state(b, ListStateDescriptor<std::string>{"l"});
  use_key(b, "alice");
  EXPECT_TRUE(l->get().empty());
  l->add("c");
  l->add("a");
  l->add("b");
  l->add("a");
  EXPECT_EQ(l->get(), (std::vector<std::string>{"c", "a", "b", "a"}));
  l->add_all({"x", "y"});
  EXPECT_EQ(l->get(), (std::vector<std::string>{"c", "a", "b", "a", "x", "y"}));
  l->add_all({});
  EXPECT_EQ(l->get().size(), 6u);
}

TEST_P(KeyedStateConformance, ListStateUpdateReplacesAndEmptyUpdateClears) {
  auto& b = make_backend();
  auto* l = get_list_state(b, ListStateDescriptor<int64_t>{"l"});
  use_key(b, "alice");
  l->add(1);
  l->update({7, 8, 9});
  EXPECT_EQ(l->get(), (std::vector<int64_t>{7, 8, 9}));
  l->update({});
  EXPECT_TRUE(l->get().empty());
  l->add(4);
  EXPECT_EQ(l->get(), (std::vector<int64_t>{4}));
  l->clear();
  EXPECT_TRUE(l->get().empty());
}

TEST_P(KeyedStateConformance, ListStateIsIsolatedPerKeyAndNamespace) {
  auto& b = make_backend();
  auto [k1, k2] = keys_sharing_a_group(b.max_parallelism());
  auto* l = get_list_state(b, ListStateDescriptor<int64_t>{"l"});
  use_key(b, k1);
  l->add(1);
  l->set_namespace(ns("w"));
  l->add(2);
  use_key(b, k2);
  EXPECT_TRUE(l->get().empty());
  l->add(3);
  l->set_namespace("");
  EXPECT_TRUE(l->get().empty());
  use_key(b, k1);
  EXPECT_EQ(l->get(), (std::vector<int64_t>{1}));
  l->set_namespace(ns("w"));
  EXPECT_EQ(l->get(), (std::vector<int64_t>{2}));
  l->clear();
  use_key(b, k2);
  EXPECT_EQ(l->get(), (std::vector<int64_t>{3}));
}

TEST_P(KeyedStateConformance, ListMergeNamespacesAppendsSourcesToTargetAndClearsThem) {
  auto& b = make_backend();
  auto* l = get_list_state(b, ListStateDescriptor<std::string>{"l"});
  use_key(b, "alice");
  l->set_namespace(ns("t"));
  l->add("t1");
  l->set_namespace(ns("s1"));
  l->add_all({"a1", "a2"});
  l->set_namespace(ns("s2"));
  l->add("b1");
  // The same namespaces of another key must not be touched.
  use_key(b, "bob");
  l->set_namespace(ns("s1"));
  l->add("bob-s1");

  use_key(b, "alice");
  l->merge_namespaces(ns("t"), {ns("s1"), ns("missing"), ns("s2")});
  l->set_namespace(ns("t"));
  EXPECT_EQ(l->get(), (std::vector<std::string>{"t1", "a1", "a2", "b1"}));
  l->set_namespace(ns("s1"));
  EXPECT_TRUE(l->get().empty());
  l->set_namespace(ns("s2"));
  EXPECT_TRUE(l->get().empty());

  use_key(b, "bob");
  l->set_namespace(ns("s1"));
  EXPECT_EQ(l->get(), (std::vector<std::string>{"bob-s1"}));
  l->set_namespace(ns("t"));
  EXPECT_TRUE(l->get().empty());
}

TEST_P(KeyedStateConformance, ListMergeIntoAnEmptyTarget) {
  auto& b = make_backend();
  auto* l = get_list_state(b, ListStateDescriptor<int64_t>{"l"});
  use_key(b, "alice");
  l->set_namespace(ns("s"));
  l->add(5);
  l->merge_namespaces(ns("t"), {ns("s")});
  l->set_namespace(ns("t"));
  EXPECT_EQ(l->get(), (std::vector<int64_t>{5}));

  // Merging nothing leaves an empty target empty.
  l->merge_namespaces(ns("u"), {ns("nothing")});
  l->set_namespace(ns("u"));
  EXPECT_TRUE(l->get().empty());
}

// ============================================================================
// Map state

TEST_P(KeyedStateConformance, MapStatePutGetContainsRemove) {
  auto& b = make_backend();
  auto* m = get_map_state(b, MapStateDescriptor<std::string, int64_t>{"m"});
  use_key(b, "alice");
  EXPECT_TRUE(m->is_empty());
  EXPECT_TRUE(m->entries().empty());
  EXPECT_FALSE(m->contains("a"));
  EXPECT_EQ(m->get("a"), std::nullopt);

  m->put("a", 1);
  m->put("b", 2);
  EXPECT_FALSE(m->is_empty());
  EXPECT_TRUE(m->contains("a"));
  EXPECT_EQ(m->get("a"), 1);
  EXPECT_EQ(m->get("b"), 2);
  EXPECT_FALSE(m->contains("c"));

  m->put("a", 10);
  EXPECT_EQ(m->get("a"), 10) << "put overwrites";

  m->remove("a");
  EXPECT_FALSE(m->contains("a"));
  EXPECT_EQ(m->get("a"), std::nullopt);
  EXPECT_EQ(m->get("b"), 2);
  m->remove("not-there");  // no-op
  EXPECT_EQ(m->get("b"), 2);

  m->remove("b");
  EXPECT_TRUE(m->is_empty()) << "removing the last entry empties the map";
  EXPECT_TRUE(m->entries().empty());
}

TEST_P(KeyedStateConformance, MapEntriesAreOrderedBySerializedKey) {
  auto& b = make_backend();
  auto* m = get_map_state(b, MapStateDescriptor<int64_t, std::string>{"m"});
  use_key(b, "alice");
  std::vector<int64_t> ks = {300, -1, 0, 5, 1000000, -70, 64, 63};
  for (int64_t k : ks) m->put(k, "v" + std::to_string(k));

  std::vector<std::pair<std::string, int64_t>> by_bytes;
  for (int64_t k : ks) by_bytes.emplace_back(serialize(k), k);
  std::sort(by_bytes.begin(), by_bytes.end());
  std::vector<std::pair<int64_t, std::string>> expected;
  for (const auto& [bytes, k] : by_bytes) expected.emplace_back(k, "v" + std::to_string(k));

  EXPECT_EQ(m->entries(), expected);
}

TEST_P(KeyedStateConformance, MapStateHoldsStructValues) {
  auto& b = make_backend();
  auto* m = get_map_state(b, MapStateDescriptor<std::string, Session>{"sessions"});
  use_key(b, "alice");
  Session s1{"alice", 1, {"/a"}, std::nullopt};
  Session s2{"alice", 2, {}, 1.5};
  m->put("s1", s1);
  m->put("s2", s2);
  EXPECT_EQ(m->get("s1"), s1);
  auto entries = m->entries();
  ASSERT_EQ(entries.size(), 2u);
  std::map<std::string, Session> got(entries.begin(), entries.end());
  EXPECT_EQ(got.at("s1"), s1);
  EXPECT_EQ(got.at("s2"), s2);
}

TEST_P(KeyedStateConformance, MapStateIsIsolatedPerKeyAndNamespace) {
  auto& b = make_backend();
  auto [k1, k2] = keys_in_different_groups(b.max_parallelism());
  auto* m = get_map_state(b, MapStateDescriptor<std::string, int64_t>{"m"});
  use_key(b, k1);
  m->put("x", 1);
  m->set_namespace(ns("w"));
  m->put("x", 2);
  use_key(b, k2);
  EXPECT_FALSE(m->contains("x"));
  EXPECT_TRUE(m->is_empty());
  m->put("y", 3);

  use_key(b, k1);
  EXPECT_EQ(m->get("x"), 2);
  EXPECT_FALSE(m->contains("y"));
  m->set_namespace("");
  EXPECT_EQ(m->get("x"), 1);
  m->clear();
  EXPECT_TRUE(m->is_empty());
  m->set_namespace(ns("w"));
  EXPECT_EQ(m->get("x"), 2);
  use_key(b, k2);
  EXPECT_EQ(m->get("y"), 3);
}

// ============================================================================
// Reducing state

TEST_P(KeyedStateConformance, ReducingStateFoldsAddedValues) {
  auto& b = make_backend();
  auto* r = get_reducing_state(b, sum_desc("sum"));
  use_key(b, "alice");
  EXPECT_EQ(r->get(), std::nullopt);
  r->add(5);
  EXPECT_EQ(r->get(), 5);
  r->add(-2);
  r->add(10);
  EXPECT_EQ(r->get(), 13);
  r->clear();
  EXPECT_EQ(r->get(), std::nullopt);
  r->add(1);
  EXPECT_EQ(r->get(), 1) << "after clear the next add starts afresh";
}

TEST_P(KeyedStateConformance, ReducingStatePassesTheAccumulatedValueFirst) {
  auto& b = make_backend();
  auto* r = get_reducing_state(
      b, ReducingStateDescriptor<std::string>{
             "path", [](const std::string& acc, const std::string& v) { return acc + ">" + v; }});
  use_key(b, "alice");
  r->add("a");
  r->add("b");
  r->add("c");
  EXPECT_EQ(r->get(), "a>b>c");
}

TEST_P(KeyedStateConformance, ReducingStateIsIsolatedPerKeyAndNamespace) {
  auto& b = make_backend();
  auto [k1, k2] = keys_sharing_a_group(b.max_parallelism());
  auto* r = get_reducing_state(b, sum_desc("sum"));
  use_key(b, k1);
  r->add(1);
  r->set_namespace(ns("w"));
  r->add(10);
  use_key(b, k2);
  r->add(100);
  EXPECT_EQ(r->get(), 100);
  use_key(b, k1);
  EXPECT_EQ(r->get(), 10);
  r->set_namespace("");
  EXPECT_EQ(r->get(), 1);
}

TEST_P(KeyedStateConformance, ReducingMergeNamespacesReducesSourcesIntoTarget) {
  auto& b = make_backend();
  auto* r = get_reducing_state(b, sum_desc("sum"));
  use_key(b, "alice");
  r->set_namespace(ns("t"));
  r->add(1);
  r->set_namespace(ns("s1"));
  r->add(20);
  r->set_namespace(ns("s2"));
  r->add(300);
  use_key(b, "bob");
  r->set_namespace(ns("s1"));
  r->add(4000);

  use_key(b, "alice");
  r->merge_namespaces(ns("t"), {ns("s1"), ns("s2"), ns("missing")});
  r->set_namespace(ns("t"));
  EXPECT_EQ(r->get(), 321);
  r->set_namespace(ns("s1"));
  EXPECT_EQ(r->get(), std::nullopt);
  r->set_namespace(ns("s2"));
  EXPECT_EQ(r->get(), std::nullopt);

  use_key(b, "bob");
  r->set_namespace(ns("s1"));
  EXPECT_EQ(r->get(), 4000);

  // Into a missing target; and from nothing, which leaves the target absent.
  use_key(b, "alice");
  r->set_namespace(ns("s3"));
  r->add(7);
  r->merge_namespaces(ns("fresh"), {ns("s3")});
  r->set_namespace(ns("fresh"));
  EXPECT_EQ(r->get(), 7);
  r->merge_namespaces(ns("none"), {ns("nothing")});
  r->set_namespace(ns("none"));
  EXPECT_EQ(r->get(), std::nullopt);
}

// ============================================================================
// Aggregating state

TEST_P(KeyedStateConformance, AggregatingStateAccumulates) {
  auto& b = make_backend();
  auto* a = get_aggregating_state(b, avg_desc("avg"));
  use_key(b, "alice");
  EXPECT_EQ(a->get(), std::nullopt);
  a->add(1);
  EXPECT_EQ(a->get(), 1.0);
  a->add(2);
  a->add(6);
  EXPECT_EQ(a->get(), 3.0);
  a->clear();
  EXPECT_EQ(a->get(), std::nullopt);
  a->add(10);
  EXPECT_EQ(a->get(), 10.0) << "a fresh accumulator after clear";
}

TEST_P(KeyedStateConformance, AggregatingStateIsIsolatedPerKeyAndNamespace) {
  auto& b = make_backend();
  auto [k1, k2] = keys_in_different_groups(b.max_parallelism());
  auto* a = get_aggregating_state(b, avg_desc("avg"));
  use_key(b, k1);
  a->add(2);
  a->set_namespace(ns("w"));
  a->add(4);
  use_key(b, k2);
  EXPECT_EQ(a->get(), std::nullopt);
  a->add(8);
  use_key(b, k1);
  EXPECT_EQ(a->get(), 4.0);
  a->set_namespace("");
  EXPECT_EQ(a->get(), 2.0);
  use_key(b, k2);
  a->set_namespace(ns("w"));
  EXPECT_EQ(a->get(), 8.0);
}

TEST_P(KeyedStateConformance, AggregatingMergeNamespacesMergesAccumulators) {
  auto& b = make_backend();
  auto* a = get_aggregating_state(b, avg_desc("avg"));
  use_key(b, "alice");
  a->set_namespace(ns("t"));
  a->add(1);  // sum 1, count 1
  a->set_namespace(ns("s1"));
  a->add(2);
  a->add(3);  // sum 5, count 2
  a->set_namespace(ns("s2"));
  a->add(10);  // sum 10, count 1
  a->merge_namespaces(ns("t"), {ns("s1"), ns("s2")});
  a->set_namespace(ns("t"));
  EXPECT_EQ(a->get(), 16.0 / 4.0) << "merged accumulators, not an average of averages";
  a->set_namespace(ns("s1"));
  EXPECT_EQ(a->get(), std::nullopt);
  a->set_namespace(ns("s2"));
  EXPECT_EQ(a->get(), std::nullopt);

  // Into a missing target.
  a->set_namespace(ns("s3"));
  a->add(4);
  a->add(6);
  a->merge_namespaces(ns("fresh"), {ns("s3"), ns("missing")});
  a->set_namespace(ns("fresh"));
  EXPECT_EQ(a->get(), 5.0);
  a->merge_namespaces(ns("none"), {ns("nothing")});
  a->set_namespace(ns("none"));
  EXPECT_EQ(a->get(), std::nullopt);
}

TEST_P(KeyedStateConformance, AggregatingStateWithContainerAccumulator) {
  auto& b = make_backend();
  AggregatingStateDescriptor<std::string, std::vector<std::string>, std::string> d{
      "distinct", std::make_shared<const DistinctFn>(), {}};
  auto* a = get_aggregating_state(b, d);
  use_key(b, "alice");
  a->set_namespace(ns("w1"));
  a->add("b");
  a->add("a");
  a->add("b");
  a->set_namespace(ns("w2"));
  a->add("c");
  a->add("a");
  a->merge_namespaces(ns("w1"), {ns("w2")});
  a->set_namespace(ns("w1"));
  EXPECT_EQ(a->get(), "a,b,c");
}
}  // namespace
}  // namespace sluice::state::conformance
