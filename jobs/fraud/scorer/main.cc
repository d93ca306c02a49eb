// sluice-scorer: the fraud job's scoring service (README.md has every flag).
//
//   sluice-scorer --model model.json --token-file token \
//                 --grpc-bind 127.0.0.1:7070 --http-bind 127.0.0.1:7071
//
// The main thread waits for signals: SIGHUP reloads the model (so does a
// change of the file, checked every --watch-interval), SIGINT/SIGTERM stop.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>

#include "engine/common/auth.h"
#include "engine/common/logging.h"
#include "engine/common/time.h"
#include "jobs/fraud/scorer/server.h"

namespace {

int fail(const std::string& why) {
  spdlog::error("sluice-scorer: {}", why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sluice;
  CLI::App app{"The fraud job's scoring service: a logistic-regression model over gRPC and HTTP/JSON", "sluice-scorer"};
  fraud_scorer::ScorerOptions o;
  std::string model, token_file, watch = "1s", ready_file, log_level = "info";
  app.add_option("--model", model, "model file (JSON: version, bias, weights)")->required();
  app.add_option("--grpc-bind", o.grpc_bind, "gRPC host:port (port 0: any free port; 'off': none)")->capture_default_str();
  app.add_option("--http-bind", o.http_bind, "HTTP host:port (port 0: any free port; 'off': none)")->capture_default_str();
  app.add_option("--token-file", token_file, "file holding the bearer token clients send (mode 0600; default: $SLUICE_SCORER_TOKEN)");
  app.add_option("--tls-cert", o.tls.cert, "PEM certificate: TLS on both endpoints");
  app.add_option("--tls-key", o.tls.key, "PEM private key of --tls-cert");
  app.add_option("--tls-ca", o.tls.ca, "PEM CA: clients must present a certificate it signed (mutual TLS)");
  app.add_option("--max-body-bytes", o.max_body_bytes, "largest HTTP body / gRPC message")->capture_default_str();
  app.add_option("--max-features", o.max_features, "features per request")->capture_default_str();
  app.add_option("--threads", o.threads, "HTTP worker threads (each open HTTP connection holds one)")->capture_default_str();
  app.add_option("--grpc-max-streams", o.grpc_max_streams, "concurrent gRPC calls per connection")->capture_default_str();
  app.add_option("--grpc-memory-bytes", o.grpc_memory_bytes, "memory for gRPC calls in flight")->capture_default_str();
  app.add_option("--watch-interval", watch, "how often the model file is checked for changes (0s: only on SIGHUP)")->capture_default_str();
  app.add_option("--ready-file", ready_file, "written once serving: {\"grpc\":\"host:port\",\"http\":\"host:port\"}");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (Status st = init_logging(log_level); !st.is_ok()) return fail(st.message());
  if (o.grpc_bind == "off") o.grpc_bind.clear();
  if (o.http_bind == "off") o.http_bind.clear();
  auto interval = parse_duration(watch);
  if (!interval.is_ok()) return fail("--watch-interval: " + interval.status().message());

  if (!token_file.empty()) {
    auto t = auth::read_secret_file(token_file);
    if (!t.is_ok()) return fail("--token-file: " + t.status().message());
    o.token = *t;
  } else if (const char* env = std::getenv("SLUICE_SCORER_TOKEN"); env && *env) {
    o.token = env;
  } else {
    return fail("a token is required: --token-file FILE or the environment variable SLUICE_SCORER_TOKEN");
  }

  // Signals go to this thread only (sigtimedwait below): block them before
  // any server thread starts, so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto store = fraud_scorer::ModelStore::open(model);
  if (!store.is_ok()) return fail(store.status().message());
  auto server = fraud_scorer::ScorerServer::start(o, store->get());
  if (!server.is_ok()) return fail(server.status().message());

  if (!ready_file.empty()) {
    const std::string tmp = ready_file + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << "{\"grpc\":\"" << (*server)->grpc_address() << "\",\"http\":\"" << (*server)->http_address() << "\"}\n";
      if (!out) return fail("cannot write --ready-file '" + ready_file + "'");
    }
    if (std::rename(tmp.c_str(), ready_file.c_str()) != 0) return fail("cannot write --ready-file '" + ready_file + "'");
  }

  const int64_t wait_ms = interval->count() > 0 ? interval->count() : 3'600'000;
  for (;;) {
    timespec ts{static_cast<time_t>(wait_ms / 1000), static_cast<long>(wait_ms % 1000) * 1'000'000};
    int sig = sigtimedwait(&signals, nullptr, &ts);
    if (sig == SIGINT || sig == SIGTERM) break;
    if (sig == SIGHUP) {
      (void)(*store)->reload("SIGHUP");  // a failure is logged; the old model keeps serving
    } else if (interval->count() > 0) {
      (void)(*store)->reload_if_changed();
    }
  }
  spdlog::info("sluice-scorer: stopping");
  server->reset();
  return 0;
}
