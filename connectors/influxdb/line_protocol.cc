#include "connectors/influxdb/line_protocol.h"

#include <simdjson.h>

#include <charconv>

namespace sluice::influxdb {

namespace {

bool needs_escape(char c, Element e) {
  return c == ',' || c == ' ' || (c == '=' && e != Element::kMeasurement);
}

std::string_view element_name(Element e) {
  switch (e) {
    case Element::kMeasurement: return "a measurement name";
    case Element::kTagKey: return "a tag key";
    case Element::kTagValue: return "a tag value";
    case Element::kFieldKey: return "a field key";
  }
  return "a name";
}

}  // namespace

std::string name_problem(std::string_view s, Element e) {
  if (s.empty()) {
    return e == Element::kTagValue ? "is empty (InfluxDB stores no empty tag value)"
                                   : "is empty, which " + std::string(element_name(e)) + " cannot be";
  }
  if (s.find_first_of("\n\r") != std::string_view::npos) {
    return "contains a line break, which line protocol cannot hold in " + std::string(element_name(e));
  }
  if (s.back() == '\\') {
    return "ends with a backslash, which line protocol cannot write in " + std::string(element_name(e)) +
           " (the separator after it would read as escaped)";
  }
  if (!simdjson::validate_utf8(s.data(), s.size())) return "is not valid UTF-8";
  if ((e == Element::kTagKey || e == Element::kFieldKey) && s == "time") {
    return "is 'time', which InfluxDB reserves for the timestamp";
  }
  return "";
}

void append_escaped(std::string& out, std::string_view s, Element e) {
  for (char c : s) {
    if (needs_escape(c, e)) out += '\\';
    out += c;
  }
}

std::string string_value_problem(std::string_view s) {
  if (s.size() > kMaxStringFieldBytes) {
    return "is " + std::to_string(s.size()) + " bytes long; InfluxDB's limit for a string field is " +
           std::to_string(kMaxStringFieldBytes);
  }
  if (!simdjson::validate_utf8(s.data(), s.size())) return "is not valid UTF-8";
  return "";
}

void append_string_value(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

void append_decimal(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_integer(std::string& out, int64_t v) {
  append_decimal(out, v);
  out += 'i';
}

void append_float(std::string& out, double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_bool(std::string& out, bool v) { out += v ? "true" : "false"; }

bool timestamp_in_range(int64_t value, Precision p) {
  int64_t ns = 0;
  if (__builtin_mul_overflow(value, nanos_per_unit(p), &ns)) return false;
  return ns > kMinTimeNs && ns < kMaxTimeNs;
}

int64_t from_millis(int64_t ms, Precision p, bool* overflow) {
  *overflow = false;
  int64_t out = ms;
  switch (p) {
    case Precision::kNanoseconds: *overflow = __builtin_mul_overflow(ms, int64_t{1'000'000}, &out); break;
    case Precision::kMicroseconds: *overflow = __builtin_mul_overflow(ms, int64_t{1'000}, &out); break;
    case Precision::kMilliseconds: break;
    case Precision::kSeconds: out = ms >= 0 ? ms / 1000 : -((-(ms + 1)) / 1000) - 1; break;
  }
  return out;
}

std::string server_message(std::string_view body) {
  constexpr size_t kLimit = 2000;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (!body.empty() && parser.parse(body.data(), body.size()).get(doc) == simdjson::SUCCESS && doc.is_object()) {
    for (const char* key : {"error", "message"}) {
      std::string_view msg;
      if (doc[key].get(msg) == simdjson::SUCCESS && !msg.empty()) return std::string(msg.substr(0, kLimit));
    }
  }
  std::string s(body.substr(0, kLimit));
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string statement_error(std::string_view body) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body.data(), body.size()).get(doc) != simdjson::SUCCESS) return "";
  simdjson::dom::array results;
  if (doc["results"].get(results) != simdjson::SUCCESS) return "";
  for (simdjson::dom::element r : results) {
    std::string_view e;
    if (r["error"].get(e) == simdjson::SUCCESS && !e.empty()) return std::string(e);
  }
  return "";
}

std::string influxql_identifier(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

bool all_points_dropped(std::string_view message, uint64_t points) {
  if (message.rfind("partial write", 0) != 0) return false;
  size_t at = message.rfind("dropped=");
  if (at == std::string_view::npos) return false;
  uint64_t n = 0;
  const char* b = message.data() + at + 8;
  auto r = std::from_chars(b, message.data() + message.size(), n);
  return r.ec == std::errc() && n == points;
}

}  // namespace sluice::influxdb
