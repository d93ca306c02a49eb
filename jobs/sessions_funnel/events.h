// The records of the sessions_funnel example: input page views, the
// session rows for the warehouse, and the funnel's deltas, per-minute
// updates and Prometheus counts. Shared by the job, the generator and the
// tests (which read them with their own parser).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/common/serde.h"

namespace sluice::jobs {

/// {"user_id":"u1","page_url":"/product/7","event_type":"view","device":"mobile","ts":1700000000123}
/// event_type is one of view, add_to_cart, checkout, purchase.
struct PageView {
  std::string user_id;
  std::string page_url;
  std::string event_type;
  std::string device;
  int64_t ts = 0;  // event time, epoch milliseconds
  SLUICE_FIELDS(user_id, page_url, event_type, device, ts)
  bool operator==(const PageView&) const = default;
};

/// A page view too late for the sessions or the funnel (`late_for`):
/// behind the watermark by more than the allowed lateness.
struct LatePageView {
  std::string late_for;  // "sessions" or "funnel"
  std::string user_id;
  std::string page_url;
  std::string event_type;
  std::string device;
  int64_t ts = 0;
  SLUICE_FIELDS(late_for, user_id, page_url, event_type, device, ts)
};

/// One session of one user: events with less than the gap between them.
/// Rows are keyed by session_id ("<user_id>@<start>"). A row with
/// retracted = true withdraws an earlier row of that id: a late event
/// merged the session into another (bridging two sessions, or starting
/// it earlier); the merged session comes as a row of its own.
struct SessionRecord {
  std::string session_id;
  std::string user_id;
  int64_t session_start = 0;  // first event, epoch ms
  int64_t session_end = 0;    // last event, epoch ms
  int64_t duration_ms = 0;    // session_end - session_start
  int64_t events = 0;
  std::vector<std::string> pages;  // paths of the first pages, in event-time order
  int64_t pages_more = 0;          // events beyond `pages`
  std::vector<std::string> devices;  // distinct devices, sorted (at most 16)
  int32_t furthest_step = -1;        // furthest funnel step reached in order; -1: none
  std::string furthest_step_name;    // its pattern, "" for none
  bool converted = false;            // a purchase event in the session
  bool retracted = false;
  SLUICE_FIELDS(session_id, user_id, session_start, session_end, duration_ms, events, pages, pages_more,
                devices, furthest_step, furthest_step_name, converted, retracted)
};

/// A change to the funnel counts of one step in one minute, from one user
/// (the funnel function's output; corrections are negative).
struct FunnelDelta {
  int64_t minute = 0;  // start of the minute, epoch ms
  int32_t step = 0;
  int64_t entered = 0;
  int64_t dropped = 0;
  int64_t event_ts = 0;  // the page view that caused it (a session's last one for a drop-off)
  SLUICE_FIELDS(minute, step, entered, dropped, event_ts)
};

/// The funnel counts of one step in one minute so far: sessions that
/// entered the step (reached it in order) in that minute, and sessions
/// whose last event was in that minute and that ended at this step without
/// reaching the next one. The latest update per (minute, step) wins.
/// last_event_ts: event time of the newest page view that changed these
/// counts (how fresh they are).
struct FunnelUpdate {
  int64_t minute = 0;
  int32_t step = 0;
  std::string step_name;
  int64_t entered = 0;
  int64_t dropped = 0;
  int64_t last_event_ts = 0;
  SLUICE_FIELDS(minute, step, step_name, entered, dropped, last_event_ts)
};

/// A funnel delta as two non-negative amounts, for Prometheus counters
/// (which cannot go down): `added` and `withdrawn` of `kind` (entered or
/// dropped) at one step.
struct FunnelCount {
  int32_t step = 0;
  std::string step_name;
  std::string kind;
  int64_t added = 0;
  int64_t withdrawn = 0;
  SLUICE_FIELDS(step, step_name, kind, added, withdrawn)
};

}  // namespace sluice::jobs
