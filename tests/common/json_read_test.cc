// JSON parsing into records (engine/common/json_read.h).
#include "engine/common/json_read.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/common/json.h"

namespace sluice {
namespace {

struct Click {
  std::string user_id;
  std::string page_url;
  int64_t ts = 0;
  SLUICE_FIELDS(user_id, page_url, ts)
};

struct Inner {
  int32_t a = 0;
  std::optional<std::string> b;
  SLUICE_FIELDS(a, b)
  bool operator==(const Inner&) const = default;
};

struct Record {
  int64_t id = 0;
  uint32_t count = 0;
  double score = 0;
  bool flag = false;
  std::string name;
  std::vector<int64_t> xs;
  std::map<std::string, int32_t> tags;
  Inner inner;
  std::optional<int64_t> maybe;
  std::vector<Inner> inners;
  SLUICE_FIELDS(id, count, score, flag, name, xs, tags, inner, maybe, inners)
};

// Member templates (SLUICE_FIELDS) are not allowed in local classes.
struct Unsigned {
  uint32_t u = 0;
  SLUICE_FIELDS(u)
};

struct Real {
  double d = 0;
  SLUICE_FIELDS(d)
};

bool has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(JsonRead, ParsesAFlatRecord) {
  JsonParser p;
  Click c;
  std::string err = p.parse(R"({"user_id":"u1","page_url":"/home","ts":1700000000000})", c);
  ASSERT_EQ(err, "");
  EXPECT_EQ(c.user_id, "u1");
  EXPECT_EQ(c.page_url, "/home");
  EXPECT_EQ(c.ts, 1700000000000);
}

TEST(JsonRead, FieldOrderDoesNotMatter) {
  JsonParser p;
  Click c;
  ASSERT_EQ(p.parse(R"({"ts":5,"page_url":"/p","user_id":"u"})", c), "");
  EXPECT_EQ(c.user_id, "u");
  EXPECT_EQ(c.page_url, "/p");
  EXPECT_EQ(c.ts, 5);
}

TEST(JsonRead, ParsesNestedStructsVectorsMapsAndOptionals) {
  JsonParser p;
  Record r;
  std::string err = p.parse(R"({
      "id": -9007199254740993, "count": 4294967295, "score": 2.5, "flag": true,
      "name": "n", "xs": [1, -2, 3], "tags": {"k1": 1, "k2": -2},
      "inner": {"a": 7, "b": "bee"}, "maybe": 12,
      "inners": [{"a": 1}, {"a": 2, "b": null}, {"a": 3, "b": "c"}]
    })", r);
  ASSERT_EQ(err, "");
  EXPECT_EQ(r.id, -9007199254740993);
  EXPECT_EQ(r.count, 4294967295u);
  EXPECT_EQ(r.score, 2.5);
  EXPECT_TRUE(r.flag);
  EXPECT_EQ(r.name, "n");
  EXPECT_EQ(r.xs, (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(r.tags, (std::map<std::string, int32_t>{{"k1", 1}, {"k2", -2}}));
  EXPECT_EQ(r.inner, (Inner{7, "bee"}));
  EXPECT_EQ(r.maybe, 12);
  ASSERT_EQ(r.inners.size(), 3u);
  EXPECT_EQ(r.inners[0], (Inner{1, std::nullopt}));
  EXPECT_EQ(r.inners[1], (Inner{2, std::nullopt}));
  EXPECT_EQ(r.inners[2], (Inner{3, "c"}));
}

TEST(JsonRead, IgnoresUnknownFieldsOfAnyShape) {
  JsonParser p;
  Click c;
  std::string err = p.parse(
      R"({"extra":{"deep":[1,{"x":"}"}],"s":"{"},"user_id":"u","more":[[],[null]],)"
      R"("page_url":"/p","n":null,"b":false,"ts":3,"last":"x"})",
      c);
  ASSERT_EQ(err, "");
  EXPECT_EQ(c.user_id, "u");
  EXPECT_EQ(c.page_url, "/p");
  EXPECT_EQ(c.ts, 3);
}

TEST(JsonRead, MissingFieldIsAnErrorNamingIt) {
  JsonParser p;
  Click c;
  std::string err = p.parse(R"({"user_id":"u","ts":1})", c);
  EXPECT_TRUE(has(err, "missing field 'page_url'")) << err;
}

TEST(JsonRead, MissingNestedFieldIsReportedWithItsParent) {
  JsonParser p;
  Record r;
  std::string err = p.parse(
      R"({"id":1,"count":1,"score":1,"flag":true,"name":"n","xs":[],"tags":{},)"
      R"("inner":{"b":"x"},"inners":[]})",
      r);
  EXPECT_TRUE(has(err, "field 'inner'")) << err;
  EXPECT_TRUE(has(err, "missing field 'a'")) << err;
}

TEST(JsonRead, OptionalFieldsMayBeMissingOrNull) {
  JsonParser p;
  Inner in{5, "stale"};
  ASSERT_EQ(p.parse(R"({"a":1})", in), "");
  EXPECT_EQ(in.a, 1);
  // A missing optional field is left as it was: callers parse into a fresh
  // record, so check that case separately.
  Inner fresh;
  ASSERT_EQ(p.parse(R"({"a":1})", fresh), "");
  EXPECT_EQ(fresh.b, std::nullopt);

  Inner n{0, "stale"};
  ASSERT_EQ(p.parse(R"({"a":2,"b":null})", n), "");
  EXPECT_EQ(n.b, std::nullopt);

  Inner v;
  ASSERT_EQ(p.parse(R"({"b":"val","a":3})", v), "");
  EXPECT_EQ(v.b, "val");
}

TEST(JsonRead, OptionalFieldOfTheWrongTypeIsAnErrorNamingIt) {
  JsonParser p;
  Inner in;
  std::string err = p.parse(R"({"a":1,"b":5})", in);
  EXPECT_TRUE(has(err, "field 'b'")) << err;
}

TEST(JsonRead, NullForARequiredFieldIsAnError) {
  JsonParser p;
  Click c;
  std::string err = p.parse(R"({"user_id":null,"page_url":"/p","ts":1})", c);
  EXPECT_TRUE(has(err, "field 'user_id'")) << err;
}

TEST(JsonRead, WrongTypeIsAnErrorNamingTheField) {
  JsonParser p;
  struct Case {
    const char* json;
    const char* field;
  };
  Case cases[] = {
      {R"({"user_id":"u","page_url":"/p","ts":"soon"})", "field 'ts'"},
      {R"({"user_id":42,"page_url":"/p","ts":1})", "field 'user_id'"},
      {R"({"user_id":"u","page_url":["/p"],"ts":1})", "field 'page_url'"},
      {R"({"user_id":"u","page_url":"/p","ts":1.5})", "field 'ts'"},
      {R"({"user_id":"u","page_url":"/p","ts":true})", "field 'ts'"},
  };
  for (const auto& cs : cases) {
    Click c;
    std::string err = p.parse(cs.json, c);
    EXPECT_TRUE(has(err, cs.field)) << cs.json << " -> " << err;
  }
}

TEST(JsonRead, WrongTypeInsideContainersSaysWhere) {
  JsonParser p;
  std::string base =
      R"("id":1,"count":1,"score":1,"flag":true,"name":"n","tags":{},"inner":{"a":1},"inners":[])";
  Record r;
  std::string err = p.parse("{" + base + R"(,"xs":[1,"two",3]})", r);
  EXPECT_TRUE(has(err, "field 'xs'")) << err;
  EXPECT_TRUE(has(err, "element 1")) << err;

  Record r2;
  err = p.parse(R"({"id":1,"count":1,"score":1,"flag":true,"name":"n","xs":[],"inner":{"a":1},)"
                R"("inners":[],"tags":{"good":1,"bad":"x"}})",
                r2);
  EXPECT_TRUE(has(err, "field 'tags'")) << err;
  EXPECT_TRUE(has(err, "member 'bad'")) << err;

  Record r3;
  err = p.parse(R"({"id":1,"count":1,"score":1,"flag":true,"name":"n","xs":[],"tags":{},)"
                R"("inner":{"a":"one"},"inners":[]})",
                r3);
  EXPECT_TRUE(has(err, "field 'inner'")) << err;
  EXPECT_TRUE(has(err, "field 'a'")) << err;
}

TEST(JsonRead, IntegersOutOfRangeForTheFieldAreErrors) {
  JsonParser p;
  Inner in;
  std::string err = p.parse(R"({"a":2147483648})", in);
  EXPECT_TRUE(has(err, "field 'a'")) << err;
  EXPECT_TRUE(has(err, "out of range")) << err;

  Inner ok;
  EXPECT_EQ(p.parse(R"({"a":-2147483648})", ok), "");
  EXPECT_EQ(ok.a, INT32_MIN);

  Unsigned u;
  err = p.parse(R"({"u":-1})", u);
  EXPECT_TRUE(has(err, "field 'u'")) << err;
  err = p.parse(R"({"u":4294967296})", u);
  EXPECT_TRUE(has(err, "field 'u'")) << err;
}

TEST(JsonRead, DoubleFieldsAcceptIntegers) {
  JsonParser p;
  Real d;
  ASSERT_EQ(p.parse(R"({"d":3})", d), "");
  EXPECT_EQ(d.d, 3.0);
  ASSERT_EQ(p.parse(R"({"d":-1.25e2})", d), "");
  EXPECT_EQ(d.d, -125.0);
}

TEST(JsonRead, UnescapesStrings) {
  JsonParser p;
  Click c;
  std::string err = p.parse(
      R"({"user_id":"a\"b\\c\/d\ne\tf","page_url":"caf\u00e9 \ud83d\ude00 \u0001","ts":0})", c);
  ASSERT_EQ(err, "");
  EXPECT_EQ(c.user_id, "a\"b\\c/d\ne\tf");
  EXPECT_EQ(c.page_url, "caf\xc3\xa9 \xf0\x9f\x98\x80 \x01");
}

TEST(JsonRead, EscapedKeysMatchFieldNames) {
  JsonParser p;
  Click c;
  // "\u0074s" is "ts" spelled with an escape.
  ASSERT_EQ(p.parse(R"({"user_id":"u","page_url":"p","\u0074s":9})", c), "");
  EXPECT_EQ(c.ts, 9);
}

TEST(JsonRead, RawUtf8PassesThrough) {
  JsonParser p;
  Click c;
  ASSERT_EQ(p.parse("{\"user_id\":\"\xcf\x80\",\"page_url\":\"\xe2\x82\xac\",\"ts\":1}", c), "");
  EXPECT_EQ(c.user_id, "\xcf\x80");
  EXPECT_EQ(c.page_url, "\xe2\x82\xac");
}

TEST(JsonRead, RejectsTrailingGarbage) {
  JsonParser p;
  for (const char* doc : {R"({"user_id":"u","page_url":"p","ts":1} x)",
                          R"({"user_id":"u","page_url":"p","ts":1}{})",
                          R"({"user_id":"u","page_url":"p","ts":1},)",
                          R"({"user_id":"u","page_url":"p","ts":1}})",
                          R"({"user_id":"u","page_url":"p","ts":1} 5)"}) {
    Click c;
    std::string err = p.parse(doc, c);
    EXPECT_NE(err, "") << doc;
  }
}

TEST(JsonRead, AllowsTrailingWhitespace) {
  JsonParser p;
  Click c;
  EXPECT_EQ(p.parse(" {\"user_id\":\"u\",\"page_url\":\"p\",\"ts\":1} \n\t\r ", c), "");
  EXPECT_EQ(c.ts, 1);
}

TEST(JsonRead, RejectsEveryTruncationOfAValidDocument) {
  const std::string doc =
      R"({"user_id":"u1","page_url":"/a\"b","ts":123,"extra":[1,{"k":null}],"z":true})";
  JsonParser p;
  Click full;
  ASSERT_EQ(p.parse(doc, full), "");
  for (size_t n = 0; n < doc.size(); ++n) {
    Click c;
    std::string prefix = doc.substr(0, n);
    EXPECT_NE(p.parse(prefix, c), "") << "accepted truncated document: " << prefix;
  }
}

TEST(JsonRead, RejectsMalformedDocuments) {
  JsonParser p;
  for (const char* doc : {"", "   ", "[]", "null", "\"str\"", "42", R"({"user_id" "u"})",
                          R"({'user_id':'u','page_url':'p','ts':1})",
                          R"({"user_id":"u","page_url":"p","ts":01})",
                          R"({"user_id":"u","page_url":"p","ts":1,})"}) {
    Click c;
    EXPECT_NE(p.parse(doc, c), "") << "accepted: " << doc;
  }
}

TEST(JsonRead, ParserIsReusableAcrossDocumentsAndAfterErrors) {
  JsonParser p;
  Click c;
  ASSERT_EQ(p.parse(R"({"user_id":"a","page_url":"p","ts":1})", c), "");
  Click bad;
  EXPECT_NE(p.parse(R"({"user_id":"a")", bad), "");
  Click c2;
  ASSERT_EQ(p.parse(R"({"user_id":"b","page_url":"q","ts":2})", c2), "");
  EXPECT_EQ(c2.user_id, "b");
  EXPECT_EQ(c2.ts, 2);
}

TEST(JsonRead, ParsesWhatTheWriterWrote) {
  Record r;
  r.id = INT64_MIN;
  r.count = 17;
  r.score = 0.1;
  r.flag = true;
  r.name = "quote\" backslash\\ nl\n ctl\x01 utf8 \xc3\xa9";
  r.xs = {INT64_MAX, 0, -1};
  r.tags = {{"a\"", 1}, {"", 2}};
  r.inner = {-5, std::nullopt};
  r.maybe = std::nullopt;
  r.inners = {{1, "x"}, {2, std::nullopt}};
  std::string json = to_json(r);

  JsonParser p;
  Record back;
  ASSERT_EQ(p.parse(json, back), "") << json;
  EXPECT_EQ(back.id, r.id);
  EXPECT_EQ(back.count, r.count);
  EXPECT_EQ(back.score, r.score);
  EXPECT_EQ(back.flag, r.flag);
  EXPECT_EQ(back.name, r.name);
  EXPECT_EQ(back.xs, r.xs);
  EXPECT_EQ(back.tags, r.tags);
  EXPECT_EQ(back.inner, r.inner);
  EXPECT_EQ(back.maybe, r.maybe);
  EXPECT_EQ(back.inners, r.inners);
}

struct Tagged {
  std::vector<std::string> tags;
  std::map<std::string, int32_t> counts;
  SLUICE_FIELDS(tags, counts)
};

TEST(JsonRead, StringsOverTheParsersLimitAreErrorsNamingFieldAndSetting) {
  JsonParser p(JsonLimits{8, "test setting"});
  Click c;
  EXPECT_EQ(p.parse(R"({"user_id":"12345678","page_url":"/","ts":1})", c), "") << "at the limit";
  std::string e = p.parse(R"({"user_id":"123456789","page_url":"/","ts":1})", c);
  EXPECT_EQ(e, "field 'user_id': string of 9 bytes exceeds the limit of 8 bytes (test setting)");
  // Counted after unescaping: 4 escapes of 6 bytes are 8 bytes of UTF-8.
  EXPECT_EQ(p.parse(R"({"user_id":"éééé","page_url":"/","ts":1})", c), "");
  EXPECT_NE(p.parse(R"({"user_id":"ééééé","page_url":"/","ts":1})", c), "");
  Tagged t;
  e = p.parse(R"({"tags":["a","123456789"],"counts":{}})", t);
  EXPECT_EQ(e, "field 'tags': element 1: string of 9 bytes exceeds the limit of 8 bytes (test setting)");
  e = p.parse(R"({"tags":[],"counts":{"123456789":1}})", t);
  EXPECT_EQ(e, "field 'counts': key: string of 9 bytes exceeds the limit of 8 bytes (test setting)");
  EXPECT_EQ(p.parse(R"({"tags":["12345678"],"counts":{"12345678":1}})", t), "") << "the parser goes on";
}

TEST(JsonRead, DefaultFieldLimitIsOneMiB) {
  JsonParser p;
  EXPECT_EQ(p.limits().max_string_bytes, size_t{1} << 20);
  Click c;
  std::string ok = R"({"user_id":")" + std::string(1 << 20, 'u') + R"(","page_url":"/","ts":1})";
  EXPECT_EQ(p.parse(ok, c), "");
  EXPECT_EQ(c.user_id.size(), size_t{1} << 20);
  std::string big = R"({"user_id":")" + std::string((1 << 20) + 1, 'u') + R"(","page_url":"/","ts":1})";
  EXPECT_NE(p.parse(big, c).find("exceeds the limit of 1048576 bytes (max-field-bytes)"), std::string::npos);
}

struct TwoTexts {
  Text a;
  std::string b;
  SLUICE_FIELDS(a, b)
};

// The string reader looks for the closing quote 16 bytes at a time, reading
// into the document's padding: every length around that step, with an
// escape at every position, and quotes and backslashes in the padding
// after the document, which must not end a string early or late.
TEST(JsonRead, StringsOfEveryLengthAroundTheScanStepReadExactlyWithGarbageInThePadding) {
  for (bool borrow : {false, true}) {
    JsonParser parser(JsonLimits{}, borrow);
    for (size_t len = 0; len <= 40; ++len) {
      for (size_t esc = 0; esc <= len; ++esc) {  // esc == len: no escape
        std::string want(len, 'x');
        for (size_t i = 0; i < len; ++i) want[i] = static_cast<char>('a' + (i * 7 + len) % 26);
        std::string lit;  // the JSON literal's content
        for (size_t i = 0; i < len; ++i) {
          if (i == esc) lit += "\\\"";
          lit.push_back(want[i]);
        }
        if (esc < len) want.insert(esc, 1, '"');
        const std::string doc = "{\"a\":\"" + lit + "\",\"b\":\"" + lit + "\"}";
        std::string buf = doc;
        for (size_t i = 0; i < simdjson::SIMDJSON_PADDING; ++i) buf.push_back("\"\\x"[i % 3]);
        TwoTexts t;
        std::string err = parser.parse_padded(buf.data(), doc.size(), buf.size(), t);
        ASSERT_EQ(err, "") << "borrow " << borrow << " len " << len << " escape at " << esc << ": " << doc;
        EXPECT_EQ(t.a.view(), want) << doc;
        EXPECT_EQ(t.b, want) << doc;
        // Borrowed: from the input when it holds the bytes as they are,
        // else from the parser's buffer (unescaped).
        EXPECT_EQ(t.a.borrowed(), borrow) << doc;
        const bool in_input = t.a.data() >= buf.data() && t.a.data() < buf.data() + doc.size();
        if (borrow && len > 0) EXPECT_EQ(in_input, esc == len) << doc;
      }
    }
  }
}

TEST(JsonRead, AnUnterminatedStringIsAnErrorNotAReadIntoThePadding) {
  JsonParser parser(JsonLimits{}, /*borrow=*/true);
  const std::string doc = "{\"a\":\"abc,\"b\":\"x\"}";  // the quotes pair up differently
  std::string buf = doc + std::string(simdjson::SIMDJSON_PADDING, '"');
  TwoTexts t;
  EXPECT_NE(parser.parse_padded(buf.data(), doc.size(), buf.size(), t), "");
  const std::string odd = "{\"a\":\"abc}";
  buf = odd + std::string(simdjson::SIMDJSON_PADDING, '"');
  EXPECT_NE(parser.parse_padded(buf.data(), odd.size(), buf.size(), t), "");
}

}  // namespace
}  // namespace sluice
