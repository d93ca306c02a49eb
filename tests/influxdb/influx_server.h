// A real InfluxDB 1.6 (Debian's influxdb package) for tests: influxd with
// its own config and directories in a fresh temporary directory, HTTP and
// the RPC bind address on free loopback ports, authentication on (an
// admin user is created first), stopped — and the directory removed —
// when the object goes. influxd is started with PR_SET_PDEATHSIG, so a
// crashed test binary leaves no server behind.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "operators/async/http/http_client.h"

namespace sluice::influxdb::testing {

/// One series of a query answer: its tags and rows (each value as text:
/// strings as they are, numbers and bools as JSON writes them, null as "null").
struct Series {
  std::string name;
  std::vector<std::pair<std::string, std::string>> tags;
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;
};

/// Test thread only.
class InfluxServer {
 public:
  static constexpr const char* kAdmin = "admin";

  /// Starts influxd and creates the admin user; nullptr and `error` on failure.
  static std::unique_ptr<InfluxServer> start(std::string* error);
  ~InfluxServer();
  InfluxServer(const InfluxServer&) = delete;
  InfluxServer& operator=(const InfluxServer&) = delete;

  int port() const { return http_port_; }
  /// A file holding the admin's password (for sink URIs).
  const std::string& password_file() const { return password_file_; }
  const std::string& password() const { return password_; }
  /// influxdb://admin@127.0.0.1:<port>/<db>?<params>&password_file=...
  std::string uri(const std::string& db, const std::string& params) const;

  /// Stops influxd: SIGTERM and a wait, or with `crash` SIGKILL.
  bool stop(bool crash = false);
  /// Starts it again on the same ports and directories; waits for /ping.
  bool start_again();
  /// SIGSTOP / SIGCONT: a server that accepts connections and answers
  /// nothing (a long GC pause, a stalled disk) and then carries on.
  void pause();
  void resume();

  /// Runs InfluxQL as the admin (epoch=ms); ADD_FAILURE on any error.
  std::vector<Series> query(const std::string& q, const std::string& db = "");
  /// POST /write as the admin; returns the HTTP status.
  long write(const std::string& db, const std::string& lines, const std::string& precision = "ms");

 private:
  InfluxServer() = default;
  Result<http_client::Response> request(http_client::Request r);
  bool wait_ready();

  std::string dir_;
  std::string password_;
  std::string password_file_;
  int http_port_ = 0;
  int rpc_port_ = 0;
  int pid_ = -1;
  std::unique_ptr<http_client::HttpClient> client_;
};

/// The server every test of the binary shares (started by the first call,
/// stopped at exit). Tests use databases of their own.
InfluxServer& shared_server();

}  // namespace sluice::influxdb::testing
