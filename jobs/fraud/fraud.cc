// fraud: multi-source fraud detection — logins, API errors and payments
// correlated per user, suspicious sequences decided by versioned rules,
// scored on a model service, alerted and audited.
//
//   logins ───────┐                                        ┌▶ CEP: stuffing then purchase from a new device ─┐
//   transactions ─┼▶ enrich (per user, event-time order: ──┤                                                 ├▶ rule check ◀── rules (broadcast)
//   api_errors ───┘  latest login, new device,             └──────────────── activities ─────────────────────┘   │
//                    errors of the window before)                                                                 ▼
//                                                       audit trail (every decision) ◀─ score (async I/O) ◀─ decisions
//                                                       alerts ─▶ Kafka (exactly-once), SIEMs (HTTP push)
//
// Arguments (--arg key=value); README.md has the details:
//   logins, api_errors, transactions   sources: file:///path.ndjson or kafka://host:port/topic (required)
//   rules             rule updates (file or kafka://…/rules); default none: the defaults below only
//   audit             every decision (default stdout:), e.g. file:///lake/audit/?partition=dt:ts:date,hour:ts:hour
//   alerts            the alerts (default stdout:), e.g. kafka://host:port/alerts?delivery=exactly-once&key=alert_id
//   siem              HTTP push sinks for the alerts, separated by spaces (Splunk HEC, Elasticsearch bulk, webhook)
//   dlq               malformed, late and refused records (default stderr:)
//   scorer            grpc://host:port or http://host:port of the scorer (jobs/fraud/scorer); default none:
//                     decisions stay unscored
//   scorer_token      env:NAME or file:PATH (the scorer's bearer token; required with scorer)
//   scorer_ca         grpcs/https: the CA of the scorer's certificate
//   score_timeout (1s), score_attempt_timeout (300ms), score_attempts (3), score_capacity (200)
//   fail_count (5), amount_threshold (500), within (10m)   the stuffing pattern
//   device_ttl (30d)  how long a device stays known after a purchase
//   error_window (5m) API errors counted before a transaction
//   travel_max_kmh (900), travel_min_km (500), card_test_count (5), card_test_max_amount (2),
//   card_test_window (2m), error_storm_count (20)   rule version 0 (the rules stream updates them)
//   out_of_orderness (2s), idleness (0s: never)   watermarks of the three event sources;
//                     <source>_out_of_orderness, <source>_idleness for one of them (e.g. api_errors_idleness)
//   max_drift (10s)   watermark alignment: a source more than this ahead of the others (event time) waits (0s: off)
//   rules_idleness (1s) how long a quiet rules stream holds decisions back (0s: until its next update or end)
#include <chrono>
#include <sstream>

#include "connectors/connectors.h"
#include "engine/api/sluice.h"
#include "jobs/fraud/detect.h"
#include "jobs/fraud/enrich.h"
#include "jobs/fraud/events.h"
#include "jobs/fraud/rules.h"
#include "jobs/fraud/scoring.h"

using namespace std::chrono_literals;

namespace sluice::fraud {
namespace {

/// A duration argument that must not be negative: `key`, else `fallback_key`, else `fallback`.
Duration non_negative(const api::JobArgs& args, const std::string& key, const std::string& fallback_key,
                      Duration fallback) {
  Duration d = fallback;
  for (const std::string& k : {fallback_key, key}) {
    d = args.get_duration(k, d);
    if (d.count() < 0) throw api::JobArgError("--arg " + k + " must not be negative, e.g. 100ms");
  }
  return d;
}

/// One event source: its watermark bound and idleness from `out_of_orderness`
/// and `idleness`, or `<key>_out_of_orderness` and `<key>_idleness` for it
/// alone (a live topic with little disorder, a quiet one that must not hold
/// event time back).
template <class T>
DataStream<T> read(api::StreamExecutionEnvironment& env, const api::JobArgs& args, const std::string& key,
                   int64_t T::*ts) {
  auto source = api::arg_value(
      connectors::source_from_uri<T>(args.require(key, "file:///path/" + key + ".ndjson or kafka://host:port/" + key)),
      key);
  const Duration bound = non_negative(args, key + "_out_of_orderness", "out_of_orderness", 2s);
  const Duration idleness = non_negative(args, key + "_idleness", "idleness", 0ms);
  auto strategy = WatermarkStrategy<T>::for_bounded_out_of_orderness(bound)
                      .with_timestamp_assigner([ts](const T& v) { return v.*ts; })
                      .with_idleness(idleness);
  // The three sources stay within `max_drift` of each other in event time:
  // one read ahead would wait in the enrich step's buffers.
  const Duration max_drift = non_negative(args, "max_drift", "max_drift", 10s);
  if (max_drift.count() > 0) strategy = strategy.with_watermark_alignment("fraud-events", max_drift);
  auto s = env.from_source(source, strategy, key);
  s.uid(key + "-source");
  return s;
}

void require_user(const std::string& user, const std::string& id) {
  if (user.empty()) throw InvalidRecord("empty user in event '" + id + "'");
  if (id.empty()) throw InvalidRecord("empty id");
}

RuleSet rules_from_args(const api::JobArgs& args) {
  RuleSet r;
  r.travel_max_kmh = args.get_double("travel_max_kmh", RuleDefaults::kTravelMaxKmh);
  r.travel_min_km = args.get_double("travel_min_km", RuleDefaults::kTravelMinKm);
  r.card_test_count = args.get_int("card_test_count", RuleDefaults::kCardTestCount);
  r.card_test_max_amount = args.get_double("card_test_max_amount", RuleDefaults::kCardTestMaxAmount);
  r.card_test_window_ms = args.get_duration("card_test_window", Duration(RuleDefaults::kCardTestWindowMs)).count();
  r.error_storm_count = args.get_int("error_storm_count", RuleDefaults::kErrorStormCount);
  RuleUpdate as_update{1, 0, r.travel_max_kmh, r.travel_min_km, r.card_test_count, r.card_test_max_amount,
                       r.card_test_window_ms, r.error_storm_count, std::nullopt, std::nullopt};
  std::string wrong = RuleSet::check(as_update);
  if (!wrong.empty()) throw api::JobArgError("--arg rules: " + wrong);
  return r;
}

/// A source that ends at once: the rules stream when --arg rules is not
/// given, so the graph (and its savepoints) stay the same with or without.
template <class T>
class EmptySource final : public runtime::Source<T> {
  class Reader final : public runtime::SourceReader<T> {
   public:
    Status open(runtime::OperatorContext&, runtime::SourceOutput<T>&) override { return Status::ok(); }
    Result<runtime::PollStatus> poll_next(runtime::SourceOutput<T>&) override {
      return runtime::PollStatus::kEndOfInput;
    }
  };

 public:
  std::string description() const override { return "empty"; }
  bool bounded() const override { return true; }
  std::unique_ptr<runtime::SourceReader<T>> create_reader() const override { return std::make_unique<Reader>(); }
};

std::vector<std::string> split_spaces(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

}  // namespace
}  // namespace sluice::fraud

SLUICE_JOB(fraud) {
  using namespace sluice;
  using namespace sluice::fraud;
  StuffingSettings stuffing;
  stuffing.fail_count = args.get_int("fail_count", RuleDefaults::kFailCount);
  stuffing.amount_threshold = args.get_double("amount_threshold", RuleDefaults::kAmountThreshold);
  stuffing.within_ms = args.get_duration("within", Duration(RuleDefaults::kWithinMs)).count();
  const int64_t device_ttl = args.get_duration("device_ttl", Duration(RuleDefaults::kDeviceTtlMs)).count();
  const int64_t error_window = args.get_duration("error_window", Duration(RuleDefaults::kErrorWindowMs)).count();
  if (stuffing.fail_count < 1 || stuffing.fail_count > 100) throw api::JobArgError("--arg fail_count must be 1..100");
  if (!(stuffing.amount_threshold >= 0)) throw api::JobArgError("--arg amount_threshold must not be negative");
  if (stuffing.within_ms <= 0) throw api::JobArgError("--arg within must be positive, e.g. 10m");
  if (device_ttl <= 0 || error_window <= 0) throw api::JobArgError("--arg device_ttl and error_window must be positive");
  const RuleSet defaults = rules_from_args(args);

  env.set_dead_letter_sink(api::arg_value(connectors::sink_from_uri<DeadLetter>(args.get("dlq", "stderr:")), "dlq"));

  // --- the three sources, checked -------------------------------------------------
  auto logins = read<Login>(env, args, "logins", &Login::ts)
                    .map(
                        [](const Login& l) {
                          require_user(l.user, l.id);
                          Activity a;
                          a.kind = Activity::kLogin;
                          a.id = l.id;
                          a.user = l.user;
                          a.device = l.device;
                          a.ts = l.ts;
                          a.ip = l.ip;
                          a.country = l.country;
                          a.success = l.success;
                          return a;
                        },
                        "login activity");
  logins.uid("login-activity");
  auto txns = read<Transaction>(env, args, "transactions", &Transaction::ts)
                  .filter(
                      [](const Transaction& t) {
                        require_user(t.user, t.id);
                        if (!(t.amount >= 0)) throw InvalidRecord("negative or missing amount in '" + t.id + "'");
                        return true;
                      },
                      "valid transactions");
  txns.uid("valid-transactions");
  auto errors = read<ApiError>(env, args, "api_errors", &ApiError::ts)
                    .filter(
                        [](const ApiError& e) {
                          require_user(e.user, e.id);
                          return true;
                        },
                        "valid api errors");
  errors.uid("valid-api-errors");

  // --- per user in event-time order: latest login, new device, errors --------------
  auto txn_activity = txns.map(
      [](const Transaction& t) {
        Activity a;
        a.kind = Activity::kTransaction;
        a.id = t.id;
        a.user = t.user;
        a.device = t.device;
        a.ts = t.ts;
        a.amount = t.amount;
        a.currency = t.currency;
        a.merchant = t.merchant;
        return a;
      },
      "transaction activity");
  txn_activity.uid("transaction-activity");
  auto activity = logins.union_with(txn_activity)
                      .key_by([](const Activity& a) { return a.user; })
                      .connect(errors.key_by([](const ApiError& e) { return e.user; }))
                      .process(EnrichFunction(device_ttl, error_window), "enrich");
  activity.uid("enrich");

  // --- the stuffing pattern, and the rules over everything ---------------------------
  // The enrich step's output is already partitioned by user (it emits each
  // user's activities from that user's state): the pattern and the rule
  // check take it as it is, chained into the enrich task — no shuffle.
  auto by_user = activity.reinterpret_as_keyed([](const Activity& a) { return a.user; });
  auto matches = CEP::pattern(by_user, stuffing_pattern(stuffing)).process(StuffingMatches(), "stuffing pattern");
  matches.uid("stuffing-cep");
  auto signals = activity
                     .map(
                         [](const Activity& a) {
                           Signal s;
                           s.activity = a;
                           return s;
                         },
                         "activity signals")
                     .uid("activity-signals");
  DataStream<RuleUpdate> rule_updates = [&] {
    const std::string uri = args.get("rules", "");
    if (uri.empty()) {
      // No rules stream: an empty one keeps the graph the same.
      return env.from_source(std::shared_ptr<const runtime::Source<RuleUpdate>>(std::make_shared<EmptySource<RuleUpdate>>()),
                             WatermarkStrategy<RuleUpdate>::for_bounded_out_of_orderness(0ms)
                                 .with_timestamp_assigner([](const RuleUpdate& u) { return u.effective_ts; }),
                             "rules");
    }
    return env.from_source(api::arg_value(connectors::source_from_uri<RuleUpdate>(uri), "rules"),
                           WatermarkStrategy<RuleUpdate>::for_bounded_out_of_orderness(0ms)
                               .with_timestamp_assigner([](const RuleUpdate& u) { return u.effective_ts; })
                               .with_idleness(non_negative(args, "rules_idleness", "rules_idleness", 1s)),
                           "rules");
  }();
  rule_updates.uid("rules-source").set_parallelism(1);
  auto decisions = signals.union_with(matches)
                       .reinterpret_as_keyed([](const Signal& s) { return s.activity.user; })
                       .connect(rule_updates.broadcast(RuleCheck::rules_state()))
                       .process(RuleCheck(defaults), "rule check");
  decisions.uid("rule-check");

  // --- scoring (async I/O, off the hot path: decisions only) -------------------------
  const std::string scorer = args.get("scorer", "");
  DataStream<Decision> scored = decisions;
  if (!scorer.empty()) {
    ScorerSettings ss;
    ss.endpoint = scorer;
    ss.token = args.require("scorer_token", "env:NAME or file:PATH holding the scorer's bearer token");
    ss.tls_ca = args.get("scorer_ca", "");
    ss.attempt_timeout = args.get_duration("score_attempt_timeout", 300ms);
    AsyncOptions o;
    o.mode = OutputMode::kUnordered;
    o.timeout = args.get_duration("score_timeout", 1s);
    o.capacity = static_cast<int>(args.get_int("score_capacity", 200));
    const int attempts = static_cast<int>(args.get_int("score_attempts", 3));
    if (attempts < 1) throw api::JobArgError("--arg score_attempts must be at least 1");
    auto retry = AsyncRetryStrategy<Decision>::exponential_backoff(attempts, 20ms, 200ms)
                     .retry_if_result(&unscored_retryable);
    scored = AsyncDataStream::wait(decisions, score_function(ss), o, retry, "score");
    scored.uid("score");
  }
  auto recorded = scored.map(
      [job = env.graph().job_name](const Decision& d) {
        record_decision(job, d);
        return d;
      },
      "decision metrics");
  recorded.uid("decision-metrics");

  // --- outputs -------------------------------------------------------------------------
  recorded.sink_to(api::arg_value(connectors::sink_from_uri<Decision>(args.get("audit", "stdout:")), "audit"), "audit")
      .uid("audit-sink");
  auto alerts = recorded.filter([](const Decision& d) { return d.alert; }, "alerting").map(&alert_of, "alerts");
  alerts.uid("alerts");
  alerts.sink_to(api::arg_value(connectors::sink_from_uri<Alert>(args.get("alerts", "stdout:")), "alerts"), "alerts")
      .uid("alerts-sink");
  int n = 0;
  for (const std::string& uri : split_spaces(args.get("siem", ""))) {
    alerts.sink_to(api::arg_value(connectors::sink_from_uri<Alert>(uri), "siem"), "siem " + std::to_string(n))
        .uid("siem-sink-" + std::to_string(n));
    ++n;
  }
}
