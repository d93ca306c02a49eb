#include "engine/jobmanager/restart_policy.h"

#include <algorithm>

namespace sluice::jobmanager {

Status RestartPolicyOptions::validate() const {
  if (initial_backoff.count() <= 0) return Status::invalid_argument("--restart-backoff must be > 0");
  if (max_backoff < initial_backoff) {
    return Status::invalid_argument("--restart-max-backoff must be at least --restart-backoff");
  }
  if (reset_after.count() < 0) return Status::invalid_argument("--restart-backoff-reset must be >= 0");
  if (max_failures < 1 || failure_interval.count() <= 0) {
    return Status::invalid_argument("--restart-failure-rate must be N/DURATION with N >= 1, e.g. 30/5m");
  }
  return Status::ok();
}

Status RestartPolicyOptions::parse_failure_rate(const std::string& text) {
  auto slash = text.find('/');
  const Status bad = Status::invalid_argument("--restart-failure-rate '" + text +
                                              "' is not N/DURATION (e.g. 30/5m: give up after more than 30 "
                                              "failures within 5 minutes)");
  if (slash == std::string::npos || slash == 0) return bad;
  int n = 0;
  for (size_t i = 0; i < slash; ++i) {
    if (text[i] < '0' || text[i] > '9' || n > 1'000'000) return bad;
    n = n * 10 + (text[i] - '0');
  }
  auto d = parse_duration(std::string_view(text).substr(slash + 1));
  if (!d.is_ok() || n < 1 || d->count() <= 0) return bad;
  max_failures = n;
  failure_interval = *d;
  return Status::ok();
}

std::string RestartPolicyOptions::failure_rate_text() const {
  return std::to_string(max_failures) + "/" + format_duration(failure_interval);
}

void RestartPolicy::expire(int64_t now_ms) {
  while (!failures_.empty() && now_ms - failures_.front() >= o_.failure_interval.count()) failures_.pop_front();
}

int RestartPolicy::failures_in_interval(int64_t now_ms) const {
  return static_cast<int>(std::count_if(failures_.begin(), failures_.end(), [&](int64_t t) {
    return now_ms - t < o_.failure_interval.count();
  }));
}

Duration RestartPolicy::next_backoff(int64_t now_ms) const {
  const bool stable = running_since_ms_ >= 0 && now_ms - running_since_ms_ >= o_.reset_after.count();
  if (backoff_ms_ == 0 || stable) return o_.initial_backoff;
  return Duration(std::min<int64_t>(o_.max_backoff.count(), backoff_ms_ * 2));
}

RestartPolicy::Decision RestartPolicy::on_failure(int64_t now_ms) {
  Decision d;
  expire(now_ms);
  failures_.push_back(now_ms);
  d.failures_in_interval = static_cast<int>(failures_.size());
  if (d.failures_in_interval > o_.max_failures) {
    d.give_up_reason = "gave up: " + std::to_string(d.failures_in_interval) + " failures within " +
                       format_duration(o_.failure_interval) + " (more than the " +
                       std::to_string(o_.max_failures) + " --restart-failure-rate allows)";
    return d;
  }
  backoff_ms_ = next_backoff(now_ms).count();
  running_since_ms_ = -1;
  d.restart = true;
  d.delay = Duration(backoff_ms_);
  return d;
}

}  // namespace sluice::jobmanager
