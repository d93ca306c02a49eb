// sluice dev-kafka: a Kafka broker for development and tests (librdkafka's
// mock cluster). Prints its bootstrap address, optionally writes it to a
// file, and runs until SIGTERM or SIGINT.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <future>
#include <iostream>

#include "connectors/kafka/dev_broker.h"
#include "engine/cli/commands.h"
#include "engine/cli/signal_shutdown.h"

namespace sluice::cli {

namespace {

struct DevKafkaCli {
  int brokers = 1;
  std::vector<std::string> topics;
  std::string bootstrap_file;
  std::string shutdown_timeout = "10s";
};

// Writes via a temporary file and rename, so a reader polling for the
// file never sees it half written.
Status write_atomically(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content << "\n";
    out.flush();
    if (!out) return Status::io_error("cannot write '" + tmp + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::from_errno("cannot rename '" + tmp + "' to '" + path + "'", errno);
  }
  return Status::ok();
}

int run(const DevKafkaCli& c) {
  kafka::DevBrokerOptions o;
  o.brokers = c.brokers;
  for (const auto& spec : c.topics) {
    auto t = kafka::parse_dev_topic(spec);
    if (!t.is_ok()) return report_error(t.status().message(), 2);
    o.topics.push_back(*t);
  }
  auto bound = parse_duration(c.shutdown_timeout);
  if (!bound.is_ok() || bound->count() <= 0) return report_error("--shutdown-timeout must be a positive duration", 2);
  // Blocks the stop signals before librdkafka starts its threads (they
  // inherit the mask).
  SignalShutdown signals(*bound);
  std::signal(SIGPIPE, SIG_IGN);

  auto broker = kafka::DevBroker::start(o);
  if (!broker.is_ok()) return report_error(broker.status().message(), 1);
  const std::string bootstrap = (*broker)->bootstrap();
  if (!c.bootstrap_file.empty()) {
    Status st = write_atomically(c.bootstrap_file, bootstrap);
    if (!st.is_ok()) return report_error(st.message(), 1);
  }
  std::cout << bootstrap << std::endl;
  std::cerr << "dev-kafka: librdkafka mock cluster, " << c.brokers << " broker(s) at " << bootstrap;
  for (const auto& t : o.topics) std::cerr << "; topic " << t.name << " (" << t.partitions << " partitions)";
  std::cerr << ". Stop with Ctrl-C or SIGTERM." << std::endl;

  // The broker's clients see its connections close; the address file goes.
  std::promise<void> stopped;
  signals.watch([&] {
    std::cerr << "dev-kafka: stopping (" << (signals.signal() == SIGTERM ? "SIGTERM" : "SIGINT") << ")" << std::endl;
    broker->reset();
    if (!c.bootstrap_file.empty()) std::remove(c.bootstrap_file.c_str());
    std::cerr << "dev-kafka: stopped" << std::endl;
    stopped.set_value();
  });
  stopped.get_future().wait();
  signals.finish();
  return 0;
}

}  // namespace

Runner add_dev_kafka(CLI::App& app) {
  auto c = std::make_shared<DevKafkaCli>();
  auto* cmd = app.add_subcommand(
      "dev-kafka",
      "Run a Kafka broker for development and tests (librdkafka's mock cluster; see "
      "connectors/kafka/README.md for its limits)");
  cmd->add_option("--brokers", c->brokers, "Number of brokers")->capture_default_str()->check(CLI::Range(1, 16));
  cmd->add_option("--topic", c->topics, "Topic to create, NAME:PARTITIONS (repeatable)");
  cmd->add_option("--bootstrap-file", c->bootstrap_file,
                  "Also write the bootstrap address to this file (removed on exit)");
  cmd->add_option("--shutdown-timeout", c->shutdown_timeout,
                  "On SIGINT/SIGTERM: longest clean stop before the process exits anyway with code 1")
      ->capture_default_str();
  return [c] { return run(*c); };
}

}  // namespace sluice::cli
