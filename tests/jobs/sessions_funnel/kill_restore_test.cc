// sessions_funnel through `sluice run-local` with checkpoints every 300 ms,
// SIGKILLed several times (some kills while a checkpoint is written) and
// restored with --restore latest: the sessions in Postgres (upsert on
// session_id, retractions deleting) and in the partitioned file sink (a
// zstd changelog under dt=/hour= folders) must equal the reference, with
// no row written twice; the funnel counts (exactly-once file) too.
#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "tests/integration/kill_restore.h"
#include "tests/integration/support.h"
#include "tests/jobs/sessions_funnel/reference.h"
#include "tests/postgres/pg_server.h"

namespace sluice::sf_test {
namespace {

std::string job_library() { return it::build_dir() + "/jobs/sessions_funnel/libsessions_funnel.so"; }

postgres::testing::PgServer& pg() {
  static std::unique_ptr<postgres::testing::PgServer> server = [] {
    std::string error;
    auto s = postgres::testing::PgServer::start(&error);
    if (!s) {
      ADD_FAILURE() << "cannot start PostgreSQL: " << error;
      std::abort();
    }
    return s;
  }();
  return *server;
}

struct Input {
  std::string path;
  std::vector<View> valid;
};

Input generate(const it::TempDir& dir, uint32_t seed) {
  Input in{dir.file("views.ndjson"), {}};
  auto g = it::run_sluice({"gen", "--kind", "pageviews", "--count", "24000", "--seed", std::to_string(seed), "--users",
                           "150", "--late", "0.02", "--very-late", "0.002", "--malformed", "0.003", "--output", in.path});
  EXPECT_EQ(g.exit_code, 0) << g.err;
  in.valid = read_valid_views(in.path);
  return in;
}

std::vector<std::string> job_args(const it::TempDir& dir, const Input& in, const std::string& sessions_uri) {
  return {it::sluice_binary(), "run-local", job_library(), "-p", "2", "--checkpoint-dir", dir.file("chk"),
          "--checkpoint-interval", "300ms", "--arg", "source=file://" + in.path + "?rate=9000", "--arg",
          "sessions=" + sessions_uri, "--arg", "funnel_sink=" + dir.uri("funnel.ndjson"), "--arg",
          "late=" + dir.uri("late.ndjson"), "--arg", "dlq=" + dir.uri("dlq.ndjson")};
}

/// Runs with kills; the funnel and late outputs must be right; returns the late events.
std::map<std::string, std::vector<View>> run_and_check_funnel(const it::TempDir& dir, const Input& in,
                                                              const std::string& sessions_uri) {
  const uint32_t seed = it::kill_seed();
  SCOPED_TRACE("kill schedule seed " + std::to_string(seed) + " (replay with SLUICE_KILL_SEED)");
  it::KillRun run = it::run_with_kills(job_args(dir, in, sessions_uri), dir.file("chk/sessions_funnel"),
                                       dir.file("runs.log"), 3, seed);
  EXPECT_EQ(run.final_exit, 0) << run.log;
  EXPECT_EQ(run.kills, 3) << "the job ended before it was killed three times: make the input longer\n" << run.log;
  EXPECT_EQ(run.restores, 3) << "every restart restores from a checkpoint of the run before\n" << run.log;
  std::cerr << "[kill] " << run.kills << " kills (" << run.kills_during_checkpoint << " during a checkpoint), "
            << run.restores << " restores" << std::endl;
  auto late = read_late(dir.file("late.ndjson"));
  const FunnelTable funnel = latest_funnel(files_with_prefix(dir.path(), "funnel"));
  EXPECT_EQ(diff_funnel(reference_funnel(minus(in.valid, late["funnel"]), Settings{}), funnel), "");
  return late;
}

TEST(SessionsFunnelKillRestore, PostgresHoldsTheReferenceSessionsExactlyOnce) {
  it::TempDir dir;
  const Input in = generate(dir, 21);
  const std::string uri = "postgres://postgres@127.0.0.1:" + std::to_string(pg().port()) +
                          "/sluice?table=sessions&mode=upsert&key=session_id&delete_when=retracted&create_table=true";
  auto late = run_and_check_funnel(dir, in, uri);

  SessionTable table;
  auto rows = pg().sql(
      "SELECT session_id, user_id, session_start, session_end, duration_ms, events, array_to_json(pages)::text, "
      "pages_more, array_to_json(devices)::text, furthest_step, furthest_step_name, converted FROM sessions");
  for (const auto& r : rows.rows) {
    std::string json = "{\"session_id\":\"" + *r[0] + "\",\"user_id\":\"" + *r[1] + "\",\"session_start\":" + *r[2] +
                       ",\"session_end\":" + *r[3] + ",\"duration_ms\":" + *r[4] + ",\"events\":" + *r[5] +
                       ",\"pages\":" + *r[6] + ",\"pages_more\":" + *r[7] + ",\"devices\":" + *r[8] +
                       ",\"furthest_step\":" + *r[9] + ",\"furthest_step_name\":\"" + *r[10] +
                       "\",\"converted\":" + (*r[11] == "t" ? "true" : "false") + "}";
    SessionRow row = parse_session_row(json);
    EXPECT_TRUE(table.emplace(row.session_id, row).second) << "session_id is the primary key";
  }
  const SessionTable expected = reference_sessions(minus(in.valid, late["sessions"]), Settings{});
  ASSERT_GT(expected.size(), 1000u);
  EXPECT_EQ(table.size(), expected.size());
  EXPECT_EQ(diff_sessions(expected, table), "");
}

TEST(SessionsFunnelKillRestore, PartitionedFilesHoldTheReferenceSessionsExactlyOnce) {
  it::TempDir dir;
  const Input in = generate(dir, 22);
  const std::string lake = dir.file("lake");
  auto late = run_and_check_funnel(
      dir, in,
      "file://" + lake + "/?partition=dt:session_start:date,hour:session_start:hour&compression=zstd&roll_size=64KB");
  const auto files = published_files(lake);
  ASSERT_GT(files.size(), 20u);
  for (const auto& f : files) {
    EXPECT_TRUE(std::regex_search(f, std::regex(R"(/dt=\d{4}-\d\d-\d\d/hour=\d\d/part-\d-[0-9a-f]{8}-\d+\.ndjson\.zst$)"))) << f;
  }
  std::vector<std::string> problems;
  const SessionTable table = latest_session_versions(files, &problems);
  EXPECT_TRUE(problems.empty()) << problems.size() << " problems, e.g. " << problems.front();
  const SessionTable expected = reference_sessions(minus(in.valid, late["sessions"]), Settings{});
  ASSERT_GT(expected.size(), 1000u);
  EXPECT_EQ(table.size(), expected.size());
  EXPECT_EQ(diff_sessions(expected, table), "");
}

}  // namespace
}  // namespace sluice::sf_test
