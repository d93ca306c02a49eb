// The functions of the Nexmark queries (bench/nexmark/nexmark_job.cc):
// joins, aggregates and per-key logic that the DataStream API's built-ins
// do not cover. Each is copied per subtask and runs on its task thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "bench/nexmark/queries.h"
#include "engine/api/sluice.h"

namespace sluice::nexmark {

/// Bids per auction in a window.
struct AuctionCount {
  int64_t auction = 0, num = 0, window_start = 0, window_end = 0;
  SLUICE_FIELDS(auction, num, window_start, window_end)
};

/// The largest score of a window and every item that has it (ties kept,
/// as the SQL of q5 and q7 keeps them). Score: int64_t f(const T&), >= 0.
template <class T>
struct Top {
  int64_t score = -1;
  std::vector<T> items;
  SLUICE_FIELDS(score, items)
};
template <class T, int64_t (*kScore)(const T&)>
class TopAggregate final : public state::AggregateFunction<T, Top<T>, Top<T>> {
 public:
  Top<T> create_accumulator() const override { return {}; }
  void add(Top<T>& acc, const T& v) const override {
    const int64_t s = kScore(v);
    if (s > acc.score) {
      acc.score = s;
      acc.items.clear();
    }
    if (s == acc.score) acc.items.push_back(v);
  }
  Top<T> get_result(const Top<T>& acc) const override { return acc; }
  void merge(Top<T>& into, const Top<T>& other) const override {
    for (const auto& v : other.items) add(into, v);
  }
};
inline int64_t count_of(const AuctionCount& c) { return c.num; }
inline int64_t price_of(const Bid& b) { return b.price; }

/// q3's join, keyed by person id = seller: the person once seen, auctions
/// waiting for their seller until then (Flink's regular join keeps both).
class LocalItemSuggestion final : public join::KeyedCoProcessFunction<int64_t, Person, Auction, Q3Row> {
 public:
  void open(RuntimeContext& rc) override {
    person_ = rc.get_state(ValueStateDescriptor<Person>{"person", {}});
    pending_ = rc.get_list_state(ListStateDescriptor<Auction>{"pending-auctions", {}});
  }
  void process_element1(const Person& p, Context&, Collector<Q3Row>& out) override {
    person_->update(p);
    for (const Auction& a : pending_->get()) out.collect(Q3Row{p.name, p.city, p.state, a.id});
    pending_->clear();
  }
  void process_element2(const Auction& a, Context&, Collector<Q3Row>& out) override {
    if (auto p = person_->value()) {
      out.collect(Q3Row{p->name, p->city, p->state, a.id});
    } else {
      pending_->add(a);
    }
  }

 private:
  state::ValueState<Person>* person_ = nullptr;
  state::ListState<Auction>* pending_ = nullptr;
};

/// Auctions and their bids, keyed by auction id (q4, q20): the auction once
/// seen, bids that arrive before it (from another source subtask) waiting
/// for it until the watermark passes them — by then an auction, which is
/// never younger than its bids, has arrived unless it does not exist, so
/// their state does not outlive the watermark. Subclasses see each
/// (auction, bid) pair once and the timers they register.
template <class OUT>
class BidsWithAuction : public join::KeyedCoProcessFunction<int64_t, Auction, Bid, OUT> {
 public:
  using Context = typename join::KeyedCoProcessFunction<int64_t, Auction, Bid, OUT>::Context;
  using OnTimerContext = typename join::KeyedCoProcessFunction<int64_t, Auction, Bid, OUT>::OnTimerContext;

  void open(RuntimeContext& rc) override {
    auction_ = rc.get_state(ValueStateDescriptor<Auction>{"auction", {}});
    pending_ = rc.get_list_state(ListStateDescriptor<Bid>{"bids-awaiting-auction", {}});
  }
  void process_element1(const Auction& a, Context& ctx, Collector<OUT>& out) override {
    auction_->update(a);
    opened(a, ctx, out);
    for (const Bid& b : pending_->get()) matched(a, b, out);
    pending_->clear();
  }
  void process_element2(const Bid& b, Context& ctx, Collector<OUT>& out) override {
    if (auto a = auction_->value()) {
      matched(*a, b, out);
    } else if (b.ts > ctx.timer_service().current_watermark()) {
      pending_->add(b);
      ctx.timer_service().register_event_time_timer(b.ts);
    }
    // else: a bid behind the watermark on an auction not (or no longer) here.
  }
  void on_timer(int64_t ts, OnTimerContext& ctx, Collector<OUT>& out) override {
    if (auto a = auction_->value()) {
      timer(*a, ts, out);
    } else {
      pending_->clear();  // their auction would have arrived by now
    }
  }

 protected:
  /// The auction arrived (before any of its bids is matched).
  virtual void opened(const Auction& a, Context& ctx, Collector<OUT>& out) {}
  /// A bid on auction `a` (in arrival order, or the waiting ones when `a` arrives).
  virtual void matched(const Auction& a, const Bid& b, Collector<OUT>& out) = 0;
  /// A timer of this auction's key fired (the subclass's, or a waiting bid's).
  virtual void timer(const Auction& a, int64_t ts, Collector<OUT>& out) {}
  /// Forgets the auction and everything of its key.
  void forget() {
    auction_->clear();
    pending_->clear();
  }

 private:
  state::ValueState<Auction>* auction_ = nullptr;
  state::ListState<Bid>* pending_ = nullptr;
};

/// q4, first step: an auction closes when the watermark passes its
/// expiry, with the highest bid placed within its lifetime [ts, expires]
/// (none: no row, as the SQL's inner join).
struct ClosedAuction {
  int64_t id = 0, category = 0, final_price = 0;
  SLUICE_FIELDS(id, category, final_price)
};
class WinningBid final : public BidsWithAuction<ClosedAuction> {
 public:
  void open(RuntimeContext& rc) override {
    BidsWithAuction::open(rc);
    max_ = rc.get_state(ValueStateDescriptor<int64_t>{"max-price", {}});
  }

 protected:
  void opened(const Auction& a, Context& ctx, Collector<ClosedAuction>&) override {
    ctx.timer_service().register_event_time_timer(a.expires);
  }
  void matched(const Auction& a, const Bid& b, Collector<ClosedAuction>&) override {
    if (b.ts < a.ts || b.ts > a.expires) return;
    std::optional<int64_t> m = max_->value();
    if (!m || b.price > *m) max_->update(b.price);
  }
  void timer(const Auction& a, int64_t ts, Collector<ClosedAuction>& out) override {
    if (ts != a.expires) return;
    if (std::optional<int64_t> m = max_->value()) out.collect(ClosedAuction{a.id, a.category, *m});
    max_->clear();
    forget();
  }

 private:
  state::ValueState<int64_t>* max_ = nullptr;
};

/// q4, second step: per category, the running average of the closed
/// auctions' winning prices, one update per closed auction.
class CategoryAverage final : public KeyedProcessFunction<int64_t, ClosedAuction, Q4Row> {
 public:
  struct Sum {
    int64_t sum = 0, count = 0;
    SLUICE_FIELDS(sum, count)
  };
  void open(RuntimeContext& rc) override { sum_ = rc.get_state(ValueStateDescriptor<Sum>{"sum", {}}); }
  void process_element(const ClosedAuction& c, Context&, Collector<Q4Row>& out) override {
    Sum s = sum_->value().value_or(Sum{});
    s.sum += c.final_price;
    ++s.count;
    sum_->update(s);
    out.collect(Q4Row{c.category, s.sum / s.count, s.count});
  }

 private:
  state::ValueState<Sum>* sum_ = nullptr;
};

/// q8: per seller id and window, the person (if they joined in it) when
/// they also opened an auction in it — a co-group of the two sides of a
/// window join (JoinInput), one row per person and window however many
/// auctions they opened.
class NewUserWithAuction final
    : public ProcessWindowFunction<JoinInput<Person, Auction>, Q8Row, int64_t> {
 public:
  void process(const int64_t&, const TimeWindow& w, const std::vector<JoinInput<Person, Auction>>& in,
               Collector<Q8Row>& out) override {
    const Person* person = nullptr;
    bool auction = false;
    for (const auto& e : in) {
      if (e.left) person = &*e.left;
      if (e.right) auction = true;
    }
    if (person && auction) out.collect(Q8Row{person->id, person->name, w.start});
  }
};

/// The group of q15-q17's statistics and, for the distinct counts, the
/// counted id (bidder or auction; 0 for the group itself).
struct StatsKey {
  std::string channel, day;
  int64_t id = 0;
  SLUICE_FIELDS(channel, day, id)
};

/// q15/q16, first step of a distinct count (Flink's split distinct
/// aggregation): keyed by (group, bidder) or (group, auction), remembers
/// which price ranks the id was seen in and emits a BidStats delta that
/// counts the id once in total and once per rank, the first time only.
/// The bidder step also counts every bid (and carries its minute for q16).
/// State (a bit set per id and day) is dropped when the day closes.
class DistinctCounter final : public KeyedProcessFunction<StatsKey, Bid, BidStats> {
 public:
  enum class Counted { kBidders, kAuctions };
  DistinctCounter(Counted what, bool with_minute) : what_(what), with_minute_(with_minute) {}

  void open(RuntimeContext& rc) override {
    seen_ = rc.get_state(ValueStateDescriptor<int32_t>{"ranks-seen", {}});
  }
  void process_element(const Bid& b, Context& ctx, Collector<BidStats>& out) override {
    const int rank = price_rank(b.price);
    const int32_t seen = seen_->value().value_or(0);
    const int32_t now = seen | 1 | (1 << rank);  // bit 0: seen at all
    BidStats d;
    d.channel = ctx.current_key().channel;
    d.day = ctx.current_key().day;
    auto distinct = [&](int r) -> int64_t& {
      return what_ == Counted::kBidders ? d.bidders(r) : d.auctions(r);
    };
    if (now != seen) {
      if (seen == 0) {
        constexpr int64_t kDay = 86'400'000;
        ctx.timer_service().register_event_time_timer(b.ts - b.ts % kDay + kDay - 1);
      }
      seen_->update(now);
      distinct(0) = (seen & 1) ? 0 : 1;
      distinct(rank) = 1;
    }
    if (what_ == Counted::kBidders) {
      d.bids(0) = 1;
      d.bids(rank) = 1;
      if (with_minute_) d.minute = utc_minute(b.ts);
    } else if (now == seen) {
      return;
    }
    out.collect(d);
  }
  void on_timer(int64_t, OnTimerContext&, Collector<BidStats>&) override { seen_->clear(); }

 private:
  Counted what_;
  bool with_minute_;
  state::ValueState<int32_t>* seen_ = nullptr;
};

/// q15/q16, second step: the sum of the deltas of a group and day (the
/// latest minute for q16).
class BidStatsSum final : public AggregateFunction<BidStats, BidStats, BidStats> {
 public:
  BidStats create_accumulator() const override { return {}; }
  void add(BidStats& acc, const BidStats& d) const override {
    if (acc.day.empty()) {
      acc.channel = d.channel;
      acc.day = d.day;
    }
    acc.add(d);
  }
  BidStats get_result(const BidStats& acc) const override { return acc; }
  void merge(BidStats& into, const BidStats& other) const override { add(into, other); }
};

/// q17: per auction and day, counts per rank, min, max and sum of prices.
class AuctionDayStats final : public AggregateFunction<Bid, Q17Row, Q17Row> {
 public:
  Q17Row create_accumulator() const override {
    Q17Row r;
    r.min_price = std::numeric_limits<int64_t>::max();
    r.max_price = std::numeric_limits<int64_t>::min();
    return r;
  }
  void add(Q17Row& acc, const Bid& b) const override {
    ++acc.total_bids;
    switch (price_rank(b.price)) {
      case 1: ++acc.rank1_bids; break;
      case 2: ++acc.rank2_bids; break;
      default: ++acc.rank3_bids; break;
    }
    acc.min_price = std::min(acc.min_price, b.price);
    acc.max_price = std::max(acc.max_price, b.price);
    acc.sum_price += b.price;
  }
  Q17Row get_result(const Q17Row& acc) const override {
    Q17Row r = acc;
    r.avg_price = acc.total_bids ? acc.sum_price / acc.total_bids : 0;
    return r;
  }
  void merge(Q17Row& into, const Q17Row& o) const override {
    into.total_bids += o.total_bids;
    into.rank1_bids += o.rank1_bids;
    into.rank2_bids += o.rank2_bids;
    into.rank3_bids += o.rank3_bids;
    into.min_price = std::min(into.min_price, o.min_price);
    into.max_price = std::max(into.max_price, o.max_price);
    into.sum_price += o.sum_price;
  }
};

/// q20: every bid on a category-10 auction, with the auction.
class BidsOnCategory final : public BidsWithAuction<Q20Row> {
 protected:
  void matched(const Auction& a, const Bid& b, Collector<Q20Row>& out) override {
    if (a.category == kQ20Category) out.collect(Q20Row::of(b, a));
  }
};

}  // namespace sluice::nexmark
