// The clickstream example on Kafka: `sluice gen --kafka` produces paced
// clicks (with out-of-order and malformed ones), the job reads them with a
// bounded Kafka source, and its per-page window counts equal counts the
// test computes itself from what is in the topic.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <tuple>

#include "engine/common/json_read.h"
#include "jobs/clickstream/events.h"
#include "tests/kafka/kafka_test_util.h"

namespace sluice::kafka {
namespace {

using namespace sluice::kafka::testing;
using jobs::ClickEvent;
using jobs::PageCount;

class KafkaClickstreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { broker_ = DevKafka::start({"clicks:4", "clicks_dlq:1"}).release(); }
  static void TearDownTestSuite() {
    EXPECT_EQ(broker_->stop(), 0);
    delete broker_;
  }
  static const std::string& bs() { return broker_->bootstrap(); }
  static inline DevKafka* broker_ = nullptr;
};

TEST_F(KafkaClickstreamTest, GeneratedClicksThroughKafkaGiveTheReferenceCounts) {
  auto gen = run_process({build_dir() + "/sluice", "gen", "--kafka", bs(), "--topic", "clicks", "--count",
                          "3000", "--rate", "20000", "--seed", "11", "--pages", "20",
                          "--out-of-order", "0.2", "--max-delay", "2s", "--malformed", "0.03"});
  ASSERT_EQ(gen.exit_code, 0) << gen.output;
  EXPECT_NE(gen.output.find("produced 3000 messages"), std::string::npos) << gen.output;

  // Reference: every message in the topic, parsed and validated as the job
  // does, counted per page and 60 s window (no event is later than the
  // job's 2 s out-of-orderness, so none is dropped as late).
  auto msgs = read_topic(bs(), "clicks");
  ASSERT_EQ(msgs.size(), 3000u);
  std::map<std::tuple<int64_t, std::string>, int64_t> want;
  int64_t rejected = 0;
  JsonParser parser;
  for (const auto& m : msgs) {
    ClickEvent e;
    if (!parser.parse(m.value.value_or(""), e).empty() || e.page_url.empty() || e.ts <= 0) {
      ++rejected;
      continue;
    }
    ++want[{e.ts - e.ts % 60'000, e.page_url.str()}];
  }
  ASSERT_GT(rejected, 0);

  std::string out = make_temp_dir("clickstream");
  auto job = run_local(build_dir() + "/jobs/clickstream/libclickstream.so",
                       {"-p", "2", "--arg", "source=kafka://" + bs() + "/clicks?start=earliest&stop=latest",
                        "--arg", "sink=file://" + out + "/counts.ndjson", "--arg",
                        "dlq=kafka://" + bs() + "/clicks_dlq"});
  ASSERT_EQ(job.exit_code, 0) << job.output;

  std::map<std::tuple<int64_t, std::string>, int64_t> got;
  for (const auto& f : std::filesystem::directory_iterator(out)) {
    if (f.path().filename().string().rfind('.', 0) == 0) continue;
    std::ifstream in(f.path());
    std::string line;
    while (std::getline(in, line)) {
      PageCount c;
      ASSERT_EQ(parser.parse(line, c), "") << line;
      EXPECT_EQ(c.window_end - c.window_start, 60'000);
      EXPECT_EQ(got.count({c.window_start, c.page_url}), 0u) << "window reported twice";
      got[{c.window_start, c.page_url}] = c.count;
    }
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(static_cast<int64_t>(read_topic(bs(), "clicks_dlq").size()), rejected);
}

}  // namespace
}  // namespace sluice::kafka
