#include "tests/kafka/kafka_test_util.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <prometheus/registry.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "engine/common/metrics.h"

extern char** environ;

namespace sluice::kafka::testing {

namespace fs = std::filesystem;

std::string build_dir() {
  const char* d = std::getenv("SLUICE_BUILD_DIR");
  if (!d || !*d) {
    std::fprintf(stderr, "SLUICE_BUILD_DIR is not set (run the tests through ctest)\n");
    std::abort();
  }
  return d;
}

std::string make_temp_dir(const std::string& name) {
  static int counter = 0;
  fs::path p = fs::temp_directory_path() /
               ("sluice-kafka-" + name + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

namespace {

pid_t spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  return pid;
}

// Waits for `pid` up to `timeout_ms`; returns the exit code, or -1 on
// timeout (the process is then still running).
int wait_for(pid_t pid, int64_t timeout_ms, bool* exited) {
  int64_t deadline = monotonic_ns() + timeout_ms * 1'000'000;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      *exited = true;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    if (monotonic_ns() > deadline) {
      *exited = false;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::unique_ptr<DevKafka> DevKafka::start(const std::vector<std::string>& topics, int brokers) {
  auto k = std::unique_ptr<DevKafka>(new DevKafka());
  k->dir_ = make_temp_dir("broker");
  std::string bs_file = k->dir_ + "/bootstrap";
  std::vector<std::string> argv = {build_dir() + "/sluice", "dev-kafka", "--brokers",
                                   std::to_string(brokers), "--bootstrap-file", bs_file};
  for (const auto& t : topics) {
    argv.push_back("--topic");
    argv.push_back(t);
  }
  k->pid_ = spawn(argv, k->dir_ + "/log");
  int64_t deadline = monotonic_ns() + 20'000'000'000;
  while (!fs::exists(bs_file)) {
    if (monotonic_ns() > deadline) throw std::runtime_error("dev-kafka did not start: " + slurp(k->dir_ + "/log"));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::ifstream in(bs_file);
  std::getline(in, k->bootstrap_);
  if (k->bootstrap_.empty()) throw std::runtime_error("dev-kafka wrote an empty bootstrap file");
  return k;
}

int DevKafka::stop() {
  if (pid_ < 0) return 0;
  ::kill(pid_, SIGTERM);
  bool exited = false;
  int code = wait_for(pid_, 10'000, &exited);
  if (!exited) {
    ::kill(pid_, SIGKILL);
    wait_for(pid_, 5'000, &exited);
    code = -1;
  }
  pid_ = -1;
  return code;
}

DevKafka::~DevKafka() {
  stop();
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

ProcessResult run_process(const std::vector<std::string>& argv, int timeout_s) {
  std::string dir = make_temp_dir("proc");
  std::string log = dir + "/out";
  pid_t pid = spawn(argv, log);
  bool exited = false;
  ProcessResult r;
  r.exit_code = wait_for(pid, int64_t{timeout_s} * 1000, &exited);
  if (!exited) {
    ::kill(pid, SIGKILL);
    wait_for(pid, 5'000, &exited);
    r.exit_code = -1;
  }
  r.output = slurp(log);
  std::error_code ec;
  fs::remove_all(dir, ec);
  return r;
}

ProcessResult run_local(const std::string& library, const std::vector<std::string>& args,
                        int timeout_s) {
  std::vector<std::string> argv = {build_dir() + "/sluice", "run-local", library};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, timeout_s);
}

std::string test_job_library() { return build_dir() + "/tests/kafka/jobs/libkafka_test_job.so"; }

std::vector<KafkaMessage> read_topic(const std::string& bootstrap, const std::string& topic,
                                     bool read_committed) {
  ClientProperties props = {{"bootstrap.servers", bootstrap},
                            {"group.id", "sluice-test-reader"},
                            {"enable.auto.commit", "false"},
                            {"enable.partition.eof", "true"},
                            {"isolation.level", read_committed ? "read_committed" : "read_uncommitted"}};
  auto c = make_client(RD_KAFKA_CONSUMER, props, {});
  if (!c.is_ok()) throw std::runtime_error(c.status().message());
  rd_kafka_t* rk = c->get();
  auto counts = partition_counts(rk, {topic}, 10'000);
  if (!counts.is_ok() || !counts->count(topic)) throw std::runtime_error("no topic " + topic);
  int n = counts->at(topic);
  std::vector<int64_t> end(n);
  PartitionList list = new_partition_list(n);
  for (int p = 0; p < n; ++p) {
    auto w = query_watermarks(rk, topic, p, 10'000);
    if (!w.is_ok()) throw std::runtime_error(w.status().message());
    end[p] = w->high;
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = w->low;
  }
  rd_kafka_assign(rk, list.get());
  std::vector<std::vector<KafkaMessage>> per(n);
  std::vector<bool> done(n);
  for (int p = 0; p < n; ++p) {
    auto w = query_watermarks(rk, topic, p, 10'000);
    done[p] = w->low >= end[p];
  }
  int64_t deadline = monotonic_ns() + 30'000'000'000;
  while (std::find(done.begin(), done.end(), false) != done.end()) {
    if (monotonic_ns() > deadline) throw std::runtime_error("reading " + topic + " timed out");
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (m->offset >= end[m->partition]) done[m->partition] = true;
    } else if (!m->err) {
      KafkaMessage km;
      km.topic = topic;
      km.partition = m->partition;
      km.offset = m->offset;
      rd_kafka_timestamp_type_t tt;
      km.timestamp_ms = rd_kafka_message_timestamp(m, &tt);
      if (m->key) km.key = std::string(static_cast<const char*>(m->key), m->key_len);
      if (m->payload) km.value = std::string(static_cast<const char*>(m->payload), m->len);
      KafkaRecordView v;
      v.message = m;
      km.headers = v.headers();
      per[m->partition].push_back(std::move(km));
      if (m->offset + 1 >= end[m->partition]) done[m->partition] = true;
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  std::vector<KafkaMessage> out;
  for (auto& v : per) out.insert(out.end(), v.begin(), v.end());
  return out;
}

void produce(const std::string& bootstrap, const std::string& topic,
             const std::vector<std::string>& values, int32_t partition) {
  auto p = SimpleProducer::create(bootstrap);
  if (!p.is_ok()) throw std::runtime_error(p.status().message());
  for (const auto& v : values) {
    Status st = (*p)->produce(topic, v, std::nullopt, partition);
    if (!st.is_ok()) throw std::runtime_error(st.message());
  }
  Status st = (*p)->flush();
  if (!st.is_ok()) throw std::runtime_error(st.message());
}

int64_t committed_offset(const std::string& bootstrap, const std::string& group,
                         const std::string& topic, int32_t partition) {
  auto c = make_client(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap}, {"group.id", group}}, {});
  if (!c.is_ok()) throw std::runtime_error(c.status().message());
  PartitionList list = new_partition_list();
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition);
  rd_kafka_resp_err_t err = rd_kafka_committed(c->get(), list.get(), 10'000);
  if (err) throw std::runtime_error(rd_kafka_err2str(err));
  return list->elems[0].offset;
}

double metric_value(const std::string& name, const std::map<std::string, std::string>& labels) {
  for (const auto& fam : metrics::registry().Collect()) {
    if (fam.name != name) continue;
    for (const auto& m : fam.metric) {
      bool match = true;
      for (const auto& [k, v] : labels) {
        bool found = false;
        for (const auto& l : m.label)
          if (l.name == k && l.value == v) found = true;
        if (!found) match = false;
      }
      if (!match) continue;
      if (fam.type == prometheus::MetricType::Counter) return m.counter.value;
      if (fam.type == prometheus::MetricType::Gauge) return m.gauge.value;
    }
  }
  return -1;
}

FakeContext::FakeContext(int subtask, int parallelism, Configuration config)
    : config_(std::move(config)) {
  info_.job_name = "kafka-test";
  info_.job_id = "local";
  info_.operator_name = "op";
  info_.uid = "op-uid";
  info_.subtask = subtask;
  info_.parallelism = parallelism;
}

}  // namespace sluice::kafka::testing
