#include "jobs/fraud/rules.h"

#include <algorithm>
#include <cmath>

namespace sluice::fraud {

namespace {
std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}
}  // namespace

RuleSet RuleSet::updated(const RuleUpdate& u) const {
  RuleSet r = *this;
  r.version = u.version;
  r.effective_ts = u.effective_ts;
  if (u.travel_max_kmh) r.travel_max_kmh = *u.travel_max_kmh;
  if (u.travel_min_km) r.travel_min_km = *u.travel_min_km;
  if (u.card_test_count) r.card_test_count = *u.card_test_count;
  if (u.card_test_max_amount) r.card_test_max_amount = *u.card_test_max_amount;
  if (u.card_test_window_ms) r.card_test_window_ms = *u.card_test_window_ms;
  if (u.error_storm_count) r.error_storm_count = *u.error_storm_count;
  if (u.allow_users) r.allow_users = sorted(*u.allow_users);
  if (u.allow_merchants) r.allow_merchants = sorted(*u.allow_merchants);
  return r;
}

std::string RuleSet::check(const RuleUpdate& u) {
  if (u.version <= 0) return "version must be a positive integer (version 0 is the job's --arg defaults)";
  if (u.travel_max_kmh && !(*u.travel_max_kmh > 0)) return "travel_max_kmh must be positive";
  if (u.travel_min_km && !(*u.travel_min_km >= 0)) return "travel_min_km must not be negative";
  if (u.card_test_count && (*u.card_test_count < 2 || *u.card_test_count > 1000)) return "card_test_count must be 2..1000";
  if (u.card_test_max_amount && !(*u.card_test_max_amount > 0)) return "card_test_max_amount must be positive";
  if (u.card_test_window_ms && (*u.card_test_window_ms <= 0 || *u.card_test_window_ms > 86'400'000)) {
    return "card_test_window_ms must be 1..86400000";
  }
  if (u.error_storm_count && *u.error_storm_count < 1) return "error_storm_count must be at least 1";
  for (const auto* list : {&u.allow_users, &u.allow_merchants}) {
    if (*list && (*list)->size() > 10'000) return "an allow-list holds at most 10000 entries";
  }
  return "";
}

bool RuleSet::allows_user(std::string_view user) const {
  return std::binary_search(allow_users.begin(), allow_users.end(), user);
}
bool RuleSet::allows_merchant(std::string_view merchant) const {
  return std::binary_search(allow_merchants.begin(), allow_merchants.end(), merchant);
}

const std::vector<Country>& countries() {
  static const std::vector<Country> table = {
      {"DE", 52.52, 13.40},  {"FR", 48.86, 2.35},    {"NL", 52.37, 4.90},   {"ES", 40.42, -3.70},
      {"IT", 41.90, 12.50},  {"PL", 52.23, 21.01},   {"GB", 51.51, -0.13},  {"SE", 59.33, 18.07},
      {"US", 38.90, -77.04}, {"BR", -15.79, -47.88}, {"JP", 35.68, 139.69}, {"IN", 28.61, 77.21},
      {"AU", -35.28, 149.13}, {"ZA", -25.75, 28.19}, {"NG", 9.08, 7.40},    {"SG", 1.35, 103.82},
  };
  return table;
}

const Country* find_country(std::string_view code) {
  for (const auto& c : countries())
    if (c.code == code) return &c;
  return nullptr;
}

double distance_km(std::string_view a, std::string_view b) {
  const Country* x = find_country(a);
  const Country* y = find_country(b);
  if (!x || !y) return -1;
  if (x == y) return 0;
  constexpr double kRad = M_PI / 180.0;
  double dlat = (y->lat - x->lat) * kRad, dlon = (y->lon - x->lon) * kRad;
  double h = std::sin(dlat / 2) * std::sin(dlat / 2) +
             std::cos(x->lat * kRad) * std::cos(y->lat * kRad) * std::sin(dlon / 2) * std::sin(dlon / 2);
  return 2 * 6371.0 * std::asin(std::min(1.0, std::sqrt(h)));
}

}  // namespace sluice::fraud
