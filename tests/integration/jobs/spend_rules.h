// Spending alerts from broadcast rules: the keyed broadcast function the
// broadcast-state tests run, in the operator harness
// (tests/operators/broadcast_process_test.cc) and as a whole job
// (rules_job.cc, through run-local and the cluster).
//
// Alerts once per (user, rule) when the user's spending in the rule's
// category reaches its threshold: on a spend, against every rule known; on
// a new rule, against every user's totals so far (apply_to_keyed_state).
// Whatever the interleaving of spends and rules, the alerts in the end are
// exactly the (user, rule) pairs whose final total reaches the threshold.
#pragma once

#include <cstdint>
#include <string>

#include "engine/api/sluice.h"

namespace sluice::it_jobs {

struct Spend {
  std::string user;
  std::string category;
  int64_t amount = 0;
  SLUICE_FIELDS(user, category, amount)
};

struct Rule {
  std::string id;
  std::string category;
  int64_t threshold = 0;
  SLUICE_FIELDS(id, category, threshold)
};

struct Alert {
  std::string user;
  std::string rule;
  int64_t total = 0;  // when the alert fired (depends on the interleaving)
  SLUICE_FIELDS(user, rule, total)
  bool operator==(const Alert&) const = default;
  auto operator<=>(const Alert&) const = default;
};

inline const MapStateDescriptor<std::string, Rule> kRules{"rules", {}};
inline const MapStateDescriptor<std::string, int64_t> kTotals{"totals", {}};
inline const MapStateDescriptor<std::string, bool> kAlerted{"alerted", {}};

class Thresholds final : public KeyedBroadcastProcessFunction<std::string, Spend, Rule, Alert> {
 public:
  void open(RuntimeContext& rc) override {
    totals_ = rc.get_map_state(kTotals);
    alerted_ = rc.get_map_state(kAlerted);
  }
  void process_element(const Spend& s, ReadOnlyContext& ctx, Collector<Alert>& out) override {
    int64_t total = totals_->get(s.category).value_or(0) + s.amount;
    totals_->put(s.category, total);
    for (const auto& [id, rule] : ctx.get_broadcast_state(kRules).entries()) {
      if (rule.category == s.category) check(ctx.current_key(), rule, total, out);
    }
  }
  void process_broadcast_element(const Rule& r, Context& ctx, Collector<Alert>& out) override {
    ctx.get_broadcast_state(kRules).put(r.id, r);
    ctx.apply_to_keyed_state(kTotals, [&](const std::string& user, state::MapState<std::string, int64_t>& totals) {
      if (auto t = totals.get(r.category)) check(user, r, *t, out);
    });
  }

 private:
  void check(const std::string& user, const Rule& r, int64_t total, Collector<Alert>& out) {
    if (total < r.threshold || alerted_->contains(r.id)) return;
    alerted_->put(r.id, true);
    out.collect(Alert{user, r.id, total});
  }
  state::MapState<std::string, int64_t>* totals_ = nullptr;
  state::MapState<std::string, bool>* alerted_ = nullptr;
};

}  // namespace sluice::it_jobs
