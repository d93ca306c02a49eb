// Job and subtask state names: what job records persist and status reports
// show must parse back to the same state.
#include "engine/common/job_state.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(JobState, EveryNameParsesBackAndOnlyFinishedCanceledFailedAreTerminal) {
  int terminal = 0;
  for (auto s : {JobState::kCreated, JobState::kRunning, JobState::kRestarting, JobState::kFinished,
                 JobState::kCanceled, JobState::kFailed}) {
    EXPECT_EQ(parse_job_state(job_state_name(s)), s) << job_state_name(s);
    terminal += is_terminal(s) ? 1 : 0;
  }
  EXPECT_EQ(terminal, 3);
  EXPECT_TRUE(is_terminal(JobState::kCanceled));
  EXPECT_FALSE(is_terminal(JobState::kRestarting));
  EXPECT_EQ(parse_job_state("running"), std::nullopt);
  EXPECT_EQ(parse_job_state(""), std::nullopt);
}

TEST(SubtaskState, TaskStateNamesParseAndDeployingIsTheJobmanagersOwn) {
  EXPECT_EQ(parse_subtask_state("RUNNING"), SubtaskState::kRunning);
  EXPECT_EQ(parse_subtask_state("FAILED"), SubtaskState::kFailed);
  EXPECT_EQ(parse_subtask_state("DEPLOYING"), SubtaskState::kDeploying);
  EXPECT_EQ(parse_subtask_state("CREATED"), std::nullopt);
  EXPECT_EQ(subtask_state_name(SubtaskState::kCanceled), "CANCELED");
}

}  // namespace
}  // namespace sluice
