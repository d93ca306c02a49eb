// Scoring the fraud job's decisions on the model service
// (jobs/fraud/scorer: POST /v1/score, a bearer token) through async I/O,
// and the job's own Prometheus series.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/api/sluice.h"
#include "jobs/fraud/events.h"
#include "jobs/fraud/scorer/client.h"

namespace sluice::fraud {

/// Where and how to reach the scorer. Value type.
struct ScorerSettings {
  std::string endpoint;  // grpc://host:port, grpcs://, http://host:port or https://
  std::string token;     // env:NAME, file:PATH or the token
  Duration attempt_timeout{300};
  std::string tls_ca;
};

/// Scores one decision per call on the scorer (fraud_scorer::ScorerFn).
/// Never fails a record: an answer sets score/model_version; anything
/// else (down, 5xx, the deadline, the operator's timeout, a refusal)
/// yields the decision unscored with the reason, which the retry strategy
/// retries (`unscored_retryable`, not refusals) and, once attempts or the
/// overall timeout run out, lets go on — no alert is ever lost to the
/// scorer.
fraud_scorer::ScorerFn<Decision, Decision> score_function(const ScorerSettings& s);
/// The retry predicate: an unscored decision whose error may pass.
bool unscored_retryable(const std::vector<Decision>& r);

/// Counts a decision (rule, alert, scored) and its scoring latency in
/// the process's Prometheus registry: sluice_fraud_decisions_total and
/// sluice_fraud_scoring_seconds. Any thread.
void record_decision(const std::string& job, const Decision& d);
/// Counts a rule update that reached a rule-check subtask late (after
/// event time at or past its effective_ts was decided there):
/// sluice_fraud_rule_updates_late_total, once per subtask. Any thread.
void record_late_rule_update(const std::string& job);

/// The alert of an alerting decision.
Alert alert_of(const Decision& d);

}  // namespace sluice::fraud
