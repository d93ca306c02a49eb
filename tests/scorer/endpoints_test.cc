// The scorer's endpoints on loopback: gRPC and HTTP/JSON give the model's
// score, refuse requests without the token, refuse oversized and malformed
// requests with a reason, and keep serving across reloads.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <future>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "jobs/fraud/scorer/client.h"
#include "jobs/fraud/scorer/scorer.grpc.pb.h"
#include "jobs/fraud/scorer/server.h"
#include "operators/async/http/http_client.h"
#include "tests/harness/test_pki.h"
#include "tests/integration/support.h"

namespace sluice::fraud_scorer {
namespace {

const char* kModel = R"({"version":"lr-2026-12-01","bias":-4.0,"weights":{"amount_log":0.9,"failed_logins_10m":0.6,
  "new_device":1.5,"api_errors_5m":0.3,"country_change":1.2}})";
const char* kToken = "s3cret-token";

void write(const std::string& path, const std::string& text) {
  std::ofstream out(path + ".tmp", std::ios::trunc);
  out << text;
  out.close();
  ::rename((path + ".tmp").c_str(), path.c_str());
}

Result<ScoreResult> score_sync(ScorerClient& c, const ScoreInput& in) {
  std::promise<Result<ScoreResult>> p;
  auto f = p.get_future();
  Status st = c.submit(in, [&p](Result<ScoreResult> r) { p.set_value(std::move(r)); });
  if (!st.is_ok()) return st;
  return f.get();
}

Result<http_client::Response> http_sync(http_client::HttpClient* client, const std::string& url, const std::string& body,
                                        bool with_token, http_client::Method method = http_client::Method::kPost) {
  http_client::Request req;
  req.method = method;
  req.url = url;
  req.body = body;
  if (with_token) req.headers.push_back({"Authorization", std::string("Bearer ") + kToken});
  std::promise<Result<http_client::Response>> p;
  auto f = p.get_future();
  Status st = client->submit(std::move(req), [&p](Result<http_client::Response> r) { p.set_value(std::move(r)); });
  if (!st.is_ok()) return st;
  return f.get();
}

class ScorerEndpoints : public ::testing::Test {
 protected:
  void SetUp() override {
    write(dir_.file("model.json"), kModel);
    auto store = ModelStore::open(dir_.file("model.json"));
    ASSERT_TRUE(store.is_ok()) << store.status().to_string();
    store_ = std::move(store).value();
    opts_.grpc_bind = "127.0.0.1:0";
    opts_.http_bind = "127.0.0.1:0";
    opts_.token = kToken;
    opts_.max_body_bytes = 4096;
    opts_.max_features = 8;
    opts_.threads = 2;
    auto server = ScorerServer::start(opts_, store_.get());
    ASSERT_TRUE(server.is_ok()) << server.status().to_string();
    server_ = std::move(server).value();
  }

  std::unique_ptr<ScorerClient> client(const std::string& scheme, const std::string& token = kToken) {
    ScorerClientOptions o;
    o.endpoint = scheme + "://" + (scheme == "grpc" ? server_->grpc_address() : server_->http_address());
    o.token = token;
    o.deadline = Duration(5000);
    auto c = ScorerClient::connect(o);
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    return c.is_ok() ? std::move(c).value() : nullptr;
  }
  std::string url(const std::string& path) { return "http://" + server_->http_address() + path; }

  it::TempDir dir_;
  ScorerOptions opts_;
  std::unique_ptr<ModelStore> store_;
  std::unique_ptr<ScorerServer> server_;
  // Closed before the server stops (which otherwise waits for its idle keep-alive connection).
  std::unique_ptr<http_client::HttpClient> http_ = std::move(http_client::HttpClient::start({.name = "scorer-test"})).value();
};

TEST_F(ScorerEndpoints, BothEndpointsReturnTheModelsScore) {
  auto grpc = client("grpc");
  auto http = client("http");
  ASSERT_TRUE(grpc && http);
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> v(0, 8);
  const char* names[] = {"amount_log", "failed_logins_10m", "new_device", "api_errors_5m", "country_change", "other"};
  for (int i = 0; i < 50; ++i) {
    ScoreInput in{"req-" + std::to_string(i), "u" + std::to_string(i % 7), {}};
    for (const char* n : names)
      if (rng() % 2) in.features[n] = v(rng);
    auto a = score_sync(*grpc, in);
    auto b = score_sync(*http, in);
    ASSERT_TRUE(a.is_ok()) << a.status().to_string();
    ASSERT_TRUE(b.is_ok()) << b.status().to_string();
    const double want = store_->current()->score(in.features).score;
    EXPECT_EQ(a->score, want);
    EXPECT_EQ(b->score, want);  // JSON numbers round-trip exactly
    EXPECT_EQ(a->request_id, in.request_id);
    EXPECT_EQ(b->request_id, in.request_id);
    EXPECT_EQ(a->model_version, "lr-2026-12-01");
    EXPECT_EQ(b->model_version, "lr-2026-12-01");
  }
}

TEST_F(ScorerEndpoints, RequestsWithoutTheTokenAreRefusedOnBothEndpoints) {
  ScoreInput in{"r", "u", {{"new_device", 1}}};
  auto grpc = client("grpc", "not-the-token");
  auto http = client("http", "not-the-token");
  auto a = score_sync(*grpc, in);
  auto b = score_sync(*http, in);
  ASSERT_FALSE(a.is_ok());
  ASSERT_FALSE(b.is_ok());
  EXPECT_EQ(a.status().code(), StatusCode::kPermissionDenied) << a.status().to_string();
  EXPECT_EQ(b.status().code(), StatusCode::kPermissionDenied) << b.status().to_string();

  // gRPC without any metadata.
  auto channel = grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials());
  auto stub = sluice::fraud::Scorer::NewStub(channel);
  grpc::ClientContext ctx;
  sluice::fraud::ScoreRequest req;
  sluice::fraud::ScoreResponse resp;
  EXPECT_EQ(stub->Score(&ctx, req, &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  auto r = http_sync(http_.get(), url("/v1/score"), R"({"features":{}})", false);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->status, 401);
  r = http_sync(http_.get(), url("/metrics"), "", false, http_client::Method::kGet);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->status, 401);
  // Health checks are public; metrics with the token are served.
  r = http_sync(http_.get(), url("/healthz"), "", false, http_client::Method::kGet);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("lr-2026-12-01"), std::string::npos);
  r = http_sync(http_.get(), url("/metrics"), "", true, http_client::Method::kGet);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("sluice_scorer_requests_total{endpoint=\"grpc\",outcome=\"unauthenticated\"}"), std::string::npos);
  EXPECT_NE(r->body.find("sluice_scorer_model_info{version=\"lr-2026-12-01\"} 1"), std::string::npos);
}

TEST_F(ScorerEndpoints, OversizedAndMalformedRequestsAreRefusedWithAReason) {
  struct Case {
    std::string body;
    long status;
    std::string reason;
  };
  std::string many = R"({"features":{)";
  for (int i = 0; i < 9; ++i) many += (i ? "," : "") + ("\"f" + std::to_string(i) + "\":1");
  many += "}}";
  const std::vector<Case> cases = {
      {"not json", 400, "not JSON"},
      {"[]", 400, "JSON object"},
      {R"({"user":"u"})", 400, "features"},
      {R"({"features":{"new_device":"yes"}})", 400, "new_device"},
      {R"({"features":{"a":1}, "request_id": 7})", 400, "request_id"},
      {R"({"features":{"a":1}} trailing)", 400, "not JSON"},
      {R"({"features":{"a":1,"b":2,"a":3}})", 400, "given twice"},
      {many, 400, "limit of 8"},
      {R"({"features":{"a":1},"request_id":")" + std::string(300, 'x') + "\"}", 400, "request_id"},
      {std::string(5000, ' '), 413, ""},
  };
  for (const auto& c : cases) {
    auto r = http_sync(http_.get(), url("/v1/score"), c.body, true);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->status, c.status) << c.body.substr(0, 80) << " -> " << r->body;
    EXPECT_NE(r->body.find(c.reason), std::string::npos) << c.body.substr(0, 80) << " -> " << r->body;
  }
  auto grpc = client("grpc");
  ScoreInput in{"r", "u", {}};
  for (int i = 0; i < 9; ++i) in.features["f" + std::to_string(i)] = 1;
  auto a = score_sync(*grpc, in);
  ASSERT_FALSE(a.is_ok());
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(a.status().message().find("limit of 8"), std::string::npos) << a.status().to_string();
  in.features = {{"new_device", std::nan("")}};
  a = score_sync(*grpc, in);
  ASSERT_FALSE(a.is_ok());
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
  in.features = {{std::string(5000, 'f'), 1}};  // over the message size limit
  a = score_sync(*grpc, in);
  ASSERT_FALSE(a.is_ok());
  EXPECT_EQ(a.status().code(), StatusCode::kResourceExhausted) << a.status().to_string();
  // Still serving.
  in.features = {{"new_device", 1}};
  EXPECT_TRUE(score_sync(*grpc, in).is_ok());
  EXPECT_TRUE(score_sync(*client("http"), in).is_ok());
}

TEST_F(ScorerEndpoints, ReloadsWhileServingFailNoRequest) {
  auto grpc = client("grpc");
  auto http = client("http");
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::set<std::string> versions;
  std::thread caller([&] {
    ScoreInput in{"r", "u", {{"new_device", 1}}};
    while (!stop) {
      for (ScorerClient* c : {grpc.get(), http.get()}) {
        auto r = score_sync(*c, in);
        if (r.is_ok()) {
          ++ok;
          versions.insert(r->model_version);
        } else {
          ++failed;
        }
      }
    }
  });
  const std::string path = dir_.file("model.json");
  for (int i = 2; i <= 6; ++i) {
    write(path, i % 2 ? "{\"version\":\"broken" : R"({"version":"v)" + std::to_string(i) + R"(","bias":0,"weights":{}})");
    Status st = store_->reload("test");
    EXPECT_EQ(st.is_ok(), i % 2 == 0) << st.to_string();
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
  stop = true;
  caller.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(ok.load(), 10);
  EXPECT_EQ(store_->current()->version(), "v6");
  EXPECT_TRUE(versions.count("v6")) << "the last model never answered";
  EXPECT_FALSE(versions.count("broken"));
  auto r = score_sync(*grpc, ScoreInput{"r", "u", {{"new_device", 1}}});
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->score, 0.5);  // v6: bias 0, no weights
}

}  // namespace
}  // namespace sluice::fraud_scorer

namespace sluice::fraud_scorer {
namespace {

TEST(ScorerTls, BothEndpointsServeTlsToClientsThatTrustTheCaAndNothingInPlaintext) {
  it::TempDir dir;
  harness::TestPki pki(dir.path());
  ASSERT_TRUE(pki.ok) << pki.error;
  write(dir.file("model.json"), kModel);
  auto store = std::move(ModelStore::open(dir.file("model.json"))).value();
  ScorerOptions o;
  o.grpc_bind = o.http_bind = "127.0.0.1:0";
  o.token = kToken;
  o.tls.cert = pki.cert;
  o.tls.key = pki.key;
  auto server = ScorerServer::start(o, store.get());
  ASSERT_TRUE(server.is_ok()) << server.status().to_string();
  const std::string grpc = (*server)->grpc_address(), http = (*server)->http_address();
  ScoreInput in{"r", "u", {{"new_device", 1}, {"amount_log", 2}}};
  const double want = store->current()->score(in.features).score;
  for (const std::string& endpoint : {"grpcs://" + grpc, "https://" + http}) {
    auto c = ScorerClient::connect({.endpoint = endpoint, .token = kToken, .deadline = Duration(5000), .tls_ca = pki.ca});
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    auto r = score_sync(**c, in);
    ASSERT_TRUE(r.is_ok()) << endpoint << ": " << r.status().to_string();
    EXPECT_EQ(r->score, want);
  }
  for (const std::string& endpoint : {"grpc://" + grpc, "http://" + http}) {
    auto c = ScorerClient::connect({.endpoint = endpoint, .token = kToken, .deadline = Duration(2000)});
    ASSERT_TRUE(c.is_ok());
    auto r = score_sync(**c, in);
    EXPECT_FALSE(r.is_ok()) << endpoint << " answered in plaintext";
  }
}

}  // namespace
}  // namespace sluice::fraud_scorer
