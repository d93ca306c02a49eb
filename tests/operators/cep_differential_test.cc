// Differential test of the NFA against the brute-force reference of
// cep_reference.h: random patterns drawn from the whole API (contiguities,
// quantifiers, optional, greedy, until, groups, negations in the middle and
// at the end, iterative conditions, within of both kinds, every skip
// strategy) over random events of several keys; matches and timeouts must
// be identical, in the same order, with the same timestamps. A failure
// prints the seed, the pattern and the events: replay it with
// CEP_DIFF_SEED=<seed>.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <random>

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

namespace {

/// Records like the reference renders: "s0:1 s1:3 @30".
class TimedHost final : public NfaHost<Ev> {
 public:
  void match(Match<Ev>&& m, int64_t ts) override { out.matches.push_back(render(m) + " @" + std::to_string(ts)); }
  void timed_out(Match<Ev>&& m, int64_t ts) override { out.timeouts.push_back(render(m) + " @" + std::to_string(ts)); }
  void discarded(Match<Ev>&&, const std::string&) override { ++dropped; }
  void reschedule(int64_t, int64_t) override {}
  RefResult out;
  int dropped = 0;
};

std::string show(const std::vector<std::pair<Ev, int64_t>>& events) {
  std::string s;
  for (const auto& [e, ts] : events) s += std::to_string(e.id) + ":" + e.kind + "(v" + std::to_string(e.val) + ")@" + std::to_string(ts) + " ";
  return s;
}

// Runs one seed; returns false (after reporting) on a difference, and
// counts patterns the compiler refused in `refused`.
struct Stats {
  int matches = 0, timeouts = 0, keys = 0;
};
Stats stats;

bool run_seed(uint64_t seed, int& refused, int& nonempty) {
  PatternGen gen(seed);
  RPattern rp = gen.pattern();
  std::shared_ptr<const CompiledPattern<Ev>> compiled;
  try {
    compiled = CompiledPattern<Ev>::compile(build_pattern(rp));
  } catch (const std::invalid_argument&) {
    ++refused;
    return true;
  }
  MemoryNfaStore<Ev> store;
  TimedHost host;
  NfaLimits limits;
  limits.max_partial_matches = 1'000'000;
  limits.max_events = 1'000'000;
  Nfa<Ev> nfa(compiled, store, host, limits);
  const int keys = static_cast<int>(gen.uniform(1, 2));
  for (int k = 0; k < keys; ++k) {
    const std::string key = "k" + std::to_string(k);
    auto events = gen.events(key, 1, static_cast<int>(gen.uniform(4, 12)));
    RefResult want = reference_match(rp, events);
    store.select(key);
    host.out = {};
    for (const auto& [e, ts] : events) {
      if (!nfa.process(e, ts).is_ok()) return false;
    }
    if (!nfa.advance_time(kNoTime - 1).is_ok()) return false;
    if (host.out.matches != want.matches || host.out.timeouts != want.timeouts) {
      ADD_FAILURE() << "seed " << seed << "\npattern: " << describe(rp) << "\nkey " << key
                    << " events: " << show(events) << "\n"
                    << compiled->program->describe() << "\nmatches  nfa: " << ::testing::PrintToString(host.out.matches)
                    << "\n         ref: " << ::testing::PrintToString(want.matches)
                    << "\ntimeouts nfa: " << ::testing::PrintToString(host.out.timeouts)
                    << "\n         ref: " << ::testing::PrintToString(want.timeouts);
      return false;
    }
    if (rp.within > 0 && store.stored_items() != 0) {  // every partial match had a deadline
      ADD_FAILURE() << "seed " << seed << ": key " << key << " keeps " << store.stored_items()
                    << " items after every deadline passed\npattern: " << describe(rp);
      return false;
    }
    if (!want.matches.empty()) ++nonempty;
    stats.matches += static_cast<int>(want.matches.size());
    stats.timeouts += static_cast<int>(want.timeouts.size());
    stats.keys++;
  }
  return true;
}

TEST(CepDifferential, NfaAgreesWithBruteForceReference) {
  int refused = 0, nonempty = 0;
  if (const char* s = std::getenv("CEP_DIFF_SEED")) {
    EXPECT_TRUE(run_seed(std::strtoull(s, nullptr, 10), refused, nonempty));
    return;
  }
  const int seeds = std::getenv("CEP_DIFF_SEEDS") ? std::atoi(std::getenv("CEP_DIFF_SEEDS")) : 3000;
  int failures = 0;
  for (int s = 1; s <= seeds && failures < 3; ++s) {
    if (!run_seed(static_cast<uint64_t>(s), refused, nonempty)) ++failures;
  }
  std::printf("%d seeds: %d refused by the compiler, %d keys, %d with matches; %d matches, %d timeouts\n",
              seeds, refused, stats.keys, nonempty, stats.matches, stats.timeouts);
  // The generator mostly draws patterns the compiler accepts, and many of
  // them match something (otherwise the comparison says little).
  EXPECT_LT(refused, seeds / 4) << "refused " << refused << " of " << seeds;
  EXPECT_GT(nonempty, seeds / 5) << "only " << nonempty << " keys had matches";
}

}  // namespace
}  // namespace sluice::cep::testing
