// The keyed-state backend conformance suite (see backend_conformance.h):
// state TTL, on the fixture's ManualClock. Nothing in here may depend on
// which backend runs.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "state/state_factory.h"
#include "tests/state/backend_conformance.h"

namespace sluice::state::conformance {
namespace {

StateTtl ttl_ms(int64_t ms, bool refresh_on_read = false) {
  StateTtl t;
  t.ttl = Duration(ms);
  t.refresh_on_read = refresh_on_read;
  return t;
}

// ============================================================================
// TTL (processing time from the ManualClock)

TEST_P(KeyedStateConformance, ValueExpiresAfterTtl) {
  auto& b = make_backend();
  auto* s = get_value_state(b, ValueStateDescriptor<int64_t>{"v", ttl_ms(1000)});
  use_key(b, "alice");
  s->update(1);
  clock_.advance(999);
  EXPECT_EQ(s->value(), 1);
  clock_.advance(2);  // 1001 ms after the write
  EXPECT_EQ(s->value(), std::nullopt);
  EXPECT_EQ(s->value_or(-1), -1);
}

TEST_P(KeyedStateConformance, ReadsDoNotRefreshTtlByDefault) {
  auto& b = make_backend();
  auto* s = get_value_state(b, ValueStateDescriptor<int64_t>{"v", ttl_ms(1000)});
  use_key(b, "alice");
  s->update(1);
  clock_.advance(600);
  EXPECT_EQ(s->value(), 1);
  clock_.advance(401);  // 1001 after the write, 401 after the read
  EXPECT_EQ(s->value(), std::nullopt);
}

TEST_P(KeyedStateConformance, WritesRefreshTtl) {
  auto& b = make_backend();
  auto* s = get_value_state(b, ValueStateDescriptor<int64_t>{"v", ttl_ms(1000)});
  use_key(b, "alice");
  s->update(1);
  clock_.advance(600);
  s->update(2);
  clock_.advance(900);  // 1500 after the first write, 900 after the second
  EXPECT_EQ(s->value(), 2);
  clock_.advance(101);
  EXPECT_EQ(s->value(), std::nullopt);
}

TEST_P(KeyedStateConformance, RefreshOnReadExtendsTtl) {
  auto& b = make_backend();
  auto* s = get_value_state(b, ValueStateDescriptor<int64_t>{"v", ttl_ms(1000, true)});
  use_key(b, "alice");
  s->update(1);
  clock_.advance(600);
  EXPECT_EQ(s->value(), 1);  // refreshes: now expires 1000 after this read
  clock_.advance(999);       // 1599 after the write
  EXPECT_EQ(s->value(), 1);  // refreshes again
  clock_.advance(1001);
  EXPECT_EQ(s->value(), std::nullopt);
}

TEST_P(KeyedStateConformance, TtlIsTrackedPerKeyAndNamespace) {
  auto& b = make_backend();
  auto* s = get_value_state(b, ValueStateDescriptor<int64_t>{"v", ttl_ms(1000)});
  use_key(b, "alice");
  s->update(1);
  clock_.advance(500);
  use_key(b, "bob");
  s->update(2);
  s->set_namespace(ns("w"));
  s->update(3);
  clock_.advance(700);  // alice: 1200 old; bob: 700 old
  s->set_namespace("");
  use_key(b, "alice");
  EXPECT_EQ(s->value(), std::nullopt);
  use_key(b, "bob");
  EXPECT_EQ(s->value(), 2);
  s->set_namespace(ns("w"));
  EXPECT_EQ(s->value(), 3);
}

TEST_P(KeyedStateConformance, StateWithoutTtlNeverExpires) {
  auto& b = make_backend();
  auto* s = get_value_state(b, ValueStateDescriptor<int64_t>{"v"});
  auto* t = get_value_state(b, ValueStateDescriptor<int64_t>{"t", ttl_ms(10)});
  use_key(b, "alice");
  s->update(1);
  t->update(1);
  clock_.advance(int64_t{400} * 24 * 3600 * 1000);
  EXPECT_EQ(s->value(), 1);
  EXPECT_EQ(t->value(), std::nullopt);
}

TEST_P(KeyedStateConformance, ExpiredListStartsAfreshOnAdd) {
  auto& b = make_backend();
  auto* l = get_list_state(b, ListStateDescriptor<int64_t>{"l", ttl_ms(1000)});
  use_key(b, "alice");
  l->add(1);
  l->add(2);
  clock_.advance(500);
  EXPECT_EQ(l->get(), (std::vector<int64_t>{1, 2}));
  clock_.advance(1000);
  EXPECT_TRUE(l->get().empty());
  l->add(3);
  EXPECT_EQ(l->get(), (std::vector<int64_t>{3}));
}

TEST_P(KeyedStateConformance, ExpiredMapEntriesAreGone) {
  auto& b = make_backend();
  auto* m = get_map_state(b, MapStateDescriptor<std::string, int64_t>{"m", ttl_ms(1000)});
  use_key(b, "alice");
  m->put("a", 1);
  clock_.advance(1001);
  EXPECT_FALSE(m->contains("a"));
  EXPECT_EQ(m->get("a"), std::nullopt);
  EXPECT_TRUE(m->is_empty());
  EXPECT_TRUE(m->entries().empty());
  m->put("b", 2);
  EXPECT_EQ(m->entries(), (std::vector<std::pair<std::string, int64_t>>{{"b", 2}}));
}

TEST_P(KeyedStateConformance, ExpiredReducingStateStartsAfresh) {
  auto& b = make_backend();
  auto* r = get_reducing_state(b, sum_desc("sum", ttl_ms(1000)));
  use_key(b, "alice");
  r->add(5);
  r->add(5);
  clock_.advance(2000);
  EXPECT_EQ(r->get(), std::nullopt);
  r->add(3);
  EXPECT_EQ(r->get(), 3) << "an expired value must not be folded into new input";
}

TEST_P(KeyedStateConformance, ExpiredAggregatingStateStartsWithAFreshAccumulator) {
  auto& b = make_backend();
  auto* a = get_aggregating_state(b, avg_desc("avg", ttl_ms(1000)));
  use_key(b, "alice");
  a->add(100);
  clock_.advance(1500);
  EXPECT_EQ(a->get(), std::nullopt);
  a->add(2);
  EXPECT_EQ(a->get(), 2.0);
}

TEST_P(KeyedStateConformance, ExpiredSourcesAreNotMerged) {
  auto& b = make_backend();
  auto* r = get_reducing_state(b, sum_desc("sum", ttl_ms(1000)));
  use_key(b, "alice");
  r->set_namespace(ns("old"));
  r->add(1000);
  clock_.advance(1500);
  r->set_namespace(ns("new"));
  r->add(1);
  r->merge_namespaces(ns("t"), {ns("old"), ns("new")});
  r->set_namespace(ns("t"));
  EXPECT_EQ(r->get(), 1);
}


}  // namespace
}  // namespace sluice::state::conformance
