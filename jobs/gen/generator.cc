#include "jobs/gen/generator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

#include "engine/common/clock.h"
#include "engine/common/json.h"

namespace sluice::gen {

Status GenOptions::validate() const {
  auto frac = [](double f) { return f >= 0 && f <= 1; };
  if (users < 1) return Status::invalid_argument("--users must be at least 1");
  if (pages < 1) return Status::invalid_argument("--pages must be at least 1");
  if (skew < 0) return Status::invalid_argument("--skew must not be negative");
  if (!frac(out_of_order_fraction) || !frac(late_fraction) || !frac(malformed_fraction) ||
      out_of_order_fraction + late_fraction + malformed_fraction > 1) {
    return Status::invalid_argument(
        "--out-of-order, --late and --malformed are fractions between 0 and 1 whose sum is at "
        "most 1");
  }
  if (events_per_second <= 0) return Status::invalid_argument("--events-per-second must be positive");
  if (max_delay.count() < 0 || late_delay.count() < 0) {
    return Status::invalid_argument("--max-delay and --late-delay must not be negative");
  }
  if (count < 0 && rate <= 0) {
    return Status::invalid_argument("an unbounded run (no --count) needs --rate");
  }
  if (rate < 0) return Status::invalid_argument("--rate must not be negative");
  return Status::ok();
}

ClickGenerator::ClickGenerator(GenOptions options) : o_(options), rng_(options.seed) {
  page_cdf_.resize(static_cast<size_t>(o_.pages));
  double sum = 0;
  for (int64_t k = 0; k < o_.pages; ++k) {
    sum += 1.0 / std::pow(static_cast<double>(k + 1), o_.skew);
    page_cdf_[static_cast<size_t>(k)] = sum;
  }
  for (auto& c : page_cdf_) c /= sum;
}

int64_t ClickGenerator::pick_page() {
  double u = uniform();
  auto it = std::lower_bound(page_cdf_.begin(), page_cdf_.end(), u);
  if (it == page_cdf_.end()) --it;
  return it - page_cdf_.begin();
}

void ClickGenerator::malformed(std::string& out, int64_t ts, const std::string& user,
                               const std::string& page) {
  switch (next_u64() % 5) {
    case 0:  // truncated JSON
      out = R"({"user_id":")" + user + R"(","page_url":")" + page + R"(","event_type":"cli)";
      break;
    case 1:  // a required field is missing
      out = R"({"user_id":")" + user + R"(","event_type":"click","ts":)" + std::to_string(ts) + "}";
      break;
    case 2:  // wrong type
      out = R"({"user_id":")" + user + R"(","page_url":")" + page +
            R"(","event_type":"click","ts":"yesterday"})";
      break;
    case 3:  // not JSON at all
      out = "GET " + page + " HTTP/1.1";
      break;
    default:  // an array instead of an object
      out = "[1,2,3]";
      break;
  }
}

LineKind ClickGenerator::next(std::string& out) {
  int64_t base;
  if (o_.rate > 0) {
    base = wall_clock_ms();
  } else {
    base = o_.start_ts + static_cast<int64_t>(static_cast<double>(produced_) * 1000.0 /
                                              o_.events_per_second);
  }
  ++produced_;
  std::string user = "u" + std::to_string(next_u64() % static_cast<uint64_t>(o_.users));
  std::string page = "/p/" + std::to_string(pick_page());
  static const char* kTypes[] = {"click", "click", "click", "view", "view", "scroll", "purchase"};
  const char* type = kTypes[next_u64() % 7];

  double u = uniform();
  LineKind kind = LineKind::kOnTime;
  int64_t ts = base;
  if (u < o_.malformed_fraction) {
    malformed(out, ts, user, page);
    return LineKind::kMalformed;
  }
  u -= o_.malformed_fraction;
  if (u < o_.late_fraction) {
    int64_t d = o_.late_delay.count();
    ts = base - d - static_cast<int64_t>(uniform() * static_cast<double>(d));
    kind = LineKind::kLate;
  } else if (u - o_.late_fraction < o_.out_of_order_fraction && o_.max_delay.count() > 0) {
    ts = base - 1 - static_cast<int64_t>(uniform() * static_cast<double>(o_.max_delay.count()));
    kind = LineKind::kOutOfOrder;
  }
  out.clear();
  out += R"({"user_id":)";
  json_append_string(out, user);
  out += R"(,"page_url":)";
  json_append_string(out, page);
  out += R"(,"event_type":)";
  json_append_string(out, type);
  out += R"(,"ts":)";
  out += std::to_string(ts);
  out += "}";
  return kind;
}

Result<GenSummary> run_generator(const GenOptions& options,
                                 const std::function<Status(const std::string& line)>& emit,
                                 const std::function<bool()>& stop) {
  SLUICE_RETURN_IF_ERROR(options.validate());
  ClickGenerator g(options);
  GenSummary sum;
  std::string line;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; options.count < 0 || i < options.count; ++i) {
    if (stop && (i & 1023) == 0 && stop()) break;
    if (options.rate > 0) {
      auto due = start + std::chrono::nanoseconds(static_cast<int64_t>(1e9 * static_cast<double>(i) / options.rate));
      if (std::chrono::steady_clock::now() < due) std::this_thread::sleep_until(due);
    }
    switch (g.next(line)) {
      case LineKind::kOnTime: ++sum.on_time; break;
      case LineKind::kOutOfOrder: ++sum.out_of_order; break;
      case LineKind::kLate: ++sum.late; break;
      case LineKind::kMalformed: ++sum.malformed; break;
    }
    SLUICE_RETURN_IF_ERROR(emit(line));
  }
  return sum;
}

}  // namespace sluice::gen
