// SIGTERM stops every long-running `sluice` process cleanly within a bound
// (the cluster processes are covered by tests/cluster/failover_test):
// run-local cancels its job and exits 0, and a restore from its latest
// checkpoint loses and repeats nothing; dev-kafka and dev-receiver close
// their servers (open connections included), remove their address files
// and exit 0.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/cluster/cluster_harness.h"
#include "tests/integration/support.h"

namespace sluice::it {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kWindowMs = 60'000;

/// A TCP connection to 127.0.0.1:`port` (-1 if refused).
int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// Whether the peer closed `fd` (read returns 0 or an error within 1 s).
bool closed_by_peer(int fd) {
  timeval tv{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[256];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) continue;  // whatever the server sent before closing
    return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
  }
}

int port_of(const std::string& host_port) { return std::stoi(host_port.substr(host_port.rfind(':') + 1)); }

struct Stopped {
  int code = -1;
  int64_t ms = -1;
};

/// SIGTERM (or `sig`) to `c`; its exit code and how long it took.
Stopped stop(Child& c, int sig = SIGTERM) {
  auto t0 = Clock::now();
  Stopped s;
  s.code = c.terminate(sig, 15s);
  s.ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  return s;
}

TEST(Shutdown, RunLocalOnSigtermCancelsExitsZeroAndItsLatestCheckpointRestoresEverything) {
  TempDir dir;
  const std::string input = dir.file("clicks.ndjson");
  std::vector<std::string> gen = {"gen", "--count", "30000", "--seed", "41", "--pages", "200", "--start-ts",
                                  "1700000000000", "--events-per-second", "100", "--out-of-order", "0",
                                  "--late", "0", "--malformed", "0", "--output", input};
  auto g = run_sluice(gen);
  ASSERT_EQ(g.exit_code, 0) << g.describe(gen);
  std::vector<Click> clicks;
  for (const auto& l : read_input(input))
    if (l.click) clicks.push_back(*l.click);
  const Counts want = reference_counts(clicks, kWindowMs);
  auto args = [&](bool restore) {
    std::vector<std::string> a = {sluice_binary(), "run-local", clickstream_library(), "-p", "2",
                                  "--checkpoint-dir", dir.file("chk"), "--checkpoint-interval", "300ms",
                                  "--arg", "source=" + dir.uri("clicks.ndjson") + "?rate=6000",
                                  "--arg", "sink=" + dir.uri("counts.ndjson"), "--arg", "dlq=" + dir.uri("dlq.ndjson")};
    if (restore) a.insert(a.end(), {"--restore", "latest"});
    return a;
  };
  {
    Child first(args(false), dir.file("first.log"));
    // Stopped mid-stream, once a checkpoint or two completed (~5 s of input).
    std::this_thread::sleep_for(2500ms);
    ASSERT_TRUE(first.running()) << first.log();
    Stopped s = stop(first);
    const std::string log = first.log();
    std::printf("run-local: SIGTERM -> exit %d in %lld ms\n", s.code, static_cast<long long>(s.ms));
    EXPECT_EQ(s.code, 0) << log;
    EXPECT_LT(s.ms, 10'000) << log;
    EXPECT_NE(log.find("SIGTERM: shutting down"), std::string::npos) << log;
    EXPECT_NE(log.find("cancelled on SIGTERM"), std::string::npos) << log;
  }
  const size_t rows_at_stop = read_page_counts(dir.file("counts.ndjson")).size();
  EXPECT_LT(rows_at_stop, want.size()) << "the stop was not mid-stream";
  Child second(args(true), dir.file("second.log"));
  ASSERT_TRUE(wait_until([&] { return !second.running(); }, 60s)) << second.log();
  const std::string log = second.log();
  EXPECT_NE(log.find("restoring from checkpoint"), std::string::npos) << log;
  const auto rows = read_page_counts(dir.file("counts.ndjson"));
  EXPECT_EQ(diff_counts(want, counts_of(rows)), "") << log;
  EXPECT_EQ(rows.size(), want.size());
}

TEST(Shutdown, RunLocalOnSigintStillSaysItWasInterrupted) {
  TempDir dir;
  std::vector<std::string> gen = {"gen", "--count", "20000", "--seed", "3", "--output", dir.file("clicks.ndjson")};
  ASSERT_EQ(run_sluice(gen).exit_code, 0);
  Child c({sluice_binary(), "run-local", clickstream_library(), "--arg",
           "source=" + dir.uri("clicks.ndjson") + "?rate=2000", "--arg", "sink=" + dir.uri("counts.ndjson")},
          dir.file("run.log"));
  std::this_thread::sleep_for(1500ms);
  ASSERT_TRUE(c.running()) << c.log();
  Stopped s = stop(c, SIGINT);
  EXPECT_EQ(s.code, 130) << c.log();
  EXPECT_LT(s.ms, 10'000) << c.log();
  EXPECT_NE(c.log().find("cancelled on SIGINT"), std::string::npos) << c.log();
}

TEST(Shutdown, DevKafkaOnSigtermClosesItsConnectionsRemovesItsFileAndExitsZero) {
  TempDir dir;
  const std::string file = dir.file("bootstrap");
  Child kafka({sluice_binary(), "dev-kafka", "--topic", "t:2", "--bootstrap-file", file}, dir.file("kafka.log"));
  ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(file); }, 20s)) << kafka.log();
  const int port = port_of(slurp(file));
  // A client mid-conversation: a produce through kcat, and an idle connection.
  auto k = run_command({"/bin/sh", "-c", "echo hello | /usr/bin/kcat -P -b " + slurp(file) + " -t t -p 0"}, 20s);
  EXPECT_EQ(k.exit_code, 0) << k.err;
  int idle = connect_to(port);
  ASSERT_GE(idle, 0);
  Stopped s = stop(kafka);
  std::printf("dev-kafka: SIGTERM -> exit %d in %lld ms\n", s.code, static_cast<long long>(s.ms));
  EXPECT_EQ(s.code, 0) << kafka.log();
  EXPECT_LT(s.ms, 5000) << kafka.log();
  EXPECT_TRUE(closed_by_peer(idle));
  ::close(idle);
  EXPECT_FALSE(std::filesystem::exists(file));
  EXPECT_LT(connect_to(port), 0) << "the broker still accepts connections";
  EXPECT_NE(kafka.log().find("dev-kafka: stopped"), std::string::npos) << kafka.log();
}

TEST(Shutdown, DevReceiverOnSigtermClosesItsConnectionsRemovesItsFileAndExitsZero) {
  TempDir dir;
  const std::string file = dir.file("address");
  Child receiver({sluice_binary(), "dev-receiver", "--bind", "127.0.0.1:0", "--address-file", file},
                 dir.file("receiver.log"));
  ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(file); }, 20s)) << receiver.log();
  const int port = port_of(slurp(file));
  auto r = run_command({"/usr/bin/curl", "-sf", "http://127.0.0.1:" + std::to_string(port) + "/stats"}, 10s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  int idle = connect_to(port);  // a client that never sends its request
  ASSERT_GE(idle, 0);
  Stopped s = stop(receiver);
  std::printf("dev-receiver: SIGTERM -> exit %d in %lld ms\n", s.code, static_cast<long long>(s.ms));
  EXPECT_EQ(s.code, 0) << receiver.log();
  // A connection that never sends its request holds a worker until the
  // server's read timeout (5 s; cpp-httplib cannot interrupt it sooner).
  EXPECT_LT(s.ms, 8000) << receiver.log();
  EXPECT_TRUE(closed_by_peer(idle));
  ::close(idle);
  EXPECT_FALSE(std::filesystem::exists(file));
  EXPECT_LT(connect_to(port), 0) << "the receiver still accepts connections";
  EXPECT_NE(receiver.log().find("dev-receiver: stopped"), std::string::npos) << receiver.log();
}

}  // namespace
}  // namespace sluice::it
