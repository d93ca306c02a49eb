// Running `sluice run-local` with checkpointing to its end while killing it
// with SIGKILL at seeded moments (some while a checkpoint is being
// written) and restarting it with --restore latest each time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::it {

/// Checkpoints of a job's checkpoint directory (<checkpoint-dir>/<job name>):
/// chk-N with a _metadata file are complete.
struct CheckpointDirs {
  int64_t latest_completed = -1;
  std::vector<int64_t> incomplete;
};
CheckpointDirs read_checkpoint_dirs(const std::string& job_dir);

/// What a run with kills did.
struct KillRun {
  int kills = 0;
  int kills_during_checkpoint = 0;
  int restores = 0;
  int final_exit = -1;  // exit code of the last run (0: it finished)
  std::string log;      // everything the runs printed
};

/// Runs `argv` (a run-local command with --checkpoint-dir; "--restore
/// latest" is appended on restarts once a checkpoint completed) `kills`
/// times, then once to its end (at most `final_timeout_s`). Each run is
/// killed once it completed a checkpoint of its own (however long that
/// takes on a loaded machine, up to 60 s), 0..300 ms later — every other
/// one as soon as its next checkpoint is being written —, so every
/// restart restores. `seed` picks the moments; tests print it.
KillRun run_with_kills(const std::vector<std::string>& argv, const std::string& job_dir, const std::string& log_path,
                       int kills, uint32_t seed, int final_timeout_s = 120);

/// $SLUICE_KILL_SEED, or a random seed.
uint32_t kill_seed();

}  // namespace sluice::it
