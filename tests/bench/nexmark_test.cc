// Nexmark: `sluice gen --kind nexmark`'s generator (proportions, ids, skew)
// and queries q0-q7 of bench/nexmark/nexmark_job.cc, run with run-local at
// parallelism 2 on heap and RocksDB state, compared row for row with a plain
// reference computed here from the same events (random seed, printed on
// failure; nexmark_queries_test has the other queries).
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/bench/nexmark_support.h"

namespace sluice::nexmark {
namespace {

TEST_F(NexmarkTest, GeneratorKeepsTheStandardProportionsIdsAndHotItems) {
  std::map<int, int> kinds;
  std::map<int64_t, int> per_auction;
  std::set<int64_t> persons, auctions;
  int64_t last_ts = 0;
  for (const auto& e : events_) {
    ++kinds[e.event_type];
    EXPECT_GE(e.ts(), last_ts) << "in order";
    last_ts = e.ts();
    if (e.person) persons.insert(e.person->id);
    if (e.auction) {
      auctions.insert(e.auction->id);
      EXPECT_TRUE(persons.count(e.auction->seller)) << "a seller exists before the auction";
      EXPECT_GE(e.auction->category, 10);
      EXPECT_LT(e.auction->category, 15);
    }
    if (e.bid) {
      EXPECT_TRUE(auctions.count(e.bid->auction)) << "a bid is on an existing auction";
      EXPECT_TRUE(persons.count(e.bid->bidder));
      ++per_auction[e.bid->auction];
    }
  }
  EXPECT_EQ(kinds[0], 20'000 / 50);
  EXPECT_EQ(kinds[1], 20'000 / 50 * 3);
  EXPECT_EQ(kinds[2], 20'000 / 50 * 46);
  EXPECT_EQ(persons.size(), 400u) << "person ids are unique";
  // Hot auctions: half the bids go to the latest even auction, so the
  // busiest auction gets several times the average.
  int top = 0;
  for (const auto& [a, n] : per_auction) top = std::max(top, n);
  EXPECT_GT(top, 3 * kinds[2] / static_cast<int>(per_auction.size()));
  // Seeded: the same options give the same events.
  EXPECT_EQ(generate(1000, test_seed()), std::vector<Event>(events_.begin(), events_.begin() + 1000));
}

TEST_F(NexmarkTest, StatelessQueriesMatchTheReference) {
  auto all = read_rows<Event>(run("q0", "heap"));
  expect_same_rows(all, events_, [](const Event& e) { return to_json(e); });

  std::vector<Q1Row> q1;
  std::vector<Q2Row> q2;
  for (const auto& b : bids()) {
    q1.push_back(Q1Row{b.auction, b.bidder, to_euro(b.price), b.ts});
    if (b.auction % kQ2Modulus == 0) q2.push_back(Q2Row{b.auction, b.price});
  }
  ASSERT_FALSE(q2.empty());
  expect_same_rows(read_rows<Q1Row>(run("q1", "heap")), q1,
                   [](const Q1Row& r) { return to_json(r); });
  expect_same_rows(read_rows<Q2Row>(run("q2", "heap")), q2,
                   [](const Q2Row& r) { return to_json(r); });
}

TEST_F(NexmarkTest, StatefulQueriesMatchTheReferenceOnBothBackends) {
  // q3: category-10 auctions of sellers in OR, ID or CA.
  std::map<int64_t, Person> people;
  std::vector<Q3Row> q3;
  for (const auto& e : events_)
    if (e.person) people[e.person->id] = *e.person;
  for (const auto& e : events_) {
    if (!e.auction || e.auction->category != kQ3Category) continue;
    auto p = people.find(e.auction->seller);
    if (p != people.end() && q3_person(p->second))
      q3.push_back(Q3Row{p->second.name, p->second.city, p->second.state, e.auction->id});
  }
  // q5: bids per (auction, sliding window), the top auctions per window.
  std::map<std::pair<int64_t, int64_t>, int64_t> counts;  // (window start, auction)
  for (const auto& b : bids()) {
    for (int64_t s = b.ts - b.ts % kQ5Slide; s > b.ts - kQ5Size; s -= kQ5Slide)
      ++counts[{s, b.auction}];
  }
  std::map<int64_t, int64_t> top;
  for (const auto& [k, n] : counts) top[k.first] = std::max(top[k.first], n);
  std::vector<Q5Row> q5;
  for (const auto& [k, n] : counts)
    if (n == top[k.first]) q5.push_back(Q5Row{k.second, n, k.first, k.first + kQ5Size});
  // q7: the highest bids of each tumbling window.
  std::map<int64_t, int64_t> max_price;
  for (const auto& b : bids()) {
    int64_t end = b.ts - b.ts % kQ7Size + kQ7Size;
    max_price[end] = std::max(max_price[end], b.price);
  }
  std::vector<Q7Row> q7;
  for (const auto& b : bids()) {
    int64_t end = b.ts - b.ts % kQ7Size + kQ7Size;
    if (b.price == max_price[end]) q7.push_back(Q7Row{b.auction, b.bidder, b.price, b.ts, end});
  }
  ASSERT_FALSE(q3.empty());
  for (const char* backend : {"heap", "rocksdb"}) {
    SCOPED_TRACE(backend);
    expect_same_rows(read_rows<Q3Row>(run("q3", backend)), q3,
                     [](const Q3Row& r) { return to_json(r); });
    expect_same_rows(read_rows<Q5Row>(run("q5", backend)), q5,
                     [](const Q5Row& r) { return to_json(r); });
    expect_same_rows(read_rows<Q7Row>(run("q7", backend)), q7,
                     [](const Q7Row& r) { return to_json(r); });
  }
}

}  // namespace
}  // namespace sluice::nexmark
