// Mistakes on the command line: `sluice` exits non-zero and says on stderr
// what is wrong and what to do about it. The checks look for key words,
// not whole sentences, so messages can be reworded freely.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "tests/integration/support.h"

namespace sluice::it {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

/// Fails unless the command failed and its stderr holds every key word
/// (case-insensitive).
::testing::AssertionResult fails_saying(const CommandResult& r,
                                        const std::vector<std::string>& key_words) {
  if (r.timed_out) return ::testing::AssertionFailure() << "timed out; stderr: " << r.err;
  if (r.exit_code == 0) {
    return ::testing::AssertionFailure() << "exit code 0, expected a failure; stderr: " << r.err;
  }
  const std::string err = lower(r.err);
  for (const auto& w : key_words) {
    if (err.find(lower(w)) == std::string::npos) {
      return ::testing::AssertionFailure()
             << "stderr does not mention '" << w << "' (exit code " << r.exit_code << "); stderr:\n"
             << r.err;
    }
  }
  return ::testing::AssertionSuccess();
}

/// A valid input, so that only the mistake under test is wrong.
class RunLocalErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    input_ = dir_.file("clicks.ndjson");
    write_lines(input_,
                {R"({"user_id":"u1","page_url":"/a","event_type":"click","ts":1700000000000})"});
  }
  /// run-local <library> --arg source=<valid input> --arg sink=<file> <extra...>
  CommandResult run(const std::string& library, std::vector<std::string> extra,
                    bool with_source = true) {
    std::vector<std::string> args = {"run-local", library, "--arg",
                                     "sink=" + dir_.uri("out.ndjson")};
    if (with_source) {
      args.push_back("--arg");
      args.push_back("source=file://" + input_);
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return run_sluice(args);
  }
  /// The job never ran: it wrote no output.
  bool wrote_output() const { return std::filesystem::exists(dir_.file("out.ndjson")); }

  TempDir dir_;
  std::string input_;
};

TEST_F(RunLocalErrors, MissingJobLibraryNamesThePathAndSaysToBuildIt) {
  const std::string lib = dir_.file("no-such-job.so");
  auto r = run(lib, {});
  EXPECT_TRUE(fails_saying(r, {lib, "does not exist", "build"}));
  EXPECT_FALSE(wrote_output());
}

TEST_F(RunLocalErrors, SharedLibraryWithoutSluiceJobIsRefusedNamingTheEntryPoint) {
  const std::string lib = build_dir() + "/engine/common/libsluice_common.so";
  ASSERT_TRUE(std::filesystem::exists(lib)) << lib;
  auto r = run(lib, {});
  EXPECT_TRUE(fails_saying(r, {lib, "not a Sluice job library", "SLUICE_JOB"}));
  EXPECT_FALSE(wrote_output());
}

TEST_F(RunLocalErrors, TextFileAsJobLibraryIsRefused) {
  const std::string lib = dir_.file("notes.so");
  write_file(lib, "this is not a shared library\n");
  auto r = run(lib, {});
  EXPECT_TRUE(fails_saying(r, {lib, "job library"}));
  EXPECT_FALSE(wrote_output());
}

TEST_F(RunLocalErrors, TextFileAsJobLibrarySaysWhatAJobLibraryIs) {
  // "what to do": a loader error alone ("file too short", "invalid ELF
  // header") does not tell the user they need a library built with SLUICE_JOB.
  const std::string lib = dir_.file("notes.so");
  write_file(lib, "this is not a shared library\n");
  auto r = run(lib, {});
  EXPECT_TRUE(fails_saying(r, {lib, "SLUICE_JOB"}));
}

TEST_F(RunLocalErrors, BadDurationNamesTheArgumentAndTheExpectedForm) {
  auto r = run(clickstream_library(), {"--arg", "window=abc"});
  EXPECT_TRUE(fails_saying(r, {"window", "abc", "duration", "60s"}));
  EXPECT_FALSE(wrote_output());
}

TEST_F(RunLocalErrors, UnknownArgumentIsNamedAndTheKnownOnesListed) {
  auto r = run(clickstream_library(), {"--arg", "windw=30s"});
  EXPECT_TRUE(fails_saying(r, {"unknown job argument", "windw", "window", "source", "sink"}));
  EXPECT_FALSE(wrote_output());
}

TEST_F(RunLocalErrors, MissingSourceSaysHowToPassIt) {
  auto r = run(clickstream_library(), {}, /*with_source=*/false);
  EXPECT_TRUE(fails_saying(r, {"missing", "source", "--arg source=", "file://"}));
  EXPECT_FALSE(wrote_output());
}

TEST_F(RunLocalErrors, ArgWithoutEqualsSaysKeyValue) {
  auto r = run(clickstream_library(), {"--arg", "window"});
  EXPECT_TRUE(fails_saying(r, {"--arg", "window", "key=value"}));
  EXPECT_FALSE(wrote_output());
}

TEST_F(RunLocalErrors, ZeroParallelismNamesTheOptionAndItsRange) {
  auto r = run(clickstream_library(), {"--parallelism", "0"});
  EXPECT_TRUE(fails_saying(r, {"--parallelism", "0", "1"}));
  EXPECT_FALSE(wrote_output());
}

TEST_F(RunLocalErrors, UnsupportedSinkSchemeNamesItAndTheSupportedOnes) {
  // (kafka:// is a supported scheme, so a made-up one stands for "unsupported".)
  auto r = run(clickstream_library(), {"--arg", "sink=ftp://files.example/counts.ndjson"});
  EXPECT_TRUE(fails_saying(
      r, {"sink", "ftp://files.example/counts.ndjson", "unsupported", "file://", "stdout"}));
}

TEST_F(RunLocalErrors, UnsupportedSourceSchemeNamesItAndTheSupportedOne) {
  auto r = run(clickstream_library(), {"--arg", "source=s3://bucket/clicks"}, false);
  EXPECT_TRUE(fails_saying(r, {"source", "s3://bucket/clicks", "unsupported", "file://"}));
  EXPECT_FALSE(wrote_output());
}

TEST_F(RunLocalErrors, MissingInputFileNamesThePath) {
  const std::string missing = dir_.file("no-such-input.ndjson");
  auto r = run(clickstream_library(), {"--arg", "source=file://" + missing}, false);
  EXPECT_TRUE(fails_saying(r, {missing, "no such file"}));
}

TEST_F(RunLocalErrors, UnwritableSinkNamesThePath) {
  const std::string bad = dir_.file("no-such-dir/out.ndjson");
  auto r = run_sluice({"run-local", clickstream_library(), "--arg", "source=file://" + input_,
                       "--arg", "sink=file://" + bad});
  EXPECT_TRUE(fails_saying(r, {bad, "no such file"}));
}

/// More mistakes in job arguments and flags, each refused before the job
/// runs with a message naming the argument and what it needs.
struct ArgMistake {
  std::string name;
  std::vector<std::string> args;       // added to a valid run-local command
  std::vector<std::string> key_words;  // stderr must mention all of them
};

void PrintTo(const ArgMistake& m, std::ostream* os) {
  *os << m.name << ":";
  for (const auto& a : m.args) *os << " " << a;
}

class RunLocalArgumentMistakes : public ::testing::TestWithParam<ArgMistake> {};

TEST_P(RunLocalArgumentMistakes, AreRefusedNamingTheArgument) {
  const ArgMistake& m = GetParam();
  TempDir dir;
  const std::string input = dir.file("clicks.ndjson");
  write_lines(input,
              {R"({"user_id":"u1","page_url":"/a","event_type":"click","ts":1700000000000})"});
  std::vector<std::string> args = {"run-local", clickstream_library(),
                                   "--arg",     "source=file://" + input,
                                   "--arg",     "sink=" + dir.uri("out.ndjson")};
  args.insert(args.end(), m.args.begin(), m.args.end());
  auto r = run_sluice(args);
  EXPECT_TRUE(fails_saying(r, m.key_words));
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.ndjson"))) << "the job should not have run";
}

INSTANTIATE_TEST_SUITE_P(
    Cases, RunLocalArgumentMistakes,
    ::testing::Values(
        ArgMistake{"ZeroWindow", {"--arg", "window=0s"}, {"window", "positive"}},
        ArgMistake{"NegativeLateness", {"--arg", "allowed_lateness=-1s"}, {"allowed_lateness"}},
        ArgMistake{"ZeroSinkWriters", {"--arg", "sink_parallelism=0"}, {"sink_parallelism", "1"}},
        ArgMistake{"NonIntegerSinkWriters",
                   {"--arg", "sink_parallelism=two"},
                   {"sink_parallelism", "two", "integer"}},
        ArgMistake{"UnsupportedLateScheme",
                   {"--arg", "late=ftp://host/late"},
                   {"late", "ftp://host/late", "unsupported", "file://"}},
        ArgMistake{"UnsupportedDeadLetterScheme",
                   {"--arg", "dlq=bogus"},
                   {"dlq", "bogus", "unsupported", "file://"}},
        ArgMistake{"EmptyKey", {"--arg", "=x"}, {"=x", "key=value"}},
        ArgMistake{"SourceWithoutPath", {"--arg", "source=file://"}, {"source", "path"}},
        ArgMistake{"NonNumericParallelism", {"--parallelism", "four"}, {"--parallelism", "four"}},
        ArgMistake{"UnknownFlag", {"--paralelism", "2"}, {"--paralelism"}}),
    [](const auto& info) { return info.param.name; });

TEST(GenErrors, FractionsOutOfRangeAreRefused) {
  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {"--late", "1.5"},
           {"--malformed", "-0.1"},
           {"--out-of-order", "2"},
           {"--out-of-order", "0.6", "--late", "0.3", "--malformed", "0.3"}}) {
    TempDir dir;
    std::vector<std::string> args = {"gen", "--count", "10", "--output", dir.file("out.ndjson")};
    args.insert(args.end(), bad.begin(), bad.end());
    auto r = run_sluice(args);
    std::string flags;
    for (const auto& b : bad) flags += " " + b;
    EXPECT_TRUE(
        fails_saying(r, {"fraction", "between 0 and 1", "--late", "--malformed", "--out-of-order"}))
        << "gen" << flags;
  }
}

TEST(GenErrors, BadOptionsLeaveAnExistingOutputFileAlone) {
  // A refused command must not have side effects: the events a user
  // generated earlier are still there.
  TempDir dir;
  const std::string out = dir.file("clicks.ndjson");
  const std::string previous = R"({"user_id":"u1","page_url":"/a","event_type":"click","ts":1})"
                               "\n";
  write_file(out, previous);
  auto r = run_sluice({"gen", "--count", "10", "--late", "1.5", "--output", out});
  EXPECT_TRUE(fails_saying(r, {"--late"}));
  auto lines = read_lines(out);
  ASSERT_EQ(lines.size(), 1u) << "gen with bad options rewrote " << out;
  EXPECT_EQ(lines[0] + "\n", previous);
}

TEST(GenErrors, UnboundedWithoutRateSaysToPassRate) {
  auto r = run_sluice({"gen", "--unbounded"});
  EXPECT_TRUE(fails_saying(r, {"unbounded", "--rate"}));
}

TEST(GenErrors, BadDelayNamesTheOption) {
  auto r = run_sluice({"gen", "--count", "1", "--max-delay", "soon"});
  EXPECT_TRUE(fails_saying(r, {"--max-delay", "soon"}));
}

}  // namespace
}  // namespace sluice::it
