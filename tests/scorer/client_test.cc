// The job's side: ScorerFn inside the async I/O operator (operator harness,
// real scorer on loopback) scores records, and turns an outage or a slow
// scorer into unscored outputs — nothing is dead-lettered or lost. And the
// sluice-scorer binary: ready file, SIGHUP reload, SIGTERM.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <future>
#include <set>
#include <thread>

#include "jobs/fraud/scorer/client.h"
#include "jobs/fraud/scorer/server.h"
#include "operators/async/async_wait_operator.h"
#include "operators/async/http/http_client.h"
#include "tests/harness/operator_harness.h"
#include "tests/integration/process.h"
#include "tests/integration/support.h"
#include "tests/scorer/support/delay_proxy.h"

namespace sluice::fraud_scorer {
namespace {

using namespace std::chrono_literals;

struct Txn {
  int id = 0;
  double amount_log = 0;
  SLUICE_FIELDS(id, amount_log)
};

struct Decision {
  int id = 0;
  bool scored = false;
  double score = -1;
  std::string why;  // unscored: the reason
  SLUICE_FIELDS(id, scored, score, why)
};

using Op = async_io::AsyncWaitOperator<Txn, Decision>;
using Harness = harness::OneInputOperatorHarness<Txn, Decision>;

const char* kToken = "tkn";

std::unique_ptr<Op> make_op(const std::string& endpoint, Duration deadline) {
  ScorerFn<Txn, Decision> fn(
      {.endpoint = endpoint, .token = kToken, .deadline = deadline},
      [](const Txn& t) { return ScoreInput{std::to_string(t.id), "u", {{"amount_log", t.amount_log}}}; },
      [](const Txn& t, Result<ScoreResult> r) {
        if (!r.is_ok()) return Decision{t.id, false, -1, r.status().to_string()};
        return Decision{t.id, true, r->score, ""};
      });
  async_io::AsyncOptions o;
  o.mode = async_io::OutputMode::kUnordered;
  o.capacity = 50;
  o.timeout = Duration(60'000);  // the harness's clock does not move: the client's deadline decides
  return std::make_unique<Op>(std::make_unique<ScorerFn<Txn, Decision>>(std::move(fn)), o);
}

// Runs the harness's mailbox until `n` outputs arrived (or 10 s passed).
std::vector<Decision> collect(Harness& h, size_t n) {
  auto until = std::chrono::steady_clock::now() + 10s;
  while (h.output().records().size() < n && std::chrono::steady_clock::now() < until) {
    h.mailbox_queue().run_pending();
    std::this_thread::sleep_for(1ms);
  }
  std::vector<Decision> out;
  for (auto& r : h.output().take_records()) out.push_back(r.value);
  return out;
}

class ScorerFnInAsyncOperator : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::ofstream(dir_.file("m.json")) << R"({"version":"v1","bias":-1,"weights":{"amount_log":0.5}})";
    store_ = std::move(ModelStore::open(dir_.file("m.json"))).value();
    ScorerOptions o;
    o.grpc_bind = o.http_bind = "127.0.0.1:0";
    o.token = kToken;
    o.threads = 4;  // at least the client's HTTP connections (4 by default)
    server_ = std::move(ScorerServer::start(o, store_.get())).value();
    const bool grpc = GetParam() == "grpc";
    proxy_ = std::move(scorer_test::DelayProxy::start(grpc ? server_->grpc_address() : server_->http_address())).value();
    endpoint_ = GetParam() + "://" + proxy_->address();
  }
  it::TempDir dir_;
  std::unique_ptr<ModelStore> store_;
  std::unique_ptr<ScorerServer> server_;
  std::unique_ptr<scorer_test::DelayProxy> proxy_;
  std::string endpoint_;
};

TEST_P(ScorerFnInAsyncOperator, ScoresEveryRecordAndTurnsOutagesAndSlownessIntoUnscoredDecisions) {
  Harness h(make_op(endpoint_, Duration(300)));
  ASSERT_TRUE(h.open().is_ok());
  for (int i = 0; i < 20; ++i) h.process_element(Txn{i, i * 0.25}, i);
  auto out = collect(h, 20);
  ASSERT_EQ(out.size(), 20u);
  std::set<int> ids;
  for (const auto& d : out) {
    ids.insert(d.id);
    EXPECT_TRUE(d.scored) << d.why;
    EXPECT_NEAR(d.score, 1 / (1 + std::exp(-(-1 + 0.5 * d.id * 0.25))), 1e-12);
  }
  EXPECT_EQ(ids.size(), 20u);

  proxy_->set_down(true);  // outage
  for (int i = 20; i < 25; ++i) h.process_element(Txn{i, 1}, i);
  out = collect(h, 5);
  ASSERT_EQ(out.size(), 5u);
  for (const auto& d : out) EXPECT_FALSE(d.scored) << d.id;

  proxy_->set_down(false);  // back: records are scored again (gRPC reconnects within its 1 s backoff)
  bool scored_again = false;
  for (int i = 100; i < 200 && !scored_again; ++i) {
    h.process_element(Txn{i, 1}, i);
    out = collect(h, 1);
    ASSERT_EQ(out.size(), 1u);
    scored_again = out[0].scored;
    if (!scored_again) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(scored_again);

  proxy_->set_delay(1000ms);  // slower than the 300 ms deadline
  for (int i = 25; i < 28; ++i) h.process_element(Txn{i, 1}, i);
  out = collect(h, 3);
  ASSERT_EQ(out.size(), 3u);
  for (const auto& d : out) {
    EXPECT_FALSE(d.scored);
    EXPECT_EQ(d.why.rfind("TIMEOUT", 0), 0u) << d.why;  // kTimeout, not a refusal
  }
  proxy_->set_delay(0ms);
  EXPECT_TRUE(h.dead_letters().empty());
  h.close();
}

INSTANTIATE_TEST_SUITE_P(Protocols, ScorerFnInAsyncOperator, ::testing::Values("grpc", "http"));

TEST(ScorerClient, RefusesBadEndpointsAndMissingTokens) {
  EXPECT_FALSE(ScorerClient::connect({.endpoint = "tcp://x:1", .token = "t"}).is_ok());
  EXPECT_FALSE(ScorerClient::connect({.endpoint = "grpc://127.0.0.1:1", .token = ""}).is_ok());
  EXPECT_FALSE(ScorerClient::connect({.endpoint = "grpc://127.0.0.1:1", .token = "env:SLUICE_NO_SUCH_VARIABLE"}).is_ok());
  EXPECT_FALSE(ScorerClient::connect({.endpoint = "grpcs://127.0.0.1:1", .token = "t"}).is_ok());  // no CA
}

// --- the binary --------------------------------------------------------------------

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string healthz(const std::string& http_address) {
  // A client per call: no idle keep-alive connection holds up the server's stop.
  auto client = std::move(http_client::HttpClient::start({.name = "scorer-bin-test"})).value();
  std::promise<std::string> p;
  auto f = p.get_future();
  (void)client->submit({.method = http_client::Method::kGet, .url = "http://" + http_address + "/healthz"},
                       [&p](Result<http_client::Response> r) { p.set_value(r.is_ok() ? r->body : r.status().to_string()); });
  return f.get();
}

TEST(ScorerBinary, ServesReloadsOnSighupAndStopsOnSigterm) {
  it::TempDir dir;
  std::ofstream(dir.file("m.json")) << R"({"version":"bin-v1","bias":0,"weights":{}})";
  {
    std::ofstream(dir.file("token")) << "tok\n";
  }
  ::chmod(dir.file("token").c_str(), 0600);
  const std::string bin = it::build_dir() + "/jobs/fraud/scorer/sluice-scorer";
  // A world-readable token file is refused.
  std::ofstream(dir.file("open-token")) << "tok\n";
  ::chmod(dir.file("open-token").c_str(), 0644);
  auto refused = it::run_command({bin, "--model", dir.file("m.json"), "--token-file", dir.file("open-token")}, 10s);
  EXPECT_NE(refused.exit_code, 0);

  int pid = it::start_process({bin, "--model", dir.file("m.json"), "--token-file", dir.file("token"), "--grpc-bind",
                               "127.0.0.1:0", "--http-bind", "127.0.0.1:0", "--watch-interval", "0s", "--ready-file",
                               dir.file("ready.json")},
                              dir.file("log"), true);
  ASSERT_GT(pid, 0);
  std::string ready;
  for (int i = 0; i < 200 && ready.empty(); ++i) {
    std::this_thread::sleep_for(25ms);
    ready = read_all(dir.file("ready.json"));
  }
  ASSERT_FALSE(ready.empty()) << read_all(dir.file("log"));
  auto at = ready.find("\"http\":\"") + 8;
  const std::string http = ready.substr(at, ready.find('"', at) - at);
  EXPECT_NE(healthz(http).find("bin-v1"), std::string::npos);

  std::ofstream(dir.file("m.json"), std::ios::trunc) << R"({"version":"bin-v2","bias":0,"weights":{}})";
  ::kill(pid, SIGHUP);
  bool reloaded = false;
  for (int i = 0; i < 200 && !reloaded; ++i) {
    std::this_thread::sleep_for(25ms);
    reloaded = healthz(http).find("bin-v2") != std::string::npos;
  }
  EXPECT_TRUE(reloaded) << read_all(dir.file("log"));
  ::kill(pid, SIGTERM);
  EXPECT_EQ(it::wait_process(pid, 10s), 0) << read_all(dir.file("log"));
}

}  // namespace
}  // namespace sluice::fraud_scorer
