// Settings files (--config): TOML read with toml++, errors that name the
// file, the line and the key; flags win; [command] tables.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include <unistd.h>

#include <filesystem>

#include "engine/cli/commands.h"

namespace sluice::cli {
namespace {

/// A scratch directory, removed with its files.
struct Dir {
  Dir() {
    std::string t = std::filesystem::temp_directory_path().string() + "/sluice-config-XXXXXX";
    path = ::mkdtemp(t.data()) ? t : "";
  }
  ~Dir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& n) const { return path + "/" + n; }
  std::string path;
};

/// Commands and their options as the `sluice` binary has them (a few).
bool known(const std::string& command, const std::string& key) {
  if (command == "taskmanager") return key.empty() || key == "slots" || key == "work-dir" || key == "jobmanager" || key == "log-level";
  if (command == "jobmanager") return key.empty() || key == "bind" || key == "data-dir";
  return false;
}

Result<ConfigExpansion> expand(const Dir& dir, const std::string& toml, std::vector<std::string> extra = {}) {
  std::ofstream(dir.file("s.toml")) << toml;
  std::vector<std::string> args{"taskmanager", "--config", dir.file("s.toml")};
  args.insert(args.end(), extra.begin(), extra.end());
  return expand_config_file(args, known);
}

TEST(ConfigFile, AddsRootKeysAndTheCommandsTableFlagsWin) {
  Dir dir;
  auto r = expand(dir,
                  "# the taskmanager\nslots = 3\nwork_dir = \"/tmp/w\"\n[taskmanager]\nlog-level = \"debug\"\n"
                  "[jobmanager]\nbind = \"127.0.0.1:1\"\n",
                  {"--slots", "1"});
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  std::vector<std::string> want{"taskmanager", "--config", dir.file("s.toml"), "--slots", "1", "--log-level=debug",
                                "--work-dir=/tmp/w"};
  auto got = r->args;
  std::sort(got.begin() + 5, got.end());  // toml++ walks keys in name order
  EXPECT_EQ(got, want) << "slots from the flag, the jobmanager's table skipped";
  EXPECT_EQ(r->origins.at("--work-dir"), dir.file("s.toml") + ":3, key 'work_dir'");
}

TEST(ConfigFile, ErrorsNameTheFileTheLineAndTheKey) {
  Dir dir;
  auto not_toml = expand(dir, "slots = 3\nwork-dir = /tmp/w\n");
  ASSERT_FALSE(not_toml.is_ok());
  EXPECT_NE(not_toml.status().message().find(dir.file("s.toml") + ":2:"), std::string::npos)
      << not_toml.status().message();
  auto unknown = expand(dir, "slots = 3\n\nslot = 4\n");
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_NE(unknown.status().message().find("s.toml:3: unknown key 'slot' for `sluice taskmanager`"), std::string::npos)
      << unknown.status().message();
  auto section = expand(dir, "[tm]\nslots = 1\n");
  ASSERT_FALSE(section.is_ok());
  EXPECT_NE(section.status().message().find("s.toml:1: unknown section [tm]"), std::string::npos)
      << section.status().message();
  auto kind = expand(dir, "slots = 1979-05-27\n");
  ASSERT_FALSE(kind.is_ok());
  EXPECT_NE(kind.status().message().find("s.toml:1: key 'slots'"), std::string::npos) << kind.status().message();
  auto missing = expand_config_file({"taskmanager", "--config", dir.file("nope.toml")}, known);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("nope.toml"), std::string::npos);
}

TEST(ConfigFile, ControlCharactersAndHugeFilesAreRefusedWithTheirPlace) {
  Dir dir;
  // A NUL inside a table header once made the TOML parser assert (found by fuzz_config).
  auto r = expand(dir, std::string("slots = 1\n[\0\0s]\n", 16));
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("s.toml:2:2: control character 0x00"), std::string::npos) << r.status().message();
  auto del = expand(dir, "slots = 1 # \x7f\n");
  ASSERT_FALSE(del.is_ok());
  EXPECT_NE(del.status().message().find("0x7f"), std::string::npos) << del.status().message();
  auto huge = expand(dir, "# " + std::string(2 << 20, 'x') + "\nslots = 1\n");
  ASSERT_FALSE(huge.is_ok());
  EXPECT_NE(huge.status().message().find("at most 1 MiB"), std::string::npos) << huge.status().message();
  // Non-ASCII outside strings and comments: another toml++ 3.3 failure (fuzz_config).
  auto bare = expand(dir, "slur\xd2\x87\xdf\xbeg4\n");
  ASSERT_FALSE(bare.is_ok());
  EXPECT_NE(bare.status().message().find("s.toml:1:5: non-ASCII character"), std::string::npos)
      << bare.status().message();
  auto quoted = expand(dir, "# caf\xc3\xa9 \"\n[taskmanager]\nlog-level = \"d\xc3\xa9bug \\\" # \"\n"
                            "work-dir = '''/tmp/\xc3\xa9'''\n");
  ASSERT_TRUE(quoted.is_ok()) << quoted.status().message();
  EXPECT_NE(std::find(quoted->args.begin(), quoted->args.end(), "--work-dir=/tmp/\xc3\xa9"), quoted->args.end());
  auto token = expand(dir, "slots = +c\"\"\"\"t\xd1\x85\"\n");  // a quote inside a token opens no string
  ASSERT_FALSE(token.is_ok());
  EXPECT_NE(token.status().message().find("s.toml:1:16: non-ASCII"), std::string::npos) << token.status().message();
  // toml++ reads a bare value up to the next blank, quotes included (fuzz_config).
  auto glued = expand(dir, "slots = +c=\"\xd1\x85\"\n");
  ASSERT_FALSE(glued.is_ok());
  EXPECT_NE(glued.status().message().find("s.toml:1:13: non-ASCII character in a value that is not a string"),
            std::string::npos)
      << glued.status().message();
  auto after_bare = expand(dir, "slots = 2 # \xc3\xa9\njobmanager = [\n  \"a:1\", 3,\n  \"\xc3\xa9:2\"]\n");
  ASSERT_TRUE(after_bare.is_ok()) << after_bare.status().message();
  EXPECT_NE(std::find(after_bare->args.begin(), after_bare->args.end(), "--jobmanager=\xc3\xa9:2"),
            after_bare->args.end());
  auto trimmed = expand(dir, "log-level = \"\"\"a \\\t\n  \xef\xbb\x9f\"\"\"\n");
  ASSERT_FALSE(trimmed.is_ok());
  EXPECT_NE(trimmed.status().message().find("s.toml:2:3: non-ASCII"), std::string::npos) << trimmed.status().message();
  auto escape = expand(dir, "log-level = \"a\\\xce\xa3\"\n");
  ASSERT_FALSE(escape.is_ok());
  EXPECT_NE(escape.status().message().find("s.toml:1:16: a backslash"), std::string::npos) << escape.status().message();
  auto dots = expand(dir, "[......0");
  ASSERT_FALSE(dots.is_ok());
  EXPECT_NE(dots.status().message().find("s.toml:1:"), std::string::npos) << dots.status().message();
  auto tabs = expand(dir, "slots\t=\t3\r\n");
  ASSERT_TRUE(tabs.is_ok()) << tabs.status().message();
  EXPECT_NE(std::find(tabs->args.begin(), tabs->args.end(), "--slots=3"), tabs->args.end());
}

TEST(ConfigFile, ArraysGiveTheOptionOncePerElement) {
  Dir dir;
  auto r = expand(dir, "jobmanager = [\"a:1\", \"b:2\"]\n");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->args.back(), "--jobmanager=b:2");
  EXPECT_EQ(r->args[r->args.size() - 2], "--jobmanager=a:1");
}

}  // namespace
}  // namespace sluice::cli
