// The cluster with mutual TLS on every channel (issue 17): a job whose
// channels cross taskmanagers over TLS, exactly-once through a kill; who is
// refused (plaintext data-plane clients, clients without a certificate, a
// member's certificate without the secret); work dirs cleaned up.
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <filesystem>

#include "engine/proto/control.grpc.pb.h"
#include "engine/runtime/data_plane.h"
#include "tests/cluster/cluster_harness.h"
#include "tests/cluster/security_probes.h"
#include "tests/harness/test_pki.h"

namespace sluice::it {
namespace {

using namespace std::chrono_literals;

/// TaskManager.CancelTasks of every attempt of `job`, unsigned, over `creds`.
grpc::Status cancel_unsigned(const std::string& address, std::shared_ptr<grpc::ChannelCredentials> creds,
                             const std::string& job) {
  auto tm = proto::TaskManager::NewStub(grpc::CreateChannel(address, std::move(creds)));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  proto::CancelTasksRequest cancel;
  cancel.set_job_id(job);
  cancel.set_attempt(-1);
  proto::Empty e;
  return tm->CancelTasks(&ctx, cancel, &e);
}

// Every channel of a TLS cluster is mutual TLS, the data plane included: a
// job whose channels cross taskmanagers runs exactly-once through a
// taskmanager kill, a plaintext data-plane client hears nothing in clear
// and is refused (and logged); nothing answers a client without a
// certificate of the cluster CA. (What crosses the data plane's wire, and
// foreign certificates there: tests/runtime/data_plane_tls_test.cc.)
TEST(SecurityTls, MutualTlsClusterRunsAJobAndRefusesEveryoneWithoutACertificate) {
  TempDir dir;
  harness::TestPki pki(dir.path());
  ASSERT_TRUE(pki.ok) << pki.error;
  std::string input = make_input(dir, 20'000, 5);
  Cluster c(dir);
  std::vector<std::string> tls = {"--tls-cert", pki.cert, "--tls-key", pki.key, "--tls-ca", pki.ca};
  c.tm_extra_args = tls;
  c.cli_extra_args = tls;
  c.curl_extra_args = {"--cacert", pki.ca, "--cert", pki.cert, "--key", pki.key};
  c.http_scheme = "https";
  c.start_jobmanager("127.0.0.1:0", tls);
  // One slot each: the job's keyed channels cross the data plane.
  for (const char* id : {"tm-a", "tm-b", "tm-c"}) c.start_taskmanager(id, 1);
  ASSERT_TRUE(c.wait_for_taskmanagers(3)) << c.logs();
  auto tms = taskmanagers_of(c);
  ASSERT_EQ(tms.size(), 3u);

  // Paced (~8 s) so that a taskmanager can be killed after checkpoints.
  std::string job = submit_clickstream(c, dir, "file://" + input + "?rate=2500", 2);
  JobView v = c.wait_for_checkpoints(job, 2);
  ASSERT_TRUE(v.state == "RUNNING" && v.completed_checkpoints >= 2) << v.raw << c.logs();
  EXPECT_EQ(v.taskmanagers.size(), 2u) << v.raw;

  // A plaintext client on a taskmanager's data port: no challenge in clear
  // (TLS first), refused, logged.
  for (const auto& tm : tms) {
    Conn conn(tm.data);
    ASSERT_TRUE(conn.connected()) << tm.data;
    runtime::DataPlane::Hello h;
    h.job_id = job;
    h.key = {1, 0, 1};
    h.nonce = std::string(16, 'n');
    h.mac = std::string(32, 'm');
    ASSERT_TRUE(conn.send(message(1, runtime::DataPlane::encode_hello(h))));
    auto [type, payload] = conn.read_message();
    EXPECT_NE(type, 6) << "a challenge in clear";
    EXPECT_NE(type, 3) << "a refusal in clear: the plane spoke plaintext";
  }
  EXPECT_TRUE(wait_until([&] { return c.logs().find("TLS handshake with producer at 127.0.0.1 failed") != std::string::npos; }, 10s))
      << "plaintext data-plane clients are refused and logged: " << c.logs();
  EXPECT_NE(c.logs().find("(mutual TLS)"), std::string::npos) << "data planes listen with TLS";

  // Exactly-once over TLS channels through a restart.
  std::string victim = *v.taskmanagers.begin();
  c.taskmanager(victim).kill(SIGKILL);
  v = c.wait_for_end(job, 180s);
  ASSERT_EQ(v.state, "FINISHED") << v.raw << c.logs();
  EXPECT_GE(v.restarts, 1) << v.raw;
  EXPECT_EQ(v.taskmanagers.count(victim), 0u) << v.raw;
  Counts got = counts_of(read_page_counts(dir.file("counts.ndjson")));  // a duplicate row fails here
  EXPECT_EQ(diff_counts(expected_counts(input, 10'000), got), "") << c.logs();
  EXPECT_EQ(c.logs().find("refused a hello"), std::string::npos) << "members authenticate inside TLS";

  // Work dirs: an attempt's files go when it ends; what a killed process
  // left goes when it starts again (same work dir).
  auto attempt_dirs = [&](const std::string& id) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir.file("tm-" + id) + "/jobs", ec))
      out.push_back(e.path().string());
    return out;
  };
  for (const auto& tm : tms) {
    if (tm.id == victim) continue;
    EXPECT_TRUE(wait_until([&] { return attempt_dirs(tm.id).empty(); }, 10s))
        << tm.id << " kept " << attempt_dirs(tm.id).front();
    struct stat st {};
    ASSERT_EQ(::stat(dir.file("tm-" + tm.id).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 077, 0u) << tm.id << " work dir mode " << std::oct << (st.st_mode & 0777);
  }
  EXPECT_FALSE(attempt_dirs(victim).empty()) << "the killed taskmanager could not clean up";
  c.start_taskmanager(victim, 1);
  ASSERT_TRUE(c.wait_for_taskmanagers(3)) << c.logs();
  EXPECT_TRUE(attempt_dirs(victim).empty()) << "removed at start: " << attempt_dirs(victim).front();

  tms = taskmanagers_of(c);
  ASSERT_FALSE(tms.empty());
  // A member's certificate without the cluster secret: refused all the same.
  {
    grpc::SslCredentialsOptions member;
    member.pem_root_certs = slurp(pki.ca);
    member.pem_cert_chain = slurp(pki.cert);
    member.pem_private_key = slurp(pki.key);
    EXPECT_EQ(cancel_unsigned(tms[0].control, grpc::SslCredentials(member), job).error_code(),
              grpc::StatusCode::UNAUTHENTICATED)
        << "a certificate is not the secret";
  }
  // Without a client certificate (or in plaintext) nothing answers.
  grpc::SslCredentialsOptions server_only;
  server_only.pem_root_certs = slurp(pki.ca) + "\n";
  for (auto creds : {grpc::InsecureChannelCredentials(), grpc::SslCredentials(server_only)}) {
    auto jm = proto::JobManager::NewStub(grpc::CreateChannel(c.address(), creds));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    proto::ListJobsRequest req;
    proto::ListJobsResponse resp;
    EXPECT_FALSE(jm->ListJobs(&ctx, req, &resp).ok()) << "jobmanager answered a client without a certificate";
    EXPECT_FALSE(cancel_unsigned(tms[0].control, creds, job).ok())
        << "taskmanager answered a client without a certificate";
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


}  // namespace
}  // namespace sluice::it
