// The states of a job and of its subtasks as the jobmanager tracks them.
// The names are what the jobmanager persists in its job records, reports
// over gRPC/HTTP and prints in `sluice status`.
#pragma once

#include <optional>
#include <string_view>

namespace sluice {

/// A job: CREATED (submitted, not deployed yet) -> RUNNING -> RESTARTING
/// (an attempt failed; redeployed after a backoff) -> RUNNING ... ->
/// FINISHED | CANCELED | FAILED (terminal).
enum class JobState { kCreated, kRunning, kRestarting, kFinished, kCanceled, kFailed };

constexpr std::string_view job_state_name(JobState s) {
  switch (s) {
    case JobState::kCreated: return "CREATED";
    case JobState::kRunning: return "RUNNING";
    case JobState::kRestarting: return "RESTARTING";
    case JobState::kFinished: return "FINISHED";
    case JobState::kCanceled: return "CANCELED";
    case JobState::kFailed: return "FAILED";
  }
  return "?";
}

constexpr bool is_terminal(JobState s) {
  return s == JobState::kFinished || s == JobState::kCanceled || s == JobState::kFailed;
}

/// A subtask of the current attempt: DEPLOYING until its task reports,
/// then the task's own state (runtime::TaskState names).
enum class SubtaskState { kDeploying, kRunning, kFinished, kCanceled, kFailed };

constexpr std::string_view subtask_state_name(SubtaskState s) {
  switch (s) {
    case SubtaskState::kDeploying: return "DEPLOYING";
    case SubtaskState::kRunning: return "RUNNING";
    case SubtaskState::kFinished: return "FINISHED";
    case SubtaskState::kCanceled: return "CANCELED";
    case SubtaskState::kFailed: return "FAILED";
  }
  return "?";
}

/// nullopt for a name that is not a job state.
constexpr std::optional<JobState> parse_job_state(std::string_view name) {
  for (auto s : {JobState::kCreated, JobState::kRunning, JobState::kRestarting, JobState::kFinished,
                 JobState::kCanceled, JobState::kFailed}) {
    if (job_state_name(s) == name) return s;
  }
  return std::nullopt;
}

/// nullopt for a name that is not a subtask state (e.g. "CREATED").
constexpr std::optional<SubtaskState> parse_subtask_state(std::string_view name) {
  for (auto s : {SubtaskState::kDeploying, SubtaskState::kRunning, SubtaskState::kFinished,
                 SubtaskState::kCanceled, SubtaskState::kFailed}) {
    if (subtask_state_name(s) == name) return s;
  }
  return std::nullopt;
}

}  // namespace sluice
