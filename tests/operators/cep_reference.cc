#include "tests/operators/cep_reference.h"

#include <limits>
#include <sstream>

namespace sluice::cep::testing {

bool eval_cond(const RCond& c, const Ev& e, const EvalCtx& ctx) {
  if (!c.kinds.empty() && c.kinds.find(e.kind) == std::string::npos) return false;
  if (c.iter == 0) return true;
  std::vector<const Ev*> prev = ctx(c.ref);
  if (prev.empty()) return true;
  return c.iter == 1 ? e.val > prev.back()->val : e.val <= prev.front()->val;
}

namespace {

template <class P>
P with_cond(P p, const RCond& c) {
  if (!c.kinds.empty()) {
    for (size_t i = 0; i < c.kinds.size(); ++i) {
      std::string k(1, c.kinds[i]);
      auto f = [k](const Ev& e) { return e.kind == k; };
      p = i == 0 ? p.where(f) : p.or_where(f);
    }
  }
  if (c.iter != 0) {
    RCond only = c;
    only.kinds.clear();
    p = p.where([only](const Ev& e, const MatchContext<Ev>& ctx) {
      return eval_cond(only, e, [&](const std::string& n) {
        std::vector<const Ev*> out;
        for (const Ev& x : ctx.events(n)) out.push_back(&x);
        return out;
      });
    });
  }
  return p;
}

Pattern<Ev> quantify(Pattern<Ev> p, const RElem& e) {
  if (e.hi == kUnbounded) p = e.lo == 1 ? p.one_or_more() : p.times_or_more(e.lo);
  else if (e.lo != 1 || e.hi != 1) p = e.lo == e.hi ? p.times(e.lo) : p.times(e.lo, e.hi);
  if (e.optional) p = p.optional();
  if (e.greedy) p = p.greedy();
  if (e.hi > 1 && e.inner == Contiguity::kStrict) p = p.consecutive();
  if (e.hi > 1 && e.inner == Contiguity::kNonDeterministic) p = p.allow_combinations();
  if (e.until) {
    RCond u = *e.until;
    p = p.until([u](const Ev& ev) { return eval_cond(u, ev, [](const std::string&) { return std::vector<const Ev*>{}; }); });
  }
  if (e.within_prev > 0) p = p.within(Duration(e.within_prev), WithinType::kPreviousAndCurrent);
  return p;
}

Pattern<Ev> build_seq(const std::vector<RElem>& es, std::optional<AfterMatchSkipStrategy> skip) {
  std::optional<Pattern<Ev>> p;
  for (const RElem& e : es) {
    if (e.kind == RElem::kGroup) {
      Pattern<Ev> g = build_seq(e.body, std::nullopt);
      if (!p) p = Pattern<Ev>::begin(g, skip.value_or(AfterMatchSkipStrategy{}));
      else if (e.contig == Contiguity::kStrict) p = p->next(g);
      else if (e.contig == Contiguity::kRelaxed) p = p->followed_by(g);
      else p = p->followed_by_any(g);
      p = quantify(*p, e);
      continue;
    }
    if (!p) p = Pattern<Ev>::begin(e.name, skip.value_or(AfterMatchSkipStrategy{}));
    else if (e.kind == RElem::kNotNext) p = p->not_next(e.name);
    else if (e.kind == RElem::kNotFollowed) p = p->not_followed_by(e.name);
    else if (e.contig == Contiguity::kStrict) p = p->next(e.name);
    else if (e.contig == Contiguity::kRelaxed) p = p->followed_by(e.name);
    else p = p->followed_by_any(e.name);
    p = with_cond(*p, e.cond);
    if (e.kind == RElem::kStep) p = quantify(*p, e);
    else if (e.within_prev > 0) p = p->within(Duration(e.within_prev), WithinType::kPreviousAndCurrent);
  }
  return *p;
}

void describe_seq(std::ostringstream& o, const std::vector<RElem>& es) {
  static const char* kContig[] = {"next", "followed_by", "followed_by_any"};
  for (size_t i = 0; i < es.size(); ++i) {
    const RElem& e = es[i];
    if (i) o << " ";
    if (e.kind == RElem::kNotNext) o << "not_next ";
    else if (e.kind == RElem::kNotFollowed) o << "not_followed_by ";
    else if (i) o << kContig[static_cast<int>(e.contig)] << " ";
    if (e.kind == RElem::kGroup) {
      o << "(";
      describe_seq(o, e.body);
      o << ")";
    } else {
      o << e.name << "[" << e.cond.kinds;
      if (e.cond.iter) o << (e.cond.iter == 1 ? " v>last " : " v<=first ") << e.cond.ref;
      o << "]";
    }
    if (e.kind == RElem::kStep || e.kind == RElem::kGroup) {
      if (e.lo != 1 || e.hi != 1) o << "{" << e.lo << "," << (e.hi == kUnbounded ? std::string("inf") : std::to_string(e.hi)) << "}";
      if (e.optional) o << "?";
      if (e.greedy) o << " greedy";
      if (e.hi > 1) o << " inner=" << kContig[static_cast<int>(e.inner)];
      if (e.until) o << " until[" << e.until->kinds << "]";
    }
    if (e.within_prev) o << " within_prev " << e.within_prev;
  }
}

}  // namespace

Pattern<Ev> build_pattern(const RPattern& p) {
  Pattern<Ev> out = build_seq(p.elems, p.skip);
  if (p.within > 0) out = out.within(Duration(p.within));
  return out;
}

std::string describe(const RPattern& p) {
  std::ostringstream o;
  describe_seq(o, p.elems);
  if (p.within) o << " within " << p.within;
  o << " skip " << p.skip.describe();
  return o.str();
}

namespace {

constexpr int64_t kInf = std::numeric_limits<int64_t>::max();
using Pos = std::vector<std::pair<int, int>>;

struct Route {
  Pos to;  // empty: the end of the pattern
  Contiguity contig = Contiguity::kRelaxed;
  std::vector<const RElem*> not_next, not_followed, bypass;
  const RElem* until_kill = nullptr;
  int64_t neg_within = 0;
  bool end() const { return to.empty(); }
};

// A point of the timeline: deadlines (kind 0) come before events (kind 1)
// at the same time; events in processing order.
struct Moment {
  int64_t t = kInf;
  int kind = 2;  // 2: never
  int idx = 0;
  auto operator<=>(const Moment&) const = default;
};

struct Prefix {
  std::vector<int> idx;
  std::vector<Pos> pos;
  Moment created, death;
  bool stored = false, accepting = false, pending_fires = false, timeout = false;
  Moment pending_at;
};

class Reference {
 public:
  Reference(const RPattern& p, const std::vector<std::pair<Ev, int64_t>>& events) : p_(p), ev_(events) {
    int order = 0;
    number(p.elems, order);
  }

  RefResult run() {
    std::vector<Route> start;
    routes_from({}, start);
    for (int y = 0; y < n(); ++y) {
      for (const Route& r : start) {
        if (r.end() || !valid(nullptr, r, y)) continue;
        Prefix q;
        q.idx = {y};
        q.pos = {r.to};
        add(std::move(q));
      }
    }
    for (size_t i = 0; i < all_.size(); ++i) extend(i);  // all_ grows while we walk it
    for (Prefix& q : all_) life(q);
    return replay();
  }

 private:
  int n() const { return static_cast<int>(ev_.size()); }
  int64_t ts(int i) const { return ev_[i].second; }
  const Ev& e(int i) const { return ev_[i].first; }

  void number(const std::vector<RElem>& es, int& order) {
    for (const RElem& e : es) {
      if (e.kind == RElem::kGroup) number(e.body, order);
      else order_[e.name] = order++;
    }
  }

  // --- the pattern's grammar -------------------------------------------------
  const std::vector<RElem>& seq_at(const Pos& prefix) const {
    const std::vector<RElem>* s = &p_.elems;
    for (const auto& [j, k] : prefix) s = &(*s)[j].body;
    return *s;
  }
  const RElem& elem_at(const Pos& p) const {
    Pos prefix(p.begin(), p.end() - 1);
    return seq_at(prefix)[p.back().first];
  }
  void enter(const RElem& el, Pos pos, Route st, std::vector<Route>& out) const {
    if (el.kind == RElem::kStep) {
      st.to = std::move(pos);
      out.push_back(std::move(st));
      return;
    }
    pos.emplace_back(0, 1);  // a group starts with its (mandatory) first element
    enter(el.body.front(), std::move(pos), std::move(st), out);
  }
  // Everything reachable after the elements of the sequence at `prefix`
  // before `from` are done.
  void leave(const Pos& prefix, int from, Route st, std::vector<Route>& out) const {
    const std::vector<RElem>& seq = seq_at(prefix);
    for (int j = from;; ++j) {
      if (j == static_cast<int>(seq.size())) {
        if (prefix.empty()) {
          st.to.clear();
          out.push_back(std::move(st));
          return;
        }
        const RElem& g = elem_at(prefix);
        const int m = prefix.back().second;
        Pos parent(prefix.begin(), prefix.end() - 1);
        if (m < g.hi) {  // another repetition of the group
          Route again = st;
          again.contig = g.inner;
          Pos pos = parent;
          pos.emplace_back(prefix.back().first, m + 1);
          enter(g, pos, again, out);
        }
        if (m >= g.lo) leave(parent, prefix.back().first + 1, std::move(st), out);
        return;
      }
      const RElem& el = seq[j];
      if (el.kind == RElem::kNotNext || el.kind == RElem::kNotFollowed) {
        (el.kind == RElem::kNotNext ? st.not_next : st.not_followed).push_back(&el);
        if (el.within_prev) st.neg_within = el.within_prev;
        continue;
      }
      Route in = st;
      in.contig = el.contig;
      Pos pos = prefix;
      pos.emplace_back(j, 1);
      enter(el, pos, in, out);
      if (!el.optional) return;
      if (el.greedy) st.bypass.push_back(&el);
    }
  }
  void routes_from(const Pos& p, std::vector<Route>& out) const {
    if (p.empty()) {
      leave({}, 0, Route{}, out);
      return;
    }
    const RElem& el = elem_at(p);
    const int k = p.back().second;
    Pos prefix(p.begin(), p.end() - 1);
    if (k < el.hi) {
      Route r;
      r.to = prefix;
      r.to.emplace_back(p.back().first, k + 1);
      r.contig = el.inner;
      if (el.until) r.until_kill = &el;
      out.push_back(std::move(r));
    }
    if (k >= el.lo) {
      Route st;
      if (el.greedy && k < el.hi) st.bypass.push_back(&el);
      leave(prefix, p.back().first + 1, std::move(st), out);
    }
  }

  // --- checking a gap ---------------------------------------------------------
  EvalCtx ctx(const Prefix* q) const {
    return [this, q](const std::string& name) {
      std::vector<const Ev*> out;
      if (!q) return out;
      for (size_t i = 0; i < q->idx.size(); ++i)
        if (elem_at(q->pos[i]).name == name) out.push_back(&e(q->idx[i]));
      return out;
    };
  }
  const Route& route_to(const Prefix* q, const RElem* step, std::vector<Route>& keep) const {
    keep.clear();
    routes_from(q ? q->pos.back() : Pos{}, keep);
    for (const Route& r : keep)
      if (!r.end() && &elem_at(r.to) == step) return r;
    throw std::logic_error("no route to a bypassed greedy step");
  }
  // Could the partial match q (nullptr: none yet) take event y by route r?
  bool valid(const Prefix* q, const Route& r, int y) const {
    const RElem& el = elem_at(r.to);
    EvalCtx c = ctx(q);
    if (!eval_cond(el.cond, e(y), c)) return false;
    if (el.until && eval_cond(*el.until, e(y), c)) return false;
    const int x = q ? q->idx.back() : -1;
    if (q && p_.within && ts(y) - ts(q->idx.front()) >= p_.within) return false;
    if (x >= 0) {
      if (el.within_prev && ts(y) - ts(x) >= el.within_prev) return false;
      if (r.contig == Contiguity::kStrict && y != x + 1) return false;
      for (int z = x + 1; z < y; ++z) {
        if (r.contig == Contiguity::kRelaxed && eval_cond(el.cond, e(z), c)) return false;
        for (const RElem* neg : r.not_followed)
          if (eval_cond(neg->cond, e(z), c)) return false;
        if (r.until_kill && eval_cond(*r.until_kill->until, e(z), c)) return false;
      }
      if (y > x + 1)
        for (const RElem* neg : r.not_next)
          if (eval_cond(neg->cond, e(x + 1), c)) return false;
    }
    return !blocked(q, r, x < 0 ? y : x + 1, y);
  }
  // A greedy step the route leaves or skips could have taken an event in [from, to].
  bool blocked(const Prefix* q, const Route& r, int from, int to) const {
    std::vector<Route> keep;
    for (const RElem* g : r.bypass) {
      Route gr = route_to(q, g, keep);
      for (int z = from; z <= to; ++z)
        if (valid(q, gr, z)) return true;
    }
    return false;
  }

  // --- enumeration ------------------------------------------------------------
  void add(Prefix q) {
    q.created = Moment{ts(q.idx.back()), 1, q.idx.back()};
    all_.push_back(std::move(q));
  }
  void extend(size_t i) {
    std::vector<Route> routes;
    routes_from(all_[i].pos.back(), routes);
    for (const Route& r : routes) {
      if (r.end()) continue;
      for (int y = all_[i].idx.back() + 1; y < n(); ++y) {
        if (!valid(&all_[i], r, y)) continue;
        Prefix q;
        q.idx = all_[i].idx;
        q.pos = all_[i].pos;
        q.idx.push_back(y);
        q.pos.push_back(r.to);
        add(std::move(q));
      }
    }
  }

  // When each route of q stops waiting, and so when q dies and how.
  Moment route_death(const Prefix& q, const Route& r) const {
    const int x = q.idx.back();
    int64_t limit = p_.within ? ts(q.idx.front()) + p_.within : kInf;
    int64_t own = r.end() ? r.neg_within : elem_at(r.to).within_prev;
    if (own) limit = std::min(limit, ts(x) + own);
    EvalCtx c = ctx(&q);
    for (int z = x + 1; z < n(); ++z) {
      if (ts(z) >= limit) return {limit, 0, 0};
      bool dies = false;
      if (!r.end()) {
        const RElem& el = elem_at(r.to);
        if (r.contig == Contiguity::kStrict) dies = true;
        if (r.contig == Contiguity::kRelaxed && eval_cond(el.cond, e(z), c)) dies = true;
      }
      if (z == x + 1)
        for (const RElem* neg : r.not_next) dies = dies || eval_cond(neg->cond, e(z), c);
      for (const RElem* neg : r.not_followed) dies = dies || eval_cond(neg->cond, e(z), c);
      if (r.until_kill && eval_cond(*r.until_kill->until, e(z), c)) dies = true;
      if (!dies && blocked(&q, r, z, z)) dies = true;
      if (dies) return {ts(z), 1, z};
    }
    return limit == kInf ? Moment{} : Moment{limit, 0, 0};
  }
  void life(Prefix& q) {
    std::vector<Route> routes;
    routes_from(q.pos.back(), routes);
    Moment death = q.created;
    bool by_time = false;
    for (const Route& r : routes) {
      if (r.end() && r.not_next.empty() && r.not_followed.empty()) {
        q.accepting = true;
        continue;
      }
      q.stored = true;
      Moment m = route_death(q, r);
      if (r.end() && m.kind == 0) {
        q.pending_fires = true;
        q.pending_at = m;
      }
      if (death < m) {
        death = m;
        by_time = m.kind == 0;
      }
    }
    q.death = death;
    q.timeout = q.stored && by_time && !q.accepting && !q.pending_fires;
  }

  // --- the timeline -------------------------------------------------------------
  std::vector<std::pair<int, int>> chain(const Prefix& q) const {
    std::vector<std::pair<int, int>> c;
    for (size_t i = 0; i < q.idx.size(); ++i) c.emplace_back(q.idx[i], order_.at(elem_at(q.pos[i]).name));
    return c;
  }
  std::string render(const Prefix& q, int64_t at) const {
    std::map<int, std::pair<std::string, std::vector<int64_t>>> by_step;
    for (size_t i = 0; i < q.idx.size(); ++i) {
      const std::string& name = elem_at(q.pos[i]).name;
      auto& s = by_step[order_.at(name)];
      s.first = name;
      s.second.push_back(e(q.idx[i]).id);
    }
    std::string out;
    for (const auto& [o, s] : by_step) {
      if (!out.empty()) out += ' ';
      out += s.first + ':';
      for (size_t i = 0; i < s.second.size(); ++i) out += (i ? "," : "") + std::to_string(s.second[i]);
    }
    return out + " @" + std::to_string(at);
  }
  int start(const Prefix& q) const { return q.idx.front(); }
  bool pruned_before(int s, const Moment& t) const {
    auto it = pruned_.find(s);
    return it != pruned_.end() && it->second < t;
  }
  bool realized(const Prefix& q) const {
    auto it = pruned_.find(start(q));
    return it == pruned_.end() || q.created <= it->second;
  }
  // Alive once moment t is over.
  bool alive_after(const Prefix& q, const Moment& t) const {
    return q.stored && realized(q) && q.created <= t && t < q.death && !pruned_before(start(q), Moment{t.t, t.kind, t.idx + 1});
  }
  bool alive_at_start(const Prefix& q, const Moment& t) const {
    return q.stored && realized(q) && q.created < t && !(q.death < t) && !pruned_before(start(q), t);
  }

  RefResult replay() {
    std::set<Moment> moments;
    for (int i = 0; i < n(); ++i) moments.insert({ts(i), 1, i});
    for (const Prefix& q : all_) {
      if (q.death.kind == 0) moments.insert(q.death);
      if (q.pending_fires) moments.insert(q.pending_at);
    }
    RefResult out;
    using Held = std::tuple<int, Moment, std::vector<std::pair<int, int>>, size_t>;
    std::vector<Held> held;
    auto by_start = [&](size_t a, size_t b) {
      return std::make_pair(start(all_[a]), chain(all_[a])) < std::make_pair(start(all_[b]), chain(all_[b]));
    };
    const bool no_skip = p_.skip.kind == AfterMatchSkipStrategy::Kind::kNoSkip;
    for (const Moment& t : moments) {
      const int64_t out_ts = t.kind == 0 ? t.t - 1 : t.t;
      std::vector<size_t> done, timeouts;
      for (size_t i = 0; i < all_.size(); ++i) {
        const Prefix& q = all_[i];
        if (t.kind == 0) {
          if (q.pending_fires && q.pending_at == t && alive_at_start(q, t)) done.push_back(i);
          if (q.timeout && q.death == t && alive_at_start(q, t)) timeouts.push_back(i);
        } else if (q.created == t && q.accepting && realized(q)) {
          done.push_back(i);
        }
      }
      std::sort(done.begin(), done.end(), by_start);
      std::sort(timeouts.begin(), timeouts.end(), by_start);
      for (size_t i : timeouts) out.timeouts.push_back(render(all_[i], out_ts));
      if (no_skip) {
        for (size_t i : done) out.matches.push_back(render(all_[i], out_ts));
        continue;
      }
      for (size_t i : done) held.emplace_back(start(all_[i]), t, chain(all_[i]), i);
      std::sort(held.begin(), held.end());
      while (!held.empty()) {
        const int s = std::get<0>(held.front());
        bool earlier = false;
        for (const Prefix& q : all_) earlier = earlier || (start(q) < s && alive_after(q, t));
        if (earlier) break;
        const Prefix& m = all_[std::get<3>(held.front())];
        out.matches.push_back(render(m, out_ts));
        held.erase(held.begin());
        prune(m, t, held);
      }
    }
    return out;
  }

  void prune(const Prefix& m, const Moment& t, std::vector<std::tuple<int, Moment, std::vector<std::pair<int, int>>, size_t>>& held) {
    int lo = std::numeric_limits<int>::min(), hi = lo;
    switch (p_.skip.kind) {
      case AfterMatchSkipStrategy::Kind::kNoSkip: return;
      case AfterMatchSkipStrategy::Kind::kSkipToNext: lo = hi = start(m); break;
      case AfterMatchSkipStrategy::Kind::kSkipPastLastEvent: hi = m.idx.back(); break;
      case AfterMatchSkipStrategy::Kind::kSkipToFirst:
      case AfterMatchSkipStrategy::Kind::kSkipToLast: {
        int p = -1;
        for (size_t i = 0; i < m.idx.size(); ++i) {
          if (elem_at(m.pos[i]).name != p_.skip.step) continue;
          if (p < 0 || p_.skip.kind == AfterMatchSkipStrategy::Kind::kSkipToLast) p = m.idx[i];
        }
        if (p < 0) return;
        hi = p - 1;
        break;
      }
    }
    for (int s = std::max(lo, 0); s <= hi && s < n(); ++s) pruned_.emplace(s, t);
    std::erase_if(held, [&](const auto& h) { return std::get<0>(h) >= lo && std::get<0>(h) <= hi; });
  }

  const RPattern& p_;
  const std::vector<std::pair<Ev, int64_t>>& ev_;
  std::map<std::string, int> order_;
  std::vector<Prefix> all_;
  std::map<int, Moment> pruned_;
};

}  // namespace

RefResult reference_match(const RPattern& p, const std::vector<std::pair<Ev, int64_t>>& events) {
  return Reference(p, events).run();
}

}  // namespace sluice::cep::testing
