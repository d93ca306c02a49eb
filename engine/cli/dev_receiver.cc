// sluice dev-receiver: the receiving end of a push sink for demos and
// development (connectors/http/dev_receiver.h). Prints its address,
// optionally writes it to a file, and runs until SIGTERM or SIGINT.
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <iostream>

#include "connectors/http/dev_receiver.h"
#include "engine/cli/commands.h"
#include "state/snapshot.h"

namespace sluice::cli {

namespace {

struct DevReceiverCli {
  http_sink::DevReceiverOptions o;
  std::string token_file;
  std::string keys;
  std::string address_file;
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
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
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
  int sig = 0;
  sigwait(&stop, &sig);
  auto s = (*r)->stats();
  std::cerr << "dev-receiver: stopping (signal " << sig << ") after " << s.batches << " batches (" << s.duplicates
            << " repeated keys ignored), " << s.records << " records" << std::endl;
  r->reset();
  if (!c.address_file.empty()) std::remove(c.address_file.c_str());
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
  return [c] { return run(*c); };
}

}  // namespace sluice::cli
