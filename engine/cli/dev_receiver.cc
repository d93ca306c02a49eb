// sluice dev-receiver: the receiving end of a push sink for demos and
// development (connectors/http/dev_receiver.h). Prints its address,
// optionally writes it to a file, and runs until SIGTERM or SIGINT.
#include <csignal>
#include <cstdio>
#include <future>
#include <iostream>

#include "connectors/http/dev_receiver.h"
#include "engine/cli/commands.h"
#include "engine/cli/signal_shutdown.h"
#include "state/snapshot.h"

namespace sluice::cli {

namespace {

struct DevReceiverCli {
  http_sink::DevReceiverOptions o;
  std::string token_file;
  std::string keys;
  std::string address_file;
  std::string shutdown_timeout = "10s";
};

int run(DevReceiverCli& c) {
  if (!c.token_file.empty()) {
    auto t = read_token_file(c.token_file);
    if (!t.is_ok()) return report_error(t.status().message(), 2);
    c.o.token = *t;
  }
  for (size_t start = 0; start < c.keys.size();) {
    size_t comma = c.keys.find(',', start);
    std::string k = c.keys.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!k.empty()) c.o.key_fields.push_back(k);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  auto bound = parse_duration(c.shutdown_timeout);
  if (!bound.is_ok() || bound->count() <= 0) return report_error("--shutdown-timeout must be a positive duration", 2);
  SignalShutdown signals(*bound);  // before the server starts its threads
  std::signal(SIGPIPE, SIG_IGN);
  auto r = http_sink::DevPushReceiver::start(c.o);
  if (!r.is_ok()) return report_error(r.status().message(), 1);
  const std::string address = (*r)->address();
  if (!c.address_file.empty()) {
    Status st = state::write_file_atomic(c.address_file, address + "\n");
    if (!st.is_ok()) return report_error(st.message(), 1);
  }
  std::cout << address << std::endl;
  std::cerr << "dev-receiver: taking push batches at http://" << address << "/<any path>"
            << (c.o.token.empty() ? "" : " (bearer token required)") << "; latest records at /records"
            << (c.o.key_fields.empty() ? "" : " (per " + c.keys + ")") << ", counts at /stats. Stop with Ctrl-C or SIGTERM."
            << std::endl;
  std::promise<void> stopped;
  signals.watch([&] {
    auto s = (*r)->stats();
    std::cerr << "dev-receiver: stopping (" << (signals.signal() == SIGTERM ? "SIGTERM" : "SIGINT") << ") after "
              << s.batches << " batches (" << s.duplicates << " repeated keys ignored), " << s.records << " records"
              << std::endl;
    r->reset();  // stops accepting, closes the connections
    if (!c.address_file.empty()) std::remove(c.address_file.c_str());
    std::cerr << "dev-receiver: stopped" << std::endl;
    stopped.set_value();
  });
  stopped.get_future().wait();
  signals.finish();
  return 0;
}

}  // namespace

Runner add_dev_receiver(CLI::App& app) {
  auto c = std::make_shared<DevReceiverCli>();
  auto* cmd = app.add_subcommand("dev-receiver",
                                 "Run the receiving end of an HTTP push sink for demos and development: applies "
                                 "each batch once per idempotency key and serves the latest records");
  cmd->add_option("--bind", c->o.bind, "host:port to listen on (port 0: any free port)")->capture_default_str();
  cmd->add_option("--token-file", c->token_file, "Require this bearer token (first line of the file)");
  cmd->add_option("--key", c->keys, "Record fields whose values identify a record: the latest per key is kept "
                                    "(e.g. minute,step); none: every record is kept");
  cmd->add_option("--max-records", c->o.max_keys, "Records kept at most")->capture_default_str();
  cmd->add_option("--address-file", c->address_file, "Also write the bound address to this file (removed on exit)");
  cmd->add_option("--shutdown-timeout", c->shutdown_timeout,
                  "On SIGINT/SIGTERM: longest clean stop before the process exits anyway with code 1")
      ->capture_default_str();
  return [c] { return run(*c); };
}

}  // namespace sluice::cli
