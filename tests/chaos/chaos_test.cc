// The chaos suite: the clickstream job from Kafka (dev-kafka) into Postgres
// (exactly-once) on a jobmanager and four taskmanagers, each taskmanager in
// a network namespace of its own (chaos_net.h), while faults hit it one
// after the other: kill -9 and SIGSTOP of a taskmanager, a taskmanager cut
// off the network, partitions between taskmanagers and between a
// taskmanager and the jobmanager, a lossy slow link, a Postgres restart and
// a full checkpoint directory (a small tmpfs). Each recovery is timed from
// the fault (from its end for the full disk, when nothing can commit) to
// rows committed again in Postgres; every one must be under 5 s. At the end
// the table equals the reference computed from what the topic holds: none
// lost, none duplicated.
//
// CI runs kill -9 and a partition (chaos_test); chaos_slow_test runs every
// fault once, then five seeded rounds of them in random order.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <sys/mount.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "tests/chaos/chaos_net.h"
#include "tests/cluster/cluster_harness.h"
#include "tests/postgres/pg_server.h"

namespace sluice::it {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using chaos::ChaosNet;
using postgres::testing::PgServer;

constexpr int kTaskManagers = 4;
// Faults come every ~10 s here; the restart backoff resets after this much
// stable running (default 30 s) and each fault waits for it, so every
// recovery starts from the initial backoff as a fault in production would.
constexpr std::chrono::milliseconds kStable{3000};

/// hh:mm:ss.mmm, as the processes' logs stamp their lines.
std::string utc_now() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000));
  return buf;
}

int port_of(const std::string& host_port) { return std::stoi(host_port.substr(host_port.rfind(':') + 1)); }

/// A small tmpfs at `path`, unmounted when the object goes.
class Tmpfs {
 public:
  Tmpfs(const std::string& path, const std::string& size) : path_(path) {
    std::filesystem::create_directories(path);
    mounted_ = ::mount("tmpfs", path.c_str(), "tmpfs", 0, ("size=" + size + ",mode=0700").c_str()) == 0;
  }
  ~Tmpfs() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  /// Fills it up to the last byte (a file of what is free), or frees that file again.
  bool fill(bool on) {
    std::string filler = path_ + "/.filler";
    if (!on) return std::filesystem::remove(filler);
    auto r = run_command({"/usr/bin/fallocate", "-l", std::to_string(std::filesystem::space(path_).available), filler},
                         10s);
    // Top up what fallocate's rounding left.
    run_command({"/usr/bin/dd", "if=/dev/zero", "of=" + filler + "2", "bs=4k"}, 10s);
    return r.exit_code == 0 || std::filesystem::space(path_).available < 64 * 1024;
  }

 private:
  std::string path_;
  bool mounted_ = false;
};

struct Fault {
  std::string name;
  std::string what;          // what was done (e.g. the netem settings)
  std::string at;            // wall-clock time of the fault (UTC), to find it in the logs
  int64_t running_ms = -1;   // fault -> job RUNNING again (faults that restart it)
  int64_t recovery_ms = -1;  // fault (or its end) -> rows committed again
  int64_t restarts = 0;      // restarts it caused
};

/// Everything the suite runs, set up once per test.
class ChaosRun {
 public:
  explicit ChaosRun(const TempDir& dir) : dir_(dir), cluster_(dir) {}

  void start() {
    std::string error;
    pg_ = PgServer::start(&error);
    ASSERT_TRUE(pg_) << error;
    kafka_ = std::make_unique<Child>(std::vector<std::string>{sluice_binary(), "dev-kafka", "--topic", "clicks:4",
                                                              "--bootstrap-file", dir_.file("kafka.bootstrap")},
                                     dir_.file("kafka.log"));
    ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(dir_.file("kafka.bootstrap")); }, 20s));
    bootstrap_ = slurp(dir_.file("kafka.bootstrap"));
    net_ = ChaosNet::create(kTaskManagers, {port_of(bootstrap_), pg_->port()}, &error);
    ASSERT_TRUE(net_) << error;
    // Postgres trusts the superuser from the namespaces' subnet too.
    {
      std::ofstream hba(pg_->dir() + "/data/pg_hba.conf", std::ios::app);
      hba << "host all postgres " << net_->subnet() << " trust\n";
    }
    pg_->sql("SELECT pg_reload_conf()", "postgres");
    checkpoints_ = std::make_unique<Tmpfs>(dir_.file("chk"), "48m");
    ASSERT_TRUE(checkpoints_->mounted()) << "cannot mount a tmpfs for the checkpoints";
    cluster_.start_jobmanager(net_->host_ip() + ":0",
                              {"--checkpoint-dir", dir_.file("chk"), "--checkpoint-interval", "500ms",
                               "--restart-failure-rate", failure_rate,
                               "--restart-backoff-reset", format_duration(kStable)});
    for (int i = 0; i < kTaskManagers; ++i) start_taskmanager(i);
    ASSERT_TRUE(cluster_.wait_for_taskmanagers(kTaskManagers)) << cluster_.logs();
  }

  void start_taskmanager(int i) {
    std::string id = "tm-" + std::to_string(i);
    std::vector<std::string> argv = net_->exec_in(i);
    argv.insert(argv.end(), {sluice_binary(), "taskmanager", "--jobmanager", cluster_.address(), "--bind",
                             net_->ip(i) + ":0", "--slots", "2", "--id", id, "--work-dir", dir_.file("tm-" + id),
                             "--token-file", cluster_.token_file()});
    tms_[i] = std::make_unique<Child>(argv, dir_.file(id + ".log"));
  }

  void submit() {
    std::string sink = "postgres://postgres@127.0.0.1:" + std::to_string(pg_->port()) +
                       "/sluice?table=chaos_counts&mode=append&create_table=true";
    std::vector<std::string> args = {"submit", clickstream_library(), "--parallelism", "3",
                                     "--arg", "source=kafka://" + bootstrap_ + "/clicks",
                                     "--arg", "sink=" + sink, "--arg", "dlq=" + dir_.uri("dlq.ndjson"),
                                     "--arg", "window=1s"};
    auto r = cluster_.sluice(args);
    ASSERT_EQ(r.exit_code, 0) << r.describe(args) << cluster_.logs();
    job_ = r.out.substr(0, r.out.find('\n'));
    JobView v = cluster_.wait_for_checkpoints(job_, 2);
    ASSERT_EQ(v.state, "RUNNING") << v.raw << cluster_.logs();
  }

  /// Paced clicks into the topic in the background, event time = now,
  /// until verify() stops it (the faults take as long as they take).
  void produce(int rate) {
    // The reference is read while the clicks arrive: the dev broker keeps
    // only the last 5 MiB of each partition (connectors/kafka/README.md), a
    // fraction of a long run's clicks. -u: each line reaches the file at once.
    for (int p = 0; p < 4; ++p) {
      readers_.push_back(std::make_unique<Child>(
          std::vector<std::string>{"/usr/bin/kcat", "-C", "-u", "-b", bootstrap_, "-t", "clicks", "-p", std::to_string(p),
                                   "-o", "beginning", "-q", "-f", "%s\n"},
          dir_.file("topic-" + std::to_string(p) + ".ndjson")));
    }
    producer_ = std::make_unique<Child>(
        std::vector<std::string>{sluice_binary(), "gen", "--kafka", bootstrap_, "--topic", "clicks", "--rate",
                                 std::to_string(rate), "--unbounded", "--seed", "5", "--pages", "20", "--late", "0",
                                 "--malformed", "0.002"},
        dir_.file("producer.log"));
  }

  int64_t rows() {
    auto c = pg_->connect("sluice");
    if (!c) return -1;
    auto r = c->query("SELECT count(*) FROM chaos_counts");
    if (!r.is_ok() || r->rows.empty() || !r->rows[0][0]) return -1;
    return std::stoll(*r->rows[0][0]);
  }

  struct Job {
    std::string state;
    int64_t restarts = 0;
    std::set<int> taskmanagers;  // namespace indexes running the job
  };
  Job job() {
    Job j;
    auto v = cluster_.status(job_);
    // A status call that failed (a loaded machine) is asked again: its
    // zero restarts would read as restarts undone.
    for (int i = 0; i < 20 && v.state.empty(); ++i) {
      std::this_thread::sleep_for(50ms);
      v = cluster_.status(job_);
    }
    j.state = v.state;
    j.restarts = v.restarts;
    for (const auto& tm : v.taskmanagers) j.taskmanagers.insert(std::stoi(tm.substr(3)));
    return j;
  }

  /// A taskmanager that runs part of the job (the k-th, round robin).
  int busy_taskmanager(int k) {
    Job j = job();
    std::vector<int> busy(j.taskmanagers.begin(), j.taskmanagers.end());
    return busy.empty() ? 0 : busy[k % busy.size()];
  }

  /// The control port of taskmanager i (the jobmanager's view).
  int control_port(int i) {
    auto r = cluster_.http_get("/taskmanagers");
    simdjson::dom::parser p;
    simdjson::dom::element doc;
    if (r.exit_code != 0 || p.parse(r.out).get(doc) != simdjson::SUCCESS) return -1;
    for (auto tm : doc.get_array()) {
      std::string_view id, control;
      if (tm["id"].get(id) == simdjson::SUCCESS && id == "tm-" + std::to_string(i) &&
          tm["control_address"].get(control) == simdjson::SUCCESS) {
        return port_of(std::string(control));
      }
    }
    return -1;
  }

  /// Waits until rows are being committed (healthy) before the next fault.
  void wait_healthy() {
    int64_t before = rows();
    ASSERT_TRUE(wait_until([&] { return job().state == "RUNNING" && rows() > before; }, 30s))
        << "the job is not committing rows before the next fault" << cluster_.logs();
  }

  /// Injects a fault and times the recovery: `inject` at t0, `heal` after
  /// `hold` (0: none), rows counted from t0 — or from the heal when
  /// `from_heal`. `restart` says whether the fault is expected to restart
  /// the job: then rows count once it is RUNNING again.
  Fault run_fault(const std::string& name, const std::function<std::string()>& inject,
                  const std::function<void()>& heal, std::chrono::milliseconds hold, bool restart,
                  bool from_heal = false) {
    wait_healthy();
    Fault f;
    f.name = name;
    Job before = job();
    f.at = utc_now();
    auto t0 = Clock::now();
    f.what = inject();
    bool healed = !heal;
    auto t_from = t0;
    int64_t baseline = from_heal ? -1 : (restart ? -1 : rows());
    while (ms_since(t0) < 60'000) {
      if (!healed && ms_since(t0) >= hold.count()) {
        heal();
        healed = true;
        if (from_heal) {
          t_from = Clock::now();
          baseline = rows();
        }
      }
      if (baseline < 0 && !from_heal) {
        Job j = job();
        if (j.state == "RUNNING" && j.restarts > before.restarts) {
          f.running_ms = ms_since(t0);
          baseline = rows();
        }
      } else if (baseline >= 0 && rows() > baseline && (healed || !from_heal)) {
        f.recovery_ms = ms_since(t_from);
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
    if (!healed) heal();
    f.restarts = job().restarts - before.restarts;
    std::this_thread::sleep_for(kStable + 500ms);
    return f;
  }

  /// The faults, once each, in `order` (indexes into the list), k-th round.
  std::vector<Fault> faults(const std::vector<int>& order, int round) {
    std::vector<Fault> out;
    for (int which : order) {
      int victim = busy_taskmanager(round + which);
      int other = -1;
      for (int i : job().taskmanagers) if (i != victim) other = i;
      if (other < 0) other = (victim + 1) % kTaskManagers;
      const std::string v = "tm-" + std::to_string(victim);
      switch (which) {
        case 0:
          out.push_back(run_fault("kill -9 " + v, [&] { tms_[victim]->kill(SIGKILL); return std::string("SIGKILL"); },
                                  nullptr, 0ms, true));
          start_taskmanager(victim);
          break;
        case 1:
          out.push_back(run_fault("SIGSTOP " + v + " for 3 s",
                                  [&] { ::kill(tms_[victim]->pid(), SIGSTOP); return std::string("SIGSTOP"); },
                                  [&] { ::kill(tms_[victim]->pid(), SIGCONT); }, 3000ms, true));
          break;
        case 2:
          out.push_back(run_fault("isolate " + v + " for 3 s",
                                  [&] { return net_->isolate(victim, true) ? "link down" : "FAILED"; },
                                  [&] { net_->isolate(victim, false); }, 3000ms, true));
          break;
        case 3:
          out.push_back(run_fault("partition " + v + " | tm-" + std::to_string(other) + " for 5 s",
                                  [&] { return net_->partition(victim, other, true) ? "iptables DROP both ways" : "FAILED"; },
                                  [&] { net_->partition(victim, other, false); }, 5000ms, true));
          break;
        case 4: {
          int jm = port_of(cluster_.address()), ctl = control_port(victim);
          out.push_back(run_fault("partition " + v + " | jobmanager for 4 s",
                                  [&] { return net_->partition_from_jobmanager(victim, jm, ctl, true) ? "iptables DROP of the control plane" : "FAILED"; },
                                  [&] { net_->partition_from_jobmanager(victim, jm, ctl, false); }, 4000ms, true));
          break;
        }
        case 5:
          out.push_back(run_fault("degraded link of " + v + " for 4 s", [&] { return net_->degrade(victim, true); },
                                  [&] { net_->degrade(victim, false); }, 4000ms, false));
          break;
        case 6:
          out.push_back(run_fault("Postgres restart (down 1 s)",
                                  [&] { return pg_->stop() ? "pg_ctl stop -m fast" : "FAILED"; },
                                  [&] { pg_->start_again(); }, 1000ms, false, true));
          break;
        case 7:
          out.push_back(run_fault("checkpoint directory full for 3 s",
                                  [&] { return checkpoints_->fill(true) ? "tmpfs filled" : "FAILED"; },
                                  [&] { checkpoints_->fill(false); }, 3000ms, false, true));
          break;
        case 8:
          // A live process stalled as a loaded machine may stall it: no failover.
          out.push_back(run_fault("SIGSTOP " + v + " for 1 s (a stall)",
                                  [&] { ::kill(tms_[victim]->pid(), SIGSTOP); return std::string("SIGSTOP"); },
                                  [&] { ::kill(tms_[victim]->pid(), SIGCONT); }, 1000ms, false));
          EXPECT_EQ(out.back().restarts, 0) << "a taskmanager stalled for 1 s was failed over";
          break;
      }
      EXPECT_EQ(out.back().what.find("FAILED"), std::string::npos) << out.back().name;
      if (out.back().recovery_ms < 0) ADD_FAILURE() << out.back().name << ": no rows within 60 s" << cluster_.logs();
      if (out.back().recovery_ms < 0) break;
    }
    return out;
  }

  /// Stops producing, moves event time past every window (flush events to
  /// every partition), and compares the table with the topic's contents.
  void verify() {
    ASSERT_TRUE(producer_->running()) << "the producer ended early: " << producer_->log();
    producer_->kill(SIGTERM);  // what reached the topic is the input
    // On a window boundary: no window holds both clicks and flush events.
    const int64_t flush_start = (wall_clock_ms() + 5000) / 1000 * 1000;
    std::string flush = dir_.file("flush.ndjson");
    auto g = run_sluice({"gen", "--count", "500", "--seed", "3", "--pages", "20", "--start-ts",
                         std::to_string(flush_start), "--events-per-second", "100", "--out-of-order", "0", "--late",
                         "0", "--malformed", "0", "--output", flush});
    ASSERT_EQ(g.exit_code, 0) << g.err;
    for (int p = 0; p < 4; ++p) {
      auto k = run_command({"/bin/sh", "-c", "/usr/bin/kcat -P -b " + bootstrap_ + " -t clicks -p " +
                                                 std::to_string(p) + " < " + flush},
                           30s);
      ASSERT_EQ(k.exit_code, 0) << k.err;
    }
    // The reference: every click the readers took from the topic before
    // the flush events, which were written last to every partition: all
    // 4 x 500 read = every partition read to its end.
    std::vector<Click> clicks;
    auto flushes_read = [&](int p) {
      int64_t n = 0;
      for (const auto& l : read_input(dir_.file("topic-" + std::to_string(p) + ".ndjson")))
        if (l.click && l.click->ts >= flush_start) ++n;
      return n;
    };
    for (int p = 0; p < 4; ++p) {
      ASSERT_TRUE(wait_until([&] { return flushes_read(p) >= 500; }, 120s))
          << "partition " << p << ": its reader did not reach the end (" << flushes_read(p) << " of 500 flush events)";
      ASSERT_EQ(flushes_read(p), 500) << "partition " << p;
    }
    for (auto& r : readers_) r->kill(SIGTERM);
    for (int p = 0; p < 4; ++p) {  // malformed lines are the job's dead letters
      for (const auto& l : read_input(dir_.file("topic-" + std::to_string(p) + ".ndjson")))
        if (l.click && l.click->ts < flush_start) clicks.push_back(*l.click);
    }
    Counts want = reference_counts(clicks, 1000);
    Counts got;
    size_t dups = 0;
    ASSERT_TRUE(wait_until(
        [&] {
          got.clear();
          dups = 0;
          auto c = pg_->connect("sluice");
          if (!c) return false;
          auto r = c->query("SELECT window_start, page_url, count FROM chaos_counts WHERE window_start < " +
                           std::to_string(flush_start));
          if (!r.is_ok()) return false;
          for (const auto& row : r->rows) {
            if (!got.emplace(WindowPage{std::stoll(*row[0]), *row[1]}, std::stoll(*row[2])).second) ++dups;
          }
          return got.size() >= want.size();
        },
        90s))
        << "the table did not catch up: " << got.size() << " of " << want.size() << " rows" << cluster_.logs();
    EXPECT_EQ(dups, 0u) << "duplicate rows";
    EXPECT_EQ(diff_counts(want, got), "") << cluster_.logs();
    std::printf("%zu clicks, %zu (window, page) rows, equal to the reference\n", clicks.size(), want.size());
  }

  std::string failure_rate = "30/5m";
  Cluster& cluster() { return cluster_; }
  ChaosNet& net() { return *net_; }

 private:
  const TempDir& dir_;
  Cluster cluster_;
  std::unique_ptr<PgServer> pg_;
  std::unique_ptr<Child> kafka_, producer_;
  std::vector<std::unique_ptr<Child>> readers_;  // kcat per partition: the reference
  std::unique_ptr<ChaosNet> net_;
  std::unique_ptr<Tmpfs> checkpoints_;
  std::map<int, std::unique_ptr<Child>> tms_;
  std::string bootstrap_, job_;
};

void print_faults(const std::vector<Fault>& faults) {
  std::printf("%-13s %-40s %-40s %10s %9s %8s\n", "at (UTC)", "fault", "how", "->RUNNING", "->rows", "restarts");
  for (const auto& f : faults) {
    std::string running = f.running_ms < 0 ? "-" : std::to_string(f.running_ms) + " ms";
    std::printf("%-13s %-40s %-40s %10s %6lld ms %8lld\n", f.at.c_str(), f.name.c_str(), f.what.substr(0, 40).c_str(),
                running.c_str(), static_cast<long long>(f.recovery_ms), static_cast<long long>(f.restarts));
  }
  std::fflush(stdout);
}

bool chaos_possible(std::string* why) {
  if (::geteuid() != 0) {
    *why = "not root";
    return false;
  }
  for (const char* tool : {"/usr/sbin/ip", "/usr/sbin/iptables", "/usr/sbin/tc", "/usr/bin/kcat"}) {
    if (::access(tool, X_OK) != 0) {
      *why = std::string(tool) + " is missing (deploy/install-deps.sh)";
      return false;
    }
  }
  auto probe = run_command({"/usr/sbin/ip", "netns", "add", "sluice-chaos-probe-" + std::to_string(::getpid())}, 10s);
  if (probe.exit_code != 0) {
    *why = "cannot create network namespaces here: " + probe.err;
    return false;
  }
  run_command({"/usr/sbin/ip", "netns", "del", "sluice-chaos-probe-" + std::to_string(::getpid())}, 10s);
  return true;
}

/// The faults `order` once each while clicks are produced at 1500/s.
void faults_once(const std::vector<int>& order) {
  std::string why;
  if (!chaos_possible(&why)) GTEST_SKIP() << why;
  TempDir dir;
  ChaosRun run(dir);
  run.start();
  if (::testing::Test::HasFatalFailure()) return;
  run.submit();
  if (::testing::Test::HasFatalFailure()) return;
  run.produce(1500);
  auto faults = run.faults(order, 0);
  print_faults(faults);
  for (const auto& f : faults) EXPECT_LT(f.recovery_ms, 5000) << f.name;
  run.verify();
}

// CI: kill -9 and a partition between two taskmanagers' namespaces (~45 s).
TEST(Chaos, KillAndPartitionKafkaToPostgresExactlyOnceEachRecoveryUnderFiveSeconds) {
  faults_once({0, 3});
}

// CI: a taskmanager frozen (SIGSTOP 3 s), one cut off from the jobmanager
// (4 s), twice each, with the default heartbeat timeout: detected and
// worked around in under 5 s without the frozen or cut-off process's help;
// and one stalled for 1 s, which is not failed over.
TEST(Chaos, FrozenAndCutOffTaskManagersRecoverUnderFiveSecondsAStallIsNoFailure) {
  faults_once({1, 4, 8, 1, 4});
}

// slow (chaos_slow_test): every fault once, in order (~2.5 min).
TEST(Chaos, DISABLED_EveryFaultOnceKafkaToPostgresExactlyOnceEachRecoveryUnderFiveSeconds) {
  faults_once({0, 1, 2, 3, 4, 5, 6, 7, 8});  // ~80 s of clicks
}

TEST(Chaos, DISABLED_FiveRandomRoundsOfEveryFault) {
  std::string why;
  if (!chaos_possible(&why)) GTEST_SKIP() << why;
  TempDir dir;
  ChaosRun run(dir);
  // 40 faults within ~6 minutes, some costing two restarts: above the
  // default failure rate (30 in 5 min) by design of the test, not of use.
  run.failure_rate = "100/5m";
  run.start();
  if (::testing::Test::HasFatalFailure()) return;
  run.submit();
  if (::testing::Test::HasFatalFailure()) return;
  run.produce(1500);
  const uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  std::vector<Fault> all;
  for (int round = 0; round < 5; ++round) {
    std::vector<int> order = {0, 1, 2, 3, 4, 5, 6, 7, 8};
    std::shuffle(order.begin(), order.end(), rng);
    auto f = run.faults(order, round);
    all.insert(all.end(), f.begin(), f.end());
    if (::testing::Test::HasFailure()) break;
  }
  print_faults(all);
  for (const auto& f : all) EXPECT_LT(f.recovery_ms, 5000) << f.name;
  run.verify();
}

}  // namespace
}  // namespace sluice::it
