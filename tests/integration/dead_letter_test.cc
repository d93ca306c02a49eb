// Malformed input lines reach the dead-letter file, each once, with its
// line number, a reason and the file it came from; the valid lines around
// them are still counted.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "tests/integration/support.h"

namespace sluice::it {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;
constexpr int64_t kWindowMs = 10'000;

std::string click(const std::string& user, const std::string& page, int64_t ts) {
  return R"({"user_id":")" + user + R"(","page_url":")" + page + R"(","event_type":"click","ts":)" +
         std::to_string(ts) + "}";
}

/// One line of a hand-written input and whether the job must reject it.
struct Line {
  std::string text;
  bool malformed = false;
};

/// A file with every kind of malformed line at a known position, valid
/// lines (in several windows and pages) around them, a blank line (skipped:
/// no event, no dead letter, but it still counts for line numbers) and a
/// malformed last line without a final newline.
std::vector<Line> mixed_lines(const std::string& user_prefix) {
  const std::string u = user_prefix;
  return {
      {click(u + "1", "/home", kT0 + 100)},
      {click(u + "2", "/cart", kT0 + 200)},
      {R"({"user_id":")" + u + R"(3","page_url":"/home","event_type":"cli)", true},  // truncated
      {click(u + "4", "/home", kT0 + 400)},
      {R"({"user_id":")" + u + R"(5","event_type":"click","ts":1700000000500})",
       true},  // no page_url
      {click(u + "6", "/cart", kT0 + 11'000)},
      {R"({"user_id":")" + u + R"(7","page_url":"/home","event_type":"click","ts":"yesterday"})",
       true},                        // ts has the wrong type
      {"GET /home HTTP/1.1", true},  // not JSON at all
      {""},                          // blank
      {"{}", true},                  // empty object
      {click(u + "11", "/home", kT0 + 12'000)},
      {"[1,2,3]", true},                                             // an array, not an object
      {click(u + "13", "/home", kT0 + 13'000) + " trailing", true},  // garbage after the object
      {R"({"user_id":")" + u + R"(14","page_url":42,"event_type":"click","ts":1700000014000})",
       true},  // page_url has the wrong type
      {click(u + "15", "/cart", kT0 + 15'000)},
      {click(u + "16", "/home", kT0 + 21'000)},
      {R"({"user_id":")" + u + R"(17","page_url":"/home")",
       true},  // truncated, no newline after it
  };
}

std::string join(const std::vector<Line>& lines) {
  std::string s;
  for (size_t i = 0; i < lines.size(); ++i) {
    s += lines[i].text;
    if (i + 1 < lines.size()) s += '\n';  // the last line has no line break
  }
  return s;
}

struct Expected {
  std::vector<Click> valid;
  std::map<int64_t, std::string> malformed;  // line number -> text
};

Expected expected_of(const std::vector<Line>& lines) {
  Expected e;
  for (size_t i = 0; i < lines.size(); ++i) {
    auto c = parse_click(lines[i].text);
    // The test's own parser agrees with the hand-made classification.
    EXPECT_EQ(!c.has_value() && !is_blank(lines[i].text), lines[i].malformed)
        << "line " << (i + 1) << ": " << lines[i].text;
    if (c) e.valid.push_back(*c);
    if (lines[i].malformed) e.malformed[static_cast<int64_t>(i + 1)] = lines[i].text;
  }
  return e;
}

/// Dead letters from `origin` must be exactly `malformed`, one each.
void expect_dead_letters(const std::vector<DeadLetterRow>& dead, const std::string& origin,
                         const std::map<int64_t, std::string>& malformed) {
  std::map<int64_t, int> seen;
  for (const auto& d : dead) {
    if (d.origin != origin) continue;
    ++seen[d.line];
    auto it = malformed.find(d.line);
    if (it == malformed.end()) {
      ADD_FAILURE() << origin << ": dead letter for line " << d.line
                    << ", which is not malformed: " << d.payload;
      continue;
    }
    EXPECT_EQ(d.payload, it->second) << origin << ":" << d.line;
    EXPECT_FALSE(d.reason.empty()) << origin << ":" << d.line << " has no reason";
  }
  for (const auto& [line, text] : malformed) {
    EXPECT_EQ(seen[line], 1) << origin << ":" << line
                             << " should have exactly one dead letter: " << text;
  }
}

class MalformedLines : public ::testing::TestWithParam<int> {};

TEST_P(MalformedLines, ReachTheDeadLetterFileWithTheirLineNumbers) {
  const int parallelism = GetParam();
  TempDir dir;
  const std::string input = dir.file("clicks.ndjson");
  const auto lines = mixed_lines("u");
  write_file(input, join(lines));
  const Expected e = expected_of(lines);

  std::vector<std::string> args = {"run-local",     clickstream_library(),
                                   "--parallelism", std::to_string(parallelism),
                                   "--arg",         "source=file://" + input,
                                   "--arg",         "sink=" + dir.uri("counts.ndjson"),
                                   "--arg",         "dlq=" + dir.uri("dlq.ndjson"),
                                   "--arg",         "window=10s"};
  auto r = run_sluice(args);
  ASSERT_EQ(r.exit_code, 0) << r.describe(args);

  auto dead = read_dead_letters(dir.file("dlq.ndjson"));
  EXPECT_EQ(dead.size(), e.malformed.size());
  expect_dead_letters(dead, input, e.malformed);
  EXPECT_EQ(diff_counts(reference_counts(e.valid, kWindowMs),
                        counts_of(read_page_counts(dir.file("counts.ndjson")))),
            "")
      << "the valid lines must still be counted";
}

TEST_P(MalformedLines, InADirectoryNameTheFileAndLineTheyCameFrom) {
  const int parallelism = GetParam();
  TempDir dir;
  const std::string in_dir = dir.file("input");
  std::filesystem::create_directory(in_dir);
  const auto a = mixed_lines("a"), b = mixed_lines("b");
  write_file(in_dir + "/part-a.ndjson", join(a));
  write_file(in_dir + "/part-b.ndjson", join(b));
  const Expected ea = expected_of(a), eb = expected_of(b);

  std::vector<std::string> args = {"run-local",     clickstream_library(),
                                   "--parallelism", std::to_string(parallelism),
                                   "--arg",         "source=file://" + in_dir,
                                   "--arg",         "sink=" + dir.uri("counts.ndjson"),
                                   "--arg",         "dlq=" + dir.uri("dlq.ndjson"),
                                   "--arg",         "window=10s"};
  auto r = run_sluice(args);
  ASSERT_EQ(r.exit_code, 0) << r.describe(args);

  auto dead = read_dead_letters(dir.file("dlq.ndjson"));
  EXPECT_EQ(dead.size(), ea.malformed.size() + eb.malformed.size());
  for (const auto& d : dead) {
    EXPECT_TRUE(d.origin == in_dir + "/part-a.ndjson" || d.origin == in_dir + "/part-b.ndjson")
        << "dead letter of line " << d.line << " names origin '" << d.origin
        << "', not one of the input files";
  }
  expect_dead_letters(dead, in_dir + "/part-a.ndjson", ea.malformed);
  expect_dead_letters(dead, in_dir + "/part-b.ndjson", eb.malformed);
  std::vector<Click> valid = ea.valid;
  valid.insert(valid.end(), eb.valid.begin(), eb.valid.end());
  EXPECT_EQ(diff_counts(reference_counts(valid, kWindowMs),
                        counts_of(read_page_counts(dir.file("counts.ndjson")))),
            "");
}

INSTANTIATE_TEST_SUITE_P(Parallelism, MalformedLines, ::testing::Values(1, 2, 3),
                         [](const auto& info) { return "p" + std::to_string(info.param); });

TEST(InvalidEvents, AreDeadLettersWithAReasonAndAreNotCounted) {
  // Well-formed JSON the job itself rejects (empty page, no real time):
  // dead letters too, from the validating operator rather than the file.
  TempDir dir;
  const std::string input = dir.file("clicks.ndjson");
  write_lines(input, {click("u1", "/home", kT0 + 1), click("u2", "", kT0 + 2),
                      click("u3", "/home", 0), click("u4", "/home", kT0 + 3)});
  std::vector<std::string> args = {"run-local", clickstream_library(),
                                   "--arg",     "source=file://" + input,
                                   "--arg",     "sink=" + dir.uri("counts.ndjson"),
                                   "--arg",     "dlq=" + dir.uri("dlq.ndjson"),
                                   "--arg",     "window=10s"};
  auto r = run_sluice(args);
  ASSERT_EQ(r.exit_code, 0) << r.describe(args);

  auto dead = read_dead_letters(dir.file("dlq.ndjson"));
  ASSERT_EQ(dead.size(), 2u);
  for (const auto& d : dead) {
    EXPECT_FALSE(d.reason.empty());
    EXPECT_FALSE(d.payload.empty()) << "the rejected event should be kept";
  }
  const bool names_page = std::any_of(dead.begin(), dead.end(), [](const DeadLetterRow& d) {
    return d.reason.find("page_url") != std::string::npos &&
           d.payload.find("u2") != std::string::npos;
  });
  const bool names_ts = std::any_of(dead.begin(), dead.end(), [](const DeadLetterRow& d) {
    return d.reason.find("ts") != std::string::npos && d.payload.find("u3") != std::string::npos;
  });
  EXPECT_TRUE(names_page) << "the empty page_url should be the reason for u2's event";
  EXPECT_TRUE(names_ts) << "the zero ts should be the reason for u3's event";
  EXPECT_EQ(diff_counts(Counts{{{kT0, "/home"}, 2}},
                        counts_of(read_page_counts(dir.file("counts.ndjson")))),
            "");
}

}  // namespace
}  // namespace sluice::it
