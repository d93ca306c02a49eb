// The two keyed computations of sessions_funnel, per user:
//  - SessionAggregate: what a session window accumulates (bounded: first
//    pages, distinct devices, the funnel path), turned into SessionRecord
//    rows by session_record() and withdrawn by retraction();
//  - FunnelFunction: a keyed process function that follows the user's
//    sessions through the funnel as events arrive and emits FunnelDelta
//    corrections to the per-minute counts.
// Both run on the task threads of their operators; state is keyed state.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "engine/api/sluice.h"
#include "jobs/sessions_funnel/events.h"
#include "jobs/sessions_funnel/funnel.h"

namespace sluice::jobs {

/// A session window's accumulator. Value type (keyed state).
struct SessionAccumulator {
  int64_t first = std::numeric_limits<int64_t>::max();
  int64_t last = std::numeric_limits<int64_t>::min();
  int64_t events = 0;
  window::FirstN<std::string> pages;
  std::vector<std::string> devices;  // sorted, distinct: the kMaxDevices smallest
  FunnelPath path;
  int64_t purchases = 0;
  SLUICE_FIELDS(first, last, events, pages, devices, path, purchases)
};

/// Accumulates page views into a SessionAccumulator. Copied into every
/// subtask; the spec is shared read-only.
class SessionAggregate final : public AggregateFunction<PageView, SessionAccumulator, SessionAccumulator> {
 public:
  static constexpr size_t kMaxDevices = 16;
  SessionAggregate(std::shared_ptr<const FunnelSpec> spec, size_t max_pages)
      : spec_(std::move(spec)), max_pages_(max_pages) {}
  SessionAccumulator create_accumulator() const override { return {}; }
  void add(SessionAccumulator& acc, const PageView& v) const override;
  SessionAccumulator get_result(const SessionAccumulator& acc) const override { return acc; }
  void merge(SessionAccumulator& into, const SessionAccumulator& other) const override;

 private:
  // shared: immutable, one per job graph.
  std::shared_ptr<const FunnelSpec> spec_;
  size_t max_pages_;
};

std::string session_id(const std::string& user_id, int64_t start);
SessionRecord session_record(const FunnelSpec& spec, const std::string& user_id, const SessionAccumulator& acc);
/// The row withdrawing the session `acc` (same id, retracted = true).
SessionRecord retraction(const FunnelSpec& spec, const std::string& user_id, const SessionAccumulator& acc);

/// One session the funnel function is following. Value type (keyed state).
struct TrackedSession {
  int64_t start = 0;
  int64_t last = 0;
  bool ended = false;  // the watermark passed last + gap: its drop-off is counted
  FunnelPath path;
  SLUICE_FIELDS(start, last, ended, path)
};

/// The sessions of one user still open to late events.
struct UserFunnel {
  std::vector<TrackedSession> sessions;  // never touching each other
  SLUICE_FIELDS(sessions)
};

/// Follows each user's sessions through the funnel as events arrive. A
/// session is the same as the session window's (gap, allowed lateness,
/// merging); an event behind the watermark by more than the lateness goes
/// to the `late_tag` side output (with an empty tag: the dead-letter output). On every event the user's affected
/// session is recomputed and the difference of its contribution to the
/// per-minute counts is emitted (so out-of-order events correct earlier
/// deltas); when the watermark passes a session's end its drop-off is
/// emitted; after the lateness the session is forgotten.
class FunnelFunction final : public KeyedProcessFunction<std::string, PageView, FunnelDelta> {
 public:
  FunnelFunction(std::shared_ptr<const FunnelSpec> spec, Duration gap, Duration lateness, std::string late_tag)
      : spec_(std::move(spec)), gap_(gap.count()), lateness_(lateness.count()), late_tag_(std::move(late_tag)) {}

  void open(RuntimeContext& ctx) override;
  void process_element(const PageView& v, Context& ctx, Collector<FunnelDelta>& out) override;
  void on_timer(int64_t ts, OnTimerContext& ctx, Collector<FunnelDelta>& out) override;

 private:
  TimeWindow window_of(const TrackedSession& s) const { return {s.start, s.last + gap_}; }
  int64_t cleanup_of(const TrackedSession& s) const { return s.last + gap_ - 1 + lateness_; }
  void emit(const FunnelCounts& diff, int64_t event_ts, Collector<FunnelDelta>& out);
  // Deletes the timers of `gone` that no session in `sessions` uses.
  void drop_timers(const TrackedSession& gone, const std::vector<TrackedSession>& sessions, TimerService& ts);

  // shared: immutable, one per job graph.
  std::shared_ptr<const FunnelSpec> spec_;
  int64_t gap_;
  int64_t lateness_;
  OutputTag<LatePageView> late_tag_;
  state::ValueState<UserFunnel>* state_ = nullptr;
};

}  // namespace sluice::jobs
