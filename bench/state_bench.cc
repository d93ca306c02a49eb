// Keyed-state benchmark: heap vs RocksDB.
//
//   state_bench [--keys N] [--checkpoint-keys M] [--dir DIR] [--backend heap|rocksdb|both]
//
// 1. Updates/s of ValueState<int64_t> "count += 1" over N distinct keys
//    (default 10 million): a first pass where every key is new (read miss,
//    write) and a second pass over the same keys (read hit, write).
// 2. Checkpoints of M keys (default 1 million) into checkpoint storage under
//    DIR: a full one, then one after 1% of the keys changed (incremental for
//    RocksDB: only new SSTs are uploaded). Duration of the synchronous part
//    (task thread) and of the asynchronous part (upload), bytes written and
//    the size of the whole checkpoint.
// Prints a table. Figures, not a test: nothing is asserted.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
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
};

std::unique_ptr<KeyedStateBackend> make_backend(const std::string& kind, const Options& o,
                                                const std::string& name) {
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

void usage() {
  std::fprintf(stderr,
               "usage: state_bench [--keys N] [--checkpoint-keys M] [--dir DIR] "
               "[--backend heap|rocksdb|both]\n");
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
    else usage();
  }
  if (o.keys <= 0 || o.checkpoint_keys <= 0) usage();
  if (!make_dirs(o.dir).is_ok()) {
    std::fprintf(stderr, "cannot create %s\n", o.dir.c_str());
    return 1;
  }
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
  return 0;
}
