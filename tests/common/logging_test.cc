// The in-memory ring of recent log lines (sluice logs, the dashboard's logs).
#include "engine/common/logging.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <string>

namespace sluice {
namespace {

TEST(Logging, RecentLinesAreKeptFilteredAndBounded) {
  ASSERT_TRUE(init_logging("info").is_ok());
  spdlog::info("job alpha-1 started");
  spdlog::debug("job alpha-1 debug line (below the level)");
  spdlog::warn("job beta-2 restarted");
  spdlog::info("job alpha-1 checkpoint 3 complete");
  auto alpha = recent_log_lines("alpha-1", 10);
  ASSERT_EQ(alpha.size(), 2u);
  EXPECT_NE(alpha[0].find("job alpha-1 started"), std::string::npos) << "oldest first: " << alpha[0];
  EXPECT_NE(alpha[1].find("checkpoint 3"), std::string::npos);
  EXPECT_NE(alpha[1].find("info"), std::string::npos) << "with the level: " << alpha[1];
  EXPECT_EQ(alpha[1].back() == '\n', false);
  EXPECT_EQ(recent_log_lines("alpha-1", 1).size(), 1u);
  EXPECT_NE(recent_log_lines("alpha-1", 1)[0].find("checkpoint 3"), std::string::npos) << "the latest ones";
  for (size_t i = 0; i < kRecentLogLines + 10; ++i) spdlog::info("filler {}", i);
  EXPECT_TRUE(recent_log_lines("alpha-1", 10).empty()) << "the ring forgets old lines";
  EXPECT_EQ(recent_log_lines("", kRecentLogLines * 2).size(), kRecentLogLines);
  EXPECT_FALSE(init_logging("loud").is_ok());
}

}  // namespace
}  // namespace sluice
