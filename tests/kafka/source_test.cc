// The Kafka source against `sluice dev-kafka`: exactly-once reading at
// several parallelisms (through `sluice run-local`), exact resume from a
// snapshot (also rescaled), committed offsets, bounded reads, out-of-range
// positions, partition discovery and per-partition splits.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "connectors/kafka/kafka.h"
#include "engine/common/json_read.h"
#include "tests/kafka/kafka_test_util.h"
#include "tests/kafka/test_record.h"

namespace sluice::kafka {
namespace {

using namespace sluice::kafka::testing;

class KafkaSourceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    broker_ = DevKafka::start({"src8:8", "restore8:8", "commit4:4", "bounded2:2", "oor_end:1",
                               "oor_head:1", "splits3:3", "present:1", "bad1:1", "lag1:1", "big1:1"})
                  .release();
    // 2000 records over 8 partitions (250 each), ids 1..2000.
    for (int p = 0; p < 8; ++p) produce(bs(), "src8", records(p * 250 + 1, 250), p);
    for (int p = 0; p < 8; ++p) produce(bs(), "restore8", records(p * 100 + 1, 100), p);
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(broker_->stop(), 0) << "dev-kafka did not stop cleanly";
    delete broker_;
  }
  static const std::string& bs() { return broker_->bootstrap(); }
  static std::vector<std::string> records(int64_t first, int n) {
    std::vector<std::string> v;
    for (int i = 0; i < n; ++i) {
      int64_t id = first + i;
      v.push_back("{\"id\":" + std::to_string(id) + ",\"body\":\"b" + std::to_string(id) + "\"}");
    }
    return v;
  }
  static std::unique_ptr<runtime::SourceReader<TestRecord>> reader(const std::string& uri) {
    auto src = KafkaSource<TestRecord>::from_uri(uri);
    EXPECT_TRUE(src.is_ok()) << src.status().message();
    return (*src)->create_reader();
  }
  static std::vector<int64_t> ids(const std::vector<TestRecord>& rs) {
    std::vector<int64_t> out;
    for (const auto& r : rs) out.push_back(r.id);
    return out;
  }
  static inline DevKafka* broker_ = nullptr;
};

std::vector<int64_t> ids_in_files(const std::string& dir) {
  std::vector<int64_t> out;
  JsonParser parser;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().rfind('.', 0) == 0) continue;  // a sink's work files
    std::ifstream in(e.path());
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      TestRecord r;
      EXPECT_EQ(parser.parse(line, r), "") << line;
      out.push_back(r.id);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<int64_t> iota_ids(int64_t first, int64_t n) {
  std::vector<int64_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = first + i;
  return v;
}

class KafkaSourceParallelismTest : public KafkaSourceTest, public ::testing::WithParamInterface<int> {};

TEST_P(KafkaSourceParallelismTest, ReadsEveryRecordOfAnEightPartitionTopicExactlyOnce) {
  const int p = GetParam();
  std::string out = make_temp_dir("par" + std::to_string(p));
  std::string group = "par-" + std::to_string(p);
  auto r = run_local(test_job_library(),
                     {"-p", std::to_string(p), "--arg",
                      "source=kafka://" + bs() + "/src8?start=earliest&stop=latest&group=" + group,
                      "--arg", "sink=file://" + out + "/out.ndjson"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(ids_in_files(out), iota_ids(1, 2000));
}

INSTANTIATE_TEST_SUITE_P(Parallelism, KafkaSourceParallelismTest, ::testing::Values(1, 2, 4));

TEST_F(KafkaSourceTest, CommitsOffsetsOfTheFinalCheckpointUnderTheJobsGroup) {
  std::string out = make_temp_dir("commit-final");
  std::string cps = make_temp_dir("commit-final-cp");
  auto r = run_local(test_job_library(),
                     {"-p", "2", "--checkpoint-dir", cps, "--checkpoint-interval", "200ms", "--arg",
                      "source=kafka://" + bs() + "/src8?start=earliest&stop=latest&group=final-group",
                      "--arg", "sink=file://" + out + "/out.ndjson"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(ids_in_files(out), iota_ids(1, 2000));
  // The final checkpoint covered every record: lag tools see no lag. The
  // commit is asynchronous, so give the coordinator a moment.
  for (int part = 0; part < 8; ++part) {
    int64_t off = -1;
    for (int i = 0; i < 100 && off != 250; ++i) {
      off = committed_offset(bs(), "final-group", "src8", part);
      if (off != 250) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(off, 250) << "partition " << part;
  }
}

TEST_F(KafkaSourceTest, RestoreFromSnapshotsResumesExactlyEvenWhenRescaled) {
  const std::string uri = "kafka://" + bs() + "/restore8?start=earliest&stop=latest&batch=20";
  // Run 1: two subtasks read part of the topic, then snapshot.
  std::vector<int64_t> before;
  std::vector<std::string> blobs;
  for (int s = 0; s < 2; ++s) {
    FakeContext ctx(s, 2);
    CollectingOutput<TestRecord> out;
    auto rd = reader(uri);
    ASSERT_TRUE(rd->restore_state({}).is_ok());
    ASSERT_TRUE(rd->open(ctx, out).is_ok());
    ASSERT_TRUE(poll_until_count(*rd, out, 150).is_ok());
    auto blob = rd->snapshot_state(CheckpointId(1));
    ASSERT_TRUE(blob.is_ok());
    blobs.push_back(*blob);
    auto got = ids(out.values);
    before.insert(before.end(), got.begin(), got.end());
    // Records read after the snapshot are lost with the "crash".
    ASSERT_TRUE(rd->poll_next(out).is_ok());
    rd->close();
  }
  ASSERT_GE(before.size(), 300u);
  ASSERT_LT(before.size(), 800u);
  // Run 2: three subtasks restore from the union of both states.
  std::vector<int64_t> after;
  runtime::OperatorRestore restore{true, 2, blobs};
  for (int s = 0; s < 3; ++s) {
    FakeContext ctx(s, 3);
    CollectingOutput<TestRecord> out;
    auto rd = reader(uri);
    ASSERT_TRUE(rd->restore_state(restore).is_ok());
    ASSERT_TRUE(rd->open(ctx, out).is_ok());
    auto st = poll_until_end(*rd, out);
    ASSERT_TRUE(st.is_ok()) << st.status().message();
    auto got = ids(out.values);
    after.insert(after.end(), got.begin(), got.end());
    rd->close();
  }
  std::vector<int64_t> all = before;
  all.insert(all.end(), after.begin(), after.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, iota_ids(1, 800)) << before.size() << " before the snapshot, " << after.size()
                                   << " after the restore";
}

TEST_F(KafkaSourceTest, CommitsTheSnapshotsPositionsOnCompletionAndStartsFromThem) {
  produce(bs(), "commit4", records(1, 400));
  const std::string uri = "kafka://" + bs() + "/commit4?start=earliest&group=g-commit";
  FakeContext ctx(0, 1);
  CollectingOutput<TestRecord> out;
  auto rd = reader(uri);
  ASSERT_TRUE(rd->open(ctx, out).is_ok());
  ASSERT_TRUE(poll_until_count(*rd, out, 100).is_ok());
  auto blob = rd->snapshot_state(CheckpointId(7));
  ASSERT_TRUE(blob.is_ok());
  std::vector<PartitionPosition> at_snapshot;
  ASSERT_TRUE(decode_positions(*blob, at_snapshot).is_ok());
  size_t seen_at_snapshot = out.values.size();
  ASSERT_TRUE(poll_until_count(*rd, out, 400).is_ok());  // read on past the snapshot
  ASSERT_TRUE(rd->notify_checkpoint_complete(CheckpointId(7)).is_ok());
  // The commit is asynchronous: it is sent, and its result served, while polling.
  for (const auto& p : at_snapshot) {
    int64_t off = -1;
    for (int i = 0; i < 100 && off != p.offset; ++i) {
      (void)rd->poll_next(out);
      off = committed_offset(bs(), "g-commit", "commit4", p.partition);
    }
    EXPECT_EQ(off, p.offset) << "partition " << p.partition;
  }
  rd->close();
  // A new run without a checkpoint starts from the committed offsets.
  FakeContext ctx2(0, 1);
  CollectingOutput<TestRecord> out2;
  auto rd2 = reader("kafka://" + bs() + "/commit4?start=committed&group=g-commit&stop=latest");
  ASSERT_TRUE(rd2->open(ctx2, out2).is_ok());
  ASSERT_TRUE(poll_until_end(*rd2, out2).is_ok());
  EXPECT_EQ(out2.values.size(), 400 - seen_at_snapshot);
  std::vector<int64_t> all = ids(std::vector<TestRecord>(out.values.begin(), out.values.begin() + seen_at_snapshot));
  auto rest = ids(out2.values);
  all.insert(all.end(), rest.begin(), rest.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, iota_ids(1, 400));
}

TEST_F(KafkaSourceTest, BoundedReadStopsAtTheEndOffsetsSeenAtStart) {
  produce(bs(), "bounded2", records(1, 100));
  FakeContext ctx(0, 1);
  CollectingOutput<TestRecord> out;
  auto rd = reader("kafka://" + bs() + "/bounded2?start=earliest&stop=latest");
  ASSERT_TRUE(rd->open(ctx, out).is_ok());
  produce(bs(), "bounded2", records(101, 50));  // after the start: not read
  auto st = poll_until_end(*rd, out);
  ASSERT_TRUE(st.is_ok()) << st.status().message();
  EXPECT_EQ(*st, runtime::PollStatus::kEndOfInput);
  std::vector<int64_t> got = ids(out.values);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, iota_ids(1, 100));
  EXPECT_EQ(out.split_count, 2);
  std::vector<int> finished = out.finished;
  std::sort(finished.begin(), finished.end());
  EXPECT_EQ(finished, (std::vector<int>{0, 1}));
  rd->close();
}

TEST_F(KafkaSourceTest, EachPartitionIsASplitAndRecordsCarryKafkaTimestamps) {
  auto p = SimpleProducer::create(bs());
  ASSERT_TRUE(p.is_ok());
  for (int part = 0; part < 3; ++part)
    for (int i = 0; i < 10; ++i)
      ASSERT_TRUE((*p)->produce("splits3", records(part * 10 + i, 1)[0], std::nullopt, part, {},
                                1'700'000'000'000 + part * 1000 + i)
                      .is_ok());
  ASSERT_TRUE((*p)->flush().is_ok());
  FakeContext ctx(0, 1);
  CollectingOutput<TestRecord> out;
  auto rd = reader("kafka://" + bs() + "/splits3?start=earliest&stop=latest");
  ASSERT_TRUE(rd->open(ctx, out).is_ok());
  ASSERT_TRUE(poll_until_end(*rd, out).is_ok());
  ASSERT_EQ(out.values.size(), 30u);
  EXPECT_EQ(out.split_count, 3);
  for (size_t i = 0; i < out.values.size(); ++i) {
    int part = static_cast<int>(out.values[i].id / 10);
    int i_in = static_cast<int>(out.values[i].id % 10);
    EXPECT_EQ(out.timestamps[i], EventTime(1'700'000'000'000 + part * 1000 + i_in));
  }
  // One split per partition: records of a partition share their split.
  std::map<int64_t, std::set<int>> split_of_partition;
  for (size_t i = 0; i < out.values.size(); ++i) split_of_partition[out.values[i].id / 10].insert(out.splits[i]);
  std::set<int> all;
  for (const auto& [part, s] : split_of_partition) {
    EXPECT_EQ(s.size(), 1u);
    all.insert(*s.begin());
  }
  EXPECT_EQ(all, (std::set<int>{0, 1, 2}));
  rd->close();
}

TEST_F(KafkaSourceTest, MalformedMessagesBecomeDeadLettersAndReadingGoesOn) {
  produce(bs(), "bad1", {records(1, 1)[0], "{\"id\":\"x\"}", "not json", records(2, 1)[0]});
  FakeContext ctx(0, 1);
  CollectingOutput<TestRecord> out;
  auto rd = reader("kafka://" + bs() + "/bad1?start=earliest&stop=latest");
  ASSERT_TRUE(rd->open(ctx, out).is_ok());
  ASSERT_TRUE(poll_until_end(*rd, out).is_ok());
  EXPECT_EQ(ids(out.values), (std::vector<int64_t>{1, 2}));
  ASSERT_EQ(out.dead_letters.size(), 2u);
  EXPECT_EQ(out.dead_letters[0].origin, "bad1");
  EXPECT_EQ(out.dead_letters[0].partition, 0);
  EXPECT_EQ(out.dead_letters[0].offset, 1);
  EXPECT_EQ(out.dead_letters[0].payload, "{\"id\":\"x\"}");
  EXPECT_NE(out.dead_letters[0].reason.find("field 'id'"), std::string::npos) << out.dead_letters[0].reason;
  EXPECT_EQ(out.dead_letters[1].offset, 2);
  EXPECT_EQ(out.dead_letters[1].payload, "not json");
  rd->close();
}

TEST_F(KafkaSourceTest, MessagesOverTheRecordOrFieldLimitAreDeadLettersWithReasonAndOrigin) {
  // A 3001-byte body (over max.field.bytes=1000), a 5000-byte message
  // (over max.record.bytes=4000) that is not UTF-8, and good ones around.
  const std::string long_body = "{\"id\":7,\"body\":\"" + std::string(3000, 'b') + "!\"}";
  const std::string huge = "{\"id\":8,\"body\":\"" + std::string(5000, 'c') + "\xff\"}";
  produce(bs(), "big1", {records(1, 1)[0], long_body, huge, records(2, 1)[0]});
  FakeContext ctx(0, 1);
  CollectingOutput<TestRecord> out;
  auto rd = reader("kafka://" + bs() + "/big1?start=earliest&stop=latest&max.field.bytes=1000&max.record.bytes=4000");
  ASSERT_TRUE(rd->open(ctx, out).is_ok());
  ASSERT_TRUE(poll_until_end(*rd, out).is_ok());
  EXPECT_EQ(ids(out.values), (std::vector<int64_t>{1, 2}));
  ASSERT_EQ(out.dead_letters.size(), 2u);
  const DeadLetter& field = out.dead_letters[0];
  EXPECT_EQ(field.origin, "big1");
  EXPECT_EQ(field.offset, 1);
  EXPECT_NE(field.reason.find("field 'body': string of 3001 bytes exceeds the limit of 1000 bytes"), std::string::npos)
      << field.reason;
  EXPECT_NE(field.reason.find("max.field.bytes"), std::string::npos) << field.reason;
  EXPECT_EQ(field.payload, long_body);
  const DeadLetter& record = out.dead_letters[1];
  EXPECT_EQ(record.offset, 2);
  EXPECT_NE(record.reason.find("exceeds the limit of 4000 bytes (source parameter max.record.bytes)"),
            std::string::npos)
      << record.reason;
  EXPECT_EQ(record.payload_encoding, "base64") << "not UTF-8: kept as base64, the dead letter stays valid JSON";
  EXPECT_EQ(record.payload, base64_encode(huge));
  EXPECT_TRUE(is_valid_utf8(to_json(field)) && is_valid_utf8(to_json(record)));
  rd->close();
}

TEST_F(KafkaSourceTest, APositionPastTheEndFailsTheJobSayingWhy) {
  produce(bs(), "oor_end", records(1, 10));
  FakeContext ctx(0, 1);
  CollectingOutput<TestRecord> out;
  auto rd = reader("kafka://" + bs() + "/oor_end");
  runtime::OperatorRestore restore{true, 1, {encode_positions({{"oor_end", 0, 1000, -1}})}};
  ASSERT_TRUE(rd->restore_state(restore).is_ok());
  ASSERT_TRUE(rd->open(ctx, out).is_ok());
  Status failure;
  for (int i = 0; i < 1000 && failure.is_ok(); ++i) {
    auto r = rd->poll_next(out);
    if (!r.is_ok()) failure = r.status();
  }
  ASSERT_FALSE(failure.is_ok()) << "the reader never noticed its position is out of range";
  EXPECT_NE(failure.message().find("position 1000 of oor_end[0] is out of range [0, 10)"), std::string::npos)
      << failure.message();
  EXPECT_NE(failure.message().find("on_out_of_range=earliest"), std::string::npos);
  EXPECT_GE(metric_value("sluice_kafka_consumer_offset_out_of_range_total", {{"topic", "oor_end"}}), 1);
  rd->close();
}

TEST_F(KafkaSourceTest, RecordsDeletedBeforeTheyWereReadAreReportedOrSkippedOnRequest) {
  // The dev broker keeps about 5 MiB per partition: 7 MiB pushes the head out.
  std::string big(1024, 'x');
  auto p = SimpleProducer::create(bs());
  ASSERT_TRUE(p.is_ok());
  for (int i = 0; i < 7 * 1024; ++i) {
    ASSERT_TRUE((*p)->produce("oor_head", "{\"id\":" + std::to_string(i) + ",\"body\":\"" + big + "\"}", std::nullopt, 0).is_ok());
  }
  ASSERT_TRUE((*p)->flush().is_ok());
  FakeContext ctx(0, 1);
  runtime::OperatorRestore restore{true, 1, {encode_positions({{"oor_head", 0, 0, -1}})}};
  {
    CollectingOutput<TestRecord> out;
    auto rd = reader("kafka://" + bs() + "/oor_head");
    ASSERT_TRUE(rd->restore_state(restore).is_ok());
    ASSERT_TRUE(rd->open(ctx, out).is_ok());
    Status failure;
    for (int i = 0; i < 1000 && failure.is_ok(); ++i) {
      auto r = rd->poll_next(out);
      if (!r.is_ok()) failure = r.status();
    }
    ASSERT_FALSE(failure.is_ok());
    EXPECT_NE(failure.message().find("were deleted (retention) before this job read them"), std::string::npos)
        << failure.message();
    EXPECT_TRUE(out.values.empty());
    rd->close();
  }
  {
    CollectingOutput<TestRecord> out;
    auto rd = reader("kafka://" + bs() + "/oor_head?on_out_of_range=earliest&stop=latest");
    ASSERT_TRUE(rd->restore_state(restore).is_ok());
    ASSERT_TRUE(rd->open(ctx, out).is_ok());
    auto st = poll_until_end(*rd, out);
    ASSERT_TRUE(st.is_ok()) << st.status().message();
    ASSERT_FALSE(out.values.empty());
    // It went on from the oldest record still there, to the end, without gaps.
    int64_t first = out.values.front().id;
    EXPECT_GT(first, 0);
    EXPECT_EQ(out.values.back().id, 7 * 1024 - 1);
    EXPECT_EQ(static_cast<int64_t>(out.values.size()), 7 * 1024 - first);
    rd->close();
  }
}

TEST_F(KafkaSourceTest, DiscoversTopicsAndPartitionsThatAppearLater) {
  produce(bs(), "present", records(1, 5));
  FakeContext ctx(0, 1);
  CollectingOutput<TestRecord> out;
  auto rd = reader("kafka://" + bs() + "/present,appears_later?start=earliest&missing_topic=wait&discovery=100ms");
  ASSERT_TRUE(rd->open(ctx, out).is_ok());
  ASSERT_TRUE(poll_until_count(*rd, out, 5).is_ok());
  EXPECT_EQ(out.split_count, 1);
  // Producing creates the topic (the dev broker auto-creates, with 4 partitions).
  produce(bs(), "appears_later", records(100, 20));
  ASSERT_TRUE(poll_until_count(*rd, out, 25, 20'000).is_ok());
  std::vector<int64_t> got = ids(out.values);
  std::sort(got.begin(), got.end());
  std::vector<int64_t> want = iota_ids(1, 5);
  auto later = iota_ids(100, 20);
  want.insert(want.end(), later.begin(), later.end());
  EXPECT_EQ(got, want);
  EXPECT_GT(out.split_count, 1);
  rd->close();
}

TEST_F(KafkaSourceTest, DiscoveryNeverHoldsThePollBehindTheConsumersOpenFetch) {
  // The broker answers one request per connection at a time, so a metadata
  // request sent while a fetch long-polls (2 s here, on an idle topic) waits
  // for it. Discovery every 100 ms must not make a poll wait that long: the
  // task thread also handles barriers and timers.
  produce(bs(), "quiet", records(1, 3));
  FakeContext ctx(0, 1);
  CollectingOutput<TestRecord> out;
  auto rd = reader("kafka://" + bs() + "/quiet?start=earliest&discovery=100ms&kafka.fetch.wait.max.ms=2000");
  ASSERT_TRUE(rd->open(ctx, out).is_ok());
  ASSERT_TRUE(poll_until_count(*rd, out, 3).is_ok());
  int64_t slowest_ns = 0;
  const int64_t until = monotonic_ns() + 3'000'000'000;
  while (monotonic_ns() < until) {
    int64_t start = monotonic_ns();
    ASSERT_TRUE(rd->poll_next(out).is_ok());
    slowest_ns = std::max(slowest_ns, monotonic_ns() - start);
  }
  EXPECT_LT(slowest_ns, 1'000'000'000) << "a poll waited " << slowest_ns / 1'000'000 << " ms";
  // And reading goes on.
  produce(bs(), "quiet", records(10, 2), 0);
  ASSERT_TRUE(poll_until_count(*rd, out, 5).is_ok());
  rd->close();
}

TEST_F(KafkaSourceTest, AMissingTopicFailsTheOpenByDefault) {
  FakeContext ctx(0, 1);
  CollectingOutput<TestRecord> out;
  auto rd = reader("kafka://" + bs() + "/no_such_topic");
  Status st = rd->open(ctx, out);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("'no_such_topic' does not exist"), std::string::npos) << st.message();
}

TEST_F(KafkaSourceTest, ReportsConsumerLagPerPartition) {
  produce(bs(), "lag1", records(1, 300), 0);
  FakeContext ctx(0, 1);
  ctx.info_.job_name = "lag-job";
  const std::map<std::string, std::string> labels = {{"job", "lag-job"}, {"topic", "lag1"}, {"partition", "0"}};
  std::string blob;
  {
    CollectingOutput<TestRecord> out;
    auto rd = reader("kafka://" + bs() + "/lag1?start=earliest&batch=1");
    ASSERT_TRUE(rd->open(ctx, out).is_ok());
    ASSERT_TRUE(poll_until_count(*rd, out, 20).is_ok());
    size_t read = out.values.size();
    blob = *rd->snapshot_state(CheckpointId(1));
    rd->close();  // publishes the lag at this position
    EXPECT_EQ(metric_value("sluice_kafka_consumer_lag_records", labels), 300.0 - read);
  }
  {
    CollectingOutput<TestRecord> out;
    auto rd = reader("kafka://" + bs() + "/lag1?stop=latest");
    ASSERT_TRUE(rd->restore_state({true, 1, {blob}}).is_ok());
    ASSERT_TRUE(rd->open(ctx, out).is_ok());
    ASSERT_TRUE(poll_until_end(*rd, out).is_ok());
    rd->close();
    EXPECT_EQ(metric_value("sluice_kafka_consumer_lag_records", labels), 0.0);
  }
  EXPECT_GE(metric_value("sluice_kafka_consumer_records_total", {{"job", "lag-job"}, {"topic", "lag1"}}), 300);
}

}  // namespace
}  // namespace sluice::kafka
