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

#include "tests/operators/cep_pattern_gen.h"
#include "tests/operators/cep_reference.h"

namespace sluice::cep::testing {

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
