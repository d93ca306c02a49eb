// Processing-time windows (TumblingProcessingTimeWindows,
// SlidingProcessingTimeWindows) on the window operator, driven through the
// harness on a manual clock. The randomized test compares every firing
// with a reference that assigns each record to the windows of the clock at
// its arrival and fires a window once the clock reaches its end; runs are
// cut by snapshot/restore, on heap and RocksDB. A failing seed is printed
// (SLUICE_SEED=N replays it).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "operators/window/aggregates.h"
#include "operators/window/window_operator.h"
#include "tests/harness/operator_harness.h"
#include "tests/harness/test_seed.h"

namespace sluice::window {
namespace {

using harness::HarnessOptions;
using harness::test_seed;
using harness::OneInputOperatorHarness;

struct Tap {
  std::string user;
  int64_t amount = 0;
  SLUICE_FIELDS(user, amount)
};

/// Sum of the amounts of one user in one window.
struct Total {
  std::string user;
  int64_t start = 0, end = 0, sum = 0;
  SLUICE_FIELDS(user, start, end, sum)
  auto operator<=>(const Total&) const = default;
  bool operator==(const Total&) const = default;
};

using Harness = OneInputOperatorHarness<Tap, Total>;

std::unique_ptr<runtime::StreamOperator> sum_op(WindowAssigner assigner) {
  using Contents = AggregatingContents<Tap, int64_t, int64_t>;
  using Op = WindowOperator<std::string, Tap, Contents, Total>;
  WindowSettings s;
  s.assigner = std::move(assigner);
  auto ks = std::make_shared<runtime::KeySelector<Tap, std::string>>(
      [](const Tap& t) { return t.user; });
  typename Op::WindowFn fn = [](const std::string& k, const TimeWindow& w, const int64_t& v,
                                basic::Collector<Total>& out) {
    out.collect(Total{k, w.start, w.end, v});
  };
  auto agg = std::make_shared<const SumAggregate<Tap, int64_t>>([](const Tap& t) { return t.amount; });
  return std::make_unique<Op>(ks, std::move(s), Contents(agg), fn);
}

/// Takes the records emitted since the last call, sorted.
std::vector<Total> drain(Harness& h) {
  std::vector<Total> out;
  for (const auto& r : h.output().take_records()) {
    EXPECT_EQ(r.ts.ms(), r.value.end - 1) << "a result carries its window's last millisecond";
    out.push_back(r.value);
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// One random run: records, clock moves, watermarks (which must not fire
/// anything) and snapshot/restore, compared with the reference after every
/// clock move and at the end of input.
void run_against_reference(WindowAssigner assigner, state::BackendKind backend, uint64_t seed) {
  SCOPED_TRACE("seed " + std::to_string(seed) + " (SLUICE_SEED=" + std::to_string(seed) +
               " replays it), " + assigner.description() +
               (backend == state::BackendKind::kRocksDB ? ", RocksDB" : ", heap"));
  std::mt19937_64 rng(seed);
  const int64_t size = assigner.size().count();
  int64_t now = 1'700'000'000'000 + static_cast<int64_t>(rng() % 10'000);
  auto options = [&] {
    HarnessOptions o = HarnessOptions::keyed_subtask().with_backend(backend);
    o.start_processing_time = now;
    return o;
  };
  auto h = std::make_unique<Harness>(sum_op(assigner), options());
  ASSERT_TRUE(h->open().is_ok());

  std::map<std::pair<std::string, TimeWindow>, int64_t> open;  // the reference's windows
  std::vector<TimeWindow> windows;
  // Fires every reference window whose end the clock reached.
  auto due = [&](int64_t clock) {
    std::vector<Total> out;
    for (auto it = open.begin(); it != open.end();) {
      if (it->first.second.end <= clock) {
        out.push_back(Total{it->first.first, it->first.second.start, it->first.second.end, it->second});
        it = open.erase(it);
      } else {
        ++it;
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  for (int step = 0; step < 600; ++step) {
    const uint64_t r = rng() % 100;
    if (r < 70) {
      Tap t{"u" + std::to_string(rng() % 6), static_cast<int64_t>(rng() % 100)};
      // The event time is irrelevant (and may be absent).
      h->process_element(t, rng() % 2 ? EventTime::min() : EventTime(static_cast<int64_t>(rng() % 1000)));
      assigner.assign(now, windows);
      for (const auto& w : windows) open[{t.user, w}] += t.amount;
    } else if (r < 90) {
      now += static_cast<int64_t>(rng() % static_cast<uint64_t>(size + size / 2));
      h->set_processing_time(now);
      ASSERT_EQ(drain(*h), due(now)) << "step " << step << ", clock " << now;
    } else if (r < 98) {
      h->process_watermark(EventTime(now + static_cast<int64_t>(rng() % 100'000)));
      ASSERT_TRUE(drain(*h).empty()) << "a watermark fired a processing-time window";
    } else {
      auto snap = h->snapshot();
      h->close();
      h = Harness::restored(sum_op(assigner), options(), snap);
      ASSERT_TRUE(h->open().is_ok());
    }
  }
  // End of input: what is still open fires at once, whatever the clock.
  ASSERT_TRUE(h->end_input().is_ok());
  ASSERT_EQ(drain(*h), due(std::numeric_limits<int64_t>::max()));
  EXPECT_TRUE(h->failures().empty());
  EXPECT_TRUE(h->dead_letters().empty());
}

TEST(ProcessingTimeWindows, TumblingSumsMatchTheReferenceAcrossRestoresOnBothBackends) {
  const uint64_t seed = test_seed();
  for (auto backend : {state::BackendKind::kHeap, state::BackendKind::kRocksDB}) {
    run_against_reference(TumblingProcessingTimeWindows::of(Duration(1'000)), backend, seed);
  }
}

TEST(ProcessingTimeWindows, SlidingSumsMatchTheReferenceAcrossRestoresOnBothBackends) {
  const uint64_t seed = test_seed();
  for (auto backend : {state::BackendKind::kHeap, state::BackendKind::kRocksDB}) {
    run_against_reference(SlidingProcessingTimeWindows::of(Duration(1'000), Duration(250)), backend,
                          seed + 1);
  }
}

TEST(ProcessingTimeWindows, AWindowFiresWhenTheClockReachesItsEndAndLaterRecordsGoToTheNext) {
  Harness h(sum_op(TumblingProcessingTimeWindows::of(Duration(10))), [] {
    HarnessOptions o = HarnessOptions::keyed_subtask();
    o.start_processing_time = 100;
    return o;
  }());
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(Tap{"a", 1}, EventTime(5));
  h.set_processing_time(109);
  h.process_element(Tap{"a", 2}, EventTime(5));
  EXPECT_TRUE(h.output().take_records().empty());
  h.set_processing_time(110);
  h.process_element(Tap{"a", 4}, EventTime(5));
  EXPECT_EQ(drain(h), (std::vector<Total>{{"a", 100, 110, 3}}));
  h.process_watermark(EventTime::max());
  EXPECT_TRUE(h.output().take_records().empty()) << "the final watermark does not fire processing-time windows";
  ASSERT_TRUE(h.end_input().is_ok());
  EXPECT_EQ(drain(h), (std::vector<Total>{{"a", 110, 120, 4}}));
}

TEST(ProcessingTimeWindows, SessionsOnProcessingTimeAreRefused) {
  EXPECT_THROW(WindowAssigner::session(Duration(10)).on_processing_time(), std::invalid_argument);
  EXPECT_EQ(TumblingProcessingTimeWindows::of(Duration(10'000)).description(),
            "tumbling(10s) on processing time");
}

}  // namespace
}  // namespace sluice::window
