// A real PostgreSQL 15 (Debian's packages) for tests: initdb in a fresh
// directory owned by the postgres user, listening on 127.0.0.1 on a free
// port, stopped and removed when the object goes. The tests run as root,
// so every server command runs as `postgres` through runuser.
//
// Authentication: the `postgres` superuser is trusted on loopback; every
// other role must give its password (scram-sha-256).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "connectors/postgres/connection.h"
#include "engine/common/clock.h"
#include "engine/runtime/operator.h"

namespace sluice::postgres::testing {

class PgServer {
 public:
  /// initdb + start; nullptr and `error` on failure.
  static std::unique_ptr<PgServer> start(std::string* error);
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  /// pg_ctl stop (-m fast, or immediate: a crash) / start again on the same port.
  bool stop(bool immediate = false);
  bool start_again();

  /// A superuser connection to `db`.
  std::unique_ptr<PgConnection> connect(const std::string& db = "sluice");
  /// Runs SQL as the superuser; aborts the test (ADD_FAILURE) on error.
  QueryResult sql(const std::string& sql, const std::string& db = "sluice");
  /// The first column of the first row as an integer.
  int64_t scalar(const std::string& sql);

 private:
  PgServer() = default;
  bool pg_ctl(const std::vector<std::string>& args, std::string* out);
  std::string dir_;
  int port_ = 0;
  bool running_ = false;
};

/// An OperatorContext for one writer outside a task.
class FakeContext final : public runtime::OperatorContext {
 public:
  FakeContext(int subtask, int parallelism, bool checkpointing = true);
  const runtime::OperatorInfo& info() const override { return info_; }
  const Configuration& job_config() const override { return config_; }
  runtime::ProcessingTimeService& processing_time() override { return pts_; }
  runtime::MailboxExecutor& mailbox() override { return mailbox_; }
  state::KeyedStateBackend* keyed_backend() override { return nullptr; }
  void dead_letter(DeadLetter dl) override { dead_letters.push_back(std::move(dl)); }
  void fail(Status st) override {
    if (failure.is_ok()) failure = std::move(st);
  }
  runtime::OutputBase* side_output(std::string_view) override { return nullptr; }
  runtime::OperatorMetrics& metrics() override { return metrics_; }

  runtime::OperatorInfo info_;
  Configuration config_;
  std::vector<DeadLetter> dead_letters;
  Status failure;

 private:
  runtime::ProcessingTimeService pts_{&SystemClock::instance()};
  // Its yield() fires pts_'s callbacks, as a task's does.
  runtime::QueueMailboxExecutor mailbox_{10'000, &pts_};
  runtime::OperatorMetrics metrics_;
};

}  // namespace sluice::postgres::testing
