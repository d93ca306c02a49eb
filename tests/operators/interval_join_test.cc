// Interval join through the two-input harness: a differential test against
// a nested-loop reference on seeded random out-of-order streams (late
// records included), with a snapshot at a random moment restored at
// another parallelism, on the heap and the RocksDB backend; and the
// buffers emptied by timers once the watermark passes.
#include "operators/join/interval_join.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "tests/harness/operator_harness.h"

namespace sluice::join {
namespace {

using harness::HarnessOptions;
using harness::OperatorSnapshot;
using harness::TwoInputOperatorHarness;

struct Left {
  int64_t key = 0;
  int64_t id = 0;
  SLUICE_FIELDS(key, id)
};
struct Right {
  int64_t key = 0;
  int64_t id = 0;
  SLUICE_FIELDS(key, id)
};
struct Joined {
  int64_t key = 0;
  int64_t left = 0;
  int64_t right = 0;
  int64_t ts = 0;        // ctx.timestamp()
  int64_t left_ts = 0;   // ctx.left_timestamp()
  int64_t right_ts = 0;  // ctx.right_timestamp()
  SLUICE_FIELDS(key, left, right, ts, left_ts, right_ts)
  auto operator<=>(const Joined&) const = default;
  bool operator==(const Joined&) const = default;
};

class Pairs final : public ProcessJoinFunction<Left, Right, Joined> {
 public:
  void process_element(const Left& l, const Right& r, Context& ctx, basic::Collector<Joined>& out) override {
    if (l.key != r.key) throw std::logic_error("joined records of different keys");
    out.collect(Joined{l.key, l.id, r.id, ctx.timestamp(), ctx.left_timestamp(), ctx.right_timestamp()});
  }
};

using Op = IntervalJoinOperator<int64_t, Left, Right, Joined, Pairs>;
using Harness = TwoInputOperatorHarness<Left, Right, Joined>;

std::unique_ptr<runtime::StreamOperator> make_op(int64_t lower, int64_t upper) {
  IntervalJoinSettings s;
  s.lower = lower;
  s.upper = upper;
  s.left_late_tag = "late-left";
  s.right_late_tag = "late-right";
  return std::make_unique<Op>(
      std::make_shared<runtime::KeySelector<Left, int64_t>>([](const Left& l) { return l.key; }),
      std::make_shared<runtime::KeySelector<Right, int64_t>>([](const Right& r) { return r.key; }), s,
      Pairs{});
}

/// One step of a scripted run.
struct Step {
  enum Kind { kLeft, kRight, kWatermark1, kWatermark2 } kind;
  int64_t key = 0;
  int64_t id = 0;
  int64_t ts = 0;  // record timestamp or watermark
};

/// Random out-of-order streams: timestamps drift up with jitter of up to
/// `disorder`, watermarks trail the largest timestamp by less than that
/// sometimes, so some records are late.
std::vector<Step> random_script(std::mt19937_64& rng, int records) {
  std::vector<Step> out;
  int64_t base = 1'000;
  int64_t max_ts = 0;
  int64_t wm1 = 0, wm2 = 0;
  std::uniform_int_distribution<int> pick(0, 99);
  for (int i = 0; i < records; ++i) {
    base += std::uniform_int_distribution<int64_t>(0, 4)(rng);
    int64_t ts = base - std::uniform_int_distribution<int64_t>(0, 30)(rng);
    max_ts = std::max(max_ts, ts);
    Step s;
    s.kind = pick(rng) < 50 ? Step::kLeft : Step::kRight;
    s.key = std::uniform_int_distribution<int64_t>(0, 6)(rng);
    s.id = i;
    s.ts = ts;
    out.push_back(s);
    if (pick(rng) < 12) {
      int64_t wm = max_ts - std::uniform_int_distribution<int64_t>(0, 40)(rng);
      if (pick(rng) < 50) {
        wm1 = std::max(wm1, wm);
        out.push_back({Step::kWatermark1, 0, 0, wm1});
      } else {
        wm2 = std::max(wm2, wm);
        out.push_back({Step::kWatermark2, 0, 0, wm2});
      }
    }
  }
  return out;
}

/// What the join must emit, computed naively: a record is late when its
/// timestamp is at or behind min(watermark 1, watermark 2) at its arrival;
/// every pair of non-late records of one key within the bounds joins once.
struct Expected {
  std::vector<Joined> joined;
  std::vector<int64_t> late_left, late_right;  // ids
};
Expected reference(const std::vector<Step>& script, int64_t lower, int64_t upper) {
  Expected e;
  std::vector<Step> lefts, rights;
  int64_t wm1 = INT64_MIN, wm2 = INT64_MIN;
  for (const Step& s : script) {
    int64_t wm = std::min(wm1, wm2);
    switch (s.kind) {
      case Step::kWatermark1: wm1 = std::max(wm1, s.ts); break;
      case Step::kWatermark2: wm2 = std::max(wm2, s.ts); break;
      case Step::kLeft:
        if (wm != INT64_MIN && s.ts <= wm) e.late_left.push_back(s.id);
        else lefts.push_back(s);
        break;
      case Step::kRight:
        if (wm != INT64_MIN && s.ts <= wm) e.late_right.push_back(s.id);
        else rights.push_back(s);
        break;
    }
  }
  for (const Step& l : lefts)
    for (const Step& r : rights)
      if (l.key == r.key && l.ts + lower <= r.ts && r.ts <= l.ts + upper)
        e.joined.push_back({l.key, l.id, r.id, std::max(l.ts, r.ts), l.ts, r.ts});
  std::sort(e.joined.begin(), e.joined.end());
  return e;
}

class IntervalJoin : public ::testing::TestWithParam<state::BackendKind> {
 protected:
  HarnessOptions options(int32_t parallelism = 1, int32_t subtask = 0) {
    return HarnessOptions::keyed_subtask(parallelism, subtask).with_backend(GetParam());
  }
};

/// Drains a harness's main and late outputs into the collected results.
void drain(Harness& h, Expected& got) {
  for (const auto& r : h.output().take_records()) {
    EXPECT_EQ(r.ts.ms(), r.value.ts) << "results carry the larger of the two timestamps";
    got.joined.push_back(r.value);
  }
  for (const auto& l : h.captured_side_output<Left>("late-left").take_records()) got.late_left.push_back(l.value.id);
  for (const auto& r : h.captured_side_output<Right>("late-right").take_records()) got.late_right.push_back(r.value.id);
  EXPECT_TRUE(h.failures().empty());
  EXPECT_TRUE(h.dead_letters().empty());
}

/// How many keys hold entries of state `name` (int64 keys).
size_t keys_in(Harness& h, const std::string& name) {
  auto key_length = [](std::string_view bytes) -> size_t {
    ByteReader r(bytes);
    int64_t k = 0;
    if (!Serde<int64_t>::read(r, k)) return 0;
    return bytes.size() - r.remaining();
  };
  return h.keyed_backend()->keys_of_state(name, key_length).size();
}

std::unique_ptr<Harness> fresh(std::unique_ptr<Harness> h) {
  h->register_side_output<Left>("late-left");
  h->register_side_output<Right>("late-right");
  EXPECT_TRUE(h->open().is_ok());
  return h;
}

TEST_P(IntervalJoin, EqualsANestedLoopJoinOnRandomOutOfOrderStreamsAcrossARestoreAtAnotherParallelism) {
  const uint64_t first_seed = std::random_device{}();
  for (uint64_t seed = first_seed; seed < first_seed + 12; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " (replay: set first_seed to it)");
    std::mt19937_64 rng(seed);
    const int64_t lower = std::uniform_int_distribution<int64_t>(-30, 10)(rng);
    const int64_t upper = lower + std::uniform_int_distribution<int64_t>(0, 40)(rng);
    SCOPED_TRACE("between [" + std::to_string(lower) + ", " + std::to_string(upper) + "]");
    const auto script = random_script(rng, 400);
    const Expected want = reference(script, lower, upper);
    const size_t cut = std::uniform_int_distribution<size_t>(0, script.size())(rng);
    const int32_t new_parallelism = std::uniform_int_distribution<int32_t>(1, 3)(rng);

    Expected got;
    auto h = fresh(std::make_unique<Harness>(make_op(lower, upper), options()));
    auto feed = [](Harness& x, const Step& s) {
      switch (s.kind) {
        case Step::kLeft: x.process_element1(Left{s.key, s.id}, s.ts); break;
        case Step::kRight: x.process_element2(Right{s.key, s.id}, s.ts); break;
        case Step::kWatermark1: x.process_watermark1(s.ts); break;
        case Step::kWatermark2: x.process_watermark2(s.ts); break;
      }
    };
    for (size_t i = 0; i < cut; ++i) feed(*h, script[i]);
    drain(*h, got);
    OperatorSnapshot snap = h->snapshot();
    // Records after the snapshot would be replayed by the sources: the
    // first run's later output is lost with it.
    for (size_t i = cut; i < script.size(); ++i) feed(*h, script[i]);
    h.reset();

    std::vector<std::unique_ptr<Harness>> parts;
    for (int32_t s = 0; s < new_parallelism; ++s) {
      parts.push_back(fresh(Harness::restored(make_op(lower, upper), options(new_parallelism, s), snap)));
      // Watermarks the restored inputs have not seen yet start at the
      // restored operator watermark: replay the last ones of each input.
    }
    int64_t wm1 = INT64_MIN, wm2 = INT64_MIN;
    for (size_t i = 0; i < cut; ++i) {
      if (script[i].kind == Step::kWatermark1) wm1 = script[i].ts;
      if (script[i].kind == Step::kWatermark2) wm2 = script[i].ts;
    }
    for (auto& p : parts) {
      if (wm1 != INT64_MIN) p->process_watermark1(wm1);
      if (wm2 != INT64_MIN) p->process_watermark2(wm2);
    }
    for (size_t i = cut; i < script.size(); ++i) {
      const Step& s = script[i];
      if (s.kind == Step::kLeft || s.kind == Step::kRight) {
        feed(*parts.at(harness::subtask_for_key(s.key, new_parallelism)), s);
      } else {
        for (auto& p : parts) feed(*p, s);
      }
    }
    for (auto& p : parts) {
      p->end_input1();
      p->end_input2();
      drain(*p, got);
      for (const char* name : {"interval-join-left", "interval-join-right"})
        EXPECT_EQ(keys_in(*p, name), 0u)
            << name << " still holds keys after the watermark passed everything";
    }
    std::sort(got.joined.begin(), got.joined.end());
    std::sort(got.late_left.begin(), got.late_left.end());
    std::sort(got.late_right.begin(), got.late_right.end());
    EXPECT_EQ(got.joined.size(), want.joined.size());
    EXPECT_EQ(got.joined, want.joined);
    EXPECT_EQ(got.late_left, want.late_left);
    EXPECT_EQ(got.late_right, want.late_right);
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "failing seed " << seed;
      break;
    }
  }
}

TEST_P(IntervalJoin, DropsBufferedRecordsOnceTheWatermarkPassesTheirLastMatch) {
  auto h = fresh(std::make_unique<Harness>(make_op(-5, 10), options()));
  h->process_element1(Left{1, 1}, 100);   // matches rights in [95, 110]
  h->process_element2(Right{1, 2}, 103);  // matches lefts in [93, 108]
  EXPECT_EQ(h->output().values().size(), 1u);
  h->process_watermark1(107);
  h->process_watermark2(107);
  EXPECT_GT(keys_in(*h, "interval-join-right"), 0u);
  h->process_watermark1(108);
  h->process_watermark2(108);  // right at 103 can match no left after 108
  EXPECT_EQ(keys_in(*h, "interval-join-right"), 0u);
  EXPECT_GT(keys_in(*h, "interval-join-left"), 0u);
  h->process_element2(Right{1, 3}, 109);  // still joins the left at 100
  EXPECT_EQ(h->output().values().size(), 2u);
  h->process_watermark1(110);
  h->process_watermark2(110);
  EXPECT_EQ(keys_in(*h, "interval-join-left"), 0u);
  h->process_element2(Right{1, 4}, 110);  // at the watermark: late
  EXPECT_EQ(h->captured_side_output<Right>("late-right").values().size(), 1u);
}

TEST_P(IntervalJoin, LateRecordsWithoutALateOutputAreDeadLetters) {
  IntervalJoinSettings s;
  s.lower = 0;
  s.upper = 0;
  Harness h(std::make_unique<Op>(
                std::make_shared<runtime::KeySelector<Left, int64_t>>([](const Left& l) { return l.key; }),
                std::make_shared<runtime::KeySelector<Right, int64_t>>([](const Right& r) { return r.key; }),
                s, Pairs{}),
            options());
  ASSERT_TRUE(h.open().is_ok());
  h.process_watermark1(50);
  h.process_watermark2(50);
  h.process_element1(Left{1, 1}, 40);
  ASSERT_EQ(h.dead_letters().size(), 1u);
  EXPECT_NE(h.dead_letters()[0].reason.find("late left record"), std::string::npos) << h.dead_letters()[0].reason;
  EXPECT_TRUE(h.output().values().empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, IntervalJoin,
                         ::testing::Values(state::BackendKind::kHeap, state::BackendKind::kRocksDB),
                         [](const auto& info) { return std::string(state::backend_kind_name(info.param)); });

}  // namespace
}  // namespace sluice::join
