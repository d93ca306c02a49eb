#include "jobs/gen/fraud.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <queue>
#include <random>
#include <thread>
#include <vector>

#include "engine/common/clock.h"
#include "engine/common/json.h"
#include "jobs/fraud/events.h"
#include "jobs/fraud/rules.h"

namespace sluice::gen {

using fraud::ApiError;
using fraud::Login;
using fraud::RuleDefaults;
using fraud::Transaction;

const char* fraud_stream_name(FraudStream s) {
  switch (s) {
    case FraudStream::kLogins: return "logins";
    case FraudStream::kApiErrors: return "api_errors";
    case FraudStream::kTransactions: return "transactions";
  }
  return "?";
}

Status FraudOptions::validate() const {
  auto frac = [](double f) { return f >= 0 && f <= 1; };
  if (count < 0) return Status::invalid_argument("--count must not be negative (--kind fraud is bounded)");
  if (users < 1) return Status::invalid_argument("--users must be at least 1");
  if (scenarios < 0 || scenarios > 100'000) return Status::invalid_argument("--scenarios must be 0..100000");
  if (scenarios > 0 && !triggers_in_run && duration < Duration(25 * 60'000)) {
    return Status::invalid_argument(
        "--duration must be at least 25m to hold the scenarios (or --scenarios 0, or --triggers-in-run)");
  }
  if (duration.count() <= 0) return Status::invalid_argument("--duration must be positive");
  if (!frac(out_of_order_fraction) || !frac(malformed_fraction)) {
    return Status::invalid_argument("--out-of-order and --malformed are fractions between 0 and 1");
  }
  if (max_delay.count() < 0 || max_delay.count() > 60'000) return Status::invalid_argument("--max-delay must be 0..60s");
  if (fail_count < 2 || fail_count > 50) return Status::invalid_argument("--fail-count must be 2..50");
  if (!(amount_threshold >= 10 && amount_threshold <= 100'000)) {
    return Status::invalid_argument("--amount-threshold must be 10..100000");
  }
  if (rate < 0) return Status::invalid_argument("--rate must not be negative");
  return Status::ok();
}

namespace {

constexpr int64_t kMinute = 60'000;

/// One event line waiting for its arrival time.
struct Pending {
  int64_t arrival;
  uint64_t seq;
  std::string line;
  bool operator>(const Pending& o) const { return arrival != o.arrival ? arrival > o.arrival : seq > o.seq; }
};

/// A generated event before it becomes a line.
struct Event {
  int64_t ts = 0;
  FraudStream stream = FraudStream::kLogins;
  std::string line;
};

const char* const kEndpoints[] = {"/v1/login", "/v1/cards", "/v1/payments", "/v1/profile", "/v1/transfers"};
const int32_t kStatuses[] = {400, 401, 403, 404, 429, 500, 502, 503};

class FraudGenerator {
 public:
  explicit FraudGenerator(const FraudOptions& o) : o_(o), rng_(o.seed) {
    user_fails_.resize(static_cast<size_t>(o.users));
    user_errors_.resize(static_cast<size_t>(o.users));
  }

  Result<FraudSummary> run(const std::function<Status(FraudStream, const std::string&)>& emit,
                           const std::function<Status(const std::string&)>& truth, const std::function<bool()>& stop) {
    emit_ = &emit;
    std::vector<Event> scenario_events;
    SLUICE_RETURN_IF_ERROR(make_scenarios(scenario_events, truth));
    std::stable_sort(scenario_events.begin(), scenario_events.end(),
                     [](const Event& a, const Event& b) { return a.ts < b.ts; });
    size_t next_scenario = 0;
    const double step = static_cast<double>(o_.duration.count()) / std::max<int64_t>(o_.count, 1);
    pace_start_ = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < o_.count; ++i) {
      if (stop && stop()) break;
      const int64_t ts = o_.start_ts + static_cast<int64_t>(step * static_cast<double>(i));
      while (next_scenario < scenario_events.size() && scenario_events[next_scenario].ts <= ts) {
        SLUICE_RETURN_IF_ERROR(queue(std::move(scenario_events[next_scenario++]), false));
      }
      SLUICE_RETURN_IF_ERROR(queue(background(ts), true));
      SLUICE_RETURN_IF_ERROR(release(ts));
    }
    while (next_scenario < scenario_events.size()) {
      if (stop && stop()) break;
      SLUICE_RETURN_IF_ERROR(queue(std::move(scenario_events[next_scenario++]), false));
    }
    SLUICE_RETURN_IF_ERROR(release(INT64_MAX));
    return summary_;
  }

 private:
  uint64_t next_u64() { return rng_(); }
  double uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }
  int64_t uniform_int(int64_t lo, int64_t hi) {  // [lo, hi]
    return lo + static_cast<int64_t>(next_u64() % static_cast<uint64_t>(hi - lo + 1));
  }
  static double cents(double x) { return std::round(x * 100.0) / 100.0; }

  // ---- users ---------------------------------------------------------------
  std::string user_name(int64_t u) const {
    char buf[24];
    std::snprintf(buf, sizeof buf, "u%06lld", static_cast<long long>(u));
    return buf;
  }
  /// A background user's home country and devices follow from its number.
  const fraud::Country& home_of(int64_t u) const {
    const auto& cs = fraud::countries();
    return cs[static_cast<size_t>((static_cast<uint64_t>(u) * 2654435761u + o_.seed) % cs.size())];
  }
  int64_t devices_of(int64_t u) const { return 1 + static_cast<int64_t>((static_cast<uint64_t>(u) * 40503u) % 2); }
  static std::string device_name(const std::string& user, int64_t k) { return "d-" + user + "-" + std::to_string(k); }
  static std::string ip_of(uint64_t h) {
    return "10." + std::to_string((h >> 16) & 255) + "." + std::to_string((h >> 8) & 255) + "." +
           std::to_string(h & 255);
  }
  static const char* currency_of(std::string_view country) {
    if (country == "US") return "USD";
    if (country == "GB") return "GBP";
    if (country == "JP") return "JPY";
    if (country == "SE") return "SEK";
    if (country == "PL") return "PLN";
    if (country == "DE" || country == "FR" || country == "NL" || country == "ES" || country == "IT") return "EUR";
    return "USD";
  }

  // ---- event lines ------------------------------------------------------------
  std::string next_id(FraudStream s) {
    static const char kPrefix[] = {'l', 'e', 't'};
    return std::string(1, kPrefix[static_cast<int>(s)]) + std::to_string(ids_[static_cast<int>(s)]++);
  }
  Event login(const std::string& user, const std::string& device, std::string_view country, bool success, int64_t ts,
              std::string* id = nullptr) {
    Login l{next_id(FraudStream::kLogins), user, device, ip_of(std::hash<std::string>{}(device)),
            std::string(country), success, ts};
    if (id) *id = l.id;
    return Event{ts, FraudStream::kLogins, to_json(l)};
  }
  Event api_error(const std::string& user, int64_t ts, std::string* id = nullptr) {
    ApiError e{next_id(FraudStream::kApiErrors), user, kEndpoints[next_u64() % 5], kStatuses[next_u64() % 8], ts};
    if (id) *id = e.id;
    return Event{ts, FraudStream::kApiErrors, to_json(e)};
  }
  Event txn(const std::string& user, double amount, std::string_view country, const std::string& merchant,
            const std::string& device, int64_t ts, std::string* id = nullptr) {
    Transaction t{next_id(FraudStream::kTransactions), user, cents(amount), currency_of(country), merchant, device, ts};
    if (id) *id = t.id;
    return Event{ts, FraudStream::kTransactions, to_json(t)};
  }
  std::string merchant() { return "m" + std::to_string(next_u64() % 300); }

  // ---- background -------------------------------------------------------------
  /// One background event at `ts` that keeps its user clear of every rule.
  Event background(int64_t ts) {
    const int64_t u = static_cast<int64_t>(next_u64() % static_cast<uint64_t>(o_.users));
    const std::string user = user_name(u);
    const auto& home = home_of(u);
    const std::string device = device_name(user, static_cast<int64_t>(next_u64() % static_cast<uint64_t>(devices_of(u))));
    const double r = uniform();
    if (r < 0.10) {
      // An API error, unless the user already has the most allowed in the window.
      auto& errors = user_errors_[static_cast<size_t>(u)];
      while (!errors.empty() && errors.front() <= ts - RuleDefaults::kErrorWindowMs) errors.pop_front();
      const size_t max_errors = static_cast<size_t>(std::min<int64_t>(3, RuleDefaults::kErrorStormCount - 1));
      if (errors.size() < max_errors) {
        errors.push_back(ts);
        return api_error(user, ts);
      }
      return login(user, device, home.code, true, ts);
    }
    if (r < 0.40) {
      // A login; a failure only while the user has few enough in 10 minutes.
      bool success = uniform() >= 0.15;
      auto& fails = user_fails_[static_cast<size_t>(u)];
      while (!fails.empty() && fails.front() <= ts - RuleDefaults::kWithinMs) fails.pop_front();
      const size_t max_fails = static_cast<size_t>(std::min<int64_t>(2, o_.fail_count - 1));
      if (!success && fails.size() >= max_fails) success = true;
      if (!success) fails.push_back(ts);
      return login(user, device, home.code, success, ts);
    }
    // A purchase of 3.00 .. 3000 (log-uniform): never a card test.
    const double amount = 3.0 * std::exp(uniform() * std::log(1000.0));
    return txn(user, amount, home.code, merchant(), device, ts);
  }

  // ---- scenarios ----------------------------------------------------------------
  struct Truth {
    std::string scenario, variant, user, rule, trigger;
    bool alert = false;
    std::vector<std::string> events;
    int64_t ts = 0;
    SLUICE_FIELDS(scenario, variant, user, alert, rule, trigger, events, ts)
  };

  Status make_scenarios(std::vector<Event>& out, const std::function<Status(const std::string&)>& truth) {
    // A scenario starts 2 minutes in or later (its history, up to half an
    // hour before, may come before the background: it is written first)
    // and its alert falls within the background's span.
    const int64_t span = o_.duration.count() - 22 * kMinute;
    for (int64_t k = 0; k < o_.scenarios; ++k) {
      for (int kind = 0; kind < 4; ++kind) {
        for (int near = 0; near < 2; ++near) {
          int64_t t0 = o_.start_ts + 2 * kMinute + static_cast<int64_t>(uniform() * static_cast<double>(span));
          Truth t;
          t.user = std::string("v") + "ctie"[kind] + std::to_string(k) + (near ? "n" : "p");
          t.alert = near == 0;
          auto make = [&](std::vector<Event>& into, Truth& truth, int64_t start) {
            switch (kind) {
              case 0: stuffing(into, truth, start, near ? static_cast<int>(k % 4) + 1 : 0); break;
              case 1: card_testing(into, truth, start, near != 0); break;
              case 2: travel(into, truth, start, near != 0); break;
              default: error_storm(into, truth, start, near ? static_cast<int>(k % 2) + 1 : 0); break;
            }
          };
          if (o_.triggers_in_run) {
            // The trigger's offset from the start depends on the draws only:
            // made once from copies of the generator's state, then for real
            // so that the trigger falls within the middle 80 % of the span.
            const int64_t d = o_.duration.count();
            const int64_t want = o_.start_ts + d / 10 + static_cast<int64_t>(uniform() * static_cast<double>(d * 8 / 10));
            const auto rng = rng_;
            int64_t ids[3] = {ids_[0], ids_[1], ids_[2]};
            std::vector<Event> probe_events;
            Truth probe = t;
            make(probe_events, probe, 0);
            rng_ = rng;
            std::copy(ids, ids + 3, ids_);
            t0 = want - probe.ts;
          }
          make(out, t, t0);
          ++(t.alert ? summary_.scenarios : summary_.near_misses);
          SLUICE_RETURN_IF_ERROR(truth(to_json(t)));
        }
      }
    }
    return Status::ok();
  }

  const fraud::Country& pick_country() {
    const auto& cs = fraud::countries();
    return cs[next_u64() % 8];  // the European ones: the far ones stay for travel
  }

  /// Credential stuffing, then a purchase from a new device. near: 0 the
  /// alerting sequence; 1 one failed login too few; 2 the purchase from a
  /// known device; 3 below the amount threshold; 4 after the 10 minutes.
  void stuffing(std::vector<Event>& out, Truth& t, int64_t t0, int near) {
    static const char* const kVariants[] = {"positive", "fewer_fails", "known_device", "below_threshold", "too_late"};
    t.scenario = "stuffing_purchase";
    t.rule = "stuffing_purchase";
    t.variant = kVariants[near];
    const auto& home = pick_country();
    const std::string own = device_name(t.user, 0), attacker = device_name(t.user, 9);
    // History: the user's own device becomes known half an hour before.
    out.push_back(login(t.user, own, home.code, true, t0 - 30 * kMinute));
    out.push_back(txn(t.user, 40 + uniform() * 60, home.code, merchant(), own, t0 - 29 * kMinute));
    int fails = static_cast<int>(o_.fail_count) + (near == 0 ? static_cast<int>(uniform_int(0, 3)) : 0);
    if (near == 1) fails = static_cast<int>(o_.fail_count) - 1;
    int64_t ts = t0;
    for (int i = 0; i < fails; ++i) {
      std::string id;
      out.push_back(login(t.user, attacker, home.code, false, ts, &id));
      t.events.push_back(id);
      ts += near == 4 ? uniform_int(2'000, 10'000) : uniform_int(5'000, 20'000);
    }
    out.push_back(login(t.user, attacker, home.code, true, ts));  // the stuffed credentials work
    int64_t buy_ts = std::max(ts + 10'000, t0 + uniform_int(2 * kMinute, 8 * kMinute));
    if (near == 4) buy_ts = t0 + 11 * kMinute + uniform_int(0, kMinute);
    double amount = o_.amount_threshold + uniform() * 2500;
    if (near == 3) amount = std::max(3.0, o_.amount_threshold * (0.2 + 0.7 * uniform()));
    const std::string& device = near == 2 ? own : attacker;
    out.push_back(txn(t.user, amount, home.code, merchant(), device, buy_ts, &t.trigger));
    t.events.push_back(t.trigger);
    t.ts = buy_ts;
  }

  /// A burst of small purchases at one merchant; near: one too few.
  void card_testing(std::vector<Event>& out, Truth& t, int64_t t0, bool near) {
    t.scenario = "card_testing";
    t.rule = "card_testing";
    t.variant = near ? "one_too_few" : "positive";
    const auto& home = pick_country();
    const std::string device = device_name(t.user, 0), m = merchant();
    out.push_back(login(t.user, device, home.code, true, t0 - 10 * kMinute));
    const int64_t k = RuleDefaults::kCardTestCount;
    const int64_t n = near ? k - 1 : k + uniform_int(0, k - 2);  // one alert: the rest stay under k
    int64_t ts = t0;
    for (int64_t i = 0; i < n; ++i) {
      std::string id;
      const double amount = 0.5 + uniform() * (RuleDefaults::kCardTestMaxAmount - 0.5);
      out.push_back(txn(t.user, amount, home.code, m, device, ts, &id));
      if (i < k) t.events.push_back(id);
      if (i == std::min(k, n) - 1) {
        t.trigger = id;
        t.ts = ts;
      }
      ts += uniform_int(5'000, 15'000);  // k of them span under the 2-minute window
    }
  }

  /// Two successful logins in countries far apart; near: with time enough
  /// to travel (at half the rule's speed).
  void travel(std::vector<Event>& out, Truth& t, int64_t t0, bool near) {
    t.scenario = "impossible_travel";
    t.rule = "impossible_travel";
    t.variant = near ? "feasible" : "positive";
    const auto& cs = fraud::countries();
    const auto& home = cs[next_u64() % 8];
    std::string first_id;
    out.push_back(login(t.user, device_name(t.user, 0), home.code, true, t0, &first_id));
    if (near) {
      // A neighbour 500..1500 km away, reached at 450 km/h or slower.
      const fraud::Country* to = nullptr;
      for (size_t i = 0; i < 8 && !to; ++i) {
        const auto& c = cs[(next_u64() + i) % 8];
        double d = fraud::distance_km(home.code, c.code);
        if (d >= 600 && d <= 1500) to = &c;
      }
      if (!to) to = &cs[(&home == &cs[0]) ? 1 : 0];
      const double d = fraud::distance_km(home.code, to->code);
      const int64_t dt = static_cast<int64_t>(std::ceil(d / (RuleDefaults::kTravelMaxKmh / 2) * 3'600'000.0));
      out.push_back(login(t.user, device_name(t.user, 0), to->code, true, t0 + dt, &t.trigger));
      t.ts = t0 + dt;
    } else {
      const auto& far = cs[8 + next_u64() % (cs.size() - 8)];  // another continent: over 3000 km
      const int64_t dt = uniform_int(10 * kMinute, 40 * kMinute);
      out.push_back(login(t.user, device_name(t.user, 1), far.code, true, t0 + dt, &t.trigger));
      t.ts = t0 + dt;
    }
    t.events = {first_id, t.trigger};
  }

  /// API errors, then a purchase. near: 0 the storm; 1 one error too few;
  /// 2 the purchase after the errors left the window.
  void error_storm(std::vector<Event>& out, Truth& t, int64_t t0, int near) {
    t.scenario = "error_storm";
    t.rule = "error_storm";
    t.variant = near == 0 ? "positive" : near == 1 ? "one_too_few" : "stale";
    const auto& home = pick_country();
    const std::string device = device_name(t.user, 0);
    out.push_back(login(t.user, device, home.code, true, t0 - 10 * kMinute));
    const int64_t m = RuleDefaults::kErrorStormCount;
    const int64_t n = near == 1 ? m - 1 : m + uniform_int(0, 20);
    const int64_t spread = uniform_int(kMinute, 3 * kMinute);
    int64_t last = t0;
    for (int64_t i = 0; i < n; ++i) {
      std::string id;
      last = t0 + spread * i / n;
      out.push_back(api_error(t.user, last, &id));
      t.events.push_back(id);
    }
    const int64_t buy = near == 2 ? last + RuleDefaults::kErrorWindowMs + uniform_int(30'000, 90'000)
                                  : last + uniform_int(10'000, 60'000);
    out.push_back(txn(t.user, 20 + uniform() * 180, home.code, merchant(), device, buy, &t.trigger));
    t.events.push_back(t.trigger);
    t.ts = buy;
  }

  // ---- output -------------------------------------------------------------------
  Status queue(Event e, bool background) {
    std::string line = std::move(e.line);
    if (background && uniform() < o_.malformed_fraction) {
      line = malformed(line);
      ++summary_.malformed;
    }
    int64_t arrival = e.ts;
    if (uniform() < o_.out_of_order_fraction && o_.max_delay.count() > 0) {
      arrival += 1 + static_cast<int64_t>(uniform() * static_cast<double>(o_.max_delay.count() - 1));
      ++summary_.out_of_order;
    }
    pending_[static_cast<int>(e.stream)].push(Pending{arrival, seq_++, std::move(line)});
    return Status::ok();
  }
  /// Emits every line that arrives before `now` (later events are at or after it).
  Status release(int64_t now) {
    for (int s = 0; s < 3; ++s) {
      auto& q = pending_[s];
      while (!q.empty() && q.top().arrival < now) {
        SLUICE_RETURN_IF_ERROR((*emit_)(static_cast<FraudStream>(s), q.top().line));
        ++summary_.lines[s];
        q.pop();
        pace();
      }
    }
    return Status::ok();
  }
  void pace() {
    if (o_.rate <= 0) return;
    if (++paced_ % 64 != 0) return;
    auto due = pace_start_ + std::chrono::duration<double>(static_cast<double>(paced_) / o_.rate);
    std::this_thread::sleep_until(std::chrono::time_point_cast<std::chrono::steady_clock::duration>(due));
  }
  /// A line the job must reject: not JSON, a field missing, or of the wrong type.
  std::string malformed(const std::string& line) {
    switch (next_u64() % 3) {
      case 0: return line.substr(0, line.size() / 2);
      case 1: {
        auto at = line.find(",\"ts\":");
        return at == std::string::npos ? "{}" : line.substr(0, at) + "}";
      }
      default: {
        auto at = line.find("\"user\":\"");
        return at == std::string::npos ? "[]" : line.substr(0, at) + "\"user\":42,\"x\":\"" + line.substr(at + 8);
      }
    }
  }

  FraudOptions o_;
  std::mt19937_64 rng_;
  const std::function<Status(FraudStream, const std::string&)>* emit_ = nullptr;
  std::vector<std::deque<int64_t>> user_fails_;
  std::vector<std::deque<int64_t>> user_errors_;
  int64_t ids_[3] = {0, 0, 0};
  std::priority_queue<Pending, std::vector<Pending>, std::greater<>> pending_[3];
  uint64_t seq_ = 0;
  uint64_t paced_ = 0;
  std::chrono::steady_clock::time_point pace_start_;
  FraudSummary summary_;
};

}  // namespace

Result<FraudSummary> run_fraud(const FraudOptions& options,
                               const std::function<Status(FraudStream, const std::string&)>& emit,
                               const std::function<Status(const std::string&)>& truth,
                               const std::function<bool()>& stop) {
  SLUICE_RETURN_IF_ERROR(options.validate());
  FraudGenerator g(options);
  return g.run(emit, truth, stop);
}

}  // namespace sluice::gen
