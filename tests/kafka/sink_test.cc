// The Kafka sink against `sluice dev-kafka`: at-least-once delivery
// (flush at every checkpoint), keys and partitioners, and the
// exactly-once sink's visible behaviour (nothing before the checkpoint
// completes, refusal to start without checkpointing or with a transaction
// timeout shorter than the checkpoint interval). Crash recovery of the
// exactly-once protocol is in eos_test.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "connectors/kafka/kafka.h"
#include "engine/common/json_read.h"
#include "tests/kafka/kafka_test_util.h"
#include "tests/kafka/test_record.h"

namespace sluice::kafka {
namespace {

using namespace sluice::kafka::testing;

class KafkaSinkTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    broker_ = DevKafka::start({"alo3:3", "keyed4:4", "eos_visible:2", "eos_refuse:1", "job_in:4",
                               "job_out:3"})
                  .release();
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(broker_->stop(), 0);
    delete broker_;
  }
  static const std::string& bs() { return broker_->bootstrap(); }
  static std::unique_ptr<runtime::SinkWriter<TestRecord>> writer(const std::string& uri) {
    auto s = KafkaSink<TestRecord>::from_uri(uri);
    EXPECT_TRUE(s.is_ok()) << s.status().message();
    return (*s)->create_writer();
  }
  static std::vector<int64_t> ids(const std::vector<KafkaMessage>& ms) {
    std::vector<int64_t> out;
    JsonParser p;
    for (const auto& m : ms) {
      TestRecord r;
      EXPECT_EQ(p.parse(m.value.value_or(""), r), "");
      out.push_back(r.id);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  static std::vector<int64_t> iota_ids(int64_t first, int64_t n) {
    std::vector<int64_t> v(n);
    for (int64_t i = 0; i < n; ++i) v[i] = first + i;
    return v;
  }
  static inline DevKafka* broker_ = nullptr;
};

TEST_F(KafkaSinkTest, AtLeastOnceDeliversEverythingBeforeTheCheckpointCompletes) {
  FakeContext ctx(0, 1);
  ctx.info_.job_name = "alo-job";
  auto w = writer("kafka://" + bs() + "/alo3");
  ASSERT_TRUE(w->initialize_state({}).is_ok());
  ASSERT_TRUE(w->open(ctx).is_ok());
  for (int i = 1; i <= 3000; ++i) ASSERT_TRUE(w->write(TestRecord{i, "b"}, EventTime::min()).is_ok());
  auto blob = w->snapshot_state(CheckpointId(1));
  ASSERT_TRUE(blob.is_ok()) << blob.status().message();
  EXPECT_TRUE(blob->empty());  // nothing to restore: all of it is in Kafka
  // The barrier has passed: every record is acknowledged, before any
  // notification.
  EXPECT_EQ(ids(read_topic(bs(), "alo3")), iota_ids(1, 3000));
  for (int i = 3001; i <= 3500; ++i) ASSERT_TRUE(w->write(TestRecord{i, "b"}, EventTime::min()).is_ok());
  ASSERT_TRUE(w->flush().is_ok());  // end of input
  ASSERT_TRUE(w->close().is_ok());
  EXPECT_EQ(ids(read_topic(bs(), "alo3")), iota_ids(1, 3500));
  EXPECT_EQ(metric_value("sluice_kafka_producer_records_total", {{"job", "alo-job"}, {"topic", "alo3"}}), 3500);
  EXPECT_EQ(metric_value("sluice_kafka_producer_queue_messages", {{"job", "alo-job"}, {"topic", "alo3"}}), 0);
  EXPECT_EQ(metric_value("sluice_kafka_producer_delivery_errors_total", {{"job", "alo-job"}, {"topic", "alo3"}}), 0);
}

TEST_F(KafkaSinkTest, TheKeyFieldBecomesTheMessageKeyAndPicksThePartition) {
  FakeContext ctx(0, 1);
  auto w = writer("kafka://" + bs() + "/keyed4?key=body");
  ASSERT_TRUE(w->initialize_state({}).is_ok());
  ASSERT_TRUE(w->open(ctx).is_ok());
  for (int i = 0; i < 400; ++i) {
    ASSERT_TRUE(w->write(TestRecord{i, "user" + std::to_string(i % 20)}, EventTime::min()).is_ok());
  }
  ASSERT_TRUE(w->close().is_ok());
  auto msgs = read_topic(bs(), "keyed4");
  ASSERT_EQ(msgs.size(), 400u);
  std::map<std::string, std::set<int32_t>> partitions_of_key;
  JsonParser p;
  for (const auto& m : msgs) {
    ASSERT_TRUE(m.key.has_value());
    TestRecord r;
    ASSERT_EQ(p.parse(*m.value, r), "");
    EXPECT_EQ(*m.key, r.body);
    partitions_of_key[*m.key].insert(m.partition);
  }
  std::set<int32_t> used;
  for (const auto& [k, parts] : partitions_of_key) {
    EXPECT_EQ(parts.size(), 1u) << "key " << k << " went to several partitions";
    used.insert(*parts.begin());
  }
  EXPECT_GT(used.size(), 1u);  // 20 keys spread over the 4 partitions
}

TEST_F(KafkaSinkTest, ExactlyOnceWritesNothingUntilTheCheckpointCompletes) {
  FakeContext ctx(0, 1, Configuration({{"checkpoint.dir", "/unused"}, {"checkpoint.interval", "1s"}}));
  ctx.info_.job_name = "eos-visible";
  auto w = writer("kafka://" + bs() + "/eos_visible?delivery=exactly-once");
  ASSERT_TRUE(w->initialize_state({}).is_ok());
  ASSERT_TRUE(w->open(ctx).is_ok());
  for (int i = 1; i <= 100; ++i) ASSERT_TRUE(w->write(TestRecord{i, "b"}, EventTime::min()).is_ok());
  auto s1 = w->snapshot_state(CheckpointId(1));
  ASSERT_TRUE(s1.is_ok());
  EXPECT_FALSE(s1->empty());  // the records travel in the checkpoint
  for (int i = 101; i <= 150; ++i) ASSERT_TRUE(w->write(TestRecord{i, "b"}, EventTime::min()).is_ok());
  EXPECT_TRUE(read_topic(bs(), "eos_visible", false).empty());
  ASSERT_TRUE(w->notify_checkpoint_complete(CheckpointId(1)).is_ok());
  EXPECT_EQ(ids(read_topic(bs(), "eos_visible")), iota_ids(1, 100));  // not 101..150 yet
  ASSERT_TRUE(w->snapshot_state(CheckpointId(2)).is_ok());
  ASSERT_TRUE(w->notify_checkpoint_complete(CheckpointId(2)).is_ok());
  ASSERT_TRUE(w->close().is_ok());
  EXPECT_EQ(ids(read_topic(bs(), "eos_visible")), iota_ids(1, 150));
  EXPECT_EQ(metric_value("sluice_kafka_transactions_total",
                         {{"job", "eos-visible"}, {"topic", "eos_visible"}, {"outcome", "committed"}}),
            2);
}

TEST_F(KafkaSinkTest, ExactlyOnceRefusesToStartWithoutCheckpointsOrWithATooShortTimeout) {
  {
    FakeContext ctx(0, 1);
    auto w = writer("kafka://" + bs() + "/eos_refuse?delivery=exactly-once");
    ASSERT_TRUE(w->initialize_state({}).is_ok());
    Status st = w->open(ctx);
    ASSERT_FALSE(st.is_ok());
    EXPECT_NE(st.message().find("runs without checkpointing"), std::string::npos) << st.message();
  }
  {
    FakeContext ctx(0, 1, Configuration({{"checkpoint.dir", "/unused"}, {"checkpoint.interval", "5m"}}));
    auto w = writer("kafka://" + bs() + "/eos_refuse?delivery=exactly-once&transaction.timeout=2m");
    ASSERT_TRUE(w->initialize_state({}).is_ok());
    Status st = w->open(ctx);
    ASSERT_FALSE(st.is_ok());
    EXPECT_NE(st.message().find("transaction.timeout (2m) is shorter than the job's checkpoint.interval (5m)"),
              std::string::npos)
        << st.message();
  }
}

TEST_F(KafkaSinkTest, AMissingTopicIsRefusedAtOpen) {
  FakeContext ctx(0, 1);
  auto w = writer("kafka://" + bs() + "/not_created");
  ASSERT_TRUE(w->initialize_state({}).is_ok());
  Status st = w->open(ctx);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("'not_created' does not exist"), std::string::npos) << st.message();
}

TEST_F(KafkaSinkTest, AJobCopiesATopicToATopicAtParallelismThree) {
  std::vector<std::string> in;
  for (int i = 1; i <= 1200; ++i) in.push_back("{\"id\":" + std::to_string(i) + ",\"body\":\"b\"}");
  produce(bs(), "job_in", in);
  auto r = run_local(test_job_library(),
                     {"-p", "3", "--arg", "source=kafka://" + bs() + "/job_in?start=earliest&stop=latest",
                      "--arg", "sink=kafka://" + bs() + "/job_out"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(ids(read_topic(bs(), "job_out")), iota_ids(1, 1200));
}

}  // namespace
}  // namespace sluice::kafka
