// The clickstream job through the built binary (`sluice run-local`) with
// sink=influxdb://..., checkpointing every 300 ms, against the real
// influxd: SIGKILLed at several moments — some while influxd is paused, so
// that completed checkpoints' points are not written yet — and restored
// with --restore latest; or with influxd itself killed mid-run and started
// again. The
// points queried back with InfluxQL must equal the reference counts
// computed here from the input: every (window, page) once, nothing
// missing, nothing extra.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "tests/influxdb/influx_server.h"
#include "tests/integration/support.h"

namespace sluice::influxdb::testing {
namespace {

constexpr int64_t kWindowMs = 10'000;
using Clock = std::chrono::steady_clock;

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string generate(const it::TempDir& dir, int count, int seed) {
  const std::string input = dir.file("clicks.ndjson");
  auto g = it::run_sluice({"gen", "--count", std::to_string(count), "--seed", std::to_string(seed), "--pages", "300",
                           "--events-per-second", "200", "--out-of-order", "0.2", "--output", input});
  EXPECT_EQ(g.exit_code, 0) << g.err;
  return input;
}

/// The points of page_counts in `db` as counts; `points` = how many.
it::Counts influx_counts(const std::string& db, size_t* points) {
  it::Counts out;
  *points = 0;
  for (const auto& s : shared_server().query("SELECT \"count\" FROM page_counts GROUP BY page_url", db)) {
    const std::string& page = s.tags.at(0).second;
    for (const auto& row : s.rows) {
      ++*points;
      out[{std::stoll(row.at(0)), page}] = std::stoll(row.at(1));
    }
  }
  return out;
}

std::vector<std::string> run_args(const it::TempDir& dir, const std::string& input, int rate, const std::string& sink) {
  return {it::sluice_binary(), "run-local", it::clickstream_library(), "-p", "2",
          "--checkpoint-dir", dir.file("chk"), "--checkpoint-interval", "300ms",
          "--arg", "source=file://" + input + "?rate=" + std::to_string(rate),
          "--arg", "window=10s", "--arg", "sink_parallelism=2", "--arg", "sink=" + sink,
          "--arg", "dlq=file://" + dir.file("dlq.ndjson")};
}

bool has_checkpoint(const std::string& job_dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(job_dir, ec)) {
    if (e.path().filename().string().rfind("chk-", 0) == 0 && std::filesystem::exists(e.path() / "_metadata")) return true;
  }
  return false;
}

constexpr const char* kSinkParams = "measurement=page_counts&tags=page_url&fields=count&time=window_start&precision=ms"
                                    "&create_database=true";

TEST(InfluxJob, ClickstreamKilledAndRestoredEndsWithTheReferencePoints) {
  InfluxServer& s = shared_server();
  it::TempDir dir;
  const std::string input = generate(dir, 30000, 11);
  const it::Counts expected = it::reference_counts(it::read_clicks(input), kWindowMs);
  ASSERT_GT(expected.size(), 1000u);
  const std::string log = dir.file("runs.log");
  const std::string sink = s.uri("clicks_killed", kSinkParams);

  const char* seed_env = std::getenv("SLUICE_KILL_SEED");
  const uint32_t seed = seed_env ? static_cast<uint32_t>(std::strtoul(seed_env, nullptr, 10)) : std::random_device{}();
  SCOPED_TRACE("kill schedule seed " + std::to_string(seed) + " (replay with SLUICE_KILL_SEED)");
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(700, 1300);
  constexpr int kKills = 3;
  int restores = 0;
  for (int k = 0; k <= kKills; ++k) {
    auto argv = run_args(dir, input, 8000, sink);
    if (has_checkpoint(dir.file("chk/clickstream"))) {
      argv.insert(argv.end(), {"--restore", "latest"});
      ++restores;
    }
    std::ofstream(log, std::ios::app) << "---- run " << k << (restores ? " (restored)" : "") << "\n";
    int pid = it::start_process(argv, log, true);
    ASSERT_GT(pid, 0);
    if (k == kKills) {
      ASSERT_EQ(it::wait_process(pid, std::chrono::seconds(60)), 0) << read_all(log);
      break;
    }
    int code = it::wait_process(pid, std::chrono::milliseconds(delay_ms(rng)));
    ASSERT_EQ(code, -1) << "run " << k << " ended (exit " << code << ") before it was killed:\n" << read_all(log);
    const bool paused = k % 2 == 0;
    if (paused) {
      // Checkpoints keep completing; their writes hang. The restore must
      // write them.
      s.pause();
      code = it::wait_process(pid, std::chrono::milliseconds(700));
    }
    ::kill(pid, SIGKILL);
    const int killed = it::wait_process(pid, std::chrono::seconds(10));
    if (paused) s.resume();
    ASSERT_EQ(code, -1) << "run " << k << " ended (exit " << code << ") before it was killed:\n" << read_all(log);
    ASSERT_EQ(killed, 128 + SIGKILL);
    std::ofstream(log, std::ios::app) << "---- SIGKILL" << (paused ? " while influxd was paused" : "") << "\n";
  }
  EXPECT_GE(restores, kKills - 1) << read_all(log);
  size_t points = 0;
  it::Counts actual = influx_counts("clicks_killed", &points);
  EXPECT_EQ(points, expected.size());
  std::string diff = it::diff_counts(expected, actual);
  EXPECT_TRUE(diff.empty()) << diff;
  std::cerr << "[kill] " << kKills << " kills, " << restores << " restores, " << points << " points" << std::endl;
}

TEST(InfluxJob, AServerCrashMidRunLosesNothing) {
  InfluxServer& s = shared_server();
  it::TempDir dir;
  const std::string input = generate(dir, 16000, 23);
  const it::Counts expected = it::reference_counts(it::read_clicks(input), kWindowMs);
  const std::string log = dir.file("run.log");
  int pid = it::start_process(run_args(dir, input, 4000, s.uri("clicks_outage", kSinkParams)), log, true);
  ASSERT_GT(pid, 0);
  // Let some checkpoints be written, then crash influxd for 1.5 s.
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  ASSERT_EQ(it::wait_process(pid, std::chrono::milliseconds(0)), -1) << read_all(log);
  ASSERT_TRUE(s.stop(/*crash=*/true));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_TRUE(s.start_again());
  ASSERT_EQ(it::wait_process(pid, std::chrono::seconds(60)), 0) << read_all(log);
  const std::string out = read_all(log);
  EXPECT_NE(out.find("retrying in"), std::string::npos) << "no write failed during the outage:\n" << out;
  EXPECT_NE(out.find("writing again after"), std::string::npos) << out;
  size_t points = 0;
  it::Counts actual = influx_counts("clicks_outage", &points);
  EXPECT_EQ(points, expected.size());
  std::string diff = it::diff_counts(expected, actual);
  EXPECT_TRUE(diff.empty()) << diff;
}

}  // namespace
}  // namespace sluice::influxdb::testing
