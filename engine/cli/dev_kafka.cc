// sluice dev-kafka: a Kafka broker for development and tests (librdkafka's
// mock cluster). Prints its bootstrap address, optionally writes it to a
// file, and runs until SIGTERM or SIGINT.
#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "connectors/kafka/dev_broker.h"
#include "engine/cli/commands.h"

namespace sluice::cli {

namespace {

struct DevKafkaCli {
  int brokers = 1;
  std::vector<std::string> topics;
  std::string bootstrap_file;
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
  // Block the stop signals before librdkafka starts its threads (they
  // inherit the mask), then wait for one with sigwait on this thread.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
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

  int sig = 0;
  sigwait(&stop, &sig);
  std::cerr << "dev-kafka: stopping (signal " << sig << ")" << std::endl;
  broker->reset();
  if (!c.bootstrap_file.empty()) std::remove(c.bootstrap_file.c_str());
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
  return [c] { return run(*c); };
}

}  // namespace sluice::cli
