#include "operators/window/window.h"

#include <limits>
#include <stdexcept>

namespace sluice::window {

void TimeWindow::encode(std::string& out) const {
  out.clear();
  ByteWriter w(out);
  // Flip the sign bit so big-endian byte order equals numeric order.
  w.put_fixed64_be(static_cast<uint64_t>(start) ^ (uint64_t{1} << 63));
  w.put_fixed64_be(static_cast<uint64_t>(end) ^ (uint64_t{1} << 63));
}

bool TimeWindow::decode(std::string_view bytes, TimeWindow& out) {
  ByteReader r(bytes);
  uint64_t s, e;
  if (!r.get_fixed64_be(s) || !r.get_fixed64_be(e) || !r.empty()) return false;
  out.start = static_cast<int64_t>(s ^ (uint64_t{1} << 63));
  out.end = static_cast<int64_t>(e ^ (uint64_t{1} << 63));
  return true;
}

namespace {
// Start of the window of length `period` containing ts (works for ts < 0).
int64_t window_start(int64_t ts, int64_t offset, int64_t period) {
  int64_t r = (ts - offset) % period;
  if (r < 0) r += period;
  return ts - r;
}
}  // namespace

WindowAssigner WindowAssigner::tumbling(Duration size, Duration offset) {
  if (size.count() <= 0) throw std::invalid_argument("tumbling window size must be positive");
  if (offset.count() < 0 || offset >= size) {
    throw std::invalid_argument("window offset must be in [0, size)");
  }
  return WindowAssigner(Kind::kTumbling, size, size, offset);
}

WindowAssigner WindowAssigner::sliding(Duration size, Duration slide, Duration offset) {
  if (size.count() <= 0 || slide.count() <= 0) {
    throw std::invalid_argument("sliding window size and slide must be positive");
  }
  if (offset.count() < 0 || offset >= slide) {
    throw std::invalid_argument("window offset must be in [0, slide)");
  }
  return WindowAssigner(Kind::kSliding, size, slide, offset);
}

WindowAssigner WindowAssigner::session(Duration gap) {
  if (gap.count() <= 0) throw std::invalid_argument("session gap must be positive");
  return WindowAssigner(Kind::kSession, gap, Duration(0), Duration(0));
}

WindowAssigner WindowAssigner::on_processing_time() const {
  if (kind_ == Kind::kSession) {
    throw std::invalid_argument("session windows are on event time only");
  }
  WindowAssigner a = *this;
  a.processing_time_ = true;
  return a;
}

void WindowAssigner::assign(int64_t ts, std::vector<TimeWindow>& out) const {
  out.clear();
  const int64_t size = size_.count();
  switch (kind_) {
    case Kind::kTumbling: {
      int64_t start = window_start(ts, offset_.count(), size);
      out.push_back({start, start + size});
      break;
    }
    case Kind::kSliding: {
      const int64_t slide = slide_.count();
      for (int64_t start = window_start(ts, offset_.count(), slide); start > ts - size;
           start -= slide) {
        out.push_back({start, start + size});
      }
      break;
    }
    case Kind::kSession:
      out.push_back({ts, ts + size});
      break;
  }
}

namespace {
int64_t saturated_add(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_add_overflow(a, b, &r) ? std::numeric_limits<int64_t>::max() : r;
}
}  // namespace

TimeWindow WindowAssigner::pane(int64_t ts) const {
  const int64_t size = size_.count();
  switch (kind_) {
    case Kind::kTumbling: {
      const int64_t start = window_start(ts, offset_.count(), size);
      return {start, saturated_add(start, size)};
    }
    case Kind::kSliding: {
      // The windows of ts change where a window starts or ends: starts lie
      // at offset + k * slide, ends at offset + size + k * slide.
      const int64_t slide = slide_.count();
      const int64_t start = window_start(ts, offset_.count(), slide);
      const int64_t end_before = window_start(ts, (offset_.count() + size % slide) % slide, slide);
      return {std::max(start, end_before), std::min(saturated_add(start, slide), saturated_add(end_before, slide))};
    }
    case Kind::kSession:
      break;
  }
  return {ts, saturated_add(ts, 1)};
}

WindowMerge merge_window(const std::vector<TimeWindow>& set, const TimeWindow& added) {
  WindowMerge m{added, {}};
  std::vector<bool> absorbed(set.size(), false);
  // Windows of the set never touch each other, but grow to a fixpoint anyway:
  // a window that only touches another absorbed one merges too.
  for (bool grew = true; grew;) {
    grew = false;
    for (size_t i = 0; i < set.size(); ++i) {
      if (!absorbed[i] && set[i].intersects(m.merged)) {
        absorbed[i] = true;
        m.merged = m.merged.cover(set[i]);
        grew = true;
      }
    }
  }
  for (size_t i = 0; i < set.size(); ++i)
    if (absorbed[i]) m.absorbed.push_back(i);
  return m;
}

std::string WindowAssigner::description() const {
  return kind_description() + (processing_time_ ? " on processing time" : "");
}

std::string WindowAssigner::kind_description() const {
  switch (kind_) {
    case Kind::kTumbling:
      return "tumbling(" + format_duration(size_) +
             (offset_.count() ? ", offset " + format_duration(offset_) : "") + ")";
    case Kind::kSliding:
      return "sliding(" + format_duration(size_) + ", slide " + format_duration(slide_) +
             (offset_.count() ? ", offset " + format_duration(offset_) : "") + ")";
    case Kind::kSession:
      return "session(gap " + format_duration(size_) + ")";
  }
  return "?";
}

}  // namespace sluice::window
