// nexmark: the standard Nexmark queries over `sluice gen --kind nexmark`
// events, one per run (--arg query=q0|q1|...|q20; bench/README.md lists
// what each computes and how).
//
// Arguments (--arg key=value):
//   source  file:///path.ndjson or kafka://host:port/topic (required)
//   query   q0 pass-through, q1 currency conversion, q2 selection, q3 local
//           item suggestion (incremental join), q4 average price per
//           category (join until the auction closes, then an average), q5
//           hot items (sliding window), q7 highest bid (tumbling window),
//           q8 new users (window co-group), q11 user sessions (session
//           windows), q12 processing-time windows, q15/q16 bid statistics
//           per day / per channel and day (distinct counts), q17 auction
//           statistics per day, q18 last bid (deduplication), q19 top-10
//           prices per auction (top-N), q20 bids with their category-10
//           auction (join); default q0
//   gap     q11's session gap (default 10s)
//   window  q12's processing-time window (default 10s)
//   sink    any sink URI of connectors/connectors.h, or discard: (count and
//           drop, as Flink's Nexmark runs use a blackhole sink); default discard:
//   dlq     malformed events (default stderr:)
#include <algorithm>
#include <atomic>
#include <chrono>

#include "bench/discard_sink.h"
#include "bench/nexmark/functions.h"
#include "bench/nexmark/queries.h"
#include "connectors/connectors.h"
#include "engine/api/sluice.h"

using namespace std::chrono_literals;
using namespace sluice::nexmark;

namespace {

template <class T>
std::shared_ptr<const sluice::runtime::Sink<T>> make_sink(const std::string& uri) {
  if (uri == "discard:") return std::make_shared<sluice_bench::DiscardSink<T>>();
  return sluice::api::or_arg_error(sluice::connectors::sink_from_uri<T>(uri), "sink");
}

}  // namespace

SLUICE_JOB(nexmark) {
  using namespace sluice;
  const std::string query = args.get("query", "q0");
  const std::string sink_uri = args.get("sink", "discard:");
  const Duration q11_gap = args.get_duration("gap", Duration(kQ11DefaultGap));
  const Duration q12_window = args.get_duration("window", Duration(kQ12DefaultSize));
  auto source = api::or_arg_error(
      connectors::source_from_uri<Event>(args.require("source", "file:///path")), "source");
  env.set_dead_letter_sink(
      api::or_arg_error(connectors::sink_from_uri<DeadLetter>(args.get("dlq", "stderr:")), "dlq"));
  auto strategy =
      WatermarkStrategy<Event>::for_bounded_out_of_orderness(0s).with_timestamp_assigner(
          [](const Event& e) { return e.ts(); });
  auto events = env.from_source(source, strategy, "nexmark");
  events.uid("nexmark-source");
  auto bids = [&] {
    return events.filter([](const Event& e) { return e.bid.has_value(); }, "bids")
        .map([](const Event& e) { return *e.bid; }, "bid");
  };
  auto auctions = [&] {
    return events.filter([](const Event& e) { return e.auction.has_value(); }, "auctions")
        .map([](const Event& e) { return *e.auction; }, "auction");
  };
  constexpr int64_t kDay = 86'400'000;
  // q15/q16: a distinct count in two steps (per id and group, then per group).
  auto bid_statistics = [&](bool per_channel) {
    auto key = [per_channel](const Bid& b, int64_t id) {
      return StatsKey{per_channel ? b.channel : std::string(), utc_day(b.ts), id};
    };
    auto all = bids();
    auto by_bidder = all.key_by([key](const Bid& b) { return key(b, b.bidder); })
                         .process(DistinctCounter(DistinctCounter::Counted::kBidders, per_channel),
                                  "bids and distinct bidders");
    auto by_auction = all.key_by([key](const Bid& b) { return key(b, b.auction); })
                          .process(DistinctCounter(DistinctCounter::Counted::kAuctions, false),
                                   "distinct auctions");
    return by_bidder.union_with(by_auction)
        .key_by([](const BidStats& d) { return StatsKey{d.channel, d.day, 0}; })
        .window(TumblingEventTimeWindows::of(Duration(kDay)))
        .local_combine()  // a sum: merge = adding the deltas
        .aggregate(BidStatsSum{}, std::string("statistics per day"));
  };

  if (query == "q0") {
    events.map([](const Event& e) { return e; }, "pass-through")
        .sink_to(make_sink<Event>(sink_uri), "sink");
  } else if (query == "q1") {
    bids()
        .map(
            [](const Bid& b) {
              return Q1Row{b.auction, b.bidder, to_euro(b.price), b.ts};
            },
            "to euro")
        .sink_to(make_sink<Q1Row>(sink_uri), "sink");
  } else if (query == "q2") {
    bids()
        .filter([](const Bid& b) { return b.auction % kQ2Modulus == 0; }, "auction % 123")
        .map(
            [](const Bid& b) {
              return Q2Row{b.auction, b.price};
            },
            "project")
        .sink_to(make_sink<Q2Row>(sink_uri), "sink");
  } else if (query == "q3") {
    auto persons = events
                       .filter([](const Event& e) { return e.person && q3_person(*e.person); },
                               "persons OR/ID/CA")
                       .map([](const Event& e) { return *e.person; }, "person");
    auto category10 =
        events
            .filter([](const Event& e) { return e.auction && e.auction->category == kQ3Category; },
                    "auctions of category 10")
            .map([](const Event& e) { return *e.auction; }, "auction");
    persons.connect(category10)
        .key_by([](const Person& p) { return p.id; }, [](const Auction& a) { return a.seller; })
        .process(LocalItemSuggestion{}, "join")
        .sink_to(make_sink<Q3Row>(sink_uri), "sink");
  } else if (query == "q4") {
    auctions()
        .connect(bids())
        .key_by([](const Auction& a) { return a.id; }, [](const Bid& b) { return b.auction; })
        .process(WinningBid{}, "winning bid per closed auction")
        .key_by([](const ClosedAuction& c) { return c.category; })
        .process(CategoryAverage{}, "average per category")
        .sink_to(make_sink<Q4Row>(sink_uri), "sink");
  } else if (query == "q5") {
    auto counts = bids()
                      .key_by([](const Bid& b) { return b.auction; })
                      .window(SlidingEventTimeWindows::of(Duration(kQ5Size), Duration(kQ5Slide)))
                      .count(
                          [](const int64_t& auction, const TimeWindow& w, int64_t n) {
                            return AuctionCount{auction, n, w.start, w.end};
                          },
                          "bids per auction");
    // A count carries its window's last millisecond: the tumbling window of
    // one slide that holds it is that window's, whatever its start.
    counts.key_by([](const AuctionCount& c) { return c.window_end; })
        .window(TumblingEventTimeWindows::of(Duration(kQ5Slide)))
        .local_combine()  // a maximum with its ties: merge = adding the items
        .aggregate(
            TopAggregate<AuctionCount, count_of>{},
            [](const int64_t&, const TimeWindow&, const Top<AuctionCount>& t) { return t; },
            "max per window")
        .flat_map<Q5Row>(
            [](const Top<AuctionCount>& t, basic::Collector<Q5Row>& out) {
              for (const auto& r : t.items)
                out.collect(Q5Row{r.auction, r.num, r.window_start, r.window_end});
            },
            "rows")
        .sink_to(make_sink<Q5Row>(sink_uri), "sink");
  } else if (query == "q7") {
    bids()
        .key_by([](const Bid&) { return int64_t{0}; })
        .window(TumblingEventTimeWindows::of(Duration(kQ7Size)))
        .local_combine()  // one key: without it every bid crosses to one subtask
        .aggregate(
            TopAggregate<Bid, price_of>{},
            [](const int64_t&, const TimeWindow& w, const Top<Bid>& t) {
              std::vector<Q7Row> rows;
              for (const auto& b : t.items)
                rows.push_back(Q7Row{b.auction, b.bidder, b.price, b.ts, w.end});
              return rows;
            },
            "highest bid")
        .flat_map<Q7Row>(
            [](const std::vector<Q7Row>& rows, basic::Collector<Q7Row>& out) {
              for (const auto& r : rows) out.collect(r);
            },
            "rows")
        .sink_to(make_sink<Q7Row>(sink_uri), "sink");
  } else if (query == "q8") {
    // The two sides of a window join, tagged as the window join tags them,
    // but co-grouped: one row per person, however many auctions. Only the
    // columns the query needs are kept in the window.
    using In = JoinInput<Person, Auction>;
    auto persons = events.filter([](const Event& e) { return e.person.has_value(); }, "persons")
                       .map(
                           [](const Event& e) {
                             Person p;
                             p.id = e.person->id;
                             p.name = e.person->name;
                             return In{p, std::nullopt};
                           },
                           "person");
    auto sellers = auctions().map(
        [](const Auction& a) {
          Auction s;
          s.seller = a.seller;
          return In{std::nullopt, s};
        },
        "seller");
    persons.union_with(sellers)
        .key_by([](const In& e) { return e.left ? e.left->id : e.right->seller; })
        .window(TumblingEventTimeWindows::of(Duration(kQ8Size)))
        .process(NewUserWithAuction{}, "new users with auctions")
        .sink_to(make_sink<Q8Row>(sink_uri), "sink");
  } else if (query == "q11" || query == "q12") {
    const auto assigner =
        query == "q11"
            ? EventTimeSessionWindows::with_gap(q11_gap)
            : TumblingProcessingTimeWindows::of(q12_window);
    bids()
        .key_by([](const Bid& b) { return b.bidder; })
        .window(assigner)
        .count(
            [](const int64_t& bidder, const TimeWindow& w, int64_t n) {
              return BidderCount{bidder, n, w.start, w.end};
            },
            "bids per bidder and window")
        .sink_to(make_sink<BidderCount>(sink_uri), "sink");
  } else if (query == "q15" || query == "q16") {
    bid_statistics(query == "q16").sink_to(make_sink<BidStats>(sink_uri), "sink");
  } else if (query == "q17") {
    bids()
        .key_by([](const Bid& b) { return StatsKey{std::string(), utc_day(b.ts), b.auction}; })
        .window(TumblingEventTimeWindows::of(Duration(kDay)))
        .local_combine()  // counts, sums, min, max
        .aggregate(
            AuctionDayStats{},
            [](const StatsKey& k, const TimeWindow&, const Q17Row& r) {
              Q17Row row = r;
              row.auction = k.id;
              row.day = k.day;
              return row;
            },
            "statistics per auction and day")
        .sink_to(make_sink<Q17Row>(sink_uri), "sink");
  } else if (query == "q18") {
    using Key = std::pair<int64_t, int64_t>;
    bids()
        .key_by([](const Bid& b) { return Key{b.bidder, b.auction}; })
        .process(TopNFunction<Key, Bid>(1, q18_later), "last bid per bidder and auction")
        .map([](const Ranked<Bid>& r) { return r.row; }, "bid")
        .sink_to(make_sink<Bid>(sink_uri), "sink");
  } else if (query == "q19") {
    bids()
        .key_by([](const Bid& b) { return b.auction; })
        .process(TopNFunction<int64_t, Bid>(kQ19Top, q19_higher), "top-10 prices per auction")
        .map([](const Ranked<Bid>& r) { return Q19Row{r.rank, r.row}; }, "row")
        .sink_to(make_sink<Q19Row>(sink_uri), "sink");
  } else if (query == "q20") {
    auctions()
        .connect(bids())
        .key_by([](const Auction& a) { return a.id; }, [](const Bid& b) { return b.auction; })
        .process(BidsOnCategory{}, "bids with their category-10 auction")
        .sink_to(make_sink<Q20Row>(sink_uri), "sink");
  } else {
    throw api::JobArgError(
        "--arg query must be one of q0, q1, q2, q3, q4, q5, q7, q8, q11, q12, q15, q16, q17, q18, "
        "q19, q20; got '" + query + "'");
  }
}
