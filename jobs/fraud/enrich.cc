#include "jobs/fraud/enrich.h"

#include <algorithm>
#include <limits>

namespace sluice::fraud {

void EnrichFunction::open(RuntimeContext& ctx) {
  pending_ = ctx.get_ordered_map_state(OrderedMapStateDescriptor<Slot, Activity>{"enrich-pending"});
  errors_ = ctx.get_map_state(MapStateDescriptor<std::string, std::vector<TxnError>>{"enrich-txn-errors"});
  devices_ = ctx.get_map_state(MapStateDescriptor<std::string, int64_t>{"known-devices"});
  last_login_ = ctx.get_state(ValueStateDescriptor<LastLogin>{"last-login"});
}

void EnrichFunction::process_element1(const Activity& a, Context& ctx, Collector<Activity>&) {
  const int64_t wm = ctx.timer_service().current_watermark();
  if (a.ts <= wm) {
    throw InvalidRecord("late: event time " + std::to_string(a.ts) + " is at or behind the watermark " +
                        std::to_string(wm) + " (raise --arg out_of_orderness)");
  }
  pending_->put(Slot{a.ts, a.kind, a.id}, a);
  ctx.timer_service().register_event_time_timer(a.ts);
}

void EnrichFunction::process_element2(const TxnError& e, Context& ctx, Collector<Activity>&) {
  // The pair carries the transaction's time: the transaction is still pending.
  if (ctx.timestamp() <= ctx.timer_service().current_watermark()) {
    throw InvalidRecord("late API error pair for transaction " + e.txn_id);
  }
  auto list = errors_->get(e.txn_id).value_or(std::vector<TxnError>{});
  list.push_back(e);
  errors_->put(e.txn_id, list);
}

void EnrichFunction::on_timer(int64_t ts, OnTimerContext&, Collector<Activity>& out) {
  std::vector<std::pair<Slot, Activity>> due;
  for (const auto& [slot, a] : pending_->range(KeyRange<Slot>::below(Slot{ts + 1, 0, std::string()}))) {
    due.emplace_back(slot, a);
  }
  for (auto& [slot, a] : due) {
    pending_->remove(slot);
    enrich(a);
    out.collect(a);
  }
}

void EnrichFunction::enrich(Activity& a) {
  if (a.is_login()) {
    if (a.success) last_login_->update(LastLogin{a.id, a.device, a.country, a.ts});
    return;
  }
  if (auto login = last_login_->value()) {
    a.login_device = login->device;
    a.login_country = login->country;
    a.login_ts = login->ts;
  }
  // Known devices: forget those not used for a purchase within the TTL.
  std::vector<std::pair<std::string, int64_t>> devices = devices_->entries();
  bool known = false;
  for (const auto& [device, last] : devices) {
    if (last <= a.ts - device_ttl_ms_) devices_->remove(device);
    else if (device == a.device) known = true;
  }
  a.new_device = !known;
  if (devices.size() >= kMaxDevices && !known) {
    auto oldest = std::min_element(devices.begin(), devices.end(),
                                   [](const auto& x, const auto& y) { return x.second < y.second; });
    devices_->remove(oldest->first);
  }
  devices_->put(a.device, std::max(a.ts, devices_->get(a.device).value_or(std::numeric_limits<int64_t>::min())));
  // The API errors of the window before it (from the interval join).
  if (auto errors = errors_->get(a.id)) {
    std::sort(errors->begin(), errors->end(), [](const TxnError& x, const TxnError& y) {
      return std::tie(x.error_ts, x.error_id) < std::tie(y.error_ts, y.error_id);
    });
    a.errors_before = static_cast<int32_t>(errors->size());
    for (size_t i = 0; i < errors->size() && i < Activity::kMaxErrorIds; ++i) a.error_ids.push_back((*errors)[i].error_id);
    errors_->remove(a.id);
  }
}

}  // namespace sluice::fraud
