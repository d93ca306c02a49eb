// URI parsing and validation of the Kafka source and sink (no broker).
#include <gtest/gtest.h>

#include "connectors/kafka/kafka.h"
#include "connectors/kafka/reader_core.h"
#include "connectors/kafka/writer_core.h"
#include "tests/kafka/test_record.h"

namespace sluice::kafka {
namespace {

using testing::TestRecord;

TEST(KafkaSourceUri, DefaultsAreCommittedUnboundedReadCommitted) {
  auto c = parse_source_uri("kafka://localhost:9092/clicks");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->bootstrap, "localhost:9092");
  EXPECT_EQ(c->topics, std::vector<std::string>{"clicks"});
  EXPECT_EQ(c->start, StartMode::kCommitted);
  EXPECT_EQ(c->committed_fallback, StartMode::kEarliest);
  EXPECT_FALSE(c->bounded());
  EXPECT_TRUE(c->read_committed);
  EXPECT_TRUE(c->commit_offsets);
  EXPECT_EQ(c->on_out_of_range, OutOfRangePolicy::kFail);
  EXPECT_EQ(c->discovery_interval, Duration(30'000));
}

TEST(KafkaSourceUri, ParsesEveryParameter) {
  auto c = parse_source_uri(
      "kafka://a:1,b:2/t1,t2?start=timestamp:1700000000000&stop=timestamp:1700000001000"
      "&group=g1&commit=false&on_out_of_range=earliest&discovery=off&batch=64"
      "&isolation=read_uncommitted&kafka.fetch.wait.max.ms=50&start.fallback=latest");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->bootstrap, "a:1,b:2");
  EXPECT_EQ(c->topics, (std::vector<std::string>{"t1", "t2"}));
  EXPECT_EQ(c->start, StartMode::kTimestamp);
  EXPECT_EQ(c->start_timestamp_ms, 1700000000000);
  EXPECT_EQ(c->stop, StopMode::kTimestamp);
  EXPECT_EQ(c->stop_timestamp_ms, 1700000001000);
  EXPECT_EQ(c->group, "g1");
  EXPECT_FALSE(c->commit_offsets);
  EXPECT_EQ(c->on_out_of_range, OutOfRangePolicy::kEarliest);
  EXPECT_EQ(c->discovery_interval, Duration(0));
  EXPECT_EQ(c->batch_size, 64);
  EXPECT_FALSE(c->read_committed);
  EXPECT_EQ(c->committed_fallback, StartMode::kLatest);
  ASSERT_EQ(c->client.size(), 1u);
  EXPECT_EQ(c->client[0], (std::pair<std::string, std::string>{"fetch.wait.max.ms", "50"}));
}

TEST(KafkaSourceUri, TsBoundsTakeEpochMillisecondsOrUtcTimes) {
  auto c = parse_source_uri("kafka://h:1/t?start=ts:2026-12-05&stop=ts:2026-12-06T00:00:00Z");
  ASSERT_TRUE(c.is_ok()) << c.status().message();
  EXPECT_EQ(c->start, StartMode::kTimestamp);
  EXPECT_EQ(c->start_timestamp_ms, 1796428800000);  // date -u -d 2026-12-05 +%s
  EXPECT_EQ(c->stop_timestamp_ms, 1796428800000 + 86'400'000);
  EXPECT_TRUE(c->bounded());
  auto ms = parse_source_uri("kafka://h:1/t?start=ts:1700000000000&stop=ts:2023-11-14T22:13:20.500%2B00:00");
  ASSERT_TRUE(ms.is_ok()) << ms.status().message();
  EXPECT_EQ(ms->start_timestamp_ms, 1700000000000);
  EXPECT_EQ(ms->stop_timestamp_ms, 1700000000500);
}

void expect_error(const Status& st, const std::string& fragment) {
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find(fragment), std::string::npos) << st.message();
}

TEST(KafkaSourceUri, RefusesUnknownAndInvalidParameters) {
  expect_error(parse_source_uri("kafka://h:1/t?strat=earliest").status(), "unknown parameter 'strat'");
  expect_error(parse_source_uri("kafka://h:1/t?start=first").status(), "start=first");
  expect_error(parse_source_uri("kafka://h:1/t?stop=soon").status(), "stop=soon");
  expect_error(parse_source_uri("kafka://h:1/t?start=timestamp:abc").status(), "epoch milliseconds");
  expect_error(parse_source_uri("kafka://h:1/t?stop=ts:2026-13-01").status(), "stop=ts:2026-13-01");
  expect_error(parse_source_uri("kafka://h:1/t?batch=0").status(), "batch=0");
  expect_error(parse_source_uri("kafka://h:1/t?discovery=soon").status(), "discovery=soon");
  expect_error(parse_source_uri("kafka://h:1/t?start=earliest&start=latest").status(), "twice");
  expect_error(parse_source_uri("kafka://h:1/t?kafka.no.such.property=1").status(), "kafka.no.such.property");
  expect_error(parse_source_uri("kafka://h:1/t?kafka.fetch.wait.max.ms=abc").status(), "fetch.wait.max.ms");
  expect_error(parse_source_uri("kafka://h:1/t?kafka.group.id=x").status(), "group=");
  expect_error(parse_source_uri("kafka://h:1/t?stop=latest&missing_topic=wait").status(), "unbounded");
  expect_error(parse_source_uri("kafka://h:1/t?commit").status(), "name=value");
}

TEST(KafkaSourceUri, RecordSizeLimitDefaultsToFourMiBAndIsBounded) {
  auto d = parse_source_uri("kafka://h:1/t");
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->max_record_bytes, size_t{4} << 20);
  auto c = parse_source_uri("kafka://h:1/t?max.record.bytes=1000");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->max_record_bytes, 1000u);
  expect_error(parse_source_uri("kafka://h:1/t?max.record.bytes=0").status(), "max.record.bytes=0");
  expect_error(parse_source_uri("kafka://h:1/t?max.record.bytes=99999999999").status(), "max.record.bytes");
}

TEST(KafkaSourceUri, FieldSizeLimitDefaultsToOneMiBAndIsBounded) {
  auto d = parse_source_uri("kafka://h:1/t");
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->max_field_bytes, kDefaultMaxFieldBytes);
  EXPECT_EQ(d->max_field_bytes, size_t{1} << 20);
  auto c = parse_source_uri("kafka://h:1/t?max.field.bytes=512");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->max_field_bytes, 512u);
  expect_error(parse_source_uri("kafka://h:1/t?max.field.bytes=0").status(), "max.field.bytes=0");
  expect_error(parse_source_uri("kafka://h:1/t?max.field.bytes=x").status(), "max.field.bytes");
}

TEST(KafkaSourceUri, RefusesMalformedAddressesAndTopics) {
  expect_error(parse_source_uri("kafka://h:1").status(), "needs a broker address and a topic");
  expect_error(parse_source_uri("kafka://h:1/").status(), "names no topic");
  expect_error(parse_source_uri("kafka://host/t").status(), "host:port");
  expect_error(parse_source_uri("kafka://h:99999/t").status(), "no valid port");
  expect_error(parse_source_uri("kafka://h:1/bad topic").status(), "character Kafka does not allow");
  expect_error(parse_source_uri("kafka://h:1/t,t").status(), "twice");
  expect_error(parse_source_uri("file:///x").status(), "not a kafka:// URI");
}

TEST(KafkaSinkUri, DefaultsAndParameters) {
  auto c = parse_sink_uri("kafka://h:1/out");
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->delivery, DeliveryGuarantee::kAtLeastOnce);
  EXPECT_EQ(c->partitioner, "murmur2_random");
  EXPECT_TRUE(c->key_field.empty());
  auto e = parse_sink_uri(
      "kafka://h:1/out?delivery=exactly-once&key=body&partitioner=fnv1a&transactional_id_prefix=p"
      "&transaction.timeout=2m&kafka.linger.ms=20");
  ASSERT_TRUE(e.is_ok()) << e.status().message();
  EXPECT_EQ(e->delivery, DeliveryGuarantee::kExactlyOnce);
  EXPECT_EQ(e->key_field, "body");
  EXPECT_EQ(e->partitioner, "fnv1a");
  EXPECT_EQ(e->transactional_id_prefix, "p");
  EXPECT_EQ(e->transaction_timeout, Duration(120'000));
}

TEST(KafkaSinkUri, RefusesWhatItCannotHonour) {
  expect_error(parse_sink_uri("kafka://h:1/a,b").status(), "writes one topic");
  expect_error(parse_sink_uri("kafka://h:1/o?delivery=twice").status(), "delivery=twice");
  expect_error(parse_sink_uri("kafka://h:1/o?partitioner=mine").status(), "partitioner=mine");
  expect_error(parse_sink_uri("kafka://h:1/o?transaction.timeout=1m").status(), "only apply with delivery=exactly-once");
  expect_error(parse_sink_uri("kafka://h:1/o?kafka.transactional.id=x").status(), "managed by Sluice");
  expect_error(parse_sink_uri("kafka://h:1/o?kafka.acks=1").status(), "managed by Sluice");
  expect_error(parse_sink_uri("kafka://h:1/o?group=x").status(), "unknown parameter 'group'");
}

TEST(KafkaSinkUri, KeyFieldMustExistInTheRecord) {
  EXPECT_TRUE(KafkaSink<TestRecord>::from_uri("kafka://h:1/o?key=body").is_ok());
  expect_error(KafkaSink<TestRecord>::from_uri("kafka://h:1/o?key=nope").status(), "fields: id, body");
  expect_error(KafkaSink<std::string>::from_uri("kafka://h:1/o?key=x").status(), "no named fields");
  auto key = key_from_field<TestRecord>("id");
  ASSERT_TRUE(key.is_ok());
  EXPECT_EQ((*key)(TestRecord{42, "x"}), std::optional<std::string>("42"));
  auto skey = key_from_field<TestRecord>("body");
  EXPECT_EQ((*skey)(TestRecord{42, "abc"}), std::optional<std::string>("abc"));
}

TEST(KafkaSink, TransactionTimeoutIsCheckedAgainstTheCheckpointInterval) {
  EXPECT_TRUE(check_transaction_timeout(Duration(60'000), std::nullopt).is_ok());
  EXPECT_TRUE(check_transaction_timeout(Duration(60'000), Duration(60'000)).is_ok());
  Status st = check_transaction_timeout(Duration(60'000), Duration(120'000));
  expect_error(st, "shorter than the job's checkpoint.interval");
  expect_error(st, "transaction.timeout=4m");
}

TEST(KafkaSource, PartitionOwnersAreDeterministicAndBalanced) {
  for (int p : {1, 2, 3, 4}) {
    std::vector<int> per(p);
    for (int part = 0; part < 8; ++part) {
      int o = owner_of("clicks", part, p);
      ASSERT_GE(o, 0);
      ASSERT_LT(o, p);
      EXPECT_EQ(o, owner_of("clicks", part, p));  // stable
      ++per[o];
    }
    for (int n : per) EXPECT_GE(n, 8 / p);  // consecutive partitions go round-robin
  }
}

TEST(KafkaSource, PositionsRoundTripAndCorruptionIsDetected) {
  std::vector<PartitionPosition> ps = {{"a", 0, 10, -1}, {"b", 3, 7, 9}};
  std::string blob = encode_positions(ps);
  std::vector<PartitionPosition> back;
  ASSERT_TRUE(decode_positions(blob, back).is_ok());
  EXPECT_EQ(back, ps);
  back.clear();
  EXPECT_FALSE(decode_positions(blob.substr(0, blob.size() - 1), back).is_ok());
  EXPECT_FALSE(decode_positions("\x07", back).is_ok());
}

TEST(KafkaSink, MarkerMetadataRoundTrips) {
  std::string m = encode_marker_metadata(EosMarker{5, "abc123"});
  EXPECT_EQ(decode_marker_metadata(m), std::optional<std::string>("abc123"));
  EXPECT_EQ(decode_marker_metadata("someone else's metadata"), std::nullopt);
}

TEST(KafkaSerializers, DeadLetterBecomesPayloadWithHeaders) {
  DeadLetter d;
  d.reason = "bad json";
  d.origin = "clicks";
  d.partition = 3;
  d.offset = 17;
  d.payload = "{oops";
  d.job = "j";
  d.operator_name = "o";
  OutgoingMessage m;
  default_serializer<DeadLetter>()(d, m);
  EXPECT_EQ(m.value, "{oops");
  std::map<std::string, std::string> h;
  for (const auto& x : m.headers) h[x.key] = x.value;
  EXPECT_EQ(h[kDlqReason], "bad json");
  EXPECT_EQ(h[kDlqOrigin], "clicks");
  EXPECT_EQ(h[kDlqPartition], "3");
  EXPECT_EQ(h[kDlqOffset], "17");
  EXPECT_EQ(h.count(kDlqLine), 0u);  // not from a file
  EXPECT_EQ(h[kDlqJob], "j");
  EXPECT_EQ(h[kDlqOperator], "o");
}

}  // namespace
}  // namespace sluice::kafka
