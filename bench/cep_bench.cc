// CEP engine cost per event as the live partial matches of one key grow,
// on the heap and RocksDB keyed-state backends (bench/run.sh workload 10).
//
//   build/bench/cep_bench [--backend heap|rocksdb|both|memory] [--sizes 1,10,100,1000,10000]
//                         [--events N] [--dir DIR] [--known-device 0|1] [--flush-every N]
//                         [--read-timed-out 0|1]
//
// The fraud pattern (five failed logins, then a purchase >= 1,000 from a
// device none of them used, within W) on one key, run by the NFA on the
// operator's keyed-state store (what the CEP operator runs per record,
// without the event-time buffer). For each size S the key is brought to a
// steady state of S partial matches waiting for the purchase: failed
// logins 10 ms apart and W = (S + 4) * 10 ms, so every new login starts a
// partial match, advances the four still counting and times the oldest one
// out. Then, timed:
//   - `fail`: N more failed logins (the steady state: the work per event
//     that the flat-CPU target is about);
//   - `known_device`: N purchases >= 1,000 from a device the logins used:
//     the simple part of the purchase condition holds, the iterative part
//     (the device test) fails for every partial match, so it is evaluated
//     S times per event (iterative conditions cost work per partial match).
// Prints one JSON object: per backend and size, CPU ns per event (thread
// CPU time) for both.
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "engine/common/clock.h"
#include "operators/cep/keyed_store.h"
#include "operators/cep/nfa.h"
#include "state/backend_factory.h"

namespace {

using namespace sluice;
using namespace sluice::cep;

struct Login {
  int8_t kind = 0;  // 1 failed login, 2 purchase
  int32_t device = 0;
  int64_t amount = 0;
  SLUICE_FIELDS(kind, device, amount)
};

class CountingHost final : public NfaHost<Login> {
 public:
  void match(Match<Login>&&, int64_t) override { ++matches; }
  void timed_out(Match<Login>&&, int64_t) override { ++timeouts; }
  // As the CEP operator whose function ignores timed-out matches (the
  // workload's job): they are counted, not read back (--read-timed-out 1:
  // as with a timed-out side output).
  bool wants_timed_out() const override { return read_timed_out; }
  void discarded(Match<Login>&&, const std::string&) override { ++dropped; }
  void reschedule(int64_t, int64_t) override {}
  bool read_timed_out = false;
  uint64_t matches = 0, timeouts = 0, dropped = 0;
};

int64_t thread_cpu_ns() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1'000'000'000LL + t.tv_nsec;
}

std::shared_ptr<const CompiledPattern<Login>> fraud(int64_t within_ms) {
  auto p = Pattern<Login>::begin("fails")
               .where([](const Login& l) { return l.kind == 1; })
               .times(5)
               .followed_by("buy")
               .where([](const Login& l) { return l.kind == 2 && l.amount >= 100'000; })
               .where([](const Login& l, const MatchContext<Login>& ctx) {
                 for (const Login& f : ctx.events("fails"))
                   if (f.device == l.device) return false;
                 return true;
               })
               .within(Duration(within_ms));
  return CompiledPattern<Login>::compile(p);
}

struct Result1 {
  double fail_ns = 0, known_device_ns = 0;
  int64_t live = 0;
};

// kind empty: the in-memory store (the engine alone, no keyed state).
Result1 measure(std::optional<state::BackendKind> kind, int64_t size, int64_t events, const std::string& dir,
                bool known_device, int64_t flush_every, bool read_timed_out) {
  ManualClock clock(0);
  std::unique_ptr<state::KeyedStateBackend> backend;
  std::unique_ptr<NfaStore<Login>> store_ptr;
  KeyedNfaStore<Login>* keyed_store = nullptr;
  if (kind) {
    Configuration c;
    c.set("state.backend", std::string(state::backend_kind_name(*kind)));
    c.set("state.rocksdb.local-dir", dir);
    state::BackendSpec spec{{0, 127}, 128, &clock, "cep-bench"};
    auto b = state::create_keyed_backend(c, spec, *kind);
    if (!b.is_ok()) {
      std::fprintf(stderr, "backend: %s\n", b.status().to_string().c_str());
      std::exit(1);
    }
    backend = std::move(*b);
    const std::string key = serialize(std::string("user-1"));
    backend->set_current_key(key, state::key_group_for_key(key, 128));
    auto keyed = std::make_unique<KeyedNfaStore<Login>>(*backend, 1'000'000);
    keyed->select();
    keyed_store = keyed.get();
    store_ptr = std::move(keyed);
  } else {
    auto m = std::make_unique<MemoryNfaStore<Login>>();
    m->select("user-1");
    store_ptr = std::move(m);
  }
  NfaStore<Login>& store = *store_ptr;
  CountingHost host;
  host.read_timed_out = read_timed_out;
  NfaLimits limits;
  limits.max_partial_matches = size + 100;
  limits.max_events = size + 100;
  constexpr int64_t kGap = 10;
  Nfa<Login> nfa(fraud((size + 4) * kGap), store, host, limits);
  int64_t ts = 0;
  int64_t fed = 0;
  auto feed = [&](const Login& l) {
    // A checkpoint writes what changed back to keyed state.
    if (keyed_store && flush_every > 0 && ++fed % flush_every == 0) {
      keyed_store->flush();
      backend->set_current_key(serialize(std::string("user-1")), state::key_group_for_key(serialize(std::string("user-1")), 128));
      keyed_store->select();
    }
    ts += kGap;
    Status st = nfa.process(l, ts);
    if (!st.is_ok()) {
      std::fprintf(stderr, "nfa: %s\n", st.to_string().c_str());
      std::exit(1);
    }
  };
  const Login fail{1, 7, 0};
  // Warm up to the steady state (two windows' worth).
  for (int64_t i = 0; i < 2 * (size + 4) + 100; ++i) feed(fail);
  Result1 r;
  r.live = store.meta().value_or(KeyMeta{}).partial_matches;
  int64_t t0 = thread_cpu_ns();
  for (int64_t i = 0; i < events; ++i) feed(fail);
  r.fail_ns = static_cast<double>(thread_cpu_ns() - t0) / static_cast<double>(events);
  // Purchases from the logins' device: the iterative test runs per match.
  const Login known{2, 7, 500'000};
  const int64_t n2 = known_device ? std::max<int64_t>(10, std::min<int64_t>(events, 2'000'000 / (size + 1))) : 0;
  t0 = thread_cpu_ns();
  for (int64_t i = 0; i < n2; ++i) {
    ts += 1;
    Status st = nfa.process(known, ts);
    if (!st.is_ok()) std::exit(1);
  }
  r.known_device_ns = n2 ? static_cast<double>(thread_cpu_ns() - t0) / static_cast<double>(n2) : 0;
  if (host.matches != 0 || host.dropped != 0) {
    std::fprintf(stderr, "unexpected: %llu matches, %llu dropped\n", static_cast<unsigned long long>(host.matches),
                 static_cast<unsigned long long>(host.dropped));
    std::exit(1);
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string backends = "both", sizes = "1,10,100,1000,10000";
  int64_t events = 20'000;
  std::string dir = "/tmp/sluice-cep-bench";
  bool known = true;
  int64_t flush_every = 0;
  bool read_timed_out = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--backend") backends = v;
    else if (k == "--sizes") sizes = v;
    else if (k == "--events") events = std::atoll(v.c_str());
    else if (k == "--dir") dir = v;
    else if (k == "--known-device") known = v != "0";
    else if (k == "--flush-every") flush_every = std::atoll(v.c_str());
    else if (k == "--read-timed-out") read_timed_out = v != "0";
    else {
      std::fprintf(stderr, "usage: cep_bench [--backend heap|rocksdb|both|memory] [--sizes 1,10,...] [--events N] [--dir DIR] [--known-device 0|1] [--flush-every N] [--read-timed-out 0|1]\n");
      return 2;
    }
  }
  std::vector<int64_t> ns;
  std::stringstream ss(sizes);
  for (std::string x; std::getline(ss, x, ',');) ns.push_back(std::atoll(x.c_str()));
  std::vector<std::optional<state::BackendKind>> kinds;
  if (backends == "memory") kinds.push_back(std::nullopt);
  if (backends == "both" || backends == "heap") kinds.push_back(state::BackendKind::kHeap);
  if (backends == "both" || backends == "rocksdb") kinds.push_back(state::BackendKind::kRocksDB);
  std::printf("{");
  bool first_kind = true;
  for (auto kind : kinds) {
    std::printf("%s\"%s\":[", first_kind ? "" : ",", kind ? std::string(state::backend_kind_name(*kind)).c_str() : "memory");
    first_kind = false;
    for (size_t i = 0; i < ns.size(); ++i) {
      std::filesystem::remove_all(dir);
      Result1 r = measure(kind, ns[i], events, dir, known, flush_every, read_timed_out);
      std::printf("%s{\"partial_matches\":%lld,\"fail_ns\":%.0f,\"known_device_ns\":%.0f}", i ? "," : "",
                  static_cast<long long>(r.live), r.fail_ns, r.known_device_ns);
      std::fflush(stdout);
    }
    std::printf("]");
  }
  std::printf("}\n");
  std::filesystem::remove_all(dir);
  return 0;
}
