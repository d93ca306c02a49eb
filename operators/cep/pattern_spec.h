// The untyped description of a CEP pattern: what Pattern<E> builds and the
// NFA compiler reads. Conditions appear here only as indexes into the
// pattern's condition table (the typed predicates stay in Pattern<E>), so
// the compiler and its checks are ordinary (non-template) code.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace sluice::cep {

/// How an event attaches to the one matched before it.
enum class Contiguity : uint8_t {
  kStrict,            ///< next(): the very next event of the key
  kRelaxed,           ///< followed_by(): the first later event that matches
  kNonDeterministic,  ///< followed_by_any(): any later event that matches
};

/// What `within` measures.
enum class WithinType : uint8_t {
  kFirstAndLast,        ///< first to last event of the whole match (Flink's default)
  kPreviousAndCurrent,  ///< the previous matched event to each event of this step
};

/// Which partial matches are discarded after a match is emitted. Every
/// strategy but no_skip emits matches in order of their first event (see
/// operators/cep/README.md).
struct AfterMatchSkipStrategy {
  enum class Kind : uint8_t { kNoSkip, kSkipToNext, kSkipPastLastEvent, kSkipToFirst, kSkipToLast };
  Kind kind = Kind::kNoSkip;
  std::string step;  ///< kSkipToFirst / kSkipToLast only

  static AfterMatchSkipStrategy no_skip() { return {}; }
  static AfterMatchSkipStrategy skip_to_next() { return {Kind::kSkipToNext, {}}; }
  static AfterMatchSkipStrategy skip_past_last_event() { return {Kind::kSkipPastLastEvent, {}}; }
  static AfterMatchSkipStrategy skip_to_first(std::string step) {
    return {Kind::kSkipToFirst, std::move(step)};
  }
  static AfterMatchSkipStrategy skip_to_last(std::string step) {
    return {Kind::kSkipToLast, std::move(step)};
  }
  std::string describe() const;
};

/// One node of a condition tree: a user predicate (leaf) or AND/OR of two
/// nodes. `where` ANDs onto a step's condition, `or_where` ORs.
struct CondNode {
  enum class Op : uint8_t { kLeaf, kAnd, kOr };
  Op op = Op::kLeaf;
  int32_t a = -1, b = -1;  ///< children (kAnd, kOr)
  int32_t leaf = -1;       ///< index of the predicate (kLeaf)
  bool iterative = false;  ///< true if any leaf below looks at matched events
};

inline constexpr int32_t kUnbounded = std::numeric_limits<int32_t>::max();

/// One element of a pattern sequence: a step, a group (a pattern used as
/// a step) or a negation. Value type.
struct ElementSpec {
  enum class Kind : uint8_t { kStep, kGroup, kNotNext, kNotFollowedBy };
  Kind kind = Kind::kStep;
  std::string name;  ///< steps and negations; groups have none
  /// How the element's first event attaches to the previous matched event
  /// (ignored for the first element of the pattern or of a group).
  Contiguity contiguity = Contiguity::kRelaxed;
  int32_t cond = -1;   ///< condition root; -1 = every event
  int32_t until = -1;  ///< stop condition of a looping step; -1 = none
  int32_t lo = 1;      ///< events (steps) or repetitions (groups), at least
  int32_t hi = 1;      ///< at most; kUnbounded for one_or_more/times_or_more
  bool quantified = false;  ///< times/one_or_more/times_or_more was called
  bool optional = false;
  bool greedy = false;
  /// Between the repetitions of a quantified element (consecutive():
  /// strict, allow_combinations(): non-deterministic). Default relaxed.
  Contiguity inner = Contiguity::kRelaxed;
  bool inner_set = false;
  /// within(d, kPreviousAndCurrent) on this element; 0 = none.
  int64_t within_ms = 0;
  std::vector<ElementSpec> body;  ///< kGroup
};

/// A whole pattern sequence.
struct PatternSpec {
  std::vector<ElementSpec> elements;
  /// within(d) (kFirstAndLast): the smallest given; 0 = none.
  int64_t within_ms = 0;
  AfterMatchSkipStrategy skip;
  std::vector<CondNode> conds;
};

}  // namespace sluice::cep
