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
#include "tests/integration/support.h"

namespace sluice::it {
namespace {

struct Ev {
  int64_t key, id, ts;
};
using Row = std::tuple<int64_t, int64_t, int64_t>;  // key, left id, right id (-1: none)

std::string join_library() { return build_dir() + "/tests/integration/jobs/libit_join_job.so"; }

uint32_t seed_for_test() {
  const char* s = std::getenv("SLUICE_JOIN_SEED");
  return s ? static_cast<uint32_t>(std::strtoul(s, nullptr, 10)) : std::random_device{}();
}

/// `n` records with keys in [0, keys), timestamps drifting up from 10'000
/// with up to 60 ms of disorder (the job allows 100).
std::vector<Ev> random_events(std::mt19937& rng, int n, int keys, int64_t first_id) {
  std::vector<Ev> out;
  int64_t base = 10'000;
  for (int i = 0; i < n; ++i) {
    base += std::uniform_int_distribution<int64_t>(0, 3)(rng);
    out.push_back({std::uniform_int_distribution<int64_t>(0, keys - 1)(rng), first_id + i,
                   base - std::uniform_int_distribution<int64_t>(0, 60)(rng)});
  }
  return out;
}

void write_events(const std::string& path, const std::vector<Ev>& evs) {
  std::vector<std::string> lines;
  lines.reserve(evs.size());
  for (const Ev& e : evs)
    lines.push_back("{\"key\":" + std::to_string(e.key) + ",\"id\":" + std::to_string(e.id) +
                    ",\"ts\":" + std::to_string(e.ts) + "}");
  write_lines(path, lines);
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

/// The job's configuration, as the reference sees it.
struct Spec {
  std::string mode = "interval";  // interval | inner | left-outer
  std::string window = "tumbling";
  int64_t lower = -20, upper = 20, size = 50, slide = 20, gap = 15;
  std::vector<std::string> args() const {
    auto arg = [](const std::string& k, int64_t v) { return k + "=" + std::to_string(v); };
    std::vector<std::string> a = {"--arg", "mode=" + mode};
    auto add = [&](std::string kv) {
      a.push_back("--arg");
      a.push_back(std::move(kv));
    };
    if (mode == "interval") {
      add(arg("lower", lower));
      add(arg("upper", upper));
      return a;
    }
    add("window=" + window);
    if (window == "session") add(arg("gap", gap));
    else add(arg("size", size));
    if (window == "sliding") add(arg("slide", slide));
    return a;
  }
  std::string name() const { return mode == "interval" ? mode : mode + "/" + window; }
};

/// Nested loops over the inputs: the rows the job must write, sorted.
std::vector<Row> reference(const Spec& spec, const std::vector<Ev>& left, const std::vector<Ev>& right) {
  std::vector<Row> out;
  if (spec.mode == "interval") {
    for (const Ev& l : left)
      for (const Ev& r : right)
        if (l.key == r.key && l.ts + spec.lower <= r.ts && r.ts <= l.ts + spec.upper) out.emplace_back(l.key, l.id, r.id);
    std::sort(out.begin(), out.end());
    return out;
  }
  // Windows as (key, start, end) -> members of each side.
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::pair<std::vector<const Ev*>, std::vector<const Ev*>>> windows;
  if (spec.window == "session") {
    std::map<int64_t, std::vector<std::pair<const Ev*, bool>>> by_key;  // bool: is left
    for (const Ev& e : left) by_key[e.key].push_back({&e, true});
    for (const Ev& e : right) by_key[e.key].push_back({&e, false});
    for (auto& [key, evs] : by_key) {
      std::sort(evs.begin(), evs.end(), [](const auto& a, const auto& b) { return a.first->ts < b.first->ts; });
      // In timestamp order, a record starts a new session unless [ts, ts + gap)
      // overlaps or touches the current one.
      std::vector<std::pair<int64_t, int64_t>> sessions;
      for (const auto& [e, is_left] : evs) {
        if (sessions.empty() || e->ts > sessions.back().second) sessions.push_back({e->ts, e->ts + spec.gap});
        else sessions.back().second = std::max(sessions.back().second, e->ts + spec.gap);
        auto& w = windows[{key, sessions.size(), 0}];
        (is_left ? w.first : w.second).push_back(e);
      }
    }
  } else {
    const int64_t slide = spec.window == "sliding" ? spec.slide : spec.size;
    auto add = [&](const Ev& e, bool is_left) {
      for (int64_t s = e.ts - ((e.ts % slide) + slide) % slide; s > e.ts - spec.size; s -= slide) {
        auto& w = windows[{e.key, s, s + spec.size}];
        (is_left ? w.first : w.second).push_back(&e);
      }
    };
    for (const Ev& e : left) add(e, true);
    for (const Ev& e : right) add(e, false);
  }
  for (const auto& [w, members] : windows) {
    for (const Ev* l : members.first) {
      if (members.second.empty() && spec.mode == "left-outer") out.emplace_back(l->key, l->id, -1);
      for (const Ev* r : members.second) out.emplace_back(l->key, l->id, r->id);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<Row> read_rows(const std::string& path) {
  std::vector<Row> out;
  simdjson::dom::parser parser;
  for (const std::string& line : read_lines(path)) {
    if (line.empty()) continue;
    simdjson::dom::element doc;
    int64_t k = 0, l = 0, r = 0;
    if (parser.parse(line).get(doc) || doc["key"].get(k) || doc["left"].get(l) || doc["right"].get(r)) {
      ADD_FAILURE() << "unreadable output line: " << line;
      continue;
    }
    out.emplace_back(k, l, r);
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// Where the outputs differ, in a few lines.
std::string diff(const std::vector<Row>& want, const std::vector<Row>& got) {
  std::vector<Row> missing, extra;
  std::set_difference(want.begin(), want.end(), got.begin(), got.end(), std::back_inserter(missing));
  std::set_difference(got.begin(), got.end(), want.begin(), want.end(), std::back_inserter(extra));
  auto show = [](const std::vector<Row>& v) {
    std::string s;
    for (size_t i = 0; i < std::min<size_t>(v.size(), 5); ++i)
      s += " (" + std::to_string(std::get<0>(v[i])) + "," + std::to_string(std::get<1>(v[i])) + "," +
           std::to_string(std::get<2>(v[i])) + ")";
    return s;
  };
  return std::to_string(missing.size()) + " missing" + show(missing) + "; " + std::to_string(extra.size()) +
         " extra (or duplicated)" + show(extra);
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
