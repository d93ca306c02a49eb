// NDJSON records: every line of the input is parsed as a record (the
// clickstream's shape: strings, numbers, a bool, an optional, a list), as
// the file and Kafka sources do. A line that parses must write back to JSON
// that parses to the same record; a dead letter of any bytes must be JSON.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/common/json.h"
#include "engine/common/json_read.h"
#include "engine/runtime/dead_letter.h"

#include <simdjson.h>

namespace {

struct Record {
  std::string user_id;
  std::string page_url;
  int64_t ts = 0;
  double value = 0;
  bool flag = false;
  std::optional<std::string> referrer;
  std::vector<int64_t> items;
  SLUICE_FIELDS(user_id, page_url, ts, value, flag, referrer, items)
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A small field limit, so that inputs also take the over-the-limit path.
  static sluice::JsonParser parser(sluice::JsonLimits{64, "fuzz"});
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t pos = 0;
  while (pos <= in.size()) {
    size_t nl = in.find('\n', pos);
    std::string_view line = in.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    Record r;
    if (parser.parse(line, r).empty()) {
      std::string back = sluice::to_json(r);
      Record again;
      std::string err = parser.parse(back, again);
      if (!err.empty()) __builtin_trap();  // what we write must read back
      if (sluice::to_json(again) != back) __builtin_trap();
    }
    // Whatever the bytes, their dead letter is valid JSON.
    sluice::DeadLetter dl;
    dl.reason = "fuzz";
    dl.set_payload(line);
    std::string json = sluice::to_json(dl);
    simdjson::dom::parser dom;
    simdjson::dom::element doc;
    if (dom.parse(json).get(doc) != simdjson::SUCCESS) __builtin_trap();
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return 0;
}
