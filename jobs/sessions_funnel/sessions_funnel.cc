// sessions_funnel: page views grouped into sessions per user, and a
// conversion funnel followed in near real time.
//
//   page views ─▶ validate ─▶ key by user ─┬▶ session windows ─▶ sessions sink (warehouse / data lake)
//                                          └▶ funnel function ─▶ per-step, per-minute counts ─▶ funnel sink (push API)
//                                                    └────────────▶ Prometheus counters (metrics=true)
//
// Arguments (--arg key=value):
//   source            file:///path.ndjson or kafka://host:port/topic (required)
//   sessions          where session rows go (default stdout:): postgres://...?table=sessions&mode=upsert
//                     &key=session_id&delete_when=retracted, file:///dir/?partition=dt:session_start:date,...,
//                     file:///path.ndjson, kafka://...
//   funnel_sink       where funnel updates go (default stdout:): http://host:port/path (push API), file://...
//   funnel            the funnel's steps, path patterns with '*' (default /,/product/*,/cart,/checkout)
//   dlq               malformed and invalid events (default stderr:)
//   late              events too late for the sessions or the funnel (default: the dlq)
//   gap               inactivity that ends a session (default 30m)
//   allowed_lateness  how long an ended session still takes late events (default 5m)
//   out_of_orderness  watermark bound (default 5s)
//   max_pages         pages listed per session (default 50; the rest are counted)
//   funnel_update_interval  how often changed per-minute counts are sent (default 1s)
//   funnel_lateness   how long a minute's counts still take corrections (default 24h)
//   metrics           true: funnel counters and gauges on /metrics for Prometheus (default false)
//   sink_parallelism  writers of the sessions and funnel sinks (default: the job's parallelism)
#include <chrono>
#include <memory>

#include "connectors/connectors.h"
#include "engine/api/sluice.h"
#include "jobs/sessions_funnel/events.h"
#include "jobs/sessions_funnel/funnel.h"
#include "jobs/sessions_funnel/sessions.h"

using namespace std::chrono_literals;

namespace sluice::jobs {
namespace {

/// Entered and dropped counts of one step in one minute.
struct FunnelTotals {
  int64_t entered = 0;
  int64_t dropped = 0;
  int64_t last_event_ts = 0;
  SLUICE_FIELDS(entered, dropped, last_event_ts)
};

class SumDeltas final : public AggregateFunction<FunnelDelta, FunnelTotals, FunnelTotals> {
 public:
  FunnelTotals create_accumulator() const override { return {}; }
  void add(FunnelTotals& acc, const FunnelDelta& d) const override {
    acc.entered += d.entered;
    acc.dropped += d.dropped;
    acc.last_event_ts = std::max(acc.last_event_ts, d.event_ts);
  }
  FunnelTotals get_result(const FunnelTotals& acc) const override { return acc; }
  void merge(FunnelTotals& into, const FunnelTotals& o) const override {
    into.entered += o.entered;
    into.dropped += o.dropped;
    into.last_event_ts = std::max(into.last_event_ts, o.last_event_ts);
  }
};

bool valid_event_type(const std::string& t) {
  return t == "view" || t == "add_to_cart" || t == "checkout" || t == "purchase";
}

template <class T>
void sink_with_parallelism(DataStream<T> stream, const std::string& uri, const std::string& arg,
                           const std::string& name, const std::string& uid, int64_t parallelism) {
  auto sink = api::arg_value(connectors::sink_from_uri<T>(uri), arg);
  auto node = stream.sink_to(sink, name);
  node.uid(uid);
  if (parallelism > 0) node.set_parallelism(static_cast<int>(parallelism));
}

}  // namespace
}  // namespace sluice::jobs

SLUICE_JOB(sessions_funnel) {
  using namespace sluice;
  using namespace sluice::jobs;
  const std::string source_uri = args.require("source", "file:///path/to/pageviews.ndjson or kafka://host:port/topic");
  const std::string sessions_uri = args.get("sessions", "stdout:");
  const std::string funnel_uri = args.get("funnel_sink", "stdout:");
  const std::string dlq_uri = args.get("dlq", "stderr:");
  const std::string late_uri = args.get("late", "");
  const Duration gap = args.get_duration("gap", 30min);
  const Duration lateness = args.get_duration("allowed_lateness", 5min);
  const Duration out_of_orderness = args.get_duration("out_of_orderness", 5s);
  const int64_t max_pages = args.get_int("max_pages", 50);
  const Duration update_interval = args.get_duration("funnel_update_interval", 1s);
  const Duration funnel_lateness = args.get_duration("funnel_lateness", 24h);
  const bool metrics = args.get_bool("metrics", false);
  const int64_t sink_parallelism = args.get_int("sink_parallelism", 0);
  auto spec = std::make_shared<const FunnelSpec>(
      api::arg_value(FunnelSpec::parse(args.get("funnel", "/,/product/*,/cart,/checkout")), "funnel"));
  if (gap.count() <= 0) throw api::JobArgError("--arg gap must be positive, e.g. 30m");
  if (lateness.count() < 0 || out_of_orderness.count() < 0 || funnel_lateness.count() < 0) {
    throw api::JobArgError("--arg allowed_lateness, out_of_orderness and funnel_lateness must not be negative");
  }
  if (update_interval.count() <= 0) throw api::JobArgError("--arg funnel_update_interval must be positive, e.g. 1s");
  if (max_pages < 0) throw api::JobArgError("--arg max_pages must not be negative");
  if (sink_parallelism < 0) throw api::JobArgError("--arg sink_parallelism must be at least 1");

  auto source = api::arg_value(connectors::source_from_uri<PageView>(source_uri), "source");
  env.set_dead_letter_sink(api::arg_value(connectors::sink_from_uri<DeadLetter>(dlq_uri), "dlq"));

  auto strategy = WatermarkStrategy<PageView>::for_bounded_out_of_orderness(out_of_orderness)
                      .with_timestamp_assigner([](const PageView& v) { return v.ts; });
  auto views = env.from_source(source, strategy, "page views");
  views.uid("pageviews-source");

  // Events that parse but make no sense are rejected to the dead-letter output.
  auto valid = views.filter(
      [](const PageView& v) {
        if (v.user_id.empty()) throw InvalidRecord("empty user_id");
        if (page_path(v.page_url).empty() || page_path(v.page_url).front() != '/') {
          throw InvalidRecord("page_url has no path: '" + v.page_url + "'");
        }
        if (!valid_event_type(v.event_type)) {
          throw InvalidRecord("event_type '" + v.event_type + "' is not one of view, add_to_cart, checkout, purchase");
        }
        if (v.ts <= 0) throw InvalidRecord("ts must be a positive epoch-millisecond time");
        return true;
      },
      "validate");
  valid.uid("validate");
  auto by_user = valid.key_by([](const PageView& v) { return v.user_id; });

  // Sessions: merging event-time session windows; late events that merge
  // sessions withdraw the rows of the sessions they absorb.
  // Without a late sink, too-late events are dead letters (the window
  // operator's and the funnel function's own).
  OutputTag<PageView> late_sessions("late-for-sessions");
  auto windowed = by_user.window(EventTimeSessionWindows::with_gap(gap)).allowed_lateness(lateness);
  if (!late_uri.empty()) windowed.side_output_late_data(late_sessions);
  auto sessions = windowed.aggregate_with_retractions(
      SessionAggregate(spec, static_cast<size_t>(max_pages)),
      [spec](const std::string& user, const TimeWindow&, const SessionAccumulator& acc) {
        return session_record(*spec, user, acc);
      },
      [spec](const std::string& user, const TimeWindow&, const SessionAccumulator& acc,
             const TimeWindow&) -> std::optional<SessionRecord> { return retraction(*spec, user, acc); },
      "sessions");
  sessions.uid("sessions");
  sink_with_parallelism(sessions, sessions_uri, "sessions", "sessions sink", "sessions-sink", sink_parallelism);

  // The funnel: per user as events arrive, then per step and minute.
  const std::string late_funnel = late_uri.empty() ? "" : "late-for-funnel";
  auto deltas = by_user.process(FunnelFunction(spec, gap, lateness, late_funnel), "funnel");
  deltas.uid("funnel");
  auto updates = deltas.key_by([](const FunnelDelta& d) { return d.step; })
                     .window(TumblingEventTimeWindows::of(1min))
                     .allowed_lateness(funnel_lateness)
                     .early_firing(update_interval)
                     .aggregate(
                         SumDeltas(),
                         [spec](const int32_t& step, const TimeWindow& w, const FunnelTotals& t) {
                           return FunnelUpdate{w.start, step, spec->name(static_cast<size_t>(step)), t.entered,
                                               t.dropped, t.last_event_ts};
                         },
                         "funnel per minute");
  updates.uid("funnel-minutes");
  sink_with_parallelism(updates, funnel_uri, "funnel_sink", "funnel sink", "funnel-sink", sink_parallelism);

  if (metrics) {
    // Counters cannot go down: corrections count separately ("withdrawn"),
    // and every delta touches both series so both exist for PromQL.
    auto counts = deltas.flat_map<FunnelCount>(
        [spec](const FunnelDelta& d, Collector<FunnelCount>& out) {
          const std::string& name = spec->name(static_cast<size_t>(d.step));
          if (d.entered != 0) out.collect({d.step, name, "entered", std::max<int64_t>(d.entered, 0), std::max<int64_t>(-d.entered, 0)});
          if (d.dropped != 0) out.collect({d.step, name, "dropped", std::max<int64_t>(d.dropped, 0), std::max<int64_t>(-d.dropped, 0)});
        },
        "funnel counts");
    counts.uid("funnel-counts");
    counts.sink_to(api::arg_value(connectors::sink_from_uri<FunnelCount>(
                                    "prometheus:sluice_funnel_users_total?type=counter&labels=step,step_name,kind"
                                    "&value=added&help=Sessions+that+entered+or+dropped+off+at+each+funnel+step"),
                                "metrics"),
                   "funnel counters")
        .uid("funnel-counters");
    counts.sink_to(api::arg_value(connectors::sink_from_uri<FunnelCount>(
                                    "prometheus:sluice_funnel_users_withdrawn_total?type=counter&labels=step,step_name,"
                                    "kind&value=withdrawn&help=Funnel+counts+withdrawn+by+late+or+out-of-order+events"),
                                "metrics"),
                   "funnel corrections")
        .uid("funnel-withdrawn");
    updates.sink_to(api::arg_value(connectors::sink_from_uri<FunnelUpdate>(
                                     "prometheus:sluice_funnel_minute_entered?labels=step,step_name&value=entered"
                                     "&group=minute&help=Sessions+entering+each+step+in+the+latest+minute"),
                                 "metrics"),
                    "funnel gauges")
        .uid("funnel-gauges");
  }

  // Too-late events: a side output of each, to the late sink.
  if (!late_uri.empty()) {
    auto late = sessions.get_side_output(late_sessions)
                    .map([](const PageView& v) { return LatePageView{"sessions", v.user_id, v.page_url, v.event_type, v.device, v.ts}; },
                         "late for sessions");
    late.uid("late-sessions");
    late.union_with(deltas.get_side_output(OutputTag<LatePageView>(late_funnel)))
        .sink_to(api::arg_value(connectors::sink_from_uri<LatePageView>(late_uri), "late"), "late events")
        .uid("late-sink")
        .set_parallelism(1);
  }
}
