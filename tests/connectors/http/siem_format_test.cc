// The push sink's SIEM formats against a real local HTTP receiver: the
// exact wire format of Splunk HEC events and Elasticsearch bulk requests,
// their auth headers, retries of busy answers, partial bulk failures (a
// busy item sent again alone, a refused one dead-lettered), refused tokens
// failing the task, and at-least-once delivery across a restore from a
// checkpoint where every repeat carries the same id.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <stdlib.h>

#include <map>
#include <mutex>
#include <set>
#include <string>

#include "connectors/http/http_sink.h"
#include "tests/connectors/http/push_harness.h"
#include "tests/connectors/http/push_receiver.h"

namespace sluice::http_sink {
namespace {

using push_test::drive;
using push_test::drive_for;
using push_test::PushReceiver;
using push_test::Received;

struct Alert {
  std::string alert_id;
  std::string user;
  double score = 0;
  int64_t ts = 0;
  SLUICE_FIELDS(alert_id, user, score, ts)
};

using Harness = harness::OneInputOperatorHarness<Alert, Alert>;

std::unique_ptr<runtime::StreamOperator> sink_op(const std::string& uri) {
  auto s = HttpPushSink<Alert>::from_uri(uri);
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  return std::make_unique<runtime::SinkOperator<Alert>>(std::move(s).value());
}

harness::HarnessOptions options() { return push_test::sink_options("alerts sink", "fraud"); }

Alert alert(int i) { return {"a" + std::to_string(i), "u" + std::to_string(i % 3), 0.5 + i * 0.125, 1733480000123 + i}; }

std::string json_of(const Alert& a) {
  std::string out;
  JsonSerde<Alert>::write(out, a);
  return out;
}

const char* kHecOk = R"({"text":"Success","code":0})";

TEST(SplunkHecFormat, EventsAreConcatenatedObjectsWithTimeMetadataAndTheSplunkToken) {
  auto rx = PushReceiver::start();
  ASSERT_TRUE(rx);
  rx->set_handler([](const Received&) { return PushReceiver::Answer{200, kHecOk}; });
  ::setenv("SIEM_TEST_HEC_TOKEN", "hec-t0ken", 1);
  Harness h(sink_op(rx->url("/services/collector/event") +
                    "?format=splunk-hec&auth_token=env:SIEM_TEST_HEC_TOKEN&index=security&source=sluice&"
                    "sourcetype=fraud:alert&host=tm1&id_field=alert_id&batch_size=2&linger=50ms"),
            options());
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(alert(1), 1733480000123);
  h.process_element(alert(2), 1733480001005);
  ASSERT_TRUE(drive(h, [&] { return rx->count() == 1; }));
  const Received r = rx->requests()[0];
  EXPECT_EQ(r.path, "/services/collector/event");
  EXPECT_EQ(r.authorization, "Splunk hec-t0ken");
  EXPECT_EQ(r.content_type, "application/json");
  const std::string want =
      R"({"time":1733480000.123,"host":"tm1","source":"sluice","sourcetype":"fraud:alert","index":"security",)"
      R"("fields":{"alert_id":"a1"},"event":{"alert_id":"a1","user":"u1","score":0.625,"ts":1733480000124}})"
      R"({"time":1733480001.005,"host":"tm1","source":"sluice","sourcetype":"fraud:alert","index":"security",)"
      R"("fields":{"alert_id":"a2"},"event":{"alert_id":"a2","user":"u2","score":0.75,"ts":1733480000125}})";
  EXPECT_EQ(r.body, want);
  EXPECT_TRUE(h.dead_letters().empty());
}

TEST(SplunkHecFormat, TimeComesFromTheTimeFieldAndOptionalMembersAreLeftOut) {
  auto rx = PushReceiver::start();
  rx->set_handler([](const Received&) { return PushReceiver::Answer{200, kHecOk}; });
  ::setenv("SIEM_TEST_HEC_TOKEN", "x", 1);
  Harness h(sink_op(rx->url("/services/collector/event") +
                    "?format=splunk-hec&auth_token=env:SIEM_TEST_HEC_TOKEN&time_field=ts&linger=0ms"),
            options());
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(alert(7), 5);
  ASSERT_TRUE(drive(h, [&] { return rx->count() == 1; }));
  EXPECT_EQ(rx->requests()[0].body, R"({"time":1733480000.130,"event":)" + json_of(alert(7)) + "}");
}

TEST(SplunkHecFormat, BusyAnswersAreRetriedWithTheSameBodyAndABadEventIsDeadLettered) {
  auto rx = PushReceiver::start();
  int n = 0;
  rx->set_handler([&n](const Received& r) {
    switch (n++) {
      case 0: return PushReceiver::Answer{503, R"({"text":"Server is busy","code":9})"};
      case 1: return PushReceiver::Answer{429, R"({"text":"Server is busy","code":9})"};
      case 3: return PushReceiver::Answer{400, R"({"text":"Invalid data format","code":6,"invalid-event-number":1})"};
      default: return PushReceiver::Answer{200, kHecOk};
    }
  });
  ::setenv("SIEM_TEST_HEC_TOKEN", "x", 1);
  Harness h(sink_op(rx->url("/services/collector/event") +
                    "?format=splunk-hec&auth_token=env:SIEM_TEST_HEC_TOKEN&batch_size=3&linger=20ms&"
                    "retry_initial=20ms&retry_max=50ms"),
            options());
  ASSERT_TRUE(h.open().is_ok());
  for (int i = 0; i < 3; ++i) h.process_element(alert(i), 1000 + i);
  ASSERT_TRUE(drive(h, [&] { return rx->count() == 3; }));
  auto reqs = rx->requests();
  EXPECT_EQ(reqs[0].body, reqs[1].body);
  EXPECT_EQ(reqs[0].body, reqs[2].body);
  EXPECT_EQ(reqs[0].key, reqs[2].key);
  // The next batch: HEC says event 1 is bad; it is dead-lettered, 0 and 2 go again.
  for (int i = 3; i < 6; ++i) h.process_element(alert(i), 1000 + i);
  ASSERT_TRUE(drive(h, [&] { return rx->count() == 5 && h.dead_letters().size() == 1; }));
  reqs = rx->requests();
  EXPECT_NE(reqs[4].body.find("\"alert_id\":\"a3\""), std::string::npos);
  EXPECT_EQ(reqs[4].body.find("\"alert_id\":\"a4\""), std::string::npos) << reqs[4].body;
  EXPECT_NE(reqs[4].body.find("\"alert_id\":\"a5\""), std::string::npos);
  EXPECT_NE(reqs[4].key, reqs[3].key);  // another body, another key
  const auto& dl = h.dead_letters()[0];
  EXPECT_NE(dl.reason.find("Invalid data format"), std::string::npos) << dl.reason;
  EXPECT_NE(dl.payload.find("\"alert_id\":\"a4\""), std::string::npos) << dl.payload;
  EXPECT_TRUE(h.failures().empty());
}

TEST(SplunkHecFormat, ARefusedTokenFailsTheTaskAtOnceSayingWhy) {
  auto rx = PushReceiver::start();
  rx->set_handler([](const Received&) { return PushReceiver::Answer{403, R"({"text":"Invalid token","code":4})"}; });
  ::setenv("SIEM_TEST_HEC_TOKEN", "wrong", 1);
  Harness h(sink_op(rx->url("/services/collector/event") + "?format=splunk-hec&auth_token=env:SIEM_TEST_HEC_TOKEN&linger=0ms"),
            options());
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(alert(1), 1);
  ASSERT_TRUE(drive(h, [&] { return !h.failures().empty(); }));
  const Status& st = h.failures()[0];
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied);  // permanent: the job fails instead of restarting
  EXPECT_NE(st.message().find("Invalid token"), std::string::npos) << st.message();
  EXPECT_EQ(rx->count(), 1u);  // not retried
}

// --- Elasticsearch bulk -------------------------------------------------------

/// The _id of every action line of a bulk body, in order.
std::vector<std::string> bulk_ids(const std::string& body) {
  std::vector<std::string> ids;
  simdjson::dom::parser p;
  size_t line = 0;
  for (size_t start = 0; start < body.size(); ++line) {
    size_t end = body.find('\n', start);
    if (line % 2 == 0) {
      simdjson::dom::element e;
      if (p.parse(body.substr(start, end - start)).get(e) == simdjson::SUCCESS) {
        for (auto [op, v] : e.get_object()) ids.emplace_back(v["_id"].get_string().value());
      }
    }
    start = end + 1;
  }
  return ids;
}

std::string bulk_item(const char* op, int status, const std::string& error_type = "") {
  std::string s = std::string("{\"") + op + "\":{\"_index\":\"alerts\",\"_id\":\"x\",\"status\":" + std::to_string(status);
  if (!error_type.empty()) s += ",\"error\":{\"type\":\"" + error_type + "\",\"reason\":\"failed to parse field [score]\"}";
  return s + "}}";
}

TEST(EsBulkFormat, ActionAndSourceLinesCarryTheIndexTheRecordsIdAndTheApiKey) {
  auto rx = PushReceiver::start();
  rx->set_handler([](const Received&) { return PushReceiver::Answer{200, R"({"took":3,"errors":false,"items":[]})"}; });
  ::setenv("SIEM_TEST_ES_KEY", "ZXMta2V5", 1);
  Harness h(sink_op(rx->url("/_bulk") + "?format=es-bulk&index=alerts&id_field=alert_id&auth_token=env:SIEM_TEST_ES_KEY&"
                                        "batch_size=2&linger=50ms"),
            options());
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(alert(1), 1);
  h.process_element(alert(2), 2);
  ASSERT_TRUE(drive(h, [&] { return rx->count() == 1; }));
  const Received r = rx->requests()[0];
  EXPECT_EQ(r.path, "/_bulk");
  EXPECT_EQ(r.authorization, "ApiKey ZXMta2V5");
  EXPECT_EQ(r.content_type, "application/x-ndjson");
  EXPECT_EQ(r.body, "{\"index\":{\"_index\":\"alerts\",\"_id\":\"a1\"}}\n" + json_of(alert(1)) +
                        "\n{\"index\":{\"_index\":\"alerts\",\"_id\":\"a2\"}}\n" + json_of(alert(2)) + "\n");
}

TEST(EsBulkFormat, BasicAuthAndTheIndexFromTheUrlWork) {
  auto rx = PushReceiver::start();
  rx->set_handler([](const Received&) { return PushReceiver::Answer{200, R"({"errors":false,"items":[]})"}; });
  ::setenv("SIEM_TEST_ES_BASIC", "elastic:pw", 1);
  Harness h(sink_op(rx->url("/alerts/_bulk") +
                    "?format=es-bulk&id_field=alert_id&auth_token=env:SIEM_TEST_ES_BASIC&auth_scheme=Basic&linger=0ms"),
            options());
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(alert(3), 1);
  ASSERT_TRUE(drive(h, [&] { return rx->count() == 1; }));
  EXPECT_EQ(rx->requests()[0].path, "/alerts/_bulk");
  EXPECT_EQ(rx->requests()[0].authorization, "Basic ZWxhc3RpYzpwdw==");
  EXPECT_EQ(rx->requests()[0].body, "{\"index\":{\"_id\":\"a3\"}}\n" + json_of(alert(3)) + "\n");
}

TEST(EsBulkFormat, APartialFailureSendsOnlyTheBusyItemAgainAndDeadLettersTheRefusedOne) {
  auto rx = PushReceiver::start();
  int n = 0;
  rx->set_handler([&n](const Received&) {
    if (n++ == 0) {
      return PushReceiver::Answer{200, "{\"took\":5,\"errors\":true,\"items\":[" + bulk_item("index", 201) + "," +
                                           bulk_item("index", 429, "es_rejected_execution_exception") + "," +
                                           bulk_item("index", 400, "mapper_parsing_exception") + "," +
                                           bulk_item("index", 200) + "]}"};
    }
    return PushReceiver::Answer{200, R"({"took":1,"errors":false,"items":[{"index":{"status":201}}]})"};
  });
  ::setenv("SIEM_TEST_ES_KEY", "k", 1);
  Harness h(sink_op(rx->url("/_bulk") + "?format=es-bulk&index=alerts&id_field=alert_id&auth_token=env:SIEM_TEST_ES_KEY&"
                                        "batch_size=4&linger=50ms&retry_initial=20ms"),
            options());
  ASSERT_TRUE(h.open().is_ok());
  for (int i = 0; i < 4; ++i) h.process_element(alert(i), i);
  ASSERT_TRUE(drive(h, [&] { return rx->count() == 2; }));
  drive_for(h, 100);
  ASSERT_EQ(rx->count(), 2u);  // nothing more: the rest was accepted
  auto reqs = rx->requests();
  EXPECT_EQ(bulk_ids(reqs[0].body), (std::vector<std::string>{"a0", "a1", "a2", "a3"}));
  EXPECT_EQ(reqs[1].body, "{\"index\":{\"_index\":\"alerts\",\"_id\":\"a1\"}}\n" + json_of(alert(1)) + "\n");
  ASSERT_EQ(h.dead_letters().size(), 1u);
  const auto& dl = h.dead_letters()[0];
  EXPECT_EQ(dl.payload, json_of(alert(2)));  // the record, without its action line
  EXPECT_NE(dl.reason.find("400 mapper_parsing_exception: failed to parse field [score]"), std::string::npos) << dl.reason;
  EXPECT_TRUE(h.failures().empty());
}

TEST(EsBulkFormat, WithCreateAConflictCountsAsAlreadyDelivered) {
  auto rx = PushReceiver::start();
  rx->set_handler([](const Received&) {
    return PushReceiver::Answer{200, "{\"errors\":true,\"items\":[" + bulk_item("create", 409, "version_conflict_engine_exception") +
                                         "," + bulk_item("create", 201) + "]}"};
  });
  ::setenv("SIEM_TEST_ES_KEY", "k", 1);
  Harness h(sink_op(rx->url("/_bulk") + "?format=es-bulk&index=alerts&id_field=alert_id&op=create&"
                                        "auth_token=env:SIEM_TEST_ES_KEY&batch_size=2&linger=20ms"),
            options());
  ASSERT_TRUE(h.open().is_ok());
  h.process_element(alert(1), 1);
  h.process_element(alert(2), 2);
  ASSERT_TRUE(drive(h, [&] { return rx->count() == 1; }));
  drive_for(h, 100);
  EXPECT_EQ(rx->count(), 1u);
  EXPECT_TRUE(h.dead_letters().empty());
  EXPECT_EQ(rx->requests()[0].body.rfind("{\"create\":{\"_index\":\"alerts\",\"_id\":\"a1\"}}\n", 0), 0u);
}

TEST(EsBulkFormat, RecordsWithoutAnIdAreDeadLettersAndARefusedKeyFailsTheTask) {
  auto rx = PushReceiver::start();
  rx->set_handler([](const Received&) { return PushReceiver::Answer{401, R"({"error":{"type":"security_exception"}})"}; });
  ::setenv("SIEM_TEST_ES_KEY", "k", 1);
  Harness h(sink_op(rx->url("/_bulk") + "?format=es-bulk&index=alerts&id_field=alert_id&auth_token=env:SIEM_TEST_ES_KEY&linger=0ms"),
            options());
  ASSERT_TRUE(h.open().is_ok());
  Alert no_id = alert(1);
  no_id.alert_id = "";
  h.process_element(no_id, 1);
  ASSERT_EQ(h.dead_letters().size(), 1u);
  EXPECT_NE(h.dead_letters()[0].reason.find("\"alert_id\""), std::string::npos) << h.dead_letters()[0].reason;
  EXPECT_EQ(rx->count(), 0u);
  h.process_element(alert(2), 2);
  ASSERT_TRUE(drive(h, [&] { return !h.failures().empty(); }));
  EXPECT_EQ(h.failures()[0].code(), StatusCode::kPermissionDenied);
  EXPECT_NE(h.failures()[0].message().find("security_exception"), std::string::npos) << h.failures()[0].message();
}

// At-least-once across a restore: an Elasticsearch stand-in that keeps the
// latest document per _id (as `index` does) ends with every alert exactly
// once, although some arrived twice — each repeat with the same _id.
TEST(EsBulkFormat, AfterARestoreEveryRepeatCarriesTheSameIdAndDuplicatesCollapse) {
  auto rx = PushReceiver::start();
  std::mutex mu;
  std::map<std::string, int> deliveries;  // _id -> times received
  bool busy = true;
  rx->set_handler([&](const Received& r) {
    std::lock_guard lk(mu);
    if (busy) return PushReceiver::Answer{503, "{}"};
    for (const auto& id : bulk_ids(r.body)) ++deliveries[id];
    return PushReceiver::Answer{200, R"({"errors":false,"items":[]})"};
  });
  ::setenv("SIEM_TEST_ES_KEY", "k", 1);
  const std::string uri = rx->url("/_bulk") + "?format=es-bulk&index=alerts&id_field=alert_id&auth_token=env:SIEM_TEST_ES_KEY&"
                                              "batch_size=5&linger=20ms&retry_initial=20ms&retry_max=40ms";
  harness::OperatorSnapshot snap;
  {
    Harness h(sink_op(uri), options());
    ASSERT_TRUE(h.open().is_ok());
    for (int i = 0; i < 10; ++i) h.process_element(alert(i), i);  // receiver busy: unacknowledged
    drive_for(h, 60);
    snap = h.snapshot(CheckpointId(3));  // holds a0..a9
    {
      std::lock_guard lk(mu);
      busy = false;
    }
    for (int i = 10; i < 15; ++i) h.process_element(alert(i), i);  // after the checkpoint
    ASSERT_TRUE(drive(h, [&] {
      std::lock_guard lk(mu);
      return deliveries.size() == 15;
    }));
    // The task dies here (no close): the job restores checkpoint 3 and its
    // source replays a10..a14.
  }
  auto r = Harness::restored(sink_op(uri), options(), snap);
  ASSERT_TRUE(r->open().is_ok());
  for (int i = 10; i < 15; ++i) r->process_element(alert(i), i);
  ASSERT_TRUE(r->end_input().is_ok());  // waits until every batch is acknowledged
  std::lock_guard lk(mu);
  ASSERT_EQ(deliveries.size(), 15u);  // every alert, once per _id in the index
  int repeats = 0;
  for (const auto& [id, times] : deliveries) repeats += times - 1;
  EXPECT_EQ(repeats, 15) << "a0..a9 re-sent from the checkpoint, a10..a14 replayed";
  EXPECT_TRUE(r->dead_letters().empty());
}

TEST(SiemFormats, BadUrisAreRefusedSayingWhatToFix) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"http://h:9200/_bulk?format=es-bulk&index=a", "id_field"},
      {"http://h:9200/_bulk?format=es-bulk&id_field=id", "index="},
      {"http://h:9200/alerts/_search?format=es-bulk&id_field=id", "_bulk"},
      {"http://h:8088/services/collector/raw?format=splunk-hec", "services/collector/event"},
      {"http://h:8088/x?format=json&index=a", "index is an option of format=splunk-hec or es-bulk"},
      {"http://h:9200/a/_bulk?format=es-bulk&id_field=id&sourcetype=x", "sourcetype is an option of format=splunk-hec"},
      {"http://h:8088/services/collector/event?format=splunk-hec&op=create", "op is an option of format=es-bulk"},
      {"http://h:9200/a/_bulk?format=es-bulk&id_field=id&op=upsert", "op must be index or create"},
      {"http://h:9200/a/_bulk?format=es-bulk&id_field=id&auth_scheme=Token", "auth_scheme"},
      {"http://h:9200/a/_bulk?format=avro", "format must be"},
  };
  for (const auto& [uri, why] : cases) {
    auto s = HttpPushSink<Alert>::from_uri(uri);
    ASSERT_FALSE(s.is_ok()) << uri;
    EXPECT_NE(s.status().message().find(why), std::string::npos) << uri << " -> " << s.status().message();
  }
}

}  // namespace
}  // namespace sluice::http_sink
