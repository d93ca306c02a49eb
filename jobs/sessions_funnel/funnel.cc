#include "jobs/sessions_funnel/funnel.h"

#include <algorithm>

namespace sluice::jobs {

std::string_view page_path(std::string_view url) {
  if (auto scheme = url.find("://"); scheme != std::string_view::npos && url.find('/') > scheme) {
    url.remove_prefix(scheme + 3);
    auto slash = url.find('/');
    if (slash == std::string_view::npos) return "/";
    url.remove_prefix(slash);
  }
  if (auto q = url.find_first_of("?#"); q != std::string_view::npos) url = url.substr(0, q);
  return url;
}

bool glob_match(std::string_view p, std::string_view t) {
  // Iterative wildcard matching with backtracking to the last '*'.
  size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (pi < p.size() && p[pi] == t[ti]) {
      ++pi;
      ++ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

Result<FunnelSpec> FunnelSpec::parse(std::string_view text) {
  FunnelSpec spec;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view step = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    while (!step.empty() && step.front() == ' ') step.remove_prefix(1);
    while (!step.empty() && step.back() == ' ') step.remove_suffix(1);
    if (step.empty() || step.front() != '/') {
      return Status::invalid_argument("funnel step " + std::to_string(spec.patterns_.size() + 1) + " '" +
                                      std::string(step) +
                                      "' must be a path pattern starting with '/', e.g. /,/product/*,/cart,/checkout");
    }
    spec.patterns_.emplace_back(step);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (spec.patterns_.size() > kMaxSteps) {
    return Status::invalid_argument("a funnel has at most " + std::to_string(kMaxSteps) + " steps, not " +
                                    std::to_string(spec.patterns_.size()));
  }
  return spec;
}

uint32_t FunnelSpec::match(std::string_view path) const {
  uint32_t mask = 0;
  for (size_t k = 0; k < patterns_.size(); ++k)
    if (glob_match(patterns_[k], path)) mask |= uint32_t{1} << k;
  return mask;
}

std::string FunnelSpec::describe() const {
  std::string out;
  for (const auto& p : patterns_) out += (out.empty() ? "" : " -> ") + p;
  return out;
}

int64_t minute_of(int64_t ts) {
  int64_t r = ts % 60'000;
  if (r < 0) r += 60'000;
  return ts - r;
}

void FunnelPath::add(int64_t ts, uint32_t mask, size_t steps) {
  if (mask == 0) return;
  if (times.size() < steps) times.resize(steps);
  for (size_t k = 0; k < steps; ++k) {
    if (!(mask & (uint32_t{1} << k))) continue;
    auto& t = times[k];
    t.insert(std::upper_bound(t.begin(), t.end(), ts), ts);
  }
  prune();
}

void FunnelPath::merge(const FunnelPath& other) {
  if (times.size() < other.times.size()) times.resize(other.times.size());
  for (size_t k = 0; k < other.times.size(); ++k) {
    std::vector<int64_t> all;
    all.reserve(times[k].size() + other.times[k].size());
    std::merge(times[k].begin(), times[k].end(), other.times[k].begin(), other.times[k].end(),
               std::back_inserter(all));
    times[k] = std::move(all);
  }
  prune();
}

std::vector<int64_t> FunnelPath::reached() const {
  std::vector<int64_t> out(times.size(), -1);
  for (size_t k = 0; k < times.size(); ++k) {
    const auto& t = times[k];
    if (k == 0) {
      if (!t.empty()) out[0] = t.front();
    } else if (out[k - 1] >= 0) {
      auto it = std::upper_bound(t.begin(), t.end(), out[k - 1]);  // strictly after
      if (it != t.end()) out[k] = *it;
    }
    if (out[k] < 0) break;
  }
  return out;
}

int32_t FunnelPath::furthest() const {
  auto r = reached();
  int32_t f = -1;
  for (size_t k = 0; k < r.size() && r[k] >= 0; ++k) f = static_cast<int32_t>(k);
  return f;
}

void FunnelPath::prune() {
  const auto r = reached();
  for (size_t k = 0; k < times.size(); ++k) {
    auto& t = times[k];
    if (r[k] >= 0) t.erase(std::upper_bound(t.begin(), t.end(), r[k]), t.end());
    if (t.size() > kMaxTimesPerStep) t.erase(t.begin(), t.end() - kMaxTimesPerStep);
  }
}

void add_contribution(FunnelCounts& counts, const FunnelPath& path, int64_t last_event, bool ended,
                      size_t steps, int sign) {
  const auto r = path.reached();
  int32_t furthest = -1;
  for (size_t k = 0; k < r.size() && r[k] >= 0; ++k) {
    furthest = static_cast<int32_t>(k);
    counts[{furthest, minute_of(r[k])}].first += sign;
  }
  if (ended && furthest >= 0 && static_cast<size_t>(furthest) + 1 < steps) {
    counts[{furthest, minute_of(last_event)}].second += sign;
  }
}

}  // namespace sluice::jobs
