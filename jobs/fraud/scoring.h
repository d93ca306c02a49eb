// Scoring the fraud job's decisions on the model service
// (jobs/fraud/scorer: POST /v1/score, a bearer token) through async I/O,
// and the job's own Prometheus series.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/api/sluice.h"
#include "jobs/fraud/events.h"
#include "operators/async/http/http_client.h"

namespace sluice::fraud {

/// Where and how to reach the scorer. Value type.
struct ScorerSettings {
  std::string url;    // http://host:port (the /v1/score path is added)
  std::string token;  // env:NAME or file:PATH; "" for none
  Duration attempt_timeout{300};
};

/// Scores one decision per call. Never fails a record: an answer sets
/// score/model_version; an error (refused, 5xx, unreadable, attempt
/// timeout) yields the decision unscored with the reason — the retry
/// strategy retries those (`unscored_retryable`) and, once attempts or the
/// overall timeout run out, the unscored decision goes on, so no alert is
/// ever lost to the scorer. Copied into every subtask; the HTTP client is
/// made in open(); callbacks run on the client's thread.
class ScoreDecision final : public AsyncFunction<Decision, Decision> {
 public:
  explicit ScoreDecision(ScorerSettings s) : s_(std::move(s)) {}
  ScoreDecision(const ScoreDecision& o) : s_(o.s_) {}
  Status open(RuntimeContext& ctx) override;
  void close() override { client_.reset(); }
  void async_invoke(const Decision& d, ResultFuture<Decision> result) override;
  void timeout(const Decision& d, ResultFuture<Decision> result) override;

  /// The retry predicate: an unscored decision whose error may pass.
  static bool unscored_retryable(const std::vector<Decision>& r);

 private:
  ScorerSettings s_;
  std::string authorization_;
  std::string job_;
  std::shared_ptr<http_client::HttpClient> client_;  // shared: one client per process (HttpClient::shared)
};

/// Counts a decision (rule, alert, scored) and its scoring latency in
/// the process's Prometheus registry: sluice_fraud_decisions_total and
/// sluice_fraud_scoring_seconds. Any thread.
void record_decision(const std::string& job, const Decision& d);

/// The alert of an alerting decision.
Alert alert_of(const Decision& d);

}  // namespace sluice::fraud
