// IndexTable (operators/cep/write_back_table.h), the cached form of the CEP
// operator's ordered indexes, against a std::map: random puts, removes,
// scans, write-backs and reloads, partitioned (the group index) or not.
#include <gtest/gtest.h>

#include <cstdint>
#include <iterator>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "operators/cep/write_back_table.h"

namespace sluice::cep {
namespace {

using Items = std::vector<std::pair<IndexKey, int64_t>>;

Items reference_scan(const std::map<IndexKey, int64_t>& m, const IndexKey& lo, const IndexKey& hi, size_t limit) {
  Items out;
  for (auto it = m.lower_bound(lo); it != m.end() && !(hi < it->first) && out.size() < limit; ++it) {
    out.emplace_back(it->first, it->second);
  }
  return out;
}

void run(bool partitioned, uint32_t seed) {
  SCOPED_TRACE("seed " + std::to_string(seed) + (partitioned ? " partitioned" : ""));
  std::mt19937_64 rng(seed);
  auto pick = [&](int64_t n) { return static_cast<int64_t>(rng() % static_cast<uint64_t>(n)); };
  std::map<IndexKey, int64_t> truth, backend;
  IndexTable t(partitioned);
  int64_t next = 0;  // mostly increasing keys, as the NFA files them
  for (int step = 0; step < 6'000; ++step) {
    const int64_t op = pick(100);
    if (op < 40) {
      // A new key: at the end of its first field, or anywhere.
      IndexKey k{pick(4), op < 30 ? ++next : pick(next + 1), pick(2)};
      const int64_t v = pick(1000);
      t.put(k, v);
      truth[k] = v;
    } else if (op < 75) {
      // Remove: the first or last item of a partition, or any key.
      if (truth.empty()) continue;
      IndexKey k;
      if (op < 55) {
        const int64_t a = pick(4);
        auto it = truth.lower_bound({a, INT64_MIN, INT64_MIN});
        if (it == truth.end() || it->first.a != a) continue;
        k = it->first;
      } else if (op < 65) {
        k = std::prev(truth.end())->first;
      } else {
        k = {pick(4), pick(next + 1), pick(2)};
      }
      t.remove(k);
      truth.erase(k);
    } else if (op < 95) {
      IndexKey lo{pick(5) - 1, pick(next + 2) - 1, pick(3) - 1};
      IndexKey hi{lo.a + pick(2), op < 85 ? INT64_MAX : lo.b + pick(50), INT64_MAX};
      const size_t limit = op < 80 ? 1 : static_cast<size_t>(pick(40) + 1);
      Items got;
      t.scan(lo, hi, limit, got);
      ASSERT_EQ(got, reference_scan(truth, lo, hi, limit)) << "step " << step;
    } else if (op < 99) {
      t.flush([&](const IndexKey& k, int64_t v) { backend[k] = v; },
              [&](const IndexKey& k) { ASSERT_EQ(backend.erase(k), 1u) << "removed what was never written"; });
      ASSERT_EQ(backend, truth) << "step " << step;
      ASSERT_FALSE(t.dirty());
      ASSERT_EQ(t.cells(), truth.size());
    } else {
      // The key leaves the cache and comes back: reload from the backend.
      t.flush([&](const IndexKey& k, int64_t v) { backend[k] = v; }, [&](const IndexKey& k) { backend.erase(k); });
      t = IndexTable(partitioned);
      for (const auto& [k, v] : backend) t.load(k, v);
      ASSERT_FALSE(t.dirty());
    }
    ASSERT_EQ(t.size(), truth.size()) << "step " << step;
    ASSERT_GE(t.cells(), t.size());
  }
  // Drain it (a partitioned index goes back to one B-tree on the way).
  while (!truth.empty()) {
    auto it = truth.begin();
    std::advance(it, pick(static_cast<int64_t>(truth.size())));
    t.remove(it->first);
    truth.erase(it);
    if (truth.size() > 100 && truth.size() % 32 != 0) continue;  // around the join, and now and then
    Items got;
    t.scan({INT64_MIN, INT64_MIN, INT64_MIN}, {INT64_MAX, INT64_MAX, INT64_MAX}, SIZE_MAX, got);
    ASSERT_EQ(got, reference_scan(truth, {INT64_MIN, INT64_MIN, INT64_MIN}, {INT64_MAX, INT64_MAX, INT64_MAX}, SIZE_MAX));
  }
  t.flush([&](const IndexKey& k, int64_t v) { backend[k] = v; }, [&](const IndexKey& k) { backend.erase(k); });
  EXPECT_TRUE(backend.empty());
  EXPECT_EQ(t.cells(), 0u);
}

TEST(CepIndexTable, MatchesAnOrderedMapThroughPutsRemovesScansAndWriteBacks) {
  for (uint32_t seed = 1; seed <= 5; ++seed) run(false, seed);
}

TEST(CepIndexTable, PartitionedByFirstFieldMatchesAnOrderedMap) {
  for (uint32_t seed = 1; seed <= 5; ++seed) run(true, seed);
}

}  // namespace
}  // namespace sluice::cep
