#include "jobs/fraud/detect.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <spdlog/spdlog.h>

#include "engine/common/sha256.h"
#include "jobs/fraud/scoring.h"

namespace sluice::fraud {

Pattern<Activity> stuffing_pattern(const StuffingSettings& s) {
  const double threshold = s.amount_threshold;
  return Pattern<Activity>::begin("fails", AfterMatchSkipStrategy::skip_past_last_event())
      .where([](const Activity& a) { return a.is_login() && !a.success; })
      .times_or_more(static_cast<int>(s.fail_count))
      .followed_by("buy")
      .where([threshold](const Activity& a) { return a.is_transaction() && a.amount >= threshold && a.new_device; })
      .within(std::chrono::milliseconds(s.within_ms));
}

void StuffingMatches::process_match(const Match<Activity>& m, Context&, Collector<Signal>& out) {
  Signal s;
  s.rule = "stuffing_purchase";
  for (const auto& f : m["fails"]) s.event_ids.push_back(f.id);
  s.failed_logins = static_cast<int32_t>(s.event_ids.size());
  s.activity = m["buy"].front();
  s.event_ids.push_back(s.activity.id);
  out.collect(s);
}

std::string decision_id(const std::string& rule, const std::string& user, const std::string& trigger) {
  return sha256_hex(rule + "\n" + user + "\n" + trigger).substr(0, 24);
}

const MapStateDescriptor<int64_t, RuleSet>& RuleCheck::rules_state() {
  static const MapStateDescriptor<int64_t, RuleSet> d{"fraud-rules"};
  return d;
}

void RuleCheck::open(RuntimeContext& ctx) {
  subtask_ = ctx.subtask_index();
  job_ = ctx.info().job_name;
  prev_login_ = ctx.get_state(ValueStateDescriptor<SeenLogin>{"rules-prev-login"});
  small_ = ctx.get_state(ValueStateDescriptor<std::vector<Small>>{"rules-small-purchases"});
  waiting_ = ctx.get_list_state(ListStateDescriptor<Signal>{"rules-waiting-signals"});
}

const RuleSet& RuleCheck::rules_at(int64_t ts, const ReadOnlyBroadcastState<int64_t, RuleSet>& state) {
  if (state.size() != cached_size_) {  // versions are only ever added: a new size is a new version
    by_time_.clear();
    by_time_.push_back(defaults_);
    for (auto& [version, rs] : state.entries()) by_time_.push_back(rs);
    std::stable_sort(by_time_.begin(), by_time_.end(), [](const RuleSet& a, const RuleSet& b) {
      return std::tie(a.effective_ts, a.version) < std::tie(b.effective_ts, b.version);
    });
    cached_size_ = state.size();
  }
  const RuleSet* best = &by_time_.front();
  for (const RuleSet& rs : by_time_) {
    if (rs.effective_ts > ts) break;
    best = &rs;
  }
  return *best;
}

void RuleCheck::process_broadcast_element(const RuleUpdate& u, Context& ctx, Collector<Decision>&) {
  auto& state = ctx.get_broadcast_state(rules_state());
  // Every subtask applies the same updates the same way; only subtask 0
  // reports refused ones, so a bad update is one dead letter.
  std::string wrong = RuleSet::check(u);
  if (wrong.empty() && state.contains(u.version)) wrong = "version " + std::to_string(u.version) + " was applied already";
  if (!wrong.empty()) {
    if (subtask_ == 0) throw InvalidRecord("rule update refused: " + wrong);
    return;
  }
  // Fields left out keep the values of the version before this one.
  RuleSet base = defaults_;
  for (auto& [version, rs] : state.entries()) {
    if (version < u.version && version > base.version) base = rs;
  }
  state.put(u.version, base.updated(u));
  // Late: this subtask judged events at or after its effective time with
  // the rules before it. The state stays the same on every subtask (the
  // version keeps its effective_ts); what was decided is not revisited.
  const int64_t passed = std::max(decided_to_, ctx.current_watermark());
  if (u.effective_ts <= passed) {
    record_late_rule_update(job_);
    spdlog::warn("fraud rule check {}: rules version {} (effective_ts {}) arrived late, after event time {} was "
                 "decided (its rules stream was idle); it applies to what is decided from now on",
                 subtask_, u.version, u.effective_ts, passed);
  }
}

void RuleCheck::process_element(const Signal& s, ReadOnlyContext& ctx, Collector<Decision>& out) {
  // Wait while the rules stream may still send an update for this event
  // time; a user with signals waiting keeps its order.
  const bool rules_behind = !ctx.broadcast_idle() && ctx.broadcast_watermark() < s.activity.ts;
  if (rules_behind || (ctx.timer_service().event_timer_count() > 0 && !waiting_->get().empty())) {
    waiting_->add(s);
    ctx.timer_service().register_event_time_timer(s.activity.ts);
    return;
  }
  judge(s, ctx, out);
}

void RuleCheck::on_timer(int64_t, OnTimerContext& ctx, Collector<Decision>& out) {
  // The watermark passed the timer: the rules stream passed it too or is
  // idle (the operator's watermark leaves only an idle input out).
  std::vector<Signal> waiting = waiting_->get();
  const int64_t wm = ctx.current_watermark();
  size_t n = 0;
  while (n < waiting.size() && waiting[n].activity.ts <= wm) judge(waiting[n++], ctx, out);
  if (n == waiting.size()) waiting_->clear();
  else if (n > 0) waiting_->update(std::vector<Signal>(waiting.begin() + static_cast<std::ptrdiff_t>(n), waiting.end()));
}

void RuleCheck::judge(const Signal& s, ReadOnlyContext& ctx, Collector<Decision>& out) {
  decided_to_ = std::max(decided_to_, s.activity.ts);
  const RuleSet& rs = rules_at(s.activity.ts, ctx.get_broadcast_state(rules_state()));
  const int64_t now = ctx.current_processing_time();
  if (!s.rule.empty()) {
    decide(s.rule, rs, s.activity, s.event_ids, now, out, s.failed_logins);
    return;
  }
  if (s.activity.is_login()) on_login(s.activity, rs, now, out);
  else on_transaction(s.activity, rs, now, out);
}

void RuleCheck::on_login(const Activity& a, const RuleSet& rs, int64_t now, Collector<Decision>& out) {
  if (!a.success) return;
  if (auto prev = prev_login_->value(); prev && prev->country != a.country) {
    const double km = distance_km(prev->country, a.country);
    const double hours = static_cast<double>(a.ts - prev->ts) / 3'600'000.0;
    if (km >= rs.travel_min_km && (hours <= 0 || km / hours > rs.travel_max_kmh)) {
      decide("impossible_travel", rs, a, {prev->id, a.id}, now, out);
    }
  }
  prev_login_->update(SeenLogin{a.id, a.country, a.ts});
}

void RuleCheck::on_transaction(const Activity& a, const RuleSet& rs, int64_t now, Collector<Decision>& out) {
  if (a.amount <= rs.card_test_max_amount) {
    auto small = small_->value_or({});
    std::erase_if(small, [&](const Small& x) { return x.ts <= a.ts - rs.card_test_window_ms; });
    small.push_back(Small{a.id, a.ts});
    if (static_cast<int64_t>(small.size()) >= rs.card_test_count) {
      std::vector<std::string> ids;
      for (const auto& x : small) ids.push_back(x.id);
      decide("card_testing", rs, a, std::move(ids), now, out);
      small_->clear();
    } else {
      small_->update(small);
    }
  }
  if (a.errors_before >= rs.error_storm_count) {
    std::vector<std::string> ids = a.error_ids;
    ids.push_back(a.id);
    decide("error_storm", rs, a, std::move(ids), now, out);
  }
}

void RuleCheck::decide(const std::string& rule, const RuleSet& rs, const Activity& trigger,
                       std::vector<std::string> events, int64_t now, Collector<Decision>& out, int32_t failed_logins) {
  Decision d;
  d.decision_id = decision_id(rule, trigger.user, trigger.id);
  d.rule = rule;
  d.rule_version = rs.version;
  d.user = trigger.user;
  d.trigger_id = trigger.id;
  d.event_ids = std::move(events);
  d.ts = trigger.ts;
  d.amount = trigger.is_transaction() ? trigger.amount : 0;
  d.merchant = trigger.merchant;
  d.device = trigger.device;
  d.country = trigger.is_login() ? trigger.country : trigger.login_country;
  d.alert = true;
  d.reason = rule;
  if (rs.allows_user(trigger.user)) {
    d.alert = false;
    d.reason = "allow-listed user (rules v" + std::to_string(rs.version) + ")";
  } else if (trigger.is_transaction() && rs.allows_merchant(trigger.merchant)) {
    d.alert = false;
    d.reason = "allow-listed merchant (rules v" + std::to_string(rs.version) + ")";
  }
  d.features["amount_log"] = std::log1p(std::max(0.0, d.amount));
  d.features["new_device"] = trigger.is_transaction() && trigger.new_device ? 1 : 0;
  d.features["api_errors"] = trigger.errors_before;
  d.features["failed_logins"] = failed_logins;
  d.features["rule_" + rule] = 1;
  d.score_error = "not scored";
  d.decided_at = now;
  out.collect(d);
}

}  // namespace sluice::fraud
