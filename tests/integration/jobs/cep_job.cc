// it_cep_job: a fraud-style CEP pattern per user, built for the CEP
// integration tests (tests/integration/cep_test.cc), which run it
// undisturbed, killed and restored, and rescaled, and compare the outputs.
//
// Input: NDJSON {"user":"u1","kind":"fail|ok|buy","amount":0,"device":3,"ts":1700000000123}.
// Pattern (`pattern`):
//   simple  three failed logins, then a purchase of at least 500, within
//           `within` (default 60 s), skip past the last event;
//   fraud   the fraud team's: five or more failed logins, then a purchase of
//           at least 900 from a device none of those logins used (an
//           iterative condition), within `within` (default 10 min), skip
//           past the last event.
// Output: one row per match
// {"user":..,"fails":[ts,..],"fail_devices":[..],"buy_ts":..,"amount":..,"device":..}; partial matches
// that ran out of time go to `timeouts` as {"user":..,"fails":[..],"timeout_ts":..}.
//
// Arguments (--arg key=value):
//   source            file:///path.ndjson[?rate=N] (required)
//   sink, timeouts    file:///path.ndjson (default stdout: / stderr:)
//   dlq               malformed and late events (default stderr:)
//   pattern           simple (default) or fraud
//   within            default 60s (simple), 10min (fraud)
//   out_of_orderness  watermark bound (default 2s)
#include <chrono>

#include "connectors/connectors.h"
#include "engine/api/sluice.h"

using namespace std::chrono_literals;

namespace sluice_it {

struct Activity {
  std::string user;
  std::string kind;
  int64_t amount = 0;
  int64_t device = 0;
  int64_t ts = 0;
  SLUICE_FIELDS(user, kind, amount, device, ts)
};

struct Alert {
  std::string user;
  std::vector<int64_t> fails;
  std::vector<int64_t> fail_devices;
  int64_t buy_ts = 0;
  int64_t amount = 0;
  int64_t device = 0;
  SLUICE_FIELDS(user, fails, fail_devices, buy_ts, amount, device)
};

struct Expired {
  std::string user;
  std::vector<int64_t> fails;
  int64_t timeout_ts = 0;
  SLUICE_FIELDS(user, fails, timeout_ts)
};

const sluice::OutputTag<Expired> kExpired("expired");

class Alerts final : public sluice::PatternProcessFunction<Activity, Alert> {
 public:
  void process_match(const sluice::Match<Activity>& m, Context&, sluice::Collector<Alert>& out) override {
    Alert a;
    a.user = m["buy"].front().user;
    for (const auto& f : m["fails"]) {
      a.fails.push_back(f.ts);
      a.fail_devices.push_back(f.device);
    }
    a.buy_ts = m["buy"].front().ts;
    a.amount = m["buy"].front().amount;
    a.device = m["buy"].front().device;
    out.collect(a);
  }
  void process_timed_out_match(const sluice::Match<Activity>& m, Context& ctx) override {
    Expired e;
    e.user = m["fails"].front().user;
    for (const auto& f : m["fails"]) e.fails.push_back(f.ts);
    e.timeout_ts = ctx.timestamp();
    ctx.output(kExpired, e);
  }
};

template <class T>
T or_arg_error(sluice::Result<T> r, const std::string& key) {
  if (!r.is_ok()) throw sluice::api::JobArgError("--arg " + key + ": " + r.status().message());
  return std::move(r).value();
}

}  // namespace sluice_it

SLUICE_JOB(it_cep) {
  using namespace sluice;
  using namespace sluice_it;
  const std::string source_uri = args.require("source", "file:///path/to/activity.ndjson");
  auto source = or_arg_error(connectors::source_from_uri<Activity>(source_uri), "source");
  auto sink = or_arg_error(connectors::sink_from_uri<Alert>(args.get("sink", "stdout:")), "sink");
  auto timeouts = or_arg_error(connectors::sink_from_uri<Expired>(args.get("timeouts", "stderr:")), "timeouts");
  auto dlq = or_arg_error(connectors::sink_from_uri<DeadLetter>(args.get("dlq", "stderr:")), "dlq");
  const std::string kind = args.get("pattern", "simple");
  if (kind != "simple" && kind != "fraud") throw api::JobArgError("--arg pattern: simple or fraud, not '" + kind + "'");
  const bool fraud = kind == "fraud";
  const Duration within = args.get_duration("within", fraud ? Duration(10min) : Duration(60s));
  const Duration out_of_orderness = args.get_duration("out_of_orderness", 2s);
  env.set_dead_letter_sink(dlq);

  auto events = env.from_source(source,
                                WatermarkStrategy<Activity>::for_bounded_out_of_orderness(out_of_orderness)
                                    .with_timestamp_assigner([](const Activity& a) { return a.ts; }),
                                "activity");
  events.uid("activity-source");

  auto simple = Pattern<Activity>::begin("fails", AfterMatchSkipStrategy::skip_past_last_event())
                    .where([](const Activity& a) { return a.kind == "fail"; })
                    .times(3)
                    .followed_by("buy")
                    .where([](const Activity& a) { return a.kind == "buy" && a.amount >= 500; })
                    .within(within);
  auto new_device = Pattern<Activity>::begin("fails", AfterMatchSkipStrategy::skip_past_last_event())
                        .where([](const Activity& a) { return a.kind == "fail"; })
                        .times_or_more(5)
                        .followed_by("buy")
                        .where([](const Activity& a) { return a.kind == "buy" && a.amount >= 900; })
                        .where([](const Activity& a, const MatchContext<Activity>& ctx) {
                          for (const Activity& f : ctx.events("fails"))
                            if (f.device == a.device) return false;
                          return true;
                        })
                        .within(within);
  const auto& pattern = fraud ? new_device : simple;
  auto alerts = CEP::pattern(events.key_by([](const Activity& a) { return a.user; }), pattern)
                    .process(Alerts(), "fraud pattern");
  alerts.uid("fraud-cep");
  alerts.get_side_output(kExpired).sink_to(timeouts, "timeouts").uid("timeouts-sink").set_parallelism(1);
  alerts.sink_to(sink, "alerts").uid("alerts-sink").set_parallelism(1);
}
