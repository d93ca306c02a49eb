#include "jobs/gen/nexmark.h"

#include <algorithm>
#include <cmath>

#include "engine/common/json.h"

namespace sluice::nexmark {

namespace {
constexpr const char* kFirstNames[] = {"Peter", "Paul",  "Luke",  "John",   "Saul",  "Vicky",
                                       "Kate",  "Julie", "Sarah", "Deiter", "Walter"};
constexpr const char* kLastNames[] = {"Shultz", "Abrams", "Spencer", "White", "Bartels",
                                      "Walton", "Smith",  "Jones",   "Noris"};
constexpr const char* kStates[] = {"AZ", "CA", "ID", "OR", "WA", "WY"};
constexpr const char* kCities[] = {"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland",
                                   "Bend",    "Redmond",     "Seattle",       "Kent",  "Cheyenne"};
constexpr const char* kHotChannels[] = {"Google", "Facebook", "Baidu", "Apple"};
constexpr int kCategories = 5;
constexpr int64_t kInFlightAuctions = 100;  // recent auctions a cold bid picks from
constexpr int64_t kActivePersons = 1000;    // recent persons a cold bidder/seller is
}  // namespace

Status NexmarkOptions::validate() const {
  if (count < 0) return Status::invalid_argument("--count must not be negative for --kind nexmark");
  if (events_per_second <= 0)
    return Status::invalid_argument("--events-per-second must be positive");
  return Status::ok();
}

int64_t NexmarkGenerator::last_person(int64_t n) {
  int64_t epoch = n / kTotalProportion, offset = n % kTotalProportion;
  if (offset >= kPersonProportion) offset = kPersonProportion - 1;
  return epoch * kPersonProportion + offset;
}

int64_t NexmarkGenerator::last_auction(int64_t n) {
  int64_t epoch = n / kTotalProportion, offset = n % kTotalProportion;
  if (offset < kPersonProportion) {
    // Before this epoch's auctions: the previous epoch's last one.
    --epoch;
    offset = kAuctionProportion - 1;
  } else if (offset >= kPersonProportion + kAuctionProportion) {
    offset = kAuctionProportion - 1;
  } else {
    offset -= kPersonProportion;
  }
  return std::max<int64_t>(0, epoch * kAuctionProportion + offset);
}

std::string NexmarkGenerator::string(size_t len) {
  std::string s(len, ' ');
  for (auto& c : s) c = static_cast<char>('a' + rng_() % 26);
  return s;
}

Person NexmarkGenerator::person(int64_t n, int64_t ts) {
  Person p;
  p.id = kFirstPersonId + last_person(n);
  p.name = std::string(kFirstNames[rng_() % std::size(kFirstNames)]) + " " +
           kLastNames[rng_() % std::size(kLastNames)];
  p.email_address = string(7) + "@" + string(5) + ".com";
  p.credit_card = std::to_string(uniform(1000, 9999)) + " " + std::to_string(uniform(1000, 9999)) +
                  " " + std::to_string(uniform(1000, 9999)) + " " +
                  std::to_string(uniform(1000, 9999));
  p.city = kCities[rng_() % std::size(kCities)];
  p.state = kStates[rng_() % std::size(kStates)];
  p.ts = ts;
  p.extra = string(8);
  return p;
}

Auction NexmarkGenerator::auction(int64_t n, int64_t ts) {
  Auction a;
  a.id = kFirstAuctionId + last_auction(n);
  const int64_t lp = last_person(n);
  int64_t seller = rng_() % kHotSellerRatio > 0
                       ? (lp / kHotSellerRatio) * kHotSellerRatio
                       : uniform(std::max<int64_t>(0, lp - kActivePersons), lp);
  a.seller = kFirstPersonId + seller;
  a.category = kFirstCategoryId + static_cast<int64_t>(rng_() % kCategories);
  a.item_name = string(6);
  a.description = string(12);
  a.initial_bid = price();
  a.reserve = a.initial_bid + price();
  a.ts = ts;
  a.expires = ts + uniform(10'000, 30'000);
  a.extra = string(8);
  return a;
}

Bid NexmarkGenerator::bid(int64_t n, int64_t ts) {
  Bid b;
  const int64_t la = last_auction(n), lp = last_person(n);
  int64_t auction = rng_() % kHotAuctionRatio > 0
                        ? (la / kHotAuctionRatio) * kHotAuctionRatio
                        : uniform(std::max<int64_t>(0, la - kInFlightAuctions), la);
  int64_t bidder = rng_() % kHotBidderRatio > 0
                       ? std::min(lp, (lp / kHotBidderRatio) * kHotBidderRatio + 1)
                       : uniform(std::max<int64_t>(0, lp - kActivePersons), lp);
  b.auction = kFirstAuctionId + auction;
  b.bidder = kFirstPersonId + bidder;
  b.price = price();
  if (rng_() % 2 == 0) {
    b.channel = kHotChannels[rng_() % std::size(kHotChannels)];
  } else {
    b.channel = "channel-" + std::to_string(rng_() % 10'000);
  }
  b.url = "https://www.nexmark.com/" + string(5) + "/item.htm?query=1&channel=" + b.channel;
  b.ts = ts;
  b.extra = string(8);
  return b;
}

Event NexmarkGenerator::next() {
  const int64_t n = n_++;
  const int64_t ts =
      o_.start_ts + static_cast<int64_t>(static_cast<double>(n) * 1000.0 / o_.events_per_second);
  const int64_t offset = n % kTotalProportion;
  Event e;
  if (offset < kPersonProportion) {
    e.event_type = 0;
    e.person = person(n, ts);
  } else if (offset < kPersonProportion + kAuctionProportion) {
    e.event_type = 1;
    e.auction = auction(n, ts);
  } else {
    e.event_type = 2;
    e.bid = bid(n, ts);
  }
  return e;
}

void NexmarkGenerator::next_line(std::string& out) {
  out.clear();
  JsonSerde<Event>::write(out, next());
}

}  // namespace sluice::nexmark
