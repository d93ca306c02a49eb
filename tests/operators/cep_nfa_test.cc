// CEP feature by feature: contiguity, quantifiers, negation, within,
// timeouts, skip strategies, iterative conditions, groups, the per-key caps
// and the release of shared state. Each case runs three times: the NFA on
// the in-memory store, and the CEP operator in the operator harness on the
// heap and on the RocksDB backend. The cases with a Flink counterpart
// reproduce the examples of Flink's CEP documentation.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/operators/cep_drivers.h"

namespace sluice::cep::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using Skip = AfterMatchSkipStrategy;
using P = Pattern<Ev>;

class CepFeature : public ::testing::TestWithParam<Where> {
 protected:
  std::vector<std::string> matches(const P& p, const std::vector<std::string>& kinds) {
    auto d = driver(p);
    d->run(seq(kinds)).end();
    return d->seen().matches;
  }
  std::unique_ptr<Driver> driver(const P& p, NfaLimits limits = {}) { return make_driver(GetParam(), p, limits); }
};

// --- contiguity --------------------------------------------------------------

TEST_P(CepFeature, FollowedByTakesTheFirstMatchingEvent) {
  auto p = P::begin("a").where(is("a")).followed_by("b").where(is("b"));
  EXPECT_THAT(matches(p, {"a", "c", "b", "b"}), ElementsAre("a:1 b:3"));
}

TEST_P(CepFeature, NextNeedsTheVeryNextEvent) {
  auto p = P::begin("a").where(is("a")).next("b").where(is("b"));
  EXPECT_THAT(matches(p, {"a", "c", "b"}), IsEmpty());
  EXPECT_THAT(matches(p, {"a", "b", "b"}), ElementsAre("a:1 b:2"));
}

TEST_P(CepFeature, FollowedByAnyTakesEveryLaterMatchingEvent) {
  auto p = P::begin("a").where(is("a")).followed_by_any("b").where(is("b"));
  EXPECT_THAT(matches(p, {"a", "c", "b", "b"}), ElementsAre("a:1 b:3", "a:1 b:4"));
}

// Flink's documentation: "a b+ c" over a b1 d1 b2 d2 b3 c with the three
// inner contiguities.
TEST_P(CepFeature, LoopingStepContiguityMatchesFlinkDocumentation) {
  auto base = [](auto inner) {
    return inner(P::begin("a").where(is("a")).followed_by_any("b").where(is("b")).one_or_more())
        .followed_by("c")
        .where(is("c"));
  };
  const std::vector<std::string> in = {"a", "b", "d", "b", "d", "b", "c"};
  EXPECT_THAT(matches(base([](P p) { return p.consecutive(); }), in),
              UnorderedElementsAre("a:1 b:2 c:7", "a:1 b:4 c:7", "a:1 b:6 c:7"));
  EXPECT_THAT(matches(base([](P p) { return p; }), in),
              UnorderedElementsAre("a:1 b:2 c:7", "a:1 b:2,4 c:7", "a:1 b:2,4,6 c:7", "a:1 b:4 c:7",
                                   "a:1 b:4,6 c:7", "a:1 b:6 c:7"));
  EXPECT_THAT(matches(base([](P p) { return p.allow_combinations(); }), in),
              UnorderedElementsAre("a:1 b:2 c:7", "a:1 b:2,4 c:7", "a:1 b:2,6 c:7", "a:1 b:2,4,6 c:7",
                                   "a:1 b:4 c:7", "a:1 b:4,6 c:7", "a:1 b:6 c:7"));
}

TEST_P(CepFeature, MatchesOfOneEventComeInOrderOfStartThenEvents) {
  auto p = P::begin("a").where(is("a")).followed_by_any("b").where(is("b")).one_or_more()
               .followed_by("c").where(is("c"));
  EXPECT_THAT(matches(p, {"a", "b", "b", "c"}),
              ElementsAre("a:1 b:2,3 c:4", "a:1 b:2 c:4", "a:1 b:3 c:4"));
}

// --- quantifiers ---------------------------------------------------------------

TEST_P(CepFeature, TimesCountsExactly) {
  auto p = P::begin("a").where(is("a")).times(3);
  EXPECT_THAT(matches(p, {"a", "x", "a", "a", "a"}), ElementsAre("a:1,3,4", "a:3,4,5"));
}

TEST_P(CepFeature, TimesRangeEmitsEveryAllowedLength) {
  auto p = P::begin("a").where(is("a")).times(2, 3).consecutive();
  EXPECT_THAT(matches(p, {"a", "a", "a"}), ElementsAre("a:1,2", "a:1,2,3", "a:2,3"));
}

TEST_P(CepFeature, OptionalStepMayBeSkipped) {
  auto p = P::begin("a").where(is("a")).followed_by("b").where(is("b")).optional()
               .followed_by("c").where(is("c"));
  EXPECT_THAT(matches(p, {"a", "b", "c"}), ElementsAre("a:1 b:2 c:3", "a:1 c:3"));
}

TEST_P(CepFeature, TimesOrMoreNeedsTheMinimumFirst) {
  auto p = P::begin("a").where(is("a")).times_or_more(2).consecutive().next("b").where(is("b"));
  EXPECT_THAT(matches(p, {"a", "b", "a", "a", "a", "b"}), ElementsAre("a:3,4,5 b:6", "a:4,5 b:6"));
}

TEST_P(CepFeature, GreedyLoopTakesWhatTheNextStepCouldTake) {
  // "x" events are both a and b.
  auto cond_a = [](const Ev& e) { return e.kind == "a" || e.kind == "x"; };
  auto cond_b = [](const Ev& e) { return e.kind == "b" || e.kind == "x"; };
  auto lazy = P::begin("s").where(is("s")).followed_by("a").where(cond_a).one_or_more()
                  .followed_by("b").where(cond_b);
  auto greedy = P::begin("s").where(is("s")).followed_by("a").where(cond_a).one_or_more().greedy()
                    .followed_by("b").where(cond_b);
  EXPECT_THAT(matches(lazy, {"s", "a", "x", "b"}),
              UnorderedElementsAre("s:1 a:2 b:3", "s:1 a:2,3 b:4"));
  EXPECT_THAT(matches(greedy, {"s", "a", "x", "b"}), ElementsAre("s:1 a:2,3 b:4"));
}

TEST_P(CepFeature, UntilStopsALoop) {
  auto p = P::begin("s").where(is("s")).followed_by("a").where(is("a")).one_or_more()
               .until(is("u")).followed_by("b").where(is("b"));
  // After u the loop takes nothing more; b still completes what it had.
  EXPECT_THAT(matches(p, {"s", "a", "u", "a", "b"}), ElementsAre("s:1 a:2 b:5"));
  auto no_until = P::begin("s").where(is("s")).followed_by("a").where(is("a")).one_or_more()
                      .followed_by("b").where(is("b"));
  EXPECT_THAT(matches(no_until, {"s", "a", "u", "a", "b"}), ElementsAre("s:1 a:2,4 b:5", "s:1 a:2 b:5"));
}

// --- negation --------------------------------------------------------------------

TEST_P(CepFeature, NotNextRejectsTheImmediateEvent) {
  auto p = P::begin("a").where(is("a")).not_next("x").where(is("x")).followed_by("b").where(is("b"));
  EXPECT_THAT(matches(p, {"a", "x", "b"}), IsEmpty());
  EXPECT_THAT(matches(p, {"a", "y", "x", "b"}), ElementsAre("a:1 b:4"));
}

TEST_P(CepFeature, NotFollowedByRejectsAnyEventInBetween) {
  auto p = P::begin("a").where(is("a")).not_followed_by("x").where(is("x")).followed_by("b").where(is("b"));
  EXPECT_THAT(matches(p, {"a", "y", "x", "b"}), IsEmpty());
  EXPECT_THAT(matches(p, {"a", "y", "b", "x"}), ElementsAre("a:1 b:3"));
}

TEST_P(CepFeature, TrailingNotFollowedByFiresWhenTimeRunsOut) {
  auto p = P::begin("a").where(is("a")).not_followed_by("x").where(is("x")).within(Duration(100));
  auto quiet = driver(p);
  quiet->run({{ev(1, "a"), 10}, {ev(2, "y"), 50}}).time(100);
  EXPECT_THAT(quiet->seen().matches, IsEmpty()) << "emitted before its time ran out";
  quiet->time(110);
  EXPECT_THAT(quiet->seen().matches, ElementsAre("a:1"));
  auto broken = driver(p);
  broken->run({{ev(1, "a"), 10}, {ev(2, "x"), 109}}).end();
  EXPECT_THAT(broken->seen().matches, IsEmpty());
  auto late_x = driver(p);  // x at 110 is outside the window: too late to prevent the match
  late_x->run({{ev(1, "a"), 10}, {ev(2, "x"), 110}}).end();
  EXPECT_THAT(late_x->seen().matches, ElementsAre("a:1"));
}

// --- within and timeouts -------------------------------------------------------------

TEST_P(CepFeature, WithinBoundsTheWholeMatchAndTimesOutWhatWasStarted) {
  auto p = P::begin("a").where(is("a")).followed_by("b").where(is("b")).within(Duration(30));
  auto ok = driver(p);
  ok->run({{ev(1, "a"), 10}, {ev(2, "b"), 39}}).end();
  EXPECT_THAT(ok->seen().matches, ElementsAre("a:1 b:2"));
  EXPECT_THAT(ok->seen().timeouts, IsEmpty());
  auto late = driver(p);
  late->run({{ev(1, "a"), 10}, {ev(2, "b"), 40}}).end();
  EXPECT_THAT(late->seen().matches, IsEmpty());
  EXPECT_THAT(late->seen().timeouts, ElementsAre("a:1 @39"));
}

TEST_P(CepFeature, PreviousAndCurrentWithinLimitsEachGap) {
  auto p = P::begin("a").where(is("a")).followed_by("b").where(is("b"))
               .within(Duration(15), WithinType::kPreviousAndCurrent)
               .followed_by("c").where(is("c"));
  // a@10 b@20 c@100: b is 10 after a (< 15); c has no limit.
  EXPECT_THAT(matches(p, {"a", "b", "x", "x", "x", "x", "x", "x", "x", "c"}), ElementsAre("a:1 b:2 c:10"));
  EXPECT_THAT(matches(p, {"a", "x", "b", "c"}), IsEmpty());  // b is 20 after a
}

TEST(CepNfa, DeadlineIsReportedToTheHostAndClearedWhenNothingIsLeft) {
  auto p = P::begin("a").where(is("a")).followed_by("b").where(is("b")).within(Duration(30));
  NfaDriver d(p);
  d.run({{ev(1, "a"), 10}});
  EXPECT_EQ(d.host().deadline, 40);
  d.run({{ev(2, "b"), 20}});
  EXPECT_EQ(d.host().deadline, kNoTime);
  EXPECT_EQ(d.store().stored_items(), 0u) << "a finished key keeps nothing";
}

// --- skip strategies (Flink's documentation: b+ c over b1 b2 b3 c) ------------------

// consecutive: b1 b2 b3 does not outlive c (with a skip strategy, a partial
// match that is still alive holds back the matches that started after it).
P b_plus_c(Skip s) { return P::begin("b", s).where(is("b")).one_or_more().consecutive().next("c").where(is("c")); }

TEST_P(CepFeature, SkipStrategiesMatchFlinkDocumentation) {
  EXPECT_THAT(matches(b_plus_c(Skip::no_skip()), {"b", "b", "b", "c"}), ElementsAre("b:1,2,3 c:4", "b:2,3 c:4", "b:3 c:4"));
  EXPECT_THAT(matches(b_plus_c(Skip::skip_to_next()), {"b", "b", "b", "c"}), ElementsAre("b:1,2,3 c:4", "b:2,3 c:4", "b:3 c:4"));
  EXPECT_THAT(matches(b_plus_c(Skip::skip_past_last_event()), {"b", "b", "b", "c"}), ElementsAre("b:1,2,3 c:4"));
  EXPECT_THAT(matches(b_plus_c(Skip::skip_to_first("b")), {"b", "b", "b", "c"}), ElementsAre("b:1,2,3 c:4", "b:2,3 c:4", "b:3 c:4"));
  EXPECT_THAT(matches(b_plus_c(Skip::skip_to_last("b")), {"b", "b", "b", "c"}), ElementsAre("b:1,2,3 c:4", "b:3 c:4"));
}

TEST_P(CepFeature, SkipStrategyHoldsLaterMatchesUntilEarlierStartsResolve) {
  // b's value names the a it completes: a2's match completes first.
  auto pattern = [](Skip s) {
    return P::begin("a", s).where(is("a")).followed_by("b").where(
        [](const Ev& e, const MatchContext<Ev>& ctx) { return e.kind == "b" && e.val == ctx.events("a").front().id; });
  };
  const std::vector<std::pair<Ev, int64_t>> first = {{ev(1, "a"), 10}, {ev(2, "a"), 20}, {ev(3, "b", 2), 30}};
  auto no_skip = driver(pattern(Skip::no_skip()));
  no_skip->run(first);
  EXPECT_THAT(no_skip->seen().matches, ElementsAre("a:2 b:3"));
  no_skip->run({{ev(4, "b", 1), 40}});
  EXPECT_THAT(no_skip->seen().matches, ElementsAre("a:2 b:3", "a:1 b:4"));

  auto to_next = driver(pattern(Skip::skip_to_next()));
  to_next->run(first);
  EXPECT_THAT(to_next->seen().matches, IsEmpty()) << "held while a1 may still match";
  to_next->run({{ev(4, "b", 1), 40}});
  EXPECT_THAT(to_next->seen().matches, ElementsAre("a:1 b:4", "a:2 b:3"));

  auto past_last = driver(pattern(Skip::skip_past_last_event()));
  past_last->run(first).run({{ev(4, "b", 1), 40}});
  EXPECT_THAT(past_last->seen().matches, ElementsAre("a:1 b:4"));
}

// --- iterative conditions -----------------------------------------------------------

TEST_P(CepFeature, IterativeConditionSeesEarlierEventsByName) {
  auto p = P::begin("small").where(is("p")).one_or_more().consecutive()
               .next("big").where([](const Ev& e, const MatchContext<Ev>& ctx) {
                 int64_t sum = 0;
                 for (const Ev& s : ctx.events("small")) sum += s.val;
                 return e.kind == "q" && e.val > sum;
               });
  auto d = driver(p);
  d->run({{ev(1, "p", 5), 10}, {ev(2, "p", 7), 20}, {ev(3, "q", 10), 30}});
  // 10 > 7 (b:2 alone) but not > 12 (both).
  EXPECT_THAT(d->seen().matches, ElementsAre("small:2 big:3"));
}

// --- groups ------------------------------------------------------------------------

TEST_P(CepFeature, GroupRepeatsAsAStep) {
  auto pair = P::begin("x").where(is("x")).next("y").where(is("y"));
  auto p = P::begin("s").where(is("s")).followed_by(pair).times(2).followed_by("e").where(is("e"));
  EXPECT_THAT(matches(p, {"s", "x", "y", "q", "x", "y", "e"}), ElementsAre("s:1 x:2,5 y:3,6 e:7"));
  EXPECT_THAT(matches(p, {"s", "x", "q", "y", "x", "y", "e"}), IsEmpty());
}

// --- limits and state -----------------------------------------------------------------

TEST(CepNfa, CapDropsTheOldestPartialMatch) {
  auto p = P::begin("a").where(is("a")).followed_by("b").where(is("b"));
  NfaLimits limits;
  limits.max_partial_matches = 3;
  NfaDriver d(p, limits);
  d.run({{ev(1, "a"), 10}, {ev(2, "a"), 20}, {ev(3, "a"), 30}, {ev(4, "a"), 40}, {ev(5, "a"), 50}});
  EXPECT_THAT(d.host().dropped, ElementsAre("a:1", "a:2"));
  d.run({{ev(6, "b"), 60}});
  EXPECT_THAT(d.host().matches, ElementsAre("a:3 b:6", "a:4 b:6", "a:5 b:6"));
}

TEST_P(CepFeature, CapWithFailPolicyFails) {
  auto p = P::begin("a").where(is("a")).followed_by("b").where(is("b"));
  NfaLimits limits;
  limits.max_partial_matches = 1;
  limits.policy = NfaLimits::Policy::kFail;
  auto d = driver(p, limits);
  d->run({{ev(1, "a"), 10}});
  EXPECT_THROW(d->run({{ev(2, "a"), 20}}), std::runtime_error);
}

TEST(CepNfa, SharedPrefixesStoreEachEventOnce) {
  auto p = P::begin("a").where(is("a")).followed_by_any("b").where(is("b")).followed_by_any("c")
               .where(is("c"));
  NfaDriver d(p);
  d.run(seq({"a", "b", "b", "b"}));
  // Partial matches: [a], [a b2], [a b3], [a b4]: four events, each once.
  auto meta = d.store().meta();
  ASSERT_TRUE(meta.has_value());
  EXPECT_EQ(meta->partial_matches, 4);
  EXPECT_EQ(meta->events, 4);
  d.run({{ev(5, "c"), 50}});
  EXPECT_THAT(d.host().matches, ElementsAre("a:1 b:2 c:5", "a:1 b:3 c:5", "a:1 b:4 c:5"));
}

INSTANTIATE_TEST_SUITE_P(Everywhere, CepFeature,
                         ::testing::Values(Where::kMemory, Where::kHeap, Where::kRocksDB),
                         [](const auto& info) { return where_name(info.param); });

}  // namespace
}  // namespace sluice::cep::testing
