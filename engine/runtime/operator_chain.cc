#include "engine/runtime/operator_chain.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "engine/common/clock.h"
#include "engine/proto/jobgraph.pb.h"
#include "state/backend_factory.h"

namespace sluice::runtime {

namespace {

// An operator's synchronous snapshot or checkpoint completion at least this
// long is logged at info.
constexpr int64_t kSlowSyncSnapshotMs = 5;

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

/// An operator's MailboxExecutor: the task's mailbox at the operator's
/// priority (its index in the chain) and its own input-suspension flag.
class OperatorChain::Executor final : public MailboxExecutor {
 public:
  Executor(OperatorChain* chain, int priority) : chain_(chain), priority_(priority) {}
  bool execute(Action action, std::string_view) override {
    return chain_->host_.post(std::move(action), priority_);
  }
  bool yield() override { return chain_->host_.yield(priority_, true); }
  bool try_yield() override { return chain_->host_.yield(priority_, false); }
  void set_input_suspended(bool suspended) override {
    if (suspended == suspended_) return;
    suspended_ = suspended;
    chain_->suspended_ += suspended ? 1 : -1;
  }
  bool input_suspended() const override { return suspended_; }

 private:
  OperatorChain* chain_;
  int priority_;
  bool suspended_ = false;
};

/// What one operator of the chain sees of the runtime.
class OperatorChain::Context final : public OperatorContext {
 public:
  Context(OperatorChain* chain, const Configuration* config, OperatorInfo info, int priority)
      : executor(chain, priority),
        timers(chain->clock_),
        chain_(chain),
        config_(config),
        info_(std::move(info)) {}
  const OperatorInfo& info() const override { return info_; }
  const Configuration& job_config() const override { return *config_; }
  ProcessingTimeService& processing_time() override { return timers; }
  MailboxExecutor& mailbox() override { return executor; }
  state::KeyedStateBackend* keyed_backend() override { return backend.get(); }
  void dead_letter(DeadLetter dl) override {
    if (dl.job.empty()) dl.job = info_.job_name;
    if (dl.operator_name.empty()) dl.operator_name = info_.operator_name;
    if (dl.time_ms == 0) dl.time_ms = wall_clock_ms();
    metrics_.dead_letters.fetch_add(1, std::memory_order_relaxed);
    chain_->host_.emit_dead_letter(dl);
  }
  void fail(Status st) override { chain_->host_.fail(std::move(st)); }
  OutputBase* side_output(std::string_view tag) override {
    auto it = sides.find(std::string(tag));
    return it == sides.end() ? nullptr : it->second;
  }
  OperatorMetrics& metrics() override { return metrics_; }

  Executor executor;
  ProcessingTimeService timers;
  std::unique_ptr<state::KeyedStateBackend> backend;
  std::map<std::string, OutputBase*> sides;

 private:
  OperatorChain* chain_;
  const Configuration* config_;
  OperatorInfo info_;
  OperatorMetrics metrics_;
};

OperatorChain::OperatorChain(const Clock* clock, ChainHost& host, int vertex, int subtask)
    : clock_(clock), host_(host), vertex_(vertex), subtask_(subtask) {}

// Operators go before their contexts (they may use them in destructors),
// and the contexts before the outputs they point to.
OperatorChain::~OperatorChain() {
  for (auto& o : ops_) o.op.reset();
}

StreamOperator* OperatorChain::operator_of(int node_id) {
  for (auto& o : ops_)
    if (o.node->id == node_id) return o.op.get();
  return nullptr;
}

const StreamNode* OperatorChain::node_of(int node_id) const {
  for (const auto& o : ops_)
    if (o.node->id == node_id) return o.node;
  return nullptr;
}

std::string OperatorChain::file_stem(const std::string& what) const {
  return "v" + std::to_string(vertex_) + "-" + std::to_string(subtask_) + "-" + file_safe(what);
}

Result<std::unique_ptr<OperatorChain>> OperatorChain::build(
    const JobInstance& job, const TaskId& id, const proto::JobVertex& vertex,
    const std::map<int, RecordWriter*>& writers, const Clock* clock, ChainHost& host) {
  const StreamGraph& g = *job.graph;
  const auto& jg = *job.job_graph;
  std::unique_ptr<OperatorChain> chain(new OperatorChain(clock, host, vertex.id(), id.subtask));

  std::map<int, size_t> index_of;  // node id -> index in the chain
  for (int i = 0; i < vertex.operators_size(); ++i) index_of[vertex.operators(i).node_id()] = i;
  chain->ops_.resize(vertex.operators_size());

  std::map<int, const proto::JobEdge*> job_edge_of;  // stream edge id -> job edge
  for (const auto& e : jg.edges())
    if (e.source_vertex() == vertex.id() && e.stream_edge_id() >= 0)
      job_edge_of[e.stream_edge_id()] = &e;

  // Instantiate from the tail, so chained outputs can point at their targets.
  for (int i = vertex.operators_size() - 1; i >= 0; --i) {
    const auto& op_info = vertex.operators(i);
    const StreamNode& node = g.node(op_info.node_id());
    Op& slot = chain->ops_[i];
    slot.node = &node;
    slot.op = node.factory();
    OperatorInfo info;
    info.job_name = jg.name();
    info.job_id = id.job_id;
    info.operator_name = node.name;
    info.uid = op_info.uid();
    info.subtask = id.subtask;
    info.parallelism = vertex.parallelism();
    info.max_parallelism = vertex.max_parallelism();
    info.attempt = id.attempt;
    slot.ctx = std::make_unique<Context>(chain.get(), &job.config, info, i);
    if (node.keyed) {
      state::BackendSpec spec;
      spec.range = state::key_group_range_for_subtask(vertex.max_parallelism(), vertex.parallelism(),
                                                      id.subtask);
      spec.max_parallelism = vertex.max_parallelism();
      spec.clock = clock;
      spec.instance_name = id.job_id + "-a" + std::to_string(id.attempt) + "-" + op_info.uid() +
                           "-" + std::to_string(id.subtask);
      // RocksDB is the default for windows (ARCHITECTURE.md), heap for the rest.
      auto backend = state::create_keyed_backend(
          job.config, spec, node.windowed ? state::BackendKind::kRocksDB : state::BackendKind::kHeap);
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
        auto in_chain = index_of.find(se->target);
        if (in_chain != index_of.end()) {
          // Several chained edges into one input (a union, a keyed stream
          // reinterpreted after a union): their watermarks are combined
          // as the input gate combines channels.
          std::vector<int> feeding;  // stream edge ids from this chain into the input
          for (const StreamEdge* te : g.in_edges(se->target))
            if (te->input_index == se->input_index && index_of.count(te->source)) feeding.push_back(te->id);
          InputWatermarks* merge = nullptr;
          int slot = 0;
          if (feeding.size() > 1) {
            auto& m = chain->merges_[{se->target, se->input_index}];
            if (!m) m = std::make_unique<InputWatermarks>(static_cast<int>(feeding.size()));
            merge = m.get();
            slot = static_cast<int>(std::find(feeding.begin(), feeding.end(), se->id) - feeding.begin());
          }
          targets.push_back(chain->own(type->make_chained_output(chain->ops_[in_chain->second].op.get(),
                                                                 host.failed_flag(), se->input_index, merge, slot)));
          continue;
        }
        auto je = job_edge_of.find(se->id);
        if (je == job_edge_of.end()) {
          return Status::internal("stream edge " + std::to_string(se->id) + " has no job edge");
        }
        const auto* tv = find_vertex(jg, je->second->target_vertex());
        auto w = writers.find(je->second->id());
        if (!tv || w == writers.end()) {
          return Status::internal("job edge " + std::to_string(je->second->id()) + " has no writer");
        }
        targets.push_back(chain->own(type->make_writer_output(
            w->second, partitioning_of(je->second->partitioner()), se->key_selector.get(),
            tv->max_parallelism(), id.subtask)));
      }
      OutputBase* out = targets.empty()       ? chain->own(type->make_discard())
                        : targets.size() == 1 ? targets[0]
                                              : chain->own(type->make_fanout(targets));
      outs.push_back(out);
      if (!tag.empty()) slot.ctx->sides[tag] = out;
    }
    slot.op->setup(slot.ctx.get(), std::move(outs));
  }
  return chain;
}

Status OperatorChain::restore_and_open(const TaskRestore* restore) {
  for (auto& slot : ops_) {
    OperatorRestore r;
    if (restore) {
      auto it = restore->operators.find(slot.ctx->info().uid);
      if (it != restore->operators.end()) {
        r = it->second.operator_state;
        if (auto* b = slot.ctx->backend.get()) {
          SLUICE_RETURN_IF_ERROR(b->restore(it->second.keyed, restore->base_dir)
                                     .with_context("restoring keyed state of '" +
                                                   slot.node->name + "'"));
        }
      }
      r.restored = true;
    }
    SLUICE_RETURN_IF_ERROR(
        slot.op->initialize_state(r).with_context("restoring '" + slot.node->name + "'"));
  }
  for (auto it = ops_.rbegin(); it != ops_.rend(); ++it) {
    SLUICE_RETURN_IF_ERROR(it->op->open().with_context("opening '" + it->node->name + "'"));
  }
  return Status::ok();
}

Status OperatorChain::finish(const std::function<bool()>& failed) {
  for (auto& slot : ops_) {
    SLUICE_RETURN_IF_ERROR(slot.op->finish().with_context("finishing '" + slot.node->name + "'"));
    if (failed()) return Status::ok();
  }
  return Status::ok();
}

void OperatorChain::close() {
  for (auto& slot : ops_)
    if (slot.op) slot.op->close();
}

Status OperatorChain::snapshot(const Barrier& b, const state::CheckpointStorage* storage,
                               TaskSnapshot& snap, AsyncSnapshotParts& parts) {
  for (auto& slot : ops_) {
    auto ctx = [&](const Status& st) {
      return st.with_context("checkpoint " + std::to_string(b.id.value()) + " of '" +
                             slot.node->name + "'");
    };
    OperatorSnapshot os;
    os.uid = slot.ctx->info().uid;
    const int64_t t0 = monotonic_ns();
    auto r = slot.op->snapshot_state_async(b.id);
    if (!r.is_ok()) return ctx(r.status());
    os.operator_state = std::move(r->state);
    if (r->async) {
      // The part's error names the operator and the checkpoint too.
      parts.operator_state.emplace_back(
          snap.operators.size(), [part = std::move(r->async), what = slot.node->name, id = b.id]() {
            auto blob = part();
            if (!blob.is_ok()) {
              return Result<std::string>(blob.status().with_context(
                  "checkpoint " + std::to_string(id.value()) + " of '" + what + "' (asynchronous part)"));
            }
            return blob;
          });
    }
    if (auto* backend = slot.ctx->backend.get()) {
      if (!storage) return ctx(Status::internal("no checkpoint storage"));
      auto target = storage->target(b.id.value(), b.is_savepoint(), file_stem(os.uid));
      auto part = backend->snapshot(b.id, target);
      if (!part.is_ok()) return ctx(part.status());
      parts.keyed.emplace_back(snap.operators.size(), std::move(*part));
    }
    // The task thread's share of the checkpoint, per operator: what delays
    // records behind the barrier. Logged when it is long enough to matter.
    const int64_t op_ms = (monotonic_ns() - t0) / 1'000'000;
    spdlog::log(op_ms >= kSlowSyncSnapshotMs ? spdlog::level::info : spdlog::level::debug,
                "checkpoint {}: synchronous part of '{}' took {} ms", b.id.value(), slot.node->name,
                op_ms);
    snap.operators.push_back(std::move(os));
  }
  return Status::ok();
}

Status OperatorChain::notify_checkpoint_complete(CheckpointId id) {
  for (auto& slot : ops_) {
    const int64_t t0 = monotonic_ns();
    if (auto* b = slot.ctx->backend.get()) b->notify_checkpoint_complete(id);
    Status st = slot.op->notify_checkpoint_complete(id);
    if (!st.is_ok()) {
      return st.with_context("committing checkpoint " + std::to_string(id.value()) + " in '" +
                             slot.node->name + "'");
    }
    // Commit work on the task thread holds the records behind it as a
    // barrier's synchronous part does: logged alike.
    const int64_t op_ms = (monotonic_ns() - t0) / 1'000'000;
    spdlog::log(op_ms >= kSlowSyncSnapshotMs ? spdlog::level::info : spdlog::level::debug,
                "checkpoint {}: completion of '{}' took {} ms on the task thread", id.value(),
                slot.node->name, op_ms);
  }
  return Status::ok();
}

bool OperatorChain::commit_in_progress() const {
  for (const auto& slot : ops_)
    if (slot.op->commit_in_progress()) return true;
  return false;
}

void OperatorChain::notify_checkpoint_aborted(CheckpointId id) {
  for (auto& slot : ops_) slot.op->notify_checkpoint_aborted(id);
}

int OperatorChain::fire_timers(size_t first) {
  int fired = 0;
  int64_t now = 0;
  bool have_now = false;
  while (true) {
    // The operator with the earliest due callback goes first.
    Context* best = nullptr;
    int64_t best_at = 0;
    for (size_t i = first; i < ops_.size(); ++i) {
      auto at = ops_[i].ctx->timers.next_deadline();
      if (!at) continue;
      if (!have_now) {
        now = clock_->now_ms();
        have_now = true;
      }
      if (*at <= now && (!best || *at < best_at)) {
        best = ops_[i].ctx.get();
        best_at = *at;
      }
    }
    if (!best) return fired;
    best->timers.fire_next_due(now);
    ++fired;
  }
}

std::optional<int64_t> OperatorChain::next_timer(size_t first) const {
  std::optional<int64_t> next;
  for (size_t i = first; i < ops_.size(); ++i) {
    auto at = ops_[i].ctx->timers.next_deadline();
    if (at && (!next || *at < *next)) next = at;
  }
  return next;
}

void OperatorChain::clear_timers() {
  for (auto& slot : ops_) slot.ctx->timers.clear();
}

}  // namespace sluice::runtime
