#include "engine/runtime/watermark_alignment.h"

#include <algorithm>

namespace sluice::runtime {

struct WatermarkAlignment::Member::Group {
  mutable std::mutex mu;
  std::vector<std::shared_ptr<std::atomic<int64_t>>> slots;
};

WatermarkAlignment::Member::~Member() {
  std::lock_guard lock(group_->mu);
  std::erase(group_->slots, slot_);
}

int64_t WatermarkAlignment::Member::group_min() const {
  std::lock_guard lock(group_->mu);
  int64_t m = INT64_MAX;
  for (const auto& s : group_->slots) {
    const int64_t w = s->load(std::memory_order_relaxed);
    if (w != INT64_MIN) m = std::min(m, w);  // no watermark yet: not counted (Flink, FLINK-32414)
  }
  return m;
}

bool WatermarkAlignment::Member::should_pause(int64_t watermark, int64_t max_drift_ms) const {
  const int64_t m = group_min();
  if (watermark <= m) return false;  // at the minimum (or no other member has a watermark)
  return watermark - m > max_drift_ms;  // m < watermark, both finite: no overflow
}

WatermarkAlignment& WatermarkAlignment::instance() {
  static WatermarkAlignment* registry = new WatermarkAlignment();  // never destroyed: task threads may outlive statics
  return *registry;
}

std::unique_ptr<WatermarkAlignment::Member> WatermarkAlignment::join(const std::string& job_id,
                                                                     const std::string& group) {
  const std::string key = job_id + '\n' + group;
  std::lock_guard lock(mu_);
  std::erase_if(groups_, [](const auto& g) { return g.second.expired(); });
  std::shared_ptr<Member::Group> g;
  for (auto& [k, weak] : groups_) {
    if (k == key) g = weak.lock();
  }
  if (!g) {
    g = std::make_shared<Member::Group>();
    groups_.emplace_back(key, g);
  }
  auto slot = std::make_shared<std::atomic<int64_t>>(INT64_MIN);
  {
    std::lock_guard glock(g->mu);
    g->slots.push_back(slot);
  }
  return std::unique_ptr<Member>(new Member(std::move(g), std::move(slot)));
}

size_t WatermarkAlignment::members(const std::string& job_id, const std::string& group) const {
  const std::string key = job_id + '\n' + group;
  std::lock_guard lock(mu_);
  for (const auto& [k, weak] : groups_) {
    if (k != key) continue;
    if (auto g = weak.lock()) {
      std::lock_guard glock(g->mu);
      return g->slots.size();
    }
  }
  return 0;
}

}  // namespace sluice::runtime
