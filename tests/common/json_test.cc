// JSON writer (engine/common/json.h).
#include "engine/common/json.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace sluice {
namespace {

std::string str(std::string_view s) {
  std::string out;
  json_append_string(out, s);
  return out;
}

TEST(JsonWrite, PlainStringsAreQuoted) {
  EXPECT_EQ(str(""), R"("")");
  EXPECT_EQ(str("hello world"), R"("hello world")");
  EXPECT_EQ(to_json(std::string("x")), R"("x")");
}

TEST(JsonWrite, EscapesQuotesAndBackslashes) {
  EXPECT_EQ(str(R"(say "hi")"), R"("say \"hi\"")");
  EXPECT_EQ(str(R"(C:\dir\file)"), R"("C:\\dir\\file")");
  EXPECT_EQ(str(R"(\")"), R"("\\\"")");
}

TEST(JsonWrite, EscapesControlCharactersWithShortFormsWhereTheyExist) {
  EXPECT_EQ(str("a\nb"), R"("a\nb")");
  EXPECT_EQ(str("\r\t\b\f"), R"("\r\t\b\f")");
}

TEST(JsonWrite, EscapesEveryOtherControlCharacterAsUnicode) {
  // RFC 8259: U+0000 through U+001F must be escaped.
  static const char* kHex = "0123456789abcdef";
  for (int c = 0; c < 0x20; ++c) {
    if (c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f') continue;
    std::string in(1, static_cast<char>(c));
    std::string expected = std::string("\"\\u00") + kHex[c >> 4] + kHex[c & 0xf] + "\"";
    EXPECT_EQ(str(in), expected) << "byte " << c;
  }
  EXPECT_EQ(str(std::string("a\0b", 3)), R"("a\u0000b")");
}

TEST(JsonWrite, PassesPrintableAsciiAndDelThrough) {
  std::string printable;
  for (int c = 0x20; c < 0x80; ++c) {
    if (c != '"' && c != '\\') printable.push_back(static_cast<char>(c));
  }
  EXPECT_EQ(str(printable), "\"" + printable + "\"");
}

TEST(JsonWrite, PassesUtf8Through) {
  const std::string s = "caf\xc3\xa9 \xcf\x80 \xe2\x82\xac \xf0\x9f\x98\x80";  // café π € 😀
  EXPECT_EQ(str(s), "\"" + s + "\"");
}

TEST(JsonWrite, ReplacesEachByteThatIsNotUtf8WithAReplacementCharacter) {
  const std::string s = "bad \xff\xfe \xc3 end";
  EXPECT_EQ(str(s), "\"bad \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd end\"");
}

TEST(JsonWrite, MixedEscapesKeepSurroundingRunsIntact) {
  EXPECT_EQ(str("ab\"cd\\ef\ngh"), R"("ab\"cd\\ef\ngh")");
  EXPECT_EQ(str("\"start"), R"("\"start")");
  EXPECT_EQ(str("end\""), R"("end\"")");
}

TEST(JsonWrite, AppendsToExistingOutput) {
  std::string out = "prefix:";
  json_append_string(out, "v");
  EXPECT_EQ(out, R"(prefix:"v")");
}

TEST(JsonWrite, Booleans) {
  EXPECT_EQ(to_json(true), "true");
  EXPECT_EQ(to_json(false), "false");
}

TEST(JsonWrite, IntegersAtTheirLimits) {
  EXPECT_EQ(to_json(int64_t{0}), "0");
  EXPECT_EQ(to_json(int64_t{-42}), "-42");
  EXPECT_EQ(to_json(std::numeric_limits<int64_t>::min()), "-9223372036854775808");
  EXPECT_EQ(to_json(std::numeric_limits<int64_t>::max()), "9223372036854775807");
  EXPECT_EQ(to_json(std::numeric_limits<uint64_t>::max()), "18446744073709551615");
  EXPECT_EQ(to_json(int32_t{-7}), "-7");
  EXPECT_EQ(to_json(uint8_t{255}), "255");
  EXPECT_EQ(to_json(int8_t{-128}), "-128");
}

TEST(JsonWrite, FloatingPointUsesShortestRoundTripForm) {
  EXPECT_EQ(to_json(0.5), "0.5");
  EXPECT_EQ(to_json(0.1), "0.1");
  EXPECT_EQ(to_json(-2.25), "-2.25");
  EXPECT_EQ(to_json(3.0), "3");
  EXPECT_EQ(to_json(1.5f), "1.5");
  // Whatever the form, it must read back as the same double.
  for (double d : {1e300, 1e-300, 123456.789, -0.000123, 2.0 / 3.0}) {
    std::string s = to_json(d);
    EXPECT_EQ(std::strtod(s.c_str(), nullptr), d) << s;
  }
}

TEST(JsonWrite, NonFiniteNumbersBecomeNull) {
  EXPECT_EQ(to_json(std::numeric_limits<double>::quiet_NaN()), "null");
  EXPECT_EQ(to_json(std::numeric_limits<double>::infinity()), "null");
  EXPECT_EQ(to_json(-std::numeric_limits<double>::infinity()), "null");
  EXPECT_EQ(to_json(std::numeric_limits<float>::quiet_NaN()), "null");
}

enum class Color : int16_t { kRed = 1, kBlue = -3 };

TEST(JsonWrite, EnumsAsTheirUnderlyingNumber) {
  EXPECT_EQ(to_json(Color::kRed), "1");
  EXPECT_EQ(to_json(Color::kBlue), "-3");
}

TEST(JsonWrite, OptionalsAreNullOrTheValue) {
  EXPECT_EQ(to_json(std::optional<int64_t>{}), "null");
  EXPECT_EQ(to_json(std::optional<int64_t>{5}), "5");
  EXPECT_EQ(to_json(std::optional<std::string>{"a\"b"}), R"("a\"b")");
  EXPECT_EQ(to_json(std::optional<std::optional<int>>{std::optional<int>{}}), "null");
}

TEST(JsonWrite, SequencesAreArrays) {
  EXPECT_EQ(to_json(std::vector<int>{}), "[]");
  EXPECT_EQ(to_json(std::vector<int>{1, 2, 3}), "[1,2,3]");
  EXPECT_EQ(to_json(std::vector<std::string>{"a", "\n"}), R"(["a","\n"])");
  EXPECT_EQ(to_json(std::array<bool, 2>{true, false}), "[true,false]");
  EXPECT_EQ(to_json(std::vector<std::vector<int>>{{1}, {}, {2, 3}}), "[[1],[],[2,3]]");
  EXPECT_EQ(to_json(std::vector<std::optional<double>>{1.5, std::nullopt, NAN}),
            "[1.5,null,null]");
}

TEST(JsonWrite, StringKeyedMapsAreObjects) {
  EXPECT_EQ(to_json(std::map<std::string, int>{}), "{}");
  EXPECT_EQ(to_json(std::map<std::string, int>{{"b", 2}, {"a", 1}}), R"({"a":1,"b":2})");
  EXPECT_EQ(to_json(std::map<std::string, std::string>{{"k\"ey", "v\\"}}),
            R"({"k\"ey":"v\\"})");
  EXPECT_EQ(to_json(std::unordered_map<std::string, bool>{{"only", true}}), R"({"only":true})");
  EXPECT_EQ(to_json(std::map<std::string, std::vector<int>>{{"xs", {1, 2}}}), R"({"xs":[1,2]})");
}

struct Point {
  int32_t x = 0;
  int32_t y = 0;
  SLUICE_FIELDS(x, y)
};

struct Shape {
  std::string name;
  std::vector<Point> points;
  std::optional<Point> center;
  std::map<std::string, double> attrs;
  std::optional<std::string> note;
  double area = 0;
  bool closed = false;
  SLUICE_FIELDS(name, points, center, attrs, note, area, closed)
};

TEST(JsonWrite, StructsAreObjectsWithFieldsInDeclarationOrder) {
  EXPECT_EQ(to_json(Point{3, -4}), R"({"x":3,"y":-4})");
}

TEST(JsonWrite, NestedStructsVectorsOptionalsAndMaps) {
  Shape s;
  s.name = "tri\"angle";
  s.points = {{0, 0}, {1, 0}, {0, 1}};
  s.center = std::nullopt;
  s.attrs = {{"weight", 0.5}, {"bad", std::nan("")}};
  s.note = "n";
  s.area = 0.5;
  s.closed = true;
  EXPECT_EQ(to_json(s),
            R"({"name":"tri\"angle","points":[{"x":0,"y":0},{"x":1,"y":0},{"x":0,"y":1}],)"
            R"("center":null,"attrs":{"bad":null,"weight":0.5},"note":"n","area":0.5,"closed":true})");

  s.center = Point{7, 8};
  s.points.clear();
  s.attrs.clear();
  s.note.reset();
  EXPECT_EQ(to_json(s), R"({"name":"tri\"angle","points":[],"center":{"x":7,"y":8},"attrs":{},)"
                        R"("note":null,"area":0.5,"closed":true})");
}

TEST(JsonWrite, VectorOfStructs) {
  EXPECT_EQ(to_json(std::vector<Point>{{1, 2}, {3, 4}}), R"([{"x":1,"y":2},{"x":3,"y":4}])");
}

static_assert(JsonWritable<Shape>);
static_assert(JsonWritable<std::vector<std::optional<Point>>>);

TEST(JsonWrite, BytesThatAreNotUtf8BecomeReplacementCharactersSoTheOutputParses) {
  // Truncated sequences, stray continuation bytes, overlongs, surrogates, > U+10FFFF.
  for (std::string bad : {std::string("a\xff b"), std::string("\xc3"), std::string("x\x80y"), std::string("\xc0\xaf"),
                          std::string("\xed\xa0\x80"), std::string("\xf4\x90\x80\x80"), std::string("ok \xe2\x82")}) {
    std::string out;
    json_append_string(out, bad);
    EXPECT_TRUE(is_valid_utf8(out)) << out;
    EXPECT_NE(out.find("\xef\xbf\xbd"), std::string::npos) << out;
  }
  std::string good = "caf\xc3\xa9 \xf0\x9f\x98\x80";  // é and an emoji stay as they are
  std::string out;
  json_append_string(out, good);
  EXPECT_EQ(out, "\"" + good + "\"");
}

TEST(JsonWrite, Base64IsStandardWithPadding) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode(std::string("\xff\x00\x80", 3)), "/wCA");
}

}  // namespace
}  // namespace sluice
