// A pattern ready to run: the compiled NFA plus the typed predicates, and
// the per-event evaluation of conditions.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "operators/cep/nfa_program.h"
#include "operators/cep/pattern.h"

namespace sluice::cep {

/// Immutable; shared by every subtask of a CEP operator (and by the
/// operator factory in the job graph).
template <class E>
struct CompiledPattern {
  std::shared_ptr<const Program> program;
  std::vector<typename Pattern<E>::Predicate> predicates;

  /// Throws std::invalid_argument if the pattern is not supported.
  static std::shared_ptr<const CompiledPattern> compile(const Pattern<E>& p) {
    auto c = std::make_shared<CompiledPattern>();
    c->program = compile_program(p.spec());
    c->predicates = p.predicates();
    return c;
  }
};

/// Three-valued result of a condition before the partial match is known.
enum class Tri : uint8_t { kFalse, kTrue, kUnknown };

/// The conditions of one pattern evaluated on one event: simple
/// predicates once per event (memoised), iterative ones per partial match.
/// Reused across events (set_event); task thread only.
template <class E>
class ConditionEvaluator {
 public:
  explicit ConditionEvaluator(const CompiledPattern<E>& p)
      : p_(p), memo_(p.program->conds.size(), 0), gen_(p.program->conds.size(), 0) {}

  void set_event(const E& e, int64_t ts) {
    event_ = &e;
    ts_ = ts;
    if (++generation_ == 0) {  // wrapped: forget every memo
      std::fill(gen_.begin(), gen_.end(), 0);
      generation_ = 1;
    }
  }
  const E& event() const { return *event_; }
  int64_t timestamp() const { return ts_; }

  /// The value known without the partial match; -1 (no condition) is true.
  Tri tri(int32_t n) {
    if (n < 0) return Tri::kTrue;
    if (gen_[n] == generation_) return static_cast<Tri>(memo_[n]);
    const CondNode& c = p_.program->conds[n];
    Tri t = Tri::kUnknown;
    switch (c.op) {
      case CondNode::Op::kLeaf: {
        const auto& pr = p_.predicates[c.leaf];
        t = pr.simple ? (pr.simple(*event_) ? Tri::kTrue : Tri::kFalse) : Tri::kUnknown;
        break;
      }
      case CondNode::Op::kAnd: {
        Tri a = tri(c.a);
        if (a == Tri::kFalse) { t = Tri::kFalse; break; }
        Tri b = tri(c.b);
        t = b == Tri::kFalse ? Tri::kFalse : (a == Tri::kTrue && b == Tri::kTrue) ? Tri::kTrue : Tri::kUnknown;
        break;
      }
      case CondNode::Op::kOr: {
        Tri a = tri(c.a);
        if (a == Tri::kTrue) { t = Tri::kTrue; break; }
        Tri b = tri(c.b);
        t = b == Tri::kTrue ? Tri::kTrue : (a == Tri::kFalse && b == Tri::kFalse) ? Tri::kFalse : Tri::kUnknown;
        break;
      }
    }
    gen_[n] = generation_;
    memo_[n] = static_cast<uint8_t>(t);
    return t;
  }

  /// The value for the partial match `ctx` (iterative leaves called).
  bool eval(int32_t n, const MatchContext<E>& ctx) {
    Tri t = tri(n);
    if (t != Tri::kUnknown) return t == Tri::kTrue;
    const CondNode& c = p_.program->conds[n];
    switch (c.op) {
      case CondNode::Op::kLeaf: return p_.predicates[c.leaf].iterative(*event_, ctx);
      case CondNode::Op::kAnd: return eval(c.a, ctx) && eval(c.b, ctx);
      case CondNode::Op::kOr: return eval(c.a, ctx) || eval(c.b, ctx);
    }
    return false;
  }

  /// No condition of the pattern can be true for the event (and the
  /// pattern has no next()/not_next()): the event changes nothing.
  bool inert() {
    if (!p_.program->inert_events_skippable) return false;
    for (int32_t n : p_.program->used_conds)
      if (tri(n) != Tri::kFalse) return false;
    return true;
  }

 private:
  const CompiledPattern<E>& p_;
  std::vector<uint8_t> memo_;
  std::vector<uint32_t> gen_;
  uint32_t generation_ = 0;
  const E* event_ = nullptr;
  int64_t ts_ = 0;
};

}  // namespace sluice::cep
