// JSON parsing into records with simdjson's On-Demand API.
//
// JsonRead<T>::read parses one simdjson value into T. Structs with
// SLUICE_FIELDS read an object by field name: unknown fields are ignored,
// a missing field is an error unless it is a std::optional, and a value of
// the wrong type is an error naming the field, as is a string longer than
// the parser's JsonLimits. Errors are plain messages meant for a
// dead-letter record, never exceptions.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "engine/common/serde.h"

namespace sluice {

/// Longest string value or object key a record may hold, by default
/// (bytes, after unescaping): 1 MiB. Records as a whole are bounded by the
/// sources (kDefaultMaxRecordBytes).
inline constexpr size_t kDefaultMaxFieldBytes = size_t{1} << 20;

/// Bounds on what one parsed record may hold. Value type; defaults as written.
struct JsonLimits {
  /// Longest string value or object key (bytes, after unescaping);
  /// longer ones make the record an error. Default kDefaultMaxFieldBytes.
  size_t max_string_bytes = kDefaultMaxFieldBytes;
  /// How the user changes it, named in the error. Default "max-field-bytes".
  std::string setting = "max-field-bytes";
};

namespace json_detail {
/// The limits of the JsonParser parsing on this thread (set for the
/// duration of a parse; null outside one: no limit).
inline const JsonLimits*& current_limits() {
  thread_local const JsonLimits* limits = nullptr;
  return limits;
}
inline std::string check_string_size(size_t n) {
  const JsonLimits* l = current_limits();
  if (!l || n <= l->max_string_bytes) return {};
  return "string of " + std::to_string(n) + " bytes exceeds the limit of " + std::to_string(l->max_string_bytes) +
         " bytes (" + l->setting + ")";
}
inline std::string err(std::string_view what, simdjson::error_code e) {
  return std::string(what) + " (" + simdjson::error_message(e) + ")";
}
/// k == name without strlen(name) (called per field and record).
inline bool name_equals(std::string_view k, const char* name) {
  for (char c : k) {
    if (*name == '\0' || *name != c) return false;  // stops at name's end: never reads past it
    ++name;
  }
  return *name == '\0';
}
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
}  // namespace json_detail

/// Parses a value into T; returns an empty string on success or a message.
template <class T, class Enable = void>
struct JsonRead;

template <>
struct JsonRead<bool> {
  static std::string read(simdjson::ondemand::value v, bool& out) {
    auto r = v.get_bool();
    if (r.error()) return json_detail::err("expected true or false", r.error());
    out = r.value_unsafe();
    return {};
  }
};

template <class T>
struct JsonRead<T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>> {
  static std::string read(simdjson::ondemand::value v, T& out) {
    if constexpr (std::is_signed_v<T>) {
      auto r = v.get_int64();
      if (r.error()) return json_detail::err("expected an integer", r.error());
      int64_t x = r.value_unsafe();
      if (x < std::numeric_limits<T>::min() || x > std::numeric_limits<T>::max())
        return "integer out of range";
      out = static_cast<T>(x);
    } else {
      auto r = v.get_uint64();
      if (r.error()) return json_detail::err("expected a non-negative integer", r.error());
      uint64_t x = r.value_unsafe();
      if (x > std::numeric_limits<T>::max()) return "integer out of range";
      out = static_cast<T>(x);
    }
    return {};
  }
};

template <class T>
struct JsonRead<T, std::enable_if_t<std::is_floating_point_v<T>>> {
  static std::string read(simdjson::ondemand::value v, T& out) {
    auto r = v.get_double();
    if (r.error()) return json_detail::err("expected a number", r.error());
    out = static_cast<T>(r.value_unsafe());
    return {};
  }
};

template <>
struct JsonRead<std::string> {
  static std::string read(simdjson::ondemand::value v, std::string& out) {
    auto r = v.get_string();
    if (r.error()) return json_detail::err("expected a string", r.error());
    std::string_view s = r.value_unsafe();
    if (std::string e = json_detail::check_string_size(s.size()); !e.empty()) return e;
    out.assign(s.data(), s.size());
    return {};
  }
};

template <class T>
struct JsonRead<std::optional<T>> {
  static std::string read(simdjson::ondemand::value v, std::optional<T>& out) {
    auto n = v.is_null();
    if (!n.error() && n.value_unsafe()) {
      out.reset();
      return {};
    }
    T x{};
    std::string e = JsonRead<T>::read(v, x);
    if (!e.empty()) return e;
    out = std::move(x);
    return {};
  }
};

template <class T, class A>
struct JsonRead<std::vector<T, A>> {
  static std::string read(simdjson::ondemand::value v, std::vector<T, A>& out) {
    auto arr = v.get_array();
    if (arr.error()) return json_detail::err("expected an array", arr.error());
    out.clear();
    size_t i = 0;
    for (auto el : arr.value_unsafe()) {
      if (el.error()) return json_detail::err("bad array element", el.error());
      T x{};
      std::string e = JsonRead<T>::read(el.value_unsafe(), x);
      if (!e.empty()) return "element " + std::to_string(i) + ": " + e;
      out.push_back(std::move(x));
      ++i;
    }
    return {};
  }
};

template <class M>
struct JsonReadMap {
  static std::string read(simdjson::ondemand::value v, M& out) {
    auto obj = v.get_object();
    if (obj.error()) return json_detail::err("expected an object", obj.error());
    out.clear();
    for (auto field : obj.value_unsafe()) {
      if (field.error()) return json_detail::err("bad object member", field.error());
      auto key = field.unescaped_key();
      if (key.error()) return json_detail::err("bad key", key.error());
      if (std::string e = json_detail::check_string_size(key.value_unsafe().size()); !e.empty()) return "key: " + e;
      std::string k(key.value_unsafe());
      typename M::mapped_type x{};
      std::string e = JsonRead<typename M::mapped_type>::read(field.value(), x);
      if (!e.empty()) return "member '" + k + "': " + e;
      out[std::move(k)] = std::move(x);
    }
    return {};
  }
};
template <class V, class C, class A>
struct JsonRead<std::map<std::string, V, C, A>> : JsonReadMap<std::map<std::string, V, C, A>> {};
template <class V, class H, class E, class A>
struct JsonRead<std::unordered_map<std::string, V, H, E, A>>
    : JsonReadMap<std::unordered_map<std::string, V, H, E, A>> {};

template <HasFields T>
struct JsonRead<T> {
  static std::string read(simdjson::ondemand::value v, T& out) {
    auto obj = v.get_object();
    if (obj.error()) return json_detail::err("expected a JSON object", obj.error());
    uint64_t seen = 0;
    std::string error;
    for (auto field : obj.value_unsafe()) {
      if (field.error()) return json_detail::err("malformed JSON", field.error());
      auto key = field.unescaped_key();
      if (key.error()) return json_detail::err("malformed key", key.error());
      std::string_view k = key.value_unsafe();
      int index = 0;
      bool matched = false;
      out.sluice_visit([&](const char* name, auto& f) {
        if (!matched && error.empty() && json_detail::name_equals(k, name)) {
          matched = true;
          std::string e = JsonRead<std::decay_t<decltype(f)>>::read(field.value(), f);
          if (!e.empty()) error = "field '" + std::string(name) + "': " + e;
          else if (index < 64) seen |= uint64_t{1} << index;
        }
        ++index;
      });
      if (!error.empty()) return error;
      // Unknown fields are skipped by the iterator.
    }
    int index = 0;
    out.sluice_visit([&](const char* name, auto& f) {
      using F = std::decay_t<decltype(f)>;
      if (error.empty() && index < 64 && !(seen & (uint64_t{1} << index)) &&
          !json_detail::is_optional<F>::value) {
        error = "missing field '" + std::string(name) + "'";
      }
      ++index;
    });
    return error;
  }
};

/// Reusable parser state for one thread (simdjson parsers are not
/// thread-safe). Parses whole documents into T, within its JsonLimits
/// (default JsonLimits{}): a string longer than the limit is an error
/// naming the field, not a copy.
class JsonParser {
 public:
  JsonParser() = default;
  explicit JsonParser(JsonLimits limits) : limits_(std::move(limits)) {}
  const JsonLimits& limits() const { return limits_; }

  /// `data[0..len)` is the document; `capacity` bytes from `data` must be
  /// readable and capacity >= len + simdjson::SIMDJSON_PADDING.
  template <class T>
  std::string parse_padded(const char* data, size_t len, size_t capacity, T& out) {
    struct Scope {  // this parser's limits for JsonRead, on this thread, during the parse
      explicit Scope(const JsonLimits* l) : saved(json_detail::current_limits()) { json_detail::current_limits() = l; }
      ~Scope() { json_detail::current_limits() = saved; }
      const JsonLimits* saved;
    } scope(&limits_);
    auto doc = parser_.iterate(data, len, capacity);
    if (doc.error()) return json_detail::err("invalid JSON", doc.error());
    auto val = doc.get_value();
    if (val.error()) return json_detail::err("invalid JSON", val.error());
    std::string e = JsonRead<T>::read(val.value_unsafe(), out);
    if (!e.empty()) return e;
    // In bounds after the value means something follows it.
    if (!doc.value_unsafe().current_location().error()) {
      return "invalid JSON: trailing content after the value";
    }
    return {};
  }
  /// Copies into a padded buffer first; for convenience outside hot paths.
  template <class T>
  std::string parse(std::string_view json, T& out) {
    scratch_.assign(json.data(), json.size());
    scratch_.append(simdjson::SIMDJSON_PADDING, '\0');
    return parse_padded(scratch_.data(), json.size(), scratch_.size(), out);
  }

 private:
  JsonLimits limits_;
  simdjson::ondemand::parser parser_;
  std::string scratch_;
};

}  // namespace sluice
