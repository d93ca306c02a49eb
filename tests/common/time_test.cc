#include "engine/common/time.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace sluice {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kSec = 1000;
constexpr int64_t kMin = 60 * kSec;
constexpr int64_t kHour = 60 * kMin;
constexpr int64_t kDay = 24 * kHour;

int64_t parse_ms(std::string_view text) {
  auto r = parse_duration(text);
  EXPECT_TRUE(r.is_ok()) << "'" << text << "': " << r.status().to_string();
  return r.is_ok() ? r->count() : -1;
}

TEST(ParseDuration, AcceptsEveryUnit) {
  EXPECT_EQ(parse_ms("500ms"), 500);
  EXPECT_EQ(parse_ms("60s"), 60 * kSec);
  EXPECT_EQ(parse_ms("10sec"), 10 * kSec);
  EXPECT_EQ(parse_ms("2m"), 2 * kMin);
  EXPECT_EQ(parse_ms("5min"), 5 * kMin);
  EXPECT_EQ(parse_ms("1h"), kHour);
  EXPECT_EQ(parse_ms("1d"), kDay);
  EXPECT_EQ(parse_ms("0s"), 0);
}

TEST(ParseDuration, BareNumberIsMilliseconds) {
  EXPECT_EQ(parse_ms("1500"), 1500);
  EXPECT_EQ(parse_ms("0"), 0);
}

TEST(ParseDuration, UnitsAreCaseInsensitive) {
  EXPECT_EQ(parse_ms("5S"), 5 * kSec);
  EXPECT_EQ(parse_ms("5MS"), 5);
  EXPECT_EQ(parse_ms("3H"), 3 * kHour);
}

TEST(ParseDuration, AcceptsCompoundForms) {
  EXPECT_EQ(parse_ms("1m30s"), kMin + 30 * kSec);
  EXPECT_EQ(parse_ms("1h2m3s4ms"), kHour + 2 * kMin + 3 * kSec + 4);
  EXPECT_EQ(parse_ms("2d12h"), 2 * kDay + 12 * kHour);
  // Parts need not be in descending order; they simply add up.
  EXPECT_EQ(parse_ms("30s1m"), kMin + 30 * kSec);
}

void expect_error(std::string_view text, std::vector<std::string> fragments) {
  auto r = parse_duration(text);
  ASSERT_FALSE(r.is_ok()) << "'" << text << "' parsed as " << r->count() << "ms";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  for (const auto& f : fragments) {
    EXPECT_NE(r.status().message().find(f), std::string::npos)
        << "message for '" << text << "' lacks '" << f << "': " << r.status().message();
  }
}

TEST(ParseDuration, EmptyInputSaysWhatFormToUse) {
  expect_error("", {"empty duration", "60s"});
}

TEST(ParseDuration, GarbageNamesTheInputAndShowsExamples) {
  expect_error("abc", {"'abc'", "not a duration", "60s"});
  expect_error("s", {"'s'", "not a duration"});
  expect_error("-5s", {"'-5s'", "not a duration"});
  expect_error("1.5s", {"'1.5s'", "not a duration"});
  expect_error("5 s", {"'5 s'"});
  expect_error("1m 30s", {"'1m 30s'"});
}

TEST(ParseDuration, UnknownUnitNamesTheUnitAndTheAcceptedOnes) {
  expect_error("5x", {"'5x'", "unknown unit 'x'", "ms, s, m, h or d"});
  expect_error("3weeks", {"unknown unit 'weeks'"});
  expect_error("1m30y", {"'1m30y'", "unknown unit 'y'"});
}

TEST(ParseDuration, RejectsANumberTooLargeForSixtyFourBits) {
  expect_error("99999999999999999999s", {"not a duration"});
}

// BUG: n * factor and the running total are computed in int64_t without an
// overflow check, so a value whose digits fit but whose milliseconds do not
// (here 10^14 days) wraps around (undefined behaviour) instead of failing.
TEST(ParseDuration, BugRejectsDurationsWhoseMillisecondsOverflow) {
  auto r = parse_duration("100000000000000d");
  EXPECT_FALSE(r.is_ok()) << "parsed as " << r->count() << "ms";
  auto r2 = parse_duration("9223372036854775807ms1ms");
  EXPECT_FALSE(r2.is_ok()) << "parsed as " << r2->count() << "ms";
}

TEST(FormatDuration, UsesTheLargestWholeUnit) {
  EXPECT_EQ(format_duration(0ms), "0ms");
  EXPECT_EQ(format_duration(1ms), "1ms");
  EXPECT_EQ(format_duration(1500ms), "1500ms");
  EXPECT_EQ(format_duration(2s), "2s");
  EXPECT_EQ(format_duration(60s), "1m");
  EXPECT_EQ(format_duration(120min), "2h");
  EXPECT_EQ(format_duration(24h), "1d");
  EXPECT_EQ(format_duration(48h), "2d");
  EXPECT_EQ(format_duration(25h), "25h");
}

TEST(FormatDuration, RoundTripsThroughParseDuration) {
  std::vector<int64_t> values = {0,    1,         999,       1000,      1001,      59'999,
                                 kMin, kMin + 30 * kSec, 90 * kMin, kHour + 1, kDay, 3 * kDay + 7};
  for (int64_t ms : values) {
    std::string text = format_duration(Duration(ms));
    auto back = parse_duration(text);
    ASSERT_TRUE(back.is_ok()) << ms << " -> '" << text << "'";
    EXPECT_EQ(back->count(), ms) << "'" << text << "'";
  }
}

int64_t bytes(std::string_view text) {
  auto r = parse_bytes(text);
  EXPECT_TRUE(r.is_ok()) << "'" << text << "': " << r.status().to_string();
  return r.is_ok() ? *r : -1;
}

TEST(ParseBytes, AcceptsBinaryUnits) {
  EXPECT_EQ(bytes("4096"), 4096);
  EXPECT_EQ(bytes("10b"), 10);
  EXPECT_EQ(bytes("512kb"), 512 * 1024);
  EXPECT_EQ(bytes("1k"), 1024);
  EXPECT_EQ(bytes("1kib"), 1024);
  EXPECT_EQ(bytes("64mb"), int64_t{64} * 1024 * 1024);
  EXPECT_EQ(bytes("2mib"), int64_t{2} * 1024 * 1024);
  EXPECT_EQ(bytes("1gb"), int64_t{1024} * 1024 * 1024);
  EXPECT_EQ(bytes("3g"), int64_t{3} * 1024 * 1024 * 1024);
}

TEST(ParseBytes, IsCaseInsensitiveAndAllowsASpaceBeforeTheUnit) {
  EXPECT_EQ(bytes("1GB"), int64_t{1} << 30);
  EXPECT_EQ(bytes("64 MB"), int64_t{64} << 20);
}

TEST(ParseBytes, ErrorsNameTheInputAndTheAcceptedForms) {
  for (std::string_view bad : {"", "mb", "-1", "1.5gb", "abc"}) {
    auto r = parse_bytes(bad);
    ASSERT_FALSE(r.is_ok()) << "'" << bad << "'";
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("'" + std::string(bad) + "'"), std::string::npos)
        << r.status().message();
  }
  auto r = parse_bytes("5tb");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("unknown unit 'tb'"), std::string::npos);
  EXPECT_NE(r.status().message().find("b, kb, mb or gb"), std::string::npos);
}

// BUG: like parse_duration, n * factor overflows int64_t unchecked.
TEST(ParseBytes, BugRejectsSizesThatOverflow) {
  auto r = parse_bytes("100000000000gb");  // 10^11 * 2^30 > 2^63
  EXPECT_FALSE(r.is_ok()) << "parsed as " << *r;
}

// --- EventTime ---------------------------------------------------------------

constexpr int64_t kLo = std::numeric_limits<int64_t>::min();
constexpr int64_t kHi = std::numeric_limits<int64_t>::max();

TEST(EventTime, DefaultIsMinMeaningNoTimestamp) {
  EventTime t;
  EXPECT_TRUE(t.is_min());
  EXPECT_EQ(t, EventTime::min());
  EXPECT_EQ(t.ms(), kLo);
  EXPECT_FALSE(EventTime(0).is_min());
  EXPECT_EQ(EventTime::max().ms(), kHi);
}

TEST(EventTime, OrdersByMilliseconds) {
  EXPECT_LT(EventTime::min(), EventTime(-1));
  EXPECT_LT(EventTime(-1), EventTime(0));
  EXPECT_LT(EventTime(0), EventTime(1));
  EXPECT_LT(EventTime(1), EventTime::max());
  EXPECT_EQ(EventTime(5), EventTime(5));
}

TEST(EventTime, AddsAndSubtractsDurations) {
  EXPECT_EQ((EventTime(1000) + 500ms).ms(), 1500);
  EXPECT_EQ((EventTime(1000) - 1500ms).ms(), -500);
  EXPECT_EQ((EventTime(0) + 1min).ms(), kMin);
  EXPECT_EQ((EventTime(10) + Duration(-20)).ms(), -10);
  static_assert((EventTime(1) + Duration(2)).ms() == 3, "usable in constant expressions");
}

TEST(EventTime, MinAndMaxStayPut) {
  EXPECT_EQ(EventTime::min() + 1h, EventTime::min());
  EXPECT_EQ(EventTime::min() - 1h, EventTime::min());
  EXPECT_EQ(EventTime::max() + 1h, EventTime::max());
  EXPECT_EQ(EventTime::max() - 1h, EventTime::max());
  // Even a huge step in the other direction does not move them.
  EXPECT_EQ(EventTime::min() + Duration(kHi), EventTime::min());
  EXPECT_EQ(EventTime::max() - Duration(kHi), EventTime::max());
}

TEST(EventTime, SaturatesInsteadOfOverflowing) {
  EXPECT_EQ(EventTime(kHi - 5) + 10ms, EventTime::max());
  EXPECT_EQ(EventTime(kHi - 5) + 5ms, EventTime::max());
  EXPECT_EQ((EventTime(kHi - 5) + 4ms).ms(), kHi - 1);
  EXPECT_EQ(EventTime(kLo + 5) - 10ms, EventTime::min());
  EXPECT_EQ((EventTime(kLo + 5) - 4ms).ms(), kLo + 1);
  EXPECT_EQ(EventTime(1) + Duration(kHi), EventTime::max());
  EXPECT_EQ(EventTime(-2) - Duration(kHi), EventTime::min());
  EXPECT_EQ(EventTime(-1) + Duration(kLo), EventTime::min());
  EXPECT_EQ((EventTime(0) + Duration(kLo)).ms(), kLo);
}

TEST(Timestamps, ParseEpochMillisecondsAndUtcDateTimes) {
  EXPECT_EQ(*parse_timestamp_ms("1700000000000"), 1700000000000);
  EXPECT_EQ(*parse_timestamp_ms("1970-01-01"), 0);
  EXPECT_EQ(*parse_timestamp_ms("2026-12-05"), 1796428800000);
  EXPECT_EQ(*parse_timestamp_ms("2026-12-05T10:15"), 1796428800000 + (10 * 60 + 15) * 60'000);
  EXPECT_EQ(*parse_timestamp_ms("2026-12-05T10:15:30Z"), 1796428800000 + (10 * 3600 + 15 * 60 + 30) * 1000);
  EXPECT_EQ(*parse_timestamp_ms("2026-12-05 10:15:30.25Z"), 1796428800000 + (10 * 3600 + 15 * 60 + 30) * 1000 + 250);
  EXPECT_EQ(*parse_timestamp_ms("2026-12-05T01:00:00+01:00"), 1796428800000);
  EXPECT_EQ(*parse_timestamp_ms("2026-12-04T23:00:00-01:00"), 1796428800000);
  EXPECT_EQ(*parse_timestamp_ms("2024-02-29"), *parse_timestamp_ms("2024-02-28") + 86'400'000) << "leap day";
  for (const char* bad : {"", "yesterday", "2026-12", "2026-13-01", "2026-12-05T25:00", "2026-12-05T10:15:30X",
                          "2026-12-05T10:15:30.", "12e3"}) {
    EXPECT_FALSE(parse_timestamp_ms(bad).is_ok()) << bad;
  }
}

TEST(Timestamps, FormatIsReadBack) {
  EXPECT_EQ(format_timestamp_ms(1796428800000), "2026-12-05T00:00:00Z");
  EXPECT_EQ(format_timestamp_ms(1700000000500), "2023-11-14T22:13:20.500Z");
  for (int64_t ms : {int64_t{0}, int64_t{1}, int64_t{951782400000}, int64_t{1796428800123}, int64_t{-86'400'000}}) {
    EXPECT_EQ(*parse_timestamp_ms(format_timestamp_ms(ms)), ms) << format_timestamp_ms(ms);
  }
}

}  // namespace
}  // namespace sluice
