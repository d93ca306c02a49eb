#include "engine/runtime/dead_letter.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include "engine/common/json.h"
#include "engine/common/json_read.h"

namespace sluice {
namespace {

std::string parse_field(const std::string& json, const char* field) {
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  EXPECT_EQ(p.parse(json).get(doc), simdjson::SUCCESS) << json;
  std::string_view v;
  if (doc[field].get(v) != simdjson::SUCCESS) return "<missing>";
  return std::string(v);
}

TEST(DeadLetter, Utf8PayloadIsKeptAsText) {
  DeadLetter dl;
  dl.set_payload("{\"page_url\":\"/caf\xc3\xa9\"");
  EXPECT_EQ(dl.payload_encoding, "utf8");
  std::string json = to_json(dl);
  EXPECT_EQ(parse_field(json, "payload"), "{\"page_url\":\"/caf\xc3\xa9\"");
  EXPECT_EQ(parse_field(json, "payload_encoding"), "utf8");
}

TEST(DeadLetter, PayloadThatIsNotUtf8IsBase64AndTheFileStaysValidJson) {
  std::string raw = std::string("{\"page_url\":\"\xff\xfe\x00\x80\"}", 19);
  DeadLetter dl;
  dl.reason = "invalid JSON";
  dl.set_payload(raw);
  EXPECT_EQ(dl.payload_encoding, "base64");
  std::string json = to_json(dl);
  EXPECT_EQ(parse_field(json, "payload_encoding"), "base64");
  EXPECT_EQ(parse_field(json, "payload"), base64_encode(raw)) << "the exact bytes can be recovered";
}

TEST(DeadLetter, LongPayloadKeepsItsStartAndSaysHowLongItWas) {
  DeadLetter dl;
  dl.set_payload(std::string(1000, 'x'), 10);
  EXPECT_EQ(dl.payload, std::string(10, 'x'));
  EXPECT_EQ(dl.payload_bytes, 1000);
  DeadLetter whole;
  whole.set_payload("abc", 10);
  EXPECT_EQ(whole.payload_bytes, -1);
}

TEST(DeadLetter, CuttingInsideACharacterStillGivesValidJson) {
  DeadLetter dl;
  dl.set_payload("\xc3\xa9\xc3\xa9", 3);  // cut inside the second é
  std::string json = to_json(dl);
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  EXPECT_EQ(p.parse(json).get(doc), simdjson::SUCCESS) << json;
}

}  // namespace
}  // namespace sluice
