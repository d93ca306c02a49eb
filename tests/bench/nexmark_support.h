// What the Nexmark tests share: seeded events, a fixture that writes them
// to a file and runs one query of build/bench/libnexmark.so with
// `sluice run-local`, and reading the sink's rows back.
#pragma once

#include <gtest/gtest.h>

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "bench/nexmark/queries.h"
#include "engine/common/json.h"
#include "engine/common/json_read.h"
#include "jobs/gen/nexmark.h"
#include "tests/harness/test_seed.h"
#include "tests/integration/process.h"

namespace sluice::nexmark {

inline std::string build_dir() {
  const char* b = std::getenv("SLUICE_BUILD_DIR");
  return b ? b : "build";
}

using harness::test_seed;

inline std::vector<Event> generate(int64_t n, uint64_t seed) {
  NexmarkOptions o;
  o.count = n;
  o.seed = seed;
  o.events_per_second = 1000;  // 20 s of event time: several windows of every query
  NexmarkGenerator g(o);
  std::vector<Event> out;
  while (!g.done()) out.push_back(g.next());
  return out;
}

/// Rows of every sink subtask's file (`<stem>-N.ndjson`, or the path
/// itself), file by file in subtask order, each in the order written.
template <class T>
std::vector<T> read_rows(const std::string& path) {
  std::vector<T> out;
  std::vector<std::string> files = {path};
  const std::string stem = path.substr(0, path.size() - 7);  // without ".ndjson"
  for (int i = 0; std::filesystem::exists(stem + "-" + std::to_string(i) + ".ndjson"); ++i) {
    files.push_back(stem + "-" + std::to_string(i) + ".ndjson");
  }
  JsonParser p;
  for (const auto& file : files) {
    std::ifstream f(file);
    std::string line;
    while (std::getline(f, line)) {
      if (line.empty()) continue;
      T v{};
      std::string err = p.parse(line, v);
      EXPECT_TRUE(err.empty()) << err << ": " << line;
      out.push_back(v);
    }
  }
  return out;
}

/// Writes 20,000 events of the process's seed and runs queries over them.
class NexmarkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path().string() + "/sluice-nexmark-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_.data()), nullptr);
    events_ = generate(20'000, test_seed());
    std::ofstream f(dir_ + "/events.ndjson");
    for (const auto& e : events_) f << to_json(e) << "\n";
  }
  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "Nexmark events of seed " << test_seed() << " (SLUICE_SEED="
                << test_seed() << " replays them)\n";
    }
    std::filesystem::remove_all(dir_);
  }

  /// Runs `query` at parallelism 2 and returns the sink file's path.
  /// `source_query`: appended to the source URI (e.g. "?rate=100000").
  std::string run(const std::string& query, const std::string& backend,
                  const std::vector<std::string>& extra_args = {},
                  const std::string& source_query = "") {
    std::string out = dir_ + "/" + query + "-" + backend + ".ndjson";
    std::vector<std::string> argv = {build_dir() + "/sluice",
                                     "run-local",
                                     build_dir() + "/bench/libnexmark.so",
                                     "-p",
                                     "2",
                                     "--set",
                                     "state.backend=" + backend,
                                     "--arg",
                                     "query=" + query,
                                     "--arg",
                                     "source=file://" + dir_ + "/events.ndjson" + source_query,
                                     "--arg",
                                     "sink=file://" + out,
                                     "--arg",
                                     "dlq=file://" + dir_ + "/dlq.ndjson"};
    for (const auto& a : extra_args) {
      argv.push_back("--arg");
      argv.push_back(a);
    }
    auto r = it::run_command(argv, std::chrono::seconds(120));
    EXPECT_EQ(r.exit_code, 0) << r.describe(argv);
    EXPECT_FALSE(std::filesystem::exists(dir_ + "/dlq.ndjson") &&
                 std::filesystem::file_size(dir_ + "/dlq.ndjson") > 0)
        << "dead letters";
    return out;
  }

  std::vector<Bid> bids() const {
    std::vector<Bid> out;
    for (const auto& e : events_)
      if (e.bid) out.push_back(*e.bid);
    return out;
  }

  std::string dir_;
  std::vector<Event> events_;
};

/// The same rows in any order (compared by `k`, e.g. their JSON).
template <class T, class Key>
void expect_same_rows(std::vector<T> got, std::vector<T> want, Key k) {
  auto less = [&](const T& a, const T& b) { return k(a) < k(b); };
  std::sort(got.begin(), got.end(), less);
  std::sort(want.begin(), want.end(), less);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_TRUE(k(got[i]) == k(want[i])) << "row " << i;
}

}  // namespace sluice::nexmark
