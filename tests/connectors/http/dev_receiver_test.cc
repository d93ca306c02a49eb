// `sluice dev-receiver`'s server: each batch applied once per idempotency
// key, the latest record per key fields kept, a bearer token required when
// set, NDJSON batches too.
#include "connectors/http/dev_receiver.h"

#include <gtest/gtest.h>

#include <future>

#include "operators/async/http/http_client.h"

namespace sluice::http_sink {
namespace {

http_client::Response call(http_client::HttpClient& c, http_client::Method m, const std::string& url,
                           const std::string& body = "", std::vector<std::pair<std::string, std::string>> headers = {}) {
  std::promise<Result<http_client::Response>> p;
  auto f = p.get_future();
  Status st = c.submit({m, url, std::move(headers), body}, [&p](Result<http_client::Response> r) { p.set_value(std::move(r)); });
  EXPECT_TRUE(st.is_ok());
  auto r = f.get();
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? *r : http_client::Response{};
}

TEST(DevPushReceiver, AppliesEachBatchOnceAndKeepsTheLatestRecordPerKey) {
  DevReceiverOptions o;
  o.bind = "127.0.0.1:0";
  o.token = "tok";
  o.key_fields = {"minute", "step"};
  auto r = DevPushReceiver::start(o);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  auto client = http_client::HttpClient::start({.name = "dev-rx-test"});
  ASSERT_TRUE(client.is_ok());
  const std::string base = "http://" + (*r)->address();
  const std::vector<std::pair<std::string, std::string>> auth{{"Authorization", "Bearer tok"}};
  using http_client::Method;
  EXPECT_EQ(call(**client, Method::kPost, base + "/f", R"({"idempotency_key":"a","records":[]})").status, 401);
  EXPECT_EQ(call(**client, Method::kPost, base + "/f",
                 R"({"idempotency_key":"a","records":[{"minute":1,"step":0,"n":3},{"minute":1,"step":1,"n":1}]})", auth)
                .status,
            200);
  EXPECT_EQ(call(**client, Method::kPost, base + "/f", R"({"idempotency_key":"b","records":[{"minute":1,"step":0,"n":5}]})", auth)
                .status,
            200);
  // A retry of "a" after "b": ignored, so n stays 5.
  EXPECT_EQ(call(**client, Method::kPost, base + "/f", R"({"idempotency_key":"a","records":[{"minute":1,"step":0,"n":3}]})", auth)
                .body,
            R"({"duplicate":true})");
  auto ndjson = auth;
  ndjson.push_back({"Idempotency-Key", "c"});
  EXPECT_EQ(call(**client, Method::kPost, base + "/f", "{\"minute\":2,\"step\":0,\"n\":7}\n", ndjson).status, 200);
  EXPECT_EQ(call(**client, Method::kPost, base + "/f", R"({"records":[]})", auth).status, 400) << "no key";
  EXPECT_EQ(call(**client, Method::kGet, base + "/records", "", auth).body,
            R"([{"minute":1,"step":0,"n":5},{"minute":1,"step":1,"n":1},{"minute":2,"step":0,"n":7}])");
  auto s = (*r)->stats();
  EXPECT_EQ(s.batches, 3u);
  EXPECT_EQ(s.duplicates, 1u);
  EXPECT_EQ(call(**client, Method::kGet, base + "/health").status, 200) << "the health check is public";
}

}  // namespace
}  // namespace sluice::http_sink
