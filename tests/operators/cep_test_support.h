// Shared by the CEP tests: a test event, an NFA driver on the in-memory
// store that records what the NFA emits as compact strings, and printers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/common/serde.h"
#include "operators/cep/compiled_pattern.h"
#include "operators/cep/nfa.h"
#include "operators/cep/pattern.h"
#include "operators/cep/shared_buffer.h"

namespace sluice::cep::testing {

/// A test event: `kind` is what conditions look at, `id` identifies it in
/// the output, `val` feeds iterative conditions.
struct Ev {
  int64_t id = 0;
  std::string kind;
  int64_t val = 0;
  std::string key = "k";
  SLUICE_FIELDS(id, kind, val, key)
};

inline Ev ev(int64_t id, std::string kind, int64_t val = 0) { return Ev{id, std::move(kind), val, "k"}; }

/// "a:1,2 b:5" — steps in pattern order, event ids in order.
inline std::string render(const Match<Ev>& m) {
  std::string out;
  for (const auto& [name, events] : m.steps) {
    if (!out.empty()) out += ' ';
    out += name + ':';
    for (size_t i = 0; i < events.size(); ++i) out += (i ? "," : "") + std::to_string(events[i].id);
  }
  return out;
}

/// Records everything an Nfa emits.
class RecordingHost final : public NfaHost<Ev> {
 public:
  void match(Match<Ev>&& m, int64_t ts) override { matches.push_back(render(m)); }
  void timed_out(Match<Ev>&& m, int64_t ts) override { timeouts.push_back(render(m) + " @" + std::to_string(ts)); }
  void discarded(Match<Ev>&& m, const std::string& reason) override { dropped.push_back(render(m)); }
  void reschedule(int64_t, int64_t n) override { deadline = n; }
  std::vector<std::string> matches, timeouts, dropped;
  int64_t deadline = kNoTime;
};

/// One key's events through an Nfa on a MemoryNfaStore.
class NfaDriver {
 public:
  explicit NfaDriver(const Pattern<Ev>& p, NfaLimits limits = {})
      : pattern_(CompiledPattern<Ev>::compile(p)), nfa_(pattern_, store_, host_, limits) {
    store_.select("k");
  }
  /// Processes (event, ts) pairs in order; throws if the NFA fails.
  NfaDriver& run(const std::vector<std::pair<Ev, int64_t>>& events) {
    for (const auto& [e, ts] : events) {
      Status st = nfa_.process(e, ts);
      if (!st.is_ok()) throw std::runtime_error(st.to_string());
    }
    return *this;
  }
  NfaDriver& time(int64_t t) {
    Status st = nfa_.advance_time(t);
    if (!st.is_ok()) throw std::runtime_error(st.to_string());
    return *this;
  }
  /// Time runs to the end: every deadline passes.
  NfaDriver& end() { return time(kNoTime - 1); }
  RecordingHost& host() { return host_; }
  MemoryNfaStore<Ev>& store() { return store_; }
  Nfa<Ev>& nfa() { return nfa_; }

 private:
  std::shared_ptr<const CompiledPattern<Ev>> pattern_;
  MemoryNfaStore<Ev> store_;
  RecordingHost host_;
  Nfa<Ev> nfa_;
};

/// Events with ids 1..n of the given kinds at ts = 10 * id.
inline std::vector<std::pair<Ev, int64_t>> seq(const std::vector<std::string>& kinds) {
  std::vector<std::pair<Ev, int64_t>> out;
  for (size_t i = 0; i < kinds.size(); ++i) {
    out.emplace_back(ev(static_cast<int64_t>(i + 1), kinds[i]), static_cast<int64_t>(10 * (i + 1)));
  }
  return out;
}

inline auto is(std::string kind) {
  return [kind](const Ev& e) { return e.kind == kind; };
}

}  // namespace sluice::cep::testing
