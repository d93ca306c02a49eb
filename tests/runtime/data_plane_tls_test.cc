// The data plane over mutual TLS (data_plane_tls_test also runs every test
// of data_plane_test.cc over TLS): what an observer on the wire sees, and
// who is refused — a peer whose certificate another CA signed, a consumer
// whose certificate is not for the address dialled, a plaintext client,
// and a plaintext plane and a TLS plane dialling each other (at once, not
// after handshake timeouts).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <sstream>
#include <thread>

#include "engine/common/logging.h"
#include "engine/runtime/data_plane.h"
#include "tests/harness/test_pki.h"
#include "tests/runtime/data_plane_buffers.h"

namespace sluice::runtime {
namespace {

using namespace std::chrono_literals;

constexpr auto kTimeout = 10s;
const std::string kSecret = "test-cluster-secret";
const std::string kRecordTag = "card-number-4929";  // what must never appear on the wire in clear

const harness::TestPki& cluster_pki() {
  static const harness::TestPki pki("", "cluster");
  return pki;
}
const harness::TestPki& rogue_pki() {
  static const harness::TestPki pki("", "rogue");
  return pki;
}

DataPlaneOptions options(const harness::TestPki* pki) {
  DataPlaneOptions o{kSecret, {}};
  if (pki) o.tls = {pki->cert, pki->key, pki->ca};
  return o;
}

std::unique_ptr<DataPlane> start(const harness::TestPki* pki, const std::string& host = "127.0.0.1") {
  if (pki) {
    EXPECT_TRUE(pki->ok) << pki->error;
  }
  auto r = DataPlane::start(host, 0, options(pki));
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? std::move(r).value() : nullptr;
}

Buffer records(int first, int n) { return test_buffers::records(kRecordTag, first, n); }
using test_buffers::end_of_partition;

int listen_on(const char* host, int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  ::inet_pton(AF_INET, host, &sa.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 4) != 0) return -1;
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  *port = ntohs(sa.sin_port);
  return fd;
}

int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// A TCP relay on loopback that records every byte it forwards, both ways
/// (what a capture on the wire would see). Serves connections one after
/// the other until destroyed.
class RecordingRelay {
 public:
  explicit RecordingRelay(int target_port) : target_(target_port) {
    listen_fd_ = listen_on("127.0.0.1", &port_);
    thread_ = std::thread([this] { run(); });
  }
  ~RecordingRelay() {
    stop_.store(true);
    ::shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    ::close(listen_fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string captured() {
    std::lock_guard lk(mu_);
    return bytes_;
  }

 private:
  void run() {
    while (!stop_.load()) {
      int in = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (in < 0) return;
      int out = connect_to(target_);
      if (out < 0) {
        ::close(in);
        continue;
      }
      std::thread back([&] { pump(out, in); });
      pump(in, out);
      back.join();
      ::close(in);
      ::close(out);
    }
  }
  void pump(int from, int to) {
    char buf[16384];
    ssize_t n;
    while ((n = ::recv(from, buf, sizeof buf, 0)) > 0) {
      {
        std::lock_guard lk(mu_);
        bytes_.append(buf, static_cast<size_t>(n));
      }
      if (::send(to, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) break;
    }
    ::shutdown(to, SHUT_WR);
    ::shutdown(from, SHUT_RD);
  }

  const int target_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::string bytes_;
};

/// Watches the process's log (engine/common/logging's ring of the latest
/// lines) for lines logged after it was made.
class LogWatch {
 public:
  explicit LogWatch(std::string what) : what_(std::move(what)) {
    static const bool ring = init_logging("info").is_ok();
    EXPECT_TRUE(ring);
    before_ = recent_log_lines(what_, kRecentLogLines).size();
  }
  /// True once a new line containing `what` was logged (within kTimeout).
  bool seen() const {
    auto deadline = std::chrono::steady_clock::now() + kTimeout;
    while (recent_log_lines(what_, kRecentLogLines).size() <= before_) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }

 private:
  std::string what_;
  size_t before_ = 0;
};

/// Pops a channel until its end of partition; the records' payloads.
std::vector<std::string> drain(Channel& ch, bool* ended) {
  std::vector<std::string> out;
  TaskSignal signal;
  ch.set_consumer_signal(&signal);
  auto deadline = std::chrono::steady_clock::now() + kTimeout;
  *ended = false;
  while (!*ended && std::chrono::steady_clock::now() < deadline && !ch.broken()) {
    Buffer b;
    if (!ch.try_pop(b)) {
      signal.wait_until(std::chrono::steady_clock::now() + 20ms);
      continue;
    }
    size_t pos = 0;
    frames::Frame f;
    while (pos < b.data.size() && frames::next(b.data, pos, f)) {
      if (f.kind == FrameKind::kRecord) out.emplace_back(f.payload);
      if (f.kind == FrameKind::kEndOfPartition) *ended = true;
    }
  }
  ch.set_consumer_signal(nullptr);
  return out;
}

/// Sends 20 buffers of 50 records through a relay; returns what crossed it.
std::string send_through_relay(const harness::TestPki* pki) {
  auto a = start(pki), b = start(pki);
  if (!a || !b) return "";
  RecordingRelay relay(b->port());
  ChannelKey key{3, 0, 1};
  auto out = a->outbound(relay.address(), "job-tls", 0, key, 4);
  auto in = b->inbound("job-tls", 0, key, 4);
  std::thread producer([&] {
    for (int i = 0; i < 20; ++i) EXPECT_TRUE(out->push(records(i * 50, 50), nullptr));
    out->push_unbounded(end_of_partition());
  });
  bool ended = false;
  auto got = drain(*in, &ended);
  producer.join();
  EXPECT_TRUE(ended) << in->failure();
  EXPECT_EQ(got.size(), 1000u);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], kRecordTag + ":" + std::to_string(i));
  return relay.captured();
}

TEST(DataPlaneTls, RecordsNeverCrossTheWireInClear) {
  // The same stream in plaintext first: the relay does see the records
  // (so the check below could fail).
  std::string plain = send_through_relay(nullptr);
  EXPECT_NE(plain.find(kRecordTag), std::string::npos) << "the relay records the plaintext stream";
  std::string tls = send_through_relay(&cluster_pki());
  EXPECT_GT(tls.size(), 1000u * kRecordTag.size()) << "the records went through the relay";
  EXPECT_EQ(tls.find(kRecordTag), std::string::npos) << "a record crossed the wire in clear";
  EXPECT_EQ(tls.find("job-tls"), std::string::npos) << "the hello crossed the wire in clear";
  EXPECT_EQ(tls.substr(0, 1), "\x16") << "the stream starts with a TLS handshake record";
}

TEST(DataPlaneTls, ProducerWithACertificateOfAnotherCaIsRefusedAndLogged) {
  LogWatch refused("refused connection from 127.0.0.1: PERMISSION_DENIED: TLS handshake with producer");
  auto consumer = start(&cluster_pki());
  auto rogue = start(&rogue_pki());  // knows the cluster secret, even: TLS refuses it first
  ASSERT_TRUE(consumer && rogue);
  ChannelKey key{1, 0, 0};
  auto out = rogue->outbound("127.0.0.1:" + std::to_string(consumer->port()), "job-tls", 0, key, 4);
  auto in = consumer->inbound("job-tls", 0, key, 4);
  (void)out->push(records(0, 5), nullptr);  // false once the channel failed
  auto deadline = std::chrono::steady_clock::now() + kTimeout;
  while (!out->broken() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(out->broken()) << "the rogue producer's channel fails instead of retrying";
  EXPECT_NE(out->failure().find("TLS"), std::string::npos) << out->failure();
  Buffer b;
  EXPECT_FALSE(in->try_pop(b)) << "nothing reached the consumer";
  EXPECT_FALSE(in->broken()) << "the consumer's channel waits for the real producer";
  // The consumer's side of the refusal (logged when its handshake ends,
  // maybe after the producer gave up).
  EXPECT_TRUE(refused.seen());
}

TEST(DataPlaneTls, ConsumerWithACertificateOfAnotherCaGetsNoData) {
  auto producer = start(&cluster_pki());
  auto rogue = start(&rogue_pki());
  ASSERT_TRUE(producer && rogue);
  ChannelKey key{1, 0, 0};
  auto in = rogue->inbound("job-tls", 0, key, 4);
  auto out = producer->outbound("127.0.0.1:" + std::to_string(rogue->port()), "job-tls", 0, key, 4);
  (void)out->push(records(0, 5), nullptr);  // false once the channel failed
  auto deadline = std::chrono::steady_clock::now() + kTimeout;
  while (!out->broken() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(out->broken());
  EXPECT_NE(out->failure().find("certificate verify failed"), std::string::npos) << out->failure();
  // The cluster's configuration is wrong: the job fails instead of restarting.
  Status st = out->failure_status("output channel");
  EXPECT_TRUE(is_permanent_error(st)) << st.to_string();
  EXPECT_NE(st.message().find("127.0.0.1:" + std::to_string(rogue->port())), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("same cluster CA (--tls-ca)"), std::string::npos) << "says what to fix: " << st.message();
  Buffer b;
  EXPECT_FALSE(in->try_pop(b));
}

TEST(DataPlaneTls, ConsumerCertificateMustBeForTheAddressDialled) {
  // 127.0.0.2 is loopback too, but the certificate names 127.0.0.1 only.
  auto consumer = start(&cluster_pki(), "127.0.0.2");
  auto producer = start(&cluster_pki());
  ASSERT_TRUE(consumer && producer);
  ChannelKey key{1, 0, 0};
  auto out = producer->outbound("127.0.0.2:" + std::to_string(consumer->port()), "job-tls", 0, key, 4);
  (void)out->push(records(0, 1), nullptr);  // false once the channel failed
  auto deadline = std::chrono::steady_clock::now() + kTimeout;
  while (!out->broken() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(out->broken());
  EXPECT_NE(out->failure().find("mismatch"), std::string::npos) << out->failure();
}

TEST(DataPlaneTls, PlaintextClientIsRefusedAndLogged) {
  LogWatch refused("TLS handshake with producer at 127.0.0.1 failed");
  auto plane = start(&cluster_pki());
  ASSERT_TRUE(plane);
  int fd = connect_to(plane->port());
  ASSERT_GE(fd, 0);
  // A plaintext producer's first message would be its hello; the plane
  // says nothing before a TLS handshake, so it sends no challenge in clear.
  std::string hello(1, '\x01');
  hello += std::string("\x20\x00\x00\x00", 4) + std::string(32, 'h');
  ASSERT_EQ(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL), static_cast<ssize_t>(hello.size()));
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string got;
  char buf[256];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, static_cast<size_t>(n));
  EXPECT_EQ(n, 0) << "the plane closes the connection";
  EXPECT_TRUE(got.empty() || got[0] == '\x15') << "at most a TLS alert, never a challenge";
  ::close(fd);
  EXPECT_TRUE(refused.seen()) << "the refusal is logged";
}

/// A producer plane and a consumer plane of which one runs TLS: the
/// producer's channel fails at once (no retries with 5 s handshake
/// timeouts), both ends log "TLS mismatch" with the fix, and both count it.
void expect_tls_mismatch_fails_at_once(const harness::TestPki* producer_pki, const harness::TestPki* consumer_pki,
                                       const std::string& consumer_log) {
  LogWatch producer_log("TLS mismatch: ");
  LogWatch consumer_said(consumer_log);
  const uint64_t producers_before = tls_mismatch_count("producer");
  const uint64_t consumers_before = tls_mismatch_count("consumer");
  auto consumer = start(consumer_pki);
  auto producer = start(producer_pki);
  ASSERT_TRUE(consumer && producer);
  ChannelKey key{1, 0, 0};
  auto in = consumer->inbound("job-tls", 0, key, 4);
  const auto started = std::chrono::steady_clock::now();
  auto out = producer->outbound("127.0.0.1:" + std::to_string(consumer->port()), "job-tls", 0, key, 4);
  (void)out->push(records(0, 5), nullptr);  // false once the channel failed
  auto deadline = started + kTimeout;
  while (!out->broken() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(2ms);
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(out->broken()) << "the producer's channel fails instead of retrying";
  // At once: well inside the 5 s handshake timeout the mismatch used to
  // wait out (and then retry, forever).
  EXPECT_LT(took, 3s) << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
  EXPECT_NE(out->failure().find("TLS mismatch: "), std::string::npos) << out->failure();
  EXPECT_NE(out->failure().find("same TLS settings"), std::string::npos) << "says what to fix: " << out->failure();
  Status st = out->failure_status("output channel");
  EXPECT_TRUE(is_permanent_error(st)) << "a configuration error fails the job, not a restart: " << st.to_string();
  EXPECT_NE(st.message().find("127.0.0.1:" + std::to_string(consumer->port())), std::string::npos)
      << "names the consumer's data-plane address: " << st.message();
  EXPECT_EQ(tls_mismatch_count("producer"), producers_before + 1);
  EXPECT_TRUE(producer_log.seen());
  EXPECT_TRUE(consumer_said.seen()) << "the consumer logs the refusal: " << consumer_log;
  deadline = std::chrono::steady_clock::now() + kTimeout;
  while (tls_mismatch_count("consumer") == consumers_before && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_EQ(tls_mismatch_count("consumer"), consumers_before + 1);
  Buffer b;
  EXPECT_FALSE(in->try_pop(b)) << "nothing reached the consumer";
  EXPECT_FALSE(in->broken()) << "the consumer's channel waits for a producer that can talk to it";
}

TEST(DataPlaneTls, PlaintextProducerDiallingATlsConsumerFailsAtOnceSayingWhy) {
  expect_tls_mismatch_fails_at_once(
      nullptr, &cluster_pki(),
      "refused connection from 127.0.0.1: PERMISSION_DENIED: TLS mismatch: the producer at 127.0.0.1 runs the data "
      "plane without TLS");
}

TEST(DataPlaneTls, TlsProducerDiallingAPlaintextConsumerFailsAtOnceSayingWhy) {
  expect_tls_mismatch_fails_at_once(
      &cluster_pki(), nullptr,
      "refused connection from 127.0.0.1: PERMISSION_DENIED: TLS mismatch: the producer at 127.0.0.1 speaks TLS");
}

TEST(DataPlaneTls, IncompleteTlsSettingsAreRefusedAtStart) {
  DataPlaneOptions o{kSecret, {cluster_pki().cert, cluster_pki().key, ""}};
  auto r = DataPlane::start("127.0.0.1", 0, o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("--tls-ca"), std::string::npos) << r.status().to_string();
  o.tls.ca = "/nonexistent/ca.pem";
  r = DataPlane::start("127.0.0.1", 0, o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("/nonexistent/ca.pem"), std::string::npos) << r.status().to_string();
}

}  // namespace
}  // namespace sluice::runtime
