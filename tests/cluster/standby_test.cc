// Standby jobmanagers on a real cluster: etcd started here on loopback, two
// jobmanagers campaigning for one cluster, three taskmanagers and the CLI
// following whichever leads. The leader is killed (SIGKILL) again and
// again mid-run, and once frozen (SIGSTOP) until deposed; the job resumes
// from its last checkpoint each time and its output equals the reference.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/ha/leader_election.h"
#include "tests/cluster/cluster_harness.h"
#include "tests/ha/etcd_server.h"

namespace sluice::it {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

/// Jobmanagers with --ha over one etcd and a shared --ha-dir, taskmanagers
/// and the CLI given etcd://… instead of an address.
class HaCluster {
 public:
  HaCluster(const TempDir& dir, std::string ha) : dir_(dir), ha_(std::move(ha)) {}

  void start_jobmanager(const std::string& name) {
    std::filesystem::create_directories(dir_.file(name));
    std::filesystem::remove(dir_.file(name + "/jobmanager.address"));
    jms_[name] = std::make_unique<Child>(
        std::vector<std::string>{sluice_binary(), "jobmanager", "--bind", "127.0.0.1:0", "--http-bind", "127.0.0.1:0",
                                 "--metrics-bind", "127.0.0.1:0", "--data-dir", dir_.file(name), "--ha", ha_,
                                 "--ha-dir", dir_.file("ha"), "--heartbeat-timeout", "2s", "--checkpoint-interval",
                                 "300ms"},
        dir_.file(name + ".log"));
    ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(dir_.file(name + "/jobmanager.address")); }, 20s))
        << slurp(dir_.file(name + ".log"));
  }
  Child& jobmanager(const std::string& name) { return *jms_.at(name); }
  /// What a supervisor (systemd, Kubernetes) does: a jobmanager that
  /// exited — a deposed leader exits with 75 — is started again, as a standby.
  int supervise() {
    int restarted = 0;
    for (auto& [name, jm] : jms_) {
      if (jm->running()) continue;
      std::string n = name;
      start_jobmanager(n);
      ++restarted;
    }
    return restarted;
  }
  std::string address_of(const std::string& name) { return slurp(dir_.file(name + "/jobmanager.address")); }

  void start_taskmanager(const std::string& id) {
    tms_[id] = std::make_unique<Child>(
        std::vector<std::string>{sluice_binary(), "taskmanager", "--jobmanager", ha_, "--slots", "2", "--id", id,
                                 "--work-dir", dir_.file("tm-" + id), "--token-file", token_file()},
        dir_.file(id + ".log"));
  }
  Child& taskmanager(const std::string& id) { return *tms_.at(id); }
  std::string token_file() const { return dir_.file("ha/token"); }

  CommandResult sluice(std::vector<std::string> args) {
    args.insert(args.end(), {"--jobmanager", ha_, "--token-file", token_file()});
    return run_sluice(args);
  }

  /// Which jobmanager leads: the one whose address the leader key in etcd
  /// holds and which serves its HTTP status (a standby answers 503); "" if
  /// none. Asks etcd first, so that a frozen jobmanager costs no timeout.
  std::string leader() {
    auto cfg = ha::HaConfig::parse(ha_);
    if (!cfg.is_ok()) return "";
    auto l = ha::lookup_leader(*cfg);
    if (!l.is_ok()) return "";
    for (auto& [name, jm] : jms_) {
      if (!jm->running() || address_of(name) != l->address) continue;
      auto h = run_command({"/usr/bin/curl", "-sf", "-m", "2", "http://" + slurp(dir_.file(name + "/http.address")) + "/jobs"}, 5s);
      return h.exit_code == 0 ? name : "";
    }
    return "";
  }

  struct View {
    std::string state;
    int64_t restarts = 0, last_checkpoint = 0;
  };
  View status(const std::string& job) {
    View v;
    auto r = sluice({"status", job, "-o", "json"});
    if (r.exit_code != 0) return v;
    simdjson::dom::parser p;
    simdjson::dom::element doc;
    if (p.parse(r.out).get(doc) != simdjson::SUCCESS) return v;
    std::string_view s;
    if (doc["job"]["state"].get(s) == simdjson::SUCCESS) v.state = std::string(s);
    if (doc["job"]["restarts"].get(v.restarts)) {
    }
    if (doc["checkpoints"]["last_completed_id"].get(v.last_checkpoint)) {
    }
    return v;
  }

  /// The last lines of every process's log.
  std::string logs() {
    auto tail = [](const std::string& log) { return log.size() > 6000 ? log.substr(log.size() - 6000) : log; };
    std::string out;
    for (auto& [n, jm] : jms_) out += "\n--- " + n + "\n" + tail(jm->log());
    for (auto& [id, tm] : tms_) out += "\n--- " + id + "\n" + tail(tm->log());
    return out;
  }

 private:
  const TempDir& dir_;
  std::string ha_;
  std::map<std::string, std::unique_ptr<Child>> jms_, tms_;
};

/// One job's life over two jobmanagers: the leader SIGKILLed `kills` times
/// (each takeover under 10 s), then frozen until deposed; the input
/// (`events` at 3000/s) outlasts the faults; output equal to the reference.
void leader_faults(int kills, int64_t events) {
  std::string error;
  auto etcd = ha::testing::EtcdServer::start(&error);
  ASSERT_TRUE(etcd) << error;
  TempDir dir;
  std::string input = dir.file("clicks.ndjson");
  auto g = run_sluice({"gen", "--count", std::to_string(events), "--seed", "41", "--events-per-second", "1000", "--pages", "20",
                       "--late", "0", "--output", input});
  ASSERT_EQ(g.exit_code, 0) << g.err;

  HaCluster c(dir, etcd->uri("standby-test"));
  c.start_jobmanager("jm1");
  ASSERT_TRUE(wait_until([&] { return c.leader() == "jm1" || std::filesystem::exists(c.token_file()); }, 20s));
  c.start_jobmanager("jm2");
  for (const char* id : {"tm-a", "tm-b", "tm-c"}) c.start_taskmanager(id);
  ASSERT_TRUE(wait_until([&] { return c.leader() == "jm1"; }, 20s)) << c.logs();

  std::vector<std::string> args = {"submit", clickstream_library(), "--parallelism", "2", "--arg",
                                   "source=file://" + input + "?rate=3000", "--arg", "sink=" + dir.uri("counts.ndjson"),
                                   "--arg", "dlq=" + dir.uri("dlq.ndjson"), "--arg", "window=1s"};
  CommandResult sub;
  ASSERT_TRUE(wait_until([&] { sub = c.sluice(args); return sub.exit_code == 0; }, 20s))
      << sub.describe(args) << c.logs();
  std::string job = sub.out.substr(0, sub.out.find('\n'));
  ASSERT_TRUE(wait_until([&] { auto v = c.status(job); return v.state == "RUNNING" && v.last_checkpoint >= 3; }, 30s))
      << c.logs();

  // Kill the leader; the killed one comes back as a standby.
  std::vector<std::pair<int64_t, int64_t>> takeovers;  // kill -> RUNNING, kill -> rows
  for (int k = 0; k < kills; ++k) {
    std::string leader = c.leader();
    ASSERT_FALSE(leader.empty()) << c.logs();
    std::string standby = leader == "jm1" ? "jm2" : "jm1";
    auto t0 = Clock::now();
    c.jobmanager(leader).kill(SIGKILL);
    // Rows count once the sink committed a checkpoint newer than the one
    // it had committed when the job was RUNNING again.
    int64_t running = -1, rows = -1, committed_at_running = 0;
    while (ms_since(t0) < 30'000 && rows < 0) {
      if (running < 0) {
        auto v = c.status(job);
        if (v.state == "RUNNING" && c.leader() == standby) {
          running = ms_since(t0);
          committed_at_running = commit_marker(dir.file("counts.ndjson")).first;
        }
      } else if (auto [cp, len] = commit_marker(dir.file("counts.ndjson")); cp > committed_at_running && len > 0) {
        rows = ms_since(t0);
      }
      std::this_thread::sleep_for(50ms);
    }
    takeovers.emplace_back(running, rows);
    ASSERT_GE(rows, 0) << "takeover " << k + 1 << ": no rows within 30 s" << c.logs();
    c.start_jobmanager(leader);  // back as a standby
    std::this_thread::sleep_for(1500ms);
  }
  std::printf("takeover  kill->RUNNING  kill->rows\n");
  for (size_t k = 0; k < takeovers.size(); ++k) {
    std::printf("%8zu  %10lld ms  %7lld ms\n", k + 1, static_cast<long long>(takeovers[k].first),
                static_cast<long long>(takeovers[k].second));
    EXPECT_LT(takeovers[k].second, 10'000) << "takeover " << k + 1;
  }

  // A frozen leader is deposed when its lease runs out; woken up, it finds
  // out, stops (exit 75) and the taskmanagers refuse whatever it still sends.
  std::string frozen = c.leader();
  ASSERT_FALSE(frozen.empty());
  std::string other = frozen == "jm1" ? "jm2" : "jm1";
  const auto t_freeze = Clock::now();
  ::kill(c.jobmanager(frozen).pid(), SIGSTOP);
  ASSERT_TRUE(wait_until([&] { return c.leader() == other && c.status(job).state == "RUNNING"; }, 20s)) << c.logs();
  const int64_t freeze_ms = ms_since(t_freeze);
  std::printf("frozen leader: SIGSTOP->RUNNING under the standby %lld ms (lease TTL 3 s)\n",
              static_cast<long long>(freeze_ms));
  EXPECT_LT(freeze_ms, 10'000);
  ::kill(c.jobmanager(frozen).pid(), SIGCONT);
  int code = c.jobmanager(frozen).terminate(0, 15s);  // signal 0: just wait for it to end
  EXPECT_EQ(code, 75) << "a deposed leader exits with EX_TEMPFAIL" << c.jobmanager(frozen).log();
  EXPECT_NE(c.jobmanager(frozen).log().find("lost the leadership"), std::string::npos);

  auto v = c.status(job);
  int supervised = 0;
  ASSERT_TRUE(wait_until(
      [&] {
        supervised += c.supervise();
        v = c.status(job);
        return v.state == "FINISHED" || v.state == "FAILED";
      },
      180s))
      << c.logs();
  std::printf("jobmanagers restarted by the supervisor after the frozen leader: %d\n", supervised);
  ASSERT_EQ(v.state, "FINISHED") << c.logs();
  EXPECT_GE(v.restarts, kills + 1);
  Counts got = counts_of(read_page_counts(dir.file("counts.ndjson")));  // a duplicate row fails here
  Counts want = expected_counts(input, 1000);
  EXPECT_EQ(diff_counts(want, got), "") << c.logs();
  std::string all = c.logs();
  std::printf("deposed-leader calls refused by taskmanagers: %s\n",
              all.find("from a deposed jobmanager") != std::string::npos ? "yes" : "none sent");
}

// CI: one kill and one freeze (~35 s).
TEST(Standby, KillingAndFreezingTheLeaderLeavesTheJobRunningWithExactlyOnceOutput) { leader_faults(1, 60'000); }

// slow (standby_slow_test): the leader killed five times, then frozen.
TEST(Standby, DISABLED_KillingTheLeaderRepeatedlyLeavesTheJobRunningWithExactlyOnceOutput) {
  leader_faults(5, 150'000);
}

}  // namespace
}  // namespace sluice::it
