// End to end through the built binary: `sluice run-local` runs the
// clickstream job with sink=postgres://..., checkpointing every 300 ms,
// is SIGKILLed at several moments (some while a checkpoint is being
// written) and restored with --restore latest; the table must equal the
// reference counts computed here from the input — every (window, page)
// row once, append mode, so a duplicate would show. A second test runs
// the quickstart's upsert URI as a password-protected role and checks
// that the password appears in no output.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <dirent.h>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "tests/integration/support.h"
#include "tests/postgres/test_env.h"

extern char** environ;

namespace sluice::postgres::testing {
namespace {

constexpr int64_t kWindowMs = 10'000;

pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

int wait_for(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

/// (latest completed checkpoint id, is a newer one being written?)
std::pair<int64_t, bool> checkpoints(const std::string& job_dir, int64_t leftover_max) {
  int64_t done = -1;
  std::vector<int64_t> open;
  if (DIR* d = ::opendir(job_dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.rfind("chk-", 0) != 0) continue;
      int64_t id = std::atoll(n.c_str() + 4);
      if (::access((job_dir + "/" + n + "/_metadata").c_str(), F_OK) == 0) {
        done = std::max(done, id);
      } else {
        open.push_back(id);
      }
    }
    ::closedir(d);
  }
  bool in_progress = false;
  for (auto id : open) in_progress = in_progress || (id > done && id > leftover_max);
  return {done, in_progress};
}

int64_t max_incomplete(const std::string& job_dir) {
  int64_t m = -1;
  if (DIR* d = ::opendir(job_dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.rfind("chk-", 0) == 0 && ::access((job_dir + "/" + n + "/_metadata").c_str(), F_OK) != 0)
        m = std::max<int64_t>(m, std::atoll(n.c_str() + 4));
    }
    ::closedir(d);
  }
  return m;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Rows of `table` as counts; duplicates of a (window, page) are failures.
it::Counts table_counts(const std::string& table, size_t* rows) {
  it::Counts out;
  auto r = server().sql("SELECT window_start, page_url, count FROM " + table);
  *rows = r.rows.size();
  int dups = 0;
  for (const auto& row : r.rows) {
    auto [it, fresh] = out.emplace(it::WindowPage{std::stoll(*row[0]), *row[1]}, std::stoll(*row[2]));
    if (!fresh && dups++ < 5) ADD_FAILURE() << "duplicate row for window " << *row[0] << " page " << *row[1];
  }
  return out;
}

std::string generate(const it::TempDir& dir, int count) {
  const std::string input = dir.file("clicks.ndjson");
  auto g = it::run_sluice({"gen", "--count", std::to_string(count), "--seed", "11", "--pages", "300",
                           "--events-per-second", "200", "--out-of-order", "0.2", "--output", input});
  EXPECT_EQ(g.exit_code, 0) << g.err;
  return input;
}

TEST(PostgresJob, ClickstreamKilledAndRestoredEndsWithTheReferenceCountsExactlyOnce) {
  it::TempDir dir;
  const std::string input = generate(dir, 40000);
  const it::Counts expected = it::reference_counts(it::read_clicks(input), kWindowMs);
  ASSERT_GT(expected.size(), 1000u);
  const std::string log = dir.file("runs.log");
  const std::string job_dir = dir.file("chk/clickstream");
  const std::string sink = uri("table=pc_killed&mode=append&create_table=true");

  auto run = [&](bool restore) {
    std::vector<std::string> argv = {it::sluice_binary(), "run-local", it::clickstream_library(), "-p", "2",
                                     "--checkpoint-dir", dir.file("chk"), "--checkpoint-interval", "300ms",
                                     "--arg", "source=file://" + input + "?rate=8000",
                                     "--arg", "window=10s", "--arg", "sink_parallelism=2",
                                     "--arg", "sink=" + sink};
    if (restore) {
      argv.push_back("--restore");
      argv.push_back("latest");
    }
    std::ofstream(log, std::ios::app) << "---- run" << (restore ? " --restore latest" : "") << "\n";
    return spawn(argv, log);
  };

  const char* seed_env = std::getenv("SLUICE_KILL_SEED");
  const uint32_t seed = seed_env ? static_cast<uint32_t>(std::strtoul(seed_env, nullptr, 10)) : std::random_device{}();
  SCOPED_TRACE("kill schedule seed " + std::to_string(seed) + " (replay with SLUICE_KILL_SEED)");
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(600, 1300);
  constexpr int kKills = 4;
  int in_checkpoint = 0, restores = 0;
  for (int k = 0; k < kKills; ++k) {
    bool restore = checkpoints(job_dir, -1).first >= 0;
    restores += restore;
    const int64_t leftover = max_incomplete(job_dir);
    auto started = std::chrono::steady_clock::now();
    pid_t pid = run(restore);
    ASSERT_GT(pid, 0);
    int code = wait_for(pid, std::chrono::milliseconds(delay_ms(rng)));
    // The first run is killed only once a checkpoint completed, so every
    // later run restores (on a loaded machine the first checkpoint can take
    // longer than the delay).
    while (k == 0 && code == -1 && checkpoints(job_dir, -1).first < 0 &&
           std::chrono::steady_clock::now() - started < std::chrono::seconds(30)) {
      code = wait_for(pid, std::chrono::milliseconds(20));
    }
    bool during = false;
    if (k % 2 == 1) {  // then kill as soon as a checkpoint is being written
      while (code == -1 && std::chrono::steady_clock::now() - started < std::chrono::milliseconds(2000)) {
        if (checkpoints(job_dir, leftover).second) {
          during = true;
          break;
        }
        code = wait_for(pid, std::chrono::milliseconds(0));
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
    ASSERT_EQ(code, -1) << "run " << k << " ended (exit " << code << ") before it was killed; see\n" << read_all(log);
    ::kill(pid, SIGKILL);
    ASSERT_EQ(wait_for(pid, std::chrono::seconds(10)), 128 + SIGKILL);
    in_checkpoint += during;
    std::ofstream(log, std::ios::app) << "---- SIGKILL" << (during ? " during a checkpoint" : "") << "\n";
  }
  bool restore = checkpoints(job_dir, -1).first >= 0;
  restores += restore;
  pid_t pid = run(restore);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(wait_for(pid, std::chrono::seconds(60)), 0) << read_all(log);
  EXPECT_GE(restores, kKills - 1) << read_all(log);

  size_t rows = 0;
  it::Counts actual = table_counts("pc_killed", &rows);
  EXPECT_EQ(rows, expected.size());
  std::string diff = it::diff_counts(expected, actual);
  EXPECT_TRUE(diff.empty()) << diff;
  // Both sink subtasks committed under their own progress rows.
  EXPECT_EQ(server().scalar("SELECT count(*) FROM sluice_sink_progress WHERE sink_id = 'clickstream/results-sink' "
                            "AND checkpoint > 0"),
            2);
  std::cerr << "[kill] " << kKills << " kills (" << in_checkpoint << " during a checkpoint), " << restores
            << " restores, " << rows << " rows" << std::endl;
}

TEST(PostgresJob, QuickstartUpsertUriWithAPasswordFileNeverPrintsThePassword) {
  const std::string secret = "Qs-Pa55-w0rd-7731";
  create_role("qs_user", secret);
  it::TempDir dir;
  const std::string input = generate(dir, 5000);
  const it::Counts expected = it::reference_counts(it::read_clicks(input), 60'000);
  const std::string pw = dir.file("pw");
  it::write_file(pw, secret + "\n");
  const std::string sink = "postgres://qs_user@127.0.0.1:" + std::to_string(server().port()) +
                           "/sluice?table=page_counts&mode=upsert&key=window_start,page_url&create_table=true"
                           "&password_file=" + pw;
  auto args = [&](const std::string& s) {
    return std::vector<std::string>{"run-local", it::clickstream_library(), "-p", "2", "--checkpoint-dir",
                                    dir.file("chk"), "--checkpoint-interval", "300ms", "--arg",
                                    "source=file://" + input, "--arg", "sink=" + s};
  };
  auto r = it::run_sluice(args(sink));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find(secret), std::string::npos);
  EXPECT_EQ(r.err.find(secret), std::string::npos);
  size_t rows = 0;
  it::Counts actual = table_counts("page_counts", &rows);
  std::string diff = it::diff_counts(expected, actual);
  EXPECT_TRUE(diff.empty()) << diff;
  // The table has the key as its primary key.
  EXPECT_EQ(server().scalar("SELECT count(*) FROM pg_index WHERE indrelid = 'page_counts'::regclass AND indisprimary"),
            1);

  // A wrong password fails the job with a clear message that does not show it.
  it::write_file(pw, "not-" + secret + "\n");
  auto bad = it::run_sluice(args(sink));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("password authentication failed"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find(secret), std::string::npos) << bad.err;
  EXPECT_EQ(bad.out.find(secret), std::string::npos);
}

}  // namespace
}  // namespace sluice::postgres::testing
