// OrderedCodec: byte order equals key order, encodings round-trip, are
// prefix-free (so composites order lexicographically) and malformed bytes
// are refused. Checked on edge values and on seeded random values against
// the types' own operator<.
#include "state/ordered_codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "state/ordered_map_state.h"

namespace sluice::state {
namespace {

template <class K>
std::string enc(const K& k) {
  std::string out;
  ordered_encode(out, k);
  return out;
}

/// For every pair of `values`: order, equality and round trip agree with
/// the type's own comparison, and no encoding is a proper prefix of another.
template <class K>
void expect_order_preserving(const std::vector<K>& values) {
  std::vector<std::string> encoded;
  for (const auto& v : values) {
    encoded.push_back(enc(v));
    K back{};
    ASSERT_TRUE(ordered_decode(encoded.back(), back));
    ASSERT_TRUE(back == v);
  }
  for (size_t i = 0; i < values.size(); ++i) {
    for (size_t j = 0; j < values.size(); ++j) {
      const std::string& a = encoded[i];
      const std::string& b = encoded[j];
      ASSERT_EQ(values[i] < values[j], a < b) << "values #" << i << " and #" << j;
      ASSERT_EQ(values[i] == values[j], a == b) << "values #" << i << " and #" << j;
      if (a != b) {
        ASSERT_FALSE(b.size() > a.size() && b.compare(0, a.size(), a) == 0)
            << "encoding #" << i << " is a prefix of #" << j;
      }
    }
  }
}

template <class T>
std::vector<T> integer_samples(std::mt19937_64& rng) {
  using L = std::numeric_limits<T>;
  std::vector<T> v = {L::min(), static_cast<T>(L::min() + 1), T{0}, T{1}, L::max(),
                      static_cast<T>(L::max() - 1)};
  if constexpr (std::is_signed_v<T>) {
    v.push_back(T{-1});
    v.push_back(T{-2});
  }
  for (int i = 0; i < 40; ++i) v.push_back(static_cast<T>(rng()));
  return v;
}

TEST(OrderedCodec, IntegersOfEveryWidthOrderNumerically) {
  std::mt19937_64 rng(7);
  expect_order_preserving(integer_samples<int8_t>(rng));
  expect_order_preserving(integer_samples<uint8_t>(rng));
  expect_order_preserving(integer_samples<int16_t>(rng));
  expect_order_preserving(integer_samples<uint16_t>(rng));
  expect_order_preserving(integer_samples<int32_t>(rng));
  expect_order_preserving(integer_samples<uint32_t>(rng));
  expect_order_preserving(integer_samples<int64_t>(rng));
  expect_order_preserving(integer_samples<uint64_t>(rng));
  expect_order_preserving(std::vector<bool>{false, true});
}

TEST(OrderedCodec, IntegersAreFixedWidthBigEndian) {
  EXPECT_EQ(enc(uint32_t{0x01020304}), std::string("\x01\x02\x03\x04", 4));
  EXPECT_EQ(enc(int16_t{-1}), std::string("\x7f\xff", 2));
  EXPECT_EQ(enc(int16_t{0}), std::string("\x80\x00", 2));
  EXPECT_EQ(enc(int64_t{0}).size(), 8u);
}

TEST(OrderedCodec, EventTimesAndDurationsOrderByTheirMilliseconds) {
  expect_order_preserving(std::vector<EventTime>{EventTime::min(), EventTime(-5), EventTime(0),
                                                 EventTime(1'700'000'000'000), EventTime::max()});
  expect_order_preserving(std::vector<Duration>{Duration(-3), Duration(0), Duration(60'000)});
}

TEST(OrderedCodec, StringsOrderByteWiseWithEmbeddedZerosAndHighBytes) {
  std::vector<std::string> v = {"",
                                std::string(1, '\0'),
                                std::string(2, '\0'),
                                std::string("\0\x01", 2),
                                std::string("\0\xff", 2),
                                "\x01",
                                "a",
                                std::string("a\0", 2),
                                std::string("a\0b", 3),
                                "a\x01",
                                "ab",
                                "b",
                                "\xfe",
                                "\xff",
                                "\xff\xff",
                                std::string("\xff\0", 2)};
  std::mt19937_64 rng(11);
  for (int i = 0; i < 60; ++i) {
    std::string s(rng() % 6, '\0');
    for (auto& c : s) c = "\0\x01\xfe\xff" "ab"[rng() % 6];
    v.push_back(s);
  }
  expect_order_preserving(v);

  std::vector<std::vector<uint8_t>> bytes = {{}, {0}, {0, 0}, {0, 255}, {1}, {255}, {255, 0}};
  expect_order_preserving(bytes);
}

TEST(OrderedCodec, PairsAndTuplesOrderLexicographically) {
  std::mt19937_64 rng(13);
  std::vector<std::pair<int64_t, uint32_t>> pairs;
  for (int64_t ts : {std::numeric_limits<int64_t>::min(), int64_t{-1}, int64_t{0}, int64_t{5}})
    for (uint32_t seq : {0u, 1u, 0xffffffffu}) pairs.emplace_back(ts, seq);
  expect_order_preserving(pairs);

  // A string first: "a" < "a\0" < "ab" must hold whatever follows.
  std::vector<std::tuple<std::string, int32_t, bool>> tuples;
  for (const char* s : {"", "a", "ab", "b"})
    for (int32_t n : {-7, 0, 7})
      for (bool f : {false, true}) tuples.emplace_back(s, n, f);
  tuples.emplace_back(std::string("a\0", 2), -7, false);
  for (int i = 0; i < 30; ++i) {
    std::string s(rng() % 3, 'a');
    for (auto& c : s) c = "\0a\xff"[rng() % 3];
    tuples.emplace_back(s, static_cast<int32_t>(rng()), rng() % 2 == 0);
  }
  expect_order_preserving(tuples);
}

enum class Stage : uint8_t { kStart = 0, kMiddle = 7, kEnd = 200 };

TEST(OrderedCodec, EnumsOrderByTheirUnderlyingValue) {
  expect_order_preserving(std::vector<Stage>{Stage::kStart, Stage::kMiddle, Stage::kEnd});
}

struct EventId {
  int64_t ts = 0;
  uint32_t seq = 0;
  std::string stage;
  SLUICE_FIELDS(ts, seq, stage)
  static constexpr bool sluice_ordered_key = true;
  bool operator==(const EventId&) const = default;
  bool operator<(const EventId& o) const {
    return std::tie(ts, seq, stage) < std::tie(o.ts, o.seq, o.stage);
  }
};

TEST(OrderedCodec, StructsThatOptInOrderByTheirFields) {
  std::vector<EventId> v;
  for (int64_t ts : {-10, 0, 10})
    for (uint32_t seq : {0u, 3u})
      for (const char* s : {"", "begin", "end"}) v.push_back({ts, seq, s});
  expect_order_preserving(v);
}

// Compile-time refusal: no codec, no ordered map state.
struct NotOptedIn {
  int64_t ts = 0;
  SLUICE_FIELDS(ts)
};
static_assert(OrderedKey<int64_t> && OrderedKey<std::pair<int64_t, uint32_t>> &&
              OrderedKey<std::tuple<std::string, EventTime>> && OrderedKey<EventId>);
static_assert(!OrderedKey<double> && !OrderedKey<float>, "no floating-point keys");
static_assert(!OrderedKey<std::vector<int64_t>> && !OrderedKey<NotOptedIn>);
static_assert(!OrderedKey<std::pair<int64_t, double>>, "a pair is ordered only if its members are");

TEST(OrderedCodec, MalformedBytesAreRefused) {
  int64_t i;
  EXPECT_FALSE(ordered_decode(std::string(7, 'x'), i)) << "too short";
  EXPECT_FALSE(ordered_decode(enc(int64_t{5}) + "x", i)) << "trailing bytes";
  std::string s;
  EXPECT_FALSE(ordered_decode(std::string("ab"), s)) << "no terminator";
  EXPECT_FALSE(ordered_decode(std::string("a\0", 2), s)) << "cut terminator";
  EXPECT_FALSE(ordered_decode(std::string("a\0\x02", 3), s)) << "bad escape";
  bool b;
  EXPECT_FALSE(ordered_decode(std::string("\x02"), b));
  std::pair<int64_t, std::string> p;
  std::string good = enc(std::pair<int64_t, std::string>{3, "x"});
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(ordered_decode(std::string_view(good).substr(0, n), p)) << "cut at " << n;
  }
  ASSERT_TRUE(ordered_decode(good, p));
  EXPECT_EQ(p, (std::pair<int64_t, std::string>{3, "x"}));
}

TEST(KeyRangeEncoding, ExclusiveAndInclusiveEndsMeetTheNextKey) {
  // (5, 7] over int64: byte bounds [enc(5)+0, enc(7)+0): 6 and 7 inside, 5 and 8 outside.
  auto r = encode_range(KeyRange<int64_t>{5, false, 7, true});
  for (int64_t k : {4, 5, 6, 7, 8}) EXPECT_EQ(r.contains(enc(k)), k == 6 || k == 7) << k;
  // Strings: ["a", "b") holds "a", "a\0", "az" and not "b".
  auto s = encode_range(KeyRange<std::string>::half_open("a", "b"));
  for (std::string k : {std::string("a"), std::string("a\0", 2), std::string("az")})
    EXPECT_TRUE(s.contains(enc(k)));
  EXPECT_FALSE(s.contains(enc(std::string("b"))));
  EXPECT_FALSE(s.contains(enc(std::string(""))));
  EXPECT_TRUE(encode_range(KeyRange<int64_t>::half_open(5, 5)).empty());
  EXPECT_TRUE(encode_range(KeyRange<int64_t>::closed(6, 5)).empty());
  EXPECT_FALSE(encode_range(KeyRange<int64_t>::single(5)).empty());
  EXPECT_FALSE(encode_range(KeyRange<int64_t>::all()).empty());
}

}  // namespace
}  // namespace sluice::state
