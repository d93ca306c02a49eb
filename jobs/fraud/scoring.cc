#include "jobs/fraud/scoring.h"

#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include "engine/common/json.h"
#include "engine/common/metrics.h"

namespace sluice::fraud {

namespace {

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Decision unscored(Decision d, std::string why) {
  d.scored = false;
  d.score = -1;
  d.score_error = std::move(why);
  d.latency_ms = std::max<int64_t>(0, wall_ms() - d.decided_at);
  return d;
}

struct Families {
  prometheus::Family<prometheus::Counter>& decisions;
  prometheus::Family<prometheus::Histogram>& latency;
  prometheus::Family<prometheus::Counter>& late_rules;
};
Families& families() {
  static Families* f = [] {
    auto& r = metrics::registry();
    return new Families{
        prometheus::BuildCounter()
            .Name("sluice_fraud_decisions_total")
            .Help("Decisions of the fraud job by rule, whether they alerted and whether the model scored them")
            .Register(r),
        prometheus::BuildHistogram()
            .Name("sluice_fraud_scoring_seconds")
            .Help("Time from a fraud decision to its score (or to giving up on the scorer)")
            .Register(r),
        prometheus::BuildCounter()
            .Name("sluice_fraud_rule_updates_late_total")
            .Help("Rule updates that reached a rule-check subtask after it had decided past their effective time "
                  "(applied from their arrival on), per subtask")
            .Register(r),
    };
  }();
  return *f;
}

}  // namespace

fraud_scorer::ScorerFn<Decision, Decision> score_function(const ScorerSettings& s) {
  fraud_scorer::ScorerClientOptions o;
  o.endpoint = s.endpoint;
  o.token = s.token;
  o.deadline = s.attempt_timeout;
  o.tls_ca = s.tls_ca;
  return fraud_scorer::ScorerFn<Decision, Decision>(
      o,
      [](const Decision& d) { return fraud_scorer::ScoreInput{d.decision_id, d.user, d.features}; },
      [](const Decision& d, Result<fraud_scorer::ScoreResult> r) {
        if (!r.is_ok()) {
          // A wrong token or a refused request will not pass on a retry.
          const StatusCode c = r.status().code();
          const bool refused = c == StatusCode::kPermissionDenied || c == StatusCode::kInvalidArgument;
          return unscored(d, std::string(refused ? "refused: " : "") + r.status().to_string());
        }
        Decision scored = d;
        scored.scored = true;
        scored.score = r->score;
        scored.model_version = r->model_version;
        scored.score_error.clear();
        scored.latency_ms = std::max<int64_t>(0, wall_ms() - d.decided_at);
        return scored;
      });
}

bool unscored_retryable(const std::vector<Decision>& r) {
  return !r.empty() && !r.front().scored && r.front().score_error.rfind("refused:", 0) != 0;
}

void record_decision(const std::string& job, const Decision& d) {
  auto& f = families();
  f.decisions
      .Add({{"job", job}, {"rule", d.rule}, {"alert", d.alert ? "true" : "false"}, {"scored", d.scored ? "true" : "false"}})
      .Increment();
  static const prometheus::Histogram::BucketBoundaries kBuckets{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                                0.1,   0.25,   0.5,   1,    2.5,   5};
  f.latency.Add({{"job", job}, {"outcome", d.scored ? "scored" : "unscored"}}, kBuckets)
      .Observe(static_cast<double>(d.latency_ms) / 1000.0);
}

void record_late_rule_update(const std::string& job) { families().late_rules.Add({{"job", job}}).Increment(); }

Alert alert_of(const Decision& d) {
  Alert a;
  a.alert_id = d.decision_id;
  a.rule = d.rule;
  a.rule_version = d.rule_version;
  a.user = d.user;
  a.trigger_id = d.trigger_id;
  a.event_ids = d.event_ids;
  a.ts = d.ts;
  a.severity = !d.scored || d.score >= 0.8 ? "high" : "medium";
  a.score = d.score;
  a.scored = d.scored;
  a.amount = d.amount;
  a.merchant = d.merchant;
  a.device = d.device;
  a.country = d.country;
  a.reason = d.reason;
  return a;
}

}  // namespace sluice::fraud
