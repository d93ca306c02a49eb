// The page-view generator: seeded, every kind of line it promises, and the
// timing promises the sessions_funnel tests rely on (late events within the
// lateness, out-of-order ones within the watermark bound, very late ones
// days behind, sessions split by the gap, funnel rates roughly as asked).
#include "jobs/gen/pageviews.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/common/json_read.h"
#include "jobs/sessions_funnel/events.h"

namespace sluice::gen {
namespace {

std::vector<std::string> generate(const PageViewOptions& o, PageViewSummary* sum = nullptr) {
  std::vector<std::string> out;
  auto r = run_pageviews(o, [&](const std::string& l) {
    out.push_back(l);
    return Status::ok();
  });
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  if (sum && r.is_ok()) *sum = *r;
  return out;
}

PageViewOptions messy() {
  PageViewOptions o;
  o.count = 40'000;
  o.users = 200;
  o.late_fraction = 0.02;
  o.very_late_fraction = 0.002;
  o.malformed_fraction = 0.01;
  return o;
}

TEST(PageViewGenerator, SameSeedGivesTheSameLinesAndAnotherSeedOthers) {
  PageViewOptions o = messy();
  o.count = 3000;
  EXPECT_EQ(generate(o), generate(o));
  PageViewOptions other = o;
  other.seed = o.seed + 1;
  EXPECT_NE(generate(o), generate(other));
}

TEST(PageViewGenerator, EveryKindOfLineIsThereAndTimingsKeepTheirPromises) {
  const PageViewOptions o = messy();
  PageViewSummary sum;
  const auto lines = generate(o, &sum);
  ASSERT_EQ(static_cast<int64_t>(lines.size()), o.count);
  EXPECT_EQ(sum.total(), o.count);
  for (int64_t n : {sum.on_time, sum.out_of_order, sum.late, sum.bridging, sum.very_late, sum.malformed}) EXPECT_GT(n, 0);

  JsonParser parser;
  int64_t max_ts = 0, malformed = 0, behind_ooo = 0, behind_late = 0, very_late = 0, bridging = 0;
  std::map<std::string, std::vector<int64_t>> by_user;
  std::set<std::string> types, devices;
  for (const auto& l : lines) {
    jobs::PageView v;
    if (!parser.parse(l, v).empty()) {
      ++malformed;
      continue;
    }
    types.insert(v.event_type);
    devices.insert(v.device);
    if (v.ts < o.start_ts - 86'400'000) {
      ++very_late;
      continue;
    }
    if (v.event_type == "click") continue;  // the invalid kind of malformed line
    const int64_t behind = max_ts - v.ts;
    if (behind >= o.out_of_orderness.count() + o.allowed_lateness.count()) {
      // Behind the watermark (max - ooo) by more than the lateness only to
      // bridge: it touches a session of its user that is still there.
      const auto& seen = by_user[v.user_id];
      EXPECT_TRUE(std::any_of(seen.begin(), seen.end(), [&](int64_t t) { return std::abs(t - v.ts) <= o.gap.count(); }))
          << "far behind without bridging anything: " << l;
      ++bridging;
    } else if (behind > o.out_of_orderness.count()) {
      ++behind_late;
    } else if (behind > 0) {
      ++behind_ooo;
    }
    max_ts = std::max(max_ts, v.ts);
    by_user[v.user_id].push_back(v.ts);
  }
  EXPECT_GT(malformed, 0);
  EXPECT_GT(behind_ooo, 1000);
  EXPECT_GT(behind_late, 200);
  EXPECT_EQ(very_late, sum.very_late);
  EXPECT_EQ(bridging, sum.bridging);
  EXPECT_EQ(types, (std::set<std::string>{"view", "add_to_cart", "checkout", "purchase", "click"}));
  EXPECT_EQ(devices, (std::set<std::string>{"desktop", "mobile", "tablet"}));

  // Pauses: some just under the gap (one session), some just over (two).
  int64_t just_under = 0, just_over = 0;
  for (auto& [u, ts] : by_user) {
    std::sort(ts.begin(), ts.end());
    for (size_t i = 1; i < ts.size(); ++i) {
      const int64_t d = ts[i] - ts[i - 1];
      if (d <= o.gap.count() && d > o.gap.count() - 120'000) ++just_under;
      if (d > o.gap.count() && d < o.gap.count() + 120'000) ++just_over;
    }
  }
  EXPECT_GT(just_under, 20);
  EXPECT_GT(just_over, 20);
}

TEST(PageViewGenerator, ConversionRatesShapeTheFunnel) {
  auto count = [](const std::vector<std::string>& lines, const std::string& needle) {
    return std::count_if(lines.begin(), lines.end(), [&](const std::string& l) { return l.find(needle) != std::string::npos; });
  };
  PageViewOptions o;
  o.count = 20'000;
  o.malformed_fraction = 0;
  o.very_late_fraction = 0;
  o.conversion = {0.9, 0.9, 0.9};
  o.purchase_rate = 0.9;
  const auto eager = generate(o);
  o.conversion = {0.3, 0.1, 0.1};
  o.purchase_rate = 0.1;
  const auto shy = generate(o);
  EXPECT_GT(count(eager, "\"purchase\""), 10 * count(shy, "\"purchase\"") + 10);
  EXPECT_GT(count(eager, "/cart"), 5 * count(shy, "/cart"));
}

TEST(PageViewGenerator, RefusesOptionsThatBreakItsPromises) {
  PageViewOptions o;
  o.think_time = Duration(15 * 60'000);  // a third of the gap or more
  EXPECT_FALSE(o.validate().is_ok());
  o = PageViewOptions{};
  o.conversion = {0.5, 0.5};
  EXPECT_FALSE(o.validate().is_ok());
  o = PageViewOptions{};
  o.count = -1;
  EXPECT_FALSE(o.validate().is_ok()) << "unbounded needs a rate";
}

}  // namespace
}  // namespace sluice::gen
