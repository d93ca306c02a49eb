// The checkpoint coordinator of one job: triggers checkpoint N at every
// source, collects the acknowledgements of every task, writes the
// completed checkpoint's metadata atomically, tells every task to commit,
// keeps the last K checkpoints and discards older ones (with the shared
// files no retained checkpoint references). It runs in-process for
// `sluice run-local` and inside the jobmanager for clusters.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/common/clock.h"
#include "engine/common/config.h"
#include "engine/runtime/task.h"
#include "state/checkpoint_storage.h"

namespace sluice::proto {
class JobGraph;
}

namespace sluice::runtime {

struct CheckpointConfig {
  /// Time between checkpoints; 0 = no periodic checkpoints. Default 0.
  Duration interval{0};
  /// A checkpoint not complete after this is aborted. Default 10 min.
  Duration timeout{600'000};
  /// Least time from the end of one checkpoint to the start of the next. Default 0.
  Duration min_pause{0};
  /// Completed checkpoints kept. Default 3.
  int retained = 3;
  /// Barriers overtake in-flight records, which are stored with the
  /// checkpoint (no alignment stall under backpressure). Default false.
  bool unaligned = false;
  /// Aligned checkpoints whose alignment takes longer switch to unaligned;
  /// 0 = never. Default 0.
  Duration alignment_timeout{0};

  /// From job configuration keys checkpoint.interval, checkpoint.timeout,
  /// checkpoint.min-pause, checkpoint.retained, checkpoint.unaligned,
  /// checkpoint.alignment-timeout.
  static Result<CheckpointConfig> from(const Configuration& config);
};

/// Counters for status output and metrics.
struct CheckpointStats {
  int64_t completed = 0;
  int64_t failed = 0;  // declined or timed out
  int64_t last_completed_id = 0;
  int64_t last_duration_ms = 0;
  int64_t last_size_bytes = 0;
  int64_t last_alignment_ms = 0;
  int64_t last_sync_ms = 0;
  std::string last_path;
};

/// One checkpoint or savepoint attempt, for the history the status pages show.
struct CheckpointHistoryEntry {
  enum class Outcome { kInProgress, kCompleted, kFailed };
  int64_t id = 0;
  bool savepoint = false;
  Outcome outcome = Outcome::kInProgress;
  int64_t trigger_ms = 0;   // clock ms
  int64_t duration_ms = 0;  // trigger to completion/failure (in progress: so far)
  int64_t size_bytes = 0;
  int64_t alignment_ms = 0;  // longest alignment of any task
  int64_t sync_ms = 0;       // longest synchronous part of any task
  int acknowledged = 0;
  int tasks = 0;
  std::string failure;  // why it failed
  std::string path;     // where it is (completed)
};
std::string_view checkpoint_outcome_name(CheckpointHistoryEntry::Outcome o);

/// How the coordinator reaches the tasks of the current attempt.
/// Implementations must be thread-safe.
class CheckpointGateway {
 public:
  virtual ~CheckpointGateway() = default;
  virtual void trigger_sources(const Barrier& b) = 0;
  virtual void notify_complete(CheckpointId id, bool final_checkpoint) = 0;
  virtual void notify_aborted(CheckpointId id) = 0;
};

/// Thread-safe. Owned by the executor (or jobmanager) of the job; lives
/// across restarts of the job so checkpoint ids keep increasing.
class CheckpointCoordinator {
 public:
  CheckpointCoordinator(CheckpointConfig config,
                        std::shared_ptr<const state::CheckpointStorage> storage,
                        std::shared_ptr<const proto::JobGraph> job_graph, CheckpointGateway* gateway,
                        const Clock* clock, int64_t first_id);
  ~CheckpointCoordinator();

  /// Starts the periodic trigger thread.
  void start();
  void stop();

  /// A new attempt of the job is deployed: pending checkpoints are aborted
  /// and only acknowledgements of this attempt count.
  void reset_for_attempt(int attempt);

  /// Triggers a savepoint now; the future is set when it is complete (or failed).
  /// `stop`: the job is about to stop with it, so no checkpoint may follow it
  /// (its output would be committed beyond the savepoint): periodic and final
  /// checkpoints stay suspended unless resume_checkpoints() is called.
  std::future<Result<state::StoredCheckpoint>> trigger_savepoint(bool stop = false);
  /// Undoes the suspension of a stop-with-savepoint that failed.
  void resume_checkpoints();
  /// Triggers a checkpoint now (tests, manual).
  Result<CheckpointId> trigger_checkpoint();

  void acknowledge(const TaskId& task, TaskSnapshot snapshot);
  void decline(const TaskId& task, CheckpointId id, const Status& why);
  /// A source task reached the end of its input (see TaskListener).
  void source_ended(const TaskId& task);

  std::optional<state::StoredCheckpoint> latest_completed() const;
  CheckpointStats stats() const;
  /// The latest kHistorySize checkpoints (oldest first), the pending one last.
  std::vector<CheckpointHistoryEntry> history() const;
  static constexpr size_t kHistorySize = 30;
  /// Adopts checkpoints already in storage (a restored job keeps counting
  /// references to their shared files and discards them in turn) and
  /// removes what crashed runs left half-written. Call before any task runs.
  Status adopt_existing();

 private:
  struct Pending {
    CheckpointId id{0};
    bool savepoint = false;
    bool final_checkpoint = false;
    int64_t trigger_ms = 0;
    std::map<std::pair<int, int>, TaskSnapshot> acks;  // (vertex, subtask) -> snapshot
    std::optional<std::promise<Result<state::StoredCheckpoint>>> promise;
  };

  void loop();
  // Callers hold mu_.
  Result<CheckpointId> trigger_locked(bool savepoint);
  void complete_locked(Pending& p);
  void abort_locked(const Status& why);
  void record_locked(CheckpointHistoryEntry e);
  bool all_sources_ended_locked() const;

  const CheckpointConfig config_;
  std::shared_ptr<const state::CheckpointStorage> storage_;
  std::shared_ptr<const proto::JobGraph> job_graph_;
  CheckpointGateway* gateway_;
  const Clock* clock_;
  size_t expected_acks_ = 0;
  size_t source_tasks_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  int attempt_ = 0;
  int64_t next_id_;
  std::optional<Pending> pending_;
  std::vector<state::StoredCheckpoint> completed_;  // retained, oldest first
  std::set<std::pair<int, int>> ended_sources_;
  bool final_done_ = false;
  bool suspended_ = false;  // a stop-with-savepoint is under way
  int64_t last_end_ms_ = 0;
  int64_t next_trigger_ms_ = 0;
  std::deque<std::promise<Result<state::StoredCheckpoint>>> savepoint_requests_;
  CheckpointStats stats_;
  std::deque<CheckpointHistoryEntry> history_;  // ended ones, oldest first
  std::thread thread_;
};

}  // namespace sluice::runtime
