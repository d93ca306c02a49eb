// Line protocol as the sink writes it, against the InfluxDB line protocol
// reference: escaping of each element, number formats, timestamp range,
// what cannot be written (and why), and the server answers the sink reads.
#include "connectors/influxdb/line_protocol.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace sluice::influxdb {
namespace {

std::string escaped(std::string_view s, Element e) {
  std::string out;
  append_escaped(out, s, e);
  return out;
}

TEST(LineProtocol, MeasurementEscapesCommaAndSpaceButNotEquals) {
  EXPECT_EQ(escaped("page counts,v2", Element::kMeasurement), "page\\ counts\\,v2");
  EXPECT_EQ(escaped("a=b", Element::kMeasurement), "a=b");
}

TEST(LineProtocol, KeysAndTagValuesEscapeCommaEqualsAndSpace) {
  for (Element e : {Element::kTagKey, Element::kTagValue, Element::kFieldKey}) {
    EXPECT_EQ(escaped("a b,c=d", e), "a\\ b\\,c\\=d");
  }
  // Quotes, backslashes not at the end, tabs and non-ASCII text are literal.
  EXPECT_EQ(escaped("\"hi\"C:\\dir\tüñ", Element::kTagValue), "\"hi\"C:\\dir\tüñ");
  // A backslash before a special character stays, and the character is escaped.
  EXPECT_EQ(escaped("a\\,b", Element::kTagValue), "a\\\\,b");
}

TEST(LineProtocol, StringFieldValuesAreQuotedWithQuoteAndBackslashEscaped) {
  std::string out;
  append_string_value(out, "he said \"hi\" \\ bye\nnext, a=b");
  EXPECT_EQ(out, "\"he said \\\"hi\\\" \\\\ bye\nnext, a=b\"");
  out.clear();
  append_string_value(out, "ends with \\");
  EXPECT_EQ(out, "\"ends with \\\\\"");
  EXPECT_EQ(string_value_problem("line\nbreaks are fine in strings"), "");
}

TEST(LineProtocol, NumbersAndBooleans) {
  std::string out;
  append_integer(out, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(out, "-9223372036854775808i");
  auto f = [](double v) {
    std::string s;
    append_float(s, v);
    return s;
  };
  EXPECT_EQ(f(0.1), "0.1");
  EXPECT_EQ(f(1.0), "1");  // no 'i': a float for InfluxDB
  EXPECT_EQ(f(1e100), "1e+100");
  EXPECT_EQ(f(-2.5e-7), "-2.5e-07");
  EXPECT_EQ(std::stod(f(0.1 + 0.2)), 0.1 + 0.2);  // shortest text that reads back exactly
  out.clear();
  append_bool(out, true);
  append_bool(out, false);
  EXPECT_EQ(out, "truefalse");
}

TEST(LineProtocol, NamesThatCannotBeWrittenSayWhy) {
  EXPECT_EQ(name_problem("/p/1", Element::kTagValue), "");
  EXPECT_NE(name_problem("", Element::kTagValue).find("empty"), std::string::npos);
  EXPECT_NE(name_problem("C:\\dir\\", Element::kTagValue).find("ends with a backslash"), std::string::npos);
  EXPECT_NE(name_problem("two\nlines", Element::kTagValue).find("line break"), std::string::npos);
  EXPECT_NE(name_problem("cr\r", Element::kMeasurement).find("line break"), std::string::npos);
  EXPECT_NE(name_problem(std::string("bad \xff utf8"), Element::kTagValue).find("UTF-8"), std::string::npos);
  EXPECT_NE(name_problem("time", Element::kFieldKey).find("reserves"), std::string::npos);
  EXPECT_NE(name_problem("time", Element::kTagKey).find("reserves"), std::string::npos);
  EXPECT_EQ(name_problem("time", Element::kTagValue), "");
  EXPECT_NE(string_value_problem(std::string(kMaxStringFieldBytes + 1, 'x')).find("limit"), std::string::npos);
  EXPECT_EQ(string_value_problem(std::string(kMaxStringFieldBytes, 'x')), "");
  EXPECT_NE(string_value_problem(std::string("\xc3")).find("UTF-8"), std::string::npos);
}

TEST(LineProtocol, TimestampRangeIsInfluxDbsInEveryPrecision) {
  EXPECT_TRUE(timestamp_in_range(0, Precision::kNanoseconds));
  EXPECT_FALSE(timestamp_in_range(kMaxTimeNs, Precision::kNanoseconds));
  EXPECT_TRUE(timestamp_in_range(kMaxTimeNs - 1, Precision::kNanoseconds));
  EXPECT_FALSE(timestamp_in_range(kMinTimeNs, Precision::kNanoseconds));
  EXPECT_TRUE(timestamp_in_range(kMinTimeNs + 1, Precision::kNanoseconds));
  // 2262-04-11T23:47:16.854Z is the last millisecond InfluxDB stores.
  EXPECT_TRUE(timestamp_in_range(9223372036854, Precision::kMilliseconds));
  EXPECT_FALSE(timestamp_in_range(9223372036855, Precision::kMilliseconds));
  EXPECT_TRUE(timestamp_in_range(-9223372036854, Precision::kMilliseconds));
  EXPECT_FALSE(timestamp_in_range(-9223372036855, Precision::kMilliseconds));
  EXPECT_FALSE(timestamp_in_range(std::numeric_limits<int64_t>::max(), Precision::kSeconds));  // overflows
  EXPECT_TRUE(timestamp_in_range(9223372036, Precision::kSeconds));
  EXPECT_FALSE(timestamp_in_range(9223372037, Precision::kSeconds));
}

TEST(LineProtocol, EventTimeMillisecondsConvertToThePrecision) {
  bool overflow = false;
  EXPECT_EQ(from_millis(1700000000123, Precision::kNanoseconds, &overflow), 1700000000123000000);
  EXPECT_FALSE(overflow);
  EXPECT_EQ(from_millis(1700000000123, Precision::kMicroseconds, &overflow), 1700000000123000);
  EXPECT_EQ(from_millis(1700000000123, Precision::kMilliseconds, &overflow), 1700000000123);
  EXPECT_EQ(from_millis(1700000000999, Precision::kSeconds, &overflow), 1700000000);
  EXPECT_EQ(from_millis(-1, Precision::kSeconds, &overflow), -1);  // rounds down, not toward zero
  EXPECT_EQ(from_millis(-1000, Precision::kSeconds, &overflow), -1);
  EXPECT_EQ(from_millis(-1001, Precision::kSeconds, &overflow), -2);
  from_millis(std::numeric_limits<int64_t>::max() / 10, Precision::kNanoseconds, &overflow);
  EXPECT_TRUE(overflow);
}

TEST(ServerAnswers, ErrorMessagesOfBothApisAndPartialWrites) {
  EXPECT_EQ(server_message(R"({"error":"database not found: \"x\""})"), "database not found: \"x\"");
  EXPECT_EQ(server_message(R"({"code":"invalid","message":"unable to parse 'x': bad"})"), "unable to parse 'x': bad");
  EXPECT_EQ(server_message("plain text\n"), "plain text");
  EXPECT_EQ(statement_error(R"({"results":[{"statement_id":0,"error":"database name required"}]})"),
            "database name required");
  EXPECT_EQ(statement_error(R"({"results":[{"statement_id":0}]})"), "");
  const std::string conflict =
      "partial write: field type conflict: input field \"count\" on measurement \"m\" is type integer, already "
      "exists as type float dropped=3";
  EXPECT_TRUE(all_points_dropped(conflict, 3));
  EXPECT_FALSE(all_points_dropped(conflict, 4));
  EXPECT_FALSE(all_points_dropped("unable to parse 'x': bad dropped=1", 1));
  EXPECT_EQ(influxql_identifier("my \"db\"\\x"), "\"my \\\"db\\\"\\\\x\"");
}

}  // namespace
}  // namespace sluice::influxdb
