// sessions_funnel end to end through `sluice run-local`: generated page
// views with out-of-order, late, bridging, very late and malformed events;
// the sessions (applied as a changelog) and the latest funnel counts per
// minute and step must equal the reference computed here from the input,
// at parallelism 1 and 4.
#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "tests/integration/support.h"
#include "tests/jobs/sessions_funnel/reference.h"

namespace sluice::sf_test {
namespace {

std::string job_library() { return it::build_dir() + "/jobs/sessions_funnel/libsessions_funnel.so"; }

/// How many lines of `kind` the generator reported ("... 12 bridging ...").
int64_t reported(const std::string& gen_err, const std::string& kind) {
  std::smatch m;
  if (!std::regex_search(gen_err, m, std::regex("([0-9]+) " + kind))) return -1;
  return std::stoll(m[1]);
}

void expect_matches_reference(int parallelism, uint32_t seed) {
  SCOPED_TRACE("parallelism " + std::to_string(parallelism) + " seed " + std::to_string(seed));
  it::TempDir dir;
  const std::string input = dir.file("views.ndjson");
  auto g = it::run_sluice({"gen", "--kind", "pageviews", "--count", "30000", "--seed", std::to_string(seed),
                           "--users", "150", "--start-ts", "1700000000000", "--late", "0.02", "--very-late", "0.002", "--malformed", "0.003",
                           "--output", input});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  for (const char* kind : {"out of order", "late", "bridging", "very late", "malformed"}) {
    ASSERT_GT(reported(g.err, kind), 0) << "the input should hold " << kind << " events: " << g.err;
  }
  auto r = it::run_command(
      {it::sluice_binary(), "run-local", job_library(), "-p", std::to_string(parallelism), "--arg",
       "source=file://" + input, "--arg", "sessions=" + dir.uri("sessions.ndjson"), "--arg",
       "funnel_sink=" + dir.uri("funnel.ndjson"), "--arg", "late=" + dir.uri("late.ndjson"), "--arg",
       "dlq=" + dir.uri("dlq.ndjson")},
      std::chrono::seconds(120));
  ASSERT_EQ(r.exit_code, 0) << r.err;

  int64_t lines = 0;
  const std::vector<View> valid = read_valid_views(input, &lines);
  EXPECT_EQ(static_cast<int64_t>(it::read_lines(dir.file("dlq.ndjson")).size()), lines - static_cast<int64_t>(valid.size()))
      << "every malformed or invalid line is a dead letter, once";

  // Too late: only events days behind every other (the generator's very
  // late ones); which of them a job drops depends on when its watermark
  // was established, so the reference leaves out exactly those it dropped.
  auto late = read_late(dir.file("late.ndjson"));
  const int64_t first_ts = 1'700'000'000'000;  // --start-ts
  size_t dropped = 0;
  for (const auto& [what, views] : late) {
    ASSERT_TRUE(what == "sessions" || what == "funnel") << what;
    for (const auto& v : views) {
      ++dropped;
      EXPECT_LT(v.ts, first_ts - 86'400'000) << "an event late for the " << what << " that was not very late: " << v.user_id << " " << v.ts;
    }
  }
  EXPECT_GT(dropped, 0u) << "very late events should be dropped";

  Settings settings;
  std::vector<std::string> problems;
  size_t retractions = 0;
  const SessionTable sessions =
      apply_session_rows(files_with_prefix(dir.path(), "sessions"), &problems, &retractions);
  EXPECT_TRUE(problems.empty()) << problems.front();
  EXPECT_GT(retractions, 0u) << "bridging events should withdraw sessions";
  const SessionTable expected = reference_sessions(minus(valid, late["sessions"]), settings);
  ASSERT_GT(expected.size(), 1000u);
  EXPECT_EQ(sessions.size(), expected.size());
  EXPECT_EQ(diff_sessions(expected, sessions), "");

  const FunnelTable funnel = latest_funnel(files_with_prefix(dir.path(), "funnel"));
  const FunnelTable expected_funnel = reference_funnel(minus(valid, late["funnel"]), settings);
  ASSERT_GT(expected_funnel.size(), 500u);
  EXPECT_EQ(diff_funnel(expected_funnel, funnel), "");
}

TEST(SessionsFunnelJob, SessionsAndFunnelEqualTheReferenceAtParallelism1) { expect_matches_reference(1, 7); }

TEST(SessionsFunnelJob, SessionsAndFunnelEqualTheReferenceAtParallelism4) { expect_matches_reference(4, 8); }

}  // namespace
}  // namespace sluice::sf_test
