// bench_cep: the CEP workload of bench/run.sh (workload 10). The fraud
// pattern — five failed logins followed by a purchase of at least 1,000
// from a device none of those logins used, within 10 minutes — over a
// generated stream of logins and purchases, keyed by user.
//
// The source generates events in the process (no file, no parsing), so the
// figure is the engine and the CEP operator: per subtask a deterministic
// stream of `count / parallelism` events for `users` users, 1 ms of event
// time apart per subtask, up to 500 ms out of order. 80 % logins (10 % of
// them failed), 20 % purchases (1 % of them >= 1,000). Now and then (1 in
// 2,000 events) a user is attacked: six failed logins from one device,
// then a large purchase from another, a few seconds apart — those are the
// matches. The generator cannot be restored (run without checkpoints).
//
// Not every attack must alert: another purchase >= 1,000 of the same user
// between the attack's first failed login and its purchase (a random one,
// or another attack's) may complete a match with the first of the attack's
// logins and earlier random ones, and skip_past_last_event then discards
// the partial matches holding the attack's logins — the pattern's meaning,
// not a miss. So the baseline reports every such purchase, and the
// harness requires an alert for the attacks without one in their span.
//
// Arguments: count (default 10,000,000), users (100,000), sink (default
// stdout:), within (10m), cep (default true; false: the baseline — the same
// source, key_by and sink with a stateless keyed function that alerts on
// every purchase >= 1,000 instead of the pattern, so
// bench.py reports the CEP job as a ratio of the job without CEP). State
// backend and parallelism via run-local.
#include <chrono>
#include <queue>
#include <random>

#include "connectors/connectors.h"
#include "engine/api/sluice.h"

using namespace std::chrono_literals;

namespace sluice_bench {

struct Activity {
  int64_t user = 0;
  int8_t kind = 0;  // 0 login ok, 1 login failed, 2 purchase
  int32_t device = 0;
  int64_t amount = 0;  // cents of a currency unit: purchases only
  int64_t ts = 0;
  SLUICE_FIELDS(user, kind, device, amount, ts)
};

struct Alert {
  int64_t user = 0;
  int64_t first_fail = 0;
  int64_t purchase = 0;
  int64_t amount = 0;
  int32_t device = 0;  ///< of the purchase
  SLUICE_FIELDS(user, first_fail, purchase, amount, device)
};

// An attack: six failed logins from kAttackLoginDevice, kAttackFirstLogin
// + i * kAttackLoginGap after it began, then a purchase of kAttackAmount
// from kAttackBuyDevice at kAttackPurchase. Random events use devices 0-2.
constexpr int32_t kAttackLoginDevice = 7, kAttackBuyDevice = 9;
constexpr int64_t kAttackFirstLogin = 100, kAttackLoginGap = 400, kAttackPurchase = 3'000;
constexpr int64_t kAttackAmount = 250'000;
constexpr int64_t kLargePurchase = 100'000;  ///< what the pattern's purchase step needs

/// Generates one subtask's share; restartable from a position.
class ActivityReader final : public sluice::SourceReader<Activity> {
 public:
  ActivityReader(int64_t count, int64_t users) : count_(count), users_(users) {}
  sluice::Status open(sluice::runtime::OperatorContext& ctx, sluice::SourceOutput<Activity>& out) override {
    const auto& info = ctx.info();
    subtask_ = info.subtask;
    total_ = count_ / info.parallelism + (info.subtask < count_ % info.parallelism ? 1 : 0);
    rng_.seed(1234 + static_cast<uint64_t>(info.subtask) * 7919 + static_cast<uint64_t>(pos_));
    out.set_split_count(1);
    return sluice::Status::ok();
  }
  sluice::Result<sluice::runtime::PollStatus> poll_next(sluice::SourceOutput<Activity>& out) override {
    for (int i = 0; i < 1024 && (pos_ < total_ || !scheduled_.empty()); ++i) {
      const int64_t now = kStart + pos_ + subtask_;
      // Attack events come out when the stream reaches their time.
      if (!scheduled_.empty() && (scheduled_.top().ts <= now || pos_ >= total_)) {
        out.collect(scheduled_.top(), 0);
        scheduled_.pop();
        continue;
      }
      ++pos_;
      Activity a;
      a.user = uniform(users_);
      a.ts = now + uniform(500);  // up to 500 ms out of order
      a.device = static_cast<int32_t>(uniform(3));
      const int64_t roll = uniform(10'000);
      if (roll < 5) {  // an attack: failed logins from one device, then a large purchase from another
        for (int f = 0; f < 6; ++f) {
          scheduled_.push(Activity{a.user, 1, kAttackLoginDevice, 0, now + kAttackFirstLogin + kAttackLoginGap * f});
        }
        scheduled_.push(Activity{a.user, 2, kAttackBuyDevice, kAttackAmount, now + kAttackPurchase});
        continue;
      }
      if (roll < 8'000) {
        a.kind = roll < 800 ? 1 : 0;
      } else {
        a.kind = 2;
        a.amount = roll < 8'020 ? kLargePurchase + uniform(500'000) : uniform(20'000);
      }
      out.collect(a, 0);
    }
    if (pos_ >= total_ && scheduled_.empty()) {
      out.split_finished(0);
      return sluice::runtime::PollStatus::kEndOfInput;
    }
    return sluice::runtime::PollStatus::kMoreAvailable;
  }
  sluice::Status restore_state(const sluice::runtime::OperatorRestore& r) override {
    if (r.restored) return sluice::Status::failed_precondition("the benchmark's generator cannot be restored");
    return sluice::Status::ok();
  }

 private:
  static constexpr int64_t kStart = 1'700'000'000'000;
  struct Later {
    bool operator()(const Activity& a, const Activity& b) const { return a.ts > b.ts; }
  };
  int64_t uniform(int64_t n) { return static_cast<int64_t>(rng_() % static_cast<uint64_t>(n)); }

  int64_t count_, users_;
  int64_t total_ = 0, pos_ = 0;
  int32_t subtask_ = 0;
  std::mt19937_64 rng_;
  std::priority_queue<Activity, std::vector<Activity>, Later> scheduled_;
};

class ActivitySource final : public sluice::Source<Activity> {
 public:
  ActivitySource(int64_t count, int64_t users) : count_(count), users_(users) {}
  std::string description() const override {
    return "generated activity count=" + std::to_string(count_) + " users=" + std::to_string(users_);
  }
  bool bounded() const override { return true; }
  std::unique_ptr<sluice::SourceReader<Activity>> create_reader() const override {
    return std::make_unique<ActivityReader>(count_, users_);
  }

 private:
  int64_t count_, users_;
};

/// The baseline's keyed function: no state, no timers. It reports every
/// purchase the pattern's last step could take, with the time of the
/// attack's first failed login for attack purchases (0 for the others):
/// the harness's ground truth (bench.py, w10_cep).
class LargePurchases final : public sluice::basic::KeyedProcessFunction<int64_t, Activity, Alert> {
 public:
  void process_element(const Activity& a, Context&, sluice::basic::Collector<Alert>& out) override {
    if (a.kind != 2 || a.amount < kLargePurchase) return;
    const bool attack = a.device == kAttackBuyDevice;
    out.collect(Alert{a.user, attack ? a.ts - kAttackPurchase + kAttackFirstLogin : 0, a.ts, a.amount, a.device});
  }
};

template <class T>
T or_arg_error(sluice::Result<T> r, const std::string& key) {
  if (!r.is_ok()) throw sluice::api::JobArgError("--arg " + key + ": " + r.status().message());
  return std::move(r).value();
}

}  // namespace sluice_bench

SLUICE_JOB(bench_cep) {
  using namespace sluice;
  using sluice_bench::Activity;
  using sluice_bench::Alert;
  const int64_t count = args.get_int("count", 10'000'000);
  const int64_t users = args.get_int("users", 100'000);
  if (count <= 0 || users <= 0) throw api::JobArgError("--arg count and users must be positive");
  auto sink = sluice_bench::or_arg_error(connectors::sink_from_uri<Alert>(args.get("sink", "stdout:")), "sink");
  std::shared_ptr<const Source<Activity>> source = std::make_shared<const sluice_bench::ActivitySource>(count, users);
  auto events = env.from_source(source,
                                WatermarkStrategy<Activity>::for_bounded_out_of_orderness(500ms)
                                    .with_timestamp_assigner([](const Activity& a) { return a.ts; }),
                                "activity");
  events.uid("activity");
  auto by_user = events.key_by([](const Activity& a) { return a.user; });
  if (!args.get_bool("cep", true)) {
    by_user.process(sluice_bench::LargePurchases(), "large purchases").uid("fraud").sink_to(sink, "alerts").uid("alerts").set_parallelism(1);
    return;
  }
  auto fraud =
      Pattern<Activity>::begin("fails", AfterMatchSkipStrategy::skip_past_last_event())
          .where([](const Activity& a) { return a.kind == 1; })
          .times(5)
          .followed_by("buy")
          .where([](const Activity& a) { return a.kind == 2 && a.amount >= sluice_bench::kLargePurchase; })
          .where([](const Activity& a, const MatchContext<Activity>& ctx) {
            for (const Activity& f : ctx.events("fails"))
              if (f.device == a.device) return false;
            return true;
          })
          .within(args.get_duration("within", 10min));
  CEP::pattern(by_user, fraud)
      .select(
          [](const Match<Activity>& m) {
            const Activity& buy = m["buy"].front();
            return Alert{buy.user, m["fails"].front().ts, buy.ts, buy.amount, buy.device};
          },
          "fraud")
      .uid("fraud")
      .sink_to(sink, "alerts")
      .uid("alerts")
      .set_parallelism(1);
}
