// Leader election, fencing and leader retrieval against a real etcd.
#include "engine/ha/leader_election.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/ha/etcd_server.h"

namespace sluice::ha {
namespace {

using namespace std::chrono_literals;
using testing::EtcdServer;

bool eventually(const std::function<bool()>& f, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return f();
}

class LeaderElectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    etcd_ = EtcdServer::start(&error);
    ASSERT_TRUE(etcd_) << error;
    auto c = HaConfig::parse(etcd_->uri("t1"));
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    config_ = *c;
    config_.lease_ttl = 2000ms;
    config_.poll = 100ms;
  }

  /// A candidate that records what happens to it.
  struct Candidate {
    std::unique_ptr<LeaderElection> election;
    std::atomic<int64_t> elected_epoch{0};
    std::atomic<bool> lost{false};
  };
  std::unique_ptr<Candidate> candidate(const std::string& address) {
    auto c = std::make_unique<Candidate>();
    c->election = std::make_unique<LeaderElection>(config_, LeaderInfo{address, "", 0});
    auto* raw = c.get();
    c->election->start([raw](int64_t e) { raw->elected_epoch = e; }, [raw](const std::string&) { raw->lost = true; });
    return c;
  }

  std::unique_ptr<EtcdServer> etcd_;
  HaConfig config_;
};

TEST(HaConfig, ParsesEndpointsAndClusterAndRefusesTheRest) {
  auto c = HaConfig::parse("etcd://10.0.0.1:2379,10.0.0.2:2379/prod-eu_1");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->endpoints, (std::vector<std::string>{"http://10.0.0.1:2379", "http://10.0.0.2:2379"}));
  EXPECT_EQ(c->cluster, "prod-eu_1");
  EXPECT_EQ(c->leader_key(), "/sluice/prod-eu_1/leader");
  EXPECT_EQ(HaConfig::parse("etcd://127.0.0.1:2379")->cluster, "default");
  for (const char* bad : {"http://127.0.0.1:2379/x", "etcd://", "etcd://host/x", "etcd://h:p/x", "etcd://h:1/a/b",
                          "etcd://h:1,/x", "etcd://h:1/\"; rm"}) {
    EXPECT_FALSE(HaConfig::parse(bad).is_ok()) << bad;
  }
  EXPECT_FALSE(HaConfig::is_ha_uri("127.0.0.1:6123"));
}

TEST_F(LeaderElectionTest, OneCandidateLeadsAndTheNextLeaderHasAHigherEpoch) {
  auto a = candidate("127.0.0.1:1001");
  ASSERT_TRUE(eventually([&] { return a->elected_epoch > 0; }, 5s));
  auto b = candidate("127.0.0.1:1002");
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(b->elected_epoch.load(), 0) << "a leads: b stays a standby";
  EXPECT_TRUE(a->election->is_leader());
  EXPECT_FALSE(b->election->is_leader());

  auto seen = lookup_leader(config_);
  ASSERT_TRUE(seen.is_ok()) << seen.status().to_string();
  EXPECT_EQ(seen->address, "127.0.0.1:1001");
  EXPECT_EQ(seen->epoch, a->elected_epoch.load());

  // A clean shutdown revokes the lease: b takes over without waiting for the TTL.
  auto t0 = std::chrono::steady_clock::now();
  a->election->resign();
  ASSERT_TRUE(eventually([&] { return b->elected_epoch > 0; }, 5s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_GT(b->elected_epoch.load(), a->elected_epoch.load());
  EXPECT_FALSE(a->lost.load()) << "resigning is not losing";
  EXPECT_EQ(lookup_leader(config_)->address, "127.0.0.1:1002");
}

TEST_F(LeaderElectionTest, ALeaderWhoseLeaseIsGoneStopsAndItsFencedWritesFail) {
  auto a = candidate("127.0.0.1:1001");
  ASSERT_TRUE(eventually([&] { return a->elected_epoch > 0; }, 5s));
  ASSERT_TRUE(a->election->put_as_leader(config_.prefix() + "jobs/j/checkpoint", "{\"id\":7}").is_ok());
  auto b = candidate("127.0.0.1:1002");

  // Take a's lease away behind its back (as if etcd expired it while a was
  // paused): b is elected; a finds out at its next renewal and stops.
  EtcdClient etcd(config_.endpoints);
  auto kv = etcd.get(config_.leader_key());
  ASSERT_TRUE(kv.is_ok() && *kv);
  ASSERT_TRUE(etcd.revoke_lease((*kv)->lease).is_ok());
  ASSERT_TRUE(eventually([&] { return b->elected_epoch > 0; }, 5s));
  Status late = a->election->put_as_leader(config_.prefix() + "jobs/j/checkpoint", "{\"id\":8}");
  EXPECT_FALSE(late.is_ok()) << "a deposed leader's write is refused by etcd";
  ASSERT_TRUE(eventually([&] { return a->lost.load(); }, 3s)) << "a noticed it no longer leads";
  EXPECT_FALSE(a->election->is_leader());
  ASSERT_TRUE(b->election->put_as_leader(config_.prefix() + "jobs/j/checkpoint", "{\"id\":9}").is_ok());
  auto v = b->election->get(config_.prefix() + "jobs/j/checkpoint");
  ASSERT_TRUE(v.is_ok() && *v);
  EXPECT_EQ(**v, "{\"id\":9}");
}

TEST_F(LeaderElectionTest, ALeaderThatCannotReachEtcdStopsWithinTheLeaseTtl) {
  auto a = candidate("127.0.0.1:1001");
  ASSERT_TRUE(eventually([&] { return a->elected_epoch > 0; }, 5s));
  auto t0 = std::chrono::steady_clock::now();
  etcd_.reset();  // etcd gone (killed)
  ASSERT_TRUE(eventually([&] { return a->lost.load(); }, 5s));
  EXPECT_LE(std::chrono::steady_clock::now() - t0, config_.lease_ttl + 500ms)
      << "it stops acting before etcd could have elected another";
  EXPECT_FALSE(a->election->is_leader());
}

TEST_F(LeaderElectionTest, TheRetrieverFollowsWhoeverLeads) {
  LeaderRetriever r(config_);
  r.start();
  EXPECT_FALSE(r.wait_for_leader(300ms).has_value()) << "nobody leads yet";
  auto a = candidate("127.0.0.1:1001");
  auto first = r.wait_for_leader(5s);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->address, "127.0.0.1:1001");
  auto b = candidate("127.0.0.1:1002");
  a->election->resign();
  ASSERT_TRUE(eventually([&] { auto l = r.leader(); return l && l->address == "127.0.0.1:1002"; }, 5s));
  EXPECT_GT(r.leader()->epoch, first->epoch);
}

}  // namespace
}  // namespace sluice::ha
