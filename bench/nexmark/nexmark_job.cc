// nexmark: the standard Nexmark queries over `sluice gen --kind nexmark`
// events, one per run (--arg query=q0|q1|q2|q3|q5|q7).
//
// Arguments (--arg key=value):
//   source  file:///path.ndjson or kafka://host:port/topic (required)
//   query   q0 pass-through, q1 currency conversion, q2 selection, q3 local
//           item suggestion (incremental join), q5 hot items (sliding
//           window), q7 highest bid (tumbling window); default q0
//   sink    any sink URI of connectors/connectors.h, or discard: (count and
//           drop, as Flink's Nexmark runs use a blackhole sink); default discard:
//   dlq     malformed events (default stderr:)
#include <algorithm>
#include <atomic>
#include <chrono>

#include "bench/nexmark/queries.h"
#include "connectors/connectors.h"
#include "engine/api/sluice.h"

using namespace std::chrono_literals;
using namespace sluice::nexmark;

namespace {

/// Drops every record (a blackhole sink: the query's cost without the
/// output's). Stateless, so trivially exactly-once.
template <class T>
class DiscardSink final : public sluice::runtime::Sink<T> {
  class Writer final : public sluice::runtime::SinkWriter<T> {
   public:
    sluice::Status write(const T&, sluice::EventTime) override { return sluice::Status::ok(); }
  };

 public:
  std::string description() const override { return "discard"; }
  std::unique_ptr<sluice::runtime::SinkWriter<T>> create_writer() const override {
    return std::make_unique<Writer>();
  }
};

template <class T>
std::shared_ptr<const sluice::runtime::Sink<T>> make_sink(const std::string& uri) {
  if (uri == "discard:") return std::make_shared<DiscardSink<T>>();
  return sluice::api::or_arg_error(sluice::connectors::sink_from_uri<T>(uri), "sink");
}

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
class TopAggregate final : public sluice::state::AggregateFunction<T, Top<T>, Top<T>> {
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
int64_t count_of(const AuctionCount& c) { return c.num; }
int64_t price_of(const Bid& b) { return b.price; }

/// q3's join, keyed by person id = seller: the person once seen, auctions
/// waiting for their seller until then (Flink's regular join keeps both).
class LocalItemSuggestion final
    : public sluice::join::KeyedCoProcessFunction<int64_t, Person, Auction, Q3Row> {
 public:
  void open(sluice::basic::RuntimeContext& rc) override {
    person_ = rc.get_state(sluice::state::ValueStateDescriptor<Person>{"person", {}});
    pending_ =
        rc.get_list_state(sluice::state::ListStateDescriptor<Auction>{"pending-auctions", {}});
  }
  void process_element1(const Person& p, Context&, sluice::basic::Collector<Q3Row>& out) override {
    person_->update(p);
    for (const Auction& a : pending_->get()) out.collect(Q3Row{p.name, p.city, p.state, a.id});
    pending_->clear();
  }
  void process_element2(const Auction& a, Context&, sluice::basic::Collector<Q3Row>& out) override {
    if (auto p = person_->value()) {
      out.collect(Q3Row{p->name, p->city, p->state, a.id});
    } else {
      pending_->add(a);
    }
  }

 private:
  sluice::state::ValueState<Person>* person_ = nullptr;
  sluice::state::ListState<Auction>* pending_ = nullptr;
};

}  // namespace

SLUICE_JOB(nexmark) {
  using namespace sluice;
  const std::string query = args.get("query", "q0");
  const std::string sink_uri = args.get("sink", "discard:");
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
    auto auctions =
        events
            .filter([](const Event& e) { return e.auction && e.auction->category == kQ3Category; },
                    "auctions of category 10")
            .map([](const Event& e) { return *e.auction; }, "auction");
    persons.connect(auctions)
        .key_by([](const Person& p) { return p.id; }, [](const Auction& a) { return a.seller; })
        .process(LocalItemSuggestion{}, "join")
        .sink_to(make_sink<Q3Row>(sink_uri), "sink");
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
  } else {
    throw api::JobArgError("--arg query must be one of q0, q1, q2, q3, q5, q7; got '" + query +
                           "'");
  }
}
