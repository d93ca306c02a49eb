// A match as the user sees it: step name -> the events it took, in order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/common/json.h"
#include "engine/common/serde.h"

namespace sluice::cep {

/// The events of one (partial) match, grouped by step in pattern order;
/// steps that took nothing are absent. Value type.
template <class E>
struct Match {
  std::vector<std::pair<std::string, std::vector<E>>> steps;
  /// Event time of the first and last event.
  int64_t first_timestamp = 0;
  int64_t last_timestamp = 0;

  /// The events of step `name`; empty if it took none.
  const std::vector<E>& operator[](std::string_view name) const {
    for (const auto& [n, events] : steps)
      if (n == name) return events;
    static const std::vector<E> kNone;
    return kNone;
  }
  bool contains(std::string_view name) const {
    for (const auto& s : steps)
      if (s.first == name) return true;
    return false;
  }
  size_t event_count() const {
    size_t n = 0;
    for (const auto& s : steps) n += s.second.size();
    return n;
  }
};

/// A partial match whose time ran out, with what it had matched: what the
/// timed-out side output carries (PatternStream::side_output_timed_out).
template <class E>
struct TimedOutMatch {
  Match<E> match;
  /// The time after which it could no longer complete (its deadline - 1).
  int64_t timeout_timestamp = 0;
  SLUICE_FIELDS(match, timeout_timestamp)
};

}  // namespace sluice::cep

namespace sluice {

template <class E>
struct Serde<cep::Match<E>> {
  static void write(ByteWriter& w, const cep::Match<E>& m) {
    Serde<decltype(m.steps)>::write(w, m.steps);
    w.put_zigzag(m.first_timestamp);
    w.put_zigzag(m.last_timestamp);
  }
  static bool read(ByteReader& r, cep::Match<E>& m) {
    return Serde<decltype(m.steps)>::read(r, m.steps) && r.get_zigzag(m.first_timestamp) &&
           r.get_zigzag(m.last_timestamp);
  }
};

/// JSON: {"step": [event, ...], ...} in pattern order (when E has JSON).
template <class E>
struct JsonSerde<cep::Match<E>, std::enable_if_t<JsonWritable<E>>> {
  static void write(std::string& out, const cep::Match<E>& m) {
    out.push_back('{');
    bool first = true;
    for (const auto& [name, events] : m.steps) {
      if (!first) out.push_back(',');
      first = false;
      json_append_string(out, name);
      out.push_back(':');
      JsonSerde<std::vector<E>>::write(out, events);
    }
    out.push_back('}');
  }
};

}  // namespace sluice
