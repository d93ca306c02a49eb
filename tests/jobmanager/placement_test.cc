#include "engine/jobmanager/placement.h"

#include <gtest/gtest.h>

#include <map>

namespace sluice::jobmanager {
namespace {

std::map<std::string, int> per_tm(const std::vector<std::string>& slots) {
  std::map<std::string, int> n;
  for (const auto& s : slots) ++n[s];
  return n;
}

TEST(Placement, SpreadsSlotsOverTheTaskManagersWithTheMostFreeSlots) {
  auto p = place_slots({{"a", 2}, {"b", 2}, {"c", 2}}, 4);
  ASSERT_TRUE(p.is_ok());
  auto n = per_tm(*p);
  EXPECT_EQ(n.size(), 3u);
  for (const auto& [tm, k] : n) EXPECT_LE(k, 2) << tm;
}

TEST(Placement, AvoidsSuspectsWhileTheOthersHaveRoom) {
  auto p = place_slots({{"a", 2}, {"b", 2, true}, {"c", 2}}, 4);
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(per_tm(*p), (std::map<std::string, int>{{"a", 2}, {"c", 2}}));
  // The others cannot hold the job: the suspect is used rather than waiting.
  auto q = place_slots({{"a", 2}, {"b", 2, true}, {"c", 1}}, 4);
  ASSERT_TRUE(q.is_ok());
  EXPECT_EQ(per_tm(*q)["b"], 1);
}

TEST(Placement, SaysHowManySlotsAreMissing) {
  auto p = place_slots({{"a", 1}, {"b", 0}}, 3);
  ASSERT_FALSE(p.is_ok());
  EXPECT_EQ(p.status().message(), "waiting for slots: need 3, 1 free");
}

TEST(Suspects, TheFarEndOfALostConnectionIsSuspectForAPeriod) {
  Suspects s(Duration(30'000));
  std::map<std::string, std::string> data = {{"tm-a", "10.0.0.1:4000"}, {"tm-b", "10.0.0.2:4000"},
                                             {"tm-c", "10.0.0.2:40001"}};
  auto hit = s.implicate("task x failed: connection to consumer at 10.0.0.2:40001 lost: reset", data, 1000);
  EXPECT_EQ(hit, std::vector<std::string>{"tm-c"}) << "10.0.0.2:4000 is a prefix of the address, not the address";
  EXPECT_TRUE(s.suspect("tm-c", 1000));
  EXPECT_TRUE(s.suspect("tm-c", 30'999));
  EXPECT_FALSE(s.suspect("tm-c", 31'000));
  EXPECT_FALSE(s.suspect("tm-a", 1000));
  EXPECT_TRUE(s.implicate("task x failed: user code threw", data, 1000).empty());
  s.forget("tm-c");
  EXPECT_FALSE(s.suspect("tm-c", 1000));
  EXPECT_EQ(s.implicate("connection from producer 110.0.0.1:4000 lost", data, 0), std::vector<std::string>{})
      << "110.0.0.1 is not 10.0.0.1";
}

}  // namespace
}  // namespace sluice::jobmanager
