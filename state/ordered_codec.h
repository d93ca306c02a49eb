// Order-preserving key encodings for ordered map state.
//
// OrderedCodec<T> turns a key into bytes whose byte-wise (memcmp) order is
// the key's order, and back:
//
//   a < b  <=>  encode(a) < encode(b)   (lexicographic unsigned bytes)
//
// Every encoding is also prefix-free (no key's bytes are a proper prefix of
// another key's), so encodings can be concatenated: a pair or tuple is its
// members' encodings one after another and orders lexicographically, and
// "the smallest key greater than x" is encode(x) + '\0'. RocksDB stores the
// bytes as they are (iterators and DeleteRange work on them directly); the
// heap backend keeps them in an ordered container, so both backends return
// entries in exactly the same order.
//
// Encodings (all fixed by this file; they are on disk, never change them):
//
//   unsigned integers   big endian, sizeof(T) bytes
//   signed integers     two's complement with the sign bit flipped, big endian
//   bool                one byte, 0 or 1
//   enums               as their underlying type
//   EventTime           as int64_t milliseconds (EventTime::min() first)
//   std::chrono::duration  as its count (Rep)
//   std::string, std::vector<uint8_t>
//                       the bytes with 0x00 written as 0x00 0xFF, then the
//                       terminator 0x00 0x01 (byte-wise order: "" < "a" <
//                       "a\0" < "ab" < "b")
//   std::pair, std::tuple  members in order
//   structs             fields in SLUICE_FIELDS order, when the struct opts in
//                       with `static constexpr bool sluice_ordered_key = true;`
//
// Floating-point keys are not supported on purpose (-0.0 == 0.0 and NaN
// would make two "equal" keys distinct entries). A key type without a codec
// is refused at compile time by everything that needs order
// (OrderedMapState, KeyRange).
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/common/serde.h"
#include "engine/common/time.h"

namespace sluice::state {

/// encode(std::string& out, const T&) appends the key's bytes;
/// decode(std::string_view& in, T&) consumes them from the front of `in`
/// and returns false (reading nothing useful) if they are malformed.
/// Specialize it for a type of your own to make it an ordered key; the
/// encoding must be order-preserving and prefix-free (see the top of this
/// file).
template <class T, class Enable = void>
struct OrderedCodec;

/// Key types that ordered map state accepts.
template <class T>
concept OrderedKey = requires(std::string& out, std::string_view& in, const T& c, T& m) {
  OrderedCodec<T>::encode(out, c);
  { OrderedCodec<T>::decode(in, m) } -> std::same_as<bool>;
};

namespace ordered_detail {
template <class U>
void put_be(std::string& out, U v) {
  char b[sizeof(U)];
  for (int i = static_cast<int>(sizeof(U)) - 1; i >= 0; --i) {
    b[i] = static_cast<char>(v & 0xff);
    v = static_cast<U>(v >> 8);
  }
  out.append(b, sizeof(U));
}
template <class U>
bool get_be(std::string_view& in, U& v) {
  if (in.size() < sizeof(U)) return false;
  U r = 0;
  for (size_t i = 0; i < sizeof(U); ++i) r = static_cast<U>((r << 8) | static_cast<uint8_t>(in[i]));
  in.remove_prefix(sizeof(U));
  v = r;
  return true;
}

inline void put_escaped(std::string& out, const char* p, size_t n) {
  const char* end = p + n;
  while (p < end) {
    const void* z = std::memchr(p, 0, static_cast<size_t>(end - p));
    const char* stop = z ? static_cast<const char*>(z) : end;
    out.append(p, static_cast<size_t>(stop - p));
    if (!z) break;
    out.push_back('\0');
    out.push_back('\xff');
    p = stop + 1;
  }
  out.push_back('\0');
  out.push_back('\x01');
}
/// Appends the unescaped bytes to `out`.
template <class Out>
bool get_escaped(std::string_view& in, Out& out) {
  size_t i = 0;
  for (;;) {
    const void* z = std::memchr(in.data() + i, 0, in.size() - i);
    if (!z) return false;
    size_t at = static_cast<size_t>(static_cast<const char*>(z) - in.data());
    if (at + 1 >= in.size()) return false;
    out.insert(out.end(), in.data() + i, in.data() + at);
    uint8_t next = static_cast<uint8_t>(in[at + 1]);
    if (next == 0x01) {
      in.remove_prefix(at + 2);
      return true;
    }
    if (next != 0xff) return false;
    out.push_back(0);
    i = at + 2;
  }
}
}  // namespace ordered_detail

template <>
struct OrderedCodec<bool> {
  static void encode(std::string& out, bool v) { out.push_back(v ? '\x01' : '\x00'); }
  static bool decode(std::string_view& in, bool& v) {
    if (in.empty() || static_cast<uint8_t>(in[0]) > 1) return false;
    v = in[0] == 1;
    in.remove_prefix(1);
    return true;
  }
};

template <class T>
struct OrderedCodec<T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>> {
  using U = std::make_unsigned_t<T>;
  static constexpr U kFlip = std::is_signed_v<T> ? static_cast<U>(U{1} << (sizeof(T) * 8 - 1)) : U{0};
  static void encode(std::string& out, T v) {
    ordered_detail::put_be<U>(out, static_cast<U>(static_cast<U>(v) ^ kFlip));
  }
  static bool decode(std::string_view& in, T& v) {
    U u;
    if (!ordered_detail::get_be<U>(in, u)) return false;
    v = static_cast<T>(static_cast<U>(u ^ kFlip));
    return true;
  }
};

template <class T>
struct OrderedCodec<T, std::enable_if_t<std::is_enum_v<T>>> {
  using U = std::underlying_type_t<T>;
  static void encode(std::string& out, T v) { OrderedCodec<U>::encode(out, static_cast<U>(v)); }
  static bool decode(std::string_view& in, T& v) {
    U u;
    if (!OrderedCodec<U>::decode(in, u)) return false;
    v = static_cast<T>(u);
    return true;
  }
};

template <>
struct OrderedCodec<EventTime> {
  static void encode(std::string& out, EventTime t) { OrderedCodec<int64_t>::encode(out, t.ms()); }
  static bool decode(std::string_view& in, EventTime& t) {
    int64_t ms;
    if (!OrderedCodec<int64_t>::decode(in, ms)) return false;
    t = EventTime(ms);
    return true;
  }
};

template <class Rep, class Period>
struct OrderedCodec<std::chrono::duration<Rep, Period>, std::enable_if_t<std::is_integral_v<Rep>>> {
  using D = std::chrono::duration<Rep, Period>;
  static void encode(std::string& out, D d) { OrderedCodec<Rep>::encode(out, d.count()); }
  static bool decode(std::string_view& in, D& d) {
    Rep r;
    if (!OrderedCodec<Rep>::decode(in, r)) return false;
    d = D(r);
    return true;
  }
};

template <>
struct OrderedCodec<std::string> {
  static void encode(std::string& out, const std::string& s) {
    ordered_detail::put_escaped(out, s.data(), s.size());
  }
  static bool decode(std::string_view& in, std::string& s) {
    s.clear();
    return ordered_detail::get_escaped(in, s);
  }
};

template <>
struct OrderedCodec<std::vector<uint8_t>> {
  static void encode(std::string& out, const std::vector<uint8_t>& b) {
    ordered_detail::put_escaped(out, reinterpret_cast<const char*>(b.data()), b.size());
  }
  static bool decode(std::string_view& in, std::vector<uint8_t>& b) {
    b.clear();
    return ordered_detail::get_escaped(in, b);
  }
};

template <OrderedKey A, OrderedKey B>
struct OrderedCodec<std::pair<A, B>> {
  static void encode(std::string& out, const std::pair<A, B>& v) {
    OrderedCodec<A>::encode(out, v.first);
    OrderedCodec<B>::encode(out, v.second);
  }
  static bool decode(std::string_view& in, std::pair<A, B>& v) {
    return OrderedCodec<A>::decode(in, v.first) && OrderedCodec<B>::decode(in, v.second);
  }
};

template <OrderedKey... Ts>
struct OrderedCodec<std::tuple<Ts...>> {
  static void encode(std::string& out, const std::tuple<Ts...>& v) {
    std::apply([&](const Ts&... xs) { (OrderedCodec<Ts>::encode(out, xs), ...); }, v);
  }
  static bool decode(std::string_view& in, std::tuple<Ts...>& v) {
    return std::apply([&](Ts&... xs) { return (OrderedCodec<Ts>::decode(in, xs) && ...); }, v);
  }
};

/// Structs that declare `static constexpr bool sluice_ordered_key = true;`
/// next to SLUICE_FIELDS: ordered by their fields, first field first.
template <class T>
concept OrderedStruct = HasFields<T> && requires { requires T::sluice_ordered_key; };

template <OrderedStruct T>
struct OrderedCodec<T> {
  static void encode(std::string& out, const T& v) {
    v.sluice_visit([&](const char*, const auto& f) {
      using F = std::decay_t<decltype(f)>;
      static_assert(OrderedKey<F>, "every field of an ordered key struct needs an OrderedCodec");
      OrderedCodec<F>::encode(out, f);
    });
  }
  static bool decode(std::string_view& in, T& v) {
    bool ok = true;
    v.sluice_visit([&](const char*, auto& f) {
      using F = std::decay_t<decltype(f)>;
      if (ok) ok = OrderedCodec<F>::decode(in, f);
    });
    return ok;
  }
};

/// The key's ordered bytes, appended to `out`.
template <OrderedKey K>
void ordered_encode(std::string& out, const K& k) {
  OrderedCodec<K>::encode(out, k);
}
/// Decodes exactly one K from `bytes` (trailing bytes are an error).
template <OrderedKey K>
bool ordered_decode(std::string_view bytes, K& k) {
  return OrderedCodec<K>::decode(bytes, k) && bytes.empty();
}

}  // namespace sluice::state
