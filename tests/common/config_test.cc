#include "engine/common/config.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace sluice {
namespace {

using namespace std::chrono_literals;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(Configuration, AbsentKeysReturnTheFallback) {
  Configuration c;
  EXPECT_FALSE(c.contains("x"));
  EXPECT_EQ(c.get("x"), std::nullopt);
  EXPECT_EQ(c.get_string("x", "dflt"), "dflt");
  EXPECT_EQ(c.get_int("x", 7).value(), 7);
  EXPECT_EQ(c.get_double("x", 2.5).value(), 2.5);
  EXPECT_EQ(c.get_bool("x", true).value(), true);
  EXPECT_EQ(c.get_duration("x", 3s).value(), 3s);
  EXPECT_EQ(c.get_bytes("x", 4096).value(), 4096);
}

TEST(Configuration, TypedGettersParsePresentValues) {
  Configuration c({{"i", "-42"},
                   {"d", "0.25"},
                   {"b", "yes"},
                   {"dur", "1m30s"},
                   {"size", "64mb"},
                   {"s", "hello"}});
  EXPECT_TRUE(c.contains("i"));
  EXPECT_EQ(c.get("s"), "hello");
  EXPECT_EQ(c.get_string("s", "x"), "hello");
  EXPECT_EQ(c.get_int("i", 0).value(), -42);
  EXPECT_DOUBLE_EQ(c.get_double("d", 0).value(), 0.25);
  EXPECT_EQ(c.get_bool("b", false).value(), true);
  EXPECT_EQ(c.get_duration("dur", 0ms).value(), 90s);
  EXPECT_EQ(c.get_bytes("size", 0).value(), int64_t{64} << 20);
}

TEST(Configuration, PresentButEmptyStringIsAValueNotAFallback) {
  Configuration c;
  c.set("name", "");
  EXPECT_TRUE(c.contains("name"));
  EXPECT_EQ(c.get_string("name", "dflt"), "");
  // ... and an empty number is malformed, not absent.
  EXPECT_FALSE(c.get_int("name", 1).is_ok());
  EXPECT_FALSE(c.get_double("name", 1).is_ok());
  EXPECT_FALSE(c.get_bool("name", true).is_ok());
  EXPECT_FALSE(c.get_duration("name", 1s).is_ok());
  EXPECT_FALSE(c.get_bytes("name", 1).is_ok());
}

TEST(Configuration, MalformedValuesGiveErrorsNamingTheKeyAndTheValue) {
  Configuration c({{"checkpoint.interval", "often"},
                   {"parallelism", "four"},
                   {"ratio", "1.5x"},
                   {"enabled", "maybe"},
                   {"buffer", "lots"}});
  struct Case {
    Status st;
    std::string key;
    std::string value;
  };
  Case cases[] = {
      {c.get_duration("checkpoint.interval", 1s).status(), "checkpoint.interval", "often"},
      {c.get_int("parallelism", 1).status(), "parallelism", "four"},
      {c.get_double("ratio", 1).status(), "ratio", "1.5x"},
      {c.get_bool("enabled", false).status(), "enabled", "maybe"},
      {c.get_bytes("buffer", 1).status(), "buffer", "lots"},
  };
  for (const auto& cs : cases) {
    SCOPED_TRACE(cs.key);
    ASSERT_FALSE(cs.st.is_ok());
    EXPECT_EQ(cs.st.code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(contains(cs.st.message(), "'" + cs.key + "'")) << cs.st.message();
    EXPECT_TRUE(contains(cs.st.message(), "'" + cs.value + "'")) << cs.st.message();
  }
}

TEST(Configuration, ErrorMessagesSayWhatFormIsExpected) {
  Configuration c({{"a", "x"}, {"b", "x"}, {"d", "x"}, {"n", "x"}, {"z", "x"}});
  EXPECT_TRUE(contains(c.get_bool("b", false).status().message(), "true or false"));
  EXPECT_TRUE(contains(c.get_int("n", 0).status().message(), "integer"));
  EXPECT_TRUE(contains(c.get_double("a", 0).status().message(), "number"));
  EXPECT_TRUE(contains(c.get_duration("d", 0ms).status().message(), "60s"));
  EXPECT_TRUE(contains(c.get_bytes("z", 0).status().message(), "mb"));
}

TEST(Configuration, IntegersMustBeWholeAndInRange) {
  Configuration c({{"trailing", "12abc"},
                   {"space", " 12"},
                   {"fraction", "1.0"},
                   {"big", "9223372036854775808"},
                   {"max", "9223372036854775807"},
                   {"min", "-9223372036854775808"}});
  EXPECT_FALSE(c.get_int("trailing", 0).is_ok());
  EXPECT_FALSE(c.get_int("space", 0).is_ok());
  EXPECT_FALSE(c.get_int("fraction", 0).is_ok());
  EXPECT_FALSE(c.get_int("big", 0).is_ok());
  EXPECT_EQ(c.get_int("max", 0).value(), INT64_MAX);
  EXPECT_EQ(c.get_int("min", 0).value(), INT64_MIN);
}

TEST(Configuration, DoublesAcceptExponentsAndRejectTrailingText) {
  Configuration c({{"e", "1e3"}, {"neg", "-0.5"}, {"bad", "3.0 "}});
  EXPECT_DOUBLE_EQ(c.get_double("e", 0).value(), 1000.0);
  EXPECT_DOUBLE_EQ(c.get_double("neg", 0).value(), -0.5);
  EXPECT_FALSE(c.get_double("bad", 0).is_ok());
}

TEST(ParseBool, AcceptsTheDocumentedSpellingsInAnyCase) {
  for (const char* t : {"true", "TRUE", "True", "yes", "YES", "1", "on", "On"}) {
    auto r = parse_bool(t);
    ASSERT_TRUE(r.is_ok()) << t;
    EXPECT_TRUE(*r) << t;
  }
  for (const char* f : {"false", "FALSE", "no", "No", "0", "off", "OFF"}) {
    auto r = parse_bool(f);
    ASSERT_TRUE(r.is_ok()) << f;
    EXPECT_FALSE(*r) << f;
  }
  for (const char* bad : {"", "2", "y", "n", "truee", " true"}) {
    EXPECT_FALSE(parse_bool(bad).is_ok()) << "'" << bad << "'";
  }
}

TEST(ParseInt, ParsesTheWholeString) {
  EXPECT_EQ(parse_int("0").value(), 0);
  EXPECT_EQ(parse_int("-17").value(), -17);
  EXPECT_FALSE(parse_int("").is_ok());
  EXPECT_FALSE(parse_int("-").is_ok());
  EXPECT_FALSE(parse_int("5 ").is_ok());
  auto r = parse_int("x1");
  ASSERT_FALSE(r.is_ok());
  EXPECT_TRUE(contains(r.status().message(), "'x1' is not an integer")) << r.status().message();
}

TEST(Configuration, SetOverwritesAndMergeFromLetsTheOtherWin) {
  Configuration a({{"k1", "a1"}, {"k2", "a2"}});
  a.set("k1", "a1b");
  EXPECT_EQ(a.get("k1"), "a1b");

  Configuration b({{"k2", "b2"}, {"k3", "b3"}});
  a.merge_from(b);
  EXPECT_EQ(a.get("k1"), "a1b");
  EXPECT_EQ(a.get("k2"), "b2");
  EXPECT_EQ(a.get("k3"), "b3");
  EXPECT_EQ(a.entries().size(), 3u);
  // `other` is untouched.
  EXPECT_EQ(b.entries().size(), 2u);
  EXPECT_FALSE(b.contains("k1"));
}

TEST(Configuration, EntriesAreOrderedByKey) {
  Configuration c;
  c.set("b", "2");
  c.set("a", "1");
  c.set("c", "3");
  std::string keys;
  for (const auto& [k, v] : c.entries()) keys += k;
  EXPECT_EQ(keys, "abc");
}

}  // namespace
}  // namespace sluice
