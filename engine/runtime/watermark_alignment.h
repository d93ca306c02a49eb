// Watermark alignment at sources (Flink's `withWatermarkAlignment`): the
// source subtasks of an alignment group report their watermark, and one
// whose watermark runs more than the group's maximum drift ahead of the
// group's minimum stops reading until the others catch up. Without it a
// bounded replay of several inputs read at the same line rate puts one
// input far ahead of another in event time, and every operator that waits
// for the watermark (joins, windows, event-time ordering) buffers the
// difference: memory grows with the input.
//
// A member counts only once it has a watermark (as Flink since FLINK-32414):
// a source whose splits have not emitted anything yet — an empty Kafka
// topic, a subtask without a partition — does not stop the others from
// reading. Its splits still hold the watermark downstream (the minimum over
// the inputs) until they emit or go idle (`with_idleness`), as in Flink: a
// source that can stay empty needs an idleness, alignment or not.
//
// Groups are per process: every source subtask of a job that runs in this
// process (run-local: all of them; a taskmanager: those it runs) and names
// the same group is aligned with the others. Subtasks of the group in
// other processes are not seen (no cluster-wide minimum).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace sluice::runtime {

/// The process-wide registry of alignment groups, keyed by job id and
/// group name. Thread-safe: members join and leave on their task threads
/// and report and read the minimum from there. Lives for the process
/// (`instance()`); groups go when their last member leaves.
class WatermarkAlignment {
 public:
  /// One source subtask's place in its group: created by join(), left on
  /// destruction (so a failed or cancelled task never holds the group
  /// back once it is gone). Owned by the source operator; its task thread
  /// only.
  class Member {
   public:
    ~Member();
    Member(const Member&) = delete;
    Member& operator=(const Member&) = delete;

    /// This member's watermark (INT64_MIN before its first one).
    void report(int64_t watermark) { slot_->store(watermark, std::memory_order_relaxed); }
    /// This member no longer holds the group back (idle, or its input
    /// ended); a later report() counts again.
    void exclude() { slot_->store(INT64_MAX, std::memory_order_relaxed); }
    /// The lowest watermark over the group's members that have one and
    /// are not excluded (INT64_MAX when none has).
    int64_t group_min() const;
    /// Whether a member at `watermark` must wait: more than `max_drift_ms`
    /// ahead of the group's minimum. Members without a watermark yet are
    /// not waited for.
    bool should_pause(int64_t watermark, int64_t max_drift_ms) const;

   private:
    friend class WatermarkAlignment;
    struct Group;
    Member(std::shared_ptr<Group> group, std::shared_ptr<std::atomic<int64_t>> slot)
        : group_(std::move(group)), slot_(std::move(slot)) {}
    // shared: the registry and every member of the group hold the group;
    // a slot is shared between its member and the group's list.
    std::shared_ptr<Group> group_;
    std::shared_ptr<std::atomic<int64_t>> slot_;
  };

  static WatermarkAlignment& instance();

  /// Joins `group` of job `job_id`; the member starts at INT64_MIN (no
  /// watermark: it counts from its first report on).
  std::unique_ptr<Member> join(const std::string& job_id, const std::string& group);

  /// Members of a group (tests, diagnostics).
  size_t members(const std::string& job_id, const std::string& group) const;

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, std::weak_ptr<Member::Group>>> groups_;
};

}  // namespace sluice::runtime
