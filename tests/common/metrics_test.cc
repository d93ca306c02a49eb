// The subtask samples the taskmanager exports on /metrics (task_families):
// the watermark series agree with the status JSON — none before the first
// watermark nor after the final one, the lag never negative.
#include "engine/common/metrics.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <cstdint>
#include <string>

namespace sluice::metrics {
namespace {

std::string exposition(int64_t watermark_ms, int64_t now_ms) {
  TaskSample s;
  s.job = "clicks";
  s.job_id = "j1";
  s.vertex = "source";
  s.watermark_ms = watermark_ms;
  return prometheus::TextSerializer().Serialize(task_families({s}, now_ms));
}

TEST(TaskMetrics, WatermarkAndLagAreExportedOnceThereIsAWatermark) {
  std::string text = exposition(1'700'000'000'000, 1'700'000'004'000);
  EXPECT_NE(text.find("sluice_task_watermark_seconds{job=\"clicks\",job_id=\"j1\",vertex=\"source\",subtask=\"0\"} 1700000000"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("sluice_task_watermark_lag_seconds{job=\"clicks\",job_id=\"j1\",vertex=\"source\",subtask=\"0\"} 4"),
            std::string::npos)
      << text;
}

TEST(TaskMetrics, NoWatermarkSeriesBeforeTheFirstOrAfterTheFinalWatermark) {
  for (int64_t wm : {INT64_MIN, INT64_MAX}) {
    std::string text = exposition(wm, 1'700'000'000'000);
    EXPECT_EQ(text.find("sluice_task_watermark"), std::string::npos) << wm << ":\n" << text;
    EXPECT_NE(text.find("sluice_task_records_in_total"), std::string::npos) << text;
  }
}

TEST(TaskMetrics, AWatermarkAheadOfTheWallClockHasNoNegativeLag) {
  std::string text = exposition(1'700'000'009'000, 1'700'000'000'000);
  EXPECT_NE(text.find("sluice_task_watermark_lag_seconds{job=\"clicks\",job_id=\"j1\",vertex=\"source\",subtask=\"0\"} 0\n"),
            std::string::npos)
      << text;
}

TEST(TaskMetrics, SmallEventTimesAreWatermarksToo) {
  // Event time is whatever the job's timestamps say (tests and replays use
  // small ones): the status JSON shows it, so /metrics does too.
  std::string text = exposition(1'500, 4'000);
  EXPECT_NE(text.find("sluice_task_watermark_seconds{job=\"clicks\",job_id=\"j1\",vertex=\"source\",subtask=\"0\"} 1.5"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace sluice::metrics
