// The fraud job on Kafka: the three streams produced by `sluice gen --kind
// fraud --kafka`, a rule update on the `rules` topic, alerts written to a
// topic by the exactly-once (transactional) sink with checkpoints; the
// committed alerts are the reference's, each once, keyed by alert id.
//
// The rule update takes effect mid-stream (event time): card-testing
// bursts before it alert, those from it on do not. It is on the topic
// before the job starts and the rules stream is never idle
// (rules_idleness=0s), so the rule check waits for the rules stream's
// watermark and the update is never late, however slowly each source
// starts: the alerts are exact on every run.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

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
  // Effective at the middle card-testing alert: the earlier ones stay, the
  // later ones (card_test_count 1000 from then on) go.
  const auto truth = read_truth(in.file("truth.ndjson"));
  std::vector<int64_t> card_times;
  for (const auto& t : truth)
    if (t.alert && t.rule == "card_testing") card_times.push_back(t.ts);
  ASSERT_GE(card_times.size(), 2u);
  std::sort(card_times.begin(), card_times.end());
  const int64_t effective = card_times[card_times.size() / 2];
  kafka::testing::produce(bs, "rules", {"{\"version\":1,\"effective_ts\":" + std::to_string(effective) +
                                            ",\"card_test_count\":1000}"});

  std::vector<std::string> args{"run-local", job_library(), "-p", "2", "--checkpoint-dir", out.file("chk"),
                                "--checkpoint-interval", "300ms"};
  for (const char* topic : {"logins", "api_errors", "transactions", "rules"}) {
    args.insert(args.end(), {"--arg", std::string(topic) + "=kafka://" + bs + "/" + topic + "?start=earliest&stop=latest"});
  }
  args.insert(args.end(), {"--arg", "alerts=kafka://" + bs + "/alerts?delivery=exactly-once&key=alert_id", "--arg",
                           "audit=" + out.uri("audit.ndjson"), "--arg", "dlq=" + out.uri("dlq.ndjson"), "--arg",
                           "rules_idleness=0s"});
  auto r = it::run_sluice(args);
  ASSERT_EQ(r.exit_code, 0) << r.describe(args);
  EXPECT_EQ(r.err.find("arrived late"), std::string::npos) << r.err;

  Rules v1;
  v1.version = 1;
  v1.effective_ts = effective;
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
  size_t kept = 0, gone = 0;
  for (const auto& d : expected) kept += d.rule == "card_testing";
  for (int64_t ts : card_times) gone += ts >= effective;
  EXPECT_GT(kept, 0u);
  EXPECT_GT(gone, 0u);
  EXPECT_EQ(kept + gone, card_times.size());
  EXPECT_EQ(expected.size() + gone, truth_alerts(truth).size());
}

}  // namespace
}  // namespace sluice::fraud_test
