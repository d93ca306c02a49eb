#include "tests/ha/etcd_server.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <vector>

#include "engine/ha/etcd_client.h"
#include "tests/integration/process.h"

extern char** environ;

namespace sluice::ha::testing {

std::unique_ptr<EtcdServer> EtcdServer::start(std::string* error) {
  const char* bin = "/usr/bin/etcd";
  if (::access(bin, X_OK) != 0) {
    *error = "etcd is not installed (/usr/bin/etcd); run deploy/install-deps.sh (package etcd-server)";
    return nullptr;
  }
  std::unique_ptr<EtcdServer> s(new EtcdServer());
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/sluice-etcd-XXXXXX";
  if (!::mkdtemp(tmpl.data())) {
    *error = "mkdtemp failed";
    return nullptr;
  }
  s->dir_ = tmpl;
  s->log_ = s->dir_ + "/etcd.log";
  for (int attempt = 0; attempt < 5; ++attempt) {
    s->client_port_ = it::free_loopback_port();
    s->peer_port_ = it::free_loopback_port();
    const std::string client = "http://127.0.0.1:" + std::to_string(s->client_port_);
    const std::string peer = "http://127.0.0.1:" + std::to_string(s->peer_port_);
    std::vector<std::string> argv = {bin,
                                     "--name", "test",
                                     "--data-dir", s->dir_ + "/data",
                                     "--listen-client-urls", client,
                                     "--advertise-client-urls", client,
                                     "--listen-peer-urls", peer,
                                     "--initial-advertise-peer-urls", peer,
                                     "--initial-cluster", "test=" + peer,
                                     "--log-level", "warn"};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, s->log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    int rc = ::posix_spawn(&s->pid_, bin, &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      *error = "cannot start etcd";
      return nullptr;
    }
    EtcdClient c({client}, std::chrono::milliseconds(500));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      if (c.get("/probe").is_ok()) return s;
      int st = 0;
      if (::waitpid(s->pid_, &st, WNOHANG) == s->pid_) {
        s->pid_ = -1;
        break;  // exited: a port was taken meanwhile; try others
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (s->pid_ > 0) {
      ::kill(s->pid_, SIGKILL);
      ::waitpid(s->pid_, nullptr, 0);
      s->pid_ = -1;
    }
    std::filesystem::remove_all(s->dir_ + "/data");
  }
  *error = "etcd did not come up (see " + s->log_ + ")";
  return nullptr;
}

EtcdServer::~EtcdServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  std::error_code ec;
  if (!dir_.empty() && !std::getenv("SLUICE_IT_KEEP")) std::filesystem::remove_all(dir_, ec);
}

}  // namespace sluice::ha::testing
