#include "operators/cep/nfa_program.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

namespace sluice::cep {

std::string AfterMatchSkipStrategy::describe() const {
  switch (kind) {
    case Kind::kNoSkip: return "no_skip";
    case Kind::kSkipToNext: return "skip_to_next";
    case Kind::kSkipPastLastEvent: return "skip_past_last_event";
    case Kind::kSkipToFirst: return "skip_to_first(" + step + ")";
    case Kind::kSkipToLast: return "skip_to_last(" + step + ")";
  }
  return "?";
}

int32_t Program::step_index(std::string_view name) const {
  for (size_t i = 0; i < steps.size(); ++i)
    if (steps[i].name == name) return static_cast<int32_t>(i);
  return -1;
}

namespace {

constexpr size_t kMaxOccurrences = 4096;
constexpr size_t kMaxCandidates = 32;

[[noreturn]] void refuse(const std::string& what) {
  throw std::invalid_argument("CEP pattern: " + what);
}

bool is_negation(const ElementSpec& e) {
  return e.kind == ElementSpec::Kind::kNotNext || e.kind == ElementSpec::Kind::kNotFollowedBy;
}

// --- checks that need the whole spec ---------------------------------------

void check_names(const std::vector<ElementSpec>& es, std::set<std::string>& seen) {
  for (const auto& e : es) {
    if (e.kind == ElementSpec::Kind::kGroup) {
      check_names(e.body, seen);
      continue;
    }
    if (e.name.empty()) refuse("every step needs a name");
    if (!seen.insert(e.name).second) refuse("the name '" + e.name + "' is used twice; names must be unique");
  }
}

void check_elements(const std::vector<ElementSpec>& es, bool top, int64_t within_ms) {
  for (size_t i = 0; i < es.size(); ++i) {
    const ElementSpec& e = es[i];
    const bool first = i == 0, last = i + 1 == es.size();
    const std::string what = e.kind == ElementSpec::Kind::kGroup ? "a group" : "'" + e.name + "'";
    if (is_negation(e)) {
      if (first) refuse(top ? "a pattern cannot begin with a negation (" + what + ")"
                            : "a group cannot begin with a negation (" + what + ")");
      if (last && !top) refuse("a group cannot end with a negation (" + what + ")");
      if (last && e.kind == ElementSpec::Kind::kNotNext) {
        refuse("a pattern cannot end with not_next " + what +
               "; use not_followed_by with a within() to say 'no such event in time'");
      }
      if (last && within_ms == 0 && e.within_ms == 0) {
        refuse("not_followed_by " + what +
               " ends the pattern, so it needs a within(): the match is emitted when that time "
               "runs out without such an event");
      }
      if (!last && e.within_ms > 0) {
        refuse("within(kPreviousAndCurrent) on the negation " + what +
               " means something only when it ends the pattern");
      }
      continue;
    }
    const bool variable = e.optional || e.hi > e.lo;
    if (e.greedy && !variable) {
      refuse("greedy() on " + what + " has no effect: it matches a fixed number of events");
    }
    if (e.until >= 0 && e.hi <= 1) refuse("until() needs a looping step (" + what + " takes one event)");
    if (e.inner_set && e.hi <= 1) {
      refuse("consecutive()/allow_combinations() need a quantified element (" + what +
             " takes one event)");
    }
    if (e.within_ms > 0 && first && top) {
      refuse("within(kPreviousAndCurrent) on the first step " + what + ": there is no previous event");
    }
    if (e.kind == ElementSpec::Kind::kGroup) {
      if (e.body.empty()) refuse("an empty group");
      if (e.within_ms > 0) refuse("within(kPreviousAndCurrent) applies to a step, not a group");
      const ElementSpec& head = e.body.front();
      if (head.optional) {
        refuse("a group cannot begin with an optional element ('" + head.name +
               "'): make the group optional instead");
      }
      check_elements(e.body, false, within_ms);
    }
  }
}

// --- compilation -------------------------------------------------------------

// A tiny program of epsilon instructions and takes, walked at compile time
// to find each state's candidates.
struct Inst {
  enum class Op : uint8_t { kTake, kSplit, kJmp, kSet, kNeg, kBypass, kUntil, kEnd };
  Op op = Op::kEnd;
  int32_t x = -1, y = -1;  // kTake: occurrence; kSplit: both targets; kJmp: x
  Contiguity c = Contiguity::kRelaxed;
  int32_t cond = -1;  // kNeg, kUntil
  bool not_next = false;
  int32_t step = -1;  // kBypass
  int64_t within_ms = 0;
};

class Compiler {
 public:
  explicit Compiler(Program& p) : p_(p) {}

  void compile(const std::vector<ElementSpec>& es) {
    elements(es);
    emit({Inst::Op::kEnd});
    // States: the start state, then one per occurrence.
    p_.nodes.resize(1 + p_.occ_step.size());
    for (size_t n = 0; n < p_.nodes.size(); ++n) {
      int32_t pc = n == 0 ? 0 : take_pc_[n - 1] + 1;
      Path path;
      std::set<int32_t> visiting;
      walk(pc, path, p_.nodes[n], visiting, n);
      finish_node(p_.nodes[n], n);
    }
  }

 private:
  struct Path {
    Contiguity c = Contiguity::kRelaxed;
    std::vector<int32_t> not_next, not_followed, bypass;
    int32_t kill_until = -1;
    int64_t neg_within = 0;
  };

  int32_t emit(Inst i) {
    code_.push_back(i);
    return static_cast<int32_t>(code_.size() - 1);
  }
  int32_t pc() const { return static_cast<int32_t>(code_.size()); }

  // One step per element of the spec, however often a group repeats it.
  int32_t add_step(const ElementSpec& e) {
    auto known = step_of_.find(&e);
    if (known != step_of_.end()) return known->second;
    CompiledStep s;
    s.name = e.name;
    s.cond = e.cond;
    s.until = e.until;
    s.greedy = e.greedy;
    s.negation = is_negation(e);
    s.within_ms = e.within_ms;
    p_.steps.push_back(std::move(s));
    step_of_.emplace(&e, static_cast<int32_t>(p_.steps.size() - 1));
    return static_cast<int32_t>(p_.steps.size() - 1);
  }
  int32_t take(int32_t step) {
    if (p_.occ_step.size() >= kMaxOccurrences) {
      refuse("the pattern expands to more than " + std::to_string(kMaxOccurrences) +
             " states; use fewer or smaller times() (one_or_more/times_or_more loop instead)");
    }
    p_.occ_step.push_back(step);
    int32_t occ = static_cast<int32_t>(p_.occ_step.size() - 1);
    int32_t at = emit({Inst::Op::kTake, occ});
    take_pc_.push_back(at);
    return at;
  }

  void elements(const std::vector<ElementSpec>& es) {
    for (size_t i = 0; i < es.size(); ++i) {
      const ElementSpec& e = es[i];
      if (is_negation(e)) {
        add_step(e);
        Inst n{Inst::Op::kNeg};
        n.cond = e.cond;
        n.not_next = e.kind == ElementSpec::Kind::kNotNext;
        n.within_ms = e.within_ms;
        emit(n);
      } else {
        quantified(e, i == 0);
      }
    }
  }

  // One step or group with its quantifier: copies 1..n (n = hi, or lo for
  // loops, whose last copy repeats); optional copies and the loop have an
  // exit branch; a greedy step marks its exits as bypassing it.
  void quantified(const ElementSpec& e, bool first) {
    const bool group = e.kind == ElementSpec::Kind::kGroup;
    const int32_t step = group ? -1 : add_step(e);
    const bool looping = e.hi == kUnbounded;
    const int32_t copies = looping ? e.lo : e.hi;
    std::vector<int32_t> exits;  // split instructions whose y leaves the element
    if (e.optional) exits.push_back(emit({Inst::Op::kSplit, pc() + 1, -1}));
    if (!first) emit({Inst::Op::kSet, -1, -1, e.contiguity});
    int32_t last_start = body(e, step);
    for (int32_t k = 2; k <= copies; ++k) {
      if (k > e.lo) exits.push_back(emit({Inst::Op::kSplit, pc() + 1, -1}));
      emit({Inst::Op::kSet, -1, -1, e.inner});
      if (e.until >= 0) emit({Inst::Op::kUntil, -1, -1, {}, e.until});
      last_start = body(e, step);
    }
    if (looping) {
      exits.push_back(emit({Inst::Op::kSplit, pc() + 1, -1}));
      emit({Inst::Op::kSet, -1, -1, e.inner});
      if (e.until >= 0) emit({Inst::Op::kUntil, -1, -1, {}, e.until});
      emit({Inst::Op::kJmp, last_start});
    }
    if (exits.empty()) return;
    int32_t over = emit({Inst::Op::kJmp, -1});  // the last copy falls through past the exits
    int32_t exit_at = pc();
    if (e.greedy) emit({Inst::Op::kBypass, -1, -1, {}, -1, false, step});
    for (int32_t s : exits) code_[s].y = exit_at;
    code_[over].x = pc();
  }
  // One copy: the take of a step, or the body of a group. Returns where it
  // starts (for the loop back).
  int32_t body(const ElementSpec& e, int32_t step) {
    if (e.kind != ElementSpec::Kind::kGroup) return take(step);
    int32_t start = pc();
    elements(e.body);
    return start;
  }

  void walk(int32_t at, Path path, NfaNode& node, std::set<int32_t>& visiting, size_t n) {
    if (!visiting.insert(at).second) refuse("the pattern has a loop that takes no event");
    const Inst& i = code_.at(at);
    switch (i.op) {
      case Inst::Op::kTake: add(node, i.x, std::move(path), n); break;
      case Inst::Op::kEnd:
        if (path.not_next.empty() && path.not_followed.empty()) node.accepting = true;
        else add(node, Candidate::kPendingEnd, std::move(path), n);
        break;
      case Inst::Op::kSplit:
        walk(i.x, path, node, visiting, n);
        walk(i.y, std::move(path), node, visiting, n);
        break;
      case Inst::Op::kJmp: walk(i.x, std::move(path), node, visiting, n); break;
      case Inst::Op::kSet:
        path.c = i.c;
        walk(at + 1, std::move(path), node, visiting, n);
        break;
      case Inst::Op::kNeg:
        (i.not_next ? path.not_next : path.not_followed).push_back(i.cond);
        if (i.within_ms > 0) path.neg_within = i.within_ms;
        walk(at + 1, std::move(path), node, visiting, n);
        break;
      case Inst::Op::kBypass:
        path.bypass.push_back(i.step);
        walk(at + 1, std::move(path), node, visiting, n);
        break;
      case Inst::Op::kUntil:
        path.kill_until = i.cond;
        walk(at + 1, std::move(path), node, visiting, n);
        break;
    }
    visiting.erase(at);
  }

  void add(NfaNode& node, int32_t target, Path path, size_t n) {
    for (const auto& c : node.candidates) {
      if (c.target == target) refuse("ambiguous pattern: two ways lead to the same step");
    }
    if (node.candidates.size() >= kMaxCandidates) {
      refuse("a state waits for more than " + std::to_string(kMaxCandidates) +
             " steps at once; split optional elements into separate patterns");
    }
    Candidate c;
    c.target = target;
    c.contiguity = path.c;
    c.kill_until = path.kill_until;
    c.not_next = std::move(path.not_next);
    c.not_followed = std::move(path.not_followed);
    c.within_ms = target == Candidate::kPendingEnd ? path.neg_within : p_.steps[p_.occ_step[target]].within_ms;
    // Blockers: earlier candidates of the greedy steps this path leaves.
    for (int32_t s : path.bypass) {
      for (size_t j = 0; j < node.candidates.size(); ++j) {
        int32_t t = node.candidates[j].target;
        if (t >= 0 && p_.occ_step[t] == s) c.blockers |= 1u << j;
      }
    }
    node.candidates.push_back(std::move(c));
  }

  void finish_node(NfaNode& node, size_t n) {
    if (n == 0) {
      if (node.accepting) refuse("every element is optional: a match could be empty");
      for (const auto& c : node.candidates) {
        if (c.target == Candidate::kPendingEnd || !c.not_next.empty() || !c.not_followed.empty()) {
          refuse("a negation can be reached before the first event of a match (an optional "
                 "element precedes it at the start); make the first element mandatory");
        }
      }
    }
    for (size_t j = 0; j < node.candidates.size(); ++j) {
      const Candidate& c = node.candidates[j];
      const uint32_t bit = 1u << j;
      node.all |= bit;
      if (c.target == Candidate::kPendingEnd) node.pending = static_cast<int32_t>(j);
      if (c.target >= 0 && c.contiguity == Contiguity::kStrict) node.strict |= bit;
      if (!c.not_next.empty()) node.with_not_next |= bit;
      if (c.within_ms > 0 || c.target == Candidate::kPendingEnd) p_.has_step_limits = true;
      std::vector<int32_t> rel;
      if (c.target >= 0) rel.push_back(p_.steps[p_.occ_step[c.target]].cond);  // -1: every event
      if (c.kill_until >= 0) rel.push_back(c.kill_until);
      for (int32_t x : c.not_followed) rel.push_back(x);
      // not_next matters only to a partial match that has seen no event since
      // its last one; those are always looked at (see Nfa).
      node.relevant.push_back(std::move(rel));
      for (int32_t x : c.not_next) negations_.push_back(x);
    }
  }

  Program& p_;
 public:
  std::vector<int32_t> negations_;  // not_next conditions (not in `relevant`)

 private:
  std::vector<Inst> code_;
  std::vector<int32_t> take_pc_;  // occurrence -> its kTake instruction
  std::map<const ElementSpec*, int32_t> step_of_;
};

}  // namespace

std::shared_ptr<const Program> compile_program(const PatternSpec& spec) {
  if (spec.elements.empty()) refuse("a pattern needs at least one step");
  std::set<std::string> names;
  check_names(spec.elements, names);
  check_elements(spec.elements, true, spec.within_ms);
  auto p = std::make_shared<Program>();
  p->conds = spec.conds;
  p->within_ms = spec.within_ms;
  Compiler compiler(*p);
  compiler.compile(spec.elements);
  p->skip = spec.skip.kind;
  if (spec.skip.kind == AfterMatchSkipStrategy::Kind::kSkipToFirst ||
      spec.skip.kind == AfterMatchSkipStrategy::Kind::kSkipToLast) {
    p->skip_step = p->step_index(spec.skip.step);
    if (p->skip_step < 0 || p->steps[p->skip_step].negation) {
      refuse("the skip strategy " + spec.skip.describe() + " names no step of the pattern");
    }
  }
  std::set<int32_t> used;
  bool strict = false;
  for (size_t n = 0; n < p->nodes.size(); ++n) {
    const NfaNode& node = p->nodes[n];
    if (n > 0 && (node.strict || node.with_not_next)) strict = true;
    for (const auto& rel : node.relevant) used.insert(rel.begin(), rel.end());
  }
  for (const auto& s : p->steps)
    if (s.until >= 0) used.insert(s.until);
  used.insert(compiler.negations_.begin(), compiler.negations_.end());
  p->used_conds.assign(used.begin(), used.end());
  p->inert_events_skippable = !strict && !used.count(-1);
  for (int32_t c : used) p->has_iterative = p->has_iterative || (c >= 0 && p->conds[c].iterative);
  std::erase(p->used_conds, -1);
  return p;
}

std::string Program::describe() const {
  std::ostringstream o;
  auto cname = [](Contiguity c) {
    return c == Contiguity::kStrict ? "next" : c == Contiguity::kRelaxed ? "followed_by" : "followed_by_any";
  };
  for (size_t n = 0; n < nodes.size(); ++n) {
    o << (n == 0 ? std::string("start") : "after " + steps[step_of_node(static_cast<int32_t>(n))].name +
                                              "#" + std::to_string(n - 1));
    if (nodes[n].accepting) o << " [accepting]";
    o << ":";
    for (const auto& c : nodes[n].candidates) {
      o << " " << (c.target < 0 ? std::string("<end>") : steps[occ_step[c.target]].name + "#" + std::to_string(c.target))
        << "(" << cname(c.contiguity) << ")";
    }
    o << "\n";
  }
  return o.str();
}

}  // namespace sluice::cep
