#include "engine/common/serde.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sluice {
namespace {

struct Inner {
  int32_t a = 0;
  std::string b;
  SLUICE_FIELDS(a, b)
  bool operator==(const Inner&) const = default;
};

struct Outer {
  int64_t id = 0;
  std::vector<Inner> items;
  std::optional<double> score;
  std::map<std::string, int64_t> counts;
  bool flag = false;
  SLUICE_FIELDS(id, items, score, counts, flag)
  bool operator==(const Outer&) const = default;
};

/// Field names that once clashed with the macro's own names.
struct Clashing {
  int64_t v = 0;
  std::string f;
  SLUICE_FIELDS(v, f)
};

TEST(Serde, FieldsMayBeNamedLikeTheMacrosParameters) {
  Clashing in{42, "x"};
  Clashing out;
  ASSERT_TRUE(deserialize(serialize(in), out).is_ok());
  EXPECT_EQ(out.v, 42);
  EXPECT_EQ(out.f, "x");
}

TEST(Serde, RoundTripsNestedStructs) {
  Outer o{-42, {{1, "x"}, {-7, std::string(300, 'y')}}, 2.5, {{"a", 1}, {"b", -2}}, true};
  Outer back;
  ASSERT_TRUE(deserialize(serialize(o), back).is_ok());
  EXPECT_EQ(back, o);
}

TEST(Serde, RejectsTruncatedInputAtEveryLength) {
  Outer o{7, {{1, "hello"}}, std::nullopt, {{"k", 9}}, false};
  std::string bytes = serialize(o);
  for (size_t n = 0; n < bytes.size(); ++n) {
    Outer back;
    EXPECT_FALSE(deserialize(std::string_view(bytes).substr(0, n), back).is_ok()) << n;
  }
}

TEST(Serde, RejectsTrailingBytes) {
  std::string bytes = serialize(int64_t{5}) + "x";
  int64_t v;
  EXPECT_FALSE(deserialize(bytes, v).is_ok());
}

}  // namespace
}  // namespace sluice
