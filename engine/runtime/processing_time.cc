#include "engine/runtime/processing_time.h"

namespace sluice::runtime {

void ProcessingTimeService::schedule(int64_t at_ms, Callback cb) {
  queue_.push(Item{at_ms, seq_++, std::move(cb)});
}

std::optional<int64_t> ProcessingTimeService::next_deadline() const {
  if (queue_.empty()) return std::nullopt;
  return queue_.top().at;
}

int ProcessingTimeService::fire_due() {
  int fired = 0;
  int64_t now = clock_->now_ms();
  while (!queue_.empty() && queue_.top().at <= now) {
    Callback cb = std::move(const_cast<Item&>(queue_.top()).cb);
    queue_.pop();
    cb(now);
    ++fired;
  }
  return fired;
}

bool ProcessingTimeService::fire_next_due(int64_t now_ms) {
  if (queue_.empty() || queue_.top().at > now_ms) return false;
  Callback cb = std::move(const_cast<Item&>(queue_.top()).cb);
  queue_.pop();
  cb(now_ms);
  return true;
}

void ProcessingTimeService::clear() {
  while (!queue_.empty()) queue_.pop();
}

}  // namespace sluice::runtime
