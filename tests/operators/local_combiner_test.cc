// The local window combiner (operators/window/local_combiner.h) driven alone
// through the operator harness, against a brute-force model written here:
// after every step (record, watermark, checkpoint, restore) it must have
// emitted exactly the partials and raw records the model emits — flushes on
// the watermark, at the barrier and at the size limit included — for
// string, Text, integer and composite keys over many keys, on tumbling and
// sliding windows. Also WindowAssigner::pane, which the combiner relies on
// to reuse a record's windows for the next records.
#include "operators/window/local_combiner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "tests/harness/operator_harness.h"
#include "tests/harness/test_seed.h"

namespace sluice::window {
namespace {

using harness::HarnessOptions;
using harness::OneInputOperatorHarness;

struct Rec {
  std::string key;
  int64_t n = 0;
  int64_t value = 0;
  SLUICE_FIELDS(key, n, value)
  bool operator==(const Rec&) const = default;
  auto operator<=>(const Rec&) const = default;
};

struct Acc {
  int64_t count = 0;
  int64_t sum = 0;
  SLUICE_FIELDS(count, sum)
  bool operator==(const Acc&) const = default;
  auto operator<=>(const Acc&) const = default;
};

class SumAgg final : public state::AggregateFunction<Rec, Acc, Acc> {
 public:
  Acc create_accumulator() const override { return {}; }
  void add(Acc& a, const Rec& r) const override {
    ++a.count;
    a.sum += r.value;
  }
  Acc get_result(const Acc& a) const override { return a; }
  void merge(Acc& into, const Acc& o) const override {
    into.count += o.count;
    into.sum += o.sum;
  }
};

/// What the combiner emitted (or the model says it must), comparable:
/// (raw?, key as text, start, end, acc, raw record, timestamp).
using Item = std::tuple<bool, std::string, int64_t, int64_t, Acc, Rec, int64_t>;

/// Every window of `ts`, written without WindowAssigner.
std::vector<std::pair<int64_t, int64_t>> windows_of(int64_t ts, int64_t size, int64_t slide, int64_t offset) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t s = ts - size - slide; s <= ts; ++s) {
    if (((s - offset) % slide + slide) % slide == 0 && s <= ts && ts < s + size) out.emplace_back(s, s + size);
  }
  return out;
}

/// The combiner's specification, by brute force: a list of pending
/// (key, window, accumulator), searched linearly.
class Model {
 public:
  Model(int64_t size, int64_t slide, int64_t offset, size_t max_entries)
      : size_(size), slide_(slide), offset_(offset), max_(max_entries) {}

  std::vector<Item> element(const std::string& key, const Rec& r, EventTime ts) {
    std::vector<Item> out;
    const auto ws = ts.is_min() ? decltype(windows_of(0, 1, 1, 0)){} : windows_of(ts.ms(), size_, slide_, offset_);
    bool late = ts.is_min();
    for (auto [s, e] : ws) late = late || (e - 1 <= wm_);
    if (late) {
      out.emplace_back(true, key, 0, 0, Acc{}, r, ts.is_min() ? INT64_MIN : ts.ms());
      return out;
    }
    for (auto [s, e] : ws) {
      auto it = std::find_if(pending_.begin(), pending_.end(), [&](const Pending& p) {
        return p.key == key && p.start == s && p.end == e;
      });
      if (it == pending_.end()) it = pending_.insert(pending_.end(), Pending{key, s, e, {}});
      ++it->acc.count;
      it->acc.sum += r.value;
    }
    if (pending_.size() > max_) flush(INT64_MAX, out);
    return out;
  }
  std::vector<Item> watermark(int64_t wm) {
    std::vector<Item> out;
    flush(wm, out);
    wm_ = std::max(wm_, wm);
    return out;
  }
  std::vector<Item> checkpoint() {
    std::vector<Item> out;
    flush(INT64_MAX, out);
    return out;
  }

 private:
  struct Pending {
    std::string key;
    int64_t start, end;
    Acc acc;
  };
  void flush(int64_t wm, std::vector<Item>& out) {
    std::vector<Pending> keep;
    for (const Pending& p : pending_) {
      if (p.end - 1 <= wm) out.emplace_back(false, p.key, p.start, p.end, p.acc, Rec{}, p.end - 1);
      else keep.push_back(p);
    }
    pending_ = std::move(keep);
  }
  int64_t size_, slide_, offset_;
  size_t max_;
  int64_t wm_ = INT64_MIN;
  std::vector<Pending> pending_;
};

std::string key_text(const std::string& k) { return k; }
std::string key_text(const Text& k) { return k.str(); }
std::string key_text(int64_t k) { return std::to_string(k); }
std::string key_text(const std::pair<std::string, int64_t>& k) { return k.first + "/" + std::to_string(k.second); }

/// Runs one seeded scenario with key type K; `key_of` is the job's key
/// selector.
template <class K>
void run_scenario(uint64_t seed, K (*key_of)(const Rec&)) {
  using Combiner = LocalWindowCombiner<K, Rec, Acc, Acc>;
  using Partial = WindowPartial<K, Rec, Acc>;
  using Harness = OneInputOperatorHarness<Rec, Partial>;
  std::mt19937_64 rng(seed);
  const bool sliding = rng() % 2;
  const int64_t size = sliding ? 40 + static_cast<int64_t>(rng() % 80) : 20 + static_cast<int64_t>(rng() % 100);
  const int64_t slide = sliding ? 10 + static_cast<int64_t>(rng() % 30) : size;
  const int64_t offset = static_cast<int64_t>(rng() % static_cast<uint64_t>(slide));
  const size_t max_entries = 8 + rng() % 200;
  const int keys = 1 + static_cast<int>(rng() % 1500);
  SCOPED_TRACE("seed " + std::to_string(seed) + (sliding ? " sliding " : " tumbling ") + std::to_string(size) +
               "/" + std::to_string(slide) + "+" + std::to_string(offset) + " max-entries " +
               std::to_string(max_entries) + " keys " + std::to_string(keys));
  const WindowAssigner assigner = sliding ? WindowAssigner::sliding(Duration(size), Duration(slide), Duration(offset))
                                          : WindowAssigner::tumbling(Duration(size), Duration(offset));
  auto ks = std::make_shared<const runtime::KeySelector<Rec, K>>(key_of);
  auto fn = std::make_shared<const SumAgg>();
  HarnessOptions opts;
  opts.job_config.set("window.local-combine.max-entries", std::to_string(max_entries));
  auto make = [&] { return std::make_unique<Combiner>(ks, assigner, fn); };
  auto h = std::make_unique<Harness>(make(), opts);
  ASSERT_TRUE(h->open().is_ok());
  Model model(size, slide, offset, max_entries);

  auto emitted = [&](bool with_watermark, int64_t wm) {
    std::vector<Item> got;
    bool watermark_seen = false;
    for (const auto& e : h->output().events()) {
      if (e.is_watermark()) {
        EXPECT_TRUE(with_watermark && e.ts.ms() == wm) << "unexpected watermark";
        watermark_seen = true;
        continue;
      }
      EXPECT_FALSE(watermark_seen) << "a partial after the watermark";
      const Partial& p = *e.value;
      const int64_t ts = e.ts.is_min() ? INT64_MIN : e.ts.ms();
      if (p.raw) got.emplace_back(true, key_text(p.key), 0, 0, Acc{}, *p.raw, ts);
      else got.emplace_back(false, key_text(p.key), p.start, p.end, p.acc, Rec{}, ts);
    }
    EXPECT_EQ(watermark_seen, with_watermark);
    h->output().clear();
    std::sort(got.begin(), got.end());
    return got;
  };
  auto expect = [&](std::vector<Item> want, std::vector<Item> got, const std::string& step) {
    std::sort(want.begin(), want.end());
    ASSERT_EQ(got.size(), want.size()) << step;
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_TRUE(got[i] == want[i]) << step << ": item " << i << " key " << std::get<1>(got[i]) << " vs "
                                     << std::get<1>(want[i]) << ", window " << std::get<2>(got[i]) << " vs "
                                     << std::get<2>(want[i]) << ", count " << std::get<4>(got[i]).count << " vs "
                                     << std::get<4>(want[i]).count;
    }
  };

  int64_t base = -500 + static_cast<int64_t>(rng() % 1000);  // negative timestamps too
  int64_t wm = INT64_MIN;
  for (int step = 0; step < 6000; ++step) {
    const uint64_t op = rng() % 1000;
    const std::string at = "step " + std::to_string(step);
    if (op < 900) {
      Rec r;
      // Skewed keys, long ones too (beyond a short string's inline bytes),
      // and keys that are prefixes of each other.
      const uint64_t a = rng() % static_cast<uint64_t>(keys), b = rng() % static_cast<uint64_t>(keys);
      r.key = (rng() % 4 == 0 ? "a-rather-long-page-url/" : "k") + std::to_string(std::min(a, b));
      r.n = static_cast<int64_t>(rng() % 3);
      r.value = static_cast<int64_t>(rng() % 1000);
      base += static_cast<int64_t>(rng() % 3);
      EventTime ts = rng() % 500 == 0 ? EventTime::min() : EventTime(base - static_cast<int64_t>(rng() % 60));
      auto want = model.element(key_text(key_of(r)), r, ts);
      h->process_element(r, ts);
      expect(std::move(want), emitted(false, 0), at + " (record)");
    } else if (op < 980) {
      wm = std::max(wm, base - 40 - static_cast<int64_t>(rng() % 40));
      auto want = model.watermark(wm);
      h->process_watermark(wm);
      expect(std::move(want), emitted(true, wm), at + " (watermark " + std::to_string(wm) + ")");
    } else {
      auto want = model.checkpoint();
      harness::OperatorSnapshot snap = h->snapshot(CheckpointId(step));
      expect(std::move(want), emitted(false, 0), at + " (checkpoint)");
      if (rng() % 2) {  // restore from it: the watermark it reached comes back
        h = Harness::restored(make(), opts, snap);
        ASSERT_TRUE(h->open().is_ok());
      }
    }
    if (testing::Test::HasFatalFailure()) return;
  }
  auto want = model.watermark(INT64_MAX);
  h->process_watermark(EventTime::max());
  expect(std::move(want), emitted(true, EventTime::max().ms()), "final watermark");
}

TEST(LocalWindowCombiner, EmitsExactlyWhatTheModelEmitsAfterEveryStep) {
  const uint64_t seed = harness::test_seed();
  std::printf("seed %llu (SLUICE_SEED replays it)\n", static_cast<unsigned long long>(seed));
  for (uint64_t i = 0; i < 4; ++i) {
    const uint64_t s = seed + i * 4;
    run_scenario<std::string>(s, [](const Rec& r) { return r.key; });
    if (HasFatalFailure()) return;
    run_scenario<Text>(s + 1, [](const Rec& r) { return Text(r.key); });
    if (HasFatalFailure()) return;
    run_scenario<int64_t>(s + 2, [](const Rec& r) {
      return static_cast<int64_t>(std::hash<std::string>{}(r.key) % 100'003);
    });
    if (HasFatalFailure()) return;
    run_scenario<std::pair<std::string, int64_t>>(s + 3, [](const Rec& r) { return std::make_pair(r.key, r.n); });
    if (HasFatalFailure()) return;
  }
}

// The pane of ts holds exactly the timestamps with ts's windows: every
// timestamp inside has the same windows, the ones just outside others.
TEST(WindowAssignerPane, HoldsExactlyTheTimestampsWithTheSameWindows) {
  const uint64_t seed = harness::test_seed();
  std::printf("seed %llu (SLUICE_SEED replays it)\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  std::vector<TimeWindow> at_ts, other;
  for (int i = 0; i < 300; ++i) {
    const bool sliding = rng() % 2;
    const int64_t size = 1 + static_cast<int64_t>(rng() % 100);
    const int64_t slide = sliding ? 1 + static_cast<int64_t>(rng() % 100) : size;
    const int64_t offset = static_cast<int64_t>(rng() % static_cast<uint64_t>(slide));
    const WindowAssigner a = sliding ? WindowAssigner::sliding(Duration(size), Duration(slide), Duration(offset))
                                     : WindowAssigner::tumbling(Duration(size), Duration(offset));
    const int64_t ts = static_cast<int64_t>(rng() % 2000) - 1000;
    SCOPED_TRACE("seed " + std::to_string(seed) + " " + a.description() + " ts " + std::to_string(ts));
    const TimeWindow pane = a.pane(ts);
    ASSERT_LE(pane.start, ts);
    ASSERT_GT(pane.end, ts);
    a.assign(ts, at_ts);
    for (int64_t t = pane.start; t < pane.end; ++t) {
      a.assign(t, other);
      ASSERT_EQ(other, at_ts) << "t " << t << " inside the pane [" << pane.start << ", " << pane.end << ")";
    }
    a.assign(pane.start - 1, other);
    if (!at_ts.empty() || !other.empty()) {
      EXPECT_NE(other, at_ts) << "the pane could start earlier: " << pane.start;
    }
    a.assign(pane.end, other);
    if (!at_ts.empty() || !other.empty()) {
      EXPECT_NE(other, at_ts) << "the pane could end later: " << pane.end;
    }
  }
  // Near the end of time the pane saturates instead of overflowing.
  const WindowAssigner a = WindowAssigner::tumbling(Duration(1000));
  const int64_t last = std::numeric_limits<int64_t>::max() - 5;
  const TimeWindow pane = a.pane(last);
  EXPECT_LE(pane.start, last);
  EXPECT_EQ(pane.end, std::numeric_limits<int64_t>::max());
}

}  // namespace
}  // namespace sluice::window
