// The CEP pattern API: a fluent, typed description of a sequence of
// events, in the shape of Flink CEP's Pattern.
//
//   auto fraud = cep::Pattern<Event>::begin("fail", AfterMatchSkipStrategy::skip_past_last_event())
//                    .where([](const Event& e) { return e.kind == "login" && !e.ok; })
//                    .times(5)
//                    .followed_by("buy")
//                    .where([](const Event& e) { return e.kind == "purchase" && e.amount >= 1000; })
//                    .within(std::chrono::minutes(10));
//
// Every call returns a new Pattern (value semantics; patterns are small).
// Conditions, quantifiers and within() apply to the last element added.
// Misuse that the builder can see (a quantifier on a negation, times()
// twice, ...) throws std::invalid_argument at once; the rest is checked
// when the pattern is compiled (CEP::pattern, compile_pattern).
#pragma once

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/common/time.h"
#include "operators/cep/condition.h"
#include "operators/cep/pattern_spec.h"

namespace sluice::cep {

/// A pattern over events of type E. Value type; copies share nothing
/// mutable (predicates are immutable std::function objects).
template <class E>
class Pattern {
 public:
  using SimpleFn = std::function<bool(const E&)>;
  using IterativeFn = std::function<bool(const E&, const MatchContext<E>&)>;
  /// One user predicate: exactly one of the two is set.
  struct Predicate {
    SimpleFn simple;
    IterativeFn iterative;
  };

  /// The first step of a pattern.
  static Pattern begin(std::string name, AfterMatchSkipStrategy skip = {}) {
    Pattern p;
    p.spec_.skip = std::move(skip);
    p.push(ElementSpec::Kind::kStep, std::move(name), Contiguity::kRelaxed);
    return p;
  }
  /// A pattern that starts with a group (a pattern used as one step).
  static Pattern begin(const Pattern& group, AfterMatchSkipStrategy skip = {}) {
    Pattern p;
    p.spec_.skip = std::move(skip);
    p.push_group(group, Contiguity::kRelaxed);
    return p;
  }

  /// A step whose first event must come right after the previous match.
  Pattern next(std::string name) const { return step(std::move(name), Contiguity::kStrict); }
  /// A step whose first event is the first later event that matches it.
  Pattern followed_by(std::string name) const {
    return step(std::move(name), Contiguity::kRelaxed);
  }
  /// A step whose first event is any later event that matches it (one
  /// match per choice).
  Pattern followed_by_any(std::string name) const {
    return step(std::move(name), Contiguity::kNonDeterministic);
  }
  /// The event right after the previous matched one must not match.
  Pattern not_next(std::string name) const {
    return negation(ElementSpec::Kind::kNotNext, std::move(name));
  }
  /// No event between the previous matched one and the next must match.
  /// As the last element it needs a within(): the match is emitted when
  /// the time runs out without such an event.
  Pattern not_followed_by(std::string name) const {
    return negation(ElementSpec::Kind::kNotFollowedBy, std::move(name));
  }
  /// Groups: `group` is matched as one step (its quantifier repeats it).
  Pattern next(const Pattern& group) const { return with_group(group, Contiguity::kStrict); }
  Pattern followed_by(const Pattern& group) const {
    return with_group(group, Contiguity::kRelaxed);
  }
  Pattern followed_by_any(const Pattern& group) const {
    return with_group(group, Contiguity::kNonDeterministic);
  }

  /// ANDs a condition onto the last step: bool(const E&) or
  /// bool(const E&, const MatchContext<E>&).
  template <class F>
  Pattern where(F f) const {
    return with_condition(std::move(f), CondNode::Op::kAnd, "where");
  }
  /// ORs a condition onto the last step.
  template <class F>
  Pattern or_where(F f) const {
    return with_condition(std::move(f), CondNode::Op::kOr, "or_where");
  }
  /// Stop condition of a looping step: once an event matches it, the
  /// step takes no more events (and never that one).
  template <class F>
  Pattern until(F f) const {
    Pattern p = *this;
    ElementSpec& e = p.last_quantifiable("until");
    if (e.kind != ElementSpec::Kind::kStep) throw std::invalid_argument("until() applies to a step, not a group");
    int32_t leaf = p.add_predicate(std::move(f));
    e.until = e.until < 0 ? leaf : p.combine(e.until, leaf, CondNode::Op::kOr);
    return p;
  }

  /// Exactly n events (steps) or repetitions (groups).
  Pattern times(int n) const { return quantify(n, n, "times"); }
  /// Between lo and hi.
  Pattern times(int lo, int hi) const { return quantify(lo, hi, "times"); }
  Pattern one_or_more() const { return quantify(1, kUnbounded, "one_or_more"); }
  Pattern times_or_more(int n) const { return quantify(n, kUnbounded, "times_or_more"); }
  /// The element may be skipped altogether.
  Pattern optional() const {
    Pattern p = *this;
    ElementSpec& e = p.last_quantifiable("optional");
    e.optional = true;
    return p;
  }
  /// A quantified step takes every event it can before the pattern moves on.
  Pattern greedy() const {
    Pattern p = *this;
    ElementSpec& e = p.last_quantifiable("greedy");
    if (e.kind != ElementSpec::Kind::kStep) throw std::invalid_argument("greedy() applies to a step, not a group");
    e.greedy = true;
    return p;
  }
  /// The events of a quantified element follow each other strictly.
  Pattern consecutive() const { return inner(Contiguity::kStrict, "consecutive"); }
  /// Any later matching event may be the next repetition (all combinations).
  Pattern allow_combinations() const {
    return inner(Contiguity::kNonDeterministic, "allow_combinations");
  }

  /// kFirstAndLast: the whole match spans less than d (the smallest of all
  /// within() calls counts). kPreviousAndCurrent: each event of the last
  /// element comes less than d after the event matched before it.
  Pattern within(Duration d, WithinType type = WithinType::kFirstAndLast) const {
    if (d.count() <= 0) throw std::invalid_argument("within() needs a positive duration");
    Pattern p = *this;
    if (type == WithinType::kFirstAndLast) {
      p.spec_.within_ms = p.spec_.within_ms == 0 ? d.count() : std::min(p.spec_.within_ms, d.count());
    } else {
      p.spec_.elements.back().within_ms = d.count();
    }
    return p;
  }

  const PatternSpec& spec() const { return spec_; }
  const std::vector<Predicate>& predicates() const { return *predicates_; }

 private:
  Pattern() : predicates_(std::make_shared<std::vector<Predicate>>()) {}

  Pattern step(std::string name, Contiguity c) const {
    Pattern p = *this;
    p.push(ElementSpec::Kind::kStep, std::move(name), c);
    return p;
  }
  Pattern negation(ElementSpec::Kind kind, std::string name) const {
    Pattern p = *this;
    p.push(kind, std::move(name), Contiguity::kRelaxed);
    return p;
  }
  Pattern with_group(const Pattern& group, Contiguity c) const {
    Pattern p = *this;
    p.push_group(group, c);
    return p;
  }
  void push(ElementSpec::Kind kind, std::string name, Contiguity c) {
    ElementSpec e;
    e.kind = kind;
    e.name = std::move(name);
    e.contiguity = c;
    spec_.elements.push_back(std::move(e));
  }
  // Copies the group's elements and conditions into this pattern,
  // renumbering its condition nodes and predicates.
  void push_group(const Pattern& group, Contiguity c) {
    own_predicates();
    const int32_t node_off = static_cast<int32_t>(spec_.conds.size());
    const int32_t leaf_off = static_cast<int32_t>(predicates_->size());
    for (CondNode n : group.spec_.conds) {
      if (n.op == CondNode::Op::kLeaf) n.leaf += leaf_off;
      else n.a += node_off, n.b += node_off;
      spec_.conds.push_back(n);
    }
    predicates_->insert(predicates_->end(), group.predicates_->begin(), group.predicates_->end());
    ElementSpec g;
    g.kind = ElementSpec::Kind::kGroup;
    g.contiguity = c;
    g.body = group.spec_.elements;
    renumber(g.body, node_off);
    if (group.spec_.within_ms > 0) {
      spec_.within_ms = spec_.within_ms == 0 ? group.spec_.within_ms
                                             : std::min(spec_.within_ms, group.spec_.within_ms);
    }
    spec_.elements.push_back(std::move(g));
  }
  static void renumber(std::vector<ElementSpec>& es, int32_t off) {
    for (auto& e : es) {
      if (e.cond >= 0) e.cond += off;
      if (e.until >= 0) e.until += off;
      renumber(e.body, off);
    }
  }

  template <class F>
  Pattern with_condition(F f, CondNode::Op op, const char* what) const {
    Pattern p = *this;
    ElementSpec& e = p.spec_.elements.back();
    if (e.kind == ElementSpec::Kind::kGroup) {
      throw std::invalid_argument(std::string(what) +
                                  "() applies to a step; put the condition on a step inside the group");
    }
    int32_t leaf = p.add_predicate(std::move(f));
    e.cond = e.cond < 0 ? leaf : p.combine(e.cond, leaf, op);
    return p;
  }
  template <class F>
  int32_t add_predicate(F f) {
    own_predicates();
    Predicate pr;
    if constexpr (std::is_invocable_r_v<bool, F&, const E&>) {
      pr.simple = SimpleFn(std::move(f));
    } else if constexpr (std::is_invocable_r_v<bool, F&, const E&, const MatchContext<E>&>) {
      pr.iterative = IterativeFn(std::move(f));
    } else {
      static_assert(std::is_invocable_r_v<bool, F&, const E&>,
                    "a condition is bool(const E&) or bool(const E&, const MatchContext<E>&)");
    }
    CondNode n;
    n.op = CondNode::Op::kLeaf;
    n.leaf = static_cast<int32_t>(predicates_->size());
    n.iterative = static_cast<bool>(pr.iterative);
    predicates_->push_back(std::move(pr));
    spec_.conds.push_back(n);
    return static_cast<int32_t>(spec_.conds.size() - 1);
  }
  int32_t combine(int32_t a, int32_t b, CondNode::Op op) {
    CondNode n;
    n.op = op;
    n.a = a;
    n.b = b;
    n.iterative = spec_.conds[a].iterative || spec_.conds[b].iterative;
    spec_.conds.push_back(n);
    return static_cast<int32_t>(spec_.conds.size() - 1);
  }
  // Predicates are shared between copies until one of them adds some.
  void own_predicates() {
    if (predicates_.use_count() > 1) predicates_ = std::make_shared<std::vector<Predicate>>(*predicates_);
  }

  ElementSpec& last_quantifiable(const char* what) {
    ElementSpec& e = spec_.elements.back();
    if (e.kind == ElementSpec::Kind::kNotNext || e.kind == ElementSpec::Kind::kNotFollowedBy) {
      throw std::invalid_argument(std::string(what) + "() cannot apply to the negation '" + e.name + "'");
    }
    return e;
  }
  Pattern quantify(int lo, int hi, const char* what) const {
    Pattern p = *this;
    ElementSpec& e = p.last_quantifiable(what);
    if (e.quantified) throw std::invalid_argument(std::string(what) + "(): the element already has a quantifier");
    if (lo < 0 || hi < 1 || lo > hi) {
      throw std::invalid_argument(std::string(what) + "(): needs 0 <= lo <= hi and hi >= 1");
    }
    if (lo == 0) {  // times(0, n) is an optional times(1, n)
      e.optional = true;
      lo = 1;
    }
    e.quantified = true;
    e.lo = lo;
    e.hi = hi;
    return p;
  }
  Pattern inner(Contiguity c, const char* what) const {
    Pattern p = *this;
    ElementSpec& e = p.last_quantifiable(what);
    e.inner = c;
    e.inner_set = true;
    return p;
  }

  PatternSpec spec_;
  // shared: copies of a pattern share their (immutable) predicates until one
  // of them adds more (own_predicates copies first).
  std::shared_ptr<std::vector<Predicate>> predicates_;
};

}  // namespace sluice::cep
