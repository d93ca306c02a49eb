#include "jobs/gen/generator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "engine/common/json_read.h"
#include "jobs/clickstream/events.h"

namespace sluice::gen {
namespace {

std::vector<std::string> generate(const GenOptions& o, int n, std::vector<LineKind>* kinds = nullptr) {
  ClickGenerator g(o);
  std::vector<std::string> out;
  std::string line;
  for (int i = 0; i < n; ++i) {
    LineKind k = g.next(line);
    if (kinds) kinds->push_back(k);
    out.push_back(line);
  }
  return out;
}

GenOptions messy() {
  GenOptions o;
  o.out_of_order_fraction = 0.2;
  o.late_fraction = 0.05;
  o.malformed_fraction = 0.03;
  o.max_delay = Duration(1500);
  o.late_delay = Duration(60'000);
  return o;
}

TEST(ClickGenerator, SameSeedGivesTheSameLines) {
  GenOptions o = messy();
  o.seed = 99;
  std::vector<LineKind> k1, k2;
  auto a = generate(o, 3000, &k1);
  auto b = generate(o, 3000, &k2);
  EXPECT_EQ(a, b);
  EXPECT_EQ(k1, k2);
}

TEST(ClickGenerator, AnotherSeedGivesOtherLines) {
  GenOptions o = messy();
  o.seed = 1;
  auto a = generate(o, 1000);
  o.seed = 2;
  auto b = generate(o, 1000);
  int differing = 0;
  for (size_t i = 0; i < a.size(); ++i) differing += a[i] != b[i];
  // Users, pages and kinds are random: nearly every line differs.
  EXPECT_GT(differing, 900);
}

// Binomial check: the observed count is within 6 standard deviations.
void expect_fraction(int64_t count, int64_t n, double p, const char* what) {
  double mean = p * static_cast<double>(n);
  double sd = std::sqrt(static_cast<double>(n) * p * (1 - p));
  EXPECT_NEAR(static_cast<double>(count), mean, 6 * sd + 1) << what << ": " << count << " of " << n;
}

TEST(ClickGenerator, FractionsOfKindsAreCloseToTheRequestedOnes) {
  for (uint64_t seed : {3u, 4u}) {
    GenOptions o = messy();
    o.seed = seed;
    constexpr int kN = 60'000;
    std::vector<LineKind> kinds;
    generate(o, kN, &kinds);
    int64_t ooo = 0, late = 0, bad = 0;
    for (LineKind k : kinds) {
      ooo += k == LineKind::kOutOfOrder;
      late += k == LineKind::kLate;
      bad += k == LineKind::kMalformed;
    }
    expect_fraction(ooo, kN, o.out_of_order_fraction, "out of order");
    expect_fraction(late, kN, o.late_fraction, "late");
    expect_fraction(bad, kN, o.malformed_fraction, "malformed");
  }
}

TEST(ClickGenerator, ZeroFractionsGiveOnlyOnTimeEvents) {
  GenOptions o;
  o.out_of_order_fraction = 0;
  o.late_fraction = 0;
  o.malformed_fraction = 0;
  std::vector<LineKind> kinds;
  generate(o, 5000, &kinds);
  for (LineKind k : kinds) ASSERT_EQ(k, LineKind::kOnTime);
}

/// The event time the i-th event (0-based) has before any delay, from the
/// documented density: start_ts + i / events_per_second.
int64_t base_ts(const GenOptions& o, int64_t i) {
  return o.start_ts + static_cast<int64_t>(static_cast<double>(i) * 1000.0 / o.events_per_second);
}

TEST(ClickGenerator, DelaysLieWithinTheirBoundsAndOnlyMalformedLinesFailToParse) {
  GenOptions o = messy();
  o.events_per_second = 250;  // 4 ms apart: the delays dominate
  ClickGenerator g(o);
  JsonParser parser;
  std::string line;
  int64_t seen[4] = {0, 0, 0, 0};
  int64_t min_ooo = INT64_MAX, max_ooo = 0, min_late = INT64_MAX, max_late = 0;
  for (int64_t i = 0; i < 40'000; ++i) {
    ASSERT_EQ(g.produced(), i);
    LineKind kind = g.next(line);
    ++seen[static_cast<int>(kind)];
    jobs::ClickEvent e;
    std::string err = parser.parse(line, e);
    if (kind == LineKind::kMalformed) {
      ASSERT_FALSE(err.empty()) << "a malformed line parsed as a click: " << line;
      continue;
    }
    ASSERT_TRUE(err.empty()) << err << ": " << line;
    EXPECT_FALSE(e.user_id.empty());
    EXPECT_EQ(e.page_url.view().rfind("/p/", 0), 0u) << line;
    int64_t delay = base_ts(o, i) - e.ts;
    switch (kind) {
      case LineKind::kOnTime:
        ASSERT_EQ(delay, 0) << line;
        break;
      case LineKind::kOutOfOrder:
        ASSERT_GE(delay, 1) << line;
        ASSERT_LE(delay, o.max_delay.count()) << line;
        min_ooo = std::min(min_ooo, delay);
        max_ooo = std::max(max_ooo, delay);
        break;
      case LineKind::kLate:
        ASSERT_GE(delay, o.late_delay.count()) << line;
        ASSERT_LE(delay, 2 * o.late_delay.count()) << line;
        min_late = std::min(min_late, delay);
        max_late = std::max(max_late, delay);
        break;
      case LineKind::kMalformed:
        break;
    }
  }
  for (int k = 0; k < 4; ++k) EXPECT_GT(seen[k], 0) << "kind " << k << " never produced";
  // The delays use their whole range, not a corner of it.
  EXPECT_LT(min_ooo, o.max_delay.count() / 10);
  EXPECT_GT(max_ooo, o.max_delay.count() * 9 / 10);
  EXPECT_LT(min_late, o.late_delay.count() * 11 / 10);
  EXPECT_GT(max_late, o.late_delay.count() * 19 / 10);
}

TEST(ClickGenerator, UsersAndPagesStayWithinTheirCounts) {
  GenOptions o;
  o.users = 7;
  o.pages = 3;
  ClickGenerator g(o);
  JsonParser parser;
  std::string line;
  std::set<std::string> users, pages;
  for (int i = 0; i < 5000; ++i) {
    g.next(line);
    jobs::ClickEvent e;
    ASSERT_TRUE(parser.parse(line, e).empty()) << line;
    users.insert(e.user_id.str());
    pages.insert(e.page_url.str());
  }
  EXPECT_EQ(users, (std::set<std::string>{"u0", "u1", "u2", "u3", "u4", "u5", "u6"}));
  EXPECT_EQ(pages, (std::set<std::string>{"/p/0", "/p/1", "/p/2"}));
}

TEST(RunGenerator, EmitsCountLinesAndSummarisesTheirKinds) {
  GenOptions o = messy();
  o.count = 5000;
  std::vector<std::string> lines;
  auto sum = run_generator(o, [&](const std::string& l) {
    lines.push_back(l);
    return Status::ok();
  });
  ASSERT_TRUE(sum.is_ok()) << sum.status().to_string();
  EXPECT_EQ(sum->total(), 5000);
  EXPECT_EQ(lines.size(), 5000u);
  std::vector<LineKind> kinds;
  EXPECT_EQ(generate(o, 5000, &kinds), lines) << "run_generator emits ClickGenerator's lines";
  int64_t counts[4] = {0, 0, 0, 0};
  for (LineKind k : kinds) ++counts[static_cast<int>(k)];
  EXPECT_EQ(sum->on_time, counts[static_cast<int>(LineKind::kOnTime)]);
  EXPECT_EQ(sum->out_of_order, counts[static_cast<int>(LineKind::kOutOfOrder)]);
  EXPECT_EQ(sum->late, counts[static_cast<int>(LineKind::kLate)]);
  EXPECT_EQ(sum->malformed, counts[static_cast<int>(LineKind::kMalformed)]);
}

TEST(RunGenerator, StopsAtTheFirstEmitError) {
  GenOptions o;
  o.count = 100;
  int calls = 0;
  auto sum = run_generator(o, [&](const std::string&) {
    return ++calls == 10 ? Status::io_error("disk full") : Status::ok();
  });
  ASSERT_FALSE(sum.is_ok());
  EXPECT_EQ(sum.status().code(), StatusCode::kIoError);
  EXPECT_EQ(calls, 10);
}

TEST(GenOptions, DefaultsAreValid) { EXPECT_TRUE(GenOptions{}.validate().is_ok()); }

TEST(GenOptions, InvalidSettingsAreRejectedWithAMessage) {
  struct Case {
    const char* what;
    std::function<void(GenOptions&)> set;
  };
  const std::vector<Case> cases = {
      {"no users", [](GenOptions& o) { o.users = 0; }},
      {"no pages", [](GenOptions& o) { o.pages = 0; }},
      {"negative skew", [](GenOptions& o) { o.skew = -0.5; }},
      {"negative out-of-order fraction", [](GenOptions& o) { o.out_of_order_fraction = -0.1; }},
      {"late fraction above 1", [](GenOptions& o) { o.late_fraction = 1.5; }},
      {"malformed fraction above 1", [](GenOptions& o) { o.malformed_fraction = 2; }},
      {"fractions summing above 1",
       [](GenOptions& o) {
         o.out_of_order_fraction = 0.5;
         o.late_fraction = 0.3;
         o.malformed_fraction = 0.3;
       }},
      {"zero event density", [](GenOptions& o) { o.events_per_second = 0; }},
      {"negative max delay", [](GenOptions& o) { o.max_delay = Duration(-1); }},
      {"negative late delay", [](GenOptions& o) { o.late_delay = Duration(-1); }},
      {"unbounded without a rate", [](GenOptions& o) { o.count = -1; }},
      {"negative rate", [](GenOptions& o) { o.rate = -5; }},
  };
  for (const auto& c : cases) {
    GenOptions o;
    c.set(o);
    Status st = o.validate();
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << c.what << ": " << st.to_string();
    EXPECT_FALSE(st.message().empty()) << c.what;
    // run_generator refuses too, before emitting anything.
    int emitted = 0;
    auto r = run_generator(o, [&](const std::string&) {
      ++emitted;
      return Status::ok();
    });
    EXPECT_FALSE(r.is_ok()) << c.what;
    EXPECT_EQ(emitted, 0) << c.what;
  }
}

TEST(GenOptions, FractionsSummingToExactlyOneAreValid) {
  GenOptions o;
  o.out_of_order_fraction = 0.5;
  o.late_fraction = 0.25;
  o.malformed_fraction = 0.25;
  EXPECT_TRUE(o.validate().is_ok()) << o.validate().to_string();
}

}  // namespace
}  // namespace sluice::gen
