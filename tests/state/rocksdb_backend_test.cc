// RocksDB backend specifics: snapshots through a real checkpoint directory
// (incremental, shared files, savepoints), restore with other key-group
// ranges (rescaling), TTL cleanup by compaction, the process memory budget
// and the backend's working directory. Backend-independent behaviour is in
// the conformance suite (rocksdb_conformance_test.cc).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "engine/common/clock.h"
#include "engine/common/serde.h"
#include "state/backend_factory.h"
#include "state/checkpoint_storage.h"
#include "state/key_groups.h"
#include "state/rocksdb_backend.h"
#include "state/state_factory.h"

namespace sluice::state {
namespace {

constexpr int32_t kMax = kDefaultMaxParallelism;
constexpr int64_t kStart = 1'700'000'000'000;

/// A fresh directory, removed with its contents at the end of the test.
class TempDir {
 public:
  TempDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/sluice-rocks-test-XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    path_ = tmpl;
  }
  ~TempDir() { (void)remove_tree(path_); }
  const std::string& path() const { return path_; }
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

/// (inode, mtime ns) of a file: changes when the file is rewritten.
std::pair<uint64_t, int64_t> identity(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return {static_cast<uint64_t>(st.st_ino),
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

class RocksDBBackendTest : public ::testing::Test {
 protected:
  std::unique_ptr<RocksDBKeyedStateBackend> make(KeyGroupRange range = {0, kMax - 1},
                                                 const std::string& name = "op") {
    BackendSpec spec;
    spec.range = range;
    spec.max_parallelism = kMax;
    spec.clock = &clock_;
    spec.instance_name = name + "-" + std::to_string(next_++);
    RocksDBOptions o;
    o.local_dir = local_.path();
    o.memory_bytes = 64LL << 20;
    o.range_delete_threshold = range_delete_threshold_;
    auto b = RocksDBKeyedStateBackend::create(spec, o);
    EXPECT_TRUE(b.is_ok()) << b.status().to_string();
    return b.is_ok() ? std::move(*b) : nullptr;
  }

  static void use_key(KeyedStateBackend& b, const std::string& key) {
    std::string bytes = serialize(key);
    b.set_current_key(bytes, key_group_for_key(bytes, kMax));
  }
  static KeyGroup group_of(const std::string& key) {
    return key_group_for_key(serialize(key), kMax);
  }

  /// Runs both parts of a snapshot; fails the test on error.
  static KeyedStateHandle snapshot(KeyedStateBackend& b, int64_t id, const SnapshotTarget& t) {
    auto part = b.snapshot(CheckpointId(id), t);
    EXPECT_TRUE(part.is_ok()) << part.status().to_string();
    if (!part.is_ok()) return {};
    auto h = (*part)();
    EXPECT_TRUE(h.is_ok()) << h.status().to_string();
    return h.is_ok() ? *h : KeyedStateHandle{};
  }

  static std::set<std::string> shared_paths(const KeyedStateHandle& h) {
    std::set<std::string> out;
    for (const auto& f : h.files)
      if (f.shared) out.insert(f.path);
    return out;
  }

  ManualClock clock_{kStart};
  size_t range_delete_threshold_ = RocksDBOptions{}.range_delete_threshold;
  TempDir local_;  // backends' working directories
  TempDir store_;  // checkpoint storage
  int next_ = 0;
};

/// Every state kind the tests write, on one backend.
struct States {
  ValueState<int64_t>* count;
  ListState<std::string>* events;
  MapState<std::string, int64_t>* pages;

  static States on(KeyedStateBackend& b) {
    return {get_value_state(b, ValueStateDescriptor<int64_t>{"count"}),
            get_list_state(b, ListStateDescriptor<std::string>{"events"}),
            get_map_state(b, MapStateDescriptor<std::string, int64_t>{"pages"})};
  }
};

std::string key_of(int i) { return "user-" + std::to_string(i); }

/// Writes key i's state: count = i * 10 + version, two list elements, a map
/// entry per version; plus an event-time timer at 1000 + i in namespace "w".
void write_key(KeyedStateBackend& b, States& s, int i, int version) {
  std::string bytes = serialize(key_of(i));
  KeyGroup kg = key_group_for_key(bytes, kMax);
  b.set_current_key(bytes, kg);
  s.count->update(int64_t{i} * 10 + version);
  s.events->add("e" + std::to_string(version));
  s.pages->put("p" + std::to_string(version), i);
  b.timer_queue("event").add(1000 + i, kg, bytes, "w");
}

/// Checks key i as write_key left it after versions 0..last_version.
void expect_key(KeyedStateBackend& b, States& s, int i, int last_version) {
  std::string bytes = serialize(key_of(i));
  b.set_current_key(bytes, key_group_for_key(bytes, kMax));
  ASSERT_EQ(s.count->value(), int64_t{i} * 10 + last_version) << key_of(i);
  std::vector<std::string> events;
  std::vector<std::pair<std::string, int64_t>> pages;
  for (int v = 0; v <= last_version; ++v) {
    events.push_back("e" + std::to_string(v));
    pages.emplace_back("p" + std::to_string(v), i);
  }
  ASSERT_EQ(s.events->get(), events) << key_of(i);
  ASSERT_EQ(s.pages->entries(), pages) << key_of(i);
}

/// Every timer of the queue, in order.
std::vector<std::tuple<int64_t, int32_t, std::string, std::string>> drain(TimerQueue& q) {
  std::vector<std::tuple<int64_t, int32_t, std::string, std::string>> out;
  TimerEntry e;
  while (q.pop_due(std::numeric_limits<int64_t>::max(), e)) {
    out.emplace_back(e.ts, e.kg.value(), e.key, e.ns);
  }
  return out;
}

std::vector<std::tuple<int64_t, int32_t, std::string, std::string>> expected_timers(
    int n, KeyGroupRange range) {
  std::vector<std::tuple<int64_t, int32_t, std::string, std::string>> out;
  for (int i = 0; i < n; ++i) {
    std::string bytes = serialize(key_of(i));
    KeyGroup kg = key_group_for_key(bytes, kMax);
    if (range.contains(kg)) out.emplace_back(1000 + i, kg.value(), bytes, "w");
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ============================================================================
// Snapshots through a real checkpoint directory

TEST_F(RocksDBBackendTest, CheckpointRestoresEveryStateAndTimer) {
  CheckpointStorage storage(store_.path(), "job");
  constexpr int kKeys = 2000;
  auto b = make();
  States s = States::on(*b);
  for (int i = 0; i < kKeys; ++i) write_key(*b, s, i, 0);
  KeyedStateHandle h = snapshot(*b, 1, storage.target(1, false, "v1-0-op"));
  EXPECT_EQ(h.backend, "rocksdb");
  EXPECT_EQ(h.range(), (KeyGroupRange{0, kMax - 1}));
  EXPECT_FALSE(shared_paths(h).empty()) << "the SSTs go to shared/";
  for (const auto& f : h.files) {
    EXPECT_TRUE(exists(storage.job_dir() + "/" + f.path)) << f.path;
    if (f.shared) EXPECT_EQ(f.path.rfind("shared/", 0), 0u) << f.path;
    else EXPECT_EQ(f.path.rfind("chk-1/v1-0-op/", 0), 0u) << f.path;
  }
  EXPECT_FALSE(exists(b->local_dir() + "/chk-1")) << "the local checkpoint is removed after upload";

  // Changes after the snapshot are not in it.
  write_key(*b, s, 0, 1);
  b.reset();

  auto r = make();
  ASSERT_TRUE(r->restore({h}, storage.job_dir()).is_ok());
  States rs = States::on(*r);
  for (int i = 0; i < kKeys; ++i) expect_key(*r, rs, i, 0);
  EXPECT_EQ(drain(r->timer_queue("event")), expected_timers(kKeys, {0, kMax - 1}));
}

TEST_F(RocksDBBackendTest, SecondCheckpointUploadsOnlyNewFilesAndReferencesTheRest) {
  CheckpointStorage storage(store_.path(), "job");
  constexpr int kKeys = 5000;
  auto b = make();
  States s = States::on(*b);
  for (int i = 0; i < kKeys; ++i) write_key(*b, s, i, 0);
  KeyedStateHandle h1 = snapshot(*b, 1, storage.target(1, false, "op"));
  b->notify_checkpoint_complete(CheckpointId(1));
  std::set<std::string> first = shared_paths(h1);
  ASSERT_FALSE(first.empty());
  std::map<std::string, std::pair<uint64_t, int64_t>> before;
  for (const auto& p : first) before[p] = identity(storage.job_dir() + "/" + p);

  // 1% of the keys change.
  for (int i = 0; i < kKeys; i += 100) write_key(*b, s, i, 1);
  KeyedStateHandle h2 = snapshot(*b, 2, storage.target(2, false, "op"));
  std::set<std::string> second = shared_paths(h2);
  std::set<std::string> referenced, uploaded;
  for (const auto& p : second) (first.count(p) ? referenced : uploaded).insert(p);
  EXPECT_EQ(referenced, first) << "every SST of checkpoint 1 is still live and referenced";
  EXPECT_FALSE(uploaded.empty()) << "the changed keys are in a new SST";
  for (const auto& p : referenced) {
    EXPECT_EQ(identity(storage.job_dir() + "/" + p), before[p]) << p << " was written again";
  }
  int64_t new_sst_bytes = 0, all_sst_bytes = 0;
  for (const auto& f : h2.files) {
    if (!f.shared) continue;
    all_sst_bytes += f.size;
    if (uploaded.count(f.path)) new_sst_bytes += f.size;
  }
  EXPECT_LT(new_sst_bytes * 4, all_sst_bytes)
      << "after 1% of the keys changed, the new SSTs are a small part of the state";

  auto r = make();
  ASSERT_TRUE(r->restore({h2}, storage.job_dir()).is_ok());
  States rs = States::on(*r);
  for (int i = 0; i < kKeys; ++i) expect_key(*r, rs, i, i % 100 == 0 ? 1 : 0);
}

TEST_F(RocksDBBackendTest, UnconfirmedCheckpointIsNotReferenced) {
  CheckpointStorage storage(store_.path(), "job");
  auto b = make();
  States s = States::on(*b);
  for (int i = 0; i < 500; ++i) write_key(*b, s, i, 0);
  KeyedStateHandle h1 = snapshot(*b, 1, storage.target(1, false, "op"));
  // No notify_checkpoint_complete(1): checkpoint 1 may have been aborted.
  KeyedStateHandle h2 = snapshot(*b, 2, storage.target(2, false, "op"));
  // The same SSTs get the same shared names (so whichever checkpoint
  // completes holds them), but checkpoint 2 wrote them itself; its timers
  // file too (every timer: it cannot build on checkpoint 1's).
  auto ssts = [](const KeyedStateHandle& h) {
    std::set<std::string> out;
    for (const auto& p : shared_paths(h))
      if (p.find("-timers-") == std::string::npos) out.insert(p);
    return out;
  };
  EXPECT_EQ(ssts(h1), ssts(h2));
  EXPECT_EQ(shared_paths(h2).size(), ssts(h2).size() + 1);
  for (const auto& p : shared_paths(h2)) EXPECT_TRUE(exists(storage.job_dir() + "/" + p));
}

TEST_F(RocksDBBackendTest, DiscardingAnOlderCheckpointKeepsFilesTheNewerOneUses) {
  CheckpointStorage storage(store_.path(), "job");
  auto b = make();
  States s = States::on(*b);
  auto complete = [&](int64_t id, const KeyedStateHandle& h) {
    CheckpointMetadata m;
    m.id = id;
    m.job_name = "job";
    OperatorStateMeta op;
    op.uid = "op";
    SubtaskStateMeta st;
    st.keyed = h;
    op.subtasks.push_back(st);
    m.operators.push_back(op);
    ASSERT_TRUE(storage.write_metadata(m).is_ok());
    b->notify_checkpoint_complete(CheckpointId(id));
  };
  for (int i = 0; i < 1000; ++i) write_key(*b, s, i, 0);
  KeyedStateHandle h1 = snapshot(*b, 1, storage.target(1, false, "op"));
  complete(1, h1);
  for (int i = 0; i < 1000; i += 10) write_key(*b, s, i, 1);
  // A full compaction replaces checkpoint 1's SSTs: 2 shares nothing with 1.
  ASSERT_TRUE(b->compact().is_ok());
  KeyedStateHandle h2 = snapshot(*b, 2, storage.target(2, false, "op"));
  complete(2, h2);
  for (int i = 0; i < 1000; i += 10) write_key(*b, s, i, 2);
  KeyedStateHandle h3 = snapshot(*b, 3, storage.target(3, false, "op"));
  complete(3, h3);

  // Retain 1 checkpoint, as the coordinator does with checkpoint.retained=1.
  auto list = storage.list_completed();
  ASSERT_TRUE(list.is_ok());
  ASSERT_EQ(list->size(), 3u);
  std::set<std::string> keep = (*list)[2].meta.shared_files();
  ASSERT_TRUE(storage.discard((*list)[0], keep).is_ok());
  ASSERT_TRUE(storage.discard((*list)[1], keep).is_ok());
  for (const auto& p : shared_paths(h1)) {
    if (!keep.count(p)) {
      EXPECT_FALSE(exists(storage.job_dir() + "/" + p)) << p;
    }
  }
  b.reset();

  auto r = make();
  ASSERT_TRUE(r->restore({h3}, storage.job_dir()).is_ok());
  States rs = States::on(*r);
  for (int i = 0; i < 1000; ++i) expect_key(*r, rs, i, i % 10 == 0 ? 2 : 0);
}

TEST_F(RocksDBBackendTest, RestoredSharedFilesAreReferencedByTheNextCheckpoint) {
  CheckpointStorage storage(store_.path(), "job");
  auto b = make();
  States s = States::on(*b);
  for (int i = 0; i < 1000; ++i) write_key(*b, s, i, 0);
  // Checkpoint 1 holds RocksDB's files only (no write-cache file).
  b->flush_write_cache();
  KeyedStateHandle h1 = snapshot(*b, 1, storage.target(1, false, "op"));
  for (int i = 0; i < 1000; i += 10) write_key(*b, s, i, 1);  // only in the write cache
  KeyedStateHandle h4 = snapshot(*b, 4, storage.target(4, false, "op"));
  b.reset();

  auto r = make();
  ASSERT_TRUE(r->restore({h1}, storage.job_dir()).is_ok());
  EXPECT_EQ(r->confirmed_shared_files(), shared_paths(h1).size());
  States rs = States::on(*r);
  expect_key(*r, rs, 7, 0);  // reads only
  KeyedStateHandle h2 = snapshot(*r, 2, storage.target(2, false, "op"));
  EXPECT_EQ(shared_paths(h2), shared_paths(h1)) << "nothing new to upload after a restore";

  // The same restore into a job writing elsewhere cannot reference them.
  CheckpointStorage other(store_.sub("elsewhere"), "job");
  KeyedStateHandle h3 = snapshot(*r, 3, other.target(3, false, "op"));
  for (const auto& p : shared_paths(h3)) EXPECT_TRUE(exists(other.job_dir() + "/" + p)) << p;

  // A checkpoint with write-cache entries: they are written into RocksDB on
  // restore, so the next checkpoint adds one SST for them, nothing else.
  auto r4 = make();
  ASSERT_TRUE(r4->restore({h4}, storage.job_dir()).is_ok());
  States rs4 = States::on(*r4);
  for (int i = 0; i < 1000; ++i) expect_key(*r4, rs4, i, i % 10 == 0 ? 1 : 0);
  KeyedStateHandle h5 = snapshot(*r4, 5, storage.target(5, false, "op"));
  std::set<std::string> added;
  for (const auto& p : shared_paths(h5)) {
    if (!shared_paths(h4).count(p)) added.insert(p);
  }
  for (const auto& p : shared_paths(h4)) EXPECT_TRUE(shared_paths(h5).count(p)) << p;
  EXPECT_EQ(added.size(), 1u);
}

TEST_F(RocksDBBackendTest, SavepointIsSelfContained) {
  CheckpointStorage storage(store_.path(), "job");
  auto b = make();
  States s = States::on(*b);
  for (int i = 0; i < 800; ++i) write_key(*b, s, i, 0);
  snapshot(*b, 1, storage.target(1, false, "op"));
  b->notify_checkpoint_complete(CheckpointId(1));
  write_key(*b, s, 1, 1);

  SnapshotTarget t = storage.target(2, true, "op");
  ASSERT_TRUE(t.self_contained);
  KeyedStateHandle sp = snapshot(*b, 2, t);
  EXPECT_TRUE(shared_paths(sp).empty());
  bool has_sst = false;
  for (const auto& f : sp.files) {
    EXPECT_EQ(f.path.find("shared/"), std::string::npos) << f.path;
    EXPECT_TRUE(exists(t.job_dir + "/" + f.path)) << f.path;
    has_sst |= f.path.size() > 4 && f.path.substr(f.path.size() - 4) == ".sst";
  }
  EXPECT_TRUE(has_sst);
  b->notify_checkpoint_complete(CheckpointId(2));
  b.reset();

  // Without the job's shared files, the savepoint still restores.
  ASSERT_TRUE(remove_tree(storage.job_dir() + "/shared").is_ok());
  ASSERT_TRUE(remove_tree(storage.job_dir() + "/chk-1").is_ok());
  auto r = make();
  ASSERT_TRUE(r->restore({sp}, t.job_dir).is_ok());
  States rs = States::on(*r);
  for (int i = 0; i < 800; ++i) expect_key(*r, rs, i, i == 1 ? 1 : 0);
  EXPECT_EQ(r->confirmed_shared_files(), 0u);
}

// ============================================================================
// Rescaling: restore with other key-group ranges

std::vector<KeyGroupRange> ranges(int parallelism) {
  std::vector<KeyGroupRange> out;
  for (int i = 0; i < parallelism; ++i) out.push_back(key_group_range_for_subtask(kMax, parallelism, i));
  return out;
}

TEST_F(RocksDBBackendTest, RescalingTwoToThreeToOneKeepsEveryValueAndTimer) {
  CheckpointStorage storage(store_.path(), "job");
  constexpr int kKeys = 3000;

  // Parallelism 2.
  std::vector<KeyedStateHandle> gen1;
  {
    std::vector<std::unique_ptr<RocksDBKeyedStateBackend>> bs;
    std::vector<States> ss;
    for (auto r : ranges(2)) {
      bs.push_back(make(r));
      ss.push_back(States::on(*bs.back()));
    }
    for (int i = 0; i < kKeys; ++i) {
      int sub = subtask_for_key_group(kMax, 2, group_of(key_of(i)));
      write_key(*bs[sub], ss[sub], i, 0);
      if (i % 3 == 0) write_key(*bs[sub], ss[sub], i, 1);
    }
    for (size_t i = 0; i < bs.size(); ++i) {
      gen1.push_back(snapshot(*bs[i], 1, storage.target(1, false, "op-" + std::to_string(i))));
    }
  }

  // Parallelism 3: each subtask takes the key groups of its range from
  // whichever old snapshots hold them.
  std::vector<KeyedStateHandle> gen2;
  for (size_t sub = 0; sub < 3; ++sub) {
    KeyGroupRange r = ranges(3)[sub];
    std::vector<KeyedStateHandle> mine;
    for (const auto& h : gen1)
      if (!h.range().intersect(r).empty()) mine.push_back(h);
    auto b = make(r);
    ASSERT_TRUE(b->restore(mine, storage.job_dir()).is_ok());
    States s = States::on(*b);
    int n = 0;
    for (int i = 0; i < kKeys; ++i) {
      if (!r.contains(group_of(key_of(i)))) continue;
      expect_key(*b, s, i, i % 3 == 0 ? 1 : 0);
      ++n;
    }
    EXPECT_GT(n, 0);
    auto timers = drain(b->timer_queue("event"));
    EXPECT_EQ(timers, expected_timers(kKeys, r)) << "subtask " << sub;
    for (const auto& [ts, kg, key, ns] : timers) b->timer_queue("event").add(ts, KeyGroup(kg), key, ns);
    // Keys outside the range were not copied.
    ASSERT_TRUE(b->compact().is_ok());
    auto raw = b->raw_entry_count("count");
    ASSERT_TRUE(raw.is_ok());
    EXPECT_EQ(*raw, static_cast<uint64_t>(n));
    gen2.push_back(snapshot(*b, 2, storage.target(2, false, "op-" + std::to_string(sub))));
  }

  // Parallelism 1.
  auto b = make();
  ASSERT_TRUE(b->restore(gen2, storage.job_dir()).is_ok());
  States s = States::on(*b);
  for (int i = 0; i < kKeys; ++i) expect_key(*b, s, i, i % 3 == 0 ? 1 : 0);
  EXPECT_EQ(drain(b->timer_queue("event")), expected_timers(kKeys, {0, kMax - 1}));
}

TEST_F(RocksDBBackendTest, RefusesHeapSnapshots) {
  auto b = make();
  KeyedStateHandle h;
  h.backend = "heap";
  h.kg_start = 0;
  h.kg_end = kMax - 1;
  Status st = b->restore({h}, store_.path());
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("state.backend=heap"), std::string::npos) << st.message();
}

TEST_F(RocksDBBackendTest, RestoringAStateAsAnotherTypeThrows) {
  CheckpointStorage storage(store_.path(), "job");
  auto b = make();
  auto* v = get_value_state(*b, ValueStateDescriptor<int64_t>{"x"});
  use_key(*b, "alice");
  v->update(1);
  KeyedStateHandle h = snapshot(*b, 1, storage.target(1, false, "op"));
  auto r = make();
  ASSERT_TRUE(r->restore({h}, storage.job_dir()).is_ok());
  EXPECT_THROW(get_list_state(*r, ListStateDescriptor<int64_t>{"x"}), StateTypeError);
  EXPECT_THROW(get_value_state(*r, ValueStateDescriptor<std::string>{"x"}), StateTypeError);
  auto* ok = get_value_state(*r, ValueStateDescriptor<int64_t>{"x"});
  use_key(*r, "alice");
  EXPECT_EQ(ok->value(), 1);
}

// ============================================================================
// TTL

StateTtl ttl_ms(int64_t ms) {
  StateTtl t;
  t.ttl = Duration(ms);
  return t;
}

TEST_F(RocksDBBackendTest, CompactionRemovesExpiredEntriesThatAreNeverRead) {
  auto b = make();
  auto* v = get_value_state(*b, ValueStateDescriptor<int64_t>{"v", ttl_ms(1000)});
  auto* l = get_list_state(*b, ListStateDescriptor<int64_t>{"l", ttl_ms(1000)});
  auto* m = get_map_state(*b, MapStateDescriptor<int64_t, int64_t>{"m", ttl_ms(1000)});
  auto* keep = get_value_state(*b, ValueStateDescriptor<int64_t>{"keep"});
  for (int i = 0; i < 500; ++i) {
    use_key(*b, key_of(i));
    v->update(i);
    l->add(i);
    m->put(i, i);
    m->put(i + 1, i);
    keep->update(i);
  }
  clock_.advance(500);
  for (int i = 0; i < 100; ++i) {  // written later: still live after the first batch expires
    use_key(*b, key_of(1000 + i));
    v->update(i);
  }
  clock_.advance(600);  // the first 500 keys are 1100 ms old, the last 100 are 600 ms old
  ASSERT_TRUE(b->compact().is_ok());
  EXPECT_EQ(*b->raw_entry_count("v"), 100u);
  EXPECT_EQ(*b->raw_entry_count("l"), 0u);
  EXPECT_EQ(*b->raw_entry_count("m"), 0u);
  EXPECT_EQ(*b->raw_entry_count("keep"), 500u);
  use_key(*b, key_of(1042));
  EXPECT_EQ(v->value(), 42);
  use_key(*b, key_of(42));
  EXPECT_EQ(keep->value(), 42);
  EXPECT_EQ(v->value(), std::nullopt);
}

TEST_F(RocksDBBackendTest, ReadingAnExpiredEntryDeletesIt) {
  auto b = make();
  auto* v = get_value_state(*b, ValueStateDescriptor<int64_t>{"v", ttl_ms(1000)});
  use_key(*b, "alice");
  v->update(1);
  clock_.advance(1001);
  EXPECT_EQ(*b->raw_entry_count("v"), 1u);
  EXPECT_EQ(v->value(), std::nullopt);
  EXPECT_EQ(*b->raw_entry_count("v"), 0u);
}

TEST_F(RocksDBBackendTest, ExpiredEntriesAreNotCarriedOverByRescaling) {
  CheckpointStorage storage(store_.path(), "job");
  auto b = make(ranges(2)[0]);
  auto* v = get_value_state(*b, ValueStateDescriptor<int64_t>{"v", ttl_ms(1000)});
  int written = 0;
  for (int i = 0; i < 200; ++i) {
    if (!ranges(2)[0].contains(group_of(key_of(i)))) continue;
    use_key(*b, key_of(i));
    v->update(i);
    ++written;
  }
  KeyedStateHandle h = snapshot(*b, 1, storage.target(1, false, "op"));
  clock_.advance(2000);
  auto r = make();
  ASSERT_TRUE(r->restore({h}, storage.job_dir()).is_ok());
  get_value_state(*r, ValueStateDescriptor<int64_t>{"v", ttl_ms(1000)});
  EXPECT_GT(written, 0);
  EXPECT_EQ(*r->raw_entry_count("v"), 0u);
}

TEST_F(RocksDBBackendTest, CompactionRemovesExpiredOrderedMapEntries) {
  auto b = make();
  auto* m = get_ordered_map_state(
      *b, OrderedMapStateDescriptor<int64_t, int64_t>{"m", ttl_ms(1000)});
  for (int i = 0; i < 300; ++i) {
    use_key(*b, key_of(i));
    for (int64_t t = 0; t < 10; ++t) m->put(t, t);
  }
  clock_.advance(600);
  use_key(*b, key_of(7));
  m->put(100, 100);
  clock_.advance(500);
  ASSERT_TRUE(b->compact().is_ok());
  EXPECT_EQ(*b->raw_entry_count("m"), 1u);
  EXPECT_EQ(m->first(), (std::pair<int64_t, int64_t>{100, 100}));
}

// ============================================================================
// Range removal: point deletes and DeleteRange

TEST_F(RocksDBBackendTest, RangeRemovalOutlivesFlushCompactionCheckpointAndRescaling) {
  for (size_t threshold : {size_t{0}, size_t{1000000}}) {
    SCOPED_TRACE(threshold == 0 ? "DeleteRange" : "point deletes");
    range_delete_threshold_ = threshold;
    CheckpointStorage storage(store_.path(), "job-" + std::to_string(threshold));
    auto b = make();
    auto* m = get_ordered_map_state(*b, OrderedMapStateDescriptor<int64_t, int64_t>{"m"});
    constexpr int kKeys = 100;
    for (int i = 0; i < kKeys; ++i) {
      use_key(*b, key_of(i));
      for (int64_t t = 0; t < 100; ++t) m->put(t, i);
    }
    ASSERT_TRUE(b->compact().is_ok());  // the entries are in SSTs, below the tombstones
    for (int i = 0; i < kKeys; ++i) {
      use_key(*b, key_of(i));
      m->remove_range(KeyRange<int64_t>::below(90));
    }
    KeyedStateHandle h = snapshot(*b, 1, storage.target(1, false, "op"));
    for (KeyGroupRange range : {KeyGroupRange{0, kMax - 1}, ranges(2)[0], ranges(2)[1]}) {
      SCOPED_TRACE(range.to_string());
      auto r = make(range);
      ASSERT_TRUE(r->restore({h}, storage.job_dir()).is_ok());
      auto* rm = get_ordered_map_state(*r, OrderedMapStateDescriptor<int64_t, int64_t>{"m"});
      for (int i = 0; i < kKeys; ++i) {
        if (!range.contains(group_of(key_of(i)))) continue;
        use_key(*r, key_of(i));
        ASSERT_EQ(rm->count(), 10u) << key_of(i);
        ASSERT_EQ(rm->first_key(), 90);
        ASSERT_EQ(rm->get(5), std::nullopt);
      }
    }
    ASSERT_TRUE(b->compact().is_ok());
    EXPECT_EQ(*b->raw_entry_count("m"), uint64_t{kKeys} * 10) << "compaction drops what was removed";
  }
}

// ============================================================================
// Memory budget and working directories

TEST_F(RocksDBBackendTest, EveryBackendOfTheProcessSharesOneConfiguredBudget) {
  ASSERT_EQ(RocksDBMemoryBudget::current(), nullptr) << "no backend alive before the test";
  Configuration config({{"state.backend", "rocksdb"},
                        {"state.rocksdb.memory", "96mb"},
                        {"state.rocksdb.local-dir", local_.sub("cfg")}});
  BackendSpec spec;
  spec.max_parallelism = kMax;
  spec.clock = &clock_;
  spec.range = ranges(2)[0];
  spec.instance_name = "job-a0-op-0";
  auto b1 = create_keyed_backend(config, spec, BackendKind::kHeap);
  ASSERT_TRUE(b1.is_ok()) << b1.status().to_string();
  ASSERT_EQ((*b1)->kind(), BackendKind::kRocksDB);
  spec.range = ranges(2)[1];
  spec.instance_name = "job-a0-op-1";
  auto b2 = create_keyed_backend(config, spec, BackendKind::kHeap);
  ASSERT_TRUE(b2.is_ok());

  auto budget = RocksDBMemoryBudget::current();
  ASSERT_NE(budget, nullptr);
  EXPECT_EQ(budget->bytes(), 96LL << 20);
  EXPECT_EQ(budget->block_cache_capacity(), 96LL << 20);
  EXPECT_EQ(budget->write_buffer_limit(), 48LL << 20);
  auto& r1 = static_cast<RocksDBKeyedStateBackend&>(**b1);
  auto& r2 = static_cast<RocksDBKeyedStateBackend&>(**b2);
  EXPECT_EQ(&r1.memory(), budget.get());
  EXPECT_EQ(&r2.memory(), budget.get());
  EXPECT_EQ(r1.local_dir().rfind(local_.sub("cfg") + "/job-a0-op-0.", 0), 0u) << r1.local_dir();

  // Memtables of both backends are charged to the shared manager.
  int64_t before = budget->write_buffer_usage();
  for (auto* r : {&r1, &r2}) {
    auto* v = get_value_state(*r, ValueStateDescriptor<std::string>{"v"});
    for (int i = 0; i < 5000; ++i) {
      std::string k = key_of(i);
      if (!r->key_group_range().contains(group_of(k))) continue;
      use_key(*r, k);
      v->update(std::string(100, 'x'));
    }
  }
  EXPECT_GT(budget->write_buffer_usage(), before);
  EXPECT_LE(budget->block_cache_usage(), budget->block_cache_capacity() + (8LL << 20));

  b1->reset();
  EXPECT_NE(RocksDBMemoryBudget::current(), nullptr) << "still held by the second backend";
  budget.reset();
  b2->reset();
  EXPECT_EQ(RocksDBMemoryBudget::current(), nullptr) << "released with the last backend";
}

TEST_F(RocksDBBackendTest, BadMemoryConfigurationIsRejected) {
  BackendSpec spec;
  spec.range = {0, kMax - 1};
  spec.clock = &clock_;
  spec.instance_name = "x";
  auto tiny = create_keyed_backend(Configuration({{"state.backend", "rocksdb"},
                                                  {"state.rocksdb.memory", "1mb"},
                                                  {"state.rocksdb.local-dir", local_.path()}}),
                                   spec, BackendKind::kHeap);
  EXPECT_EQ(tiny.status().code(), StatusCode::kInvalidArgument);
  auto bad = create_keyed_backend(Configuration({{"state.backend", "rocksdb"},
                                                 {"state.rocksdb.memory", "lots"}}),
                                  spec, BackendKind::kHeap);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("state.rocksdb.memory"), std::string::npos)
      << bad.status().message();
}

TEST_F(RocksDBBackendTest, WorkingDirectoryIsRemovedWithTheBackend) {
  auto b = make({0, kMax - 1}, "job-a0-uid with spaces/and slashes");
  std::string dir = b->local_dir();
  EXPECT_EQ(dir.find(' '), std::string::npos);
  EXPECT_TRUE(exists(dir + "/db/CURRENT"));
  b.reset();
  EXPECT_FALSE(exists(dir));
}

TEST_F(RocksDBBackendTest, DirectoriesOfDeadProcessesAreCleanedUp) {
  // A directory named like a working directory of a process that is gone.
  pid_t dead = 0;
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  int status = 0;
  ::waitpid(child, &status, 0);
  dead = child;
  std::string stale = local_.path() + "/job-a0-op-0.p" + std::to_string(dead) + ".abcdef0123";
  ASSERT_TRUE(make_dirs(stale + "/db").is_ok());
  std::string mine = local_.path() + "/job-a0-op-0.p" + std::to_string(::getpid()) + ".0000000000";
  ASSERT_TRUE(make_dirs(mine).is_ok());
  auto b = make();
  EXPECT_FALSE(exists(stale));
  EXPECT_TRUE(exists(mine)) << "a live process's directory is left alone";
}

// ============================================================================
// Merging namespaces with state that went through a snapshot (the merge
// operator's operands and full values mix).

TEST_F(RocksDBBackendTest, ListAppendsBeforeAndAfterAFlushMergeInOrder) {
  CheckpointStorage storage(store_.path(), "job");
  auto b = make();
  auto* l = get_list_state(*b, ListStateDescriptor<int64_t>{"l"});
  use_key(*b, "alice");
  l->set_namespace("w1");
  l->add(1);
  l->add(2);
  snapshot(*b, 1, storage.target(1, false, "op"));  // flushes: 1, 2 are in an SST
  l->add(3);
  l->set_namespace("w2");
  l->add_all({4, 5});
  l->merge_namespaces("w1", {"w2"});
  l->set_namespace("w1");
  EXPECT_EQ(l->get(), (std::vector<int64_t>{1, 2, 3, 4, 5}));
  ASSERT_TRUE(b->compact().is_ok());
  EXPECT_EQ(l->get(), (std::vector<int64_t>{1, 2, 3, 4, 5}));
  l->set_namespace("w2");
  EXPECT_TRUE(l->get().empty());
}

}  // namespace
}  // namespace sluice::state
