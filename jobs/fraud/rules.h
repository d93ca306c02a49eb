// The fraud rules: their defaults (shared with the generator, which is
// built so that background traffic never triggers them and every injected
// scenario does), the resolved rule set of one version, and the country
// table behind impossible travel.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/serde.h"
#include "jobs/fraud/events.h"

namespace sluice::fraud {

/// The defaults of every rule. The generator (jobs/gen/fraud.h) keeps its
/// background traffic clear of each with a margin and puts its scenarios
/// and near misses clearly on either side.
struct RuleDefaults {
  // stuffing_purchase (CEP, --arg fail_count / amount_threshold / within)
  static constexpr int64_t kFailCount = 5;
  static constexpr double kAmountThreshold = 500.0;
  static constexpr int64_t kWithinMs = 10 * 60'000;
  static constexpr int64_t kDeviceTtlMs = 30LL * 24 * 3'600'000;  // a device is known this long after a purchase
  // impossible_travel
  static constexpr double kTravelMaxKmh = 900.0;
  static constexpr double kTravelMinKm = 500.0;
  // card_testing
  static constexpr int64_t kCardTestCount = 5;
  static constexpr double kCardTestMaxAmount = 2.0;
  static constexpr int64_t kCardTestWindowMs = 2 * 60'000;
  // error_storm (the window is the interval join's, --arg error_window)
  static constexpr int64_t kErrorStormCount = 20;
  static constexpr int64_t kErrorWindowMs = 5 * 60'000;
};

/// The rules of one version, every value resolved. Value type.
struct RuleSet {
  int64_t version = 0;
  int64_t effective_ts = INT64_MIN;
  double travel_max_kmh = RuleDefaults::kTravelMaxKmh;
  double travel_min_km = RuleDefaults::kTravelMinKm;
  int64_t card_test_count = RuleDefaults::kCardTestCount;
  double card_test_max_amount = RuleDefaults::kCardTestMaxAmount;
  int64_t card_test_window_ms = RuleDefaults::kCardTestWindowMs;
  int64_t error_storm_count = RuleDefaults::kErrorStormCount;
  std::vector<std::string> allow_users;      // sorted
  std::vector<std::string> allow_merchants;  // sorted
  SLUICE_FIELDS(version, effective_ts, travel_max_kmh, travel_min_km, card_test_count, card_test_max_amount,
                card_test_window_ms, error_storm_count, allow_users, allow_merchants)

  /// This set with `u` applied on top (u's version and effective time).
  RuleSet updated(const RuleUpdate& u) const;
  /// Empty when `u` is acceptable; otherwise what is wrong with it.
  static std::string check(const RuleUpdate& u);
  bool allows_user(std::string_view user) const;
  bool allows_merchant(std::string_view merchant) const;
};

/// Where a country is (its capital), for impossible travel.
struct Country {
  std::string_view code;
  double lat;
  double lon;
};
/// The countries the generator uses; nullptr for others.
const Country* find_country(std::string_view code);
/// Great-circle distance in km between two known countries; -1 when either
/// is unknown (then no travel rule applies).
double distance_km(std::string_view a, std::string_view b);
/// Every country of the table, in a fixed order (the generator picks from it).
const std::vector<Country>& countries();

}  // namespace sluice::fraud
