// The fraud job's alerts pushed to two SIEMs at once — a Splunk HTTP Event
// Collector and an Elasticsearch bulk endpoint, each a real HTTP server on
// a loopback port that checks the credentials and the wire format and
// answers as the real one does. Every ground-truth alert arrives at both,
// keyed by its alert id (HEC `fields.alert_id`, the bulk action's `_id`);
// a second run over the same input delivers the same ids with the same
// content, so a SIEM recognises every repeat.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <stdlib.h>

#include <map>
#include <string>

#include "tests/connectors/http/push_receiver.h"
#include "tests/fraud/reference.h"
#include "tests/integration/support.h"

namespace sluice::fraud_test {
namespace {

using push_test::PushReceiver;
using push_test::Received;

/// alert id -> (rule, user, trigger) and the whole alert as JSON.
struct Delivered {
  std::map<std::string, std::vector<std::string>> bodies;  // alert id -> every copy received
  std::set<Decision> alerts;
};

void add(Delivered& d, simdjson::dom::element alert, const std::string& id) {
  std::string_view rule, user, trigger, alert_id;
  ASSERT_FALSE(alert["rule"].get(rule) || alert["user"].get(user) || alert["trigger_id"].get(trigger) ||
               alert["alert_id"].get(alert_id))
      << simdjson::to_string(alert);
  EXPECT_EQ(alert_id, id);
  d.alerts.insert(Decision{std::string(rule), std::string(user), std::string(trigger), true, 0});
  d.bodies[id].push_back(simdjson::to_string(alert));
}

/// HEC: concatenated event objects, `Authorization: Splunk <token>`.
Delivered read_hec(const std::vector<Received>& requests) {
  Delivered d;
  simdjson::dom::parser p;
  for (const auto& r : requests) {
    if (r.code != 200) continue;
    simdjson::dom::document_stream events;
    EXPECT_EQ(p.parse_many(r.body).get(events), simdjson::SUCCESS) << r.body;
    for (auto ev : events) {
      simdjson::dom::element e;
      EXPECT_EQ(ev.get(e), simdjson::SUCCESS);
      std::string_view id, index, sourcetype;
      double time = 0;
      int64_t ts = 0;
      if (e["fields"]["alert_id"].get(id) || e["index"].get(index) || e["sourcetype"].get(sourcetype) ||
          e["time"].get(time) || e["event"]["ts"].get(ts)) {
        ADD_FAILURE() << "not a HEC event: " << simdjson::to_string(e);
        continue;
      }
      EXPECT_EQ(index, "security");
      EXPECT_EQ(sourcetype, "fraud:alert");
      EXPECT_NEAR(time, static_cast<double>(ts) / 1000.0, 0.0015);
      add(d, e["event"], std::string(id));
    }
  }
  return d;
}

/// Elasticsearch bulk: NDJSON action line + document, `Authorization: ApiKey <key>`.
Delivered read_bulk(const std::vector<Received>& requests) {
  Delivered d;
  simdjson::dom::parser p;
  for (const auto& r : requests) {
    if (r.code != 200) continue;
    std::vector<std::string> lines;
    for (size_t at = 0; at < r.body.size();) {
      size_t nl = r.body.find('\n', at);
      EXPECT_NE(nl, std::string::npos) << "a bulk body ends with a newline";
      if (nl == std::string::npos) break;
      lines.push_back(r.body.substr(at, nl - at));
      at = nl + 1;
    }
    EXPECT_EQ(lines.size() % 2, 0u);
    for (size_t i = 0; i + 1 < lines.size(); i += 2) {
      simdjson::dom::element action;
      std::string_view index, id;
      if (p.parse(lines[i]).get(action) || action["index"]["_index"].get(index) || action["index"]["_id"].get(id)) {
        ADD_FAILURE() << "not a bulk index action: " << lines[i];
        continue;
      }
      EXPECT_EQ(index, "fraud-alerts");
      const std::string alert_id(id);
      simdjson::dom::parser doc_parser;
      simdjson::dom::element doc;
      if (doc_parser.parse(lines[i + 1]).get(doc)) {
        ADD_FAILURE() << "not a document: " << lines[i + 1];
        continue;
      }
      add(d, doc, alert_id);
    }
  }
  return d;
}

TEST(FraudSiem, AlertsReachSplunkHecAndElasticsearchBulkWithStableIds) {
  ::setenv("FRAUD_TEST_HEC_TOKEN", "hec-token", 1);
  ::setenv("FRAUD_TEST_ES_KEY", "es-key", 1);
  auto hec = PushReceiver::start();
  auto es = PushReceiver::start();
  ASSERT_TRUE(hec && es);
  hec->set_handler([](const Received& r) {
    if (r.authorization != "Splunk hec-token") return PushReceiver::Answer{401, R"({"text":"Invalid token","code":4})"};
    return PushReceiver::Answer{200, R"({"text":"Success","code":0})"};
  });
  es->set_handler([](const Received& r) {
    if (r.authorization != "ApiKey es-key") return PushReceiver::Answer{401, R"({"error":"unauthorized"})"};
    std::string items;
    size_t n = std::count(r.body.begin(), r.body.end(), '\n') / 2;
    for (size_t i = 0; i < n; ++i) items += std::string(i ? "," : "") + R"({"index":{"status":201}})";
    return PushReceiver::Answer{200, R"({"took":1,"errors":false,"items":[)" + items + "]}"};
  });
  it::TempDir in;
  generate(in.path(), {"--count", "10000", "--scenarios", "4", "--seed", "41"});
  const std::string siem =
      hec->url("/services/collector/event") +
      "?format=splunk-hec&auth_token=env:FRAUD_TEST_HEC_TOKEN&index=security&sourcetype=fraud:alert"
      "&id_field=alert_id&time_field=ts&linger=50ms " +
      es->url("/_bulk") + "?format=es-bulk&index=fraud-alerts&id_field=alert_id&auth_token=env:FRAUD_TEST_ES_KEY&linger=50ms";
  const auto truth = truth_alerts(read_truth(in.file("truth.ndjson")));
  for (int run = 1; run <= 2; ++run) {
    SCOPED_TRACE("run " + std::to_string(run));
    it::TempDir out;
    std::vector<std::string> args{"run-local", job_library(), "-p", "2", "--arg", "siem=" + siem};
    for (const auto& a : job_args(in.path(), out.path())) args.push_back(a);
    auto r = it::run_sluice(args);
    ASSERT_EQ(r.exit_code, 0) << r.describe(args);
    for (auto* d : {&*hec, &*es}) {
      const Delivered got = d == &*hec ? read_hec(d->requests()) : read_bulk(d->requests());
      EXPECT_EQ(diff(truth, got.alerts), "");
      EXPECT_EQ(got.bodies.size(), truth.size());
      for (const auto& [id, copies] : got.bodies) {
        EXPECT_EQ(copies.size(), static_cast<size_t>(run)) << id;
        for (const auto& c : copies) EXPECT_EQ(c, copies.front()) << "alert " << id << " changed between deliveries";
      }
    }
  }
}

}  // namespace
}  // namespace sluice::fraud_test
