// Text: a string field of a record that a source may point into its read
// buffer instead of copying it.
//
//   struct Click {
//     sluice::Text user_id;   // instead of std::string
//     sluice::Text page_url;
//     int64_t ts = 0;
//     SLUICE_FIELDS(user_id, page_url, ts)
//   };
//
// A source that parses with borrowing on (the NDJSON file source) fills
// such fields with views into the bytes it read, and hands the record to
// the chained operators, which process it synchronously before the source
// reads on: no copy and no allocation per field. Everything that keeps a
// record past that call copies it — a window buffer, state, a side output,
// serialization for an exchange — and a copy (or a move) of a Text always
// owns its bytes. So a borrowed Text exists only as the source's own record
// and as the `const T&` the operators see; code that keeps a
// `std::string_view` of a field past the call keeps it at its own risk, as
// with any `const std::string&`.
#pragma once

#include <compare>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "engine/common/serde.h"

namespace sluice {

/// A string that owns its bytes or borrows them (Text::borrow). Value type:
/// copies and moves own. Not thread-safe (as std::string).
class Text {
 public:
  Text() = default;
  Text(const char* s) : own_(s) {}  // NOLINT: a record field, literals convert
  Text(std::string s) : own_(std::move(s)) {}  // NOLINT
  Text(std::string_view s) : own_(s) {}  // NOLINT
  Text(const Text& o) : own_(o.view()) {}
  Text(Text&& o) noexcept { *this = std::move(o); }
  Text& operator=(const Text& o) {
    if (this != &o) assign(o.view());
    return *this;
  }
  Text& operator=(Text&& o) noexcept {
    if (this == &o) return *this;
    if (o.borrowed_) {
      assign(o.view());
    } else {
      own_ = std::move(o.own_);
      borrowed_ = false;
    }
    return *this;
  }
  Text& operator=(std::string_view s) {
    assign(s);
    return *this;
  }
  Text& operator=(const char* s) { return *this = std::string_view(s); }
  Text& operator=(std::string s) {
    own_ = std::move(s);
    borrowed_ = false;
    return *this;
  }

  /// Points at `s` without copying; valid while `s`'s bytes are (the source's read buffer).
  static Text borrow(std::string_view s) {
    Text t;
    t.set_borrowed(s);
    return t;
  }
  /// Points this at `s` without copying (a parser filling its reused record).
  void set_borrowed(std::string_view s) {
    ptr_ = s.data();
    len_ = s.size();
    borrowed_ = true;
  }
  /// Copies `s` into this Text's own storage (reusing its capacity).
  void assign(std::string_view s) {
    own_.assign(s.data(), s.size());
    borrowed_ = false;
  }
  bool borrowed() const { return borrowed_; }

  std::string_view view() const { return borrowed_ ? std::string_view(ptr_, len_) : std::string_view(own_); }
  operator std::string_view() const { return view(); }  // NOLINT: reads like a string
  std::string str() const { return std::string(view()); }
  explicit operator std::string() const { return str(); }
  const char* data() const { return view().data(); }
  size_t size() const { return view().size(); }
  bool empty() const { return size() == 0; }
  char operator[](size_t i) const { return view()[i]; }
  auto begin() const { return view().begin(); }
  auto end() const { return view().end(); }

  friend bool operator==(const Text& a, const Text& b) { return a.view() == b.view(); }
  friend bool operator==(const Text& a, std::string_view b) { return a.view() == b; }
  friend bool operator==(const Text& a, const char* b) { return a.view() == b; }
  friend bool operator==(const Text& a, const std::string& b) { return a.view() == b; }
  friend std::strong_ordering operator<=>(const Text& a, const Text& b) { return a.view() <=> b.view(); }

 private:
  std::string own_;
  const char* ptr_ = nullptr;
  size_t len_ = 0;
  bool borrowed_ = false;
};

/// Same bytes as a std::string: a Text field and a std::string field
/// serialize alike (state and savepoints do not change with the field's type).
template <>
struct Serde<Text> {
  static void write(ByteWriter& w, const Text& v) { w.put_bytes(v.view()); }
  static bool read(ByteReader& r, Text& v) {
    std::string_view s;
    if (!r.get_bytes(s)) return false;
    v.assign(s);  // owned: the reader's buffer does not outlive the record
    return true;
  }
};

}  // namespace sluice

template <>
struct std::hash<sluice::Text> {
  size_t operator()(const sluice::Text& t) const noexcept { return std::hash<std::string_view>{}(t.view()); }
};
