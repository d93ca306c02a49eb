// AsyncWaitOperator against what its modes promise: random streams of
// records and watermarks, calls completed in random order, capacities from
// 1 to 8, a snapshot at a random point and a restore that finishes the
// stream; the output is checked against the input (a reference written
// here, not the operator's logic). A failing seed is printed.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "tests/async/scripted_fn.h"

namespace sluice::async_io {
namespace {

using namespace async_testing;

// ---- differential: random streams, random completion order, a snapshot and
// restore in the middle; checked against what the modes promise.

struct Step {
  enum Kind { kRecord, kWatermark } kind;
  int64_t v;
};

void check_against_reference(const std::vector<Step>& input, const std::vector<std::string>& output, OutputMode mode,
                             uint32_t seed) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::vector<std::string> expected_records;
  for (const auto& s : input)
    if (s.kind == Step::kRecord) expected_records.push_back("r" + std::to_string(s.v));
  std::vector<std::string> got_records;
  for (const auto& o : output)
    if (o[0] == 'r') got_records.push_back(o);
  if (mode == OutputMode::kOrdered) {
    ASSERT_EQ(got_records, expected_records);
  } else {
    auto a = got_records, b = expected_records;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    ASSERT_EQ(a, b) << "records lost or duplicated";
  }
  // Every emitted watermark W: exactly the records that came before the
  // first input watermark >= W were emitted before it.
  std::map<std::string, size_t> input_pos;
  for (size_t i = 0; i < input.size(); ++i)
    if (input[i].kind == Step::kRecord) input_pos["r" + std::to_string(input[i].v)] = i;
  int64_t last_wm = INT64_MIN;
  for (size_t k = 0; k < output.size(); ++k) {
    if (output[k][0] != 'W') continue;
    int64_t w = std::stoll(output[k].substr(1));
    ASSERT_GT(w, last_wm) << "watermarks out of order";
    last_wm = w;
    size_t wpos = 0;
    while (!(input[wpos].kind == Step::kWatermark && input[wpos].v >= w)) ++wpos;
    std::set<std::string> before_out(output.begin(), output.begin() + static_cast<long>(k));
    for (const auto& [r, pos] : input_pos) {
      if (pos < wpos) ASSERT_TRUE(before_out.count(r)) << r << " came before W" << w << " but left after it";
      else ASSERT_FALSE(before_out.count(r)) << r << " came after W" << w << " but left before it";
    }
  }
  int64_t final_wm = INT64_MIN;
  for (const auto& s : input)
    if (s.kind == Step::kWatermark) final_wm = s.v;
  EXPECT_EQ(last_wm, final_wm) << "the last watermark was not emitted";
}

TEST(AsyncWaitOperatorDifferential, RandomCompletionOrderWithARestoreMatchesTheModesPromise) {
  const uint32_t base = std::random_device{}();
  for (OutputMode mode : {OutputMode::kOrdered, OutputMode::kUnordered}) {
    for (uint32_t round = 0; round < 150; ++round) {
      const uint32_t seed = base + round;
      std::mt19937 rng(seed);
      std::vector<Step> input;
      int64_t wm = 0;
      for (int i = 0; i < 60; ++i) {
        if (rng() % 5 == 0) input.push_back({Step::kWatermark, wm += 1 + rng() % 10});
        else input.push_back({Step::kRecord, i});
      }
      input.push_back({Step::kWatermark, wm + 1000});
      const size_t cut = rng() % input.size();  // snapshot before input[cut]
      const int capacity = 1 + static_cast<int>(rng() % 8);

      std::vector<std::string> output;
      auto run = [&](Harness& h, Calls& calls, size_t from, size_t to, size_t& done_calls, bool to_end) {
        std::vector<size_t> open_calls;
        auto complete_some = [&](bool all) {
          for (size_t i = done_calls; i < calls.invoked.size(); ++i) open_calls.push_back(i);
          done_calls = calls.invoked.size();
          std::shuffle(open_calls.begin(), open_calls.end(), rng);
          size_t n = all ? open_calls.size() : rng() % (open_calls.size() + 1);
          for (size_t j = 0; j < n; ++j) calls.ok(open_calls[j]);
          open_calls.erase(open_calls.begin(), open_calls.begin() + static_cast<long>(n));
          h.mailbox_queue().run_pending();
        };
        for (size_t i = from; i < to; ++i) {
          // A suspended input gets no records until something left.
          while (h.mailbox_queue().input_suspended()) complete_some(false);
          if (input[i].kind == Step::kRecord) h.process_element(static_cast<int>(input[i].v), input[i].v);
          else h.process_watermark(input[i].v);
          if (rng() % 3 == 0) complete_some(false);
        }
        if (to_end) {
          while (op_of(h).in_flight() > 0) complete_some(true);
        }
        // Open calls at a snapshot are abandoned with the old harness.
      };
      auto calls1 = std::make_shared<Calls>();
      harness::OperatorSnapshot snap;
      {
        Harness h(make_op(calls1, opts(mode, capacity)));
        ASSERT_TRUE(h.open().is_ok());
        size_t done = 0;
        run(h, *calls1, 0, cut, done, false);
        snap = h.snapshot();
        output = events(h);
        // Completions after the snapshot would be output the restored job
        // never saw: the old run is killed here.
      }
      auto calls2 = std::make_shared<Calls>();
      auto h2 = Harness::restored(make_op(calls2, opts(mode, capacity)), {}, snap);
      ASSERT_TRUE(h2->open().is_ok());
      size_t done = 0;
      run(*h2, *calls2, cut, input.size(), done, true);
      for (auto& e : events(*h2)) output.push_back(e);
      check_against_reference(input, output, mode, seed);
      if (HasFatalFailure()) return;
    }
  }
}

}  // namespace
}  // namespace sluice::async_io
