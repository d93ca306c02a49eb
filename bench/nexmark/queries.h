// Nexmark query results: the rows the queries of nexmark_job.cc emit, shared
// with the test that checks them against a plain reference.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <tuple>
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

/// q4: the average winning price of the closed auctions of a category, as
/// of the latest one to close (one update per closed auction that had a
/// bid; the latest per category wins). Winning price: the highest bid
/// placed within the auction's lifetime [ts, expires]. The average is
/// integer (Flink's AVG over BIGINT).
struct Q4Row {
  int64_t category = 0, avg_price = 0, auctions = 0;
  SLUICE_FIELDS(category, avg_price, auctions)
};

/// q8: persons who opened an auction in the same 10 s tumbling window in
/// which they joined (one row per person and window).
struct Q8Row {
  int64_t id = 0;
  std::string name;
  int64_t window_start = 0;
  SLUICE_FIELDS(id, name, window_start)
};
inline constexpr int64_t kQ8Size = 10'000;

/// q11 (sessions with a 10 s gap unless --arg gap=) and q12
/// (processing-time windows, 10 s unless --arg window=): bids per bidder
/// per window.
struct BidderCount {
  int64_t bidder = 0, bid_count = 0, window_start = 0, window_end = 0;
  SLUICE_FIELDS(bidder, bid_count, window_start, window_end)
};
inline constexpr int64_t kQ11DefaultGap = 10'000;
inline constexpr int64_t kQ12DefaultSize = 10'000;

/// Price ranks of q15-q17: 1 below 10,000, 2 below 1,000,000, 3 above.
inline int price_rank(int64_t price) { return price < 10'000 ? 1 : price < 1'000'000 ? 2 : 3; }
/// The UTC day of an epoch-ms timestamp, yyyy-MM-dd.
inline std::string utc_day(int64_t ms) {
  using namespace std::chrono;
  const year_month_day d{floor<days>(sys_time<milliseconds>(milliseconds(ms)))};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(d.year()),
                static_cast<unsigned>(d.month()), static_cast<unsigned>(d.day()));
  return buf;
}
/// The UTC minute of the day of an epoch-ms timestamp, HH:mm.
inline std::string utc_minute(int64_t ms) {
  constexpr int64_t kDay = 86'400'000;
  const int64_t in_day = ((ms % kDay) + kDay) % kDay / 60'000;
  char buf[8];
  std::snprintf(buf, sizeof buf, "%02d:%02d", static_cast<int>(in_day / 60),
                static_cast<int>(in_day % 60));
  return buf;
}

/// q15 (per day; channel and minute empty) and q16 (per channel and day,
/// with the latest minute of the day's bids): bids, distinct bidders and
/// distinct auctions, in total and per price rank. One row per group when
/// its day closes.
struct BidStats {
  std::string channel, day, minute;
  int64_t total_bids = 0, rank1_bids = 0, rank2_bids = 0, rank3_bids = 0;
  int64_t total_bidders = 0, rank1_bidders = 0, rank2_bidders = 0, rank3_bidders = 0;
  int64_t total_auctions = 0, rank1_auctions = 0, rank2_auctions = 0, rank3_auctions = 0;
  SLUICE_FIELDS(channel, day, minute, total_bids, rank1_bids, rank2_bids, rank3_bids, total_bidders,
                rank1_bidders, rank2_bidders, rank3_bidders, total_auctions, rank1_auctions,
                rank2_auctions, rank3_auctions)
  bool operator==(const BidStats&) const = default;
  /// The counters by rank (0: total).
  int64_t& bids(int rank) { return pick(rank, total_bids, rank1_bids, rank2_bids, rank3_bids); }
  int64_t& bidders(int rank) {
    return pick(rank, total_bidders, rank1_bidders, rank2_bidders, rank3_bidders);
  }
  int64_t& auctions(int rank) {
    return pick(rank, total_auctions, rank1_auctions, rank2_auctions, rank3_auctions);
  }
  /// Adds the counters of `o` and keeps the later minute.
  void add(BidStats o) {
    for (int r = 0; r <= 3; ++r) {
      bids(r) += o.bids(r);
      bidders(r) += o.bidders(r);
      auctions(r) += o.auctions(r);
    }
    if (o.minute > minute) minute = o.minute;
  }

 private:
  static int64_t& pick(int rank, int64_t& t, int64_t& r1, int64_t& r2, int64_t& r3) {
    return rank == 0 ? t : rank == 1 ? r1 : rank == 2 ? r2 : r3;
  }
};

/// q17: per auction and day: bids in total and per price rank, and the
/// minimum, maximum, (integer) average and sum of their prices.
struct Q17Row {
  int64_t auction = 0;
  std::string day;
  int64_t total_bids = 0, rank1_bids = 0, rank2_bids = 0, rank3_bids = 0;
  int64_t min_price = 0, max_price = 0, avg_price = 0, sum_price = 0;
  SLUICE_FIELDS(auction, day, total_bids, rank1_bids, rank2_bids, rank3_bids, min_price, max_price,
                avg_price, sum_price)
  bool operator==(const Q17Row&) const = default;
};

/// q18 keeps the last bid per (bidder, auction); q19 the 10 highest bids
/// per auction. Both emit upserts (q18: the bid itself, latest per
/// (bidder, auction) wins; q19: latest per (auction, rank) wins). Orders
/// are total, so results do not depend on arrival order: later = greater
/// (ts, price, bidder, auction, channel, url, extra); higher = greater
/// price, then earlier ts, then the rest as for q18.
inline auto bid_order(const Bid& b) {
  return std::tie(b.ts, b.price, b.bidder, b.auction, b.channel, b.url, b.extra);
}
inline bool q18_later(const Bid& a, const Bid& b) { return bid_order(a) > bid_order(b); }
inline bool q19_higher(const Bid& a, const Bid& b) {
  if (a.price != b.price) return a.price > b.price;
  if (a.ts != b.ts) return a.ts < b.ts;
  return bid_order(a) < bid_order(b);
}
inline constexpr size_t kQ19Top = 10;
struct Q19Row {
  int64_t rank_number = 0;
  Bid bid;
  SLUICE_FIELDS(rank_number, bid)
};

/// q20: bids on auctions of category 10 with their auction.
struct Q20Row {
  int64_t auction = 0, bidder = 0, price = 0;
  std::string channel, url;
  int64_t bid_ts = 0;
  std::string bid_extra, item_name, description;
  int64_t initial_bid = 0, reserve = 0, auction_ts = 0, expires = 0, seller = 0, category = 0;
  std::string auction_extra;
  SLUICE_FIELDS(auction, bidder, price, channel, url, bid_ts, bid_extra, item_name, description,
                initial_bid, reserve, auction_ts, expires, seller, category, auction_extra)
  static Q20Row of(const Bid& b, const Auction& a) {
    return Q20Row{b.auction,   b.bidder,       b.price,      b.channel,     b.url,
                  b.ts,        b.extra,        a.item_name,  a.description, a.initial_bid,
                  a.reserve,   a.ts,           a.expires,    a.seller,      a.category,
                  a.extra};
  }
};
inline constexpr int64_t kQ20Category = 10;

}  // namespace sluice::nexmark
