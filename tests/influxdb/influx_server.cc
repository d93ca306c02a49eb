#include "tests/influxdb/influx_server.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <simdjson.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <random>
#include <thread>

#include "engine/common/uri.h"
#include "tests/integration/process.h"

namespace sluice::influxdb::testing {

namespace {

constexpr const char* kInfluxd = "/usr/bin/influxd";

std::string text_of(simdjson::dom::element v) {
  std::string_view s;
  if (v.get(s) == simdjson::SUCCESS) return std::string(s);
  return simdjson::to_string(v);
}

}  // namespace

std::unique_ptr<InfluxServer> InfluxServer::start(std::string* error) {
  if (::access(kInfluxd, X_OK) != 0) {
    *error = "influxd is not installed (Debian package influxdb); run deploy/install-deps.sh";
    return nullptr;
  }
  std::unique_ptr<InfluxServer> s(new InfluxServer());
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/sluice-influx-XXXXXX";
  if (!::mkdtemp(tmpl.data())) {
    *error = "mkdtemp failed";
    return nullptr;
  }
  s->dir_ = tmpl;
  s->http_port_ = it::free_loopback_port();
  s->rpc_port_ = it::free_loopback_port();
  std::mt19937_64 rng(std::random_device{}());
  s->password_ = "pw-" + std::to_string(rng());
  s->password_file_ = s->dir_ + "/admin.password";
  std::ofstream(s->password_file_) << s->password_ << "\n";
  {
    std::ofstream conf(s->dir_ + "/influxdb.conf");
    conf << "reporting-disabled = true\n"
         << "bind-address = \"127.0.0.1:" << s->rpc_port_ << "\"\n"
         << "[meta]\n  dir = \"" << s->dir_ << "/meta\"\n  logging-enabled = false\n"
         << "[data]\n  dir = \"" << s->dir_ << "/data\"\n  wal-dir = \"" << s->dir_ << "/wal\"\n"
         << "  query-log-enabled = false\n"
         << "[monitor]\n  store-enabled = false\n"
         << "[retention]\n  enabled = false\n"
         << "[shard-precreation]\n  enabled = false\n"
         << "[subscriber]\n  enabled = false\n"
         << "[continuous_queries]\n  enabled = false\n"
         << "[http]\n  bind-address = \"127.0.0.1:" << s->http_port_ << "\"\n  auth-enabled = true\n"
         << "  log-enabled = false\n  pprof-enabled = false\n"
         << "[logging]\n  level = \"warn\"\n  suppress-logo = true\n";
  }
  http_client::HttpClientOptions o;
  o.name = "influx-test";
  o.default_timeout = std::chrono::seconds(30);
  auto c = http_client::HttpClient::start(o);
  if (!c.is_ok()) {
    *error = c.status().to_string();
    return nullptr;
  }
  s->client_ = std::move(*c);
  if (!s->start_again()) {
    *error = "influxd did not come up; see " + s->dir_ + "/influxd.log";
    return nullptr;
  }
  // With authentication on, the first user may be created without it.
  http_client::Request r;
  r.method = http_client::Method::kPost;
  r.url = "http://127.0.0.1:" + std::to_string(s->http_port_) + "/query";
  r.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
  r.body = "q=" + percent_encode("CREATE USER admin WITH PASSWORD '" + s->password_ + "' WITH ALL PRIVILEGES");
  auto created = s->request(r);
  if (!created.is_ok() || created->status != 200 || created->body.find("\"error\"") != std::string::npos) {
    *error = "CREATE USER failed: " + (created.is_ok() ? created->body : created.status().to_string());
    return nullptr;
  }
  return s;
}

InfluxServer::~InfluxServer() {
  stop();
  client_.reset();
  if (!dir_.empty() && !std::getenv("SLUICE_IT_KEEP")) {
    std::string cmd = "rm -rf '" + dir_ + "'";
    (void)std::system(cmd.c_str());
  }
}

std::string InfluxServer::uri(const std::string& db, const std::string& params) const {
  return "influxdb://admin@127.0.0.1:" + std::to_string(http_port_) + "/" + db + "?" + params +
         "&password_file=" + password_file_;
}

Result<http_client::Response> InfluxServer::request(http_client::Request r) {
  auto done = std::make_shared<std::promise<Result<http_client::Response>>>();
  auto f = done->get_future();
  Status st = client_->submit(std::move(r), [done](Result<http_client::Response> res) { done->set_value(std::move(res)); });
  if (!st.is_ok()) return st;
  return f.get();
}

bool InfluxServer::wait_ready() {
  for (int i = 0; i < 300; ++i) {
    http_client::Request r;
    r.url = "http://127.0.0.1:" + std::to_string(http_port_) + "/ping";
    r.timeout = std::chrono::milliseconds(500);
    auto res = request(r);
    if (res.is_ok() && res->status == 204) return true;
    if (pid_ > 0 && it::wait_process(pid_, std::chrono::milliseconds(0)) >= 0) {
      pid_ = -1;  // it exited
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

bool InfluxServer::start_again() {
  if (pid_ > 0) return true;
  pid_ = it::start_process({kInfluxd, "-config", dir_ + "/influxdb.conf"}, dir_ + "/influxd.log", true);
  if (pid_ <= 0 || !wait_ready()) {
    ADD_FAILURE() << "influxd did not answer /ping on port " << http_port_ << "; see " << dir_ << "/influxd.log";
    return false;
  }
  return true;
}

bool InfluxServer::stop(bool crash) {
  if (pid_ <= 0) return true;
  ::kill(pid_, crash ? SIGKILL : SIGTERM);
  ::kill(pid_, SIGCONT);  // a paused server must run to see SIGTERM
  int code = it::wait_process(pid_, std::chrono::seconds(15));
  if (code < 0) {
    ::kill(pid_, SIGKILL);
    code = it::wait_process(pid_, std::chrono::seconds(5));
  }
  pid_ = -1;
  return code >= 0;
}

void InfluxServer::pause() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void InfluxServer::resume() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

std::vector<Series> InfluxServer::query(const std::string& q, const std::string& db) {
  http_client::Request r;
  r.method = http_client::Method::kPost;
  r.url = "http://127.0.0.1:" + std::to_string(http_port_) + "/query?epoch=ms" + (db.empty() ? "" : "&db=" + percent_encode(db));
  r.headers = {{"Content-Type", "application/x-www-form-urlencoded"},
               {"Authorization", http_client::basic_authorization(kAdmin, password_)}};
  r.body = "q=" + percent_encode(q);
  auto res = request(r);
  std::vector<Series> out;
  if (!res.is_ok() || res->status != 200) {
    ADD_FAILURE() << "query '" << q << "': " << (res.is_ok() ? std::to_string(res->status) + " " + res->body : res.status().to_string());
    return out;
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(res->body).get(doc) != simdjson::SUCCESS) {
    ADD_FAILURE() << "query '" << q << "': unparsable answer " << res->body.substr(0, 300);
    return out;
  }
  for (simdjson::dom::element result : doc["results"].get_array()) {
    std::string_view err;
    if (result["error"].get(err) == simdjson::SUCCESS) {
      ADD_FAILURE() << "query '" << q << "': " << err;
      continue;
    }
    simdjson::dom::array series;
    if (result["series"].get(series) != simdjson::SUCCESS) continue;
    for (simdjson::dom::element s : series) {
      Series one;
      std::string_view name;
      if (s["name"].get(name) == simdjson::SUCCESS) one.name = name;
      simdjson::dom::object tags;
      if (s["tags"].get(tags) == simdjson::SUCCESS) {
        for (auto [k, v] : tags) one.tags.emplace_back(std::string(k), text_of(v));
      }
      for (simdjson::dom::element c : s["columns"].get_array()) one.columns.push_back(text_of(c));
      for (simdjson::dom::element row : s["values"].get_array()) {
        std::vector<std::string> vals;
        for (simdjson::dom::element v : row.get_array()) vals.push_back(text_of(v));
        one.rows.push_back(std::move(vals));
      }
      out.push_back(std::move(one));
    }
  }
  return out;
}

long InfluxServer::write(const std::string& db, const std::string& lines, const std::string& precision) {
  http_client::Request r;
  r.method = http_client::Method::kPost;
  r.url = "http://127.0.0.1:" + std::to_string(http_port_) + "/write?db=" + percent_encode(db) + "&precision=" + precision;
  r.headers = {{"Authorization", http_client::basic_authorization(kAdmin, password_)}};
  r.body = lines;
  auto res = request(r);
  return res.is_ok() ? res->status : -1;
}

InfluxServer& shared_server() {
  static std::unique_ptr<InfluxServer> server = [] {
    std::string error;
    auto s = InfluxServer::start(&error);
    if (!s) {
      std::fprintf(stderr, "cannot start the test InfluxDB: %s\n", error.c_str());
      std::exit(1);
    }
    return s;
  }();
  return *server;
}

}  // namespace sluice::influxdb::testing
