#include "engine/runtime/task.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <exception>
#include <map>
#include <set>

#include "engine/common/json.h"
#include "engine/proto/jobgraph.pb.h"
#include "engine/runtime/mailbox.h"
#include "engine/runtime/processing_time.h"
#include "engine/runtime/record_writer.h"
#include "engine/runtime/source.h"
#include "engine/runtime/type_info.h"
#include "state/backend_factory.h"

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

Partitioning partitioning_of(proto::Partitioner p) {
  switch (p) {
    case proto::PARTITIONER_FORWARD: return Partitioning::kForward;
    case proto::PARTITIONER_HASH: return Partitioning::kHash;
    case proto::PARTITIONER_REBALANCE: return Partitioning::kRebalance;
    case proto::PARTITIONER_BROADCAST: return Partitioning::kBroadcast;
    default: return Partitioning::kRebalance;
  }
}

// File names from uids: keep them portable.
std::string file_safe(const std::string& s) {
  std::string out;
  for (char c : s) {
    out.push_back(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '_');
  }
  return out;
}

const proto::JobVertex* find_vertex(const proto::JobGraph& jg, int id) {
  for (const auto& v : jg.vertices())
    if (v.id() == id) return &v;
  return nullptr;
}

}  // namespace

// ---------------------------------------------------------------------------

class Task::Impl {
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
        pts_(services.clock),
        mailbox_(&signal_),
        checkpointing_(job_->checkpoints != nullptr) {}
  // Input channels may outlive the task (a network receiver still holds
  // them): they must not notify signal_ once it is gone.
  ~Impl() {
    for (auto& ic : inputs_)
      if (ic.channel) ic.channel->set_consumer_signal(nullptr);
  }

  /// Resolves channels (constructor time, so every channel exists before
  /// any task thread runs).
  Status wire_channels();
  void run();

  void cancel() {
    cancelled_.store(true);
    signal_.notify();
  }
  Status failure() const {
    std::lock_guard lk(failure_mu_);
    return failure_;
  }

  Mailbox& mailbox() { return mailbox_; }
  bool is_source() const { return is_source_; }
  void set_wiring_status(Status st) { wiring_ = std::move(st); }

  // Mailbox actions (task thread).
  void trigger_source_checkpoint(const Barrier& b) {
    if (is_source_ && !should_stop() && b.id.value() > last_checkpoint_) perform_checkpoint(b);
  }
  void on_checkpoint_complete(CheckpointId id, bool final_checkpoint) {
    for (auto& slot : slots_) {
      if (auto* b = slot.ctx->backend.get()) b->notify_checkpoint_complete(id);
      Status st = slot.op->notify_checkpoint_complete(id);
      if (!st.is_ok()) {
        fail(st.with_context("committing checkpoint " + std::to_string(id.value()) + " in '" +
                             slot.node->name + "'"));
        return;
      }
    }
    task_.metrics_.committed_checkpoint.store(id.value(), std::memory_order_release);
    if (final_checkpoint && ops_finished_) final_complete_ = true;
  }
  void on_checkpoint_aborted(CheckpointId id) {
    for (auto& slot : slots_) slot.op->notify_checkpoint_aborted(id);
  }

 private:
  // --- per operator -------------------------------------------------------
  // One per operator: its own input-suspension flag, the task's mailbox.
  class Executor final : public MailboxExecutor {
   public:
    explicit Executor(Impl* task) : task_(task) {}
    bool execute(Action action, std::string_view description) override {
      if (task_->should_stop() || task_->closing_.load(std::memory_order_acquire)) return false;
      task_->mailbox_.put(std::move(action));
      return true;
    }
    bool yield() override { return task_->yield_mailbox(true); }
    bool try_yield() override { return task_->yield_mailbox(false); }
    void set_input_suspended(bool suspended) override {
      if (suspended == suspended_) return;
      suspended_ = suspended;
      task_->suspended_inputs_ += suspended ? 1 : -1;
    }
    bool input_suspended() const override { return suspended_; }

   private:
    Impl* task_;
    bool suspended_ = false;
  };

  class Context final : public OperatorContext {
   public:
    Context(Impl* task, OperatorInfo info) : executor(task), task_(task), info_(std::move(info)) {}
    const OperatorInfo& info() const override { return info_; }
    const Configuration& job_config() const override { return task_->job_->config; }
    ProcessingTimeService& processing_time() override { return task_->pts_; }
    MailboxExecutor& mailbox() override { return executor; }
    state::KeyedStateBackend* keyed_backend() override { return backend.get(); }
    void dead_letter(DeadLetter dl) override {
      if (dl.job.empty()) dl.job = info_.job_name;
      if (dl.operator_name.empty()) dl.operator_name = info_.operator_name;
      if (dl.time_ms == 0) dl.time_ms = wall_clock_ms();
      metrics_.dead_letters.fetch_add(1, std::memory_order_relaxed);
      task_->emit_dead_letter(dl);
    }
    void fail(Status st) override { task_->fail(std::move(st)); }
    OutputBase* side_output(std::string_view tag) override {
      auto it = sides.find(std::string(tag));
      return it == sides.end() ? nullptr : it->second;
    }
    OperatorMetrics& metrics() override { return metrics_; }

    Executor executor;
    std::unique_ptr<state::KeyedStateBackend> backend;
    std::map<std::string, OutputBase*> sides;

   private:
    Impl* task_;
    OperatorInfo info_;
    OperatorMetrics metrics_;
  };

  struct Slot {
    const StreamNode* node = nullptr;
    std::unique_ptr<StreamOperator> op;
    std::unique_ptr<Context> ctx;
  };

  // --- input side ----------------------------------------------------------
  struct InputChannel {
    std::shared_ptr<Channel> channel;
    int edge = 0;
    int producer = 0;
    int input = 0;
    bool data_ended = false;  // EndOfData received: no more records
    InputHandler* handler = nullptr;
    Buffer buffer;
    size_t pos = 0;
    bool has_buffer = false;
    EventTime watermark = EventTime::min();
    bool idle = false;
    bool finished = false;
    bool blocked = false;  // delivered the barrier of the pending checkpoint
  };
  struct LogicalInput {
    EventTime emitted = EventTime::min();
    bool idle = false;
  };
  enum class Progress { kProcessed, kNothing, kEnd };

  Status build();
  Status restore_and_open();
  Status restore_channel_state(const std::string& path);
  Status run_source_loop();
  Status run_input_loop();
  Status end_of_data();
  Status wait_for_final_checkpoint();
  Status finish_operators();
  void close_operators();
  Result<Progress> process_input();
  Status process_buffer(size_t ci);
  void on_channel_watermark(size_t ci, EventTime wm);
  void on_channel_status(size_t ci, bool idle);
  void recompute_input(int input);
  void on_barrier(size_t ci, const Barrier& b);
  void check_alignment();
  void perform_checkpoint(const Barrier& b);
  // Synchronous part of any checkpoint; false if it failed (task failing).
  bool snapshot_operators(const Barrier& b, std::shared_ptr<TaskSnapshot>& snap,
                          std::vector<std::pair<size_t, state::AsyncSnapshot>>& parts);
  void submit_async(std::shared_ptr<TaskSnapshot> snap,
                    std::vector<std::pair<size_t, state::AsyncSnapshot>> parts,
                    std::vector<std::pair<size_t, std::string>> channel_data, bool savepoint);
  void start_unaligned(const Barrier& b, int trigger_channel);
  void record_popped(size_t ci);
  void channel_reached_barrier(size_t ci);
  void finish_unaligned();
  void check_unaligned_triggers();
  void abandon_inflight();
  void emit_dead_letter(const DeadLetter& dl);
  void fail(Status st);
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  bool should_stop() const { return failed() || cancelled_.load(std::memory_order_relaxed); }
  void maybe_flush(bool force);
  void check_outputs();
  std::string file_stem(const std::string& what) const {
    return "v" + std::to_string(vertex_->id()) + "-" + std::to_string(task_.id_.subtask) + "-" +
           file_safe(what);
  }
  void publish_metrics();
  void maybe_publish_metrics() {
    int64_t now = monotonic_ns();
    if (now - last_publish_ns_ < 100'000'000) return;
    last_publish_ns_ = now;
    publish_metrics();
  }
  template <class T>
  T* own(std::unique_ptr<T> p) {
    T* raw = p.get();
    owned_outputs_.push_back(std::move(p));
    return raw;
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
  ProcessingTimeService pts_;
  Mailbox mailbox_;
  const bool checkpointing_;
  bool ops_finished_ = false;   // operators finished (end of all input)
  bool final_complete_ = false; // the final checkpoint completed
  size_t data_ended_channels_ = 0;
  int64_t alignment_start_ns_ = 0;
  // Busy time = time since the loop started - time asleep - time blocked on
  // full outputs (the backpressured part).
  int64_t loop_start_ns_ = 0;
  int64_t idle_ns_ = 0;
  void idle_until(std::chrono::steady_clock::time_point deadline) {
    int64_t t0 = monotonic_ns();
    signal_.wait_until(deadline);
    idle_ns_ += monotonic_ns() - t0;
  }
  // Runs queued actions and due timers; with `wait`, sleeps until one ran.
  bool yield_mailbox(bool wait) {
    while (true) {
      if (should_stop()) return false;
      int ran = mailbox_.run_all() + pts_.fire_due();
      if (ran > 0 || !wait) return ran > 0 && !should_stop();
      auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
      if (auto next = pts_.next_deadline()) {
        auto until = std::chrono::milliseconds(std::max<int64_t>(0, *next - clock_->now_ms()));
        deadline = std::min(deadline, std::chrono::steady_clock::now() + until);
      }
      maybe_flush(true);
      idle_until(deadline);
    }
  }
  bool input_suspended() const { return suspended_inputs_ > 0; }
  int suspended_inputs_ = 0;
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
  std::vector<Slot> slots_;  // head first
  std::vector<std::unique_ptr<OutputBase>> owned_outputs_;
  std::vector<std::unique_ptr<InputHandler>> handlers_;
  std::vector<InputChannel> inputs_;
  std::vector<LogicalInput> logical_inputs_;
  size_t next_channel_ = 0;
  size_t finished_channels_ = 0;
  std::optional<Barrier> pending_barrier_;
  // An unaligned checkpoint whose in-flight input is still being recorded.
  struct InFlight {
    Barrier barrier;
    std::shared_ptr<TaskSnapshot> snap;
    std::vector<std::pair<size_t, state::AsyncSnapshot>> async_parts;
    std::vector<std::string> recorded;  // per input channel
    std::vector<bool> done;             // the channel's barrier was reached
    std::vector<size_t> peeked;         // queued buffers already recorded
    size_t remaining = 0;
  };
  std::optional<InFlight> inflight_;
  bool unaligned_ = false;
  int64_t alignment_timeout_ns_ = 0;
  int64_t last_checkpoint_ = 0;
  int64_t last_flush_ns_ = 0;
  int64_t last_publish_ns_ = 0;
  uint64_t records_in_local_ = 0;
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
      auto w = std::make_unique<RecordWriter>(std::move(chans), &cancelled_, options_.buffer_bytes);
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
        inputs_.push_back(std::move(ic));
      };
      if (e.partitioner() == proto::PARTITIONER_FORWARD) add(id.subtask);
      else
        for (int p = 0; p < source->parallelism(); ++p) add(p);
    }
  }
  return Status::ok();
}

Status Task::Impl::build() {
  const StreamGraph& g = *job_->graph;
  {
    auto unaligned = job_->config.get_bool("checkpoint.unaligned", false);
    if (!unaligned.is_ok()) return unaligned.status();
    unaligned_ = *unaligned;
    auto timeout = job_->config.get_duration("checkpoint.alignment-timeout", Duration(0));
    if (!timeout.is_ok()) return timeout.status();
    alignment_timeout_ns_ = timeout->count() * 1'000'000;
  }
  const auto& jg = *job_->job_graph;
  const TaskId& id = task_.id_;

  std::map<int, size_t> slot_of;  // node id -> index in slots_
  for (int i = 0; i < vertex_->operators_size(); ++i) slot_of[vertex_->operators(i).node_id()] = i;
  slots_.resize(vertex_->operators_size());

  std::map<int, const proto::JobEdge*> job_edge_of;  // stream edge id -> job edge
  for (const auto& e : jg.edges())
    if (e.source_vertex() == vertex_->id() && e.stream_edge_id() >= 0)
      job_edge_of[e.stream_edge_id()] = &e;

  // Instantiate from the tail, so chained outputs can point at their targets.
  for (int i = vertex_->operators_size() - 1; i >= 0; --i) {
    const auto& op_info = vertex_->operators(i);
    const StreamNode& node = g.node(op_info.node_id());
    Slot& slot = slots_[i];
    slot.node = &node;
    slot.op = node.factory();
    OperatorInfo info;
    info.job_name = jg.name();
    info.job_id = id.job_id;
    info.operator_name = node.name;
    info.uid = op_info.uid();
    info.subtask = id.subtask;
    info.parallelism = vertex_->parallelism();
    info.max_parallelism = vertex_->max_parallelism();
    info.attempt = id.attempt;
    slot.ctx = std::make_unique<Context>(this, info);
    if (node.keyed) {
      state::BackendSpec spec;
      spec.range = state::key_group_range_for_subtask(vertex_->max_parallelism(),
                                                      vertex_->parallelism(), id.subtask);
      spec.max_parallelism = vertex_->max_parallelism();
      spec.clock = clock_;
      spec.instance_name = id.job_id + "-a" + std::to_string(id.attempt) + "-" + op_info.uid() +
                           "-" + std::to_string(id.subtask);
      // RocksDB is the default for windows (ARCHITECTURE.md), heap for the rest.
      auto backend = state::create_keyed_backend(
          job_->config, spec, node.windowed ? state::BackendKind::kRocksDB : state::BackendKind::kHeap);
      if (!backend.is_ok()) return backend.status().with_context("operator '" + node.name + "'");
      slot.ctx->backend = std::move(*backend);
    }

    // Outputs: the main output first, then each side output.
    std::vector<std::pair<std::string, std::shared_ptr<const TypeInfoBase>>> tags;
    if (node.out_type) tags.emplace_back("", node.out_type);
    for (const auto& [tag, type] : node.side_output_types) tags.emplace_back(tag, type);
    std::vector<OutputBase*> outs;
    for (const auto& [tag, type] : tags) {
      std::vector<OutputBase*> targets;
      for (const StreamEdge* se : g.out_edges(node.id)) {
        if (se->tag != tag) continue;
        auto in_chain = slot_of.find(se->target);
        if (in_chain != slot_of.end()) {
          targets.push_back(own(type->make_chained_output(slots_[in_chain->second].op.get())));
          continue;
        }
        auto je = job_edge_of.find(se->id);
        if (je == job_edge_of.end()) {
          return Status::internal("stream edge " + std::to_string(se->id) + " has no job edge");
        }
        const auto* tv = find_vertex(jg, je->second->target_vertex());
        targets.push_back(own(type->make_writer_output(
            writers_.at(je->second->id()).get(), partitioning_of(je->second->partitioner()),
            se->key_selector.get(), tv->max_parallelism(), id.subtask)));
      }
      OutputBase* out = targets.empty()       ? own(type->make_discard())
                        : targets.size() == 1 ? targets[0]
                                              : own(type->make_fanout(targets));
      outs.push_back(out);
      if (!tag.empty()) slot.ctx->sides[tag] = out;
    }
    slot.op->setup(slot.ctx.get(), std::move(outs));
  }

  // Inputs: one handler per logical input of the head operator.
  StreamOperator* head = slots_.front().op.get();
  int num_inputs = 0;
  for (const auto& ic : inputs_) num_inputs = std::max(num_inputs, ic.input + 1);
  logical_inputs_.assign(num_inputs, LogicalInput{});
  handlers_.resize(num_inputs);
  for (int i = 0; i < num_inputs; ++i) {
    std::shared_ptr<const TypeInfoBase> type;
    if (vertex_->is_dead_letter_sink()) type = type_info<DeadLetter>();
    else if (i < static_cast<int>(slots_.front().node->in_types.size()))
      type = slots_.front().node->in_types[i];
    if (!type || !head->element_sink(i)) {
      return Status::internal("operator '" + slots_.front().node->name + "' has no input " +
                              std::to_string(i));
    }
    handlers_[i] = type->make_input_handler(head, i);
  }
  for (auto& ic : inputs_) ic.handler = handlers_[ic.input].get();

  if (dlq_writer_) {
    dlq_output_ = type_info<DeadLetter>()->make_writer_output(dlq_writer_, Partitioning::kRebalance,
                                                              nullptr, 1, id.subtask);
  }
  return Status::ok();
}

// Recorded in-flight input is processed before anything new on its channel.
Status Task::Impl::restore_channel_state(const std::string& path) {
  SLUICE_ASSIGN_OR_RETURN(std::string data, state::read_file(path));
  constexpr std::string_view kMagic = "SLUICE-CHANNELS-1\n";
  if (data.compare(0, kMagic.size(), kMagic) != 0) {
    return Status::corruption("'" + path + "' is not recorded channel state");
  }
  ByteReader r(std::string_view(data).substr(kMagic.size()));
  while (!r.empty()) {
    uint64_t edge, producer;
    std::string_view frames_bytes;
    if (!r.get_varint(edge) || !r.get_varint(producer) || !r.get_bytes(frames_bytes)) {
      return Status::corruption("'" + path + "' is truncated");
    }
    bool placed = false;
    for (auto& ic : inputs_) {
      if (ic.edge == static_cast<int>(edge) && ic.producer == static_cast<int>(producer)) {
        ic.buffer.data.assign(frames_bytes.data(), frames_bytes.size());
        ic.has_buffer = true;
        ic.pos = 0;
        placed = true;
      }
    }
    if (!placed) {
      return Status::failed_precondition("recorded in-flight data of edge " + std::to_string(edge) +
                                         " has no channel in this job; restore with the same "
                                         "graph and parallelism");
    }
  }
  return Status::ok();
}

Status Task::Impl::restore_and_open() {
  for (auto& slot : slots_) {
    OperatorRestore r;
    if (restore_) {
      auto it = restore_->operators.find(slot.ctx->info().uid);
      if (it != restore_->operators.end()) {
        r = it->second.operator_state;
        if (auto* b = slot.ctx->backend.get()) {
          SLUICE_RETURN_IF_ERROR(b->restore(it->second.keyed, restore_->base_dir)
                                     .with_context("restoring keyed state of '" +
                                                   slot.node->name + "'"));
        }
      }
      r.restored = true;
    }
    SLUICE_RETURN_IF_ERROR(
        slot.op->initialize_state(r).with_context("restoring '" + slot.node->name + "'"));
  }
  if (restore_ && !restore_->channel_state_file.empty()) {
    SLUICE_RETURN_IF_ERROR(restore_channel_state(restore_->channel_state_file));
  }
  // Open from the tail, so an operator's consumers are ready before it emits.
  for (auto it = slots_.rbegin(); it != slots_.rend(); ++it) {
    SLUICE_RETURN_IF_ERROR(it->op->open().with_context("opening '" + it->node->name + "'"));
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
        fail(Status::unavailable("output channel " + c->name() + ": " + c->failure()));
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
  m.records_in.fetch_add(records_in_local_, std::memory_order_relaxed);
  records_in_local_ = 0;
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
  int64_t now = monotonic_ns();
  if (loop_start_ns_ == 0) loop_start_ns_ = now;
  m.busy_ns.store(std::max<int64_t>(0, now - loop_start_ns_ - idle_ns_ - blocked), std::memory_order_relaxed);
}

// --- main loop ---------------------------------------------------------------

void Task::Impl::run() {
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
  closing_.store(true, std::memory_order_release);
  try {
    close_operators();
  } catch (...) {
    spdlog::warn("task {}: exception while closing operators", task_.id_.to_string());
  }
  publish_metrics();
  pts_.clear();

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
  auto* driver = dynamic_cast<SourceDriver*>(slots_.front().op.get());
  if (!driver) return Status::internal("source vertex without a source operator");
  last_flush_ns_ = monotonic_ns();
  while (!should_stop()) {
    mailbox_.run_all();
    pts_.fire_due();
    if (should_stop()) break;
    if (input_suspended()) {
      maybe_flush(true);
      yield_mailbox(true);
      maybe_publish_metrics();
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
      maybe_flush(true);
      publish_metrics();
      auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1);
      if (auto next = pts_.next_deadline(); next && clock_->is_real_time()) {
        auto until = std::chrono::milliseconds(std::max<int64_t>(0, *next - clock_->now_ms()));
        deadline = std::min(deadline, std::chrono::steady_clock::now() + until);
      }
      idle_until(deadline);
    } else {
      maybe_flush(false);
    }
    maybe_publish_metrics();
  }
  return Status::ok();
}

Status Task::Impl::run_input_loop() {
  last_flush_ns_ = monotonic_ns();
  if (inputs_.empty()) return Status::ok();
  while (!should_stop()) {
    mailbox_.run_all();
    pts_.fire_due();
    if (should_stop()) break;
    if (input_suspended()) {
      maybe_flush(true);
      yield_mailbox(true);
      maybe_publish_metrics();
      continue;
    }
    SLUICE_ASSIGN_OR_RETURN(Progress p, process_input());
    if (!ops_finished_ && data_ended_channels_ == inputs_.size()) {
      SLUICE_RETURN_IF_ERROR(end_of_data());
    }
    if (p == Progress::kEnd) return wait_for_final_checkpoint();
    if (p == Progress::kNothing) {
      maybe_flush(true);
      publish_metrics();
      auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
      if (pending_barrier_ && alignment_timeout_ns_ > 0) {
        deadline = std::min(deadline, std::chrono::steady_clock::now() +
                                          std::chrono::milliseconds(5));
      }
      if (auto next = pts_.next_deadline()) {
        auto until = std::chrono::milliseconds(std::max<int64_t>(0, *next - clock_->now_ms()));
        deadline = std::min(deadline, std::chrono::steady_clock::now() + until);
      }
      idle_until(deadline);
    } else {
      maybe_flush(false);
    }
    maybe_publish_metrics();
  }
  return Status::ok();
}

Result<Task::Impl::Progress> Task::Impl::process_input() {
  const size_t n = inputs_.size();
  if (unaligned_ || alignment_timeout_ns_ > 0 || inflight_) check_unaligned_triggers();
  for (size_t k = 0; k < n; ++k) {
    size_t ci = (next_channel_ + k) % n;
    InputChannel& ic = inputs_[ci];
    if (!ic.finished && ic.channel->broken()) [[unlikely]] {
      // A network channel whose producer connection was lost mid-stream.
      return Status::unavailable("input channel " + ic.channel->name() + ": " +
                                 ic.channel->failure());
    }
    if (ic.finished || ic.blocked) continue;
    if (!ic.has_buffer) {
      if (!ic.channel->try_pop(ic.buffer)) continue;
      ic.has_buffer = true;
      ic.pos = 0;
      if (inflight_ && !inflight_->done[ci]) record_popped(ci);
    }
    next_channel_ = (ci + 1) % n;
    SLUICE_RETURN_IF_ERROR(process_buffer(ci));
    return Progress::kProcessed;
  }
  if (finished_channels_ == n) return Progress::kEnd;
  return Progress::kNothing;
}

Status Task::Impl::process_buffer(size_t ci) {
  InputChannel& ic = inputs_[ci];
  std::string_view data(ic.buffer.data);
  frames::Frame f;
  while (ic.pos < data.size()) {
    if (!frames::next(data, ic.pos, f)) {
      return Status::corruption("undecodable frame on input channel " + ic.channel->name());
    }
    switch (f.kind) {
      case FrameKind::kRecord:
        if (ic.data_ended) [[unlikely]] {
          return Status::corruption("record after end of data on channel " + ic.channel->name());
        }
        if (!ic.handler->process(f.payload, f.ts)) {
          return Status::corruption("undecodable record on input channel " + ic.channel->name());
        }
        ++records_in_local_;
        if (failed()) return Status::ok();
        break;
      case FrameKind::kWatermark:
        on_channel_watermark(ci, f.ts);
        break;
      case FrameKind::kStatus:
        on_channel_status(ci, f.idle);
        break;
      case FrameKind::kBarrier:
        on_barrier(ci, f.barrier);
        if (inputs_[ci].blocked) return Status::ok();  // resume after alignment
        break;
      case FrameKind::kEndOfData:
        if (!ic.data_ended) {
          ic.data_ended = true;
          ++data_ended_channels_;
        }
        break;
      case FrameKind::kEndOfPartition:
        if (!ic.data_ended) {  // the producer ended without EndOfData (it was stopped)
          ic.data_ended = true;
          ++data_ended_channels_;
        }
        ic.finished = true;
        ++finished_channels_;
        ic.has_buffer = false;
        recompute_input(ic.input);
        if (inflight_ && !inflight_->done[ci]) channel_reached_barrier(ci);
        check_alignment();
        return Status::ok();
    }
  }
  ic.has_buffer = false;
  ic.buffer.data.clear();
  return Status::ok();
}

void Task::Impl::on_channel_watermark(size_t ci, EventTime wm) {
  InputChannel& ic = inputs_[ci];
  if (wm > ic.watermark) ic.watermark = wm;
  recompute_input(ic.input);
}

void Task::Impl::on_channel_status(size_t ci, bool idle) {
  inputs_[ci].idle = idle;
  recompute_input(inputs_[ci].input);
}

// The watermark of a logical input is the minimum over its channels that
// are neither idle nor finished; it never goes back.
void Task::Impl::recompute_input(int input) {
  LogicalInput& li = logical_inputs_[input];
  bool any_active = false, any_open = false;
  EventTime min_wm = EventTime::max();
  for (const auto& ic : inputs_) {
    if (ic.input != input || ic.finished) continue;
    any_open = true;
    if (ic.idle) continue;
    any_active = true;
    min_wm = std::min(min_wm, ic.watermark);
  }
  StreamOperator* head = slots_.front().op.get();
  if (any_open && !any_active) {
    if (!li.idle) {
      li.idle = true;
      head->process_watermark_status(true);
    }
    return;
  }
  if (li.idle) {
    li.idle = false;
    head->process_watermark_status(false);
  }
  if (!any_open) min_wm = EventTime::max();
  if (min_wm > li.emitted) {
    li.emitted = min_wm;
    task_.metrics_.watermark_ms.store(min_wm.ms(), std::memory_order_relaxed);
    head->process_watermark_input(input, min_wm);
  }
}

// --- checkpoints -------------------------------------------------------------

void Task::Impl::on_barrier(size_t ci, const Barrier& b) {
  if (b.id.value() <= last_checkpoint_) {
    // Already snapshotted (unaligned) or stale (an aborted checkpoint).
    if (inflight_ && inflight_->barrier.id == b.id && !inflight_->done[ci]) channel_reached_barrier(ci);
    return;
  }
  if (inflight_) abandon_inflight();  // a newer checkpoint: the old one was aborted
  if (pending_barrier_ && b.id.value() > pending_barrier_->id.value()) {
    // A newer checkpoint overtook the pending one: give that one up.
    if (listener_) {
      listener_->on_checkpoint_declined(task_.id_, pending_barrier_->id,
                                        Status::cancelled("subsumed by a newer checkpoint"));
    }
    for (auto& ic : inputs_) ic.blocked = false;
    pending_barrier_.reset();
  }
  if (b.is_unaligned() && !b.must_align()) {
    start_unaligned(b, static_cast<int>(ci));
    return;
  }
  if (!pending_barrier_) {
    pending_barrier_ = b;
    alignment_start_ns_ = monotonic_ns();
  }
  if (b.id.value() == pending_barrier_->id.value()) inputs_[ci].blocked = true;
  check_alignment();
}

void Task::Impl::abandon_inflight() {
  if (listener_) {
    listener_->on_checkpoint_declined(task_.id_, inflight_->barrier.id,
                                      Status::cancelled("subsumed by a newer checkpoint"));
  }
  inflight_.reset();
}

void Task::Impl::check_alignment() {
  if (!pending_barrier_) return;
  for (const auto& ic : inputs_)
    if (!ic.finished && !ic.blocked) return;
  Barrier b = *pending_barrier_;
  pending_barrier_.reset();
  for (auto& ic : inputs_) ic.blocked = false;
  perform_checkpoint(b);
}

// Synchronous part on the task thread: every operator's state and a
// consistent view of its keyed state.
bool Task::Impl::snapshot_operators(const Barrier& b, std::shared_ptr<TaskSnapshot>& snap,
                                    std::vector<std::pair<size_t, state::AsyncSnapshot>>& parts) {
  last_checkpoint_ = b.id.value();
  int64_t start = monotonic_ns();
  snap = std::make_shared<TaskSnapshot>();
  snap->id = b.id;
  snap->alignment_ns = alignment_start_ns_ ? start - alignment_start_ns_ : 0;
  alignment_start_ns_ = 0;
  auto decline = [&](const Status& st, const std::string& op) {
    Status s2 = st.with_context("checkpoint " + std::to_string(b.id.value()) + " of '" + op + "'");
    if (listener_) listener_->on_checkpoint_declined(task_.id_, b.id, s2);
    fail(s2);
    return false;
  };
  for (auto& slot : slots_) {
    OperatorSnapshot os;
    os.uid = slot.ctx->info().uid;
    auto r = slot.op->snapshot_state(b.id);
    if (!r.is_ok()) return decline(r.status(), slot.node->name);
    os.operator_state = std::move(*r);
    if (auto* backend = slot.ctx->backend.get()) {
      if (!job_->checkpoints) return decline(Status::internal("no checkpoint storage"), slot.node->name);
      auto target = job_->checkpoints->target(b.id.value(), b.is_savepoint(), file_stem(os.uid));
      auto part = backend->snapshot(b.id, target);
      if (!part.is_ok()) return decline(part.status(), slot.node->name);
      parts.emplace_back(snap->operators.size(), std::move(*part));
    }
    snap->operators.push_back(std::move(os));
  }
  snap->sync_ns = monotonic_ns() - start;
  return true;
}

// The asynchronous part: keyed-state files and recorded channel data are
// written on a snapshot thread, which then acknowledges.
void Task::Impl::submit_async(std::shared_ptr<TaskSnapshot> snap,
                              std::vector<std::pair<size_t, state::AsyncSnapshot>> parts,
                              std::vector<std::pair<size_t, std::string>> channel_data,
                              bool savepoint) {
  std::string channel_file;
  std::string channel_bytes;
  if (!channel_data.empty()) {
    // magic, then (varint edge, varint producer, bytes frames) per channel
    channel_bytes = "SLUICE-CHANNELS-1\n";
    ByteWriter w(channel_bytes);
    for (auto& [ci, data] : channel_data) {
      w.put_varint(static_cast<uint64_t>(inputs_[ci].edge));
      w.put_varint(static_cast<uint64_t>(inputs_[ci].producer));
      w.put_bytes(data);
    }
    auto target = job_->checkpoints->target(snap->id.value(), savepoint, file_stem("channels"));
    channel_file = target.own_dir + "/" + target.file_stem + ".channels";
    channel_file = target.job_dir + "/" + channel_file;
  }
  TaskListener* listener = listener_;
  TaskId id = task_.id_;
  std::string base = job_->checkpoints ? job_->checkpoints->job_dir() : "";
  auto work = [snap, parts = std::move(parts), listener, id, channel_file,
               channel_bytes = std::move(channel_bytes), base, savepoint]() mutable {
    for (auto& [index, part] : parts) {
      auto handle = part();
      if (!handle.is_ok()) {
        if (listener) listener->on_checkpoint_declined(id, snap->id, handle.status());
        return;
      }
      snap->operators[index].keyed = std::move(*handle);
    }
    if (!channel_file.empty()) {
      Status st = state::write_file_atomic(channel_file, channel_bytes);
      if (!st.is_ok()) {
        if (listener) listener->on_checkpoint_declined(id, snap->id, st);
        return;
      }
      // Relative to what the checkpoint's handles resolve against.
      std::string rel = channel_file;
      std::string prefix = savepoint ? "" : base + "/";
      if (savepoint) {
        rel = channel_file.substr(channel_file.find_last_of('/') + 1);
      } else if (rel.rfind(prefix, 0) == 0) {
        rel = rel.substr(prefix.size());
      }
      snap->channel_state = state::StateFile{rel, static_cast<int64_t>(channel_bytes.size()), false};
    }
    if (listener) listener->on_checkpoint_ack(id, std::move(*snap));
  };
  if (snapshots_) snapshots_->submit(std::move(work));
  else work();
}

void Task::Impl::perform_checkpoint(const Barrier& b) {
  std::shared_ptr<TaskSnapshot> snap;
  std::vector<std::pair<size_t, state::AsyncSnapshot>> parts;
  if (!snapshot_operators(b, snap, parts)) return;
  for (auto& [id, w] : writers_) w->broadcast_barrier(b);
  submit_async(std::move(snap), std::move(parts), {}, b.is_savepoint());
}

// --- unaligned checkpoints ----------------------------------------------------
//
// The task snapshots as soon as it learns of barrier N (its first barrier,
// an announcement on any channel, or an aligned checkpoint whose alignment
// timed out), forwards the barrier at once and records, per channel, the
// input that precedes that channel's barrier N: it is before the checkpoint
// for the producer but not in this task's snapshot, so it is stored with
// the checkpoint and replayed first on restore. Nothing blocks.

void Task::Impl::check_unaligned_triggers() {
  if (inflight_) {
    for (const auto& ic : inputs_) {
      if (ic.channel->announced_barrier() > inflight_->barrier.id.value()) {
        abandon_inflight();
        break;
      }
    }
    if (inflight_) return;
  }
  if (pending_barrier_) {
    // Savepoints stay aligned: they must not depend on in-flight records.
    if (alignment_timeout_ns_ > 0 && !pending_barrier_->must_align() &&
        monotonic_ns() - alignment_start_ns_ > alignment_timeout_ns_) {
      Barrier b = *pending_barrier_;
      spdlog::debug("task {}: alignment of checkpoint {} timed out; continuing unaligned",
                    task_.id_.to_string(), b.id.value());
      start_unaligned(b, -1);
    }
    return;
  }
  if (!unaligned_) return;
  for (const auto& ic : inputs_) {
    int64_t a = ic.channel->announced_barrier();
    if (a > last_checkpoint_) {
      Barrier b;
      b.id = CheckpointId(a);
      b.trigger_time_ms = clock_->now_ms();
      b.flags = 2;
      start_unaligned(b, -1);
      return;
    }
  }
}

void Task::Impl::start_unaligned(const Barrier& b_in, int trigger_channel) {
  Barrier b = b_in;
  b.flags |= 2;
  InFlight f;
  f.barrier = b;
  const size_t n = inputs_.size();
  f.recorded.assign(n, std::string());
  f.done.assign(n, false);
  f.peeked.assign(n, 0);
  if (!snapshot_operators(b, f.snap, f.async_parts)) return;
  for (size_t ci = 0; ci < n; ++ci) {
    InputChannel& ic = inputs_[ci];
    // Channels blocked by the alignment already delivered the barrier.
    if (static_cast<int>(ci) == trigger_channel || ic.finished || ic.blocked) {
      f.done[ci] = true;
      continue;
    }
    if (ic.has_buffer) {
      size_t at = 0;
      if (frames::find_barrier(ic.buffer.data, ic.pos, b.id, at)) {
        f.recorded[ci].append(ic.buffer.data, ic.pos, at - ic.pos);
        f.done[ci] = true;
        continue;
      }
      f.recorded[ci].append(ic.buffer.data, ic.pos, std::string::npos);
    }
    bool found = false;
    f.peeked[ci] = ic.channel->peek_until_barrier(b.id, f.recorded[ci], found);
    if (found) f.done[ci] = true;
  }
  for (auto& ic : inputs_) ic.blocked = false;
  pending_barrier_.reset();
  f.remaining = 0;
  for (bool d : f.done) f.remaining += d ? 0 : 1;
  inflight_ = std::move(f);
  for (auto& [id, w] : writers_) w->broadcast_barrier(b);
  if (inflight_->remaining == 0) finish_unaligned();
}

void Task::Impl::record_popped(size_t ci) {
  InFlight& f = *inflight_;
  if (f.peeked[ci] > 0) {  // recorded when the checkpoint started
    --f.peeked[ci];
    return;
  }
  const std::string& data = inputs_[ci].buffer.data;
  size_t at = 0;
  if (frames::find_barrier(data, 0, f.barrier.id, at)) {
    f.recorded[ci].append(data, 0, at);
    channel_reached_barrier(ci);
  } else {
    f.recorded[ci].append(data);
  }
}

void Task::Impl::channel_reached_barrier(size_t ci) {
  InFlight& f = *inflight_;
  if (f.done[ci]) return;
  f.done[ci] = true;
  if (--f.remaining == 0) finish_unaligned();
}

void Task::Impl::finish_unaligned() {
  InFlight f = std::move(*inflight_);
  inflight_.reset();
  std::vector<std::pair<size_t, std::string>> channel_data;
  for (size_t ci = 0; ci < f.recorded.size(); ++ci) {
    if (!f.recorded[ci].empty()) channel_data.emplace_back(ci, std::move(f.recorded[ci]));
  }
  submit_async(std::move(f.snap), std::move(f.async_parts), std::move(channel_data),
               f.barrier.is_savepoint());
}

Status Task::Impl::finish_operators() {
  // Head first: each operator's final output reaches the next before it finishes.
  for (auto& slot : slots_) {
    SLUICE_RETURN_IF_ERROR(slot.op->finish().with_context("finishing '" + slot.node->name + "'"));
    if (failed()) return failure();
  }
  maybe_flush(true);
  return Status::ok();
}

// All input ended: operators emit what they hold, consumers learn that no
// record follows. Barriers still flow: the final checkpoint covers this
// output before anything is committed.
Status Task::Impl::end_of_data() {
  SLUICE_RETURN_IF_ERROR(finish_operators());
  ops_finished_ = true;
  for (auto& [id, w] : writers_) w->broadcast_end_of_data();
  return Status::ok();
}

// With checkpointing, a finished task stays until a checkpoint taken after
// every source ended has completed (and it has committed what it covers).
Status Task::Impl::wait_for_final_checkpoint() {
  if (!ops_finished_) SLUICE_RETURN_IF_ERROR(end_of_data());
  if (!checkpointing_) return Status::ok();
  while (!should_stop() && !final_complete_) {
    mailbox_.run_all();
    pts_.fire_due();
    if (should_stop() || final_complete_) break;
    // Barriers still arrive on open inputs.
    if (!inputs_.empty()) {
      auto p = process_input();
      if (!p.is_ok()) return p.status();
      if (*p == Progress::kProcessed) continue;
    }
    maybe_flush(true);
    idle_until(std::chrono::steady_clock::now() + std::chrono::milliseconds(50));
  }
  return Status::ok();
}

void Task::Impl::close_operators() {
  for (auto& slot : slots_)
    if (slot.op) slot.op->close();
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
  impl_->mailbox().put([this, b] { impl_->trigger_source_checkpoint(b); });
}

void Task::notify_checkpoint_complete(CheckpointId id, bool final_checkpoint) {
  impl_->mailbox().put([this, id, final_checkpoint] {
    impl_->on_checkpoint_complete(id, final_checkpoint);
  });
}

void Task::notify_checkpoint_aborted(CheckpointId id) {
  impl_->mailbox().put([this, id] { impl_->on_checkpoint_aborted(id); });
}

}  // namespace sluice::runtime
