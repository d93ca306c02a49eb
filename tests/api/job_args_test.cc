#include "engine/api/job_args.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace sluice::api {
namespace {

using namespace std::chrono_literals;
using Map = std::map<std::string, std::string>;

bool has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

/// The message of the JobArgError `f` throws (fails the test if none).
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const JobArgError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no JobArgError";
  return "";
}

TEST(JobArgs, TypedGettersReadPresentValues) {
  JobArgs args(Map{{"n", "-12"}, {"x", "2.5"}, {"on", "true"}, {"win", "1m30s"}, {"s", "text"}});
  EXPECT_EQ(args.get_int("n", 0), -12);
  EXPECT_DOUBLE_EQ(args.get_double("x", 0), 2.5);
  EXPECT_TRUE(args.get_bool("on", false));
  EXPECT_EQ(args.get_duration("win", 0ms), 90s);
  EXPECT_EQ(args.get("s", "dflt"), "text");
  EXPECT_TRUE(args.has("s"));
}

TEST(JobArgs, AbsentKeysReturnTheFallback) {
  JobArgs args;
  EXPECT_EQ(args.get_int("n", 7), 7);
  EXPECT_DOUBLE_EQ(args.get_double("x", 1.5), 1.5);
  EXPECT_FALSE(args.get_bool("on", false));
  EXPECT_TRUE(args.get_bool("on", true));
  EXPECT_EQ(args.get_duration("win", 5s), 5s);
  EXPECT_EQ(args.get("s", "dflt"), "dflt");
  EXPECT_FALSE(args.has("s"));
}

TEST(JobArgs, BoolsAcceptTheUsualSpellings) {
  JobArgs args(Map{{"a", "yes"}, {"b", "OFF"}, {"c", "1"}, {"d", "False"}});
  EXPECT_TRUE(args.get_bool("a", false));
  EXPECT_FALSE(args.get_bool("b", true));
  EXPECT_TRUE(args.get_bool("c", false));
  EXPECT_FALSE(args.get_bool("d", true));
}

TEST(JobArgs, RequireReturnsThePresentValue) {
  JobArgs args(Map{{"source", "file:///tmp/in.ndjson"}});
  EXPECT_EQ(args.require("source", "file:///path"), "file:///tmp/in.ndjson");
}

TEST(JobArgs, RequireOfAMissingKeySaysHowToPassIt) {
  JobArgs args;
  std::string msg = error_of([&] { args.require("sink", "file:///path"); });
  EXPECT_TRUE(has(msg, "'sink'")) << msg;
  EXPECT_TRUE(has(msg, "--arg sink=<file:///path>")) << msg;
}

TEST(JobArgs, RequireTreatsAnEmptyValueAsMissing) {
  JobArgs args(Map{{"sink", ""}});
  std::string msg = error_of([&] { args.require("sink", "file:///path"); });
  EXPECT_TRUE(has(msg, "--arg sink=")) << msg;
}

TEST(JobArgs, InvalidValuesThrowWithTheKeyValueAndAHint) {
  JobArgs args(Map{{"n", "ten"}, {"x", "fast"}, {"on", "maybe"}, {"win", "soon"}});
  struct Case {
    std::string msg;
    std::string key_value;
    std::string hint;
  };
  Case cases[] = {
      {error_of([&] { args.get_int("n", 0); }), "--arg n=ten", "integer"},
      {error_of([&] { args.get_double("x", 0); }), "--arg x=fast", "number"},
      {error_of([&] { args.get_bool("on", false); }), "--arg on=maybe", "true or false"},
      {error_of([&] { args.get_duration("win", 0ms); }), "--arg win=soon", "60s"},
  };
  for (const auto& c : cases) {
    EXPECT_TRUE(has(c.msg, c.key_value)) << c.msg;
    EXPECT_TRUE(has(c.msg, c.hint)) << c.msg;
  }
}

TEST(JobArgs, IntegersMustBeWhole) {
  JobArgs args(Map{{"a", "1.5"}, {"b", "12abc"}, {"c", ""}, {"d", "99999999999999999999"}});
  for (const char* k : {"a", "b", "c", "d"}) {
    EXPECT_THROW(args.get_int(k, 0), JobArgError) << k;
  }
}

TEST(JobArgs, DoublesRejectTrailingText) {
  JobArgs args(Map{{"a", "1.5x"}, {"b", ""}, {"c", "1e3"}});
  EXPECT_THROW(args.get_double("a", 0), JobArgError);
  EXPECT_THROW(args.get_double("b", 0), JobArgError);
  EXPECT_DOUBLE_EQ(args.get_double("c", 0), 1000.0);
}

TEST(JobArgs, JobArgErrorIsAnInvalidArgument) {
  JobArgs args(Map{{"n", "x"}});
  EXPECT_THROW(args.get_int("n", 0), std::invalid_argument);
}

TEST(JobArgs, UnreadListsKeysNeverRead) {
  JobArgs args(Map{{"source", "s"}, {"sink", "k"}, {"windw", "60s"}, {"parallel", "2"}});
  args.require("source", "uri");
  args.get("sink", "");
  EXPECT_EQ(args.unread(), (std::vector<std::string>{"parallel", "windw"}));
}

TEST(JobArgs, EveryGetterCountsAsARead) {
  JobArgs args(Map{{"a", "1"}, {"b", "2"}, {"c", "true"}, {"d", "1s"}, {"e", "x"}, {"f", "y"},
                {"g", "z"}});
  args.get_int("a", 0);
  args.get_double("b", 0);
  args.get_bool("c", false);
  args.get_duration("d", 0ms);
  args.get("e", "");
  args.require("f", "x");
  args.has("g");
  EXPECT_TRUE(args.unread().empty());
}

TEST(JobArgs, AFailedReadStillCountsAsRead) {
  JobArgs args(Map{{"n", "x"}});
  EXPECT_THROW(args.get_int("n", 0), JobArgError);
  EXPECT_TRUE(args.unread().empty()) << "the key was used; its value was wrong";
}

TEST(JobArgs, ReadKeysIncludesAbsentKeysTheJobAskedFor) {
  JobArgs args(Map{{"given", "1"}});
  args.get_int("given", 0);
  args.get_int("optional", 5);
  std::vector<std::string> read = args.read_keys();
  EXPECT_EQ(read, (std::vector<std::string>{"given", "optional"}));
  EXPECT_TRUE(args.unread().empty());
}

TEST(JobArgs, ValuesAreKeptAsGiven) {
  std::map<std::string, std::string> m = {{"a", "1"}, {"b", " two "}};
  JobArgs args(m);
  EXPECT_EQ(args.values(), m);
  EXPECT_EQ(args.get("b", ""), " two ");
}

TEST(ParseKeyValue, SplitsAtTheFirstEquals) {
  std::string k, v;
  ASSERT_TRUE(parse_key_value("source=file:///a=b", k, v));
  EXPECT_EQ(k, "source");
  EXPECT_EQ(v, "file:///a=b");
}

TEST(ParseKeyValue, AcceptsAnEmptyValue) {
  std::string k, v = "stale";
  ASSERT_TRUE(parse_key_value("flag=", k, v));
  EXPECT_EQ(k, "flag");
  EXPECT_EQ(v, "");
}

TEST(ParseKeyValue, RejectsAMissingEqualsOrAnEmptyKey) {
  std::string k = "k0", v = "v0";
  EXPECT_FALSE(parse_key_value("novalue", k, v));
  EXPECT_FALSE(parse_key_value("=value", k, v));
  EXPECT_FALSE(parse_key_value("", k, v));
  EXPECT_EQ(k, "k0") << "outputs untouched on failure";
  EXPECT_EQ(v, "v0");
}

}  // namespace
}  // namespace sluice::api
