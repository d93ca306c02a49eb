// Keyed-state benchmark: heap vs RocksDB.
//
//   state_bench [--keys N] [--checkpoint-keys M] [--dir DIR] [--backend heap|rocksdb|both]
//               [--part values|ordered|all] [--map-keys K] [--map-entries E]
//
// 1. Updates/s of ValueState<int64_t> "count += 1" over N distinct keys
//    (default 10 million): a first pass where every key is new (read miss,
//    write) and a second pass over the same keys (read hit, write).
// 2. Checkpoints of M keys (default 1 million) into checkpoint storage under
//    DIR: a full one, then one after 1% of the keys changed (incremental for
//    RocksDB: only new SSTs are uploaded). Duration of the synchronous part
//    (task thread) and of the asynchronous part (upload), bytes written and
//    the size of the whole checkpoint.
// 3. OrderedMapState<int64_t, int64_t> as a join buffer (--part ordered or
//    all; not run by default, to keep bench/run.sh's run of this program as it was):
//    K keys (default 1000) x E timestamps (default 500), filled in time
//    order; reads of 16-entry ranges at random places; removal of the
//    oldest tenth of every key's buffer, five times (a watermark passing);
//    first_key() over what is left (removed entries in the way); and an
//    interval join's pattern (put, read the last 16 timestamps, remove
//    what the watermark passed every 8 or 128 timestamps). Heap, and
//    RocksDB with the default range-delete threshold, with DeleteRange
//    only and with point deletes only; each with its ratio to the heap.
// Prints tables. Figures, not a test: nothing is asserted.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "engine/common/clock.h"
#include "engine/common/serde.h"
#include "state/checkpoint_storage.h"
#include "state/heap_backend.h"
#include "state/key_groups.h"
#include "state/rocksdb_backend.h"
#include "state/state_factory.h"

using namespace sluice;
using namespace sluice::state;

namespace {

constexpr int32_t kMaxParallelism = kDefaultMaxParallelism;

double seconds_since(int64_t start_ns) { return static_cast<double>(monotonic_ns() - start_ns) / 1e9; }

int64_t peak_rss_mb() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}

struct Options {
  int64_t keys = 10'000'000;
  int64_t checkpoint_keys = 1'000'000;
  std::string dir = "/tmp/sluice-state-bench";
  std::string backend = "both";
  std::string part = "values";  // what bench.py runs; "ordered" / "all" add part 3
  int64_t map_keys = 1000;
  int64_t map_entries = 500;
};

std::unique_ptr<KeyedStateBackend> make_backend(const std::string& kind, const Options& o,
                                                const std::string& name,
                                                size_t range_delete_threshold = RocksDBOptions{}.range_delete_threshold) {
  KeyGroupRange all{0, kMaxParallelism - 1};
  if (kind == "heap") {
    return std::make_unique<HeapKeyedStateBackend>(all, kMaxParallelism, &SystemClock::instance());
  }
  BackendSpec spec;
  spec.range = all;
  spec.max_parallelism = kMaxParallelism;
  spec.clock = &SystemClock::instance();
  spec.instance_name = name;
  RocksDBOptions ro;
  ro.local_dir = o.dir + "/local";
  ro.range_delete_threshold = range_delete_threshold;
  auto b = RocksDBKeyedStateBackend::create(spec, ro);  // state.rocksdb.memory default: 256mb
  if (!b.is_ok()) {
    std::fprintf(stderr, "cannot create RocksDB backend: %s\n", b.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(*b);
}

/// count += 1 for keys [0, n) with stride `step`; returns updates per second.
double increment_pass(KeyedStateBackend& b, ValueState<int64_t>* count, int64_t n, int64_t step) {
  std::string key;
  int64_t start = monotonic_ns();
  int64_t updates = 0;
  for (int64_t i = 0; i < n; i += step) {
    key.clear();
    ByteWriter w(key);
    Serde<int64_t>::write(w, i);
    b.set_current_key(key, key_group_for_key(key, kMaxParallelism));
    count->update(count->value_or(0) + 1);
    ++updates;
  }
  return static_cast<double>(updates) / seconds_since(start);
}

struct CheckpointFigures {
  double sync_ms = 0;
  double async_ms = 0;
  int64_t written = 0;  // bytes this checkpoint wrote
  int64_t total = 0;    // bytes of the whole checkpoint (referenced files included)
  size_t files = 0, new_files = 0;
};

CheckpointFigures checkpoint(KeyedStateBackend& b, const CheckpointStorage& storage, int64_t id,
                             std::set<std::string>& known_shared) {
  CheckpointFigures f;
  int64_t start = monotonic_ns();
  auto part = b.snapshot(CheckpointId(id), storage.target(id, false, "bench"));
  f.sync_ms = seconds_since(start) * 1e3;
  if (!part.is_ok()) {
    std::fprintf(stderr, "snapshot failed: %s\n", part.status().to_string().c_str());
    std::exit(1);
  }
  start = monotonic_ns();
  auto handle = (*part)();
  f.async_ms = seconds_since(start) * 1e3;
  if (!handle.is_ok()) {
    std::fprintf(stderr, "snapshot upload failed: %s\n", handle.status().to_string().c_str());
    std::exit(1);
  }
  b.notify_checkpoint_complete(CheckpointId(id));
  for (const auto& file : handle->files) {
    f.total += file.size;
    ++f.files;
    bool fresh = !file.shared || known_shared.insert(file.path).second;
    if (fresh) {
      f.written += file.size;
      ++f.new_files;
    }
  }
  return f;
}

struct BenchResult {
  std::string backend;
  double insert_rate = 0, update_rate = 0;
  int64_t rss_mb = 0;
  CheckpointFigures full, incremental;
};

BenchResult run(const std::string& kind, const Options& o) {
  BenchResult r;
  r.backend = kind;
  {
    auto b = make_backend(kind, o, "bench-updates");
    auto* count = get_value_state(*b, ValueStateDescriptor<int64_t>{"count"});
    std::fprintf(stderr, "%s: %lld new keys...\n", kind.c_str(), static_cast<long long>(o.keys));
    r.insert_rate = increment_pass(*b, count, o.keys, 1);
    std::fprintf(stderr, "%s: the same %lld keys again...\n", kind.c_str(),
                 static_cast<long long>(o.keys));
    r.update_rate = increment_pass(*b, count, o.keys, 1);
    r.rss_mb = peak_rss_mb();
  }
  {
    std::string root = o.dir + "/checkpoints-" + kind;
    (void)remove_tree(root);
    CheckpointStorage storage(root, "bench");
    auto b = make_backend(kind, o, "bench-checkpoints");
    auto* count = get_value_state(*b, ValueStateDescriptor<int64_t>{"count"});
    increment_pass(*b, count, o.checkpoint_keys, 1);
    std::set<std::string> known;
    std::fprintf(stderr, "%s: checkpoints of %lld keys...\n", kind.c_str(),
                 static_cast<long long>(o.checkpoint_keys));
    r.full = checkpoint(*b, storage, 1, known);
    increment_pass(*b, count, o.checkpoint_keys, 100);  // 1% of the keys change
    r.incremental = checkpoint(*b, storage, 2, known);
    b.reset();
    (void)remove_tree(root);
  }
  return r;
}


void print_values(const Options& o) {
  std::vector<BenchResult> results;
  // RocksDB first: the heap run's memory would stay in the process's RSS.
  if (o.backend == "rocksdb" || o.backend == "both") results.push_back(run("rocksdb", o));
  if (o.backend == "heap" || o.backend == "both") results.push_back(run("heap", o));

  std::printf("\nValueState<int64_t> count += 1, %lld distinct keys, one thread (%ld cores online)\n",
              static_cast<long long>(o.keys), ::sysconf(_SC_NPROCESSORS_ONLN));
  std::printf("%-8s | %16s | %16s | %12s\n", "backend", "new keys upd/s", "existing upd/s",
              "peak RSS MB");
  for (const auto& r : results) {
    std::printf("%-8s | %16.0f | %16.0f | %12lld\n", r.backend.c_str(), r.insert_rate,
                r.update_rate, static_cast<long long>(r.rss_mb));
  }
  std::printf("\nCheckpoints of %lld keys (full, then after 1%% of the keys changed)\n",
              static_cast<long long>(o.checkpoint_keys));
  std::printf("%-8s | %-11s | %9s | %9s | %13s | %13s | %s\n", "backend", "checkpoint", "sync ms",
              "async ms", "written bytes", "total bytes", "files new/all");
  for (const auto& r : results) {
    for (const auto& [label, f] : {std::pair{"full", &r.full}, std::pair{"incremental", &r.incremental}}) {
      std::printf("%-8s | %-11s | %9.1f | %9.1f | %13lld | %13lld | %zu/%zu\n", r.backend.c_str(),
                  label, f->sync_ms, f->async_ms, static_cast<long long>(f->written),
                  static_cast<long long>(f->total), f->new_files, f->files);
    }
  }
}

// --- ordered map state --------------------------------------------------------------

constexpr int64_t kRangeWidth = 16;  // entries per range read
constexpr int kRemoveRounds = 5;     // each removes the oldest tenth
constexpr int64_t kJoinTimestamps = 300;

struct OrderedFigures {
  std::string variant;
  double puts = 0;           // put/s while filling
  double scan_entries = 0;   // entries/s read by 16-entry range reads
  double remove_ranges = 0;  // remove_range calls/s (each removes E/10 entries)
  double first_keys = 0;     // first_key()/s after the removals
  double join_small = 0;     // join events/s, removal every 8 timestamps
  double join_large = 0;     // join events/s, removal every 128 timestamps
};

/// Keys of the benchmark, serialized, with their key groups.
struct BenchKeys {
  explicit BenchKeys(int64_t n) {
    for (int64_t k = 0; k < n; ++k) {
      bytes.push_back(serialize(k));
      groups.push_back(key_group_for_key(bytes.back(), kMaxParallelism));
    }
  }
  void use(KeyedStateBackend& b, int64_t k) const {
    b.set_current_key(bytes[static_cast<size_t>(k)], groups[static_cast<size_t>(k)]);
  }
  std::vector<std::string> bytes;
  std::vector<KeyGroup> groups;
};

/// An interval join's buffer: per event of each key, buffer it, read the
/// last kRangeWidth timestamps (the probe), and every `every` timestamps
/// drop what the watermark passed. Returns events/s; a negative rate if it
/// stopped at kJoinBudgetS seconds (the rate of what it did by then).
constexpr double kJoinBudgetS = 20;
double join_pass(KeyedStateBackend& b, const BenchKeys& keys, const std::string& name,
                 int64_t every) {
  auto* m = get_ordered_map_state(b, OrderedMapStateDescriptor<int64_t, int64_t>{name});
  const int64_t n = static_cast<int64_t>(keys.bytes.size());
  int64_t sum = 0, events = 0;
  int64_t start = monotonic_ns();
  for (int64_t t = 0; t < kJoinTimestamps; ++t) {
    for (int64_t k = 0; k < n; ++k, ++events) {
      keys.use(b, k);
      m->put(t, t ^ k);
      for (const auto& [ts, v] : m->range(KeyRange<int64_t>::closed(t - kRangeWidth, t))) sum += v;
      if (t % every == every - 1) m->remove_range(KeyRange<int64_t>::below(t - kRangeWidth));
    }
    if (seconds_since(start) > kJoinBudgetS) {
      return -static_cast<double>(events) / seconds_since(start);
    }
  }
  if (sum == 42) std::fprintf(stderr, " ");  // keep the reads
  return static_cast<double>(events) / seconds_since(start);
}

OrderedFigures run_ordered(const std::string& variant, const std::string& kind, size_t threshold,
                           const Options& o) {
  OrderedFigures f;
  f.variant = variant;
  auto b = make_backend(kind, o, "bench-ordered", threshold);
  auto* m = get_ordered_map_state(*b, OrderedMapStateDescriptor<int64_t, int64_t>{"buffer"});
  const BenchKeys keys(o.map_keys);
  auto use = [&](int64_t k) { keys.use(*b, k); };
  std::fprintf(stderr, "ordered map, %s: %lld keys x %lld timestamps...\n", variant.c_str(),
               static_cast<long long>(o.map_keys), static_cast<long long>(o.map_entries));

  // Fill in time order, the keys interleaved as records of a stream arrive.
  int64_t start = monotonic_ns();
  for (int64_t t = 0; t < o.map_entries; ++t) {
    for (int64_t k = 0; k < o.map_keys; ++k) {
      use(k);
      m->put(t, t ^ k);
    }
  }
  f.puts = static_cast<double>(o.map_keys * o.map_entries) / seconds_since(start);

  // Range reads at random places.
  std::mt19937_64 rng(42);
  const int64_t scans = std::max<int64_t>(20'000, o.map_keys * 20);
  int64_t entries = 0, sum = 0;
  start = monotonic_ns();
  for (int64_t i = 0; i < scans; ++i) {
    use(static_cast<int64_t>(rng() % static_cast<uint64_t>(o.map_keys)));
    int64_t lo = static_cast<int64_t>(rng() % static_cast<uint64_t>(o.map_entries - kRangeWidth));
    for (const auto& [t, v] : m->range(KeyRange<int64_t>::half_open(lo, lo + kRangeWidth))) {
      sum += v;
      ++entries;
    }
  }
  f.scan_entries = static_cast<double>(entries) / seconds_since(start);
  if (sum == 42) std::fprintf(stderr, " ");  // keep the reads

  // The watermark passes: each round removes the oldest tenth of every buffer.
  const int64_t tenth = std::max<int64_t>(1, o.map_entries / 10);
  start = monotonic_ns();
  for (int round = 1; round <= kRemoveRounds; ++round) {
    for (int64_t k = 0; k < o.map_keys; ++k) {
      use(k);
      m->remove_range(KeyRange<int64_t>::below(tenth * round));
    }
  }
  f.remove_ranges = static_cast<double>(o.map_keys * kRemoveRounds) / seconds_since(start);

  // The oldest live entry now lies behind the removed half.
  const int64_t lowest = tenth * kRemoveRounds;
  start = monotonic_ns();
  for (int64_t i = 0; i < scans; ++i) {
    use(static_cast<int64_t>(rng() % static_cast<uint64_t>(o.map_keys)));
    auto first = m->first_key();
    if (!first || *first != lowest) {
      std::fprintf(stderr, "wrong first key after removal\n");
      std::exit(1);
    }
  }
  f.first_keys = static_cast<double>(scans) / seconds_since(start);

  f.join_small = join_pass(*b, keys, "join-8", 8);
  f.join_large = join_pass(*b, keys, "join-128", 128);
  return f;
}

void print_ordered(const std::vector<OrderedFigures>& all, const Options& o) {
  std::printf("\nOrderedMapState<int64_t, int64_t>, %lld keys, one thread. x heap = the figure "
              "divided by the heap's in the same run.\n",
              static_cast<long long>(o.map_keys));
  std::printf("  fill: %lld timestamps per key; range: reads of %lld entries at random places;\n"
              "  removal: %d rounds removing the oldest tenth of every key (no reads between);\n"
              "  first_key: after the removals; join: per event put + read of the last %lld\n"
              "  timestamps, remove_range(below watermark) every 8 or 128 timestamps (%lld per key)\n",
              static_cast<long long>(o.map_entries), static_cast<long long>(kRangeWidth),
              kRemoveRounds, static_cast<long long>(kRangeWidth),
              static_cast<long long>(kJoinTimestamps));
  std::printf("  (a join figure marked ! stopped after %.0f s: the rate of what it did by then)\n",
              kJoinBudgetS);
  std::printf("%-22s | %9s | %9s %6s | %9s %6s | %11s %6s | %9s %6s | %9s %6s\n", "backend",
              "fill/s", "range e/s", "x heap", "removes/s", "x heap", "first_key/s", "x heap",
              "join-8 /s", "x heap", "join-128/s", "x heap");
  const OrderedFigures& h = all.front();
  auto join = [](double rate, double heap) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%9.0f%s %6.3f", std::abs(rate), rate < 0 ? "!" : " ",
                  std::abs(rate) / std::abs(heap));
    return std::string(buf);
  };
  for (const auto& f : all) {
    std::printf("%-22s | %9.0f | %9.0f %6.3f | %9.0f %6.3f | %11.0f %6.3f |%s |%s\n",
                f.variant.c_str(), f.puts, f.scan_entries, f.scan_entries / h.scan_entries,
                f.remove_ranges, f.remove_ranges / h.remove_ranges, f.first_keys,
                f.first_keys / h.first_keys, join(f.join_small, h.join_small).c_str(),
                join(f.join_large, h.join_large).c_str());
  }
}

void usage() {
  std::fprintf(stderr,
               "usage: state_bench [--keys N] [--checkpoint-keys M] [--dir DIR] "
               "[--backend heap|rocksdb|both] [--part values|ordered|all] [--map-keys K] "
               "[--map-entries E]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) usage();
    if (a == "--keys") o.keys = std::atoll(argv[++i]);
    else if (a == "--checkpoint-keys") o.checkpoint_keys = std::atoll(argv[++i]);
    else if (a == "--dir") o.dir = argv[++i];
    else if (a == "--backend") o.backend = argv[++i];
    else if (a == "--part") o.part = argv[++i];
    else if (a == "--map-keys") o.map_keys = std::atoll(argv[++i]);
    else if (a == "--map-entries") o.map_entries = std::atoll(argv[++i]);
    else usage();
  }
  if (o.keys <= 0 || o.checkpoint_keys <= 0 || o.map_keys <= 0 || o.map_entries < 20) usage();
  if (o.part != "values" && o.part != "ordered" && o.part != "all") usage();
  if (!make_dirs(o.dir).is_ok()) {
    std::fprintf(stderr, "cannot create %s\n", o.dir.c_str());
    return 1;
  }
  if (o.part == "values" || o.part == "all") print_values(o);
  if (o.part == "ordered" || o.part == "all") {
    // The heap is the baseline of the ratios, so it always runs.
    std::vector<OrderedFigures> ordered;
    ordered.push_back(run_ordered("heap", "heap", 0, o));
    if (o.backend != "heap") {
      // Below the default range_delete_threshold every removal here is a
      // batch of point deletes: the default is the first RocksDB row.
      ordered.push_back(run_ordered("rocksdb point deletes", "rocksdb", SIZE_MAX, o));
      ordered.push_back(run_ordered("rocksdb DeleteRange", "rocksdb", 0, o));
    }
    print_ordered(ordered, o);
  }
  return 0;
}
