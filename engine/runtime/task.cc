#include "engine/runtime/task.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <map>

#include "engine/common/json.h"
#include "engine/proto/jobgraph.pb.h"
#include "engine/runtime/barrier_handler.h"
#include "engine/runtime/channel_state.h"
#include "engine/runtime/input_gate.h"
#include "engine/runtime/mailbox.h"
#include "engine/runtime/operator_chain.h"
#include "engine/runtime/record_writer.h"
#include "engine/runtime/source.h"
#include "engine/runtime/type_info.h"

namespace sluice::runtime {

std::string_view task_state_name(TaskState s) {
  switch (s) {
    case TaskState::kCreated: return "CREATED";
    case TaskState::kRunning: return "RUNNING";
    case TaskState::kFinished: return "FINISHED";
    case TaskState::kCanceled: return "CANCELED";
    case TaskState::kFailed: return "FAILED";
  }
  return "?";
}

std::string TaskId::to_string() const {
  return job_id + "/v" + std::to_string(vertex) + "/" + std::to_string(subtask) + "#" +
         std::to_string(attempt);
}

namespace {

const proto::JobVertex* find_vertex(const proto::JobGraph& jg, int id) {
  for (const auto& v : jg.vertices())
    if (v.id() == id) return &v;
  return nullptr;
}

using Clock_ = std::chrono::steady_clock;

}  // namespace

// ---------------------------------------------------------------------------

class Task::Impl final : public ChainHost, public CheckpointPerformer {
 public:
  Impl(Task& task, std::shared_ptr<const JobInstance> job, ChannelProvider& channels,
       TaskServices services, TaskOptions options, std::optional<TaskRestore> restore)
      : task_(task),
        job_(std::move(job)),
        channels_(channels),
        listener_(services.listener),
        clock_(services.clock),
        snapshots_(services.snapshots),
        options_(options),
        restore_(std::move(restore)),
        mailbox_(&signal_, options.mailbox_capacity),
        checkpointing_(job_->checkpoints != nullptr) {}
  // Input channels may outlive the task (a network receiver still holds
  // them): they must not notify signal_ once it is gone.
  ~Impl() override {
    for (auto& ic : channel_list_)
      if (ic.channel) ic.channel->set_consumer_signal(nullptr);
    if (gate_)
      for (auto& ic : gate_->channels())
        if (ic.channel) ic.channel->set_consumer_signal(nullptr);
  }

  /// Resolves channels (constructor time, so every channel exists before
  /// any task thread runs).
  Status wire_channels();
  void run();

  void cancel() {
    cancelled_.store(true);
    mailbox_.refuse();
    signal_.notify();
  }
  Status failure() const {
    std::lock_guard lk(failure_mu_);
    return failure_;
  }
  TaskMailbox& mailbox() { return mailbox_; }
  bool is_source() const { return is_source_; }
  void set_wiring_status(Status st) { wiring_ = std::move(st); }

  // Control actions (task thread, main loop).
  void trigger_source_checkpoint(const Barrier& b) {
    if (!is_source_ || should_stop() || b.id.value() <= last_checkpoint_) return;
    PendingSnapshot snap;
    if (!snapshot_operators(b, 0, snap)) return;
    broadcast_barrier(b);
    complete_snapshot(std::move(snap), {});
  }
  void on_checkpoint_complete(CheckpointId id, bool final_checkpoint) {
    Status st = chain_ ? chain_->notify_checkpoint_complete(id) : Status::ok();
    if (!st.is_ok()) {
      fail(st);
      return;
    }
    // Reported committed (stop-with-savepoint waits for it) once operators'
    // commit work is done: run_mailbox() publishes it when still running.
    commit_pending_ = id.value();
    publish_committed();
    if (final_checkpoint && ops_finished_) final_complete_ = true;
  }
  void publish_committed() {
    if (commit_pending_ == 0 || (chain_ && chain_->commit_in_progress())) return;
    task_.metrics_.committed_checkpoint.store(std::exchange(commit_pending_, 0), std::memory_order_release);
  }
  void on_checkpoint_aborted(CheckpointId id) {
    if (chain_) chain_->notify_checkpoint_aborted(id);
  }

  // ChainHost
  void fail(Status st) override;
  const std::atomic<bool>* failed_flag() const override { return &failed_; }
  void emit_dead_letter(const DeadLetter& dl) override;
  bool post(MailboxExecutor::Action action, int priority) override {
    if (should_stop() || closing_.load(std::memory_order_acquire)) return false;
    return mailbox_.put(std::move(action), priority);
  }
  bool yield(int priority, bool wait) override;

  // CheckpointPerformer
  int64_t last_checkpoint() const override { return last_checkpoint_; }
  bool snapshot_operators(const Barrier& b, int64_t alignment_ns, PendingSnapshot& out) override;
  void broadcast_barrier(const Barrier& b) override {
    for (auto& [id, w] : writers_) w->broadcast_barrier(b);
  }
  void complete_snapshot(PendingSnapshot snap, std::vector<RecordedChannel> recorded) override;
  void decline(CheckpointId id, const Status& why) override {
    if (listener_) listener_->on_checkpoint_declined(task_.id_, id, why);
  }

 private:
  Status build();
  Status restore_and_open();
  Status run_source_loop();
  Status run_input_loop();
  Status end_of_data();
  Status wait_for_final_checkpoint();
  /// One pass over the mailbox: every queued action and due timer, and
  /// unaligned checkpoints announced on the inputs.
  void run_mailbox() {
    mailbox_.run();
    chain_->fire_timers();
    if (barriers_ && barriers_->needs_polling()) barriers_->check_triggers();
    if (commit_pending_ != 0) publish_committed();
  }
  /// Nothing to do: flush outputs, then sleep until woken (input, a mailbox
  /// action, cancel), the next timer of operators >= `first_op` is due, or
  /// `max_wait` passed.
  void idle(std::chrono::milliseconds max_wait, size_t first_op = 0) {
    maybe_flush(true);
    publish_metrics();
    auto now = Clock_::now();
    auto deadline = now + max_wait;
    if (barriers_ && barriers_->aligning() && alignment_timeout_ns_ > 0) {
      deadline = std::min(deadline, now + std::chrono::milliseconds(5));
    }
    if (auto next = chain_->next_timer(first_op)) {
      auto until = std::chrono::milliseconds(std::max<int64_t>(0, *next - clock_->now_ms()));
      deadline = std::min(deadline, now + until);
    }
    int64_t t0 = monotonic_ns();
    signal_.wait_until(deadline);
    idle_ns_ += monotonic_ns() - t0;
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  bool should_stop() const { return failed() || cancelled_.load(std::memory_order_relaxed); }
  void maybe_flush(bool force);
  void check_outputs();
  void publish_metrics();
  void maybe_publish_metrics() {
    int64_t now = monotonic_ns();
    if (now - last_publish_ns_ < 100'000'000) return;
    last_publish_ns_ = now;
    publish_metrics();
  }

  Task& task_;
  std::shared_ptr<const JobInstance> job_;
  ChannelProvider& channels_;
  TaskListener* listener_;
  const Clock* clock_;
  AsyncExecutor* snapshots_;
  TaskOptions options_;
  std::optional<TaskRestore> restore_;
  Status wiring_;

  TaskSignal signal_;
  TaskMailbox mailbox_;
  const bool checkpointing_;
  bool ops_finished_ = false;    // operators finished (end of all input)
  bool final_complete_ = false;  // the final checkpoint completed
  int64_t commit_pending_ = 0;   // completed checkpoint not yet reported committed
  std::atomic<bool> closing_{false};
  CancelFlag cancelled_{false};
  std::atomic<bool> failed_{false};
  mutable std::mutex failure_mu_;
  Status failure_;

  const proto::JobVertex* vertex_ = nullptr;
  bool is_source_ = false;
  std::map<int, std::unique_ptr<RecordWriter>> writers_;  // by job edge id
  std::vector<std::shared_ptr<Channel>> outputs_;          // every writer's channels
  RecordWriter* dlq_writer_ = nullptr;
  std::unique_ptr<OutputBase> dlq_output_;
  std::vector<InputChannel> channel_list_;  // until the gate takes them
  std::vector<int> channel_target_node_;    // per entry of channel_list_: the StreamGraph node it feeds
  std::unique_ptr<OperatorChain> chain_;
  std::vector<std::unique_ptr<InputHandler>> handlers_;
  std::unique_ptr<InputGate> gate_;
  std::unique_ptr<BarrierHandler> barriers_;
  SourceDriver* source_driver_ = nullptr;  // the chain's head, in source tasks
  int64_t alignment_timeout_ns_ = 0;
  int64_t last_checkpoint_ = 0;
  // Busy time = time since the loop started - time asleep - time blocked on
  // full outputs (the backpressured part).
  int64_t loop_start_ns_ = 0;
  int64_t idle_ns_ = 0;
  int64_t last_flush_ns_ = 0;
  int64_t last_publish_ns_ = 0;
  uint64_t dead_letters_logged_ = 0;
};

Status Task::Impl::wire_channels() {
  const auto& jg = *job_->job_graph;
  const TaskId& id = task_.id_;
  vertex_ = find_vertex(jg, id.vertex);
  if (!vertex_) return Status::invalid_argument("no vertex " + std::to_string(id.vertex));
  is_source_ = vertex_->is_source();
  for (const auto& e : jg.edges()) {
    if (e.source_vertex() == vertex_->id()) {
      const auto* target = find_vertex(jg, e.target_vertex());
      std::vector<std::shared_ptr<Channel>> chans;
      if (e.partitioner() == proto::PARTITIONER_FORWARD) {
        chans.push_back(channels_.output_channel({e.id(), id.subtask, id.subtask}));
      } else {
        for (int c = 0; c < target->parallelism(); ++c)
          chans.push_back(channels_.output_channel({e.id(), id.subtask, c}));
      }
      outputs_.insert(outputs_.end(), chans.begin(), chans.end());
      auto w = std::make_unique<RecordWriter>(std::move(chans), &cancelled_, options_.buffer_bytes, &failed_);
      if (e.dead_letter()) dlq_writer_ = w.get();
      writers_[e.id()] = std::move(w);
    }
    if (e.target_vertex() == vertex_->id()) {
      const auto* source = find_vertex(jg, e.source_vertex());
      auto add = [&](int producer) {
        InputChannel ic;
        ic.channel = channels_.input_channel({e.id(), producer, id.subtask});
        ic.edge = e.id();
        ic.producer = producer;
        ic.channel->set_consumer_signal(&signal_);
        ic.input = e.input_index();
        channel_list_.push_back(std::move(ic));
        channel_target_node_.push_back(e.target_node());
      };
      if (e.partitioner() == proto::PARTITIONER_FORWARD) add(id.subtask);
      else
        for (int p = 0; p < source->parallelism(); ++p) add(p);
    }
  }
  return Status::ok();
}

Status Task::Impl::build() {
  auto unaligned = job_->config.get_bool("checkpoint.unaligned", false);
  if (!unaligned.is_ok()) return unaligned.status();
  auto timeout = job_->config.get_duration("checkpoint.alignment-timeout", Duration(0));
  if (!timeout.is_ok()) return timeout.status();
  alignment_timeout_ns_ = timeout->count() * 1'000'000;
  SLUICE_ASSIGN_OR_RETURN(Duration buffer_timeout, job_->config.get_duration("pipeline.buffer-timeout",
                                                                             Duration(options_.buffer_timeout_ms)));
  if (buffer_timeout.count() < 0) {
    return Status::invalid_argument("pipeline.buffer-timeout must not be negative, e.g. 1ms or 0ms");
  }
  options_.buffer_timeout_ms = buffer_timeout.count();
  SLUICE_ASSIGN_OR_RETURN(options_.flush_on_watermark,
                          job_->config.get_bool("pipeline.flush-on-watermark", options_.flush_on_watermark));
  for (auto& [id, w] : writers_) w->set_flush_on_watermark(options_.flush_on_watermark);

  std::map<int, RecordWriter*> writers;
  for (auto& [id, w] : writers_) writers[id] = w.get();
  SLUICE_ASSIGN_OR_RETURN(chain_, OperatorChain::build(*job_, task_.id_, *vertex_, writers, clock_, *this));

  // Inputs: one handler per logical input of an operator fed by job edges
  // — the head's, and inputs of chained operators fed from other tasks
  // (e.g. the broadcast side of a chained broadcast process) — in chain
  // order, so a chain fed only at its head has the head's input numbers.
  std::vector<std::pair<int, int>> keys;  // (position in the chain, operator input) per task input
  std::vector<std::pair<int, int>> key_of(channel_list_.size());
  for (size_t c = 0; c < channel_list_.size(); ++c) {
    int pos = -1;
    for (int k = 0; k < vertex_->operators_size(); ++k)
      if (vertex_->operators(k).node_id() == channel_target_node_[c]) pos = k;
    if (vertex_->is_dead_letter_sink()) pos = 0;
    if (pos < 0) {
      return Status::internal("job edge " + std::to_string(channel_list_[c].edge) + " feeds node " +
                              std::to_string(channel_target_node_[c]) + ", which is not in this task");
    }
    key_of[c] = {pos, channel_list_[c].input};
    keys.push_back(key_of[c]);
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  std::vector<InputTarget> targets;
  handlers_.resize(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto [pos, input] = keys[i];
    const StreamNode* node = chain_->node_of(vertex_->operators(pos).node_id());
    StreamOperator* op = chain_->operator_of(vertex_->operators(pos).node_id());
    std::shared_ptr<const TypeInfoBase> type;
    if (vertex_->is_dead_letter_sink()) type = type_info<DeadLetter>();
    else if (node && input < static_cast<int>(node->in_types.size())) type = node->in_types[input];
    if (!type || !op || !op->element_sink(input)) {
      return Status::internal("operator '" + (node ? node->name : std::string("?")) + "' has no input " +
                              std::to_string(input));
    }
    handlers_[i] = type->make_input_handler(op, input);
    targets.push_back(InputTarget{op, input});
  }
  for (size_t c = 0; c < channel_list_.size(); ++c) {
    auto& ic = channel_list_[c];
    ic.input = static_cast<int>(std::lower_bound(keys.begin(), keys.end(), key_of[c]) - keys.begin());
    ic.handler = handlers_[ic.input].get();
  }
  channel_target_node_.clear();
  gate_ = std::make_unique<InputGate>(std::move(channel_list_), std::move(targets),
                                      &task_.metrics_.watermark_ms, &failed_,
                                      chain_->suspended_counter());
  channel_list_.clear();
  barriers_ = std::make_unique<BarrierHandler>(
      *gate_, *this, clock_, BarrierHandler::Options{*unaligned, alignment_timeout_ns_});

  if (dlq_writer_) {
    dlq_output_ = type_info<DeadLetter>()->make_writer_output(dlq_writer_, Partitioning::kRebalance,
                                                              nullptr, 1, task_.id_.subtask);
  }
  return Status::ok();
}

Status Task::Impl::restore_and_open() {
  SLUICE_RETURN_IF_ERROR(chain_->restore_and_open(restore_ ? &*restore_ : nullptr));
  if (restore_ && !restore_->channel_state_file.empty()) {
    const std::string& path = restore_->channel_state_file;
    SLUICE_ASSIGN_OR_RETURN(std::string data, state::read_file(path));
    SLUICE_ASSIGN_OR_RETURN(auto recorded, decode_channel_state(data, path));
    SLUICE_RETURN_IF_ERROR(gate_->load_recorded(recorded, path));
  }
  return Status::ok();
}

void Task::Impl::fail(Status st) {
  {
    std::lock_guard lk(failure_mu_);
    if (!failure_.is_ok()) return;
    failure_ = std::move(st);
  }
  failed_.store(true);
  mailbox_.refuse();
  signal_.notify();
}

// A writer is broken when a push failed: the task was cancelled, the local
// consumer closed the channel (teardown), or a network channel failed. Only
// the last is an error of this task.
void Task::Impl::check_outputs() {
  for (const auto& [id, w] : writers_) {
    if (!w->broken()) continue;
    for (const auto& c : outputs_) {
      if (c->broken()) {
        fail(c->failure_status("output channel " + c->name()));
        return;
      }
    }
    return;
  }
}

void Task::Impl::emit_dead_letter(const DeadLetter& dl) {
  task_.metrics_.dead_letters.fetch_add(1, std::memory_order_relaxed);
  if (dlq_output_) {
    static_cast<Output<DeadLetter>*>(dlq_output_.get())->collect(dl, EventTime(dl.time_ms));
    return;
  }
  // No dead-letter sink in this job: the record still is not lost silently.
  ++dead_letters_logged_;
  spdlog::warn("dead letter (job has no dead-letter sink): {}", to_json(dl));
}

void Task::Impl::maybe_flush(bool force) {
  check_outputs();
  int64_t now = monotonic_ns();
  if (!force && now - last_flush_ns_ < options_.buffer_timeout_ms * 1'000'000) return;
  last_flush_ns_ = now;
  for (auto& [id, w] : writers_) w->flush_all();
}

void Task::Impl::publish_metrics() {
  auto& m = task_.metrics_;
  if (gate_) m.records_in.fetch_add(gate_->take_records_in(), std::memory_order_relaxed);
  // A source's input is what it read (its records_out is what its chain
  // sends on: fewer behind a filter or a local combiner).
  if (source_driver_) m.records_in.store(source_driver_->records_read(), std::memory_order_relaxed);
  uint64_t out = 0, bytes = 0;
  int64_t blocked = 0;
  for (const auto& [id, w] : writers_) {
    out += w->stats().records;
    bytes += w->stats().bytes;
    blocked += w->stats().blocked_ns;
  }
  m.records_out.store(out, std::memory_order_relaxed);
  m.bytes_out.store(bytes, std::memory_order_relaxed);
  m.backpressured_ns.store(blocked, std::memory_order_relaxed);
  // A source's watermark is the one it emits (other tasks': their input
  // gate's valve sets it as it forwards one).
  if (source_driver_) {
    EventTime wm = source_driver_->current_watermark();
    if (wm > EventTime::min()) m.watermark_ms.store(wm.ms(), std::memory_order_relaxed);
  }
  int64_t now = monotonic_ns();
  if (loop_start_ns_ == 0) loop_start_ns_ = now;
  m.busy_ns.store(std::max<int64_t>(0, now - loop_start_ns_ - idle_ns_ - blocked),
                  std::memory_order_relaxed);
}

// --- mailbox -------------------------------------------------------------------

// An operator waits for its own work (or that of operators after it): only
// their actions and timers run, never an upstream operator's or a
// checkpoint (the operator is in the middle of a record or of finish()).
bool Task::Impl::yield(int priority, bool wait) {
  if (!mailbox_.on_task_thread()) return false;  // misuse: yield() belongs to the task thread
  const size_t first_op = static_cast<size_t>(std::max(priority, 0));
  while (true) {
    if (should_stop() || closing_.load(std::memory_order_relaxed)) return false;
    size_t ran = mailbox_.run(priority) + static_cast<size_t>(chain_->fire_timers(first_op));
    if (ran > 0) return !should_stop();
    if (!wait) return false;
    idle(std::chrono::milliseconds(100), first_op);
  }
}

// --- main loop ---------------------------------------------------------------

void Task::Impl::run() {
  mailbox_.set_task_thread(std::this_thread::get_id());
  // "task v<vertex>.<subtask>" in top -H, perf and gdb (15 characters at most).
  const std::string name = "task v" + std::to_string(task_.id_.vertex) + "." + std::to_string(task_.id_.subtask);
  ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
  task_.state_.store(TaskState::kRunning);
  if (listener_) listener_->on_task_state(task_.id_, TaskState::kRunning, Status::ok());
  Status st;
  try {
    st = wiring_;
    if (st.is_ok()) st = build();
    if (st.is_ok()) st = restore_and_open();
    loop_start_ns_ = monotonic_ns();
    if (st.is_ok()) st = is_source_ ? run_source_loop() : run_input_loop();
    if (st.is_ok() && !should_stop()) {
      for (auto& [id, w] : writers_) w->broadcast_end_of_partition();
    }
  } catch (const std::exception& e) {
    st = Status::internal(std::string("unexpected exception: ") + e.what());
  } catch (...) {
    st = Status::internal("unexpected non-standard exception");
  }
  // From here on nothing is queued any more; what was queued is dropped.
  closing_.store(true, std::memory_order_release);
  mailbox_.close();
  try {
    if (chain_) chain_->close();
  } catch (...) {
    spdlog::warn("task {}: exception while closing operators", task_.id_.to_string());
  }
  publish_metrics();
  if (chain_) chain_->clear_timers();

  Status failure = this->failure();
  TaskState final_state;
  if (!failure.is_ok()) {
    st = failure;
    final_state = TaskState::kFailed;
  } else if (!st.is_ok()) {
    fail(st);
    final_state = TaskState::kFailed;
  } else if (cancelled_.load()) {
    final_state = TaskState::kCanceled;
  } else {
    final_state = TaskState::kFinished;
  }
  if (final_state == TaskState::kFailed) {
    spdlog::error("task {} ({}) failed: {}", task_.id_.to_string(), vertex_ ? vertex_->name() : "",
                  st.to_string());
  }
  task_.state_.store(final_state);
  if (listener_) {
    listener_->on_task_state(task_.id_, final_state,
                             final_state == TaskState::kFailed ? st : Status::ok());
  }
}

Status Task::Impl::run_source_loop() {
  auto* driver = dynamic_cast<SourceDriver*>(&chain_->head());
  if (!driver) return Status::internal("source vertex without a source operator");
  source_driver_ = driver;
  last_flush_ns_ = monotonic_ns();
  while (!should_stop()) {
    run_mailbox();
    if (should_stop()) break;
    if (chain_->input_suspended()) {
      idle(std::chrono::milliseconds(100));
      continue;
    }
    auto r = driver->emit_next();
    if (!r.is_ok()) return r.status();
    if (*r == PollStatus::kEndOfInput) {
      driver->end_input();
      SLUICE_RETURN_IF_ERROR(end_of_data());
      if (listener_) listener_->on_end_of_input(task_.id_);
      return wait_for_final_checkpoint();
    }
    if (*r == PollStatus::kNothingAvailable) {
      // Sources are polled again soon (at most 1 ms), whatever timers say.
      idle(std::chrono::milliseconds(1));
    } else {
      maybe_flush(false);
    }
    maybe_publish_metrics();
  }
  return Status::ok();
}

Status Task::Impl::run_input_loop() {
  last_flush_ns_ = monotonic_ns();
  if (gate_->empty()) return Status::ok();
  while (!should_stop()) {
    run_mailbox();
    if (should_stop()) break;
    if (chain_->input_suspended()) {
      idle(std::chrono::milliseconds(100));
      continue;
    }
    SLUICE_ASSIGN_OR_RETURN(InputGate::Progress p, gate_->poll(*barriers_));
    if (!ops_finished_ && gate_->all_data_ended()) SLUICE_RETURN_IF_ERROR(end_of_data());
    if (p == InputGate::Progress::kEnd) return wait_for_final_checkpoint();
    if (p == InputGate::Progress::kNothing) {
      idle(std::chrono::milliseconds(100));
    } else {
      maybe_flush(false);
    }
    maybe_publish_metrics();
  }
  return Status::ok();
}

// All input ended: operators emit what they hold (and may wait for
// in-flight work by yielding), consumers learn that no record follows.
// Barriers still flow: the final checkpoint covers this output before
// anything is committed.
Status Task::Impl::end_of_data() {
  SLUICE_RETURN_IF_ERROR(chain_->finish([this] { return failed(); }));
  if (failed()) return failure();
  maybe_flush(true);
  ops_finished_ = true;
  for (auto& [id, w] : writers_) w->broadcast_end_of_data();
  return Status::ok();
}

// With checkpointing, a finished task stays until a checkpoint taken after
// every source ended has completed (and it has committed what it covers).
Status Task::Impl::wait_for_final_checkpoint() {
  if (!ops_finished_) SLUICE_RETURN_IF_ERROR(end_of_data());
  if (!checkpointing_) return Status::ok();
  // ... and until operators' commit work for it is done.
  auto done = [&] { return final_complete_ && commit_pending_ == 0; };
  while (!should_stop() && !done()) {
    run_mailbox();
    if (should_stop() || done()) break;
    // Barriers still arrive on open inputs.
    if (!gate_->empty()) {
      SLUICE_ASSIGN_OR_RETURN(InputGate::Progress p, gate_->poll(*barriers_));
      if (p == InputGate::Progress::kProcessed) continue;
    }
    idle(std::chrono::milliseconds(50));
  }
  return Status::ok();
}

// --- checkpoints -------------------------------------------------------------

bool Task::Impl::snapshot_operators(const Barrier& b, int64_t alignment_ns, PendingSnapshot& out) {
  last_checkpoint_ = b.id.value();
  int64_t start = monotonic_ns();
  out.barrier = b;
  out.snap = std::make_shared<TaskSnapshot>();
  out.snap->id = b.id;
  out.snap->alignment_ns = alignment_ns;
  Status st = chain_->snapshot(b, job_->checkpoints.get(), *out.snap, out.async_parts);
  if (!st.is_ok()) {
    decline(b.id, st);
    fail(st);
    return false;
  }
  out.snap->sync_ns = monotonic_ns() - start;
  return true;
}

void Task::Impl::complete_snapshot(PendingSnapshot pending, std::vector<RecordedChannel> recorded) {
  upload_snapshot(std::move(pending), std::move(recorded), job_->checkpoints.get(),
                  chain_->file_stem("channels"), listener_, task_.id_, snapshots_);
}

// ---------------------------------------------------------------------------

Task::Task(TaskId id, std::shared_ptr<const JobInstance> job, ChannelProvider& channels,
           TaskServices services, TaskOptions options, std::optional<TaskRestore> restore)
    : id_(std::move(id)) {
  impl_ = std::make_unique<Impl>(*this, std::move(job), channels, services, options,
                                 std::move(restore));
  impl_->set_wiring_status(impl_->wire_channels());
  is_source_ = impl_->is_source();
}

Task::~Task() {
  cancel();
  join();
}

Status Task::failure() const { return impl_->failure(); }

void Task::start() {
  thread_ = std::thread([this] { impl_->run(); });
}

void Task::cancel() { impl_->cancel(); }

void Task::join() {
  if (thread_.joinable()) thread_.join();
}

void Task::trigger_checkpoint(Barrier b) {
  impl_->mailbox().put_control([this, b] { impl_->trigger_source_checkpoint(b); });
}

void Task::notify_checkpoint_complete(CheckpointId id, bool final_checkpoint) {
  impl_->mailbox().put_control([this, id, final_checkpoint] {
    impl_->on_checkpoint_complete(id, final_checkpoint);
  });
}

void Task::notify_checkpoint_aborted(CheckpointId id) {
  impl_->mailbox().put_control([this, id] { impl_->on_checkpoint_aborted(id); });
}

}  // namespace sluice::runtime
