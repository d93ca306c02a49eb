// it_join_job: two NDJSON inputs of JoinEvent joined by key on event time,
// for the join tests (tests/integration/join_test.cc), which compare the
// output with a nested-loop join of the inputs.
//
// Arguments (--arg key=value):
//   left, right  file:///path.ndjson[?rate=N] (required)
//   sink         file:///path.ndjson (default stdout:)
//   mode         interval (default) | inner | left-outer
//   lower, upper interval bounds in ms, inclusive (default -20, 20)
//   window       tumbling (default) | sliding | session; size (ms, default
//                50), slide (default 20), gap (session, default 15)
//   disorder     the sources' bounded out-of-orderness in ms (default 100)
//   pass-through 1: a keyed co-process that emits every left record once
//                instead of the interval join (the benchmark's baseline;
//                lower and upper are read and unused)
#include <optional>
#include <string>

#include "connectors/connectors.h"
#include "engine/api/sluice.h"
#include "tests/integration/jobs/join_records.h"

using sluice::api::or_arg_error;
using sluice::it_jobs::JoinEvent;
using sluice::it_jobs::JoinRow;

namespace {

class Pairs final : public sluice::ProcessJoinFunction<JoinEvent, JoinEvent, JoinRow> {
 public:
  void process_element(const JoinEvent& l, const JoinEvent& r, Context&,
                       sluice::Collector<JoinRow>& out) override {
    out.collect(JoinRow{l.key, l.id, r.id});
  }
};

class PassThrough final : public sluice::KeyedCoProcessFunction<int64_t, JoinEvent, JoinEvent, JoinRow> {
 public:
  void process_element1(const JoinEvent& l, Context&, sluice::Collector<JoinRow>& out) override {
    out.collect(JoinRow{l.key, l.id, -1});
  }
  void process_element2(const JoinEvent&, Context&, sluice::Collector<JoinRow>&) override {}
};

int64_t int_arg(const sluice::JobArgs& args, const std::string& name, int64_t dflt) {
  std::string v = args.get(name, std::to_string(dflt));
  try {
    return std::stoll(v);
  } catch (const std::exception&) {
    throw std::invalid_argument("--arg " + name + "=" + v + " is not a number of milliseconds");
  }
}

}  // namespace

SLUICE_JOB(it_join_job) {
  using namespace sluice;
  using namespace std::chrono;
  auto left_source = or_arg_error(connectors::source_from_uri<JoinEvent>(args.require("left", "file:///left.ndjson")), "left");
  auto right_source = or_arg_error(connectors::source_from_uri<JoinEvent>(args.require("right", "file:///right.ndjson")), "right");
  auto sink = or_arg_error(connectors::sink_from_uri<JoinRow>(args.get("sink", "stdout:")), "sink");
  const auto disorder = milliseconds(int_arg(args, "disorder", 100));
  auto strategy = WatermarkStrategy<JoinEvent>::for_bounded_out_of_orderness(disorder).with_timestamp_assigner(
      [](const JoinEvent& e) { return e.ts; });
  auto left = env.from_source(left_source, strategy, "left");
  left.uid("left");
  auto right = env.from_source(right_source, strategy, "right");
  right.uid("right");
  auto key = [](const JoinEvent& e) { return e.key; };

  const std::string mode = args.get("mode", "interval");
  DataStream<JoinRow> rows = [&]() -> DataStream<JoinRow> {
    if (mode == "interval") {
      const auto lower = milliseconds(int_arg(args, "lower", -20));
      const auto upper = milliseconds(int_arg(args, "upper", 20));
      if (args.get("pass-through", "0") == "1") {
        return left.key_by(key).connect(right.key_by(key)).process(PassThrough{}, "pass-through");
      }
      return left.key_by(key)
          .interval_join(right.key_by(key))
          .between(lower, upper)
          .process(Pairs{}, "interval-join");
    }
    const std::string kind = args.get("window", "tumbling");
    window::WindowAssigner assigner =
        kind == "sliding"   ? SlidingEventTimeWindows::of(milliseconds(int_arg(args, "size", 50)),
                                                          milliseconds(int_arg(args, "slide", 20)))
        : kind == "session" ? EventTimeSessionWindows::with_gap(milliseconds(int_arg(args, "gap", 15)))
        : kind == "tumbling" ? TumblingEventTimeWindows::of(milliseconds(int_arg(args, "size", 50)))
                             : throw std::invalid_argument("--arg window=" + kind + ": use tumbling, sliding or session");
    if (mode == "inner") {
      return left.join(right).where(key).equal_to(key).window(assigner).apply(
          [](const JoinEvent& l, const JoinEvent& r) { return JoinRow{l.key, l.id, r.id}; }, "window-join");
    }
    if (mode == "left-outer") {
      return left.left_outer_join(right).where(key).equal_to(key).window(assigner).apply(
          [](const JoinEvent& l, const std::optional<JoinEvent>& r) { return JoinRow{l.key, l.id, r ? r->id : -1}; },
          "window-join");
    }
    throw std::invalid_argument("--arg mode=" + mode + ": use interval, inner or left-outer");
  }();
  rows.uid("join");
  rows.sink_to(sink, "rows").uid("rows").set_parallelism(1);
}
