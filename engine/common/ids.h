// Strong types for ids that are easy to mix up.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <utility>

namespace sluice {

/// A value of type Rep that only compares with values of the same Tag.
/// Construction is explicit; `value()` gets the raw value back.
template <class Tag, class Rep>
class StrongId {
 public:
  using rep_type = Rep;
  constexpr StrongId() = default;
  constexpr explicit StrongId(Rep v) : v_(std::move(v)) {}
  constexpr const Rep& value() const { return v_; }
  constexpr auto operator<=>(const StrongId&) const = default;
  constexpr bool operator==(const StrongId&) const = default;

 private:
  Rep v_{};
};

template <class Tag, class Rep>
std::ostream& operator<<(std::ostream& os, const StrongId<Tag, Rep>& id) {
  return os << id.value();
}

using CheckpointId = StrongId<struct CheckpointIdTag, int64_t>;
using KeyGroup = StrongId<struct KeyGroupTag, int32_t>;
using SubtaskIndex = StrongId<struct SubtaskIndexTag, int32_t>;
using OperatorUid = StrongId<struct OperatorUidTag, std::string>;
using VertexId = StrongId<struct VertexIdTag, int32_t>;

}  // namespace sluice

template <class Tag, class Rep>
struct std::hash<sluice::StrongId<Tag, Rep>> {
  size_t operator()(const sluice::StrongId<Tag, Rep>& id) const noexcept {
    return std::hash<Rep>{}(id.value());
  }
};
