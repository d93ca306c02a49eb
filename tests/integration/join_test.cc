// Interval and window joins end to end: it_join_job (jobs/join_job.cc) on
// seeded random out-of-order inputs through `sluice run-local` at
// parallelism 1 and 4, and killed (SIGKILL) at random moments and restored
// from the latest checkpoint on the heap and the RocksDB backend; the
// exactly-once file sink must hold exactly what a nested-loop join of the
// inputs computed here gives — every row once, none missing. The inputs'
// disorder stays below the sources' bounded out-of-orderness, so no record
// is late and the output does not depend on timing. A failing seed is
// printed; SLUICE_JOIN_SEED=<n> replays it.
#include <gtest/gtest.h>
#include <signal.h>
#include <simdjson.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "tests/integration/process.h"
#include "tests/integration/join_reference.h"
#include "tests/integration/support.h"

namespace sluice::it {
namespace {

uint32_t seed_for_test() {
  const char* s = std::getenv("SLUICE_JOIN_SEED");
  return s ? static_cast<uint32_t>(std::strtoul(s, nullptr, 10)) : std::random_device{}();
}

/// A chk-N/_metadata exists somewhere under `dir`.
bool has_completed_checkpoint(const std::string& dir) {
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->path().filename() == "_metadata") return true;
  }
  return false;
}

std::vector<Spec> all_specs() {
  std::vector<Spec> specs;
  specs.push_back(Spec{});
  for (std::string mode : {"inner", "left-outer"})
    for (std::string window : {"tumbling", "sliding", "session"}) {
      Spec s;
      s.mode = mode;
      s.window = window;
      specs.push_back(s);
    }
  return specs;
}

TEST(JoinJob, IntervalAndWindowJoinsEqualANestedLoopJoinAtParallelismOneAndFour) {
  const uint32_t seed = seed_for_test();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (replay with SLUICE_JOIN_SEED)");
  std::mt19937 rng(seed);
  TempDir dir;
  const auto left = random_events(rng, 1500, 40, 0);
  const auto right = random_events(rng, 1500, 40, 1'000'000);
  write_events(dir.file("left.ndjson"), left);
  write_events(dir.file("right.ndjson"), right);
  for (const Spec& spec : all_specs()) {
    const auto want = reference(spec, left, right);
    ASSERT_GT(want.size(), 100u) << spec.name();
    for (int p : {1, 4}) {
      SCOPED_TRACE(spec.name() + " at parallelism " + std::to_string(p));
      const std::string out = dir.file("out-" + std::to_string(p) + "-" + spec.mode + "-" + spec.window + ".ndjson");
      std::vector<std::string> argv = {"run-local", join_library(), "-p", std::to_string(p),
                                       "--arg", "left=" + dir.uri("left.ndjson"),
                                       "--arg", "right=" + dir.uri("right.ndjson"),
                                       "--arg", "sink=file://" + out};
      for (const auto& a : spec.args()) argv.push_back(a);
      CommandResult r = run_sluice(argv);
      ASSERT_EQ(r.exit_code, 0) << r.describe(argv);
      const auto got = read_rows(out);
      EXPECT_TRUE(got == want) << diff(want, got);
    }
  }
}

class JoinKillRestore : public ::testing::TestWithParam<std::string> {};

TEST_P(JoinKillRestore, KilledAtRandomMomentsAndRestoredWritesEveryRowOnce) {
  const std::string backend = GetParam();
  const uint32_t seed = seed_for_test();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (replay with SLUICE_JOIN_SEED)");
  std::mt19937 rng(seed);
  TempDir dir;
  const auto left = random_events(rng, 5000, 200, 0);
  const auto right = random_events(rng, 5000, 200, 1'000'000);
  write_events(dir.file("left.ndjson"), left);
  write_events(dir.file("right.ndjson"), right);
  // One interval join and one left outer window join per run, picked by the seed.
  auto specs = all_specs();
  Spec window_spec = specs.at(4 + rng() % 3);  // left-outer: tumbling, sliding or session
  for (const Spec& spec : {Spec{}, window_spec}) {
    SCOPED_TRACE(spec.name() + " on " + backend);
    const auto want = reference(spec, left, right);
    const std::string tag = spec.mode + "-" + spec.window;
    const std::string out = dir.file("out-" + tag + ".ndjson");
    const std::string chk = dir.file("chk-" + tag);
    const std::string log = dir.file("runs-" + tag + ".log");
    auto start = [&](bool restore) {
      // 5,000 records per side at 2,500/s per source: ~2 s of input, so
      // every kill lands while the job still reads.
      std::vector<std::string> argv = {sluice_binary(), "run-local", join_library(), "-p", "2",
                                       "--set", "state.backend=" + backend,
                                       "--checkpoint-dir", chk, "--checkpoint-interval", "200ms",
                                       "--arg", "left=" + dir.uri("left.ndjson") + "?rate=2500",
                                       "--arg", "right=" + dir.uri("right.ndjson") + "?rate=2500",
                                       "--arg", "sink=file://" + out};
      for (const auto& a : spec.args()) argv.push_back(a);
      if (backend == "rocksdb") {
        argv.push_back("--set");
        argv.push_back("state.rocksdb.local-dir=" + dir.file("local"));
      }
      if (restore) {
        argv.push_back("--restore");
        argv.push_back("latest");
      }
      std::ofstream(log, std::ios::app) << "---- run" << (restore ? " --restore latest" : "") << "\n";
      return start_process(argv, log, true);
    };
    std::uniform_int_distribution<int> delay_ms(300, 900);
    int kills = 0;
    for (int run = 0; run < 3; ++run) {
      int pid = start(run > 0);
      ASSERT_GT(pid, 0);
      int code = wait_process(pid, std::chrono::milliseconds(delay_ms(rng)));
      if (run == 0) {
        // The later runs must have a checkpoint to restore from.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (code == -1 && !has_completed_checkpoint(chk) && std::chrono::steady_clock::now() < deadline)
          code = wait_process(pid, std::chrono::milliseconds(50));
      }
      if (code != -1) {
        std::ofstream(log, std::ios::app) << "---- ended by itself with " << code << "\n";
        ASSERT_EQ(code, 0) << "see " << log;
        break;  // finished before the kill: the last run below restores nothing new
      }
      ::kill(pid, SIGKILL);
      ASSERT_EQ(wait_process(pid, std::chrono::seconds(10)), 128 + SIGKILL);
      ++kills;
      std::ofstream(log, std::ios::app) << "---- SIGKILL\n";
    }
    int pid = start(true);
    ASSERT_GT(pid, 0);
    ASSERT_EQ(wait_process(pid, std::chrono::seconds(60)), 0) << "see " << log;
    EXPECT_GE(kills, 2) << "the job ended before it was killed; see " << log;
    const auto got = read_rows(out);
    EXPECT_TRUE(got == want) << diff(want, got) << "; see " << log;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, JoinKillRestore, ::testing::Values("heap", "rocksdb"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace sluice::it
