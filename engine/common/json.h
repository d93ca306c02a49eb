// JSON output for records: NDJSON sinks, dead letters, CLI --output json.
//
// JsonSerde<T>::write appends T as compact JSON. Covered: bool, numbers,
// strings, std::optional (null), vectors/arrays, maps with string keys and
// SLUICE_FIELDS structs (objects with the declared field names). Parsing
// lives in json_read.h (it needs simdjson, which is heavy to include).
#pragma once

#include <array>
#include <charconv>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "engine/common/serde.h"
#include "engine/common/text.h"

namespace sluice {

/// Appends s as a JSON string literal (with quotes), escaping as RFC 8259
/// requires; invalid UTF-8 is passed through byte for byte.
/// Appends `s` as a JSON string. Bytes that are not UTF-8 become U+FFFD
/// (JSON text must be Unicode): what is written always parses.
void json_append_string(std::string& out, std::string_view s);
/// True if `s` is well-formed UTF-8.
bool is_valid_utf8(std::string_view s);
/// Standard base64 (with padding) of `s`.
std::string base64_encode(std::string_view s);
/// The bytes that standard base64 text encodes (missing padding is
/// accepted); nullopt if it is not base64.
std::optional<std::string> base64_decode(std::string_view s);

template <class T, class Enable = void>
struct JsonSerde;

template <>
struct JsonSerde<bool> {
  static void write(std::string& out, bool v) { out += v ? "true" : "false"; }
};

template <class T>
struct JsonSerde<T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>> {
  static void write(std::string& out, T v) {
    char buf[24];
    auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, p);
  }
};

template <class T>
struct JsonSerde<T, std::enable_if_t<std::is_floating_point_v<T>>> {
  static void write(std::string& out, T v) {
    if (!std::isfinite(v)) {  // JSON has no NaN/Inf
      out += "null";
      return;
    }
    char buf[32];
    auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, p);
  }
};

template <class T>
struct JsonSerde<T, std::enable_if_t<std::is_enum_v<T>>> {
  static void write(std::string& out, T v) {
    JsonSerde<std::underlying_type_t<T>>::write(out, static_cast<std::underlying_type_t<T>>(v));
  }
};

template <>
struct JsonSerde<std::string> {
  static void write(std::string& out, const std::string& v) { json_append_string(out, v); }
};

template <>
struct JsonSerde<Text> {
  static void write(std::string& out, const Text& v) { json_append_string(out, v.view()); }
};

template <class T>
struct JsonSerde<std::optional<T>> {
  static void write(std::string& out, const std::optional<T>& v) {
    if (v) JsonSerde<T>::write(out, *v);
    else out += "null";
  }
};

template <class Seq>
struct JsonSeqSerde {
  static void write(std::string& out, const Seq& v) {
    out.push_back('[');
    bool first = true;
    for (const auto& x : v) {
      if (!first) out.push_back(',');
      first = false;
      JsonSerde<std::decay_t<decltype(x)>>::write(out, x);
    }
    out.push_back(']');
  }
};
template <class T, class A>
struct JsonSerde<std::vector<T, A>> : JsonSeqSerde<std::vector<T, A>> {};
template <class T, size_t N>
struct JsonSerde<std::array<T, N>> : JsonSeqSerde<std::array<T, N>> {};

template <class M>
struct JsonMapSerde {
  static void write(std::string& out, const M& m) {
    out.push_back('{');
    bool first = true;
    for (const auto& [k, v] : m) {
      if (!first) out.push_back(',');
      first = false;
      json_append_string(out, k);
      out.push_back(':');
      JsonSerde<std::decay_t<decltype(v)>>::write(out, v);
    }
    out.push_back('}');
  }
};
template <class V, class C, class A>
struct JsonSerde<std::map<std::string, V, C, A>> : JsonMapSerde<std::map<std::string, V, C, A>> {};
template <class V, class H, class E, class A>
struct JsonSerde<std::unordered_map<std::string, V, H, E, A>>
    : JsonMapSerde<std::unordered_map<std::string, V, H, E, A>> {};

template <HasFields T>
struct JsonSerde<T> {
  static void write(std::string& out, const T& v) {
    out.push_back('{');
    bool first = true;
    v.sluice_visit([&](const char* name, const auto& f) {
      if (!first) out.push_back(',');
      first = false;
      json_append_string(out, name);
      out.push_back(':');
      JsonSerde<std::decay_t<decltype(f)>>::write(out, f);
    });
    out.push_back('}');
  }
};

template <class T>
concept JsonWritable = requires(std::string& s, const T& v) { JsonSerde<T>::write(s, v); };

template <class T>
std::string to_json(const T& v) {
  std::string out;
  JsonSerde<T>::write(out, v);
  return out;
}

}  // namespace sluice
