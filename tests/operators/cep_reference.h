// A brute-force CEP matcher, written from operators/cep/README.md's
// semantics and independent of the NFA: it interprets a pattern
// description (RPattern) directly, enumerates every labelled subsequence of
// a key's events that the pattern's grammar allows, checks each gap against
// the rules (condition, contiguity, negations, until, greedy, within), then
// replays the timeline (events and deadlines in order) to apply the skip
// strategy with its hold-back and to find which partial matches time out.
//
// Positions name where an event sits in the pattern: the path of
// (element index, repetition) pairs from the top level down to a step.
// Routes are the ways from one position to the next event (or to the end).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "operators/cep/pattern.h"
#include "tests/operators/cep_test_support.h"

namespace sluice::cep::testing {

/// A condition of the random patterns: the event's kind is one of `kinds`
/// (all if empty) and, if `iter`, an iterative rule against the events
/// already matched as `ref`: 1 = v greater than the last one's, 2 = v at
/// most the first one's (true when `ref` has none).
struct RCond {
  std::string kinds;
  int iter = 0;
  std::string ref;
};

/// A pattern element as the test describes it.
struct RElem {
  enum Kind { kStep, kGroup, kNotNext, kNotFollowed } kind = kStep;
  std::string name;
  Contiguity contig = Contiguity::kRelaxed;
  RCond cond;
  int lo = 1, hi = 1;  // hi = kUnbounded for loops
  bool optional = false, greedy = false;
  Contiguity inner = Contiguity::kRelaxed;
  std::optional<RCond> until;
  int64_t within_prev = 0;
  std::vector<RElem> body;
};

struct RPattern {
  std::vector<RElem> elems;
  int64_t within = 0;
  AfterMatchSkipStrategy skip;
};

using EvalCtx = std::function<std::vector<const Ev*>(const std::string&)>;
bool eval_cond(const RCond& c, const Ev& e, const EvalCtx& ctx);

/// The real Pattern<Ev> for `p` (conditions as where/or_where chains).
Pattern<Ev> build_pattern(const RPattern& p);
std::string describe(const RPattern& p);

/// What the reference expects for one key: rendered matches and timeouts
/// ("a:1 b:3 @30"), in emission order.
struct RefResult {
  std::vector<std::string> matches;
  std::vector<std::string> timeouts;
};

/// `events`: one key's events with timestamps, in processing order (by
/// timestamp, ties in arrival order).
RefResult reference_match(const RPattern& p, const std::vector<std::pair<Ev, int64_t>>& events);

}  // namespace sluice::cep::testing
