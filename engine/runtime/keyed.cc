#include "engine/runtime/keyed.h"

namespace sluice::runtime {

InternalTimerService::InternalTimerService(state::KeyedStateBackend& backend,
                                           ProcessingTimeService& pts, Triggerable& target)
    : backend_(backend),
      pts_(pts),
      target_(target),
      event_(backend.timer_queue("event")),
      processing_(backend.timer_queue("processing")) {}

void InternalTimerService::register_event_time_timer(std::string_view ns, int64_t ts) {
  event_.add(ts, backend_.current_key_group(), backend_.current_key(), ns);
}

void InternalTimerService::delete_event_time_timer(std::string_view ns, int64_t ts) {
  event_.remove(ts, backend_.current_key_group(), backend_.current_key(), ns);
}

void InternalTimerService::register_processing_time_timer(std::string_view ns, int64_t ts) {
  if (processing_.add(ts, backend_.current_key_group(), backend_.current_key(), ns)) {
    schedule_wakeup(ts);
  }
}

void InternalTimerService::delete_processing_time_timer(std::string_view ns, int64_t ts) {
  processing_.remove(ts, backend_.current_key_group(), backend_.current_key(), ns);
}

void InternalTimerService::advance_watermark(EventTime wm) {
  if (wm <= watermark_) return;
  watermark_ = wm;
  state::TimerEntry t;
  while (event_.pop_due(wm.ms(), t)) {
    backend_.set_current_key(t.key, t.kg);
    target_.on_event_time(t);
  }
}

void InternalTimerService::start() {
  if (auto next = processing_.next_ts()) schedule_wakeup(*next);
}

void InternalTimerService::fire_all_processing_timers() {
  state::TimerEntry t;
  while (processing_.pop_due(std::numeric_limits<int64_t>::max(), t)) {
    backend_.set_current_key(t.key, t.kg);
    target_.on_processing_time(t);
  }
}

void InternalTimerService::schedule_wakeup(int64_t ts) {
  if (ts >= next_wakeup_) return;
  next_wakeup_ = ts;
  pts_.schedule(ts, [this, ts](int64_t now) { on_wakeup(now, ts); });
}

void InternalTimerService::on_wakeup(int64_t now, int64_t scheduled_for) {
  // An earlier timer replaced this wake-up: the newer one is in charge.
  if (scheduled_for != next_wakeup_) return;
  next_wakeup_ = std::numeric_limits<int64_t>::max();
  state::TimerEntry t;
  while (processing_.pop_due(now, t)) {
    backend_.set_current_key(t.key, t.kg);
    target_.on_processing_time(t);
  }
  if (auto next = processing_.next_ts()) schedule_wakeup(*next);
}

}  // namespace sluice::runtime
