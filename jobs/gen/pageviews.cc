#include "jobs/gen/pageviews.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <queue>
#include <random>
#include <thread>

#include "engine/common/clock.h"
#include "engine/common/json.h"

namespace sluice::gen {

Status PageViewOptions::validate() const {
  auto frac = [](double f) { return f >= 0 && f <= 1; };
  if (users < 1) return Status::invalid_argument("--users must be at least 1");
  if (products < 1) return Status::invalid_argument("--products must be at least 1");
  if (think_time.count() < 1000) return Status::invalid_argument("--think-time must be at least 1s");
  if (gap.count() < 10'000) return Status::invalid_argument("--gap must be at least 10s");
  if (pause.count() < 0 || allowed_lateness.count() < 0 || out_of_orderness.count() < 0) {
    return Status::invalid_argument("--pause, --allowed-lateness and --out-of-orderness must not be negative");
  }
  if (think_time * 3 >= gap) return Status::invalid_argument("--think-time must be under a third of --gap");
  for (double c : conversion) {
    if (!frac(c)) return Status::invalid_argument("--conversion rates are fractions between 0 and 1");
  }
  if (conversion.size() != 3) {
    return Status::invalid_argument("--conversion takes three rates: home->product, product->cart, cart->checkout");
  }
  for (double f : {purchase_rate, split_fraction, bridge_fraction, full_url_fraction}) {
    if (!frac(f)) return Status::invalid_argument("--purchase-rate, --split, --bridge and --full-urls are fractions between 0 and 1");
  }
  if (!frac(out_of_order_fraction) || !frac(late_fraction) || !frac(malformed_fraction) ||
      !frac(very_late_fraction) ||
      out_of_order_fraction + late_fraction + malformed_fraction > 1) {
    return Status::invalid_argument(
        "--out-of-order, --late, --very-late and --malformed are fractions between 0 and 1 (the first three sum to at most 1)");
  }
  if (late_fraction > 0 && allowed_lateness.count() < 3'000) {
    return Status::invalid_argument("late events need --allowed-lateness of at least 3s");
  }
  if (count < 0 && rate <= 0) return Status::invalid_argument("an unbounded run (no --count) needs --rate");
  if (rate < 0) return Status::invalid_argument("--rate must not be negative");
  return Status::ok();
}

namespace {

struct Page {
  std::string path;
  std::string type = "view";
};

struct User {
  std::string id;
  std::vector<std::string> devices;
  std::string device;
  int64_t next_ts = 0;
  int64_t last_ts = 0;
  std::deque<Page> plan;
};

enum class Kind { kOnTime, kOutOfOrder, kLate, kBridging, kVeryLate, kMalformed };

struct Pending {
  int64_t arrival;
  uint64_t seq;
  std::string line;
  Kind kind;
  bool operator>(const Pending& o) const { return arrival != o.arrival ? arrival > o.arrival : seq > o.seq; }
};

class Generator {
 public:
  explicit Generator(const PageViewOptions& o) : o_(o), rng_(o.seed) {}

  Result<PageViewSummary> run(const std::function<Status(const std::string&)>& emit, const std::function<bool()>& stop) {
    const bool paced = o_.rate > 0;
    const int64_t start = paced ? wall_clock_ms() : o_.start_ts;
    int64_t users = o_.users;
    if (paced) {
      // Each user browses at a human pace: about one event per
      // (6 * think + gap + pause) / 6 of event time.
      const double per_user = (6.0 * static_cast<double>(o_.think_time.count()) +
                               static_cast<double>(o_.gap.count() + o_.pause.count())) / 6.0 / 1000.0;
      users = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(o_.rate * per_user)));
    }
    very_late_base_ = start - 2 * 86'400'000;
    users_.resize(static_cast<size_t>(users));
    for (int64_t i = 0; i < users; ++i) {
      User& u = users_[static_cast<size_t>(i)];
      u.id = "u" + std::to_string(i);
      static const char* kDevices[] = {"desktop", "mobile", "tablet"};
      const int n = 1 + static_cast<int>(rng_() % 3);
      for (int d = 0; d < n; ++d) u.devices.push_back(kDevices[(i + d) % 3]);
      u.next_ts = start + static_cast<int64_t>(uniform() * static_cast<double>(o_.gap.count() + o_.pause.count()));
      heap_.push({u.next_ts, static_cast<size_t>(i)});
    }
    int64_t emitted = 0;
    auto done = [&] { return o_.count >= 0 && emitted >= o_.count; };
    auto flush_until = [&](int64_t t) -> Status {
      while (!pending_.empty() && pending_.top().arrival <= t && !done()) {
        if (paced) {
          const int64_t wait = pending_.top().arrival - wall_clock_ms();
          if (wait > 0) std::this_thread::sleep_for(std::chrono::milliseconds(wait));
        }
        SLUICE_RETURN_IF_ERROR(emit(pending_.top().line));
        count(pending_.top().kind);
        pending_.pop();
        ++emitted;
      }
      return Status::ok();
    };
    while (!done()) {
      if (stop && (emitted & 255) == 0 && stop()) break;
      auto [t, index] = heap_.top();
      heap_.pop();
      SLUICE_RETURN_IF_ERROR(flush_until(t));
      if (done()) break;
      step(users_[index], t);
      heap_.push({users_[index].next_ts, index});
    }
    return summary_;
  }

 private:
  double uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }
  int64_t uniform_ms(int64_t lo, int64_t hi) { return hi <= lo ? lo : lo + static_cast<int64_t>(rng_() % static_cast<uint64_t>(hi - lo + 1)); }
  bool chance(double p) { return uniform() < p; }
  int64_t exponential_ms(int64_t mean) { return static_cast<int64_t>(-std::log(1.0 - uniform()) * static_cast<double>(mean)); }

  std::string product() { return "/product/" + std::to_string(rng_() % static_cast<uint64_t>(o_.products)); }
  Page browse() {
    switch (rng_() % 5) {
      case 0: return {"/category/" + std::to_string(rng_() % 12)};
      case 1: return {"/search?q=item" + std::to_string(rng_() % 50)};
      case 2: return {"/about"};
      default: return {product()};
    }
  }
  void browse_some(std::deque<Page>& plan, int max) {
    for (int n = static_cast<int>(rng_() % static_cast<uint64_t>(max + 1)); n > 0; --n) plan.push_back(browse());
  }

  // A visit: how far it goes down the funnel is drawn with the conversion rates.
  std::deque<Page> plan_session() {
    std::deque<Page> plan;
    if (!chance(0.75)) {
      plan.push_back(browse());
      browse_some(plan, 2);
      if (!chance(0.6)) return plan;  // never reaches the home page: not in the funnel
    }
    plan.push_back({"/"});
    browse_some(plan, 2);
    if (!chance(o_.conversion[0])) return plan;
    const int views = 1 + static_cast<int>(rng_() % 4);
    std::string last;
    for (int i = 0; i < views; ++i) {
      last = product();
      plan.push_back({last});
    }
    if (!chance(o_.conversion[1])) {
      browse_some(plan, 2);
      return plan;
    }
    plan.push_back({last, "add_to_cart"});
    plan.push_back({"/cart"});
    if (!chance(o_.conversion[2])) return plan;
    plan.push_back({"/checkout", "checkout"});
    if (chance(o_.purchase_rate)) plan.push_back({"/checkout", "purchase"});
    return plan;
  }

  // The user's next event, then when the one after it happens.
  void step(User& u, int64_t ts) {
    if (u.plan.empty()) {
      u.plan = plan_session();
      u.device = u.devices[rng_() % u.devices.size()];
      ++summary_.sessions_started;
    }
    Page page = u.plan.front();
    u.plan.pop_front();
    push_event(u, page, ts);
    u.last_ts = ts;
    if (!u.plan.empty()) {
      u.next_ts = ts + std::clamp<int64_t>(exponential_ms(o_.think_time.count()), 1'000, o_.gap.count() / 3);
      return;
    }
    // Between sessions.
    const int64_t gap = o_.gap.count(), lateness = o_.allowed_lateness.count(), ooo = o_.out_of_orderness.count();
    if (!chance(o_.split_fraction)) {
      u.next_ts = ts + gap + 1'000 + exponential_ms(o_.pause.count());
    } else if (chance(0.3)) {
      // Back just before the gap ends: still the same session.
      u.next_ts = ts + gap - uniform_ms(1'000, std::max<int64_t>(1'000, lateness / 3));
    } else {
      // Just over the gap: two sessions, unless an event in the middle of
      // the pause bridges them. It arrives `x` after the second session's
      // first event (so both exist, and the first has fired); the pause is
      // gap + eps with eps + x under lateness + ooo, so the first session's
      // state is still there when it arrives.
      const int64_t eps = uniform_ms(1'000, std::max<int64_t>(1'000, lateness / 3));
      u.next_ts = ts + gap + eps;
      if (lateness >= 3'000 && chance(o_.bridge_fraction)) {
        const int64_t x = ooo + uniform_ms(1'000, std::max<int64_t>(1'000, lateness / 3));
        Page bridge = browse();
        const int64_t mid = ts + (gap + eps) / 2;
        queue(render(u, bridge, mid), u.next_ts + x, Kind::kBridging);
      }
    }
  }

  void push_event(User& u, const Page& page, int64_t ts) {
    double r = uniform();
    if (r < o_.malformed_fraction) {
      queue(malformed(u, page, ts), ts, Kind::kMalformed);
    } else if ((r -= o_.malformed_fraction) < o_.late_fraction) {
      // Behind the watermark (about arrival - ooo) by less than the lateness.
      const int64_t ooo = o_.out_of_orderness.count();
      queue(render(u, page, ts), ts + ooo + uniform_ms(1'000, std::max<int64_t>(1'000, o_.allowed_lateness.count() - 2'000)),
            Kind::kLate);
    } else if ((r -= o_.late_fraction) < o_.out_of_order_fraction && o_.out_of_orderness.count() > 0) {
      queue(render(u, page, ts), ts + uniform_ms(1, o_.out_of_orderness.count()), Kind::kOutOfOrder);
    } else {
      queue(render(u, page, ts), ts, Kind::kOnTime);
    }
    if (chance(o_.very_late_fraction)) {
      // Days before the first session, spaced more than a gap apart: each
      // is a session of its own if a job ever takes it.
      const int64_t vts = very_late_base_ - static_cast<int64_t>(very_late_++) * 3 * o_.gap.count();
      User& other = users_[rng_() % users_.size()];
      queue(render(other, browse(), vts), ts, Kind::kVeryLate);
    }
  }

  std::string url(const std::string& path) {
    if (!chance(o_.full_url_fraction)) return path;
    return "https://shop.example" + path + (path.find('?') == std::string::npos ? "?ref=mail" : "&ref=mail");
  }

  std::string render(const User& u, const Page& page, int64_t ts) {
    std::string out = R"({"user_id":)";
    json_append_string(out, u.id);
    out += R"(,"page_url":)";
    json_append_string(out, url(page.path));
    out += R"(,"event_type":)";
    json_append_string(out, page.type);
    out += R"(,"device":)";
    json_append_string(out, u.device.empty() ? u.devices.front() : u.device);
    out += R"(,"ts":)" + std::to_string(ts) + "}";
    return out;
  }

  std::string malformed(const User& u, const Page& page, int64_t ts) {
    switch (rng_() % 6) {
      case 0: return R"({"user_id":")" + u.id + R"(","page_url":")" + page.path + R"(","event_t)";
      case 1: return R"({"user_id":")" + u.id + R"(","page_url":")" + page.path + R"(","event_type":"view","ts":)" + std::to_string(ts) + "}";
      case 2: return R"({"user_id":")" + u.id + R"(","page_url":")" + page.path + R"(","event_type":"view","device":"mobile","ts":"today"})";
      case 3: return "GET " + page.path + " HTTP/1.1";
      case 4: return "[\"" + u.id + "\"]";
      default: {  // parses, but is not a page view the job takes
        Page bad = page;
        bad.type = "click";
        return render(u, bad, ts);
      }
    }
  }

  void queue(std::string line, int64_t arrival, Kind kind) { pending_.push({arrival, seq_++, std::move(line), kind}); }
  void count(Kind k) {
    switch (k) {
      case Kind::kOnTime: ++summary_.on_time; break;
      case Kind::kOutOfOrder: ++summary_.out_of_order; break;
      case Kind::kLate: ++summary_.late; break;
      case Kind::kBridging: ++summary_.bridging; break;
      case Kind::kVeryLate: ++summary_.very_late; break;
      case Kind::kMalformed: ++summary_.malformed; break;
    }
  }

  PageViewOptions o_;
  std::mt19937_64 rng_;
  std::vector<User> users_;
  std::priority_queue<std::pair<int64_t, size_t>, std::vector<std::pair<int64_t, size_t>>, std::greater<>> heap_;
  std::priority_queue<Pending, std::vector<Pending>, std::greater<Pending>> pending_;
  uint64_t seq_ = 0;
  int64_t very_late_base_ = 0;
  int64_t very_late_ = 0;
  PageViewSummary summary_;
};

}  // namespace

Result<PageViewSummary> run_pageviews(const PageViewOptions& options,
                                      const std::function<Status(const std::string& line)>& emit,
                                      const std::function<bool()>& stop) {
  SLUICE_RETURN_IF_ERROR(options.validate());
  Generator g(options);
  return g.run(emit, stop);
}

}  // namespace sluice::gen
