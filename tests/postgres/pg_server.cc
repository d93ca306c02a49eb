#include "tests/postgres/pg_server.h"

#include <gtest/gtest.h>
#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "tests/integration/process.h"

namespace sluice::postgres::testing {

namespace {

constexpr const char* kBin = "/usr/lib/postgresql/15/bin/";

it::CommandResult as_postgres(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/sbin/runuser", "-u", "postgres", "--"};
  argv.insert(argv.end(), args.begin(), args.end());
  return it::run_command(argv, std::chrono::seconds(60));
}

}  // namespace

std::unique_ptr<PgServer> PgServer::start(std::string* error) {
  if (::access((std::string(kBin) + "initdb").c_str(), X_OK) != 0) {
    *error = "PostgreSQL 15 is not installed (/usr/lib/postgresql/15/bin/initdb); run deploy/install-deps.sh";
    return nullptr;
  }
  passwd* pw = ::getpwnam("postgres");
  if (!pw) {
    *error = "there is no postgres user";
    return nullptr;
  }
  std::unique_ptr<PgServer> s(new PgServer());
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/sluice-pg-XXXXXX";
  if (!::mkdtemp(tmpl.data())) {
    *error = "mkdtemp failed";
    return nullptr;
  }
  s->dir_ = tmpl;
  if (::chown(s->dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    *error = "chown failed";
    return nullptr;
  }
  const std::string data = s->dir_ + "/data";
  auto init = as_postgres({std::string(kBin) + "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                           "--no-sync", "--no-instructions"});
  if (init.exit_code != 0) {
    *error = "initdb failed: " + init.err + init.out;
    return nullptr;
  }
  s->port_ = it::free_loopback_port();
  {
    std::ofstream hba(data + "/pg_hba.conf", std::ios::trunc);
    hba << "local all all trust\n"
        << "host all postgres 127.0.0.1/32 trust\n"
        << "host all all 127.0.0.1/32 scram-sha-256\n";
    std::ofstream conf(data + "/postgresql.conf", std::ios::app);
    conf << "listen_addresses = '127.0.0.1'\nport = " << s->port_ << "\nunix_socket_directories = '" << s->dir_
         << "'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 60\n"
         << "shared_buffers = 64MB\n";
  }
  std::string out;
  if (!s->start_again()) {
    *error = "pg_ctl start failed; see " + s->dir_ + "/log";
    return nullptr;
  }
  auto c = s->connect("postgres");
  if (!c) {
    *error = "cannot connect to the test server";
    return nullptr;
  }
  if (!c->exec("CREATE DATABASE sluice").is_ok()) {
    *error = "CREATE DATABASE failed";
    return nullptr;
  }
  return s;
}

bool PgServer::pg_ctl(const std::vector<std::string>& args, std::string* out) {
  std::vector<std::string> argv = {std::string(kBin) + "pg_ctl", "-D", dir_ + "/data"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = as_postgres(argv);
  if (out) *out = r.out + r.err;
  return r.exit_code == 0;
}

bool PgServer::start_again() {
  std::string out;
  running_ = pg_ctl({"-l", dir_ + "/log", "-w", "-t", "30", "start"}, &out);
  if (!running_) ADD_FAILURE() << "pg_ctl start: " << out;
  return running_;
}

bool PgServer::stop(bool immediate) {
  std::string out;
  bool ok = pg_ctl({"-m", immediate ? "immediate" : "fast", "-w", "stop"}, &out);
  if (ok) running_ = false;
  return ok;
}

PgServer::~PgServer() {
  if (running_) stop();
  if (!dir_.empty() && !std::getenv("SLUICE_IT_KEEP")) {
    std::string cmd = "rm -rf '" + dir_ + "'";
    (void)std::system(cmd.c_str());
  }
}

std::unique_ptr<PgConnection> PgServer::connect(const std::string& db) {
  auto c = PgConnection::connect(
      {{"host", "127.0.0.1"}, {"port", std::to_string(port_)}, {"user", "postgres"}, {"dbname", db}});
  if (!c.is_ok()) {
    ADD_FAILURE() << c.status().message();
    return nullptr;
  }
  return std::move(*c);
}

QueryResult PgServer::sql(const std::string& sql, const std::string& db) {
  auto c = connect(db);
  if (!c) return {};
  auto r = c->query(sql);
  if (!r.is_ok()) {
    ADD_FAILURE() << sql << ": " << r.status().message();
    return {};
  }
  return std::move(*r);
}

int64_t PgServer::scalar(const std::string& q) {
  auto r = sql(q);
  if (r.rows.empty() || !r.rows[0][0]) return -1;
  return std::stoll(*r.rows[0][0]);
}

FakeContext::FakeContext(int subtask, int parallelism, bool checkpointing) {
  info_.job_name = "pg-test";
  info_.job_id = "local";
  info_.operator_name = "sink";
  info_.uid = "sink-uid";
  info_.subtask = subtask;
  info_.parallelism = parallelism;
  if (checkpointing) {
    config_.set("checkpoint.dir", "/unused");
    config_.set("checkpoint.interval", "1s");
  }
}

}  // namespace sluice::postgres::testing
