// Differential test of the record reader (engine/common/json_read.h): keys
// compared in place, strings taken straight from the input when they hold
// no escape, Text fields borrowed or copied. The reference is written
// independently here on simdjson's DOM parser (whole document, unescaped
// keys and strings, fields assigned in document order); seeded random
// well-formed documents (escaped and unknown keys, escapes, UTF-8, white
// space, duplicate keys, values of every type) are read by both and the
// outcomes compared: the same values, or an error naming the same field.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/common/json_read.h"
#include "engine/common/text.h"

namespace sluice {
namespace {

struct Plain {
  std::string user_id;
  std::string page_url;
  std::optional<std::string> event_type;
  int64_t ts = 0;
  SLUICE_FIELDS(user_id, page_url, event_type, ts)
};

struct Texts {
  Text user_id;
  Text page_url;
  std::optional<Text> event_type;
  int64_t ts = 0;
  SLUICE_FIELDS(user_id, page_url, event_type, ts)
};

/// What the reference expects: the values, or the name of the field an
/// error must name ("missing field 'x'" or "field 'x': ...").
struct Expected {
  bool ok = true;
  std::string error_prefix;
  std::string user_id, page_url;
  std::optional<std::string> event_type;
  int64_t ts = 0;
};

Expected fail(std::string error_prefix) {
  Expected x;
  x.ok = false;
  x.error_prefix = std::move(error_prefix);
  return x;
}

Expected reference(const std::string& json, size_t limit) {
  Expected x;
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  if (p.parse(json).get(doc) != simdjson::SUCCESS) return fail("invalid JSON");
  simdjson::dom::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS) return fail("expected a JSON object");
  bool seen_user = false, seen_page = false, seen_ts = false;
  auto str = [&](const char* name, simdjson::dom::element v, std::string& out) {
    std::string_view s;
    if (v.get_string().get(s) != simdjson::SUCCESS || s.size() > limit) {
      x = fail(std::string("field '") + name + "': ");
      return false;
    }
    out = std::string(s);
    return true;
  };
  for (auto [key, v] : obj) {  // document order; a later duplicate wins
    if (key == "user_id") {
      if (!str("user_id", v, x.user_id)) return x;
      seen_user = true;
    } else if (key == "page_url") {
      if (!str("page_url", v, x.page_url)) return x;
      seen_page = true;
    } else if (key == "event_type") {
      if (v.is_null()) {
        x.event_type.reset();
      } else {
        std::string s;
        if (!str("event_type", v, s)) return x;
        x.event_type = s;
      }
    } else if (key == "ts") {
      int64_t t;
      if (v.get_int64().get(t) != simdjson::SUCCESS) return fail("field 'ts': ");
      x.ts = t;
      seen_ts = true;
    }
  }
  if (!seen_user) return fail("missing field 'user_id'");
  if (!seen_page) return fail("missing field 'page_url'");
  if (!seen_ts) return fail("missing field 'ts'");
  return x;
}

/// Seeded random well-formed documents.
class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}
  int pick(int n) { return static_cast<int>(rng_() % static_cast<uint64_t>(n)); }
  std::string ws() {
    static const char* kWs[] = {"", "", "", " ", "\t", "\n ", "\r\n"};
    return kWs[pick(7)];
  }
  /// A JSON string literal with escapes, UTF-8 and plain bytes.
  std::string string_literal() {
    static const char* kParts[] = {"a", "/p/", "7", "é", "日本", "\\\"", "\\\\", "\\n", "\\t", "\\u00e9",
                                   "\\ud83d\\ude00", "\\/", " ", "x_y", "\\u005f", "😀"};
    std::string s = "\"";
    int n = pick(3) == 0 ? pick(20) : pick(5);
    for (int i = 0; i < n; ++i) s += kParts[pick(16)];
    return s + "\"";
  }
  std::string key() {
    static const char* kKeys[] = {"\"user_id\"",     "\"page_url\"",     "\"event_type\"", "\"ts\"",
                                  "\"user\\u005fid\"", "\"page\\/url\"",    "\"\\u0074s\"",   "\"other\"",
                                  "\"user_i\"",      "\"user_id2\"",     "\"\"",           "\"ts\\n\"",
                                  "\"p\\u00e9\"",    "\"event_type\""};
    return kKeys[pick(14)];
  }
  std::string value(int depth = 0) {
    switch (pick(depth > 1 ? 7 : 9)) {
      case 0: case 1: case 2: return string_literal();
      case 3: return std::to_string(static_cast<int64_t>(rng_()) >> pick(60));
      case 4: return pick(2) ? "null" : (pick(2) ? "true" : "false");
      case 5: return "1.5e3";
      case 6: return "-0.25";
      case 7: {
        std::string a = "[" + ws();
        int n = pick(3);
        for (int i = 0; i < n; ++i) a += (i ? "," : "") + value(depth + 1) + ws();
        return a + "]";
      }
      default: {
        std::string o = "{" + ws();
        int n = pick(3);
        for (int i = 0; i < n; ++i) o += std::string(i ? "," : "") + key() + ws() + ":" + ws() + value(depth + 1);
        return o + "}";
      }
    }
  }
  std::string document() {
    // Mostly records that parse (the three required fields present with
    // values of their type), the rest anything.
    std::vector<std::string> members;
    if (pick(4) != 0) {
      members.push_back("\"user_id\"" + ws() + ":" + ws() + string_literal());
      members.push_back("\"page_url\":" + string_literal());
      members.push_back("\"ts\":" + std::to_string(static_cast<int64_t>(rng_() >> pick(64))));
      if (pick(2)) members.push_back("\"event_type\":" + (pick(4) ? string_literal() : std::string("null")));
    }
    int extra = pick(4);
    for (int i = 0; i < extra; ++i) members.push_back(key() + ws() + ":" + ws() + value());
    for (size_t i = members.size(); i > 1; --i) std::swap(members[i - 1], members[static_cast<size_t>(pick(static_cast<int>(i)))]);
    std::string d = ws() + "{" + ws();
    for (size_t i = 0; i < members.size(); ++i) d += (i ? "," + ws() : "") + members[i] + ws();
    return d + "}" + ws();
  }

 private:
  std::mt19937_64 rng_;
};

template <class R>
void expect_same(const Expected& want, const std::string& err, const R& got, const std::string& doc) {
  if (!want.ok) {
    ASSERT_FALSE(err.empty()) << "accepted what the reference rejects (" << want.error_prefix << "): " << doc;
    EXPECT_EQ(err.rfind(want.error_prefix, 0), 0u) << "error '" << err << "', want '" << want.error_prefix
                                                  << "...': " << doc;
    return;
  }
  ASSERT_EQ(err, "") << doc;
  EXPECT_EQ(std::string_view(got.user_id), want.user_id) << doc;
  EXPECT_EQ(std::string_view(got.page_url), want.page_url) << doc;
  ASSERT_EQ(got.event_type.has_value(), want.event_type.has_value()) << doc;
  if (want.event_type) EXPECT_EQ(std::string_view(*got.event_type), *want.event_type) << doc;
  EXPECT_EQ(got.ts, want.ts) << doc;
}

TEST(JsonReadDifferential, MatchesADomReferenceOnRandomRecordsBorrowedOrCopied) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (replay: put it in place of random_device)");
  Gen gen(seed);
  const size_t kLimit = 24;
  JsonParser plain(JsonLimits{kLimit, "test"});
  JsonParser copying(JsonLimits{kLimit, "test"});
  JsonParser borrowing(JsonLimits{kLimit, "test"}, /*borrow=*/true);
  Plain p;
  Texts c, b;
  int ok = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string doc = gen.document();
    const Expected want = reference(doc, kLimit);
    ok += want.ok;
    p = {};  // an absent optional is left as it was: start each record afresh
    c = {};
    b = {};
    expect_same(want, plain.parse(doc, p), p, doc);
    expect_same(want, copying.parse(doc, c), c, doc);
    expect_same(want, borrowing.parse(doc, b), b, doc);
    if (want.ok) {
      EXPECT_FALSE(c.user_id.borrowed());
      EXPECT_TRUE(b.user_id.borrowed());
      // A copy of a borrowed record owns its strings.
      Texts kept = b;
      EXPECT_FALSE(kept.page_url.borrowed());
      EXPECT_EQ(kept.page_url, b.page_url);
    }
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(ok, 5000) << "the generator should mostly make records that parse";
}

}  // namespace
}  // namespace sluice
