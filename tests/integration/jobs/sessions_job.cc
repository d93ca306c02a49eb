// it_sessions_job: events per user per event-time session window. Built
// for the integration tests (tests/integration/sessions_test.cc), which
// compare its output with a sessionisation computed in the test.
//
// Input: NDJSON objects with at least {"user_id":"u1","ts":1700000000123}
// (other fields are ignored). Output: one row per session,
// {"user_id":..,"session_start":..,"session_end":..,"count":N}, where a
// session is [first ts, last ts + gap).
//
// Arguments (--arg key=value):
//   source            file:///path.ndjson (required)
//   sink              file:///path.ndjson, stdout: (default stdout:)
//   dlq               malformed and late events (default stderr:)
//   gap               session gap (default 30s)
//   out_of_orderness  watermark bound (default 0s)
#include <chrono>

#include "connectors/connectors.h"
#include "engine/api/sluice.h"

using namespace std::chrono_literals;

namespace sluice_it {

struct UserEvent {
  std::string user_id;
  int64_t ts = 0;  // event time, epoch milliseconds
  SLUICE_FIELDS(user_id, ts)
};

struct SessionCount {
  std::string user_id;
  int64_t session_start = 0;
  int64_t session_end = 0;
  int64_t count = 0;
  SLUICE_FIELDS(user_id, session_start, session_end, count)
};

template <class T>
T or_arg_error(sluice::Result<T> r, const std::string& key) {
  if (!r.is_ok()) throw sluice::api::JobArgError("--arg " + key + ": " + r.status().message());
  return std::move(r).value();
}

}  // namespace sluice_it

SLUICE_JOB(it_sessions) {
  using namespace sluice;
  using sluice_it::SessionCount;
  using sluice_it::UserEvent;
  const std::string source_uri = args.require("source", "file:///path/to/events.ndjson");
  const std::string sink_uri = args.get("sink", "stdout:");
  const std::string dlq_uri = args.get("dlq", "stderr:");
  const Duration gap = args.get_duration("gap", 30s);
  const Duration out_of_orderness = args.get_duration("out_of_orderness", 0s);
  if (gap.count() <= 0) throw api::JobArgError("--arg gap must be positive");
  if (out_of_orderness.count() < 0)
    throw api::JobArgError("--arg out_of_orderness must not be negative");

  auto source =
      sluice_it::or_arg_error(connectors::source_from_uri<UserEvent>(source_uri), "source");
  auto sink = sluice_it::or_arg_error(connectors::sink_from_uri<SessionCount>(sink_uri), "sink");
  auto dlq = sluice_it::or_arg_error(connectors::sink_from_uri<DeadLetter>(dlq_uri), "dlq");
  env.set_dead_letter_sink(dlq);

  auto strategy = WatermarkStrategy<UserEvent>::for_bounded_out_of_orderness(out_of_orderness)
                      .with_timestamp_assigner([](const UserEvent& e) { return e.ts; });
  auto events = env.from_source(source, strategy, "events");
  events.uid("events-source");

  auto sessions = events.key_by([](const UserEvent& e) { return e.user_id; })
                      .window(EventTimeSessionWindows::with_gap(gap))
                      .count(
                          [](const std::string& user, const TimeWindow& w, int64_t n) {
                            return SessionCount{user, w.start, w.end, n};
                          },
                          "count per session");
  sessions.uid("session-counts");
  sessions.sink_to(sink, "sessions").uid("sessions-sink").set_parallelism(1);
}
