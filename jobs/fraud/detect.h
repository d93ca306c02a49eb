// The detection steps of the fraud job: the credential-stuffing pattern
// (CEP) and the rule check, which applies the versioned rules of the
// `rules` stream (broadcast state) to every enriched activity and pattern
// match of a user and makes the decisions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/api/sluice.h"
#include "jobs/fraud/events.h"
#include "jobs/fraud/rules.h"

namespace sluice::fraud {

/// The stuffing pattern's settings (from --arg).
struct StuffingSettings {
  int64_t fail_count = RuleDefaults::kFailCount;
  double amount_threshold = RuleDefaults::kAmountThreshold;
  int64_t within_ms = RuleDefaults::kWithinMs;
};

/// "fail_count or more failed logins, then a purchase of at least
/// amount_threshold from a device the user has not bought with before,
/// all within within_ms", skip past the last event (one match per
/// purchase).
Pattern<Activity> stuffing_pattern(const StuffingSettings& s);

/// A match of the stuffing pattern as a signal for the rule check.
class StuffingMatches final : public PatternProcessFunction<Activity, Signal> {
 public:
  void process_match(const Match<Activity>& m, Context& ctx, Collector<Signal>& out) override;
};

/// The rule check. Input 1: signals keyed by user (enriched activities in
/// event-time order, and pattern matches); input 2: rule updates,
/// broadcast. Every signal is judged by the rules in effect at its event
/// time: the version with the latest effective_ts at or before it (rule
/// updates are kept as versions in broadcast state, the same in every
/// subtask). A signal at event time t is judged only once the rules
/// stream's watermark has passed t or while that stream is idle; until
/// then it waits in keyed state (in arrival order, an event-time timer at
/// t), and so do later signals of its user. An update whose effective_ts
/// is at or before event time this subtask has already decided (it came
/// after its rules stream went idle) is late: it applies to what is judged
/// from then on, is logged and counted (sluice_fraud_rule_updates_late_total).
/// Keyed state: the previous successful login (impossible travel), the
/// recent small purchases (card testing), the waiting signals. Decisions
/// carry a stable id. One copy per subtask; task thread only.
class RuleCheck final : public KeyedBroadcastProcessFunction<std::string, Signal, RuleUpdate, Decision> {
 public:
  /// The broadcast state: version -> rule set.
  static const MapStateDescriptor<int64_t, RuleSet>& rules_state();

  explicit RuleCheck(RuleSet defaults) : defaults_(std::move(defaults)) {}
  RuleCheck(const RuleCheck& o) : defaults_(o.defaults_) {}

  void open(RuntimeContext& ctx) override;
  void process_element(const Signal& s, ReadOnlyContext& ctx, Collector<Decision>& out) override;
  void process_broadcast_element(const RuleUpdate& u, Context& ctx, Collector<Decision>& out) override;
  void on_timer(int64_t ts, OnTimerContext& ctx, Collector<Decision>& out) override;

 private:
  /// A recent small purchase (card testing).
  struct Small {
    std::string id;
    int64_t ts = 0;
    SLUICE_FIELDS(id, ts)
  };
  struct SeenLogin {
    std::string id;
    std::string country;
    int64_t ts = 0;
    SLUICE_FIELDS(id, country, ts)
  };
  const RuleSet& rules_at(int64_t ts, const ReadOnlyBroadcastState<int64_t, RuleSet>& state);
  void judge(const Signal& s, ReadOnlyContext& ctx, Collector<Decision>& out);
  void decide(const std::string& rule, const RuleSet& rs, const Activity& trigger, std::vector<std::string> events,
              int64_t now, Collector<Decision>& out, int32_t failed_logins = 0);
  void on_login(const Activity& a, const RuleSet& rs, int64_t now, Collector<Decision>& out);
  void on_transaction(const Activity& a, const RuleSet& rs, int64_t now, Collector<Decision>& out);

  RuleSet defaults_;
  int subtask_ = 0;
  std::string job_;
  int64_t decided_to_ = INT64_MIN;  // the latest event time judged on this subtask (since open)
  std::vector<RuleSet> by_time_;  // cache of the broadcast state, by (effective_ts, version)
  size_t cached_size_ = SIZE_MAX;
  state::ValueState<SeenLogin>* prev_login_ = nullptr;
  state::ValueState<std::vector<Small>>* small_ = nullptr;
  state::ListState<Signal>* waiting_ = nullptr;  // signals waiting for the rules stream, in arrival order
};

/// The stable id of the decision (and alert) about `trigger` by `rule`.
std::string decision_id(const std::string& rule, const std::string& user, const std::string& trigger);

}  // namespace sluice::fraud
