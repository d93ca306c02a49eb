// Window joins through the harness: the window operator with the join's
// window function (as JoinedStreams builds it) on seeded random
// out-of-order scripts with late records and allowed lateness, against
// the window model of window_reference.h joined by nested loops per
// firing — inner and left outer, tumbling, sliding and session windows,
// heap and RocksDB; late records reach the late side output as JoinInputs.
#include "operators/window/window_join.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "tests/harness/operator_harness.h"
#include "tests/operators/window_reference.h"

namespace sluice::window {
namespace {

using harness::HarnessOptions;
using harness::OneInputOperatorHarness;
using window_test::ModelSpec;
using window_test::Step;

struct Side {
  std::string key;
  int64_t id = 0;
  SLUICE_FIELDS(key, id)
};
struct Row {
  std::string key;
  int64_t left = 0;
  int64_t right = 0;  // -1: none (left outer)
  SLUICE_FIELDS(key, left, right)
  auto operator<=>(const Row&) const = default;
  bool operator==(const Row&) const = default;
};
using In = JoinInput<Side, Side>;
using Harness = OneInputOperatorHarness<In, Row>;

struct Inner {
  Row operator()(const Side& l, const Side& r) const { return {l.key, l.id, r.id}; }
};
struct Outer {
  Row operator()(const Side& l, const std::optional<Side>& r) const { return {l.key, l.id, r ? r->id : -1}; }
};

template <JoinType kType>
std::unique_ptr<runtime::StreamOperator> make_op(const ModelSpec& spec) {
  WindowSettings s;
  switch (spec.kind) {
    case ModelSpec::Kind::kTumbling: s.assigner = WindowAssigner::tumbling(Duration(spec.size)); break;
    case ModelSpec::Kind::kSliding: s.assigner = WindowAssigner::sliding(Duration(spec.size), Duration(spec.slide)); break;
    case ModelSpec::Kind::kSession: s.assigner = WindowAssigner::session(Duration(spec.size)); break;
  }
  s.allowed_lateness = Duration(spec.lateness);
  s.late_tag = "late";
  using Fn = std::conditional_t<kType == JoinType::kInner, Inner, Outer>;
  using Op = WindowOperator<std::string, In, ListContents<In>, Row>;
  auto fn = std::make_shared<JoinWindowFunction<Side, Side, Row, std::string, Fn, kType>>(Fn{});
  typename Op::WindowFn emit = [fn](const std::string& k, const TimeWindow& w, const std::vector<In>& v,
                                    basic::Collector<Row>& out) { fn->process(k, w, v, out); };
  return std::make_unique<Op>(std::make_shared<runtime::KeySelector<In, std::string>>(
                                  [](const In& e) { return e.left ? e.left->key : e.right->key; }),
                              s, ListContents<In>(), emit);
}

/// Record i of the script: id i, on the left when its model amount is even.
In input_of(const Step& s) {
  Side side{s.key, s.amount / 2};
  return s.amount % 2 == 0 ? In{side, std::nullopt} : In{std::nullopt, side};
}

class WindowJoin : public ::testing::TestWithParam<std::tuple<state::BackendKind, JoinType>> {};

TEST_P(WindowJoin, EqualsTheWindowModelJoinedByNestedLoopsOnRandomStreamsWithLateRecords) {
  const auto [backend, type] = GetParam();
  const uint32_t first_seed = std::random_device{}();
  for (uint32_t seed = first_seed; seed < first_seed + 6; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    std::vector<Step> script = window_test::random_script(seed, 300, 6, 8);
    int64_t next_id = 0;
    for (Step& s : script)
      if (!s.is_watermark) s.amount = 2 * next_id++ + static_cast<int64_t>(rng() % 2);
    const int64_t lateness = (rng() % 2) ? 0 : 15;
    for (const ModelSpec& spec : {ModelSpec::tumbling(20, lateness), ModelSpec::sliding(30, 10, lateness),
                                  ModelSpec::session(8, lateness)}) {
      SCOPED_TRACE("window kind " + std::to_string(static_cast<int>(spec.kind)) + " lateness " +
                   std::to_string(lateness));
      // Expected: every firing of the model joined by nested loops.
      const auto model = window_test::run_model(spec, script);
      std::vector<Row> want;
      for (const auto& segment : model.segments) {
        for (const auto& f : segment) {
          std::vector<int64_t> lefts, rights;
          for (int64_t a : f.amounts) (a % 2 == 0 ? lefts : rights).push_back(a / 2);
          for (int64_t l : lefts) {
            if (rights.empty() && type == JoinType::kLeftOuter) want.push_back({f.key, l, -1});
            for (int64_t r : rights) want.push_back({f.key, l, r});
          }
        }
      }
      std::vector<int64_t> want_late;
      for (const Step& s : model.late) want_late.push_back(s.amount / 2);

      Harness h(type == JoinType::kInner ? make_op<JoinType::kInner>(spec) : make_op<JoinType::kLeftOuter>(spec),
                HarnessOptions::keyed_subtask().with_backend(backend));
      auto& late = h.register_side_output<In>("late");
      ASSERT_TRUE(h.open().is_ok());
      for (const Step& s : script) {
        if (s.is_watermark) h.process_watermark(s.ts);
        else h.process_element(input_of(s), s.ts);
      }
      std::vector<Row> got = h.output().values();
      std::vector<int64_t> got_late;
      for (const In& e : late.values()) got_late.push_back(e.left ? e.left->id : e.right->id);
      std::sort(want.begin(), want.end());
      std::sort(got.begin(), got.end());
      EXPECT_EQ(got.size(), want.size());
      EXPECT_TRUE(got == want);
      EXPECT_EQ(got_late, want_late);
      EXPECT_TRUE(h.failures().empty());
    }
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "failing seed " << seed;
      break;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    BackendsAndTypes, WindowJoin,
    ::testing::Combine(::testing::Values(state::BackendKind::kHeap, state::BackendKind::kRocksDB),
                       ::testing::Values(JoinType::kInner, JoinType::kLeftOuter)),
    [](const auto& info) {
      return std::string(state::backend_kind_name(std::get<0>(info.param))) +
             (std::get<1>(info.param) == JoinType::kInner ? "_inner" : "_left_outer");
    });

}  // namespace
}  // namespace sluice::window
