// The page-view generator behind `sluice gen --kind pageviews`: users with
// one to three devices browsing a shop in sessions (home, categories,
// products, cart, checkout, purchase) with seeded conversion rates, in
// event time. Lines come out in arrival order; an event's ts may be older:
//
//  - out of order: up to `out_of_orderness` old (never late for a job
//    with that watermark bound);
//  - late: older than the watermark by less than the allowed lateness, so
//    a job with that lateness still takes it (sessions fire again);
//  - bridging: a user's pause slightly longer than the gap splits a visit
//    into two sessions, and an event in the middle of the pause arrives
//    after the second one started (and after the first one fired), so it
//    merges them; the pause is short enough that neither session's state
//    is gone by then;
//  - very late: days before the first event, far behind any watermark: a
//    job drops them once it has a watermark;
//  - malformed: lines that are not a page view (bad JSON, missing field,
//    wrong type, an unknown event_type).
//
// Seeded: the same options give the same lines. With `rate`, event time
// starts at the wall clock and lines are written when their arrival time
// comes (a real-time stream); the number of users then follows from the
// rate.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/common/status.h"
#include "engine/common/time.h"

namespace sluice::gen {

/// Value type; defaults in brackets.
struct PageViewOptions {
  int64_t count = 1000;  ///< [1000] lines; < 0: unbounded (needs rate)
  uint64_t seed = 42;
  int64_t users = 1000;  ///< [1000] ignored with rate (derived from it)
  int64_t products = 200;
  int64_t start_ts = 1'700'000'000'000;  ///< event time of the first session (epoch ms)
  Duration think_time{20'000};   ///< [20 s] mean time between a session's events
  Duration pause{1'200'000};     ///< [20 min] mean pause between sessions, beyond the gap
  Duration gap{1'800'000};       ///< [30 min] the session gap of the job
  Duration allowed_lateness{300'000};  ///< [5 min] the job's allowed lateness
  Duration out_of_orderness{5'000};    ///< [5 s] the job's watermark bound
  /// [0.65, 0.4, 0.5] home -> product, product -> cart, cart -> checkout.
  std::vector<double> conversion{0.65, 0.4, 0.5};
  double purchase_rate = 0.7;       ///< [0.7] checkout -> purchase
  double split_fraction = 0.1;      ///< [0.1] pauses just longer than the gap
  double bridge_fraction = 0.5;     ///< [0.5] of those, bridged by a late event
  double out_of_order_fraction = 0.1;
  double late_fraction = 0.01;
  double very_late_fraction = 0.001;
  double malformed_fraction = 0.001;
  double full_url_fraction = 0.1;  ///< [0.1] page_url as a full URL with a query
  double rate = 0;                 ///< > 0: paced, this many lines per wall-clock second
  Status validate() const;
};

/// Lines by kind.
struct PageViewSummary {
  int64_t on_time = 0, out_of_order = 0, late = 0, bridging = 0, very_late = 0, malformed = 0;
  int64_t sessions_started = 0;
  int64_t total() const { return on_time + out_of_order + late + bridging + very_late + malformed; }
};

/// Runs the generator, handing each line (no newline) to `emit`; paced
/// when options.rate > 0. `stop` is polled between lines.
Result<PageViewSummary> run_pageviews(const PageViewOptions& options,
                                      const std::function<Status(const std::string& line)>& emit,
                                      const std::function<bool()>& stop = nullptr);

}  // namespace sluice::gen
