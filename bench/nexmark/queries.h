// Nexmark query results: the rows the queries of nexmark_job.cc emit, shared
// with the test that checks them against a plain reference.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "jobs/gen/nexmark.h"

namespace sluice::nexmark {

/// q1: a bid with its price converted from dollars to euros (×0.908, in
/// integer arithmetic so that the reference can compare exactly).
struct Q1Row {
  int64_t auction = 0, bidder = 0, price = 0, ts = 0;
  SLUICE_FIELDS(auction, bidder, price, ts)
};
inline int64_t to_euro(int64_t dollars) { return dollars * 908 / 1000; }

/// q2: bids on every 123rd auction.
struct Q2Row {
  int64_t auction = 0, price = 0;
  SLUICE_FIELDS(auction, price)
};
inline constexpr int64_t kQ2Modulus = 123;

/// q3: auctions of category 10 with their seller, for sellers in OR, ID or CA.
struct Q3Row {
  std::string name, city, state;
  int64_t id = 0;  // the auction
  SLUICE_FIELDS(name, city, state, id)
};
inline bool q3_person(const Person& p) {
  return p.state == "OR" || p.state == "ID" || p.state == "CA";
}
inline constexpr int64_t kQ3Category = 10;

/// q5: the auctions with the most bids in each sliding window (10 s every 2 s).
struct Q5Row {
  int64_t auction = 0, num = 0, window_start = 0, window_end = 0;
  SLUICE_FIELDS(auction, num, window_start, window_end)
};
inline constexpr int64_t kQ5Size = 10'000, kQ5Slide = 2'000;

/// q7: the highest bid(s) of each 10 s tumbling window.
struct Q7Row {
  int64_t auction = 0, bidder = 0, price = 0, ts = 0, window_end = 0;
  SLUICE_FIELDS(auction, bidder, price, ts, window_end)
};
inline constexpr int64_t kQ7Size = 10'000;

}  // namespace sluice::nexmark
