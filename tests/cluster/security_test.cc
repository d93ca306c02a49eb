// The cluster's doors, probed as an attacker on the same host would: a
// running job over two taskmanagers, then every probe of issue 17 against
// the real processes — control-plane RPCs both ways without or with a wrong
// secret, a re-registration of a live taskmanager id, a path as artifact
// id, made-up and stale data-plane hellos, oversized frame headers, a slow
// HTTP client. Each must be refused (and logged), memory must stay bounded
// and the job undisturbed: still RUNNING, no restart.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <iostream>

#include "engine/common/auth.h"
#include "engine/proto/control.grpc.pb.h"
#include "engine/proto/rpc_auth.h"
#include "engine/runtime/data_plane.h"
#include "tests/cluster/cluster_harness.h"

namespace sluice::it {
namespace {

using namespace std::chrono_literals;

struct TmInfo {
  std::string id, control, data;
};

std::vector<TmInfo> taskmanagers_of(Cluster& c) {
  std::vector<TmInfo> out;
  auto r = c.http_get("/taskmanagers");
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  if (p.parse(r.out).get(doc) != simdjson::SUCCESS) return out;
  for (auto t : doc.get_array()) {
    std::string_view id, control, data;
    if (t["id"].get(id) || t["control_address"].get(control) || t["data_address"].get(data)) continue;
    out.push_back({std::string(id), std::string(control), std::string(data)});
  }
  return out;
}

int64_t rss_kb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  return -1;
}

/// A TCP connection to a loopback port (blocking, with a receive timeout).
class Conn {
 public:
  explicit Conn(const std::string& address) {
    auto colon = address.rfind(':');
    int port = std::stoi(address.substr(colon + 1));
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    timeval tv{8, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Conn() { ::close(fd_); }
  bool connected() const { return connected_; }
  bool send(std::string_view b) { return ::send(fd_, b.data(), b.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(b.size()); }
  /// One data-plane message: type and payload; type -1 at EOF, -2 on a timeout.
  std::pair<int, std::string> read_message() {
    char head[5];
    if (!read_exact(head, 5)) return {eof_ ? -1 : -2, ""};
    uint32_t len = 0;
    std::memcpy(&len, head + 1, 4);
    if (len > 1 << 20) return {-3, ""};
    std::string p(len, '\0');
    if (len && !read_exact(p.data(), len)) return {eof_ ? -1 : -2, ""};
    return {static_cast<uint8_t>(head[0]), p};
  }
  /// True if the peer closed the connection (within the receive timeout).
  bool closed_by_peer() {
    char b[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, b, sizeof b, 0);
      if (n == 0) return true;
      if (n < 0) return false;
    }
  }

 private:
  bool read_exact(char* p, size_t n) {
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::recv(fd_, p + got, n - got, 0);
      if (r == 0) eof_ = true;
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  }
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
};

std::string message(uint8_t type, std::string_view payload) {
  std::string m(1, static_cast<char>(type));
  uint32_t len = static_cast<uint32_t>(payload.size());
  m.append(reinterpret_cast<const char*>(&len), 4);
  m += payload;
  return m;
}

/// The whole suite shares one cluster and one job (starting them is the
/// slow part); every test ends by checking that the job did not notice.
class Security : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    cluster_ = new Cluster(*dir_);
    auto r = run_sluice({"gen", "--count", "200000", "--seed", "3", "--output", dir_->file("clicks.ndjson")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    cluster_->start_jobmanager();
    cluster_->start_taskmanager("tm-a", 1);  // one slot each: the job's channels cross the data plane
    cluster_->start_taskmanager("tm-b", 1);
    ASSERT_TRUE(cluster_->wait_for_taskmanagers(2)) << cluster_->logs();
    // ~400 s of input at 500 lines/s: running for the whole suite.
    job_ = new std::string(
        submit_clickstream(*cluster_, *dir_, "file://" + dir_->file("clicks.ndjson") + "?rate=500", 2));
    JobView v = cluster_->wait_for_checkpoints(*job_, 2);
    ASSERT_EQ(v.state, "RUNNING") << v.raw << cluster_->logs();
    secret_ = new std::string(slurp(cluster_->token_file()));
  }
  static void TearDownTestSuite() {
    delete cluster_;
    delete dir_;
    delete job_;
    delete secret_;
  }

  void SetUp() override {
    if (!cluster_ || !job_ || job_->empty()) GTEST_SKIP() << "no cluster";
    before_ = cluster_->status(*job_);
    ASSERT_EQ(before_.state, "RUNNING") << before_.raw;
  }
  /// The job is as it was: RUNNING, with no restart, and still checkpointing.
  void expect_undisturbed() {
    std::this_thread::sleep_for(1500ms);  // a restart or state change would show by now
    JobView now = cluster_->wait_for_checkpoints(*job_, before_.completed_checkpoints + 1, 20s);
    EXPECT_EQ(now.state, "RUNNING") << now.raw;
    EXPECT_EQ(now.restarts, 0) << now.raw;
    EXPECT_GT(now.completed_checkpoints, before_.completed_checkpoints) << "checkpoints go on: " << now.raw;
  }

  static std::shared_ptr<grpc::Channel> channel(const std::string& address) {
    return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  }

 public:
  /// Three ways to call without the secret: no credentials, signed with a
  /// wrong secret, and a made-up signature.
  enum class Creds { kNone, kWrongSecret, kGarbage };

 protected:
  static void apply(grpc::ClientContext& ctx, Creds c, const char* method) {
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    static auth::CallAuthenticator wrong("not-the-cluster-secret");
    if (c == Creds::kWrongSecret) rpc::sign(ctx, wrong, method);
    if (c == Creds::kGarbage) ctx.AddMetadata(auth::kMetadataKey, "v1:1:aaaaaaaaaaaaaaaaaaaa:deadbeef");
  }

  static TempDir* dir_;
  static Cluster* cluster_;
  static std::string* job_;
  static std::string* secret_;
  JobView before_;
};
TempDir* Security::dir_ = nullptr;
Cluster* Security::cluster_ = nullptr;
std::string* Security::job_ = nullptr;
std::string* Security::secret_ = nullptr;

const Security::Creds kAllBad[] = {Security::Creds::kNone, Security::Creds::kWrongSecret, Security::Creds::kGarbage};

TEST_F(Security, TaskManagerRpcsWithoutTheSecretAreRefused) {
  for (const auto& tm : taskmanagers_of(*cluster_)) {
    auto stub = proto::TaskManager::NewStub(channel(tm.control));
    for (Creds c : kAllBad) {
      proto::Empty e;
      {
        grpc::ClientContext ctx;
        apply(ctx, c, "TaskManager/CancelTasks");
        proto::CancelTasksRequest r;
        r.set_job_id(*job_);
        r.set_attempt(-1);
        EXPECT_EQ(stub->CancelTasks(&ctx, r, &e).error_code(), grpc::StatusCode::UNAUTHENTICATED) << tm.id;
      }
      {
        grpc::ClientContext ctx;
        apply(ctx, c, "TaskManager/TriggerCheckpoint");
        proto::TriggerCheckpointRequest r;
        r.set_job_id(*job_);
        r.set_checkpoint_id(1'000'000);
        EXPECT_EQ(stub->TriggerCheckpoint(&ctx, r, &e).error_code(), grpc::StatusCode::UNAUTHENTICATED);
      }
      {
        grpc::ClientContext ctx;
        apply(ctx, c, "TaskManager/NotifyCheckpoint");
        proto::NotifyCheckpointRequest r;
        r.set_job_id(*job_);
        r.set_checkpoint_id(1'000'000);
        EXPECT_EQ(stub->NotifyCheckpoint(&ctx, r, &e).error_code(), grpc::StatusCode::UNAUTHENTICATED);
      }
    }
  }
  EXPECT_NE(cluster_->logs().find("refused TaskManager/CancelTasks"), std::string::npos) << "refusals are logged";
  expect_undisturbed();
}

TEST_F(Security, ForgedTaskStatesAndCheckpointMessagesAreRefused) {
  auto jm = proto::JobManager::NewStub(channel(cluster_->address()));
  for (Creds c : kAllBad) {
    for (const char* state : {"FINISHED", "FAILED"}) {
      for (int vertex = 0; vertex < 4; ++vertex) {
        for (int subtask = 0; subtask < 2; ++subtask) {
          for (int attempt = 0; attempt < 3; ++attempt) {
            grpc::ClientContext ctx;
            apply(ctx, c, "JobManager/ReportTaskState");
            proto::TaskStateReport r;
            r.set_taskmanager_id(subtask ? "tm-b" : "tm-a");
            r.mutable_task()->set_job_id(*job_);
            r.mutable_task()->set_vertex(vertex);
            r.mutable_task()->set_subtask(subtask);
            r.mutable_task()->set_attempt(attempt);
            r.set_state(state);
            proto::Empty e;
            ASSERT_EQ(jm->ReportTaskState(&ctx, r, &e).error_code(), grpc::StatusCode::UNAUTHENTICATED);
          }
        }
      }
    }
    proto::Empty e;
    grpc::ClientContext a, d, eoi;
    apply(a, c, "JobManager/AcknowledgeCheckpoint");
    apply(d, c, "JobManager/DeclineCheckpoint");
    apply(eoi, c, "JobManager/ReportEndOfInput");
    proto::CheckpointAck ack;
    ack.mutable_task()->set_job_id(*job_);
    ack.set_checkpoint_id(1);
    EXPECT_EQ(jm->AcknowledgeCheckpoint(&a, ack, &e).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    proto::CheckpointDecline dec;
    dec.mutable_task()->set_job_id(*job_);
    EXPECT_EQ(jm->DeclineCheckpoint(&d, dec, &e).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    proto::TaskRef ref;
    ref.set_job_id(*job_);
    EXPECT_EQ(jm->ReportEndOfInput(&eoi, ref, &e).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  // A member that does not run a subtask cannot end it either.
  auth::CallAuthenticator member(*secret_);
  for (int vertex = 0; vertex < 4; ++vertex) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      grpc::ClientContext ctx;
      rpc::sign(ctx, member, "JobManager/ReportTaskState");
      proto::TaskStateReport r;
      r.set_taskmanager_id("tm-nobody");
      r.mutable_task()->set_job_id(*job_);
      r.mutable_task()->set_vertex(vertex);
      r.mutable_task()->set_attempt(attempt);
      r.set_state("FAILED");
      proto::Empty e;
      EXPECT_TRUE(jm->ReportTaskState(&ctx, r, &e).ok());
    }
  }
  EXPECT_NE(slurp(dir_->file("jobmanager.log")).find("refused JobManager/ReportTaskState"), std::string::npos);
  expect_undisturbed();
}

TEST_F(Security, MadeUpTaskManagersCannotRegisterNorTakeOverALiveId) {
  auto jm = proto::JobManager::NewStub(channel(cluster_->address()));
  for (Creds c : kAllBad) {
    for (const char* id : {"tm-evil", "tm-a"}) {
      grpc::ClientContext ctx;
      apply(ctx, c, "JobManager/RegisterTaskManager");
      proto::RegisterRequest r;
      r.set_taskmanager_id(id);
      r.set_control_address("127.0.0.1:1");
      r.set_data_address("127.0.0.1:1");
      r.set_slots(64);
      r.set_instance("evil");
      proto::RegisterResponse resp;
      EXPECT_EQ(jm->RegisterTaskManager(&ctx, r, &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED) << id;
    }
    grpc::ClientContext ctx;
    apply(ctx, c, "JobManager/Heartbeat");
    proto::HeartbeatRequest hb;
    hb.set_taskmanager_id("tm-a");
    proto::HeartbeatResponse hr;
    EXPECT_EQ(jm->Heartbeat(&ctx, hb, &hr).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  // Even with the secret, a live id belongs to the process that registered it.
  auth::CallAuthenticator member(*secret_);
  grpc::ClientContext ctx;
  rpc::sign(ctx, member, "JobManager/RegisterTaskManager");
  proto::RegisterRequest r;
  r.set_taskmanager_id("tm-a");
  r.set_control_address("127.0.0.1:1");
  r.set_data_address("127.0.0.1:1");
  r.set_slots(64);
  r.set_instance("another-process");
  proto::RegisterResponse resp;
  EXPECT_EQ(jm->RegisterTaskManager(&ctx, r, &resp).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  auto tms = taskmanagers_of(*cluster_);
  ASSERT_EQ(tms.size(), 2u) << "no made-up taskmanager";
  for (const auto& t : tms) EXPECT_NE(t.control, "127.0.0.1:1") << t.id;
  expect_undisturbed();
}

TEST_F(Security, ArtifactIdsArePlainDigestsAndArtifactsNeedTheSecret) {
  // A .so that a path-shaped "sha256" would name, relative to a work dir.
  std::filesystem::create_directories(dir_->file("victim"));
  write_file(dir_->file("victim/lib.so"), "precious");
  std::string sha = "../../victim/lib";
  auto tm = proto::TaskManager::NewStub(channel(taskmanagers_of(*cluster_).at(0).control));
  auth::CallAuthenticator member(*secret_);
  for (int i = 0; i < 4; ++i) {
    grpc::ClientContext ctx;
    if (i < 3) apply(ctx, kAllBad[i], "TaskManager/DeployTasks");
    else rpc::sign_fenced(ctx, member, "TaskManager/DeployTasks", 0);  // a member's mistake is refused too
    proto::DeployRequest r;
    r.set_job_id("evil-job");
    r.set_attempt(0);
    r.set_library_sha256(sha);
    proto::Empty e;
    auto st = tm->DeployTasks(&ctx, r, &e);
    EXPECT_EQ(st.error_code(), i < 3 ? grpc::StatusCode::UNAUTHENTICATED : grpc::StatusCode::INVALID_ARGUMENT)
        << st.error_message();
  }
  EXPECT_EQ(slurp(dir_->file("victim/lib.so")), "precious") << "the file a path would name is untouched";

  auto jm = proto::JobManager::NewStub(channel(cluster_->address()));
  std::string real_sha;
  for (const auto& e : std::filesystem::directory_iterator(cluster_->data_dir() + "/artifacts"))
    real_sha = e.path().stem().string();
  ASSERT_EQ(real_sha.size(), 64u);
  for (Creds c : kAllBad) {
    grpc::ClientContext ctx;
    apply(ctx, c, "JobManager/FetchArtifact");
    proto::FetchArtifactRequest r;
    r.set_sha256(real_sha);
    auto reader = jm->FetchArtifact(&ctx, r);
    proto::ArtifactChunk chunk;
    EXPECT_FALSE(reader->Read(&chunk)) << "no library bytes without the secret";
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  // The data dir keeps job graphs and libraries private.
  struct stat st {};
  ASSERT_EQ(::stat((cluster_->data_dir() + "/artifacts").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u) << "artifacts dir mode " << std::oct << (st.st_mode & 0777);
  ASSERT_EQ(::stat((cluster_->data_dir() + "/jobs").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);
  ASSERT_EQ(::stat(cluster_->token_file().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);
  expect_undisturbed();
}

TEST_F(Security, DataPlaneRefusesHellosThatDoNotProveTheSecret) {
  for (const auto& tm : taskmanagers_of(*cluster_)) {
    // A made-up job, the real job at a future attempt, and the real job's
    // first attempt: none proves the secret.
    for (auto [job, attempt] : std::vector<std::pair<std::string, int>>{{"made-up-job", 0}, {*job_, 50}, {*job_, 0}}) {
      Conn conn(tm.data);
      ASSERT_TRUE(conn.connected()) << tm.data;
      auto [type, challenge] = conn.read_message();
      ASSERT_EQ(type, 6) << "the plane challenges first";
      EXPECT_EQ(challenge.size(), 16u);
      runtime::DataPlane::Hello h;
      h.job_id = job;
      h.attempt = attempt;
      h.key = {1, 0, 1};
      h.nonce = std::string(16, 'n');
      h.mac = auth::hmac_sha256("a guess", challenge);
      ASSERT_TRUE(conn.send(message(1, runtime::DataPlane::encode_hello(h))));
      auto [reply, why] = conn.read_message();
      EXPECT_EQ(reply, 3) << "refused: " << why;
      EXPECT_NE(why.find("not authenticated"), std::string::npos) << why;
      EXPECT_TRUE(conn.closed_by_peer());
    }
  }
  EXPECT_NE(cluster_->logs().find("does not prove the cluster secret"), std::string::npos) << "refusals are logged";
  expect_undisturbed();
}

TEST_F(Security, OversizedFrameHeadersCostNoMemory) {
  auto tms = taskmanagers_of(*cluster_);
  ASSERT_FALSE(tms.empty());
  pid_t pid = cluster_->taskmanager(tms[0].id).pid();
  int64_t before = rss_kb(pid);
  ASSERT_GT(before, 0);
  std::vector<std::unique_ptr<Conn>> conns;
  for (int i = 0; i < 8; ++i) {
    auto c = std::make_unique<Conn>(tms[0].data);
    ASSERT_TRUE(c->connected());
    // Header of a 256 MiB hello (type 1) or data message (type 5), then a
    // first slice of it, and the connection held open.
    std::string head(1, static_cast<char>(i % 2 ? 5 : 1));
    uint32_t len = 256u << 20;
    head.append(reinterpret_cast<const char*>(&len), 4);
    ASSERT_TRUE(c->send(head + std::string(60000, 'x')));
    conns.push_back(std::move(c));
  }
  std::this_thread::sleep_for(500ms);
  int64_t after = rss_kb(pid);
  std::cout << "taskmanager RSS before 8 oversized headers: " << before << " kB, after: " << after << " kB\n";
  EXPECT_LT(after - before, 64 * 1024) << "RSS went from " << before << " to " << after << " kB";
  for (auto& c : conns) EXPECT_TRUE(c->closed_by_peer()) << "an oversized handshake message ends the connection";
  expect_undisturbed();
}

TEST_F(Security, ASlowHttpClientDoesNotBlockOtherRequests) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> slow;
  // Two slow clients on the status server, one on /metrics.
  std::string metrics = slurp(cluster_->data_dir() + "/metrics.address");
  for (const std::string& addr : {cluster_->http_address(), cluster_->http_address(), metrics}) {
    slow.emplace_back([addr, &stop] {
      Conn c(addr);
      std::string req = "GET /jobs HTTP/1.1\r\nHost: x\r\n";
      for (size_t i = 0; i < req.size() && !stop.load(); ++i) {
        if (!c.send(req.substr(i, 1))) return;
        for (int k = 0; k < 15 && !stop.load(); ++k) std::this_thread::sleep_for(100ms);  // a byte every 1.5 s
      }
    });
  }
  std::this_thread::sleep_for(300ms);
  for (int i = 0; i < 10; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = cluster_->http_get(i % 2 ? "/jobs" : "/taskmanagers", {"-m", "2"});
    EXPECT_EQ(r.exit_code, 0) << "request " << i << " while slow clients are connected: " << r.err;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    auto m = run_command({"/usr/bin/curl", "-sf", "-m", "2", "http://" + metrics + "/metrics"}, 5s);
    EXPECT_EQ(m.exit_code, 0) << "metrics while a slow client is connected";
    EXPECT_NE(m.out.find("sluice_jobmanager_taskmanagers"), std::string::npos);
    std::this_thread::sleep_for(300ms);
  }
  stop.store(true);
  for (auto& t : slow) t.join();
  expect_undisturbed();
}

TEST(SecurityTls, MutualTlsClusterRunsAJobAndRefusesEveryoneWithoutACertificate) {
  TempDir dir;
  TestPki pki(dir);
  ASSERT_TRUE(pki.ok);
  auto input = run_sluice({"gen", "--count", "3000", "--seed", "5", "--output", dir.file("clicks.ndjson")});
  ASSERT_EQ(input.exit_code, 0) << input.err;
  Cluster c(dir);
  std::vector<std::string> tls = {"--tls-cert", pki.cert, "--tls-key", pki.key, "--tls-ca", pki.ca};
  c.tm_extra_args = tls;
  c.cli_extra_args = tls;
  c.curl_extra_args = {"--cacert", pki.ca, "--cert", pki.cert, "--key", pki.key};
  c.http_scheme = "https";
  c.start_jobmanager("127.0.0.1:0", tls);
  c.start_taskmanager("tm-a", 1);
  c.start_taskmanager("tm-b", 1);
  ASSERT_TRUE(c.wait_for_taskmanagers(2)) << c.logs();
  std::string job = submit_clickstream(c, dir, "file://" + dir.file("clicks.ndjson"), 2);
  JobView v = c.wait_for_end(job, 120s);
  EXPECT_EQ(v.state, "FINISHED") << v.raw << c.logs();
  EXPECT_EQ(v.taskmanagers.size(), 2u) << v.raw;
  EXPECT_FALSE(read_lines(dir.file("counts.ndjson")).empty()) << "the job wrote its results";

  // Without a client certificate (or in plaintext) nothing answers.
  auto tms = taskmanagers_of(c);
  ASSERT_EQ(tms.size(), 2u);
  grpc::SslCredentialsOptions server_only;
  server_only.pem_root_certs = slurp(pki.ca) + "\n";
  for (auto creds : {grpc::InsecureChannelCredentials(), grpc::SslCredentials(server_only)}) {
    auto jm = proto::JobManager::NewStub(grpc::CreateChannel(c.address(), creds));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    proto::ListJobsRequest req;
    proto::ListJobsResponse resp;
    EXPECT_FALSE(jm->ListJobs(&ctx, req, &resp).ok()) << "jobmanager answered a client without a certificate";
    auto tm = proto::TaskManager::NewStub(grpc::CreateChannel(tms[0].control, creds));
    grpc::ClientContext tctx;
    tctx.set_deadline(std::chrono::system_clock::now() + 5s);
    proto::CancelTasksRequest cancel;
    cancel.set_job_id(job);
    cancel.set_attempt(-1);
    proto::Empty e;
    EXPECT_FALSE(tm->CancelTasks(&tctx, cancel, &e).ok()) << "taskmanager answered a client without a certificate";
  }
  // A plain CLI is told it talks to a TLS jobmanager, not that none runs.
  auto plain = run_sluice({"list", "--jobmanager", c.address()});
  EXPECT_NE(plain.exit_code, 0);
  EXPECT_NE(plain.err.find("TLS jobmanager? pass --tls-ca"), std::string::npos) << plain.err;
  EXPECT_EQ(plain.err.find("is `sluice jobmanager` running"), std::string::npos) << plain.err;

  std::string https = "https://" + c.http_address() + "/jobs";
  EXPECT_NE(run_command({"/usr/bin/curl", "-sf", "-m", "5", "--cacert", pki.ca, https}, 10s).exit_code, 0)
      << "status without a client certificate";
  EXPECT_NE(run_command({"/usr/bin/curl", "-sf", "-m", "5", "http://" + c.http_address() + "/jobs"}, 10s).exit_code, 0)
      << "status in plaintext";
  EXPECT_EQ(c.http_get("/jobs").exit_code, 0) << "status with a client certificate";
  std::string metrics = slurp(c.data_dir() + "/metrics.address");
  auto m = run_command({"/usr/bin/curl", "-sf", "-m", "5", "--cacert", pki.ca, "--cert", pki.cert, "--key", pki.key,
                        "https://" + metrics + "/metrics"},
                       10s);
  EXPECT_EQ(m.exit_code, 0) << "metrics over mutual TLS: " << m.err;
  EXPECT_NE(run_command({"/usr/bin/curl", "-sf", "-m", "5", "--cacert", pki.ca, "https://" + metrics + "/metrics"}, 10s)
                .exit_code,
            0)
      << "metrics without a client certificate";
}

TEST(SecurityReadAccess, ListStatusAndHttpNeedTheTokenWhenReadAccessIsToken) {
  TempDir dir;
  Cluster c(dir);
  c.curl_extra_args = {"-H", "Authorization: Bearer PLACEHOLDER"};
  c.start_jobmanager("127.0.0.1:0", {"--read-access", "token"});
  c.curl_extra_args = {"-H", "Authorization: Bearer " + slurp(c.token_file())};
  c.start_taskmanager("tm-a", 1);
  ASSERT_TRUE(c.wait_for_taskmanagers(1)) << c.logs();
  auto open = c.sluice({"list"}, /*with_token=*/false);
  EXPECT_EQ(open.exit_code, 3) << "list without the token: " << open.out << open.err;
  EXPECT_EQ(c.sluice({"list"}, true).exit_code, 0);
  auto anon = run_command({"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5",
                           "http://" + c.http_address() + "/jobs"},
                          10s);
  EXPECT_EQ(anon.out, "401");
  EXPECT_EQ(c.http_get("/jobs").exit_code, 0) << "with the bearer token";
  std::string metrics = slurp(c.data_dir() + "/metrics.address");
  auto m = run_command({"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5",
                        "http://" + metrics + "/metrics"},
                       10s);
  EXPECT_EQ(m.out, "401") << "metrics too";
  // The dashboard's page itself is public (it holds nothing of the
  // cluster's and asks for the token); what it reads is not.
  auto page = run_command({"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5",
                           "http://" + c.http_address() + "/"},
                          10s);
  EXPECT_EQ(page.out, "200");
  auto overview = run_command({"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5",
                               "http://" + c.http_address() + "/overview"},
                              10s);
  EXPECT_EQ(overview.out, "401");
}

}  // namespace
}  // namespace sluice::it
