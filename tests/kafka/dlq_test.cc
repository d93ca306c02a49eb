// Dead letters to a Kafka topic: messages the source cannot deserialize
// and records an operator rejects reach the dead-letter topic with their
// headers while the job goes on; the sink counts them.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "connectors/kafka/kafka.h"
#include "engine/common/json_read.h"
#include "tests/kafka/kafka_test_util.h"
#include "tests/kafka/test_record.h"

namespace sluice::kafka {
namespace {

using namespace sluice::kafka::testing;

class KafkaDlqTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { broker_ = DevKafka::start({"dlq_in:2", "dlq_out:1", "dlq_unit:1"}).release(); }
  static void TearDownTestSuite() {
    EXPECT_EQ(broker_->stop(), 0);
    delete broker_;
  }
  static const std::string& bs() { return broker_->bootstrap(); }
  static inline DevKafka* broker_ = nullptr;
};

std::map<std::string, std::string> header_map(const KafkaMessage& m) {
  std::map<std::string, std::string> h;
  for (const auto& x : m.headers) h[x.key] = x.value;
  return h;
}

TEST_F(KafkaDlqTest, BadRecordsReachTheDeadLetterTopicWithHeadersAndTheJobGoesOn) {
  // Partition 0: good, malformed, good. Partition 1: wrong type, rejected, good.
  produce(bs(), "dlq_in", {R"({"id":1,"body":"a"})", "{not json", R"({"id":2,"body":"b"})"}, 0);
  produce(bs(), "dlq_in", {R"({"id":"three","body":"c"})", R"({"id":4,"body":"reject"})", R"({"id":5,"body":"e"})"}, 1);
  std::string out = make_temp_dir("dlq");
  auto r = run_local(test_job_library(),
                     {"-p", "2", "--arg", "source=kafka://" + bs() + "/dlq_in?start=earliest&stop=latest",
                      "--arg", "sink=file://" + out + "/out.ndjson", "--arg", "dlq=kafka://" + bs() + "/dlq_out"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("dead letters: 3"), std::string::npos) << r.output;

  std::vector<int64_t> good;
  JsonParser p;
  for (const auto& e : std::filesystem::directory_iterator(out)) {
    std::ifstream in(e.path());
    std::string line;
    while (std::getline(in, line)) {
      TestRecord rec;
      ASSERT_EQ(p.parse(line, rec), "");
      good.push_back(rec.id);
    }
  }
  std::sort(good.begin(), good.end());
  EXPECT_EQ(good, (std::vector<int64_t>{1, 2, 5}));

  auto dead = read_topic(bs(), "dlq_out");
  ASSERT_EQ(dead.size(), 3u);
  std::map<std::string, std::map<std::string, std::string>> by_payload;
  for (const auto& m : dead) by_payload[m.value.value_or("")] = header_map(m);

  auto& malformed = by_payload["{not json"];
  EXPECT_FALSE(malformed["sluice.reason"].empty());
  EXPECT_EQ(malformed["sluice.origin"], "dlq_in");
  EXPECT_EQ(malformed["sluice.partition"], "0");
  EXPECT_EQ(malformed["sluice.offset"], "1");
  EXPECT_EQ(malformed["sluice.job"], "kafka_test_job");
  EXPECT_EQ(malformed["sluice.operator"], "records");
  EXPECT_EQ(malformed.count("sluice.line"), 0u);

  auto& wrong_type = by_payload[R"({"id":"three","body":"c"})"];
  EXPECT_NE(wrong_type["sluice.reason"].find("field 'id'"), std::string::npos) << wrong_type["sluice.reason"];
  EXPECT_EQ(wrong_type["sluice.partition"], "1");
  EXPECT_EQ(wrong_type["sluice.offset"], "0");

  // Rejected by the map operator: origin is the operator, payload its JSON.
  ASSERT_EQ(by_payload.count(R"({"id":4,"body":"reject"})"), 1u) << "payloads: " << dead[0].value.value_or("");
  auto& rejected = by_payload[R"({"id":4,"body":"reject"})"];
  EXPECT_EQ(rejected["sluice.reason"], "body is 'reject'");
  EXPECT_EQ(rejected["sluice.operator"], "check");
  EXPECT_EQ(rejected["sluice.origin"], "operator check");
}

TEST_F(KafkaDlqTest, TheDeadLetterSinkCountsWhatItWrites) {
  auto sink = KafkaSink<DeadLetter>::from_uri("kafka://" + bs() + "/dlq_unit");
  ASSERT_TRUE(sink.is_ok());
  auto w = (*sink)->create_writer();
  FakeContext ctx(0, 1);
  ctx.info_.job_name = "dlq-count";
  ASSERT_TRUE(w->initialize_state({}).is_ok());
  ASSERT_TRUE(w->open(ctx).is_ok());
  for (int i = 0; i < 7; ++i) {
    DeadLetter d;
    d.reason = "r" + std::to_string(i);
    d.origin = "events.ndjson";
    d.line = i + 1;
    d.offset = i * 10;
    d.payload = "p" + std::to_string(i);
    ASSERT_TRUE(w->write(d, EventTime::min()).is_ok());
  }
  ASSERT_TRUE(w->close().is_ok());
  EXPECT_EQ(metric_value("sluice_kafka_dlq_records_total", {{"job", "dlq-count"}, {"topic", "dlq_unit"}}), 7);
  auto dead = read_topic(bs(), "dlq_unit");
  ASSERT_EQ(dead.size(), 7u);
  auto h = header_map(dead[3]);
  EXPECT_EQ(dead[3].value, std::optional<std::string>("p3"));
  EXPECT_EQ(h["sluice.origin"], "events.ndjson");
  EXPECT_EQ(h["sluice.line"], "4");
  EXPECT_EQ(h["sluice.offset"], "30");
  EXPECT_EQ(h.count("sluice.partition"), 0u);
}

}  // namespace
}  // namespace sluice::kafka
