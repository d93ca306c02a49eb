// clickstream: clicks per page per event-time window.
//
// Arguments (--arg key=value):
//   source            file:///path.ndjson (required)
//   sink              where counts go: any sink URI of connectors/connectors.h, e.g.
//                     file:///path.ndjson, postgres://..., influxdb://host:port/db?measurement=page_counts
//                     &tags=page_url&fields=count&time=window_start (default stdout:)
//   dlq               where malformed/invalid events go (default stderr:)
//   late              where events too late for their window go (default: the dlq)
//   window            window size (default 60s)
//   out_of_orderness  watermark bound (default 2s)
//   allowed_lateness  how long a fired window still accepts events (default 0s)
//   sink_parallelism  writers of the sink (default 1: one output file)
//   metrics           a second sink for the counts (any sink URI), e.g. live gauges on /metrics:
//                     prometheus:clicks_per_page?labels=page_url&value=count&group=window_start
//                     (default: none)
//   from, to          backfills: only events with from <= ts < to count (epoch ms
//                     or a UTC date/time, e.g. 2026-12-05); read the source a little
//                     wider (Kafka start=ts:/stop=ts:) so that stragglers are in,
//                     and keep from/to on window boundaries so every window is whole
//                     (default: every event)
#include <chrono>

#include "connectors/connectors.h"
#include "engine/api/sluice.h"
#include "jobs/clickstream/events.h"

using namespace std::chrono_literals;
using sluice::jobs::ClickEvent;
using sluice::jobs::PageCount;

SLUICE_JOB(clickstream) {
  using namespace sluice;
  const std::string source_uri = args.require("source", "file:///path/to/clicks.ndjson");
  const std::string sink_uri = args.get("sink", "stdout:");
  const std::string dlq_uri = args.get("dlq", "stderr:");
  const std::string late_uri = args.get("late", "");
  const Duration window = args.get_duration("window", 60s);
  const Duration out_of_orderness = args.get_duration("out_of_orderness", 2s);
  const Duration allowed_lateness = args.get_duration("allowed_lateness", 0s);
  const int64_t sink_parallelism = args.get_int("sink_parallelism", 1);
  const std::string metrics_uri = args.get("metrics", "");
  if (window.count() <= 0) throw api::JobArgError("--arg window must be positive, e.g. 60s");
  if (sink_parallelism < 1) throw api::JobArgError("--arg sink_parallelism must be at least 1");
  const std::string from_arg = args.get("from", "");
  const std::string to_arg = args.get("to", "");
  int64_t from_ms = INT64_MIN, to_ms = INT64_MAX;
  if (!from_arg.empty()) from_ms = api::arg_value(parse_timestamp_ms(from_arg), "from");
  if (!to_arg.empty()) to_ms = api::arg_value(parse_timestamp_ms(to_arg), "to");
  if (from_ms >= to_ms) throw api::JobArgError("--arg from must be before --arg to");
  if ((from_ms != INT64_MIN && from_ms % window.count() != 0) || (to_ms != INT64_MAX && to_ms % window.count() != 0)) {
    throw api::JobArgError("--arg from/to must fall on window boundaries (multiples of the " +
                           format_duration(window) + " window), or the windows at the edges would be partial");
  }

  auto source = api::arg_value(connectors::source_from_uri<ClickEvent>(source_uri), "source");
  auto sink = api::arg_value(connectors::sink_from_uri<PageCount>(sink_uri), "sink");
  auto dlq = api::arg_value(connectors::sink_from_uri<DeadLetter>(dlq_uri), "dlq");
  env.set_dead_letter_sink(dlq);

  auto strategy = WatermarkStrategy<ClickEvent>::for_bounded_out_of_orderness(out_of_orderness)
                      .with_timestamp_assigner([](const ClickEvent& e) { return e.ts; });
  auto clicks = env.from_source(source, strategy, "clicks");
  clicks.uid("clicks-source");

  // Events that parse but make no sense are rejected to the dead-letter output.
  auto valid = clicks.filter(
      [](const ClickEvent& e) {
        if (e.page_url.empty()) throw InvalidRecord("empty page_url");
        if (e.ts <= 0) throw InvalidRecord("ts must be a positive epoch-millisecond time");
        return true;
      },
      "validate");
  valid.uid("validate");
  if (from_ms != INT64_MIN || to_ms != INT64_MAX) {
    // A backfill's range: events outside it belong to other runs.
    auto in_range = valid.filter([from_ms, to_ms](const ClickEvent& e) { return e.ts >= from_ms && e.ts < to_ms; },
                                 "backfill range");
    in_range.uid("backfill-range");
    valid = in_range;
  }

  OutputTag<ClickEvent> late_tag("late-clicks");
  // The key is a std::string: the combiner and the window operator keep it.
  auto windowed = valid.key_by([](const ClickEvent& e) { return e.page_url.str(); })
                      .window(TumblingEventTimeWindows::of(window))
                      .allowed_lateness(allowed_lateness);
  if (!late_uri.empty()) windowed.side_output_late_data(late_tag);
  auto counts = windowed.count(
      [](const std::string& page, const TimeWindow& w, int64_t n) {
        return PageCount{w.start, w.end, page, n};
      },
      "count per page");
  counts.uid("page-counts");
  counts.sink_to(sink, "results").uid("results-sink").set_parallelism(static_cast<int>(sink_parallelism));
  if (!metrics_uri.empty()) {
    auto metrics_sink = api::arg_value(connectors::sink_from_uri<PageCount>(metrics_uri), "metrics");
    counts.sink_to(metrics_sink, "results metrics").uid("metrics-sink");
  }

  if (!late_uri.empty()) {
    auto late_sink = api::arg_value(connectors::sink_from_uri<ClickEvent>(late_uri), "late");
    counts.get_side_output(late_tag)
        .sink_to(late_sink, "late events")
        .uid("late-sink")
        .set_parallelism(1);
  }
}
