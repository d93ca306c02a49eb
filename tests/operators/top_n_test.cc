// TopNFunction (operators/basic/top_n.h) through the harness: after every
// record, the upserts it emitted so far, read as "latest per (key, rank)",
// must equal a brute-force top-N of every record seen for that key; runs
// are cut by snapshot/restore, on heap and RocksDB. A failing seed is
// printed (SLUICE_SEED=N replays it).
#include "operators/basic/top_n.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tests/harness/operator_harness.h"
#include "tests/harness/test_seed.h"

namespace sluice::basic {
namespace {

using harness::HarnessOptions;
using harness::test_seed;
using harness::OneInputOperatorHarness;

struct Item {
  std::string key;
  int64_t score = 0;
  int64_t id = 0;
  SLUICE_FIELDS(key, score, id)
  bool operator==(const Item&) const = default;
};

using Op = KeyedProcessOperator<std::string, Item, Ranked<Item>, TopNFunction<std::string, Item>>;
using Harness = OneInputOperatorHarness<Item, Ranked<Item>>;

// Highest score first, then the lowest id: a total order.
bool ahead(const Item& a, const Item& b) { return a.score != b.score ? a.score > b.score : a.id < b.id; }

std::unique_ptr<runtime::StreamOperator> top_op(size_t n, TopNFunction<std::string, Item>::Before before = ahead) {
  auto ks = std::make_shared<runtime::KeySelector<Item, std::string>>([](const Item& i) { return i.key; });
  return std::make_unique<Op>(ks, TopNFunction<std::string, Item>(n, std::move(before)));
}

TEST(TopN, UpsertsPerRankAlwaysEqualABruteForceTopNAcrossRestoresOnBothBackends) {
  const uint64_t seed = test_seed();
  for (auto backend : {state::BackendKind::kHeap, state::BackendKind::kRocksDB}) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " (SLUICE_SEED replays it), " +
                 (backend == state::BackendKind::kRocksDB ? "RocksDB" : "heap"));
    std::mt19937_64 rng(seed);
    const size_t n = 1 + rng() % 5;
    auto options = HarnessOptions::keyed_subtask().with_backend(backend);
    auto h = std::make_unique<Harness>(top_op(n), options);
    ASSERT_TRUE(h->open().is_ok());
    std::map<std::string, std::vector<Item>> seen;                 // every record per key
    std::map<std::string, std::map<int64_t, Item>> view;           // latest per (key, rank)
    for (int64_t step = 0; step < 1500; ++step) {
      if (rng() % 100 == 0) {
        auto snap = h->snapshot();
        h->close();
        h = Harness::restored(top_op(n), options, snap);
        ASSERT_TRUE(h->open().is_ok());
      }
      Item it{"k" + std::to_string(rng() % 7), static_cast<int64_t>(rng() % 50), step};
      h->process_element(it, EventTime(step));
      seen[it.key].push_back(it);
      for (const auto& r : h->output().take_records()) {
        ASSERT_GE(r.value.rank, 1);
        ASSERT_LE(r.value.rank, static_cast<int64_t>(n));
        view[r.value.row.key][r.value.rank] = r.value.row;
      }
      std::vector<Item> want = seen[it.key];
      std::sort(want.begin(), want.end(), ahead);
      want.resize(std::min(want.size(), n));
      std::vector<Item> got;
      for (const auto& [rank, row] : view[it.key]) got.push_back(row);
      ASSERT_EQ(got, want) << "after record " << step << " (key " << it.key << ", N " << n << ")";
    }
    EXPECT_TRUE(h->failures().empty());
  }
}

TEST(TopN, ARecordOutsideTheTopEmitsNothingAndTiesRankInArrivalOrder) {
  // Score only: equal scores tie.
  Harness h(top_op(2, [](const Item& a, const Item& b) { return a.score > b.score; }),
            HarnessOptions::keyed_subtask());
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(Item{"a", 5, 1}, EventTime(1));
  h.process_element(Item{"a", 5, 2}, EventTime(2));
  h.output().clear();
  h.process_element(Item{"a", 5, 3}, EventTime(3));
  EXPECT_EQ(h.output().record_count(), 0u) << "a tie ranks after the rows kept: outside the top 2";
  h.process_element(Item{"a", 6, 4}, EventTime(4));
  auto rows = h.output().values();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].rank, 1);
  EXPECT_EQ(rows[0].row.id, 4);
  EXPECT_EQ(rows[1].rank, 2);
  EXPECT_EQ(rows[1].row.id, 1) << "the earlier of the tied rows stays";
  using Top = TopNFunction<std::string, Item>;
  EXPECT_THROW(Top(0, ahead), std::invalid_argument);
}

}  // namespace
}  // namespace sluice::basic
