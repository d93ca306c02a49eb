// Helpers of the Kafka tests: a `sluice dev-kafka` broker per test binary
// (a subprocess on loopback), reading and writing topics, running
// `sluice run-local`, and a fake operator context for driving readers
// and writers directly.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "connectors/kafka/client.h"
#include "connectors/kafka/writer_core.h"
#include "engine/common/clock.h"
#include "engine/common/config.h"
#include "engine/runtime/operator.h"
#include "engine/runtime/processing_time.h"
#include "engine/runtime/source.h"

namespace sluice::kafka::testing {

/// ${SLUICE_BUILD_DIR} (set by ctest); aborts the test binary if unset.
std::string build_dir();
/// A fresh empty directory under the system temp dir.
std::string make_temp_dir(const std::string& name);

/// `sluice dev-kafka` as a subprocess. Started by the test, stopped with
/// SIGTERM by stop() or the destructor.
class DevKafka {
 public:
  /// Topics as "name:partitions". Waits (up to 20 s) for the bootstrap file.
  static std::unique_ptr<DevKafka> start(const std::vector<std::string>& topics, int brokers = 1);
  ~DevKafka();
  const std::string& bootstrap() const { return bootstrap_; }
  /// SIGTERM and wait; returns the exit status (0 = clean), -1 if it had
  /// to be killed.
  int stop();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::string dir_;
  std::string bootstrap_;
};

/// Result of a subprocess: exit code and what it printed.
struct ProcessResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr, interleaved
};
/// Runs argv[0] with the arguments, waits up to `timeout_s`.
ProcessResult run_process(const std::vector<std::string>& argv, int timeout_s = 120);
/// `sluice run-local <library> <args...>`.
ProcessResult run_local(const std::string& library, const std::vector<std::string>& args,
                        int timeout_s = 120);
/// Path of a test job library built from tests/kafka/jobs.
std::string test_job_library();

/// Every message of `topic` from the beginning up to the end offsets
/// found now (all partitions), in partition then offset order.
std::vector<KafkaMessage> read_topic(const std::string& bootstrap, const std::string& topic,
                                     bool read_committed = true);
/// Produces `values` (one message each) and waits for the acks.
void produce(const std::string& bootstrap, const std::string& topic,
             const std::vector<std::string>& values, int32_t partition = -1);
/// The committed offset of group/topic/partition (-1001 if none).
int64_t committed_offset(const std::string& bootstrap, const std::string& group,
                         const std::string& topic, int32_t partition);

/// The value of metric `name` with exactly these labels (a subset match on
/// labels), or -1 if there is none.
double metric_value(const std::string& name, const std::map<std::string, std::string>& labels);

/// Exactly-once markers kept in memory. The dev broker acknowledges
/// transactional offset commits but does not store them, so tests keep the
/// marker here: stage() still sends the real send_offsets_to_transaction
/// request, and the marker is applied exactly when commit_transaction
/// succeeds, as Kafka does atomically. Thread-safe.
class MemoryMarkerStore final : public EosMarkerStore {
 public:
  Result<std::optional<EosMarker>> read(const std::string&, const ClientProperties&,
                                        const std::string& group, const std::string&) override {
    std::lock_guard lk(mu_);
    ++reads_;
    auto it = markers_.find(group);
    if (it == markers_.end()) return std::optional<EosMarker>();
    return std::optional<EosMarker>(it->second);
  }
  Status stage(rd_kafka_t* producer, const std::string& group, const std::string& topic,
               const EosMarker& marker, int timeout_ms) override {
    return kafka_offsets_marker_store()->stage(producer, group, topic, marker, timeout_ms);
  }
  void committed(const std::string& group, const EosMarker& marker) override {
    std::lock_guard lk(mu_);
    markers_[group] = marker;
  }
  std::optional<EosMarker> get(const std::string& group) {
    std::lock_guard lk(mu_);
    auto it = markers_.find(group);
    return it == markers_.end() ? std::nullopt : std::optional<EosMarker>(it->second);
  }
  /// How often recovery asked for a marker.
  int reads() {
    std::lock_guard lk(mu_);
    return reads_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, EosMarker> markers_;
  int reads_ = 0;
};

/// An OperatorContext for one reader or writer outside a task.
class FakeContext final : public runtime::OperatorContext {
 public:
  FakeContext(int subtask, int parallelism, Configuration config = {});
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
  runtime::QueueMailboxExecutor mailbox_;
  runtime::OperatorMetrics metrics_;
};

/// A SourceOutput that keeps everything.
template <class T>
class CollectingOutput final : public runtime::SourceOutput<T> {
 public:
  void collect(const T& value, int split, EventTime ts) override {
    values.push_back(value);
    splits.push_back(split);
    timestamps.push_back(ts);
  }
  void dead_letter(DeadLetter dl) override { dead_letters.push_back(std::move(dl)); }
  void set_split_count(int n) override { split_count = n; }
  void split_finished(int split) override { finished.push_back(split); }

  std::vector<T> values;
  std::vector<int> splits;
  std::vector<EventTime> timestamps;
  std::vector<DeadLetter> dead_letters;
  std::vector<int> finished;
  int split_count = -1;
};

/// Polls `reader` until it reports the end of input or `max_ms` passes;
/// returns the last status.
template <class Reader, class Out>
Result<runtime::PollStatus> poll_until_end(Reader& reader, Out& out, int64_t max_ms = 30'000) {
  int64_t deadline = monotonic_ns() + max_ms * 1'000'000;
  while (monotonic_ns() < deadline) {
    auto r = reader.poll_next(out);
    if (!r.is_ok() || *r == runtime::PollStatus::kEndOfInput) return r;
  }
  return Status::timeout("reader did not reach the end of its input");
}

/// Polls until `out` holds at least `n` values (or `max_ms` passes).
template <class Reader, class Out>
Status poll_until_count(Reader& reader, Out& out, size_t n, int64_t max_ms = 30'000) {
  int64_t deadline = monotonic_ns() + max_ms * 1'000'000;
  while (out.values.size() < n) {
    if (monotonic_ns() > deadline) return Status::timeout("reader got " + std::to_string(out.values.size()) + " of " + std::to_string(n));
    auto r = reader.poll_next(out);
    if (!r.is_ok()) return r.status();
    if (*r == runtime::PollStatus::kEndOfInput) break;
  }
  return Status::ok();
}

}  // namespace sluice::kafka::testing
