// A reference model of event-time windows for the window operator tests.
//
// Deliberately naive and independent of the operator: it keeps every
// record of every window as a plain list, scans all windows at every
// watermark, and knows nothing about state backends, namespaces or timers.
// The semantics it encodes (Flink's):
//   * a window [start, end) fires once the watermark reaches end - 1, with
//     every record in it, if it holds any; results carry timestamp end - 1;
//   * a window is late once end - 1 + allowed_lateness <= watermark; a
//     record whose windows are all late is a late record; a record that
//     reaches a window which already fired but is not late fires the
//     window again at once, with everything in it;
//   * a window's records are forgotten once it is late;
//   * session windows [ts, ts + gap) merge with every session they overlap
//     or touch (repeatedly); the merged session fires at its own end.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

namespace sluice::window_test {

/// One input of a scripted run: a record (key, amount, ts) or a watermark.
struct Step {
  bool is_watermark = false;
  std::string key;
  int64_t amount = 0;
  int64_t ts = 0;  // record timestamp or watermark

  static Step record(std::string key, int64_t amount, int64_t ts) {
    return {false, std::move(key), amount, ts};
  }
  static Step watermark(int64_t wm) { return {true, "", 0, wm}; }
};

/// One expected firing: the window, its key and every amount in it (sorted).
struct Firing {
  std::string key;
  int64_t start = 0;
  int64_t end = 0;
  std::vector<int64_t> amounts;
  auto operator<=>(const Firing&) const = default;
  bool operator==(const Firing&) const = default;
};

/// The windowing to model. Value type.
struct ModelSpec {
  enum class Kind { kTumbling, kSliding, kSession };
  Kind kind = Kind::kTumbling;
  int64_t size = 10;   // window size (tumbling, sliding) or the session gap
  int64_t slide = 10;  // sliding only
  int64_t lateness = 0;

  static ModelSpec tumbling(int64_t size, int64_t lateness = 0) {
    return {Kind::kTumbling, size, size, lateness};
  }
  static ModelSpec sliding(int64_t size, int64_t slide, int64_t lateness = 0) {
    return {Kind::kSliding, size, slide, lateness};
  }
  static ModelSpec session(int64_t gap, int64_t lateness = 0) {
    return {Kind::kSession, gap, 0, lateness};
  }
};

/// What the model expects.
struct ModelResult {
  /// Firings between consecutive watermarks: segment i ends with watermark
  /// i of the script (each sorted); the last one holds what came after the
  /// last watermark.
  std::vector<std::vector<Firing>> segments;
  /// Records too late for every window, in input order.
  std::vector<Step> late;
  /// How often a record fired a window at once (late but within lateness).
  int late_firings = 0;
  /// How often a record merged two or more existing sessions.
  int bridges = 0;
  /// Every window with what it held when its state was dropped (or at the
  /// end of the script); windows merged into others are not here. Sorted.
  std::vector<Firing> final_windows;
};

namespace detail {
inline int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}
// end - 1 + lateness, saturating at the top (the final watermark is INT64_MAX).
inline int64_t last_useful(int64_t end, int64_t lateness) {
  int64_t m = end - 1;
  return m > std::numeric_limits<int64_t>::max() - lateness ? std::numeric_limits<int64_t>::max()
                                                            : m + lateness;
}
/// One window of one key in the model: its records, and whether its
/// end-of-window firing is still due.
struct Win {
  int64_t start = 0;
  int64_t end = 0;
  std::vector<int64_t> amounts;
  bool end_pending = false;  // fires when the watermark reaches end - 1
};
}  // namespace detail

inline ModelResult run_model(const ModelSpec& spec, const std::vector<Step>& script) {
  using detail::Win;
  ModelResult out;
  std::vector<Firing> segment;
  int64_t wm = std::numeric_limits<int64_t>::min();
  // key -> windows of that key (any order).
  std::map<std::string, std::vector<Win>> windows;

  auto is_late = [&](int64_t end) { return detail::last_useful(end, spec.lateness) <= wm; };
  auto emit = [&](const std::string& key, const Win& w) {
    if (w.amounts.empty()) return;
    Firing f{key, w.start, w.end, w.amounts};
    std::sort(f.amounts.begin(), f.amounts.end());
    segment.push_back(std::move(f));
  };
  auto add_to = [&](const std::string& key, Win& w, int64_t amount) {
    w.amounts.push_back(amount);
    if (w.end - 1 <= wm) {  // late but allowed: fire again now
      emit(key, w);
      ++out.late_firings;
    } else {
      w.end_pending = true;
    }
  };

  for (const Step& s : script) {
    if (s.is_watermark) {
      if (s.ts > wm) {
        wm = s.ts;
        for (auto& [key, ws] : windows) {
          for (auto& w : ws) {
            if (w.end_pending && w.end - 1 <= wm) {
              w.end_pending = false;
              emit(key, w);
            }
          }
          for (const auto& w : ws) {
            if (is_late(w.end) && !w.amounts.empty()) {
              out.final_windows.push_back({key, w.start, w.end, w.amounts});
              std::sort(out.final_windows.back().amounts.begin(), out.final_windows.back().amounts.end());
            }
          }
          std::erase_if(ws, [&](const Win& w) { return is_late(w.end); });
        }
      }
      std::sort(segment.begin(), segment.end());
      out.segments.push_back(std::move(segment));
      segment.clear();
      continue;
    }
    std::vector<Win>& ws = windows[s.key];
    if (spec.kind == ModelSpec::Kind::kSession) {
      Win merged{s.ts, s.ts + spec.size, {}, false};
      std::vector<bool> absorbed(ws.size(), false);
      for (bool grew = true; grew;) {
        grew = false;
        for (size_t i = 0; i < ws.size(); ++i) {
          if (!absorbed[i] && ws[i].start <= merged.end && merged.start <= ws[i].end) {
            absorbed[i] = true;
            merged.start = std::min(merged.start, ws[i].start);
            merged.end = std::max(merged.end, ws[i].end);
            grew = true;
          }
        }
      }
      if (is_late(merged.end)) {
        out.late.push_back(s);
        continue;
      }
      if (std::count(absorbed.begin(), absorbed.end(), true) >= 2) ++out.bridges;
      std::vector<Win> kept;
      for (size_t i = 0; i < ws.size(); ++i) {
        if (absorbed[i]) {
          merged.amounts.insert(merged.amounts.end(), ws[i].amounts.begin(), ws[i].amounts.end());
        } else {
          kept.push_back(ws[i]);
        }
      }
      kept.push_back(std::move(merged));
      ws = std::move(kept);
      add_to(s.key, ws.back(), s.amount);
      continue;
    }
    // Tumbling and sliding: every window [k*slide, k*slide + size) holding ts.
    bool any = false;
    int64_t last_start = detail::floor_div(s.ts, spec.slide) * spec.slide;
    for (int64_t start = last_start; start > s.ts - spec.size; start -= spec.slide) {
      int64_t end = start + spec.size;
      if (is_late(end)) continue;
      any = true;
      auto it = std::find_if(ws.begin(), ws.end(), [&](const Win& w) { return w.start == start; });
      if (it == ws.end()) {
        ws.push_back(Win{start, end, {}, false});
        it = ws.end() - 1;
      }
      add_to(s.key, *it, s.amount);
    }
    if (!any) out.late.push_back(s);
  }
  std::sort(segment.begin(), segment.end());
  out.segments.push_back(std::move(segment));
  for (const auto& [key, ws] : windows) {
    for (const auto& w : ws) {
      if (w.amounts.empty()) continue;
      out.final_windows.push_back({key, w.start, w.end, w.amounts});
      std::sort(out.final_windows.back().amounts.begin(), out.final_windows.back().amounts.end());
    }
  }
  std::sort(out.final_windows.begin(), out.final_windows.end());
  return out;
}

/// A pseudo-random script: records of a few keys with event time moving
/// forward and out of order by up to `disorder`, a watermark
/// (max timestamp - disorder - 1) every few records, and about
/// `late_percent`% records far behind the watermark. Ends with a watermark
/// past every window.
inline std::vector<Step> random_script(uint32_t seed, int records, int64_t disorder,
                                       int late_percent) {
  std::mt19937 rng(seed);
  auto uniform = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  const std::vector<std::string> keys{"ann", "bob", "cy", "dee", "eve"};
  std::vector<Step> script;
  int64_t now = 100;
  int64_t max_ts = std::numeric_limits<int64_t>::min();
  for (int i = 0; i < records; ++i) {
    now += uniform(0, 4);
    int64_t ts = now - uniform(0, disorder);
    if (uniform(0, 99) < late_percent) ts = now - uniform(20, 60);
    max_ts = std::max(max_ts, ts);
    script.push_back(Step::record(keys[uniform(0, keys.size() - 1)], uniform(-50, 100), ts));
    if (uniform(0, 4) == 0) script.push_back(Step::watermark(max_ts - disorder - 1));
  }
  script.push_back(Step::watermark(max_ts + 1'000));
  return script;
}

}  // namespace sluice::window_test
