// Nexmark: the auction-site event model of the Nexmark benchmark (persons
// who sell items in auctions and bid on them) and its seeded generator
// behind `sluice gen --kind nexmark`. Follows the Nexmark generator that
// Flink and Beam use: in every 50 events 1 person, 3 auctions and 46 bids;
// half of the bids go to the latest hot auction, three quarters come from
// the latest hot bidder, three quarters of the auctions from the latest hot
// seller; prices log-uniform between 1 and 1,000,000 (in cents ×100); event
// time advances by a fixed step per event, in order.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <string>

#include "engine/common/serde.h"
#include "engine/common/status.h"

namespace sluice::nexmark {

struct Person {
  int64_t id = 0;
  std::string name;
  std::string email_address;
  std::string credit_card;
  std::string city;
  std::string state;
  int64_t ts = 0;  // date_time, epoch ms
  std::string extra;
  SLUICE_FIELDS(id, name, email_address, credit_card, city, state, ts, extra)
  bool operator==(const Person&) const = default;
};

struct Auction {
  int64_t id = 0;
  std::string item_name;
  std::string description;
  int64_t initial_bid = 0;
  int64_t reserve = 0;
  int64_t ts = 0;
  int64_t expires = 0;
  int64_t seller = 0;
  int64_t category = 0;
  std::string extra;
  SLUICE_FIELDS(id, item_name, description, initial_bid, reserve, ts, expires, seller, category,
                extra)
  bool operator==(const Auction&) const = default;
};

struct Bid {
  int64_t auction = 0;
  int64_t bidder = 0;
  int64_t price = 0;
  std::string channel;
  std::string url;
  int64_t ts = 0;
  std::string extra;
  SLUICE_FIELDS(auction, bidder, price, channel, url, ts, extra)
  bool operator==(const Bid&) const = default;
};

/// One line of the stream: event_type 0 = person, 1 = auction, 2 = bid,
/// with the matching member set (as Flink's Nexmark JSON format).
struct Event {
  int32_t event_type = 0;
  std::optional<Person> person;
  std::optional<Auction> auction;
  std::optional<Bid> bid;
  SLUICE_FIELDS(event_type, person, auction, bid)
  bool operator==(const Event&) const = default;
  /// Event time of whichever member is set.
  int64_t ts() const { return person ? person->ts : auction ? auction->ts : bid ? bid->ts : 0; }
};

struct NexmarkOptions {
  int64_t count = 1000;
  uint64_t seed = 42;
  int64_t start_ts = 1'700'000'000'000;
  /// Event-time density; default 100,000 events per second of event time
  /// (so a run of millions spans minutes and windows of seconds fill).
  double events_per_second = 100'000;
  Status validate() const;
};

/// Produces events in order. One generator per thread; the same options
/// always produce the same events.
class NexmarkGenerator {
 public:
  static constexpr int kPersonProportion = 1, kAuctionProportion = 3, kBidProportion = 46;
  static constexpr int kTotalProportion = kPersonProportion + kAuctionProportion + kBidProportion;
  static constexpr int64_t kFirstPersonId = 1000, kFirstAuctionId = 1000, kFirstCategoryId = 10;
  static constexpr int kHotAuctionRatio = 2, kHotBidderRatio = 4, kHotSellerRatio = 4;

  explicit NexmarkGenerator(NexmarkOptions o) : o_(o), rng_(o.seed) {}
  bool done() const { return n_ >= o_.count; }
  /// The next event (n-th of the stream).
  Event next();
  /// The next event as one NDJSON line (without newline) into `out`.
  void next_line(std::string& out);

 private:
  int64_t uniform(int64_t lo, int64_t hi) {  // [lo, hi]
    return lo + static_cast<int64_t>(rng_() % static_cast<uint64_t>(hi - lo + 1));
  }
  double unit() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }
  int64_t price() {
    return static_cast<int64_t>(std::llround(std::pow(10.0, unit() * 6.0) * 100.0));
  }
  /// Base-0 id of the last person / auction created at or before event n.
  static int64_t last_person(int64_t n);
  static int64_t last_auction(int64_t n);
  std::string string(size_t len);
  Person person(int64_t n, int64_t ts);
  Auction auction(int64_t n, int64_t ts);
  Bid bid(int64_t n, int64_t ts);

  NexmarkOptions o_;
  std::mt19937_64 rng_;
  int64_t n_ = 0;
};

}  // namespace sluice::nexmark
