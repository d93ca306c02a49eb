// Differential test of OrderedMapState: seeded random operations (put,
// remove, get, remove_range and range reads with random bounds, first/last,
// count, clear, time passing under TTL, checkpoints restored at another
// parallelism) run on the heap and the RocksDB backend at once and are
// compared, result by result, with a brute-force model built on std::map
// and the key types' own operator<.
//
// A failure names its seed; replay it with SLUICE_SEED=<seed>. More seeds:
// SLUICE_DIFF_SEEDS=<n> (default 6 per configuration).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/clock.h"
#include "engine/common/serde.h"
#include "state/checkpoint_storage.h"
#include "state/heap_backend.h"
#include "state/key_groups.h"
#include "state/rocksdb_backend.h"
#include "state/state_factory.h"

namespace sluice::state {
namespace {

constexpr int32_t kMax = 16;  // few key groups: rescaling moves several keys per group
constexpr int64_t kStart = 1'700'000'000'000;

std::string describe(int64_t k) { return std::to_string(k); }
std::string describe(const std::string& s) {
  std::ostringstream o;
  for (char c : s) {
    if (c >= 'a' && c <= 'z') o << c;
    else o << "\\x" << std::hex << (static_cast<int>(c) & 0xff) << std::dec;
  }
  return o.str();
}
std::string describe(const std::pair<int64_t, std::string>& k) {
  return "(" + std::to_string(k.first) + "," + describe(k.second) + ")";
}

/// Random keys from a small domain, so that operations hit each other.
struct IntKeys {
  using K = int64_t;
  static K make(std::mt19937_64& rng) {
    static const int64_t kEdges[] = {std::numeric_limits<int64_t>::min(), -1, 0,
                                     std::numeric_limits<int64_t>::max()};
    if (rng() % 8 == 0) return kEdges[rng() % 4];
    return static_cast<int64_t>(rng() % 61) - 30;
  }
};
struct PairKeys {
  using K = std::pair<int64_t, std::string>;
  static K make(std::mt19937_64& rng) {
    static const std::string kWords[] = {"", "a", std::string("a\0", 2), "ab", "b", "\xff",
                                         std::string("\0", 1)};
    return {static_cast<int64_t>(rng() % 9) - 4, kWords[rng() % 7]};
  }
};

template <class K>
struct ModelRange {
  KeyRange<K> r;
  bool contains(const K& k) const {
    if (r.lower && (r.lower_inclusive ? k < *r.lower : !(*r.lower < k))) return false;
    if (r.upper && (r.upper_inclusive ? *r.upper < k : !(k < *r.upper))) return false;
    return true;
  }
};

template <class Keys>
class Differential {
  using K = typename Keys::K;
  using V = int64_t;
  using State = OrderedMapState<K, V>;
  struct Entry {
    V value;
    int64_t expiry;  // 0 = never
  };
  using Map = std::map<K, Entry>;

 public:
  Differential(uint64_t seed, StateTtl ttl, std::string dir)
      : seed_(seed), rng_(seed), ttl_(ttl), dir_(std::move(dir)), storage_(dir_, "job") {
    const size_t thresholds[] = {0, 1, 3, 64};
    rocks_options_.local_dir = dir_ + "/local";
    rocks_options_.memory_bytes = 16LL << 20;
    rocks_options_.range_delete_threshold = thresholds[seed % 4];
    for (int i = 0; i < 6; ++i) user_keys_.push_back("user-" + std::to_string(i));
    build(1, {});
  }

  /// Runs `steps` random operations; returns a description of the first
  /// mismatch, or "" if there is none.
  std::string run(int steps) {
    for (step_ = 0; step_ < steps; ++step_) {
      std::string err = one_step();
      if (!err.empty()) return "seed " + std::to_string(seed_) + ", step " + std::to_string(step_) +
                               ": " + err;
    }
    return "";
  }

 private:
  struct Side {
    std::vector<std::unique_ptr<KeyedStateBackend>> backends;  // one per subtask
  };

  // A random range over the key domain (bounds may be inverted).
  KeyRange<K> random_range() {
    KeyRange<K> r;
    if (rng_() % 4 != 0) {
      r.lower = Keys::make(rng_);
      r.lower_inclusive = rng_() % 2 == 0;
    }
    if (rng_() % 4 != 0) {
      r.upper = Keys::make(rng_);
      r.upper_inclusive = rng_() % 2 == 0;
    }
    return r;
  }
  static std::string describe_range(const KeyRange<K>& r) {
    return std::string(r.lower ? (r.lower_inclusive ? "[" : "(") + describe(*r.lower) : "[first") + ", " +
           (r.upper ? describe(*r.upper) + (r.upper_inclusive ? "]" : ")") : "last]");
  }

  // Builds `parallelism` backends per side, restored from `handles` (per side).
  void build(int parallelism, std::vector<std::vector<KeyedStateHandle>> handles) {
    for (int side = 0; side < 2; ++side) {
      sides_[side].backends.clear();
      for (int s = 0; s < parallelism; ++s) {
        KeyGroupRange range = key_group_range_for_subtask(kMax, parallelism, s);
        std::unique_ptr<KeyedStateBackend> b;
        if (side == 0) {
          b = std::make_unique<HeapKeyedStateBackend>(range, kMax, &clock_);
        } else {
          BackendSpec spec{range, kMax, &clock_,
                           "diff-" + std::to_string(seed_) + "-" + std::to_string(next_++)};
          auto r = RocksDBKeyedStateBackend::create(spec, rocks_options_);
          if (!r.is_ok()) throw std::runtime_error(r.status().to_string());
          b = std::move(*r);
        }
        if (!handles.empty()) {
          Status st = b->restore(handles[side], storage_.job_dir());
          if (!st.is_ok()) throw std::runtime_error(st.to_string());
        }
        sides_[side].backends.push_back(std::move(b));
      }
    }
    parallelism_ = parallelism;
  }

  // The state handle of `side` for the current user key and namespace.
  State* on(int side) {
    const std::string bytes = serialize(user_keys_[cur_key_]);
    KeyGroup kg = key_group_for_key(bytes, kMax);
    for (auto& b : sides_[side].backends) {
      if (!b->key_group_range().contains(kg)) continue;
      b->set_current_key(bytes, kg);
      auto* s = get_ordered_map_state(*b, OrderedMapStateDescriptor<K, V>{"m", ttl_});
      s->set_namespace(cur_ns_ == 0 ? "" : serialize(std::string("w")));
      return s;
    }
    throw std::runtime_error("no backend owns the key group");
  }
  Map& model() { return model_[{cur_key_, cur_ns_}]; }
  bool live(const Entry& e) const { return e.expiry == 0 || e.expiry > clock_.now_ms(); }
  void refresh(Entry& e) {
    if (ttl_.enabled() && ttl_.refresh_on_read) e.expiry = clock_.now_ms() + ttl_.ttl.count();
  }
  // Live model entries in r, ascending; refreshed if `read_values`.
  std::vector<std::pair<K, V>> model_range(const KeyRange<K>& r, bool read_values) {
    std::vector<std::pair<K, V>> out;
    ModelRange<K> mr{r};
    for (auto& [k, e] : model()) {
      if (!mr.contains(k) || !live(e)) continue;
      if (read_values) refresh(e);
      out.emplace_back(k, e.value);
    }
    return out;
  }

  static std::string show(uint64_t v) { return std::to_string(v); }
  static std::string show(bool v) { return v ? "true" : "false"; }
  template <class T>
  static std::string show(const T& x) { return describe(x); }
  template <class A, class B>
  static std::string show(const std::pair<A, B>& p) { return show(p.first) + "=" + show(p.second); }
  template <class T>
  static std::string show(const std::optional<T>& o) { return o ? show(*o) : "none"; }
  template <class T>
  static std::string show(const std::vector<T>& v) {
    std::string out = "{";
    for (const auto& x : v) out += (out.size() > 1 ? " " : "") + show(x);
    return out + "}";
  }
  template <class T>
  static std::string differ(const char* what, const T& heap, const T& rocks, const T& want) {
    if (heap == want && rocks == want) return "";
    return std::string(what) + ": expected " + show(want) + ", heap " + show(heap) + ", rocksdb " +
           show(rocks);
  }

  std::string one_step() {
    cur_key_ = rng_() % user_keys_.size();
    cur_ns_ = static_cast<int>(rng_() % 2);
    const int op = static_cast<int>(rng_() % 100);
    if (op < 30) {  // put
      K k = Keys::make(rng_);
      V v = step_;
      for (int s = 0; s < 2; ++s) on(s)->put(k, v);
      model()[k] = Entry{v, ttl_.enabled() ? clock_.now_ms() + ttl_.ttl.count() : 0};
      return "";
    }
    if (op < 38) {  // remove
      K k = Keys::make(rng_);
      for (int s = 0; s < 2; ++s) on(s)->remove(k);
      model().erase(k);
      return "";
    }
    if (op < 46) {  // get / contains
      K k = Keys::make(rng_);
      std::optional<V> want;
      auto it = model().find(k);
      if (it != model().end() && live(it->second)) {
        refresh(it->second);
        want = it->second.value;
      }
      if (rng_() % 2 == 0) {
        return differ(("get " + describe(k)).c_str(), on(0)->get(k), on(1)->get(k), want);
      }
      return differ(("contains " + describe(k)).c_str(), on(0)->contains(k), on(1)->contains(k),
                    want.has_value());
    }
    if (op < 54) {  // remove_range
      KeyRange<K> r = random_range();
      for (int s = 0; s < 2; ++s) on(s)->remove_range(r);
      ModelRange<K> mr{r};
      std::erase_if(model(), [&](const auto& kv) { return mr.contains(kv.first); });
      return "";
    }
    if (op < 72) {  // range scan, ascending or descending
      KeyRange<K> r = random_range();
      const bool reverse = rng_() % 3 == 0;
      auto want = model_range(r, true);
      if (reverse) std::reverse(want.begin(), want.end());
      std::vector<std::pair<K, V>> got[2];
      for (int s = 0; s < 2; ++s) {
        State* st = on(s);
        for (const auto& [k, v] : reverse ? st->reverse_range(r) : st->range(r)) got[s].emplace_back(k, v);
      }
      return differ(((reverse ? "reverse_range " : "range ") + describe_range(r)).c_str(), got[0],
                    got[1], want);
    }
    if (op < 84) {  // first / last / keys / count / is_empty of a range
      KeyRange<K> r = random_range();
      const int which = static_cast<int>(rng_() % 5);
      const std::string what = describe_range(r);
      if (which == 0 || which == 1) {
        auto keys = model_range(r, false);
        std::optional<std::pair<K, V>> want;
        if (!keys.empty()) {
          want = which == 0 ? keys.front() : keys.back();
          refresh(model()[want->first]);
        }
        return which == 0 ? differ(("first " + what).c_str(), on(0)->first(r), on(1)->first(r), want)
                          : differ(("last " + what).c_str(), on(0)->last(r), on(1)->last(r), want);
      }
      auto keys = model_range(r, false);
      if (which == 2) {
        std::optional<K> want;
        if (!keys.empty()) want = keys.back().first;
        return differ(("last_key " + what).c_str(), on(0)->last_key(r), on(1)->last_key(r), want);
      }
      if (which == 3) {
        return differ(("count " + what).c_str(), on(0)->count(r), on(1)->count(r),
                      static_cast<uint64_t>(keys.size()));
      }
      return differ(("is_empty " + what).c_str(), on(0)->is_empty(r), on(1)->is_empty(r), keys.empty());
    }
    if (op < 86) {  // clear
      for (int s = 0; s < 2; ++s) on(s)->clear();
      model().clear();
      return "";
    }
    if (op < 96) {  // time passes
      clock_.advance(static_cast<int64_t>(rng_() % 300));
      return "";
    }
    if (op < 97) return checkpoint_and_restore();
    return "";  // an idle step
  }

  // Snapshots every backend of both sides and restores at a random parallelism.
  std::string checkpoint_and_restore() {
    const int64_t id = ++checkpoint_;
    std::vector<std::vector<KeyedStateHandle>> handles(2);
    for (int side = 0; side < 2; ++side) {
      for (size_t s = 0; s < sides_[side].backends.size(); ++s) {
        auto& b = *sides_[side].backends[s];
        auto part = b.snapshot(CheckpointId(id), storage_.target(id, false,
                                                                 "op-" + std::to_string(side) + "-" +
                                                                     std::to_string(s)));
        if (!part.is_ok()) return "snapshot: " + part.status().to_string();
        auto h = (*part)();
        if (!h.is_ok()) return "snapshot upload: " + h.status().to_string();
        b.notify_checkpoint_complete(CheckpointId(id));
        handles[side].push_back(*h);
      }
    }
    build(1 + static_cast<int>(rng_() % 3), handles);
    return "";
  }

  uint64_t seed_;
  std::mt19937_64 rng_;
  StateTtl ttl_;
  std::string dir_;
  CheckpointStorage storage_;
  RocksDBOptions rocks_options_;
  ManualClock clock_{kStart};
  Side sides_[2];  // 0 heap, 1 RocksDB
  int parallelism_ = 1;
  std::vector<std::string> user_keys_;
  std::map<std::pair<size_t, int>, Map> model_;
  size_t cur_key_ = 0;
  int cur_ns_ = 0;
  int step_ = 0;
  int next_ = 0;
  int64_t checkpoint_ = 0;
};

/// A temporary directory removed with its contents. In /dev/shm when there
/// is one: the test checks logic, not durability, and the fsyncs of its
/// checkpoints on a disk shared with other work would dominate its run time.
struct TempDir {
  TempDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (tmp && *tmp ? tmp : "/tmp");
    path = base + "/sluice-diff-XXXXXX";
    if (::mkdtemp(path.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
  }
  ~TempDir() { (void)remove_tree(path); }
  std::string path;
};

std::vector<uint64_t> seeds(uint64_t base) {
  if (const char* s = std::getenv("SLUICE_SEED")) return {std::strtoull(s, nullptr, 10)};
  int n = 6;
  if (const char* c = std::getenv("SLUICE_DIFF_SEEDS")) n = std::atoi(c);
  std::vector<uint64_t> out;
  for (int i = 0; i < n; ++i) out.push_back(base + static_cast<uint64_t>(i));
  return out;
}

template <class Keys>
void run_seeds(uint64_t base, StateTtl ttl, int steps) {
  for (uint64_t seed : seeds(base)) {
    TempDir dir;
    Differential<Keys> d(seed, ttl, dir.path);
    std::string err = d.run(steps);
    ASSERT_EQ(err, "") << "replay with SLUICE_SEED=" << seed;
  }
}

TEST(OrderedMapDifferential, IntegerKeysWithoutTtl) { run_seeds<IntKeys>(1000, StateTtl{}, 1500); }

TEST(OrderedMapDifferential, CompositeKeysWithoutTtl) { run_seeds<PairKeys>(2000, StateTtl{}, 1500); }

TEST(OrderedMapDifferential, IntegerKeysWithTtlRefreshedOnWrite) {
  run_seeds<IntKeys>(3000, StateTtl::on_create_and_write(Duration(1000)), 1500);
}

TEST(OrderedMapDifferential, CompositeKeysWithTtlRefreshedOnRead) {
  run_seeds<PairKeys>(4000, StateTtl::on_read_and_write(Duration(1000)), 1500);
}

}  // namespace
}  // namespace sluice::state
