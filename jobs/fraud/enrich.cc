#include "jobs/fraud/enrich.h"

#include <algorithm>
#include <limits>

namespace sluice::fraud {
namespace {

constexpr int64_t kNone = std::numeric_limits<int64_t>::max();

auto slot_of(const Activity& a) { return std::tie(a.ts, a.kind, a.id); }
auto mark_of(const ErrorMark& e) { return std::tie(e.ts, e.id); }

int64_t earliest(const UserTrail& u) {
  int64_t t = kNone;
  if (!u.pending.empty()) t = u.pending.front().ts;
  if (!u.pending_errors.empty()) t = std::min(t, u.pending_errors.front().ts);
  return t;
}

void reject_late(int64_t ts, int64_t wm) {
  if (ts <= wm) {
    throw InvalidRecord("late: event time " + std::to_string(ts) + " is at or behind the watermark " +
                        std::to_string(wm) + " (raise --arg out_of_orderness)");
  }
}

}  // namespace

void EnrichFunction::open(RuntimeContext& ctx) {
  trail_ = ctx.get_cached_state(CachedValueStateDescriptor<UserTrail>{"enrich-user"});
}

void EnrichFunction::schedule(const UserTrail& u, int64_t before, TimerService& timers) {
  // One timer per user, at its earliest buffered record (on_timer takes
  // everything the watermark passed and sets the next one).
  const int64_t t = earliest(u);
  if (t < before) timers.register_event_time_timer(t);
}

void EnrichFunction::process_element1(const Activity& a, Context& ctx, Collector<Activity>&) {
  reject_late(a.ts, ctx.timer_service().current_watermark());
  UserTrail& u = trail_->mutable_value();
  const int64_t before = earliest(u);
  // In (ts, kind, id) order; the same event twice is kept once (the last).
  auto it = std::lower_bound(u.pending.begin(), u.pending.end(), a,
                             [](const Activity& x, const Activity& y) { return slot_of(x) < slot_of(y); });
  if (it != u.pending.end() && slot_of(*it) == slot_of(a)) *it = a;
  else u.pending.insert(it, a);
  schedule(u, before, ctx.timer_service());
}

void EnrichFunction::process_element2(const ApiError& e, Context& ctx, Collector<Activity>&) {
  reject_late(e.ts, ctx.timer_service().current_watermark());
  UserTrail& u = trail_->mutable_value();
  const int64_t before = earliest(u);
  ErrorMark m{e.ts, e.id};
  // Every error counts (as every pair of an interval join would), in (ts, id) order.
  auto it = std::upper_bound(u.pending_errors.begin(), u.pending_errors.end(), m,
                             [](const ErrorMark& x, const ErrorMark& y) { return mark_of(x) < mark_of(y); });
  u.pending_errors.insert(it, std::move(m));
  schedule(u, before, ctx.timer_service());
}

void EnrichFunction::on_timer(int64_t ts, OnTimerContext& ctx, Collector<Activity>& out) {
  const int64_t wm = std::max(ts, ctx.timer_service().current_watermark());
  UserTrail& u = trail_->mutable_value();
  size_t next_error = 0;
  // API errors up to `t` have passed: they join the window of what follows.
  auto errors_upto = [&](int64_t t) {
    while (next_error < u.pending_errors.size() && u.pending_errors[next_error].ts <= t) {
      u.errors.push_back(std::move(u.pending_errors[next_error++]));
    }
  };
  size_t n = 0;
  for (; n < u.pending.size() && u.pending[n].ts <= wm; ++n) {
    Activity& a = u.pending[n];
    errors_upto(a.ts);  // errors at a transaction's own time count for it
    enrich(u, a);
    out.collect_with_timestamp(a, a.ts);
  }
  errors_upto(wm);
  u.pending.erase(u.pending.begin(), u.pending.begin() + static_cast<std::ptrdiff_t>(n));
  u.pending_errors.erase(u.pending_errors.begin(), u.pending_errors.begin() + static_cast<std::ptrdiff_t>(next_error));
  // What comes next is after the watermark: errors before its window go.
  if (wm != kNone) {
    const int64_t keep_from = wm + 1 - error_window_ms_;
    std::erase_if(u.errors, [&](const ErrorMark& e) { return e.ts < keep_from; });
  }
  schedule(u, kNone, ctx.timer_service());
}

void EnrichFunction::enrich(UserTrail& u, Activity& a) const {
  if (a.is_login()) {
    if (a.success) u.last_login = LastLogin{a.id, a.device, a.country, a.ts};
    return;
  }
  if (const auto& login = u.last_login) {
    a.login_device = login->device;
    a.login_country = login->country;
    a.login_ts = login->ts;
  }
  // Known devices: forget those not used for a purchase within the TTL; a
  // full list makes room by forgetting the least recently used (ties: by name).
  std::erase_if(u.devices, [&](const KnownDevice& d) { return d.last <= a.ts - device_ttl_ms_; });
  auto known = std::find_if(u.devices.begin(), u.devices.end(), [&](const KnownDevice& d) { return d.device == a.device; });
  a.new_device = known == u.devices.end();
  if (known != u.devices.end()) {
    known->last = std::max(known->last, a.ts);
  } else {
    if (u.devices.size() >= kMaxDevices) {
      u.devices.erase(std::min_element(u.devices.begin(), u.devices.end(), [](const KnownDevice& x, const KnownDevice& y) {
        return std::tie(x.last, x.device) < std::tie(y.last, y.device);
      }));
    }
    u.devices.push_back(KnownDevice{a.device, a.ts});
  }
  // The API errors in [ts - error_window, ts] (all passed ones are at or before ts).
  const int64_t from = a.ts - error_window_ms_;
  std::erase_if(u.errors, [&](const ErrorMark& e) { return e.ts < from; });
  a.errors_before = static_cast<int32_t>(u.errors.size());
  for (size_t i = 0; i < u.errors.size() && i < Activity::kMaxErrorIds; ++i) a.error_ids.push_back(u.errors[i].id);
}

}  // namespace sluice::fraud
