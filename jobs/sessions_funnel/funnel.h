// The funnel of sessions_funnel: its steps (page patterns), how a session
// moves through them, and what a session adds to the per-minute counts.
//
// A session reaches step 0 at its first event on a page of step 0, and
// step k at its first event on a page of step k strictly after it reached
// step k-1 (an ordered funnel; other pages in between do not matter). It
// enters each step it reaches once, in the minute it reached it. A session
// that ended (no event for the gap) having reached step k < last step
// dropped off at step k, in the minute of its last event; one that reached
// the last step converted through the funnel.
//
// Everything here is a pure function of the set of events, whatever their
// arrival order, so that out-of-order events and merged sessions give the
// same counts as the sorted events would. Used on the task threads of the
// job's operators; no shared mutable state.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/common/serde.h"
#include "engine/common/status.h"

namespace sluice::jobs {

/// The path of a page URL: "https://shop.example/product/7?x=1#top" and
/// "/product/7?x=1" are "/product/7". Empty if the URL has no path.
std::string_view page_path(std::string_view url);

/// `*` matches any run of characters (slashes included); everything else
/// matches itself.
bool glob_match(std::string_view pattern, std::string_view text);

/// The funnel's steps, in order. Immutable once parsed; shared by the
/// operators of a job (read-only).
class FunnelSpec {
 public:
  static constexpr size_t kMaxSteps = 16;
  /// "/,/product/*,/cart,/checkout": 1 to 16 comma-separated path patterns,
  /// each starting with '/'.
  static Result<FunnelSpec> parse(std::string_view text);

  size_t size() const { return patterns_.size(); }
  const std::string& name(size_t step) const { return patterns_.at(step); }
  /// Bit k set: `path` is a page of step k.
  uint32_t match(std::string_view path) const;
  std::string describe() const;

 private:
  std::vector<std::string> patterns_;
};

/// Start of the minute holding `ts` (epoch ms).
int64_t minute_of(int64_t ts);

/// What a session knows about its way through the funnel: per step, the
/// event times of its pages of that step that can still matter. Times of
/// step k later than the time step k was reached never matter again
/// (adding events only moves the times steps are reached earlier), so they
/// are dropped; so the set stays small. Value type, part of keyed state.
struct FunnelPath {
  /// At most this many times per step are kept (the earliest are dropped
  /// beyond it, which can only delay a step's time in sessions with more
  /// pages of a step before reaching the previous step).
  static constexpr size_t kMaxTimesPerStep = 256;

  std::vector<std::vector<int64_t>> times;  // per step, ascending
  SLUICE_FIELDS(times)

  /// An event at `ts` on a page of the steps in `mask` (of `steps` steps).
  void add(int64_t ts, uint32_t mask, size_t steps);
  void merge(const FunnelPath& other);
  /// The event time each step was reached at, -1 for steps not reached.
  std::vector<int64_t> reached() const;
  /// The furthest step reached, -1 for none.
  int32_t furthest() const;

 private:
  void prune();
};

/// Per (step, minute): entered and dropped counts.
using FunnelCounts = std::map<std::pair<int32_t, int64_t>, std::pair<int64_t, int64_t>>;

/// Adds (sign +1) or removes (sign -1) what one session contributes to the
/// counts: its entries, and its drop-off if `ended`.
void add_contribution(FunnelCounts& counts, const FunnelPath& path, int64_t last_event, bool ended,
                      size_t steps, int sign);

}  // namespace sluice::jobs
