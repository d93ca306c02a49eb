// Binary serialization for records, keys and state.
//
// Serde<T> writes a T to bytes and reads it back. Built-in types, standard
// containers and user structs declared with SLUICE_FIELDS are covered:
//
//   struct Click {
//     std::string user_id;
//     std::string page_url;
//     int64_t ts = 0;
//     SLUICE_FIELDS(user_id, page_url, ts)
//   };
//
// Every encoding is self-delimiting, so values can be concatenated (a key
// followed by a namespace, a record followed by the next). Readers never
// trust their input: a short or corrupt buffer makes read() return false.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/common/pp.h"
#include "engine/common/status.h"

namespace sluice {

/// Appends encoded values to a caller-owned std::string.
class ByteWriter {
 public:
  explicit ByteWriter(std::string& out) : out_(out) {}

  void put_u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void put_raw(const void* data, size_t n) { out_.append(static_cast<const char*>(data), n); }
  void put_fixed32(uint32_t v) { put_raw(&v, sizeof v); }  // little endian (x86/arm)
  void put_fixed64(uint64_t v) { put_raw(&v, sizeof v); }
  /// Big-endian: byte order equals numeric order (RocksDB keys, sorted scans).
  void put_fixed64_be(uint64_t v) {
    char b[8];
    for (int i = 7; i >= 0; --i) {
      b[i] = static_cast<char>(v & 0xff);
      v >>= 8;
    }
    put_raw(b, 8);
  }
  void put_fixed16_be(uint16_t v) {
    put_u8(static_cast<uint8_t>(v >> 8));
    put_u8(static_cast<uint8_t>(v & 0xff));
  }
  void put_varint(uint64_t v) {
    if (v < 0x80) {  // lengths and small ints: one byte, no append call
      out_.push_back(static_cast<char>(v));
      return;
    }
    char buf[10];
    int n = 0;
    while (v >= 0x80) {
      buf[n++] = static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    buf[n++] = static_cast<char>(v);
    out_.append(buf, n);
  }
  void put_zigzag(int64_t v) {
    put_varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  /// Length-prefixed bytes.
  void put_bytes(std::string_view s) {
    put_varint(s.size());
    out_.append(s.data(), s.size());
  }
  std::string& buffer() { return out_; }

 private:
  std::string& out_;
};

/// Reads encoded values from a byte range it does not own. Every getter
/// returns false (and reads nothing) when the input is too short.
class ByteReader {
 public:
  ByteReader() = default;
  explicit ByteReader(std::string_view data) : p_(data.data()), end_(data.data() + data.size()) {}

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  bool empty() const { return p_ == end_; }
  const char* position() const { return p_; }

  bool get_u8(uint8_t& v) {
    if (p_ == end_) return false;
    v = static_cast<uint8_t>(*p_++);
    return true;
  }
  bool get_raw(void* out, size_t n) {
    if (remaining() < n) return false;
    std::memcpy(out, p_, n);
    p_ += n;
    return true;
  }
  bool get_fixed32(uint32_t& v) { return get_raw(&v, sizeof v); }
  bool get_fixed64(uint64_t& v) { return get_raw(&v, sizeof v); }
  bool get_fixed64_be(uint64_t& v) {
    if (remaining() < 8) return false;
    v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p_[i]);
    p_ += 8;
    return true;
  }
  bool get_fixed16_be(uint16_t& v) {
    if (remaining() < 2) return false;
    v = static_cast<uint16_t>((static_cast<uint8_t>(p_[0]) << 8) | static_cast<uint8_t>(p_[1]));
    p_ += 2;
    return true;
  }
  bool get_varint(uint64_t& v) {
    if (p_ != end_ && (static_cast<uint8_t>(*p_) & 0x80) == 0) {  // one byte: the common case
      v = static_cast<uint8_t>(*p_++);
      return true;
    }
    uint64_t result = 0;
    const char* p = p_;
    for (int shift = 0; shift <= 63 && p < end_; shift += 7) {
      uint64_t byte = static_cast<uint8_t>(*p++);
      result |= (byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) {
        v = result;
        p_ = p;
        return true;
      }
    }
    return false;
  }
  bool get_zigzag(int64_t& v) {
    uint64_t u;
    if (!get_varint(u)) return false;
    v = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
    return true;
  }
  /// Length-prefixed bytes, as a view into the input.
  bool get_bytes(std::string_view& v) {
    uint64_t n;
    const char* save = p_;
    if (!get_varint(n)) return false;
    if (remaining() < n) {
      p_ = save;
      return false;
    }
    v = std::string_view(p_, n);
    p_ += n;
    return true;
  }
  bool skip(size_t n) {
    if (remaining() < n) return false;
    p_ += n;
    return true;
  }

 private:
  const char* p_ = nullptr;
  const char* end_ = nullptr;
};

template <class T, class Enable = void>
struct Serde;  // write(ByteWriter&, const T&); bool read(ByteReader&, T&)

/// True for structs that declared their fields with SLUICE_FIELDS.
template <class T>
concept HasFields = requires(T& t) { t.sluice_visit([](const char*, auto&) {}); };

template <class T>
concept Serializable = requires(ByteWriter& w, ByteReader& r, const T& c, T& m) {
  Serde<T>::write(w, c);
  { Serde<T>::read(r, m) } -> std::same_as<bool>;
};

template <>
struct Serde<bool> {
  static void write(ByteWriter& w, bool v) { w.put_u8(v ? 1 : 0); }
  static bool read(ByteReader& r, bool& v) {
    uint8_t b;
    if (!r.get_u8(b) || b > 1) return false;
    v = b == 1;
    return true;
  }
};

template <class T>
struct Serde<T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>> {
  static void write(ByteWriter& w, T v) {
    if constexpr (std::is_signed_v<T>) w.put_zigzag(static_cast<int64_t>(v));
    else w.put_varint(static_cast<uint64_t>(v));
  }
  static bool read(ByteReader& r, T& v) {
    if constexpr (std::is_signed_v<T>) {
      int64_t x;
      if (!r.get_zigzag(x)) return false;
      v = static_cast<T>(x);
    } else {
      uint64_t x;
      if (!r.get_varint(x)) return false;
      v = static_cast<T>(x);
    }
    return true;
  }
};

template <class T>
struct Serde<T, std::enable_if_t<std::is_floating_point_v<T>>> {
  static void write(ByteWriter& w, T v) { w.put_raw(&v, sizeof v); }
  static bool read(ByteReader& r, T& v) { return r.get_raw(&v, sizeof v); }
};

template <class T>
struct Serde<T, std::enable_if_t<std::is_enum_v<T>>> {
  using U = std::underlying_type_t<T>;
  static void write(ByteWriter& w, T v) { Serde<U>::write(w, static_cast<U>(v)); }
  static bool read(ByteReader& r, T& v) {
    U u;
    if (!Serde<U>::read(r, u)) return false;
    v = static_cast<T>(u);
    return true;
  }
};

template <>
struct Serde<std::string> {
  static void write(ByteWriter& w, const std::string& v) { w.put_bytes(v); }
  static bool read(ByteReader& r, std::string& v) {
    std::string_view s;
    if (!r.get_bytes(s)) return false;
    v.assign(s.data(), s.size());
    return true;
  }
};

template <class T>
struct Serde<std::optional<T>> {
  static void write(ByteWriter& w, const std::optional<T>& v) {
    w.put_u8(v.has_value() ? 1 : 0);
    if (v) Serde<T>::write(w, *v);
  }
  static bool read(ByteReader& r, std::optional<T>& v) {
    uint8_t has;
    if (!r.get_u8(has) || has > 1) return false;
    if (!has) {
      v.reset();
      return true;
    }
    T x{};
    if (!Serde<T>::read(r, x)) return false;
    v = std::move(x);
    return true;
  }
};

template <class T, class A>
struct Serde<std::vector<T, A>> {
  static void write(ByteWriter& w, const std::vector<T, A>& v) {
    w.put_varint(v.size());
    for (const auto& x : v) Serde<T>::write(w, x);
  }
  static bool read(ByteReader& r, std::vector<T, A>& v) {
    uint64_t n;
    // Every element encodes to at least one byte, so a count larger than what
    // is left is corrupt (and must not drive a huge reserve()).
    if (!r.get_varint(n) || n > r.remaining()) return false;
    v.clear();
    v.reserve(n);
    for (uint64_t i = 0; i < n; ++i) {
      T x{};
      if (!Serde<T>::read(r, x)) return false;
      v.push_back(std::move(x));
    }
    return true;
  }
};

template <class T, size_t N>
struct Serde<std::array<T, N>> {
  static void write(ByteWriter& w, const std::array<T, N>& v) {
    for (const auto& x : v) Serde<T>::write(w, x);
  }
  static bool read(ByteReader& r, std::array<T, N>& v) {
    for (auto& x : v)
      if (!Serde<T>::read(r, x)) return false;
    return true;
  }
};

template <class A, class B>
struct Serde<std::pair<A, B>> {
  static void write(ByteWriter& w, const std::pair<A, B>& v) {
    Serde<A>::write(w, v.first);
    Serde<B>::write(w, v.second);
  }
  static bool read(ByteReader& r, std::pair<A, B>& v) {
    return Serde<A>::read(r, v.first) && Serde<B>::read(r, v.second);
  }
};

template <class... Ts>
struct Serde<std::tuple<Ts...>> {
  static void write(ByteWriter& w, const std::tuple<Ts...>& v) {
    std::apply([&](const auto&... xs) { (Serde<std::decay_t<decltype(xs)>>::write(w, xs), ...); },
               v);
  }
  static bool read(ByteReader& r, std::tuple<Ts...>& v) {
    return std::apply(
        [&](auto&... xs) { return (Serde<std::decay_t<decltype(xs)>>::read(r, xs) && ...); }, v);
  }
};

template <class M>
struct MapSerde {
  using K = typename M::key_type;
  using V = typename M::mapped_type;
  static void write(ByteWriter& w, const M& m) {
    w.put_varint(m.size());
    for (const auto& [k, v] : m) {
      Serde<K>::write(w, k);
      Serde<V>::write(w, v);
    }
  }
  static bool read(ByteReader& r, M& m) {
    uint64_t n;
    if (!r.get_varint(n) || n > r.remaining()) return false;
    m.clear();
    for (uint64_t i = 0; i < n; ++i) {
      K k{};
      V v{};
      if (!Serde<K>::read(r, k) || !Serde<V>::read(r, v)) return false;
      m.emplace(std::move(k), std::move(v));
    }
    return true;
  }
};
template <class K, class V, class C, class A>
struct Serde<std::map<K, V, C, A>> : MapSerde<std::map<K, V, C, A>> {};
template <class K, class V, class H, class E, class A>
struct Serde<std::unordered_map<K, V, H, E, A>> : MapSerde<std::unordered_map<K, V, H, E, A>> {};

/// User structs: fields in declaration order, no names on the wire.
template <HasFields T>
struct Serde<T> {
  static void write(ByteWriter& w, const T& v) {
    v.sluice_visit([&](const char*, const auto& f) { Serde<std::decay_t<decltype(f)>>::write(w, f); });
  }
  static bool read(ByteReader& r, T& v) {
    bool ok = true;
    v.sluice_visit([&](const char*, auto& f) {
      if (ok) ok = Serde<std::decay_t<decltype(f)>>::read(r, f);
    });
    return ok;
  }
};

/// Convenience: encode to a fresh string.
template <class T>
std::string serialize(const T& v) {
  std::string out;
  ByteWriter w(out);
  Serde<T>::write(w, v);
  return out;
}

/// Decodes exactly one T from `bytes`; trailing bytes are an error.
template <class T>
Status deserialize(std::string_view bytes, T& out) {
  ByteReader r(bytes);
  if (!Serde<T>::read(r, out) || !r.empty()) {
    return Status::corruption("cannot decode value: " + std::to_string(bytes.size()) +
                              " bytes do not hold exactly one encoded value");
  }
  return Status::ok();
}

/// Readable name of a C++ type, for messages and the graph hash.
template <class T>
std::string_view type_name() {
  std::string_view p = __PRETTY_FUNCTION__;
  auto start = p.find("T = ") + 4;
  auto end = p.find_first_of(";]", start);
  return p.substr(start, end - start);
}

}  // namespace sluice

#define SLUICE_FIELDS_VISIT_ONE(f) sluice_visitor_(#f, this->f);
/// Declares a struct's fields (in order) for binary Serde and JSON.
/// Put it inside the struct body after the fields. Any field name works
/// (the visitor's parameter name is reserved-looking, fields go via this->).
#define SLUICE_FIELDS(...)                                      \
  template <class SluiceVisitor>                                \
  void sluice_visit(SluiceVisitor&& sluice_visitor_) {          \
    SLUICE_PP_FOR_EACH(SLUICE_FIELDS_VISIT_ONE, __VA_ARGS__)    \
  }                                                             \
  template <class SluiceVisitor>                                \
  void sluice_visit(SluiceVisitor&& sluice_visitor_) const {    \
    SLUICE_PP_FOR_EACH(SLUICE_FIELDS_VISIT_ONE, __VA_ARGS__)    \
  }
