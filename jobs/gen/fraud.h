// The fraud generator behind `sluice gen --kind fraud`: three NDJSON
// streams (logins, API errors, transactions) of background traffic with
// injected fraud scenarios, and the ground truth beside them.
//
// The streams and the rules of jobs/fraud are designed together (the
// defaults in jobs/fraud/rules.h), so that what the job must alert is
// exact:
//  - background traffic never triggers a rule, by construction: a user
//    fails at most min(2, fail_count - 1) logins in any 10 minutes, has at
//    most min(3, error_storm_count - 1) API errors in any error window,
//    always logs in from one home country, and spends at least 3.00;
//  - every injected scenario triggers exactly one alert of its rule
//    (credential stuffing then a purchase from a new device, a
//    card-testing burst, impossible travel, an error storm), each on a
//    user of its own, with its values clearly inside the rule;
//  - near misses (one step short of each rule, clearly outside it) must
//    not alert: fewer failed logins, a known device, a purchase below the
//    threshold or too late, one small transaction too few, a feasible
//    journey, one API error too few.
// Ground truth lines: {"scenario","variant","user","alert","rule",
// "trigger","events","ts"} — `trigger` is the event that completes (or
// would complete) the sequence.
//
// Lines come out per stream in arrival order: a share of events arrive up
// to `max_delay` late (out of order, never late for a job whose watermark
// bound is larger); a share of background lines are malformed (not JSON,
// a missing field, a field of the wrong type) for the dead-letter output.
// Seeded: the same options give the same lines.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "engine/common/status.h"
#include "engine/common/time.h"

namespace sluice::gen {

/// The three streams, in the order of FraudOptions' outputs.
enum class FraudStream { kLogins = 0, kApiErrors = 1, kTransactions = 2 };
const char* fraud_stream_name(FraudStream s);  // logins, api_errors, transactions

/// Value type; defaults in brackets.
struct FraudOptions {
  int64_t count = 100'000;  ///< [100 000] background events over the three streams
  uint64_t seed = 42;
  int64_t users = 2'000;  ///< [2 000] background users
  int64_t start_ts = 1'700'000'000'000;
  Duration duration{2 * 3'600'000};  ///< [2 h] event-time span of the background traffic
  int64_t scenarios = 6;             ///< [6] injected scenarios of each kind (and as many near misses)
  double out_of_order_fraction = 0.1;
  Duration max_delay{1'000};  ///< [1 s] largest out-of-order delay (under the job's watermark bound)
  double malformed_fraction = 0.001;
  // The job's rule settings the scenarios are built around (its --arg).
  int64_t fail_count = 5;
  double amount_threshold = 500.0;
  double rate = 0;  ///< > 0: paced, this many lines per wall-clock second over the three streams
  /// [false] Each scenario placed so that its trigger falls within the
  /// background's span (its history, up to 40 minutes of it, before the
  /// start, emitted first): live runs shorter than the 25 minutes the
  /// scenarios need otherwise (latency measurements).
  bool triggers_in_run = false;
  Status validate() const;
};

/// Lines by stream and kind.
struct FraudSummary {
  int64_t lines[3] = {0, 0, 0};
  int64_t malformed = 0;
  int64_t out_of_order = 0;
  int64_t scenarios = 0;    // alerting scenarios
  int64_t near_misses = 0;  // non-alerting ones
  int64_t total() const { return lines[0] + lines[1] + lines[2]; }
};

/// Runs the generator: `emit(stream, line)` for every event line (no
/// newline), `truth(line)` for every ground-truth line. `stop` is polled
/// between lines.
Result<FraudSummary> run_fraud(const FraudOptions& options,
                               const std::function<Status(FraudStream, const std::string&)>& emit,
                               const std::function<Status(const std::string&)>& truth,
                               const std::function<bool()>& stop = nullptr);

}  // namespace sluice::gen
