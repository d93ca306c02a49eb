// JSON parsing into records with simdjson's On-Demand API.
//
// JsonRead<T>::read parses one simdjson value into T. Structs with
// SLUICE_FIELDS read an object by field name: unknown fields are ignored,
// a missing field is an error unless it is a std::optional, and a value of
// the wrong type is an error naming the field, as is a string longer than
// the parser's JsonLimits. Errors are plain messages meant for a
// dead-letter record (JsonError; JsonParser returns them as strings),
// never exceptions.
//
// Per record the reader does no more than the record needs: keys are
// compared in place (unescaped only when they hold an escape), strings
// without escapes are taken straight from the input (simdjson unescapes
// only the others), and a parser that borrows (JsonParser's `borrow`) fills
// Text fields (text.h) with views instead of copies.
#pragma once

#include <simdjson.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "engine/common/serde.h"
#include "engine/common/text.h"

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

/// What one parse reads with: its parser's limits and whether Text fields
/// may borrow. Built by JsonParser per parse and passed down by reference
/// (no thread-local: the reader is called per field and record).
struct JsonReadContext {
  const JsonLimits* limits = nullptr;  // null: no limit
  /// Text fields point into the input or the parser's buffer (valid until
  /// the parser's next parse) instead of copying. Default false.
  bool borrow = false;
};

/// What a JsonRead returns: nothing on success, else the message for the
/// dead letter. Success is a null pointer: no std::string is built or
/// destroyed per field and record (an empty std::string's destructor is an
/// out-of-line call). Value type, move-only.
class JsonError {
 public:
  JsonError() = default;
  JsonError(std::string msg) : msg_(std::make_unique<std::string>(std::move(msg))) {}  // NOLINT: returns read as messages
  JsonError(const char* msg) : JsonError(std::string(msg)) {}                          // NOLINT
  explicit operator bool() const { return msg_ != nullptr; }
  const std::string& message() const { return *msg_; }
  /// The message ("" on success).
  std::string take() && { return msg_ ? std::move(*msg_) : std::string(); }

 private:
  std::unique_ptr<std::string> msg_;
};

namespace json_detail {
[[gnu::always_inline]] inline JsonError check_string_size(size_t n, const JsonReadContext& cx) {
  const JsonLimits* l = cx.limits;
  if (!l || n <= l->max_string_bytes) [[likely]] return {};
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
/// The raw (still escaped) key at `raw` (just after its opening quote)
/// equals `name`, which holds no quote or backslash: then the key's
/// closing quote follows the name's bytes. Reads no further than the first
/// difference, which comes at the latest at the key's closing quote.
inline bool raw_key_equals(const char* raw, const char* name) {
  for (; *name != '\0'; ++raw, ++name)
    if (*raw != *name) return false;
  return *raw == '"';
}
/// The raw key at `raw` holds an escape: it must be unescaped to compare.
inline bool raw_key_escaped(const char* raw) {
  while (*raw != '"' && *raw != '\\') ++raw;
  return *raw == '\\';
}
/// A string value: straight from the input when it holds no escape (the
/// bytes simdjson would unescape to), else unescaped into the parser's
/// buffer; either is valid until the parser's next parse. Inlined: it runs
/// for every string of every record.
[[gnu::always_inline]] inline JsonError read_string(simdjson::ondemand::value& v, const JsonReadContext& cx,
                                                    std::string_view& s) {
  // Peeks at the token (does not consume it). A string token always has its
  // closing quote in the buffer: the scan stops there or at an escape.
  const char* p = v.raw_json_token().data();
  const char* q = p + 1;
  if (*p == '"') {
#if defined(__SSE2__)
    // 16 bytes at a time, without a branch per byte (a loop's exit
    // mispredicts once per string): the document is padded
    // (SIMDJSON_PADDING), so 16 bytes from inside it are readable.
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
    const unsigned m = static_cast<unsigned>(_mm_movemask_epi8(
        _mm_or_si128(_mm_cmpeq_epi8(b, _mm_set1_epi8('"')), _mm_cmpeq_epi8(b, _mm_set1_epi8('\\')))));
    if (m != 0) [[likely]] {
      q += __builtin_ctz(m);
    } else {
      q += 16;
      while (*q != '"' && *q != '\\') ++q;
    }
#else
    while (*q != '"' && *q != '\\') ++q;
#endif
  }
  if (*p == '"' && *q == '"') [[likely]] {
    s = std::string_view(p + 1, static_cast<size_t>(q - p - 1));
  } else {
    auto r = v.get_string();
    if (r.error()) return err("expected a string", r.error());
    s = r.value_unsafe();
  }
  return check_string_size(s.size(), cx);
}
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
}  // namespace json_detail

/// Parses a value into T; returns no JsonError on success, else the message.
template <class T, class Enable = void>
struct JsonRead;

template <>
struct JsonRead<bool> {
  [[gnu::always_inline]] static JsonError read(simdjson::ondemand::value v, bool& out, const JsonReadContext&) {
    auto r = v.get_bool();
    if (r.error()) return json_detail::err("expected true or false", r.error());
    out = r.value_unsafe();
    return {};
  }
};

template <class T>
struct JsonRead<T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>> {
  [[gnu::always_inline]] static JsonError read(simdjson::ondemand::value v, T& out, const JsonReadContext&) {
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
  [[gnu::always_inline]] static JsonError read(simdjson::ondemand::value v, T& out, const JsonReadContext&) {
    auto r = v.get_double();
    if (r.error()) return json_detail::err("expected a number", r.error());
    out = static_cast<T>(r.value_unsafe());
    return {};
  }
};

template <>
struct JsonRead<std::string> {
  [[gnu::always_inline]] static JsonError read(simdjson::ondemand::value v, std::string& out, const JsonReadContext& cx) {
    std::string_view s;
    if (JsonError e = json_detail::read_string(v, cx, s)) return e;
    out.assign(s.data(), s.size());
    return {};
  }
};

/// A view when the parse borrows (JsonReadContext::borrow), else a copy.
template <>
struct JsonRead<Text> {
  [[gnu::always_inline]] static JsonError read(simdjson::ondemand::value v, Text& out, const JsonReadContext& cx) {
    std::string_view s;
    if (JsonError e = json_detail::read_string(v, cx, s)) return e;
    if (cx.borrow) out.set_borrowed(s);
    else out.assign(s);
    return {};
  }
};

template <class T>
struct JsonRead<std::optional<T>> {
  [[gnu::always_inline]] static JsonError read(simdjson::ondemand::value v, std::optional<T>& out, const JsonReadContext& cx) {
    auto n = v.is_null();
    if (!n.error() && n.value_unsafe()) {
      out.reset();
      return {};
    }
    T x{};
    if (JsonError e = JsonRead<T>::read(v, x, cx)) return e;
    out = std::move(x);
    return {};
  }
};

template <class T, class A>
struct JsonRead<std::vector<T, A>> {
  static JsonError read(simdjson::ondemand::value v, std::vector<T, A>& out, const JsonReadContext& cx) {
    auto arr = v.get_array();
    if (arr.error()) return json_detail::err("expected an array", arr.error());
    out.clear();
    size_t i = 0;
    for (auto el : arr.value_unsafe()) {
      if (el.error()) return json_detail::err("bad array element", el.error());
      T x{};
      if (JsonError e = JsonRead<T>::read(el.value_unsafe(), x, cx))
        return "element " + std::to_string(i) + ": " + e.message();
      out.push_back(std::move(x));
      ++i;
    }
    return {};
  }
};

template <class M>
struct JsonReadMap {
  static JsonError read(simdjson::ondemand::value v, M& out, const JsonReadContext& cx) {
    auto obj = v.get_object();
    if (obj.error()) return json_detail::err("expected an object", obj.error());
    out.clear();
    for (auto field : obj.value_unsafe()) {
      if (field.error()) return json_detail::err("bad object member", field.error());
      auto key = field.unescaped_key();
      if (key.error()) return json_detail::err("bad key", key.error());
      if (JsonError e = json_detail::check_string_size(key.value_unsafe().size(), cx))
        return "key: " + e.message();
      std::string k(key.value_unsafe());
      typename M::mapped_type x{};
      if (JsonError e = JsonRead<typename M::mapped_type>::read(field.value(), x, cx))
        return "member '" + k + "': " + e.message();
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
  static JsonError read(simdjson::ondemand::value v, T& out, const JsonReadContext& cx) {
    auto obj = v.get_object();
    if (obj.error()) return json_detail::err("expected a JSON object", obj.error());
    uint64_t seen = 0;
    JsonError error;
    for (auto field : obj.value_unsafe()) {
      if (field.error()) return json_detail::err("malformed JSON", field.error());
      simdjson::ondemand::field& f = field.value_unsafe();
      // Which field: the raw key compared in place; unescaped only if it
      // holds an escape and matched nothing raw.
      const char* raw = f.key().raw();
      int match = -1, index = 0;
      out.sluice_visit([&](const char* name, auto&) __attribute__((always_inline)) {
        if (match < 0 && json_detail::raw_key_equals(raw, name)) match = index;
        ++index;
      });
      if (match < 0) {
        if (!json_detail::raw_key_escaped(raw)) continue;  // an unknown field: skipped by the iterator
        auto key = f.unescaped_key();
        if (key.error()) return json_detail::err("malformed key", key.error());
        std::string_view k = key.value_unsafe();
        index = 0;
        out.sluice_visit([&](const char* name, auto&) {
          if (match < 0 && json_detail::name_equals(k, name)) match = index;
          ++index;
        });
        if (match < 0) continue;
      }
      index = 0;
      // Inlined (as the readers of scalars): called per field and record,
      // an out-of-line lambda in a job's library is a call through its PLT.
      out.sluice_visit([&](const char* name, auto& fld) __attribute__((always_inline)) {
        if (index++ != match) return;
        if (JsonError e = JsonRead<std::decay_t<decltype(fld)>>::read(f.value(), fld, cx))
          error = "field '" + std::string(name) + "': " + e.message();
        else if (match < 64) seen |= uint64_t{1} << match;
      });
      if (error) return error;
    }
    int index = 0;
    out.sluice_visit([&](const char* name, auto& f) {
      using F = std::decay_t<decltype(f)>;
      if (!error && index < 64 && !(seen & (uint64_t{1} << index)) &&
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
  /// `borrow`: Text fields of the records parsed point into the input (or
  /// this parser's buffer) instead of copying; valid until the next parse
  /// and while the input lives. Default false.
  explicit JsonParser(JsonLimits limits, bool borrow = false) : limits_(std::move(limits)), borrow_(borrow) {}
  const JsonLimits& limits() const { return limits_; }

  /// `data[0..len)` is the document; `capacity` bytes from `data` must be
  /// readable and capacity >= len + simdjson::SIMDJSON_PADDING.
  template <class T>
  std::string parse_padded(const char* data, size_t len, size_t capacity, T& out) {
    const JsonReadContext cx{&limits_, borrow_};
    auto doc = parser_.iterate(data, len, capacity);
    if (doc.error()) return json_detail::err("invalid JSON", doc.error());
    auto val = doc.get_value();
    if (val.error()) return json_detail::err("invalid JSON", val.error());
    if (JsonError e = JsonRead<T>::read(val.value_unsafe(), out, cx)) return std::move(e).take();
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
  bool borrow_ = false;
  simdjson::ondemand::parser parser_;
  std::string scratch_;
};

}  // namespace sluice
