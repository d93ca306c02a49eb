// Sinks: a Sink<T> describes where records go (immutable, built by the
// job); each sink subtask creates a SinkWriter<T>. Writers that give
// exactly-once output pre-commit at the barrier (snapshot_state, or
// snapshot_state_async: a cheap capture on the task thread, the fsync or
// upload on a snapshot thread before the acknowledgement) and commit in
// notify_checkpoint_complete.
#pragma once

#include <memory>
#include <string>

#include "engine/common/metrics.h"
#include "engine/runtime/operator.h"

namespace sluice::runtime {

/// Writes one subtask's records. Created, used and destroyed on the task
/// thread.
template <class T>
class SinkWriter {
 public:
  virtual ~SinkWriter() = default;
  /// After initialize_state (if restoring).
  virtual Status open(OperatorContext& ctx) { return Status::ok(); }
  virtual Status write(const T& value, EventTime ts) = 0;
  /// Makes everything written so far durable/visible (end of input).
  virtual Status flush() { return Status::ok(); }
  /// At a checkpoint barrier: flush or pre-commit, and return what recovery
  /// needs (e.g. pending transactions).
  virtual Result<std::string> snapshot_state(CheckpointId id) {
    SLUICE_RETURN_IF_ERROR(flush());
    return std::string();
  }
  /// What the sink operator calls at the barrier: the pre-commit split in
  /// a capture on the task thread and an asynchronous part (e.g. fsync of
  /// the pending files) that must succeed before the checkpoint is
  /// acknowledged (StreamOperator::snapshot_state_async). A writer that
  /// overrides it implements snapshot_state as
  /// complete_inline(snapshot_state_async(id)). Default: snapshot_state().
  virtual Result<OperatorStateSnapshot> snapshot_state_async(CheckpointId id) {
    auto r = snapshot_state(id);
    if (!r.is_ok()) return r.status();
    return OperatorStateSnapshot{std::move(*r), {}};
  }
  virtual Status notify_checkpoint_complete(CheckpointId id) { return Status::ok(); }
  /// StreamOperator::commit_in_progress: commit work of a completed
  /// checkpoint still running. Default: false.
  virtual bool commit_in_progress() const { return false; }
  virtual void notify_checkpoint_aborted(CheckpointId id) {}
  /// States of every subtask of the previous run, before open().
  virtual Status initialize_state(const OperatorRestore& restore) { return Status::ok(); }
  virtual Status close() { return Status::ok(); }
};

template <class T>
class Sink {
 public:
  virtual ~Sink() = default;
  virtual std::string description() const = 0;
  virtual std::unique_ptr<SinkWriter<T>> create_writer() const = 0;
  /// Checks the sink against the job's configuration when the job is built
  /// (run-local start, `sluice submit`), before anything runs. Default: OK.
  virtual Status validate(const Configuration& job_config) const { return Status::ok(); }
};

/// Drives a SinkWriter; a failed write fails the task.
template <class T>
class SinkOperator final : public OneInputOperator<T> {
 public:
  explicit SinkOperator(std::shared_ptr<const Sink<T>> sink) : sink_(std::move(sink)) {}

  Status initialize_state(const OperatorRestore& restore) override {
    writer_ = sink_->create_writer();
    return writer_->initialize_state(restore);
  }
  Status open() override {
    const auto& info = this->context().info();
    latency_ = std::make_unique<metrics::LatencyRecorder>(info.job_name, info.operator_name);
    return writer_->open(this->context());
  }
  void process_element(const T& value, EventTime ts) override {
    if (latency_ && !ts.is_min()) latency_->observe(ts.ms());
    Status st = writer_->write(value, ts);
    if (!st.is_ok()) this->context().fail(st.with_context("sink " + sink_->description()));
  }
  Status finish() override {
    if (latency_) latency_->flush();
    return writer_->flush();
  }
  Result<std::string> snapshot_state(CheckpointId id) override { return writer_->snapshot_state(id); }
  Result<OperatorStateSnapshot> snapshot_state_async(CheckpointId id) override {
    return writer_->snapshot_state_async(id);
  }
  Status notify_checkpoint_complete(CheckpointId id) override {
    return writer_->notify_checkpoint_complete(id);
  }
  void notify_checkpoint_aborted(CheckpointId id) override { writer_->notify_checkpoint_aborted(id); }
  bool commit_in_progress() const override { return writer_ && writer_->commit_in_progress(); }
  void close() override {
    if (writer_) {
      Status st = writer_->close();
      (void)st;  // close errors after finish are logged by the writer
    }
  }

 private:
  std::shared_ptr<const Sink<T>> sink_;
  std::unique_ptr<SinkWriter<T>> writer_;
  // sluice_end_to_end_latency_seconds: wall clock at the sink minus event time.
  std::unique_ptr<metrics::LatencyRecorder> latency_;
};

}  // namespace sluice::runtime
