#include "jobs/sessions_funnel/sessions.h"

#include <algorithm>

namespace sluice::jobs {

namespace {

// Keeps the smallest distinct devices: the same set whatever the order.
void add_device(std::vector<std::string>& devices, const std::string& d) {
  auto it = std::lower_bound(devices.begin(), devices.end(), d);
  if (it != devices.end() && *it == d) return;
  devices.insert(it, d);
  if (devices.size() > SessionAggregate::kMaxDevices) devices.pop_back();
}

LatePageView late_view(const PageView& v) {
  return LatePageView{"funnel", v.user_id, v.page_url, v.event_type, v.device, v.ts};
}

}  // namespace

void SessionAggregate::add(SessionAccumulator& acc, const PageView& v) const {
  acc.first = std::min(acc.first, v.ts);
  acc.last = std::max(acc.last, v.ts);
  ++acc.events;
  const std::string_view path = page_path(v.page_url);
  acc.pages.add(v.ts, std::string(path), max_pages_);
  add_device(acc.devices, v.device);
  acc.path.add(v.ts, spec_->match(path), spec_->size());
  if (v.event_type == "purchase") ++acc.purchases;
}

void SessionAggregate::merge(SessionAccumulator& into, const SessionAccumulator& other) const {
  into.first = std::min(into.first, other.first);
  into.last = std::max(into.last, other.last);
  into.events += other.events;
  into.pages.merge(other.pages, max_pages_);
  for (const auto& d : other.devices) add_device(into.devices, d);
  into.path.merge(other.path);
  into.purchases += other.purchases;
}

std::string session_id(const std::string& user_id, int64_t start) {
  return user_id + "@" + std::to_string(start);
}

SessionRecord session_record(const FunnelSpec& spec, const std::string& user_id, const SessionAccumulator& acc) {
  SessionRecord r;
  r.session_id = session_id(user_id, acc.first);
  r.user_id = user_id;
  r.session_start = acc.first;
  r.session_end = acc.last;
  r.duration_ms = acc.last - acc.first;
  r.events = acc.events;
  r.pages = acc.pages.values();
  r.pages_more = acc.pages.more;
  r.devices = acc.devices;
  r.furthest_step = acc.path.furthest();
  r.furthest_step_name = r.furthest_step >= 0 ? spec.name(static_cast<size_t>(r.furthest_step)) : "";
  r.converted = acc.purchases > 0;
  return r;
}

SessionRecord retraction(const FunnelSpec& spec, const std::string& user_id, const SessionAccumulator& acc) {
  SessionRecord r = session_record(spec, user_id, acc);
  r.retracted = true;
  return r;
}

// ---------------------------------------------------------------------------

void FunnelFunction::open(RuntimeContext& ctx) {
  state_ = ctx.get_state(ValueStateDescriptor<UserFunnel>{"funnel-sessions", {}});
}

void FunnelFunction::process_element(const PageView& v, Context& ctx, Collector<FunnelDelta>& out) {
  const int64_t wm = ctx.timer_service().current_watermark();
  UserFunnel user = state_->value_or({});
  std::vector<TimeWindow> windows;
  windows.reserve(user.sessions.size());
  for (const auto& s : user.sessions) windows.push_back(window_of(s));
  const window::WindowMerge m = window::merge_window(windows, {v.ts, v.ts + gap_});
  // The session window's rule: late once its end - 1 + lateness is behind
  // the watermark (then its state is gone there too).
  if (m.merged.max_timestamp() + lateness_ <= wm) {
    if (late_tag_.id.empty()) {
      throw InvalidRecord("late for the funnel: behind the watermark by more than the allowed lateness (" +
                          format_duration(Duration(lateness_)) + ")");
    }
    ctx.output(late_tag_, late_view(v));
    return;
  }
  const size_t steps = spec_->size();
  TrackedSession merged{v.ts, v.ts, false, {}};
  FunnelCounts diff;
  std::vector<TrackedSession> kept, absorbed;
  size_t next = 0;
  for (size_t i = 0; i < user.sessions.size(); ++i) {
    TrackedSession& s = user.sessions[i];
    if (next < m.absorbed.size() && m.absorbed[next] == i) {
      ++next;
      add_contribution(diff, s.path, s.last, s.ended, steps, -1);
      merged.start = std::min(merged.start, s.start);
      merged.last = std::max(merged.last, s.last);
      merged.path.merge(s.path);
      absorbed.push_back(std::move(s));
    } else {
      kept.push_back(std::move(s));
    }
  }
  merged.path.add(v.ts, spec_->match(page_path(v.page_url)), steps);
  merged.ended = window_of(merged).max_timestamp() <= wm;
  add_contribution(diff, merged.path, merged.last, merged.ended, steps, +1);
  emit(diff, v.ts, out);

  kept.push_back(merged);
  TimerService& timers = ctx.timer_service();
  for (const auto& gone : absorbed) drop_timers(gone, kept, timers);
  const int64_t end = window_of(merged).max_timestamp();
  if (!merged.ended) timers.register_event_time_timer(end);
  if (lateness_ > 0) timers.register_event_time_timer(cleanup_of(merged));
  user.sessions = std::move(kept);
  state_->update(user);
}

void FunnelFunction::on_timer(int64_t ts, OnTimerContext& ctx, Collector<FunnelDelta>& out) {
  std::optional<UserFunnel> user = state_->value();
  if (!user) return;
  const size_t steps = spec_->size();
  FunnelCounts diff;
  bool changed = false;
  std::vector<TrackedSession> kept;
  int64_t last_event = 0;
  for (auto& s : user->sessions) {
    if (!s.ended && window_of(s).max_timestamp() <= ts) {
      add_contribution(diff, s.path, s.last, false, steps, -1);
      s.ended = true;
      add_contribution(diff, s.path, s.last, true, steps, +1);
      last_event = std::max(last_event, s.last);
      changed = true;
    }
    if (cleanup_of(s) <= ts) {
      changed = true;  // final: nothing can change it any more
      continue;
    }
    kept.push_back(std::move(s));
  }
  if (!changed) return;
  emit(diff, last_event, out);
  if (kept.empty()) {
    state_->clear();
  } else {
    user->sessions = std::move(kept);
    state_->update(*user);
  }
}

void FunnelFunction::emit(const FunnelCounts& diff, int64_t event_ts, Collector<FunnelDelta>& out) {
  for (const auto& [key, counts] : diff) {
    if (counts.first == 0 && counts.second == 0) continue;
    out.collect_with_timestamp(FunnelDelta{key.second, key.first, counts.first, counts.second, event_ts}, key.second);
  }
}

void FunnelFunction::drop_timers(const TrackedSession& gone, const std::vector<TrackedSession>& sessions,
                                 TimerService& timers) {
  auto used = [&](int64_t t) {
    for (const auto& s : sessions) {
      if ((!s.ended && window_of(s).max_timestamp() == t) || (lateness_ > 0 && cleanup_of(s) == t)) return true;
    }
    return false;
  };
  const int64_t end = window_of(gone).max_timestamp();
  if (!gone.ended && !used(end)) timers.delete_event_time_timer(end);
  if (lateness_ > 0 && !used(cleanup_of(gone))) timers.delete_event_time_timer(cleanup_of(gone));
}

}  // namespace sluice::jobs
