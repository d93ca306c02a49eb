#include "jobs/fraud/enrich.h"

#include <algorithm>
#include <iterator>
#include <limits>

namespace sluice::fraud {
namespace {

constexpr int64_t kNone = std::numeric_limits<int64_t>::max();

auto slot_of(const Activity& a) { return std::tie(a.ts, a.kind, a.id); }
auto mark_of(const ErrorMark& e) { return std::tie(e.ts, e.id); }

int64_t earliest(const UserTrail& u) {
  int64_t t = kNone;
  if (!u.pending_logins.empty()) t = u.pending_logins.front().ts;
  if (!u.pending_txns.empty()) t = std::min(t, u.pending_txns.front().ts);
  if (!u.pending_errors.empty()) t = std::min(t, u.pending_errors.front().ts);
  return t;
}

// Inserts `v` in `list` (sorted by `key`) after its equals, or in place of
// an equal one when `replace`; searches from the back, where it nearly
// always lands.
template <class T, class Key>
void insert_sorted(std::vector<T>& list, const T& v, Key key, bool replace) {
  auto it = list.end();
  while (it != list.begin() && key(v) < key(*std::prev(it))) --it;
  if (replace && it != list.begin() && key(*std::prev(it)) == key(v)) *std::prev(it) = v;
  else list.insert(it, v);
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
  // The same event twice is kept once (the last).
  insert_sorted(a.is_login() ? u.pending_logins : u.pending_txns, a, slot_of, true);
  schedule(u, before, ctx.timer_service());
}

void EnrichFunction::process_element2(const ApiError& e, Context& ctx, Collector<Activity>&) {
  reject_late(e.ts, ctx.timer_service().current_watermark());
  UserTrail& u = trail_->mutable_value();
  const int64_t before = earliest(u);
  // Every error counts (as every pair of an interval join would).
  insert_sorted(u.pending_errors, ErrorMark{e.ts, e.id}, mark_of, false);
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
  // Logins and transactions merged in (ts, kind, id) order: logins first.
  size_t nl = 0, nt = 0;
  for (;;) {
    const bool login = nl < u.pending_logins.size() && u.pending_logins[nl].ts <= wm;
    const bool txn = nt < u.pending_txns.size() && u.pending_txns[nt].ts <= wm;
    if (!login && !txn) break;
    Activity& a = login && (!txn || slot_of(u.pending_logins[nl]) < slot_of(u.pending_txns[nt]))
                      ? u.pending_logins[nl++]
                      : u.pending_txns[nt++];
    errors_upto(a.ts);  // errors at a transaction's own time count for it
    enrich(u, a);
    out.collect_with_timestamp(a, a.ts);
  }
  errors_upto(wm);
  u.pending_logins.erase(u.pending_logins.begin(), u.pending_logins.begin() + static_cast<std::ptrdiff_t>(nl));
  u.pending_txns.erase(u.pending_txns.begin(), u.pending_txns.begin() + static_cast<std::ptrdiff_t>(nt));
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
