// Random CEP patterns and keyed event streams for the differential tests.
#pragma once

#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tests/operators/cep_reference.h"

namespace sluice::cep::testing {

/// The random generators (shared with the operator-level differential).
class PatternGen {
 public:
  explicit PatternGen(uint64_t seed) : rng_(seed) {}

  RPattern pattern() {
    RPattern p;
    names_.clear();
    counter_ = 0;
    if (chance(50)) p.within = uniform(20, 80);
    const int n = static_cast<int>(uniform(1, 4));
    for (int i = 0; i < n; ++i) {
      const bool first = i == 0, last = i + 1 == n;
      const int roll = static_cast<int>(uniform(0, 99));
      if (!first && roll < 15) {
        RElem neg;
        neg.kind = (last || chance(50)) ? RElem::kNotFollowed : RElem::kNotNext;
        neg.name = name();
        neg.cond = cond(false);
        if (last && (p.within == 0 || chance(30))) neg.within_prev = uniform(15, 50);
        p.elems.push_back(neg);
      } else if (roll < 32) {
        p.elems.push_back(group(first));
      } else {
        p.elems.push_back(step(first, true));
      }
    }
    std::vector<std::string> steps;
    collect(p.elems, steps);
    switch (uniform(0, 4)) {
      case 0: p.skip = AfterMatchSkipStrategy::no_skip(); break;
      case 1: p.skip = AfterMatchSkipStrategy::skip_to_next(); break;
      case 2: p.skip = AfterMatchSkipStrategy::skip_past_last_event(); break;
      case 3: p.skip = AfterMatchSkipStrategy::skip_to_first(steps[uniform(0, steps.size() - 1)]); break;
      default: p.skip = AfterMatchSkipStrategy::skip_to_last(steps[uniform(0, steps.size() - 1)]); break;
    }
    return p;
  }

  /// One key's events: ids from `first_id`, timestamps non-decreasing with
  /// ties, kinds a-d plus a neutral 'e'.
  std::vector<std::pair<Ev, int64_t>> events(const std::string& key, int64_t first_id, int count) {
    std::vector<std::pair<Ev, int64_t>> out;
    int64_t ts = uniform(0, 5);
    for (int i = 0; i < count; ++i) {
      Ev e{first_id + i, std::string(1, "abcde"[uniform(0, 4)]), uniform(0, 4), key};
      out.emplace_back(e, ts);
      ts += uniform(0, 14);
    }
    return out;
  }

  int64_t uniform(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng_); }
  bool chance(int percent) { return uniform(0, 99) < percent; }
  std::mt19937_64& rng() { return rng_; }

 private:
  std::string name() { return "s" + std::to_string(counter_++); }

  RCond cond(bool allow_iter) {
    RCond c;
    if (!chance(5)) {
      c.kinds = std::string(1, "abcd"[uniform(0, 3)]);
      if (chance(30)) c.kinds += "abcd"[uniform(0, 3)];
    }
    if (allow_iter && !names_.empty() && chance(20)) {
      c.iter = chance(50) ? 1 : 2;
      c.ref = names_[uniform(0, names_.size() - 1)];
    }
    return c;
  }

  RElem step(bool first, bool quantifiers) {
    RElem s;
    s.name = name();
    s.contig = static_cast<Contiguity>(uniform(0, 2));
    s.cond = cond(true);
    names_.push_back(s.name);
    if (quantifiers && chance(50)) {
      switch (uniform(0, 3)) {
        case 0: s.lo = s.hi = static_cast<int>(uniform(2, 3)); break;
        case 1: s.lo = static_cast<int>(uniform(1, 2)); s.hi = s.lo + static_cast<int>(uniform(1, 2)); break;
        case 2: s.lo = 1; s.hi = kUnbounded; break;
        default: s.lo = 2; s.hi = kUnbounded; break;
      }
    }
    if (quantifiers && chance(25)) s.optional = true;
    if ((s.optional || s.hi > s.lo) && chance(30)) s.greedy = true;
    if (s.hi > 1) s.inner = static_cast<Contiguity>(uniform(0, 2));
    if (s.hi > 1 && chance(20)) s.until = RCond{std::string(1, "abcd"[uniform(0, 3)]), 0, ""};
    if (!first && chance(15)) s.within_prev = uniform(10, 40);
    return s;
  }

  RElem group(bool first) {
    RElem g;
    g.kind = RElem::kGroup;
    g.contig = static_cast<Contiguity>(uniform(0, 2));
    const int n = static_cast<int>(uniform(1, 3));
    for (int i = 0; i < n; ++i) {
      if (i == 1 && n == 3 && chance(40)) {
        RElem neg;
        neg.kind = chance(50) ? RElem::kNotFollowed : RElem::kNotNext;
        neg.name = name();
        neg.cond = cond(false);
        g.body.push_back(neg);
        continue;
      }
      RElem s = step(true, i > 0);
      if (i > 0) s.contig = static_cast<Contiguity>(uniform(0, 2));
      s.within_prev = 0;
      g.body.push_back(s);
    }
    switch (uniform(0, 3)) {
      case 0: break;
      case 1: g.lo = g.hi = 2; break;
      case 2: g.lo = 1; g.hi = kUnbounded; break;
      default: g.optional = !first; break;
    }
    if (g.hi > 1) g.inner = static_cast<Contiguity>(uniform(0, 2));
    return g;
  }

  static void collect(const std::vector<RElem>& es, std::vector<std::string>& out) {
    for (const RElem& e : es) {
      if (e.kind == RElem::kGroup) collect(e.body, out);
      else if (e.kind == RElem::kStep) out.push_back(e.name);
    }
  }

  std::mt19937_64 rng_;
  std::vector<std::string> names_;
  int counter_ = 0;
};

}  // namespace sluice::cep::testing
