// The jobmanager's HTTP API over a real server (cpp-httplib client on
// loopback) against a fake jobmanager: the dashboard's files and headers,
// the job JSON (watermarks, rates, history, masked secrets), and actions
// that need the cluster token — 401 without, 403 with a wrong one.
#include "engine/jobmanager/http_api.h"

#include "engine/common/time.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <simdjson.h>

#include <atomic>
#include <climits>
#include <mutex>

namespace sluice::jobmanager {
namespace {

proto::JobStatusResponse sample_job(int64_t now) {
  proto::JobStatusResponse r;
  auto* s = r.mutable_job();
  s->set_job_id("clicks-1");
  s->set_name("clickstream");
  s->set_state("RUNNING");
  s->set_parallelism(2);
  s->set_last_checkpoint_id(7);
  auto* g = r.mutable_job_graph();
  g->set_name("clickstream");
  auto* src = g->add_vertices();
  src->set_id(0);
  src->set_name("clicks -> validate");
  src->set_parallelism(2);
  src->set_is_source(true);
  src->add_operators()->set_name("clicks");
  src->add_operators()->set_name("validate");
  auto* win = g->add_vertices();
  win->set_id(1);
  win->set_name("count per page");
  win->set_parallelism(2);
  win->add_operators()->set_name("count per page");
  auto* e = g->add_edges();
  e->set_source_vertex(0);
  e->set_target_vertex(1);
  e->set_partitioner(proto::PARTITIONER_HASH);
  (*g->mutable_args())["source"] = "kafka://h:1/clicks?start=earliest&kafka.sasl.password=hunter2";
  (*g->mutable_args())["api_token"] = "abc";
  (*g->mutable_config())["checkpoint.interval"] = "5s";
  for (int sub = 0; sub < 2; ++sub) {
    auto* t = r.add_subtasks();
    t->set_vertex(0);
    t->set_subtask(sub);
    t->set_state("RUNNING");
    t->set_records_out(1000);
    t->set_records_out_per_s(250.5);
    t->set_backpressure(sub == 0 ? 0.1 : 0.6);
    t->set_busy(0.2);
    t->set_watermark_ms(INT64_MIN);  // a source: none
    auto* w = r.add_subtasks();
    w->set_vertex(1);
    w->set_subtask(sub);
    w->set_state("RUNNING");
    w->set_records_in(1000);
    w->set_watermark_ms(now - 4000 - sub * 1000);
  }
  auto* h = r.mutable_checkpoints()->add_history();
  h->set_id(7);
  h->set_status("COMPLETED");
  h->set_size_bytes(4096);
  auto* f = r.add_failures();
  f->set_message("NOT_FOUND: input missing");
  f->set_permanent(true);
  return r;
}

/// A jobmanager with one job; records what the actions asked for.
class FakeJobManager final : public JobManagerView {
 public:
  std::vector<proto::JobStatusResponse> job_statuses() override { return {sample_job(now_)}; }
  std::optional<proto::JobStatusResponse> job_status(const std::string& id) override {
    if (id != "clicks-1") return std::nullopt;
    return sample_job(now_);
  }
  std::vector<proto::TaskManagerStatus> taskmanager_statuses() override {
    proto::TaskManagerStatus t;
    t.set_id("tm-1");
    t.set_slots(4);
    t.set_slots_used(2);
    t.set_rss_bytes(123 << 20);
    t.set_inbound_connections(3);
    return {t};
  }
  Status cancel_job(const std::string& id) override {
    std::lock_guard lk(mu);
    calls.push_back("cancel " + id);
    return id == "clicks-1" ? Status::ok() : Status::not_found("unknown job id '" + id + "'");
  }
  Result<proto::SavepointResponse> savepoint(const std::string& id, const std::string&, bool stop) override {
    std::lock_guard lk(mu);
    calls.push_back((stop ? "stop " : "savepoint ") + id);
    proto::SavepointResponse r;
    r.set_checkpoint_id(8);
    r.set_path("/cp/clicks-1/sp-8");
    return r;
  }
  Result<proto::LogResponse> logs(const proto::LogRequest& q) override {
    proto::LogResponse r;
    auto* l = r.add_logs();
    l->set_source("jobmanager");
    l->add_lines("job " + q.job_id() + " said something");
    return r;
  }
  bool token_matches(std::string_view t) const override { return t == "the-secret"; }

  int64_t now_ = wall_clock_ms();
  std::mutex mu;
  std::vector<std::string> calls;
};

class HttpApi : public ::testing::Test {
 protected:
  void start(const std::string& bearer = "") {
    HttpServerOptions o;
    o.bind = "127.0.0.1:0";
    o.bearer_token = bearer;
    auto s = HttpServer::create(o);
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    server_ = std::move(*s);
    add_http_api(*server_, jm_);
    server_->start();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(5, 0);
  }
  FakeJobManager jm_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(HttpApi, ServesTheDashboardWithHeadersThatKeepItToItself) {
  start();
  auto page = client_->Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(page->body.find("<script src=\"/ui/app.js\""), std::string::npos);
  EXPECT_NE(page->get_header_value("Content-Security-Policy").find("frame-ancestors 'none'"), std::string::npos);
  EXPECT_EQ(page->get_header_value("X-Content-Type-Options"), "nosniff");
  auto js = client_->Get("/ui/app.js");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->status, 200);
  EXPECT_EQ(js->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_NE(js->body.find("Authorization"), std::string::npos);
  auto css = client_->Get("/ui/style.css");
  ASSERT_TRUE(css);
  EXPECT_EQ(css->status, 200);
  auto missing = client_->Get("/ui/nothing.js");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST_F(HttpApi, JobJsonHasTheGraphRatesAndNoRawNumbersForMissingWatermarks) {
  start();
  auto r = client_->Get("/jobs/clicks-1");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->body.find("-9223372036854775808"), std::string::npos) << "no INT64_MIN for 'no watermark'";
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  ASSERT_EQ(p.parse(r->body).get(doc), simdjson::SUCCESS) << r->body;
  EXPECT_EQ(std::string_view(doc["state"]), "RUNNING");
  EXPECT_EQ(std::string_view(doc["job"]["id"]), "clicks-1");
  EXPECT_EQ(int64_t(doc["last_checkpoint_id"]), 7);
  simdjson::dom::array vertices = doc["vertices"];
  ASSERT_EQ(vertices.size(), 2u);
  auto src = vertices.at(0).value();
  EXPECT_TRUE(src["watermark_ms"].is_null());
  EXPECT_EQ(std::string_view(src["watermark"]), "none");
  EXPECT_DOUBLE_EQ(double(src["records_out_per_s"]), 501);  // both subtasks
  EXPECT_DOUBLE_EQ(double(src["backpressure"]), 0.6) << "the worst subtask's";
  EXPECT_EQ(simdjson::dom::array(src["operators"]).size(), 2u);
  auto win = vertices.at(1).value();
  EXPECT_EQ(int64_t(win["watermark_ms"]), jm_.now_ - 5000) << "the lowest of its subtasks";
  EXPECT_GE(int64_t(win["watermark_lag_ms"]), 5000);
  EXPECT_LT(int64_t(win["watermark_lag_ms"]), 60000);
  auto edge = simdjson::dom::array(doc["edges"]).at(0).value();
  EXPECT_EQ(std::string_view(edge["partitioning"]), "hash");
  EXPECT_EQ(std::string_view(doc["checkpoints"]["history"].at(0)["status"]), "COMPLETED");
  EXPECT_TRUE(bool(doc["failures"].at(0)["permanent"]));
  EXPECT_EQ(std::string_view(doc["args"]["api_token"]), "******");
  EXPECT_EQ(std::string_view(doc["args"]["source"]), "kafka://h:1/clicks?start=earliest&kafka.sasl.password=******");
  EXPECT_EQ(r->body.find("hunter2"), std::string::npos);
  EXPECT_EQ(std::string_view(doc["config"]["checkpoint.interval"]), "5s");

  auto missing = client_->Get("/jobs/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto overview = client_->Get("/overview");
  ASSERT_TRUE(overview);
  ASSERT_EQ(p.parse(overview->body).get(doc), simdjson::SUCCESS) << overview->body;
  EXPECT_EQ(int64_t(doc["jobs_by_state"]["RUNNING"]), 1);
  EXPECT_EQ(int64_t(doc["slots"]), 4);
  EXPECT_EQ(int64_t(doc["taskmanagers"].at(0)["rss_bytes"]), 123 << 20);
  auto logs = client_->Get("/jobs/clicks-1/logs?lines=10");
  ASSERT_TRUE(logs);
  EXPECT_NE(logs->body.find("job clicks-1 said something"), std::string::npos) << logs->body;
}

TEST_F(HttpApi, ActionsNeedTheTokenAndSayWhetherItIsMissingOrWrong) {
  start();
  auto none = client_->Post("/jobs/clicks-1/cancel");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_NE(none->body.find("needs the cluster token"), std::string::npos) << none->body;
  EXPECT_NE(none->body.find("Authorization: Bearer <token>"), std::string::npos) << "how to send it: " << none->body;
  EXPECT_NE(none->body.find("--data-dir"), std::string::npos) << "where it is: " << none->body;
  auto wrong = client_->Post("/jobs/clicks-1/cancel", httplib::Headers{{"Authorization", "Bearer guess"}}, "", "");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 403);
  EXPECT_NE(wrong->body.find("not this cluster's token"), std::string::npos) << wrong->body;
  {
    std::lock_guard lk(jm_.mu);
    EXPECT_TRUE(jm_.calls.empty()) << "nothing happened without the token";
  }
  httplib::Headers auth{{"Authorization", "Bearer the-secret"}};
  auto ok = client_->Post("/jobs/clicks-1/cancel", auth, "", "");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  auto stop = client_->Post("/jobs/clicks-1/stop", auth, "", "");
  ASSERT_TRUE(stop);
  EXPECT_EQ(stop->status, 200);
  EXPECT_NE(stop->body.find("/cp/clicks-1/sp-8"), std::string::npos) << stop->body;
  auto unknown = client_->Post("/jobs/nope/cancel", auth, "", "");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  std::lock_guard lk(jm_.mu);
  EXPECT_EQ(jm_.calls, (std::vector<std::string>{"cancel clicks-1", "stop clicks-1", "cancel nope"}));
}

TEST_F(HttpApi, WithReadAccessTokenThePageIsPublicButTheDataIsNot) {
  start("the-secret");
  auto page = client_->Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  auto js = client_->Get("/ui/app.js");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->status, 200);
  auto overview = client_->Get("/overview");
  ASSERT_TRUE(overview);
  EXPECT_EQ(overview->status, 401);
  auto with = client_->Get("/overview", httplib::Headers{{"Authorization", "Bearer the-secret"}});
  ASSERT_TRUE(with);
  EXPECT_EQ(with->status, 200);
}

TEST(TokenMessages, AMissingTokenNamesEveryWayToGiveItAndWhereItIs) {
  const std::string m = missing_token_message("submit", token_location_text(true));
  EXPECT_EQ(m.rfind("submit needs the cluster token", 0), 0u) << m;
  for (const char* fix : {"--token-file PATH", "SLUICE_TOKEN_FILE=PATH", "SLUICE_TOKEN=<token>", "--data-dir",
                          "--ha-dir"}) {
    EXPECT_NE(m.find(fix), std::string::npos) << "names " << fix << ": " << m;
  }
  const std::string given = token_location_text(false);
  EXPECT_EQ(given.find("--data-dir"), std::string::npos) << "a secret given at start is not in the data dir: " << given;
  EXPECT_NE(given.find("started with"), std::string::npos) << given;
}

TEST(RedactSetting, MasksSecretKeysAndSecretUriParameters) {
  EXPECT_EQ(redact_setting("password_file", "/x"), "******");
  EXPECT_EQ(redact_setting("sink", "postgres://u@h/db?table=t"), "postgres://u@h/db?table=t");
  EXPECT_EQ(redact_setting("sink", "http://h/x?apikey=1&a=2&client_secret=3"), "http://h/x?apikey=******&a=2&client_secret=******");
  EXPECT_EQ(redact_setting("window", "60s"), "60s");
}

}  // namespace
}  // namespace sluice::jobmanager
