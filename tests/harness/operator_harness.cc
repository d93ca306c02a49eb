#include "tests/harness/operator_harness.h"

#include <atomic>
#include <cstdlib>
#include <filesystem>

#include "state/backend_factory.h"
#include "state/checkpoint_storage.h"

namespace sluice::harness {

namespace {

/// The test process's scratch directory for RocksDB working directories
/// and snapshot files; removed when the process exits.
class Scratch {
 public:
  Scratch() {
    std::string t = std::filesystem::temp_directory_path().string() + "/sluice-harness-XXXXXX";
    if (::mkdtemp(t.data())) path_ = t;
  }
  ~Scratch() {
    if (!path_.empty()) (void)state::remove_tree(path_);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

const std::string& scratch_dir() {
  static Scratch scratch;
  if (scratch.path().empty()) throw HarnessError("cannot create a scratch directory");
  return scratch.path();
}

std::atomic<int64_t> next_instance{0};

}  // namespace

OperatorSnapshot OperatorSnapshot::merge(const std::vector<OperatorSnapshot>& parts) {
  if (parts.empty()) throw HarnessError("OperatorSnapshot::merge of nothing");
  OperatorSnapshot out;
  out.max_parallelism = parts.front().max_parallelism;
  out.parallelism = parts.front().parallelism;
  for (const auto& p : parts) {
    if (p.max_parallelism != out.max_parallelism || p.parallelism != out.parallelism) {
      throw HarnessError("OperatorSnapshot::merge of snapshots of different runs");
    }
    if (!p.keyed_handles.empty()) {
      if (!out.keyed_dir.empty() && out.keyed_dir != p.keyed_dir) {
        throw HarnessError("OperatorSnapshot::merge of RocksDB snapshots of different checkpoint ids");
      }
      out.keyed_dir = p.keyed_dir;
      out.keyed_handles.insert(out.keyed_handles.end(), p.keyed_handles.begin(), p.keyed_handles.end());
    }
    for (const auto& [subtask, blob] : p.operator_states) {
      if (!out.operator_states.emplace(subtask, blob).second) {
        throw HarnessError("OperatorSnapshot::merge: subtask " + std::to_string(subtask) +
                           " appears twice");
      }
    }
    for (const auto& [kg, blob] : p.key_groups) {
      if (!out.key_groups.emplace(kg, blob).second) {
        throw HarnessError("OperatorSnapshot::merge: key group " + std::to_string(kg) +
                           " appears twice");
      }
    }
  }
  return out;
}

OperatorHarnessBase::OperatorHarnessBase(std::unique_ptr<runtime::StreamOperator> op,
                                         HarnessOptions options,
                                         std::unique_ptr<runtime::OutputBase> main_output)
    : options_(std::move(options)),
      clock_(options_.start_processing_time),
      pts_(&clock_),
      main_output_(std::move(main_output)),
      op_(std::move(op)) {
  if (!op_) throw HarnessError("no operator");
  Status st = state::validate_parallelism(options_.parallelism, options_.max_parallelism);
  if (!st.is_ok()) throw HarnessError(st.to_string());
  if (options_.subtask < 0 || options_.subtask >= options_.parallelism) {
    throw HarnessError("subtask index out of range");
  }
  info_.job_name = options_.job_name;
  info_.job_id = options_.job_name + "-id";
  info_.operator_name = options_.operator_name;
  info_.uid = options_.operator_name;
  info_.subtask = options_.subtask;
  info_.parallelism = options_.parallelism;
  info_.max_parallelism = options_.max_parallelism;
  if (options_.keyed) {
    state::BackendSpec spec;
    spec.range = state::key_group_range_for_subtask(options_.max_parallelism, options_.parallelism,
                                                    options_.subtask);
    spec.max_parallelism = options_.max_parallelism;
    spec.clock = &clock_;
    spec.instance_name = options_.operator_name + "-" + std::to_string(options_.subtask) + "-" +
                         std::to_string(next_instance.fetch_add(1));
    Configuration config = options_.job_config;
    config.set("state.backend", std::string(state::backend_kind_name(options_.backend)));
    if (options_.backend == state::BackendKind::kRocksDB) {
      config.set("state.rocksdb.local-dir", scratch_dir() + "/local");
    }
    auto backend = state::create_keyed_backend(config, spec, options_.backend);
    if (!backend.is_ok()) throw HarnessError("keyed backend: " + backend.status().to_string());
    backend_ = std::move(*backend);
  }
}

OperatorHarnessBase::~OperatorHarnessBase() {
  if (opened_ && !closed_) close();
}

Status OperatorHarnessBase::restore(const OperatorSnapshot& snapshot) {
  if (opened_ || restore_) return Status::failed_precondition("restore() once, before open()");
  if (snapshot.max_parallelism != options_.max_parallelism) {
    return Status::invalid_argument("snapshot has max parallelism " +
                                    std::to_string(snapshot.max_parallelism) + ", harness " +
                                    std::to_string(options_.max_parallelism));
  }
  if (backend_ && !snapshot.keyed_handles.empty()) {
    SLUICE_RETURN_IF_ERROR(backend_->restore(snapshot.keyed_handles, snapshot.keyed_dir));
  } else if (auto* heap = heap_backend()) {
    SLUICE_RETURN_IF_ERROR(restore_keyed_state(*heap, snapshot.key_groups));
  } else if (backend_ && !snapshot.key_groups.empty()) {
    return Status::invalid_argument("a heap snapshot cannot be restored into a RocksDB harness");
  }
  runtime::OperatorRestore r;
  r.restored = true;
  r.old_parallelism = snapshot.parallelism;
  for (const auto& [subtask, blob] : snapshot.operator_states) r.states.push_back(blob);
  restore_ = std::move(r);
  return Status::ok();
}

Status OperatorHarnessBase::open() {
  if (opened_) return Status::failed_precondition("open() twice");
  std::vector<runtime::OutputBase*> outs{main_output_.get()};
  for (auto& [tag, out] : sides_) outs.push_back(out.get());
  op_->setup(this, std::move(outs));
  runtime::OperatorRestore r = restore_.value_or(runtime::OperatorRestore{});
  SLUICE_RETURN_IF_ERROR(op_->initialize_state(r).with_context("initialize_state"));
  opened_ = true;
  SLUICE_RETURN_IF_ERROR(op_->open().with_context("open"));
  return Status::ok();
}

void OperatorHarnessBase::process_watermark(EventTime wm) {
  require_open("process_watermark");
  op_->process_watermark(wm);
}

void OperatorHarnessBase::set_processing_time(int64_t now_ms) {
  require_open("set_processing_time");
  if (now_ms < clock_.now_ms()) throw HarnessError("processing time does not go back");
  clock_.set(now_ms);
  pts_.fire_due();
}

Status OperatorHarnessBase::end_input() {
  require_open("end_input");
  return op_->finish();
}

OperatorSnapshot OperatorHarnessBase::snapshot(CheckpointId id) {
  require_open("snapshot");
  // As the task does: the synchronous part, then (here at once) the asynchronous one.
  Result<std::string> op_state = runtime::complete_inline(op_->snapshot_state_async(id));
  if (!op_state.is_ok()) throw HarnessError("snapshot_state failed: " + op_state.status().to_string());
  OperatorSnapshot snap;
  snap.max_parallelism = options_.max_parallelism;
  snap.parallelism = options_.parallelism;
  snap.operator_states.emplace(options_.subtask, std::move(*op_state));
  if (auto* heap = heap_backend()) {
    heap->write_back_caches();  // what only the operators' state caches hold (as snapshot() does)
    snap.key_groups = snapshot_keyed_state(*heap);
  } else if (backend_) {
    // A self-contained savepoint per checkpoint id, shared by the subtasks.
    state::SnapshotTarget target;
    target.job_dir = scratch_dir() + "/snapshot-" + std::to_string(id.value());
    target.own_dir = ".";
    target.file_stem = options_.operator_name + "-" + std::to_string(options_.subtask) + "-" +
                       std::to_string(next_instance.fetch_add(1));
    target.self_contained = true;
    auto part = backend_->snapshot(id, target);
    if (!part.is_ok()) throw HarnessError("keyed snapshot failed: " + part.status().to_string());
    auto handle = (*part)();
    if (!handle.is_ok()) throw HarnessError("keyed snapshot failed: " + handle.status().to_string());
    snap.keyed_handles.push_back(std::move(*handle));
    snap.keyed_dir = target.job_dir;
  }
  return snap;
}

Status OperatorHarnessBase::notify_checkpoint_complete(CheckpointId id) {
  require_open("notify_checkpoint_complete");
  if (backend_) backend_->notify_checkpoint_complete(id);
  return op_->notify_checkpoint_complete(id);
}

void OperatorHarnessBase::close() {
  if (!opened_ || closed_) return;
  closed_ = true;
  op_->close();
}

void OperatorHarnessBase::dead_letter(DeadLetter dl) {
  // As the task does: fill in who and when, count it.
  if (dl.job.empty()) dl.job = info_.job_name;
  if (dl.operator_name.empty()) dl.operator_name = info_.operator_name;
  if (dl.time_ms == 0) dl.time_ms = clock_.now_ms();
  metrics_.dead_letters.fetch_add(1, std::memory_order_relaxed);
  ++dead_letter_count_;
  if (options_.retain_dead_letters) dead_letters_.push_back(std::move(dl));
}

runtime::OutputBase* OperatorHarnessBase::side_output(std::string_view tag) {
  for (auto& [t, out] : sides_)
    if (t == tag) return out.get();
  return nullptr;
}

}  // namespace sluice::harness
