// The compiled form of a pattern: a small NFA whose states are "the
// partial match has just taken an event as occurrence o" (plus a start
// state), each with the list of candidates it waits for.
//
// A quantified element expands into occurrences (times(2,4) of step a is
// a#1 a#2 a#3 a#4; one_or_more loops on its last occurrence); a group
// expands its body once per repetition. From each state, the candidates
// are the occurrences that can take the next event, found by walking the
// epsilon paths (skipping optional elements, leaving loops, entering
// groups) once at compile time. Because a group's body starts with a
// mandatory step, these paths are unique and acyclic, so each candidate
// carries everything its path implies: the contiguity that applies to the
// gap before its event, the negations it crosses, the greedy steps it
// bypasses (blockers) and the until() that ends a loop.
//
// The Program is immutable and shared by every subtask of the operator.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "operators/cep/pattern_spec.h"

namespace sluice::cep {

/// A named step (or negation) of the pattern, in pattern order.
struct CompiledStep {
  std::string name;
  int32_t cond = -1;   ///< -1: every event
  int32_t until = -1;  ///< an event matching it is never taken by this step
  bool greedy = false;
  bool negation = false;
  int64_t within_ms = 0;  ///< kPreviousAndCurrent limit; 0 = none
};

/// What a waiting partial match may do next.
struct Candidate {
  static constexpr int32_t kPendingEnd = -1;
  /// The occurrence that takes the next event, or kPendingEnd: the match
  /// completes when its time runs out without a negated event (trailing
  /// not_followed_by).
  int32_t target = kPendingEnd;
  /// Applies to the events between the last taken event and the next.
  Contiguity contiguity = Contiguity::kRelaxed;
  /// Candidates (bits of this node's list) of greedy steps this path
  /// leaves or skips: while one of them takes an event, this one cannot
  /// and is abandoned.
  uint32_t blockers = 0;
  /// Condition that abandons this candidate (until() of the loop it
  /// continues); -1 = none.
  int32_t kill_until = -1;
  /// Time limit from the last taken event (the target step's
  /// kPreviousAndCurrent within, or the trailing negation's); 0 = none.
  int64_t within_ms = 0;
  /// Negations crossed: the first later event (not_next) / any later event
  /// (not_followed_by) before the next taken one must not match them.
  std::vector<int32_t> not_next;
  std::vector<int32_t> not_followed;
};

/// A state of the NFA.
struct NfaNode {
  std::vector<Candidate> candidates;  ///< at most 32
  /// The pattern is complete here: a partial match arriving in this node
  /// is a match (and lives on only if it has candidates).
  bool accepting = false;
  int32_t pending = -1;      ///< index of the kPendingEnd candidate, or -1
  uint32_t all = 0;          ///< bit per candidate
  uint32_t strict = 0;       ///< candidates abandoned by any event (next())
  uint32_t with_not_next = 0;
  /// Condition roots that can make an event matter to this node's alive
  /// candidates, per candidate (take, until, negations, blockers' takes).
  std::vector<std::vector<int32_t>> relevant;
};

/// The compiled pattern. Built by compile_program; immutable afterwards.
struct Program {
  std::vector<CompiledStep> steps;
  std::vector<int32_t> occ_step;  ///< occurrence -> step
  /// [0]: the start state (candidates for a match's first event);
  /// [1 + o]: after taking an event as occurrence o.
  std::vector<NfaNode> nodes;
  std::vector<CondNode> conds;
  int64_t within_ms = 0;
  AfterMatchSkipStrategy::Kind skip = AfterMatchSkipStrategy::Kind::kNoSkip;
  int32_t skip_step = -1;
  /// Every condition root the NFA evaluates (for the inert-event test).
  std::vector<int32_t> used_conds;
  /// No next() / not_next() anywhere: an event that matches no condition
  /// of the pattern changes nothing and need not be buffered or processed.
  bool inert_events_skippable = false;
  /// Some candidate has a kPreviousAndCurrent limit or a pending end.
  bool has_step_limits = false;
  /// Some condition looks at the partial match (evaluated per match).
  bool has_iterative = false;

  static int32_t node_of(int32_t occ) { return occ + 1; }
  int32_t step_of_node(int32_t node) const { return occ_step[node - 1]; }
  /// Step index by name, or -1.
  int32_t step_index(std::string_view name) const;
  /// Text for logs and the job plan.
  std::string describe() const;
};

/// Checks `spec` and compiles it. Throws std::invalid_argument with a
/// message that says what to change when the pattern is not supported.
std::shared_ptr<const Program> compile_program(const PatternSpec& spec);

}  // namespace sluice::cep
