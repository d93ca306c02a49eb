// bench_passthrough: the stateless job of the latency workload (bench/run.sh,
// workload 4): clicks from a source, rebalanced to one sink, nothing kept.
//
// Arguments: source, sink, dlq (URIs as for jobs/clickstream); probe=true
// adds a discard sink named "at-source" chained right behind the source, so
// the sinks' latency histograms split the delay into "up to the source's
// poll" (generator, broker, fetch) and "the rest" (exchange, sink).
#include "bench/discard_sink.h"
#include "connectors/connectors.h"
#include "engine/api/sluice.h"

namespace sluice_bench {

struct Click {
  std::string user_id;
  std::string page_url;
  std::string event_type;
  int64_t ts = 0;
  SLUICE_FIELDS(user_id, page_url, event_type, ts)
};

template <class T>
T or_arg_error(sluice::Result<T> r, const std::string& key) {
  if (!r.is_ok()) throw sluice::api::JobArgError("--arg " + key + ": " + r.status().message());
  return std::move(r).value();
}

}  // namespace sluice_bench

SLUICE_JOB(bench_passthrough) {
  using namespace sluice;
  using sluice_bench::Click;
  auto source = sluice_bench::or_arg_error(
      connectors::source_from_uri<Click>(args.require("source", "kafka://host:port/topic")), "source");
  auto sink = sluice_bench::or_arg_error(connectors::sink_from_uri<Click>(args.get("sink", "stdout:")), "sink");
  auto dlq = sluice_bench::or_arg_error(connectors::sink_from_uri<DeadLetter>(args.get("dlq", "stderr:")), "dlq");
  env.set_dead_letter_sink(dlq);
  auto strategy = WatermarkStrategy<Click>::for_bounded_out_of_orderness(std::chrono::seconds(0))
                      .with_timestamp_assigner([](const Click& c) { return c.ts; });
  auto clicks = env.from_source(source, strategy, "clicks").uid("clicks");
  if (args.get("probe", "false") == "true") {
    clicks.sink_to(std::make_shared<sluice_bench::DiscardSink<Click>>(), "at-source").uid("at-source");
  }
  clicks.rebalance().sink_to(sink, "sink").uid("sink").set_parallelism(1);
}
