#include "jobs/fraud/scoring.h"

#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include "connectors/http/push_config.h"
#include "engine/common/json.h"
#include "engine/common/json_read.h"
#include "engine/common/metrics.h"

namespace sluice::fraud {

namespace {

struct ScoreRequest {
  std::string request_id;
  std::string user;
  std::map<std::string, double> features;
  SLUICE_FIELDS(request_id, user, features)
};
struct ScoreReply {
  std::string request_id;
  double score = 0;
  std::string model_version;
  SLUICE_FIELDS(request_id, score, model_version)
};

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
    };
  }();
  return *f;
}

}  // namespace

Status ScoreDecision::open(RuntimeContext& ctx) {
  job_ = ctx.info().job_name;
  if (s_.url.rfind("http://", 0) != 0 && s_.url.rfind("https://", 0) != 0) {
    return Status::invalid_argument("--arg scorer must be http://host:port or https://host:port, not '" + s_.url + "'");
  }
  if (!s_.token.empty()) {
    SLUICE_ASSIGN_OR_RETURN(std::string token, http_sink::SecretRef::parse(s_.token).resolve("--arg scorer_token"));
    authorization_ = "Bearer " + token;
  }
  http_client::HttpClientOptions o;
  o.name = "fraud-scorer";
  SLUICE_ASSIGN_OR_RETURN(client_, http_client::HttpClient::shared(o));
  return Status::ok();
}

bool ScoreDecision::unscored_retryable(const std::vector<Decision>& r) {
  return !r.empty() && !r.front().scored && r.front().score_error.rfind("refused:", 0) != 0;
}

void ScoreDecision::async_invoke(const Decision& d, ResultFuture<Decision> result) {
  http_client::Request req;
  req.method = http_client::Method::kPost;
  req.url = s_.url + "/v1/score";
  req.headers.emplace_back("Content-Type", "application/json");
  if (!authorization_.empty()) req.headers.emplace_back("Authorization", authorization_);
  req.body = to_json(ScoreRequest{d.decision_id, d.user, d.features});
  req.timeout = s_.attempt_timeout;
  Status st = client_->submit(std::move(req), [d, result](Result<http_client::Response> r) mutable {
    if (!r.is_ok()) {
      result.complete(unscored(d, r.status().to_string()));
      return;
    }
    if (!r->ok()) {
      // 4xx other than 408/429 will not pass on a retry: a wrong token, a bad request.
      const bool final = r->status >= 400 && r->status < 500 && r->status != 408 && r->status != 429;
      result.complete(unscored(d, std::string(final ? "refused: " : "") + http_client::describe_status(r->status) +
                                      ": " + r->body.substr(0, 200)));
      return;
    }
    thread_local JsonParser parser;
    ScoreReply reply;
    std::string err = parser.parse(r->body, reply);
    if (!err.empty()) {
      result.complete(unscored(d, "unreadable score: " + err));
      return;
    }
    Decision scored = d;
    scored.scored = true;
    scored.score = reply.score;
    scored.model_version = reply.model_version;
    scored.score_error.clear();
    scored.latency_ms = std::max<int64_t>(0, wall_ms() - d.decided_at);
    result.complete(std::move(scored));
  });
  if (!st.is_ok()) result.complete(unscored(d, st.to_string()));
}

void ScoreDecision::timeout(const Decision& d, ResultFuture<Decision> result) {
  result.complete(unscored(d, "scorer timed out"));
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
