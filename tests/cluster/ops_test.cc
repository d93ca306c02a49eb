// Operating a cluster (issue 16) with real processes: what list, status,
// logs, the HTTP status and `submit --wait` tell an operator — the latest
// checkpoint, live rates, where a restarted attempt restored from, why a
// job failed — and that a missing input fails the job at once instead of
// restarting it again and again.
#include <gtest/gtest.h>
#include <signal.h>
#include <simdjson.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>
#include <tuple>

#include "tests/cluster/cluster_harness.h"
#include "tests/integration/process.h"

namespace sluice::it {
namespace {

using namespace std::chrono_literals;

simdjson::dom::element parse(simdjson::dom::parser& p, const std::string& json) {
  simdjson::dom::element doc;
  EXPECT_EQ(p.parse(json).get(doc), simdjson::SUCCESS) << json;
  return doc;
}

/// POST to the jobmanager's HTTP API with `token` ("" = none): the HTTP code and body.
std::pair<std::string, std::string> post(Cluster& c, const std::string& path, const std::string& token) {
  std::vector<std::string> argv{"/usr/bin/curl", "-s", "-m", "60", "-X", "POST", "-d", "", "-w", "\n%{http_code}"};
  if (!token.empty()) argv.insert(argv.end(), {"-H", "Authorization: Bearer " + token});
  argv.push_back("http://" + c.http_address() + path);
  auto r = run_command(argv, 70s);
  auto nl = r.out.rfind('\n');
  return {nl == std::string::npos ? "" : r.out.substr(nl + 1), r.out.substr(0, nl == std::string::npos ? 0 : nl)};
}

TEST(Operations, ListStatusHttpAndLogsTellWhatTheJobDoesAndWhereItRestoredFrom) {
  TempDir dir;
  std::string input = make_input(dir, 200'000, 3);
  Cluster c(dir);
  c.start_jobmanager();
  c.start_taskmanager("tm-a");
  c.start_taskmanager("tm-b");
  ASSERT_TRUE(c.wait_for_taskmanagers(2)) << c.logs();
  std::string job = submit_clickstream(c, dir, "file://" + input + "?rate=4000", 2);
  ASSERT_FALSE(job.empty());
  ASSERT_GE(c.wait_for_checkpoints(job, 3).completed_checkpoints, 3) << c.logs();

  // list shows the latest checkpoint (it said 0 before), the same as status.
  simdjson::dom::parser p;
  auto list = c.sluice({"list", "-o", "json"}, false);
  ASSERT_EQ(list.exit_code, 0) << list.err;
  int64_t listed = int64_t(parse(p, list.out).at(0)["last_checkpoint_id"]);
  JobView v = c.status(job);
  auto status_doc = parse(p, v.raw);
  int64_t latest = int64_t(status_doc["checkpoints"]["last_completed_id"]);
  EXPECT_GE(listed, 3);
  EXPECT_LE(listed, latest) << "list is not behind status by more than what completed in between";
  EXPECT_TRUE(status_doc["restored_from"].is_null()) << "a fresh start restored nothing";

  // Live rates, backpressure/busy shares and taskmanager resources on HTTP.
  ASSERT_TRUE(wait_until(
      [&] {
        auto h = c.http_get("/jobs/" + job);
        if (h.exit_code != 0) return false;
        simdjson::dom::parser q;
        for (auto vx : simdjson::dom::array(parse(q, h.out)["vertices"]))
          if (bool(vx["is_source"])) return double(vx["records_in_per_s"]) > 1000;
        return false;
      },
      20s))
      << c.http_get("/jobs/" + job).out;
  auto h = c.http_get("/jobs/" + job);
  auto doc = parse(p, h.out);
  for (auto vx : simdjson::dom::array(doc["vertices"])) {
    double bp = vx["backpressure"], busy = vx["busy"];
    EXPECT_GE(bp, 0.0);
    EXPECT_LE(bp, 1.0);
    EXPECT_GE(busy, 0.0);
    EXPECT_LE(busy, 1.0);
  }
  EXPECT_EQ(h.out.find("-9223372036854775808"), std::string::npos) << "no INT64_MIN for 'no watermark yet'";

  // Every vertex has a watermark and its lag, sources included (theirs is
  // the one they emit; the dead-letter stream carries none); the source's
  // advances while it reads, and its taskmanagers' /metrics say the same.
  std::string source_name;
  auto source_watermark = [&]() -> int64_t {
    auto r = c.http_get("/jobs/" + job);
    if (r.exit_code != 0) return INT64_MIN;
    simdjson::dom::parser q;
    int64_t source_wm = INT64_MIN;
    for (auto vx : simdjson::dom::array(parse(q, r.out)["vertices"])) {
      if (bool(vx["is_dead_letter_sink"])) continue;
      int64_t wm = 0, lag = 0;
      if (vx["watermark_ms"].get(wm) != simdjson::SUCCESS || vx["watermark_lag_ms"].get(lag) != simdjson::SUCCESS ||
          lag < 0) {
        return INT64_MIN;
      }
      if (bool(vx["is_source"])) {
        source_wm = wm;
        source_name = std::string(std::string_view(vx["name"]));
      }
    }
    return source_wm;
  };
  int64_t wm0 = INT64_MIN;
  ASSERT_TRUE(wait_until([&] { return (wm0 = source_watermark()) != INT64_MIN; }, 20s))
      << c.http_get("/jobs/" + job).out;
  int64_t wm1 = wm0;
  EXPECT_TRUE(wait_until([&] { return (wm1 = source_watermark()) > wm0; }, 20s)) << wm0 << " -> " << wm1;
  // sluice_task_watermark_seconds{...,vertex="<source>",...} on a taskmanager.
  auto prometheus_source_watermark = [&](const std::string& tm) -> double {
    std::string address = slurp(dir.file("tm-" + tm) + "/metrics.address");
    auto m = run_command({"/usr/bin/curl", "-sf", "-m", "5", "http://" + address + "/metrics"}, 10s);
    std::istringstream lines(m.out);
    double best = -1;
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("sluice_task_watermark_seconds{", 0) != 0) continue;
      if (line.find("vertex=\"" + source_name + "\"") == std::string::npos) continue;
      best = std::max(best, std::stod(line.substr(line.rfind(' ') + 1)));
    }
    return best;
  };
  double prom_wm = -1;
  EXPECT_TRUE(wait_until(
      [&] {
        prom_wm = std::max(prometheus_source_watermark("tm-a"), prometheus_source_watermark("tm-b"));
        return prom_wm * 1000 >= static_cast<double>(wm0);
      },
      10s))
      << "source " << source_name << " watermark " << wm0 << " ms, Prometheus " << prom_wm << " s";
  EXPECT_GE(simdjson::dom::array(doc["checkpoints"]["history"]).size(), 3u);
  auto tms = c.http_get("/taskmanagers");
  auto tm0 = parse(p, tms.out).at(0);
  EXPECT_GT(int64_t(tm0["rss_bytes"]), 1 << 20);
  EXPECT_GT(int64_t(tm0["inbound_connections"]) + int64_t(tm0["outbound_connections"]), 0)
      << "the job's channels cross the taskmanagers: " << tms.out;

  // A taskmanager dies: the job restarts from a checkpoint, and says so.
  std::string tm_b_data;
  for (auto t : simdjson::dom::array(parse(p, tms.out)))
    if (std::string_view(t["id"]) == "tm-b") tm_b_data = std::string(std::string_view(t["data_address"]));
  ASSERT_FALSE(tm_b_data.empty()) << tms.out;
  c.taskmanager("tm-b").kill(SIGKILL);
  c.start_taskmanager("tm-c");
  ASSERT_TRUE(wait_until(
      [&] {
        v = c.status(job);
        // Every task deployed again (a redeploy may still meet tm-b before
        // it is known dead, and restart once more).
        return v.state == "RUNNING" && v.restarts >= 1 && v.raw.find("\"restored_from\":{") != std::string::npos &&
               v.raw.find("\"DEPLOYING\"") == std::string::npos;
      },
      40s))
      << v.raw << c.logs();
  status_doc = parse(p, v.raw);
  EXPECT_FALSE(bool(status_doc["restored_from"]["savepoint"]));
  EXPECT_GE(int64_t(status_doc["restored_from"]["checkpoint_id"]), 3);
  // The first failure restarted the job (a task lost its input from tm-b,
  // naming tm-b's data address, or tm-b itself); one of them names tm-b.
  auto failures = simdjson::dom::array(status_doc["failures"]);
  ASSERT_GE(failures.size(), 1u) << v.raw;
  EXPECT_TRUE(bool(failures.at(0)["restarted"])) << v.raw;
  bool names_tm_b = false;
  for (auto f : failures) {
    EXPECT_FALSE(bool(f["permanent"]));
    names_tm_b |= std::string_view(f["taskmanager"]) == "tm-b" ||
                  std::string_view(f["message"]).find("tm-b") != std::string_view::npos ||
                  std::string_view(f["message"]).find(tm_b_data) != std::string_view::npos;
  }
  EXPECT_TRUE(names_tm_b) << v.raw;
  auto table = c.sluice({"status", job}, false);
  EXPECT_NE(table.out.find(" from checkpoint "), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("(restarted)"), std::string::npos) << table.out;

  // A savepoint from the HTTP API (the dashboard's action) with the token only.
  EXPECT_EQ(post(c, "/jobs/" + job + "/savepoint", "").first, "401");
  EXPECT_EQ(post(c, "/jobs/" + job + "/savepoint", "nope").first, "403");
  std::string code, body;
  wait_until(
      [&] {
        std::tie(code, body) = post(c, "/jobs/" + job + "/savepoint", slurp(c.token_file()));
        return code != "409";  // 409 while the job restarts (a late failure of the redeploy)
      },
      30s);
  ASSERT_EQ(code, "200") << body << c.logs();
  std::string sp = std::string(parse(p, body)["path"]);
  ASSERT_TRUE(std::filesystem::exists(sp)) << sp;

  // Disposal: a checkpoint is refused, the savepoint goes.
  std::string cp_dir;
  for (auto e : simdjson::dom::array(parse(p, c.status(job).raw)["checkpoints"]["history"]))
    if (!bool(e["savepoint"]) && std::string_view(e["status"]) == "COMPLETED") cp_dir = std::string(e["path"]);
  ASSERT_FALSE(cp_dir.empty());
  auto refused = c.sluice({"savepoint", "--dispose", cp_dir});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("not a savepoint"), std::string::npos) << refused.err;
  auto disposed = c.sluice({"savepoint", "--dispose", sp});
  EXPECT_EQ(disposed.exit_code, 0) << disposed.err;
  EXPECT_FALSE(std::filesystem::exists(sp));

  // Logs of the job from the jobmanager and its taskmanagers.
  auto logs = c.sluice({"logs", job, "-n", "50"}, false);
  ASSERT_EQ(logs.exit_code, 0) << logs.err;
  EXPECT_NE(logs.out.find("== jobmanager"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("deploying job " + job + " attempt 1"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("== tm-a"), std::string::npos) << logs.out;
  EXPECT_EQ(c.sluice({"cancel", job}).exit_code, 0);
}

TEST(Operations, AMissingInputIsRefusedAtSubmitAndFailsTheJobOnceWithoutRestarts) {
  TempDir dir;
  Cluster c(dir);
  c.start_jobmanager();
  c.start_taskmanager("tm-a");
  ASSERT_TRUE(c.wait_for_taskmanagers(1)) << c.logs();
  std::vector<std::string> args{"submit", clickstream_library(), "--arg", "source=" + dir.uri("missing.ndjson"),
                                "--arg", "sink=" + dir.uri("out.ndjson")};
  auto refused = c.sluice(args);
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("missing.ndjson' does not exist"), std::string::npos) << refused.err;
  EXPECT_EQ(c.sluice({"list", "-o", "json"}, false).out, "[]\n") << "nothing was submitted";

  // Past the check (the file is only where the taskmanagers are, say): the
  // job fails at its first start and is not restarted.
  args.insert(args.end(), {"--skip-input-check", "--wait"});
  auto waited = c.sluice(args);
  EXPECT_EQ(waited.exit_code, 1) << waited.describe(args);
  EXPECT_NE(waited.err.find("does not exist"), std::string::npos) << waited.err;
  std::string job = waited.out.substr(0, waited.out.find('\n'));
  JobView v = c.status(job);
  EXPECT_EQ(v.state, "FAILED") << v.raw;
  EXPECT_EQ(v.restarts, 0) << v.raw;
  simdjson::dom::parser p;
  auto f = parse(p, v.raw)["failures"].at(0);
  EXPECT_TRUE(bool(f["permanent"])) << v.raw;
  EXPECT_FALSE(bool(f["restarted"]));
}

TEST(Operations, SubmitWaitExitsZeroOnlyWhenTheJobFinished) {
  TempDir dir;
  std::string input = make_input(dir, 20'000, 5);
  Cluster c(dir);
  c.start_jobmanager();
  c.start_taskmanager("tm-a");
  ASSERT_TRUE(c.wait_for_taskmanagers(1)) << c.logs();

  std::vector<std::string> finite{"submit", clickstream_library(), "--wait", "--arg", "source=file://" + input,
                                  "--arg", "sink=" + dir.uri("a.ndjson"), "--arg", "window=10s"};
  auto ok = c.sluice(finite);
  EXPECT_EQ(ok.exit_code, 0) << ok.describe(finite);
  EXPECT_NE(ok.err.find("FINISHED   read 20000 records"), std::string::npos) << "plain progress lines: " << ok.err;
  EXPECT_EQ(ok.err.find('\r'), std::string::npos) << "no terminal control off a terminal";
  EXPECT_EQ(std::count(ok.out.begin(), ok.out.end(), '\n'), 1) << "stdout is the job id: " << ok.out;

  // A slow job: --timeout gives up waiting (the job runs on); a cancel
  // from elsewhere ends the wait with its own code.
  std::vector<std::string> slow{"submit", clickstream_library(), "--wait", "--arg",
                                "source=file://" + input + "?rate=500", "--arg", "sink=" + dir.uri("b.ndjson")};
  std::vector<std::string> with_timeout = slow;
  with_timeout.insert(with_timeout.end(), {"--timeout", "1s"});
  auto t = c.sluice(with_timeout);
  EXPECT_EQ(t.exit_code, 5) << t.describe(with_timeout);
  std::string job = t.out.substr(0, t.out.find('\n'));
  EXPECT_EQ(c.status(job).state, "RUNNING");

  std::vector<std::string> waiter{sluice_binary(), "submit", clickstream_library(), "--wait", "--jobmanager",
                                  c.address(), "--token-file", c.token_file(), "--arg",
                                  "source=file://" + input + "?rate=500", "--arg", "sink=" + dir.uri("c.ndjson")};
  int pid = start_process(waiter, dir.file("waiter.log"));
  ASSERT_GT(pid, 0);
  std::string waited_job;
  ASSERT_TRUE(wait_until(
      [&] {
        auto l = slurp(dir.file("waiter.log"));
        waited_job = l.substr(0, l.find('\n'));
        return waited_job.rfind("clickstream-", 0) == 0 && waited_job.find(' ') == std::string::npos;
      },
      20s));
  EXPECT_EQ(c.sluice({"cancel", waited_job}).exit_code, 0);
  EXPECT_EQ(wait_process(pid, 20s), 4) << slurp(dir.file("waiter.log"));
  EXPECT_NE(slurp(dir.file("waiter.log")).find("CANCELED"), std::string::npos);
  EXPECT_EQ(c.sluice({"cancel", job}).exit_code, 0);
}

}  // namespace
}  // namespace sluice::it
