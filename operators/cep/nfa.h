// The NFA engine: runs one key's partial matches over its events and its
// time, on the state behind an NfaStore. See README.md for the semantics
// and shared_buffer.h for what is stored.
//
// Per event:
//  1. deadlines up to the event's time pass first (advance_time);
//  2. decide (reads only, so a user condition that throws leaves the state
//     as it was): simple conditions are evaluated once for the event; a
//     group of partial matches (same state, same alive candidates, same
//     freshness) whose candidates' conditions are all false for the event
//     is skipped as a whole; the members of the other groups are decided
//     one by one (iterative conditions are evaluated here, per match);
//  3. apply: new partial matches (the event stored once, entries shared),
//     abandoned ones released, matches emitted (no_skip) or held back and
//     released in order of their first event (other skip strategies),
//     which prunes partial matches by start; then the per-key caps.
// Deadlines (within, kPreviousAndCurrent limits, pending ends of trailing
// negations) sit in an ordered index; advance_time(t) takes the due ones in
// order, each distinct deadline as one step, and times partial matches out
// or completes the pending ones.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/common/status.h"
#include "operators/cep/compiled_pattern.h"
#include "operators/cep/match.h"
#include "operators/cep/shared_buffer.h"

namespace sluice::cep {

/// Where an Nfa's results go; implemented by the CEP operator (and tests).
/// Callbacks run on the NFA's thread and must not throw.
template <class E>
class NfaHost {
 public:
  virtual ~NfaHost() = default;
  virtual void match(Match<E>&& m, int64_t ts) = 0;
  virtual void timed_out(Match<E>&& m, int64_t ts) = 0;
  /// False: nobody reads timed-out partial matches (no timed-out side
  /// output, no process_timed_out_match), so the NFA counts and releases
  /// them without reading their events back (timed_out is not called).
  virtual bool wants_timed_out() const { return true; }
  /// A partial match dropped to stay under the per-key limits.
  virtual void discarded(Match<E>&& m, const std::string& reason) = 0;
  /// The earliest deadline of the current key moved from `old_deadline` to
  /// `new_deadline` (kNoTime: none): call advance_time once time reaches it.
  virtual void reschedule(int64_t old_deadline, int64_t new_deadline) = 0;
};

/// Per-key bounds on what the NFA keeps. Defaults in CepOptions.
struct NfaLimits {
  /// Partial matches plus matches held back for ordering.
  int64_t max_partial_matches = 10'000;
  /// Events in the shared buffer.
  int64_t max_events = 100'000;
  /// kDropOldest: the partial match with the earliest first event goes to
  /// NfaHost::discarded; kFail: advance_time/process return an error.
  enum class Policy : uint8_t { kDropOldest, kFail } policy = Policy::kDropOldest;
};

/// What changed, for metrics: gauges as deltas, counters as totals.
struct NfaCounts {
  int64_t partial_matches = 0, held = 0, events = 0;
  uint64_t matches = 0, timeouts = 0, discarded = 0;
};

/// The engine of one operator subtask. It works on the key the store has
/// selected; the caller selects the key before each call. Not thread-safe.
template <class E>
class Nfa {
 public:
  Nfa(std::shared_ptr<const CompiledPattern<E>> pattern, NfaStore<E>& store, NfaHost<E>& host,
      NfaLimits limits)
      : pat_(std::move(pattern)), prog_(*pat_->program), store_(store), host_(host), limits_(limits),
        cond_(*pat_), by_start_(prog_.within_ms > 0 && !prog_.has_step_limits),
        report_timeouts_(host_.wants_timed_out()) {}

  /// True if `e` cannot change any partial match and cannot start one
  /// (only for patterns without next()/not_next()).
  bool is_inert(const E& e, int64_t ts) {
    cond_.set_event(e, ts);
    return cond_.inert();
  }

  /// Passes every deadline <= t of the current key.
  Status advance_time(int64_t t) {
    begin();
    if (meta_.timer > t) return Status::ok();  // nothing due (the timer is the first deadline)
    Status st = run_deadlines(t);
    return finish(st);
  }

  /// Passes the deadlines up to `ts`, then processes the event. A user
  /// condition that throws leaves the key's partial matches as they were
  /// before the event (the exception propagates).
  Status process(const E& e, int64_t ts) {
    begin();
    cond_.set_event(e, ts);
    if (meta_.timer <= ts) {  // deadlines first
      if (prog_.has_iterative) {
        // Conditions may throw per partial match: the deadlines are their own
        // transaction, so a rejected event leaves them passed and nothing else.
        SLUICE_RETURN_IF_ERROR(finish(run_deadlines(ts)));
        begin();
      } else {
        for (int32_t c : prog_.used_conds) cond_.tri(c);  // user code runs before anything is written
        SLUICE_RETURN_IF_ERROR(run_deadlines(ts));
      }
    }
    decide(e, ts);  // may throw: nothing of the event is written before apply
    apply(e, ts);
    return finish(Status::ok());
  }

  const NfaCounts& counts() const { return counts_; }
  const Program& program() const { return prog_; }

 private:
  struct Decision {
    int64_t id;
    PartialMatchState pm;
    uint32_t takes;
    uint32_t alive;
  };
  struct Completion {
    int64_t start_tick;
    int64_t entry;
  };
  using Chain = std::vector<std::pair<int64_t, int32_t>>;  // (tick, step), first to last

  // --- the context iterative conditions see ----------------------------------
  class Ctx final : public MatchContext<E> {
   public:
    Ctx(Nfa& nfa, int64_t entry) : nfa_(nfa), entry_(entry) {}
    EventsView<E> events(std::string_view name) const override {
      if (!loaded_) load();
      int32_t s = nfa_.prog_.step_index(name);
      if (s < 0 || by_step_[s].empty()) return {};
      return EventsView<E>(&by_step_[s]);
    }
    int64_t timestamp() const override { return nfa_.cond_.timestamp(); }

   private:
    void load() const {
      loaded_ = true;
      by_step_.assign(nfa_.prog_.steps.size(), {});
      std::vector<std::pair<int64_t, int32_t>> chain;
      nfa_.chain(entry_, chain);
      for (auto [tick, step] : chain) by_step_[step].push_back(&nfa_.event_ref(tick).event);
    }
    Nfa& nfa_;
    int64_t entry_;
    mutable bool loaded_ = false;
    mutable std::vector<std::vector<const E*>> by_step_;
  };

  // --- transactions ----------------------------------------------------------
  void begin() {
    if (!store_.meta_into(meta_)) meta_ = KeyMeta{};
    before_ = {meta_.partial_matches, meta_.held, meta_.events};
    deadlines_touched_ = false;
    first_known_ = false;
    entries_.clear();
    events_.clear();
  }
  Status finish(Status st) {
    if (st.is_ok()) st = enforce_limits();
    const int64_t next = deadlines_touched_ ? first_deadline() : first_known_ ? first_deadline_ : meta_.timer;
    if (next != meta_.timer) {
      host_.reschedule(meta_.timer, next);
      meta_.timer = next;
    }
    // Entries are immutable but for their counts: a count that came back to
    // what was read (a child replaced its parent's match) is not written.
    for (auto& [id, c] : entries_) {
      if (!c.dirty) continue;
      if (c.removed) store_.remove_entry(id);
      else if (c.value.refs != c.loaded_refs) store_.put_entry(id, c.value);
    }
    for (auto& [tick, c] : events_) {
      if (!c.dirty || (!c.removed && c.value.refs == c.loaded_refs)) continue;
      if (c.removed) store_.remove_event(tick);
      else store_.put_event(tick, c.value);
    }
    if (meta_.empty() && meta_.timer == kNoTime) store_.remove_meta();
    else store_.put_meta(meta_);
    counts_.partial_matches += meta_.partial_matches - before_[0];
    counts_.held += meta_.held - before_[1];
    counts_.events += meta_.events - before_[2];
    return st;
  }

  // --- deciding ----------------------------------------------------------------
  bool affected(int64_t group) {
    const int32_t node = static_cast<int32_t>(group >> 33);
    const uint32_t alive = static_cast<uint32_t>(group >> 1);
    const NfaNode& n = prog_.nodes[node];
    if ((group & 1) && (alive & (n.strict | n.with_not_next))) return true;
    for (size_t i = 0; i < n.candidates.size(); ++i) {
      if (!(alive & (1u << i))) continue;
      for (int32_t c : n.relevant[i])
        if (cond_.tri(c) != Tri::kFalse) return true;
    }
    return false;
  }

  void decide(const E& e, int64_t ts) {
    decisions_.clear();
    std::vector<std::pair<IndexKey, int64_t>>& members = members_;
    for (GroupCount& g : meta_.groups) {
      if (!affected(g.key)) continue;
      members.clear();
      store_.index_scan(NfaIndex::kGroup, {g.key, g.floor, INT64_MIN}, {g.key, INT64_MAX, INT64_MAX}, SIZE_MAX,
                        members);
      if (!members.empty()) g.floor = members.front().first.b;
      for (const auto& [key, v] : members) {
        std::optional<PartialMatchState> pm = store_.partial_match(key.b);
        if (!pm) continue;  // the index outlived it: harmless
        Decision d{key.b, *pm, 0, pm->alive};
        decide_one(d, ts);
        decisions_.push_back(d);
      }
    }
    // Candidates for the first event of a new match.
    start_takes_ = 0;
    const NfaNode& start = prog_.nodes[0];
    Ctx empty(*this, 0);
    for (size_t i = 0; i < start.candidates.size(); ++i) {
      const Candidate& c = start.candidates[i];
      if (c.blockers & start_takes_) continue;
      const CompiledStep& s = prog_.steps[prog_.occ_step[c.target]];
      if (cond_.tri(s.cond) == Tri::kFalse) continue;
      if (cond_.eval(s.cond, empty) && !(s.until >= 0 && cond_.eval(s.until, empty))) {
        start_takes_ |= 1u << i;
      }
    }
  }

  void decide_one(Decision& d, int64_t ts) {
    const NfaNode& node = prog_.nodes[d.pm.node];
    Ctx ctx(*this, d.pm.entry);
    for (size_t i = 0; i < node.candidates.size(); ++i) {
      const uint32_t bit = 1u << i;
      if (!(d.alive & bit)) continue;
      const Candidate& c = node.candidates[i];
      if (limit(d.pm, c) <= ts) {  // out of time: neither takes nor waits
        d.alive &= ~bit;
        continue;
      }
      const bool blocked = (c.blockers & d.takes) != 0;
      bool dies = blocked;
      if (c.target >= 0) {
        const CompiledStep& s = prog_.steps[prog_.occ_step[c.target]];
        const bool cond = cond_.eval(s.cond, ctx);
        if (cond && !blocked && !(s.until >= 0 && cond_.eval(s.until, ctx))) d.takes |= bit;
        if (c.contiguity == Contiguity::kStrict || (c.contiguity == Contiguity::kRelaxed && cond)) {
          dies = true;
        }
      }
      if (!dies && c.kill_until >= 0 && cond_.eval(c.kill_until, ctx)) dies = true;
      if (!dies && d.pm.fresh) {
        for (int32_t n : c.not_next)
          if (cond_.eval(n, ctx)) dies = true;
      }
      if (!dies) {
        for (int32_t n : c.not_followed)
          if (cond_.eval(n, ctx)) dies = true;
      }
      if (dies) d.alive &= ~bit;
    }
  }

  // --- applying ----------------------------------------------------------------
  void apply(const E& e, int64_t ts) {
    const int64_t tick = ++meta_.tick;
    completions_.clear();
    cur_tick_time_ = ts;
    cur_event_ = &e;
    for (Decision& d : decisions_) {
      const NfaNode& node = prog_.nodes[d.pm.node];
      // A partial match that ends here hands its id (and its place in the
      // start index) to its first stored extension: one write, not three.
      Decision* heir = d.alive == 0 ? &d : nullptr;
      for (size_t i = 0; i < node.candidates.size(); ++i) {
        if (d.takes & (1u << i)) {
          if (extend(d.pm.entry, d.pm.start_tick, d.pm.start_ts, node.candidates[i].target, tick, ts, heir)) {
            heir = nullptr;
          }
        }
      }
      if (d.alive == 0) {
        if (heir) remove_pm(d.id, d.pm);
        else release(d.pm.entry);
      } else if (d.alive != d.pm.alive || d.pm.fresh) {  // unchanged partial matches are not written
        PartialMatchState next = d.pm;
        next.alive = d.alive;
        next.fresh = false;
        update_pm(d.id, d.pm, next);
      }
    }
    const NfaNode& start = prog_.nodes[0];
    for (size_t i = 0; i < start.candidates.size(); ++i) {
      if (start_takes_ & (1u << i)) extend(0, tick, ts, start.candidates[i].target, tick, ts);
    }
    cur_event_ = nullptr;
    complete(completions_, ts);
    release_held(ts);  // partial matches that ended may have held matches back
  }

  // A new version of a match: `parent` plus the current event as `occ`.
  // If it is stored as a partial match and `heir` is set, it takes the place
  // of heir's partial match (same id, same start); returns whether it did.
  bool extend(int64_t parent, int64_t start_tick, int64_t start_ts, int32_t occ, int64_t tick, int64_t ts,
              const Decision* heir = nullptr) {
    const int64_t id = meta_.next_id++;
    BufferEntry en{tick, parent, occ, 0};
    if (parent != 0) {
      Cached<BufferEntry>& p = entry_ref(parent);
      p.value.refs++;
      p.dirty = true;
    }
    Cached<StoredEvent<E>>& ev = events_[tick];
    if (ev.value.refs == 0) {
      ev.value.event = *cur_event_;
      ev.value.ts = ts;
      meta_.events++;
    }
    ev.value.refs++;
    ev.dirty = true;
    ev.removed = false;
    const int32_t node_id = Program::node_of(occ);
    const NfaNode& node = prog_.nodes[node_id];
    if (node.accepting) {
      en.refs++;
      completions_.push_back({start_tick, id});
    }
    if (node.all != 0) {
      PartialMatchState pm;
      pm.node = node_id;
      pm.alive = node.all;
      // Freshness matters only to next() and not_next(): a constant group key otherwise.
      pm.fresh = (node.strict | node.with_not_next) != 0;
      pm.complete = node.accepting;
      pm.start_tick = start_tick;
      pm.start_ts = start_ts;
      pm.last_ts = ts;
      pm.entry = id;
      en.refs++;
      if (heir) update_pm(heir->id, heir->pm, pm);
      else insert_pm(meta_.next_id++, pm);
    }
    entries_[id] = Cached<BufferEntry>{en, true, false};
    return heir && node.all != 0;
  }

  // --- deadlines -----------------------------------------------------------------
  static int64_t add_sat(int64_t a, int64_t b) { return a > kNoTime - b ? kNoTime : a + b; }
  int64_t limit(const PartialMatchState& pm, const Candidate& c) const {
    int64_t l = prog_.within_ms > 0 ? add_sat(pm.start_ts, prog_.within_ms) : kNoTime;
    if (c.within_ms > 0) l = std::min(l, add_sat(pm.last_ts, c.within_ms));
    return l;
  }
  // When the partial match next needs attention from time alone: its
  // pending end fires, or its last candidate runs out of time.
  int64_t deadline_of(const PartialMatchState& pm) const {
    const NfaNode& node = prog_.nodes[pm.node];
    int64_t pending = kNoTime, death = INT64_MIN;
    for (size_t i = 0; i < node.candidates.size(); ++i) {
      if (!(pm.alive & (1u << i))) continue;
      int64_t l = limit(pm, node.candidates[i]);
      if (node.candidates[i].target == Candidate::kPendingEnd) pending = l;
      death = std::max(death, l);
    }
    return std::min(pending, death == INT64_MIN ? kNoTime : death);
  }
  // Only within() (no per-step limit, no pending end): every deadline is
  // start + within and starts come in time order, so the start index
  // (whose values are the deadlines) is the deadline index too.
  int64_t first_deadline() {
    if (by_start_) {
      if (!first_start()) return kNoTime;
      return scratch_[0].second;
    }
    scratch_.clear();
    store_.index_scan(NfaIndex::kDeadline, {meta_.deadline_floor, INT64_MIN, INT64_MIN},
                      {INT64_MAX, INT64_MAX, INT64_MAX}, 1, scratch_);
    meta_.deadline_floor = scratch_.empty() ? kNoTime : scratch_[0].first.a;
    return scratch_.empty() ? kNoTime : scratch_[0].first.a;
  }
  // The partial match with the earliest start into scratch_[0], if any.
  bool first_start() {
    scratch_.clear();
    store_.index_scan(NfaIndex::kStart, {meta_.start_floor, INT64_MIN, INT64_MIN}, {INT64_MAX, INT64_MAX, INT64_MAX},
                      1, scratch_);
    meta_.start_floor = scratch_.empty() ? kNoTime : scratch_[0].first.a;
    return !scratch_.empty();
  }
  // The partial matches whose deadline is `at` (the first deadline).
  void due_at(int64_t at, std::vector<std::pair<IndexKey, int64_t>>& due) {
    due.clear();
    if (!by_start_) {
      store_.index_scan(NfaIndex::kDeadline, {at, INT64_MIN, INT64_MIN}, {at, INT64_MAX, INT64_MAX}, SIZE_MAX, due);
      return;
    }
    IndexKey from{meta_.start_floor, INT64_MIN, INT64_MIN};
    for (size_t chunk = 4;; chunk = std::min<size_t>(chunk * 2, 1024)) {  // usually one or two are due
      scratch_.clear();
      store_.index_scan(NfaIndex::kStart, from, {INT64_MAX, INT64_MAX, INT64_MAX}, chunk, scratch_);
      for (const auto& [key, deadline] : scratch_) {
        if (deadline != at) return;
        due.emplace_back(IndexKey{deadline, key.b, 0}, 0);
      }
      if (scratch_.size() < chunk) return;
      from = scratch_.back().first;
      from.c++;
    }
  }

  Status run_deadlines(int64_t t) {
    std::vector<std::pair<IndexKey, int64_t>> due;
    std::vector<Completion> timeouts;
    for (;;) {
      const int64_t at = first_deadline();
      if (at == kNoTime || at > t) {
        first_known_ = true;  // finish() need not look it up again
        first_deadline_ = at;
        deadlines_touched_ = false;
        return Status::ok();
      }
      due_at(at, due);
      ++meta_.tick;
      cur_tick_time_ = at - 1;
      completions_.clear();
      timeouts.clear();
      for (const auto& [key, v] : due) {
        std::optional<PartialMatchState> pm = store_.partial_match(key.b);
        if (!pm) {
          if (!by_start_) store_.index_remove(NfaIndex::kDeadline, key);
          deadlines_touched_ = true;
          continue;
        }
        const NfaNode& node = prog_.nodes[pm->node];
        PartialMatchState next = *pm;
        if (node.pending >= 0 && (next.alive & (1u << node.pending)) &&
            limit(next, node.candidates[node.pending]) <= at) {
          entry_ref(next.entry).value.refs++;
          entry_ref(next.entry).dirty = true;
          completions_.push_back({next.start_tick, next.entry});
          next.complete = true;
        }
        for (size_t i = 0; i < node.candidates.size(); ++i) {
          if ((next.alive & (1u << i)) && limit(next, node.candidates[i]) <= at) next.alive &= ~(1u << i);
        }
        if (next.alive == 0) {
          if (!next.complete && !report_timeouts_) {
            counts_.timeouts++;
          } else if (!next.complete) {
            entry_ref(next.entry).value.refs++;
            entry_ref(next.entry).dirty = true;
            timeouts.push_back({next.start_tick, next.entry});
          }
          remove_pm(key.b, *pm);
        } else {
          update_pm(key.b, *pm, next);
        }
      }
      complete(completions_, at - 1);
      sort(timeouts);
      for (const Completion& c : timeouts) {
        counts_.timeouts++;
        host_.timed_out(materialize(c.entry), at - 1);
        release(c.entry);
      }
      release_held(at - 1);
    }
  }

  // --- matches, skip strategies, hold-back -------------------------------------
  void complete(std::vector<Completion>& done, int64_t ts) {
    if (done.empty()) return;
    sort(done);
    if (prog_.skip == AfterMatchSkipStrategy::Kind::kNoSkip) {
      for (const Completion& c : done) {
        counts_.matches++;
        host_.match(materialize(c.entry), ts);
        release(c.entry);
      }
      return;
    }
    for (const Completion& c : done) {
      meta_.held_floor = std::min(meta_.held_floor, c.start_tick);
      store_.index_put(NfaIndex::kHeld, {c.start_tick, meta_.tick, meta_.next_id++}, c.entry);
      meta_.held++;
    }
    release_held(ts);
  }

  // Emits held matches in order of their first event while no partial
  // match that started earlier is alive; each one prunes by its strategy.
  void release_held(int64_t ts) {
    if (prog_.skip == AfterMatchSkipStrategy::Kind::kNoSkip) return;
    for (;;) {
      scratch_.clear();
      store_.index_scan(NfaIndex::kHeld, {meta_.held_floor, INT64_MIN, INT64_MIN},
                        {INT64_MAX, INT64_MAX, INT64_MAX}, 1, scratch_);
      meta_.held_floor = scratch_.empty() ? kNoTime : scratch_[0].first.a;
      if (scratch_.empty()) return;
      const auto [held, entry] = scratch_[0];
      if (first_start() && scratch_[0].first.a < held.a) return;  // an earlier partial match may still complete
      store_.index_remove(NfaIndex::kHeld, held);
      meta_.held--;
      Chain ch;
      chain(entry, ch);
      counts_.matches++;
      host_.match(materialize(entry), ts);
      release(entry);
      prune(ch);
    }
  }

  void prune(const Chain& m) {
    int64_t hi = INT64_MIN;  // prune starts <= hi (and >= lo)
    int64_t lo = INT64_MIN;
    switch (prog_.skip) {
      case AfterMatchSkipStrategy::Kind::kNoSkip: return;
      case AfterMatchSkipStrategy::Kind::kSkipToNext: lo = hi = m.front().first; break;
      case AfterMatchSkipStrategy::Kind::kSkipPastLastEvent: hi = m.back().first; break;
      case AfterMatchSkipStrategy::Kind::kSkipToFirst:
      case AfterMatchSkipStrategy::Kind::kSkipToLast: {
        int64_t p = INT64_MIN;
        for (auto [tick, step] : m) {
          if (step != prog_.skip_step) continue;
          if (p == INT64_MIN || prog_.skip == AfterMatchSkipStrategy::Kind::kSkipToLast) p = tick;
        }
        if (p == INT64_MIN) return;  // the step took nothing: nothing to skip to
        hi = p - 1;
        break;
      }
    }
    std::vector<std::pair<IndexKey, int64_t>> hit;
    store_.index_scan(NfaIndex::kStart, {std::max(lo, meta_.start_floor), INT64_MIN, INT64_MIN},
                      {hi, INT64_MAX, INT64_MAX}, SIZE_MAX, hit);
    for (const auto& [key, v] : hit) {
      if (auto pm = store_.partial_match(key.b)) remove_pm(key.b, *pm);
    }
    hit.clear();
    store_.index_scan(NfaIndex::kHeld, {std::max(lo, meta_.held_floor), INT64_MIN, INT64_MIN},
                      {hi, INT64_MAX, INT64_MAX}, SIZE_MAX, hit);
    for (const auto& [key, entry] : hit) {
      store_.index_remove(NfaIndex::kHeld, key);
      meta_.held--;
      release(entry);
    }
  }

  Status enforce_limits() {
    while (meta_.partial_matches + meta_.held > limits_.max_partial_matches ||
           meta_.events > limits_.max_events) {
      if (!first_start()) return Status::ok();
      const std::string why = meta_.events > limits_.max_events
                                  ? "the key holds more than " + std::to_string(limits_.max_events) + " events"
                                  : "the key has more than " + std::to_string(limits_.max_partial_matches) +
                                        " partial matches";
      if (limits_.policy == NfaLimits::Policy::kFail) {
        return Status::resource_exhausted("CEP: " + why + " (cep.limit-policy=fail)");
      }
      const int64_t id = scratch_[0].first.b;
      std::optional<PartialMatchState> pm = store_.partial_match(id);
      if (!pm) {
        store_.index_remove(NfaIndex::kStart, scratch_[0].first);
        continue;
      }
      counts_.discarded++;
      host_.discarded(materialize(pm->entry), "CEP: dropped the oldest partial match: " + why);
      remove_pm(id, *pm);
      release_held(cur_tick_time_);
    }
    return Status::ok();
  }

  // Orders completions of one step by (first event, then events and steps).
  void sort(std::vector<Completion>& v) {
    if (v.size() < 2) return;
    std::vector<std::pair<Chain, size_t>> keyed;
    keyed.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      keyed.emplace_back(Chain{}, i);
      chain(v[i].entry, keyed.back().first);
    }
    std::sort(keyed.begin(), keyed.end());
    std::vector<Completion> out;
    out.reserve(v.size());
    for (auto& [ch, i] : keyed) out.push_back(v[i]);
    v = std::move(out);
  }

  // --- partial matches and the shared buffer ---------------------------------
  void insert_pm(int64_t id, PartialMatchState pm) {
    pm.deadline = deadline_of(pm);
    store_.put_partial_match(id, pm);
    store_.index_put(NfaIndex::kGroup, {pm.group(), id, 0}, 0);
    store_.index_put(NfaIndex::kStart, {pm.start_tick, id, 0}, by_start_ ? pm.deadline : 0);
    meta_.start_floor = std::min(meta_.start_floor, pm.start_tick);
    if (by_start_) {
      deadlines_touched_ = deadlines_touched_ || meta_.partial_matches == 0;
    } else if (pm.deadline != kNoTime) {
      store_.index_put(NfaIndex::kDeadline, {pm.deadline, id, 0}, 0);
      meta_.deadline_floor = std::min(meta_.deadline_floor, pm.deadline);
      deadlines_touched_ = true;
    }
    group_add(pm.group(), 1, id);
    meta_.partial_matches++;
  }
  void update_pm(int64_t id, const PartialMatchState& old, PartialMatchState pm) {
    pm.deadline = deadline_of(pm);
    if (pm.group() != old.group()) {
      store_.index_remove(NfaIndex::kGroup, {old.group(), id, 0});
      store_.index_put(NfaIndex::kGroup, {pm.group(), id, 0}, 0);
      group_add(old.group(), -1, id);
      group_add(pm.group(), 1, id);
    }
    if (pm.deadline != old.deadline && !by_start_) {
      deadlines_touched_ = true;
      if (old.deadline != kNoTime) store_.index_remove(NfaIndex::kDeadline, {old.deadline, id, 0});
      if (pm.deadline != kNoTime) {
        store_.index_put(NfaIndex::kDeadline, {pm.deadline, id, 0}, 0);
        meta_.deadline_floor = std::min(meta_.deadline_floor, pm.deadline);
      }
    }
    store_.put_partial_match(id, pm);
  }
  void remove_pm(int64_t id, const PartialMatchState& pm) {
    store_.remove_partial_match(id);
    store_.index_remove(NfaIndex::kGroup, {pm.group(), id, 0});
    store_.index_remove(NfaIndex::kStart, {pm.start_tick, id, 0});
    if (by_start_) {
      deadlines_touched_ = true;
    } else if (pm.deadline != kNoTime) {
      store_.index_remove(NfaIndex::kDeadline, {pm.deadline, id, 0});
      deadlines_touched_ = true;
    }
    group_add(pm.group(), -1, id);
    meta_.partial_matches--;
    release(pm.entry);
  }
  void group_add(int64_t group, int64_t delta, int64_t id) {
    auto& g = meta_.groups;
    auto it = std::find_if(g.begin(), g.end(), [&](const GroupCount& x) { return x.key == group; });
    if (it == g.end()) {
      g.push_back(GroupCount{group, delta, id});
      return;
    }
    it->count += delta;
    if (delta > 0) it->floor = std::min(it->floor, id);
    if (it->count <= 0) g.erase(it);
  }

  template <class T>
  struct Cached {
    T value{};
    bool dirty = false;
    bool removed = false;
    int32_t loaded_refs = -1;  // refs as read from the store (-1: new)
  };
  Cached<BufferEntry>& entry_ref(int64_t id) {
    auto it = entries_.find(id);
    if (it != entries_.end()) return it->second;
    Cached<BufferEntry> c;
    if (auto e = store_.entry(id)) {
      c.value = *e;
      c.loaded_refs = e->refs;
    }
    return entries_.emplace(id, c).first->second;
  }
  const StoredEvent<E>& event_ref(int64_t tick) {
    auto it = events_.find(tick);
    if (it != events_.end()) return it->second.value;
    Cached<StoredEvent<E>> c;
    if (auto e = store_.event(tick)) {
      c.value = std::move(*e);
      c.loaded_refs = c.value.refs;
    }
    return events_.emplace(tick, std::move(c)).first->second.value;
  }
  // Drops one reference to `entry`; frees what nobody uses any more.
  void release(int64_t id) {
    while (id != 0) {
      Cached<BufferEntry>& en = entry_ref(id);
      en.dirty = true;
      if (--en.value.refs > 0) return;
      en.removed = true;
      event_ref(en.value.tick);
      Cached<StoredEvent<E>>& ev = events_[en.value.tick];
      ev.dirty = true;
      if (--ev.value.refs <= 0) {
        ev.removed = true;
        meta_.events--;
      }
      id = en.value.parent;
    }
  }
  void chain(int64_t id, Chain& out) {
    out.clear();
    while (id != 0) {
      const BufferEntry& en = entry_ref(id).value;
      out.emplace_back(en.tick, prog_.occ_step[en.occ]);
      id = en.parent;
    }
    std::reverse(out.begin(), out.end());
  }
  Match<E> materialize(int64_t id) {
    Chain ch;
    chain(id, ch);
    Match<E> m;
    std::vector<std::vector<E>> by_step(prog_.steps.size());
    for (size_t i = 0; i < ch.size(); ++i) {
      const StoredEvent<E>& ev = event_ref(ch[i].first);
      if (i == 0) m.first_timestamp = ev.ts;
      m.last_timestamp = ev.ts;
      by_step[ch[i].second].push_back(ev.event);
    }
    for (size_t s = 0; s < by_step.size(); ++s) {
      if (!by_step[s].empty()) m.steps.emplace_back(prog_.steps[s].name, std::move(by_step[s]));
    }
    return m;
  }

  std::shared_ptr<const CompiledPattern<E>> pat_;
  const Program& prog_;
  NfaStore<E>& store_;
  NfaHost<E>& host_;
  NfaLimits limits_;
  ConditionEvaluator<E> cond_;
  NfaCounts counts_;

  // The current call.
  KeyMeta meta_;
  std::array<int64_t, 3> before_{};  // partial matches, held, events at begin()
  std::unordered_map<int64_t, Cached<BufferEntry>> entries_;
  std::unordered_map<int64_t, Cached<StoredEvent<E>>> events_;
  std::vector<Decision> decisions_;
  std::vector<Completion> completions_;
  std::vector<std::pair<IndexKey, int64_t>> scratch_, members_;
  const bool by_start_;
  const bool report_timeouts_;  // host_.wants_timed_out()
  uint32_t start_takes_ = 0;
  int64_t cur_tick_time_ = 0;  // timestamp of what the current step emits
  bool deadlines_touched_ = false;
  bool first_known_ = false;
  int64_t first_deadline_ = kNoTime;
  const E* cur_event_ = nullptr;
};

}  // namespace sluice::cep
