// Local pre-aggregation of window aggregates (operators/window/local_combiner.h)
// on whole jobs on the LocalExecutor: the combined job against the same job
// with local_combine(false) and against a brute-force reference, on seeded
// random inputs (tumbling and sliding windows, heap and RocksDB, p1 and p2,
// late records within and beyond the allowed lateness, checkpoints while it
// runs), and a restore from a checkpoint taken mid-stream.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <random>
#include <thread>
#include <tuple>

#include "tests/runtime/test_job.h"

namespace sluice::rt_test {
namespace {

/// A per-window result: count, sum, min and max of `value`.
struct Stats {
  std::string key;
  int64_t start = 0;
  int64_t end = 0;
  int64_t count = 0;
  int64_t sum = 0;
  int64_t min = 0;
  int64_t max = 0;
  SLUICE_FIELDS(key, start, end, count, sum, min, max)
  bool operator==(const Stats&) const = default;
  auto operator<=>(const Stats&) const = default;
};

std::string to_string(const Stats& s) {
  return s.key + " [" + std::to_string(s.start) + "," + std::to_string(s.end) + ") n=" + std::to_string(s.count) +
         " sum=" + std::to_string(s.sum) + " min=" + std::to_string(s.min) + " max=" + std::to_string(s.max);
}

struct StatsAcc {
  int64_t count = 0, sum = 0, min = INT64_MAX, max = INT64_MIN;
  SLUICE_FIELDS(count, sum, min, max)
};

/// A user aggregate (not combined unless the job opts in).
class StatsAggregate final : public state::AggregateFunction<Event, StatsAcc, StatsAcc> {
 public:
  StatsAcc create_accumulator() const override { return {}; }
  void add(StatsAcc& a, const Event& e) const override {
    ++a.count;
    a.sum += e.value;
    a.min = std::min(a.min, e.value);
    a.max = std::max(a.max, e.value);
  }
  StatsAcc get_result(const StatsAcc& a) const override { return a; }
  void merge(StatsAcc& into, const StatsAcc& o) const override {
    into.count += o.count;
    into.sum += o.sum;
    into.min = std::min(into.min, o.min);
    into.max = std::max(into.max, o.max);
  }
};

/// A VectorSource whose readers checkpoint their position (so a restored
/// job resumes where the checkpoint was), `sleep` per poll of 64 records.
class RestorableSource final : public runtime::Source<Event> {
 public:
  RestorableSource(std::vector<Event> records, std::chrono::microseconds sleep)
      : records_(std::make_shared<const std::vector<Event>>(std::move(records))), sleep_(sleep) {}
  std::string description() const override { return "restorable vector"; }
  bool bounded() const override { return true; }
  std::unique_ptr<runtime::SourceReader<Event>> create_reader() const override {
    return std::make_unique<Reader>(records_, sleep_);
  }

 private:
  class Reader final : public runtime::SourceReader<Event> {
   public:
    Reader(std::shared_ptr<const std::vector<Event>> r, std::chrono::microseconds sleep)
        : records_(std::move(r)), sleep_(sleep) {}
    Status open(runtime::OperatorContext& ctx, runtime::SourceOutput<Event>& out) override {
      subtask_ = ctx.info().subtask;
      parallelism_ = ctx.info().parallelism;
      next_ = static_cast<size_t>(subtask_);
      for (const auto& [subtask, next] : restored_) {
        if (subtask == subtask_) next_ = static_cast<size_t>(next);
      }
      out.set_split_count(1);
      return Status::ok();
    }
    Result<runtime::PollStatus> poll_next(runtime::SourceOutput<Event>& out) override {
      if (sleep_.count() > 0) std::this_thread::sleep_for(sleep_);
      for (int n = 0; n < 64; ++n) {
        if (next_ >= records_->size()) {
          out.split_finished(0);
          return runtime::PollStatus::kEndOfInput;
        }
        out.collect((*records_)[next_], 0);
        next_ += static_cast<size_t>(parallelism_);
      }
      return runtime::PollStatus::kMoreAvailable;
    }
    Result<std::string> snapshot_state(CheckpointId) override {
      return serialize(std::pair<int64_t, int64_t>(subtask_, static_cast<int64_t>(next_)));
    }
    /// Same parallelism only (the test does not rescale).
    Status restore_state(const runtime::OperatorRestore& restore) override {
      for (const auto& blob : restore.states) {
        if (blob.empty()) continue;
        std::pair<int64_t, int64_t> at;
        if (!deserialize(blob, at).is_ok()) return Status::corruption("test source state");
        restored_.push_back(at);
      }
      return Status::ok();
    }

   private:
    std::shared_ptr<const std::vector<Event>> records_;
    std::chrono::microseconds sleep_;
    int subtask_ = 0, parallelism_ = 1;
    size_t next_ = 0;
    std::vector<std::pair<int64_t, int64_t>> restored_;
  };

  std::shared_ptr<const std::vector<Event>> records_;
  std::chrono::microseconds sleep_;
};

std::string temp_dir() {
  std::string t = std::filesystem::temp_directory_path().string() + "/sluice-combine-XXXXXX";
  char* p = ::mkdtemp(t.data());
  return p ? std::string(p) : std::string();
}

struct Params {
  uint64_t seed = 0;
  int parallelism = 1;
  std::string backend = "heap";
  bool sliding = false;
  int64_t lateness = 0;
  bool late_events = false;  // some records beyond the watermark bound
  bool checkpoints = false;
};

std::string describe(const Params& p) {
  return "seed " + std::to_string(p.seed) + " p" + std::to_string(p.parallelism) + " " + p.backend +
         (p.sliding ? " sliding" : " tumbling") + " lateness " + std::to_string(p.lateness) +
         (p.late_events ? " late events" : "") + (p.checkpoints ? " checkpoints" : "");
}

constexpr int64_t kBound = 50;  // watermark bound (ms)
constexpr int64_t kSize = 200, kSlide = 50;

std::vector<Event> random_events(std::mt19937_64& rng, int n, bool late_events) {
  std::vector<Event> out;
  int64_t base = 1'000'000;
  for (int i = 0; i < n; ++i) {
    base += static_cast<int64_t>(rng() % 4);
    // Skewed keys: a few hot ones, a long tail.
    const uint64_t a = rng() % 40, b = rng() % 40;
    Event e;
    e.key = "k" + std::to_string(std::min(a, b));
    e.ts = base - static_cast<int64_t>(rng() % (kBound + 1));
    if (late_events && rng() % 30 == 0) e.ts = base - 100 - static_cast<int64_t>(rng() % 1500);
    e.value = static_cast<int64_t>(rng() % 2001) - 1000;
    out.push_back(std::move(e));
  }
  return out;
}

/// Every window of `ts`, written independently of WindowAssigner.
std::vector<std::pair<int64_t, int64_t>> windows_of(int64_t ts, bool sliding) {
  std::vector<std::pair<int64_t, int64_t>> w;
  if (!sliding) {
    w.emplace_back(ts - ts % kSize, ts - ts % kSize + kSize);
    return w;
  }
  for (int64_t s = ts - ts % kSlide; s > ts - kSize; s -= kSlide) w.emplace_back(s, s + kSize);
  return w;
}

/// The brute-force result for inputs without late records: every window
/// once, with everything in it.
std::vector<Stats> reference(const std::vector<Event>& events, bool sliding) {
  std::map<std::tuple<std::string, int64_t, int64_t>, Stats> m;
  for (const Event& e : events) {
    for (auto [s, end] : windows_of(e.ts, sliding)) {
      auto [it, created] = m.try_emplace({e.key, s, end});
      Stats& r = it->second;
      if (created) r = Stats{e.key, s, end, 0, 0, INT64_MAX, INT64_MIN};
      ++r.count;
      r.sum += e.value;
      r.min = std::min(r.min, e.value);
      r.max = std::max(r.max, e.value);
    }
  }
  std::vector<Stats> out;
  for (auto& [k, v] : m) out.push_back(v);
  return out;
}

struct Outcome {
  std::vector<Stats> stats;   // the user aggregate's results, sorted
  std::vector<Stats> counts;  // count() results (only key, window, count), sorted
  std::vector<Event> late;    // the late side output, sorted
  std::vector<Stats> stats_in_order, counts_in_order;  // as the sinks received them
  int restarts = 0;
};

template <class T>
std::vector<T> sorted(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v;
}

/// What a source feeds the windows through before key_by (the restore
/// test's failure injection).
using Middle = std::function<api::DataStream<Event>(api::DataStream<Event>)>;

/// The job: source -> [middle] -> key_by -> window -> StatsAggregate (and
/// count) with late side outputs. `combine`: the job's choice (unset: the
/// default, i.e. the user aggregate uncombined and count() combined).
Outcome run_job(const Params& p, std::shared_ptr<const runtime::Source<Event>> source, std::optional<bool> combine,
                Middle middle = nullptr, std::function<void(TestJob&)> during = nullptr) {
  Outcome o;
  std::string dir;
  TestJob job("combine-" + std::to_string(p.seed));
  auto& env = job.env();
  env.config().set("state.backend", p.backend);
  if (p.checkpoints) {
    dir = temp_dir();
    env.config().set("checkpoint.dir", dir);
    env.config().set("checkpoint.interval", "15ms");
  }
  auto stats = std::make_shared<Collected<Stats>>();
  auto counts = std::make_shared<Collected<Stats>>();
  auto late = std::make_shared<Collected<Event>>();
  auto in = env.from_source<Event>(source, event_time(Duration(kBound)), "events");
  if (middle) in = middle(in);
  auto assigner = p.sliding ? window::WindowAssigner::sliding(Duration(kSize), Duration(kSlide))
                            : window::WindowAssigner::tumbling(Duration(kSize));
  basic::OutputTag<Event> late_tag("late"), late_tag2("late-counts");
  auto w1 = in.key_by([](const Event& e) { return e.key; }).window(assigner);
  w1.allowed_lateness(Duration(p.lateness)).side_output_late_data(late_tag);
  if (combine) w1.local_combine(*combine);
  auto r1 = w1.aggregate(
      StatsAggregate{},
      [](const std::string& k, const window::TimeWindow& w, const StatsAcc& a) {
        return Stats{k, w.start, w.end, a.count, a.sum, a.min, a.max};
      },
      "stats");
  r1.sink_to(collect_into(stats), "stats sink");
  r1.get_side_output(late_tag).sink_to(collect_into(late), "late sink");
  auto w2 = in.key_by([](const Event& e) { return e.key; }).window(assigner);
  w2.allowed_lateness(Duration(p.lateness)).side_output_late_data(late_tag2);
  if (combine && !*combine) w2.local_combine(false);
  auto r2 = w2.count(
      [](const std::string& k, const window::TimeWindow& w, int64_t n) { return Stats{k, w.start, w.end, n, 0, 0, 0}; },
      "counts");
  r2.sink_to(collect_into(counts), "count sink");
  EXPECT_TRUE(job.prepare(p.parallelism).is_ok());
  runtime::LocalRunOptions options;
  options.restart.max_attempts = 1;
  options.restart.initial_backoff = Duration(10);
  job.start(options);
  if (during) during(job);
  EXPECT_TRUE(job.wait());
  Status st = job.result();
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  o.restarts = job.executor().summary().restarts;
  o.stats_in_order = stats->values();
  o.counts_in_order = counts->values();
  o.stats = sorted(o.stats_in_order);
  o.counts = sorted(o.counts_in_order);
  o.late = sorted(late->values());
  if (!dir.empty()) std::filesystem::remove_all(dir);
  return o;
}

std::vector<Stats> counts_only(const std::vector<Stats>& v) {
  std::vector<Stats> out;
  for (const Stats& s : v) out.push_back(Stats{s.key, s.start, s.end, s.count, 0, 0, 0});
  return sorted(out);
}

void expect_same(const std::vector<Stats>& got, const std::vector<Stats>& want, const std::string& what,
                 const Params& p) {
  ASSERT_EQ(got.size(), want.size()) << what << " (" << describe(p) << ")";
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i], want[i]) << what << " row " << i << ": " << to_string(got[i]) << " vs " << to_string(want[i])
                               << " (" << describe(p) << ")";
  }
}

// On inputs within the watermark bound, at p1 and p2: the combined job, the
// uncombined job and the reference agree exactly (every window once).
TEST(WindowLocalCombine, EqualsTheUncombinedJobAndAReferenceOnRandomInputs) {
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    std::mt19937_64 rng(seed);
    Params p;
    p.seed = seed;
    p.parallelism = 1 + static_cast<int>(seed % 2);
    p.backend = (seed / 2) % 2 ? "rocksdb" : "heap";
    p.sliding = (seed / 4) % 2;
    p.lateness = seed % 3 == 0 ? 100 : 0;
    p.checkpoints = seed % 3 != 1;
    SCOPED_TRACE(describe(p));
    auto events = random_events(rng, 6000, false);
    auto src = std::make_shared<const VectorSource<Event>>(events);
    const auto want = reference(events, p.sliding);
    Outcome combined = run_job(p, src, true);
    Outcome plain = run_job(p, src, false);
    expect_same(combined.stats, want, "combined", p);
    expect_same(plain.stats, want, "uncombined", p);
    expect_same(combined.counts, counts_only(want), "combined count()", p);
    expect_same(plain.counts, counts_only(want), "uncombined count()", p);
    EXPECT_TRUE(combined.late.empty() && plain.late.empty());
  }
}

// With records beyond the watermark bound (late, some within the allowed
// lateness): at p1 the window sees the records and watermarks of one source
// subtask in order, so lateness is deterministic, and the combined job must
// emit exactly what the uncombined one does — the same firings, updates and
// late records.
TEST(WindowLocalCombine, LateRecordsFireAndSideOutputAsWithoutTheCombiner) {
  for (uint64_t seed = 11; seed <= 16; ++seed) {
    std::mt19937_64 rng(seed);
    Params p;
    p.seed = seed;
    p.backend = seed % 2 ? "rocksdb" : "heap";
    p.sliding = (seed / 2) % 2;
    p.lateness = seed % 3 == 0 ? 0 : 400;
    p.late_events = true;
    p.checkpoints = seed % 2 == 0;
    SCOPED_TRACE(describe(p));
    auto events = random_events(rng, 6000, true);
    auto src = std::make_shared<const VectorSource<Event>>(events);
    Outcome combined = run_job(p, src, true);
    Outcome plain = run_job(p, src, false);
    EXPECT_FALSE(plain.late.empty()) << "the input should have late records";
    expect_same(combined.stats, plain.stats, "combined vs uncombined", p);
    expect_same(combined.counts, plain.counts, "count(): combined vs uncombined", p);
    EXPECT_EQ(combined.late, plain.late);
    if (p.lateness > 0) {
      // Updates from records within the lateness: some window fired twice.
      std::map<std::tuple<std::string, int64_t, int64_t>, int> firings;
      for (const Stats& s : combined.stats) ++firings[{s.key, s.start, s.end}];
      EXPECT_TRUE(std::any_of(firings.begin(), firings.end(), [](const auto& f) { return f.second > 1; }));
    }
  }
}

// The job fails mid-stream (after checkpoints completed) and restarts from
// the latest checkpoint: the latest result of every window is the
// reference's (the combiner lost or doubled nothing at the barrier), and
// every window is there. The sink is not transactional: windows that fired
// between the checkpoint and the failure fire again after the restore, and
// what the failing attempt emitted after its failure (the failed record is
// dropped while the rest of its poll batch and watermark still go out) is
// what an exactly-once sink would never commit — so only the latest result
// per window counts.
TEST(WindowLocalCombine, RestoresFromACheckpointMidStreamWithExactResults) {
  for (std::string backend : {"heap", "rocksdb"}) {
    std::mt19937_64 rng(42);
    Params p;
    p.seed = 42;
    p.parallelism = 2;
    p.backend = backend;
    p.sliding = backend == "rocksdb";
    p.checkpoints = true;
    SCOPED_TRACE(describe(p));
    auto events = random_events(rng, 40'000, false);
    auto src = std::make_shared<const RestorableSource>(events, std::chrono::microseconds(1500));
    auto fail_now = std::make_shared<std::atomic<bool>>(false);
    auto thrown = std::make_shared<std::atomic<bool>>(false);
    Middle fail_once = [fail_now, thrown](api::DataStream<Event> in) {
      return in.map(
          [fail_now, thrown](const Event& e) {
            if (fail_now->load() && !thrown->exchange(true)) throw std::runtime_error("injected failure");
            return e;
          },
          "fail once");
    };
    auto during = [fail_now](TestJob& job) {
      const auto deadline = std::chrono::steady_clock::now() + kWait;
      while (std::chrono::steady_clock::now() < deadline) {
        auto* c = job.executor().coordinator();
        if (c && c->stats().completed >= 2) break;
        std::this_thread::sleep_for(5ms);
      }
      fail_now->store(true);
    };
    Outcome o = run_job(p, src, true, fail_once, during);
    EXPECT_TRUE(thrown->load());
    EXPECT_EQ(o.restarts, 1);
    const auto want = reference(events, p.sliding);
    std::map<std::tuple<std::string, int64_t, int64_t>, Stats> want_by;
    for (const Stats& s : want) want_by[{s.key, s.start, s.end}] = s;
    std::map<std::tuple<std::string, int64_t, int64_t>, Stats> latest, latest_counts;
    for (const Stats& s : o.stats_in_order) latest[{s.key, s.start, s.end}] = s;
    for (const Stats& s : o.counts_in_order) latest_counts[{s.key, s.start, s.end}] = s;
    ASSERT_EQ(latest.size(), want_by.size()) << "windows missing or unexpected after the restore";
    ASSERT_EQ(latest_counts.size(), want_by.size());
    for (const auto& [k, want] : want_by) {
      ASSERT_EQ(latest[k], want) << "after the restore: " << to_string(latest[k]) << " vs " << to_string(want);
      ASSERT_EQ(latest_counts[k].count, want.count) << "count() after the restore: " << to_string(want);
    }
  }
}

// The API refuses a combiner where it cannot be exact.
TEST(WindowLocalCombine, IsRefusedForSessionAndProcessingTimeWindowsAndFullWindowFunctions) {
  TestJob job("refused");
  auto in = job.env().from_source<Event>(std::make_shared<const VectorSource<Event>>(std::vector<Event>{}),
                                         event_time(), "events");
  auto keyed = in.key_by([](const Event& e) { return e.key; });
  auto count = [](const std::string&, const window::TimeWindow&, int64_t n) { return n; };
  auto sessions = keyed.window(window::EventTimeSessionWindows::with_gap(Duration(10)));
  sessions.local_combine();
  EXPECT_THROW(sessions.count(count), std::invalid_argument);
  auto proc = keyed.window(window::TumblingProcessingTimeWindows::of(Duration(10)));
  proc.local_combine();
  EXPECT_THROW(proc.count(count), std::invalid_argument);
  auto early = keyed.window(window::TumblingEventTimeWindows::of(Duration(10)));
  early.early_firing(Duration(5)).local_combine();
  EXPECT_THROW(early.count(count), std::invalid_argument);
  // Without an explicit request those windows simply do not combine.
  EXPECT_NO_THROW(keyed.window(window::EventTimeSessionWindows::with_gap(Duration(10))).count(count));
}

}  // namespace
}  // namespace sluice::rt_test
