// The fraud job on Kafka: the three streams produced by `sluice gen --kind
// fraud --kafka`, a rule update on the `rules` topic, alerts written to a
// topic by the exactly-once (transactional) sink with checkpoints; the
// committed alerts are the reference's, each once, keyed by alert id.
#include <gtest/gtest.h>

#include <string>

#include "tests/fraud/reference.h"
#include "tests/integration/support.h"
#include "tests/kafka/kafka_test_util.h"

namespace sluice::fraud_test {
namespace {

TEST(FraudKafka, StreamsRulesAndExactlyOnceAlertsThroughKafkaTopics) {
  auto kafka = kafka::testing::DevKafka::start({"logins:2", "api_errors:2", "transactions:4", "rules:1", "alerts:2"});
  ASSERT_TRUE(kafka);
  const std::string bs = kafka->bootstrap();
  it::TempDir in, out;
  const std::vector<std::string> opts{"--count", "12000", "--scenarios", "4", "--seed", "31"};
  generate(in.path(), opts);  // the same streams as files, for the reference
  std::vector<std::string> to_kafka{"gen", "--kind", "fraud", "--kafka", bs, "--truth", out.file("truth.ndjson")};
  to_kafka.insert(to_kafka.end(), opts.begin(), opts.end());
  auto g = it::run_sluice(to_kafka);
  ASSERT_EQ(g.exit_code, 0) << g.describe(to_kafka);
  EXPECT_EQ(it::read_lines(out.file("truth.ndjson")), it::read_lines(in.file("truth.ndjson")));
  kafka::testing::produce(bs, "rules", {"{\"version\":1,\"effective_ts\":0,\"card_test_count\":1000}"});

  std::vector<std::string> args{"run-local", job_library(), "-p", "2", "--checkpoint-dir", out.file("chk"),
                                "--checkpoint-interval", "300ms"};
  for (const char* topic : {"logins", "api_errors", "transactions", "rules"}) {
    args.insert(args.end(), {"--arg", std::string(topic) + "=kafka://" + bs + "/" + topic + "?start=earliest&stop=latest"});
  }
  args.insert(args.end(), {"--arg", "alerts=kafka://" + bs + "/alerts?delivery=exactly-once&key=alert_id", "--arg",
                           "audit=" + out.uri("audit.ndjson"), "--arg", "dlq=" + out.uri("dlq.ndjson")});
  auto r = it::run_sluice(args);
  ASSERT_EQ(r.exit_code, 0) << r.describe(args);

  Rules v1;
  v1.version = 1;
  v1.effective_ts = 0;
  v1.card_test_count = 1000;
  std::set<Decision> expected;
  for (const auto& d : reference_decisions(read_inputs(in.path()), Params{}, {Rules{}, v1}))
    if (d.alert) expected.insert(d);
  std::vector<std::string> values;
  for (const auto& m : kafka::testing::read_topic(bs, "alerts")) {
    ASSERT_TRUE(m.value && m.key);
    values.push_back(*m.value);
    EXPECT_NE(m.value->find("\"alert_id\":\"" + *m.key + "\""), std::string::npos) << *m.value;
  }
  std::vector<std::string> repeats;
  EXPECT_EQ(diff(expected, alerts_of(read_alerts(values), &repeats)), "");
  EXPECT_TRUE(repeats.empty()) << repeats.front();
  size_t card_tests = 0;
  for (const auto& t : read_truth(in.file("truth.ndjson"))) card_tests += t.alert && t.rule == "card_testing";
  EXPECT_EQ(expected.size() + card_tests, truth_alerts(read_truth(in.file("truth.ndjson"))).size());
}

}  // namespace
}  // namespace sluice::fraud_test
