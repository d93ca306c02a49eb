// Test-only sources, sinks and operators for running whole jobs on the
// LocalExecutor inside a test binary (no job library): a bounded source of
// an in-memory vector, a scriptable source driven by a function, a
// thread-safe collecting sink (optionally slow), a pass-through operator
// that logs the watermarks and records it sees, and TestJob, which turns a
// StreamGraph built with the DataStream API into a JobInstance and runs it.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/api/datastream.h"
#include "engine/graph/job_graph_builder.h"
#include "engine/proto/jobgraph.pb.h"
#include "engine/runtime/local_executor.h"

namespace sluice::rt_test {

using namespace std::chrono_literals;

/// Generous bound for anything a test waits for; only reached when broken.
inline constexpr auto kWait = std::chrono::seconds(15);

/// The record most job tests use.
struct Event {
  std::string key;
  int64_t ts = 0;
  int64_t value = 0;
  SLUICE_FIELDS(key, ts, value)
  bool operator==(const Event&) const = default;
  auto operator<=>(const Event&) const = default;
};

inline std::string to_string(const Event& e) {
  return "{" + e.key + ", ts " + std::to_string(e.ts) + ", value " + std::to_string(e.value) + "}";
}

inline runtime::WatermarkStrategy<Event> event_time(Duration bound = Duration(0)) {
  return runtime::WatermarkStrategy<Event>::for_bounded_out_of_orderness(bound)
      .with_timestamp_assigner([](const Event& e) { return e.ts; });
}

// ---- sources -----------------------------------------------------------------

/// A bounded source over a vector. Subtask i of p reads the records whose
/// index is i mod p, in order; record k of a subtask belongs to split
/// k mod `splits` (so each split has its own watermark). Records for which
/// `bad` returns true become dead letters (origin "vector", offset = index).
template <class T>
class VectorSource final : public runtime::Source<T> {
 public:
  explicit VectorSource(std::vector<T> records, int splits = 1,
                        std::function<bool(const T&)> bad = nullptr)
      : records_(std::make_shared<const std::vector<T>>(std::move(records))),
        splits_(splits),
        bad_(std::move(bad)) {}
  std::string description() const override { return "vector"; }
  bool bounded() const override { return true; }
  std::unique_ptr<runtime::SourceReader<T>> create_reader() const override {
    return std::make_unique<Reader>(records_, splits_, bad_);
  }

 private:
  class Reader final : public runtime::SourceReader<T> {
   public:
    Reader(std::shared_ptr<const std::vector<T>> records, int splits,
           std::function<bool(const T&)> bad)
        : records_(std::move(records)), splits_(splits), bad_(std::move(bad)) {}
    Status open(runtime::OperatorContext& ctx, runtime::SourceOutput<T>& out) override {
      subtask_ = ctx.info().subtask;
      parallelism_ = ctx.info().parallelism;
      next_ = static_cast<size_t>(subtask_);
      out.set_split_count(splits_);
      return Status::ok();
    }
    Result<runtime::PollStatus> poll_next(runtime::SourceOutput<T>& out) override {
      for (int n = 0; n < 64; ++n) {
        if (next_ >= records_->size()) {
          for (int s = 0; s < splits_; ++s) out.split_finished(s);
          return runtime::PollStatus::kEndOfInput;
        }
        const T& r = (*records_)[next_];
        if (bad_ && bad_(r)) {
          DeadLetter dl;
          dl.reason = "rejected by the test source";
          dl.origin = "vector";
          dl.offset = static_cast<int64_t>(next_);
          out.dead_letter(std::move(dl));
        } else {
          out.collect(r, static_cast<int>(k_ % splits_));
        }
        ++k_;
        next_ += static_cast<size_t>(parallelism_);
      }
      return runtime::PollStatus::kMoreAvailable;
    }

   private:
    std::shared_ptr<const std::vector<T>> records_;
    int splits_;
    std::function<bool(const T&)> bad_;
    int subtask_ = 0, parallelism_ = 1;
    size_t next_ = 0;
    int64_t k_ = 0;
  };

  // shared: the immutable records are read by every subtask's reader.
  std::shared_ptr<const std::vector<T>> records_;
  int splits_;
  std::function<bool(const T&)> bad_;
};

/// What a scripted reader asks its function for, and the answer.
template <class T>
struct Step {
  enum Kind { kRecord, kYield, kNothing, kEnd };
  Kind kind = kNothing;
  T value{};
  int split = 0;
  static Step record(T v, int split = 0) { return Step{kRecord, std::move(v), split}; }
  static Step yield() { return Step{kYield}; }      // end this poll (watermarks go out)
  static Step nothing() { return Step{kNothing}; }  // no input right now
  static Step end() { return Step{kEnd}; }
};

/// Per-reader state the script sees.
struct ReaderCtx {
  int subtask = 0;
  int parallelism = 1;
  int64_t seq = 0;    // records emitted by this reader so far
  int64_t phase = 0;  // free for the script
};

/// Counters shared by the test and every reader of a scripted source.
struct SourceStats {
  std::atomic<int64_t> emitted{0};  // after collect() returned
  std::atomic<int> ended{0};        // readers that returned kEndOfInput
};

/// A source whose readers ask `script` what to do next; unbounded unless
/// the script ends it. Up to 64 records per poll. Each reader has `splits`
/// splits, or `splits_of(subtask)` when given (say, 0 for a subtask that
/// got no Kafka partition).
template <class T>
class ScriptedSource final : public runtime::Source<T> {
 public:
  using Script = std::function<Step<T>(ReaderCtx&)>;
  ScriptedSource(Script script, int splits = 1, std::shared_ptr<SourceStats> stats = nullptr,
                 std::function<int(int subtask)> splits_of = nullptr)
      : script_(std::move(script)),
        splits_(splits),
        stats_(stats ? std::move(stats) : std::make_shared<SourceStats>()),
        splits_of_(std::move(splits_of)) {}
  std::string description() const override { return "scripted"; }
  bool bounded() const override { return false; }
  std::unique_ptr<runtime::SourceReader<T>> create_reader() const override {
    return std::make_unique<Reader>(script_, splits_, stats_, splits_of_);
  }

 private:
  class Reader final : public runtime::SourceReader<T> {
   public:
    Reader(Script script, int splits, std::shared_ptr<SourceStats> stats, std::function<int(int)> splits_of)
        : script_(std::move(script)), splits_(splits), stats_(std::move(stats)), splits_of_(std::move(splits_of)) {}
    Status open(runtime::OperatorContext& ctx, runtime::SourceOutput<T>& out) override {
      rc_.subtask = ctx.info().subtask;
      rc_.parallelism = ctx.info().parallelism;
      if (splits_of_) splits_ = splits_of_(rc_.subtask);
      out.set_split_count(splits_);
      return Status::ok();
    }
    Result<runtime::PollStatus> poll_next(runtime::SourceOutput<T>& out) override {
      for (int n = 0; n < 64; ++n) {
        Step<T> s = script_(rc_);
        switch (s.kind) {
          case Step<T>::kRecord:
            out.collect(s.value, s.split);
            ++rc_.seq;
            stats_->emitted.fetch_add(1);
            break;
          case Step<T>::kYield:
            return runtime::PollStatus::kMoreAvailable;
          case Step<T>::kNothing:
            return runtime::PollStatus::kNothingAvailable;
          case Step<T>::kEnd:
            for (int sp = 0; sp < splits_; ++sp) out.split_finished(sp);
            stats_->ended.fetch_add(1);
            return runtime::PollStatus::kEndOfInput;
        }
      }
      return runtime::PollStatus::kMoreAvailable;
    }

   private:
    Script script_;
    int splits_;
    std::shared_ptr<SourceStats> stats_;
    std::function<int(int)> splits_of_;
    ReaderCtx rc_;
  };

  Script script_;
  int splits_;
  // shared: the test reads the counters the readers update.
  std::shared_ptr<SourceStats> stats_;
  std::function<int(int)> splits_of_;
};

// ---- sinks -------------------------------------------------------------------

/// What a collecting sink received. Thread-safe; shared by the sink's
/// writers (task threads) and the test.
template <class T>
class Collected {
 public:
  struct Item {
    T value;
    int64_t ts = 0;
    int subtask = 0;
  };
  void add(const T& v, int64_t ts, int subtask) {
    {
      std::lock_guard lk(mu_);
      items_.push_back(Item{v, ts, subtask});
    }
    cv_.notify_all();
  }
  size_t size() const {
    std::lock_guard lk(mu_);
    return items_.size();
  }
  std::vector<Item> items() const {
    std::lock_guard lk(mu_);
    return items_;
  }
  std::vector<T> values() const {
    std::lock_guard lk(mu_);
    std::vector<T> out;
    for (const auto& i : items_) out.push_back(i.value);
    return out;
  }
  /// Waits until at least `n` items arrived; false on timeout.
  bool wait_for_size(size_t n, std::chrono::milliseconds timeout = kWait) const {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return items_.size() >= n; });
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<Item> items_;
};

/// Collects every record into a shared Collected<T>; waits `delay` per
/// record when given (a deliberately slow sink).
template <class T>
class CollectingSink final : public runtime::Sink<T> {
 public:
  explicit CollectingSink(std::shared_ptr<Collected<T>> store,
                          std::chrono::microseconds delay = std::chrono::microseconds(0))
      : store_(std::move(store)), delay_(delay) {}
  std::string description() const override { return "collect"; }
  std::unique_ptr<runtime::SinkWriter<T>> create_writer() const override {
    return std::make_unique<Writer>(store_, delay_);
  }

 private:
  class Writer final : public runtime::SinkWriter<T> {
   public:
    Writer(std::shared_ptr<Collected<T>> store, std::chrono::microseconds delay)
        : store_(std::move(store)), delay_(delay) {}
    Status open(runtime::OperatorContext& ctx) override {
      subtask_ = ctx.info().subtask;
      return Status::ok();
    }
    Status write(const T& v, EventTime ts) override {
      if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
      store_->add(v, ts.ms(), subtask_);
      return Status::ok();
    }

   private:
    std::shared_ptr<Collected<T>> store_;
    std::chrono::microseconds delay_;
    int subtask_ = 0;
  };

  // shared: the test reads what the writers of every subtask add.
  std::shared_ptr<Collected<T>> store_;
  std::chrono::microseconds delay_;
};

template <class T>
std::shared_ptr<const runtime::Sink<T>> collect_into(std::shared_ptr<Collected<T>> store,
                                                     std::chrono::microseconds delay = {}) {
  return std::make_shared<const CollectingSink<T>>(std::move(store), delay);
}

// ---- watermark probe ---------------------------------------------------------

/// What a probe saw, in order: records (with their key) and watermarks.
class ProbeLog {
 public:
  struct Entry {
    bool is_watermark = false;
    int64_t ts = 0;   // watermark, or record timestamp
    std::string key;  // records only
    int subtask = 0;
  };
  void add(Entry e) {
    {
      std::lock_guard lk(mu_);
      entries_.push_back(std::move(e));
    }
    cv_.notify_all();
  }
  std::vector<Entry> entries() const {
    std::lock_guard lk(mu_);
    return entries_;
  }
  std::vector<int64_t> watermarks() const {
    std::lock_guard lk(mu_);
    std::vector<int64_t> out;
    for (const auto& e : entries_)
      if (e.is_watermark) out.push_back(e.ts);
    return out;
  }
  /// Waits until `pred(entries)` holds; false on timeout.
  bool wait_until(const std::function<bool(const std::vector<Entry>&)>& pred,
                  std::chrono::milliseconds timeout = kWait) const {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return pred(entries_); });
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<Entry> entries_;
};

/// Passes Events through unchanged and logs what it sees.
class WatermarkProbe final : public runtime::OneInputOperator<Event> {
 public:
  explicit WatermarkProbe(std::shared_ptr<ProbeLog> log) : log_(std::move(log)) {}
  Status open() override {
    out_ = static_cast<runtime::Output<Event>*>(outputs().at(0));
    return Status::ok();
  }
  void process_element(const Event& v, EventTime ts) override {
    log_->add({false, ts.ms(), v.key, context().info().subtask});
    out_->collect(v, ts);
  }
  void process_watermark(EventTime wm) override {
    log_->add({true, wm.ms(), "", context().info().subtask});
    forward_watermark(wm);
  }

 private:
  std::shared_ptr<ProbeLog> log_;
  runtime::Output<Event>* out_ = nullptr;
};

/// Adds a WatermarkProbe after `in`.
inline api::DataStream<Event> probe(const api::DataStream<Event>& in, std::shared_ptr<ProbeLog> log,
                                    std::string name = "probe") {
  return in.add_one_input<Event>(std::move(name), "probe", [log]() {
    return std::make_unique<WatermarkProbe>(log);
  });
}

// ---- running a job -------------------------------------------------------------

/// A job built in the test: owns the StreamGraph the environment writes
/// into, then the JobInstance and the executor that runs it.
class TestJob {
 public:
  explicit TestJob(std::string name) : graph_(std::make_unique<runtime::StreamGraph>()), env_(*graph_) {
    graph_->job_name = name;
    job_id_ = std::move(name);
  }
  api::StreamExecutionEnvironment& env() { return env_; }

  /// StreamGraph -> JobGraph -> JobInstance. Call once, after building.
  Status prepare(int default_parallelism) {
    graph::JobGraphOptions go;
    go.default_parallelism = default_parallelism;
    SLUICE_ASSIGN_OR_RETURN(proto::JobGraph jg, graph::build_job_graph(*graph_, go));
    auto instance = std::make_shared<runtime::JobInstance>();
    instance->job_id = job_id_;
    instance->config = graph_->config;
    if (auto dir = instance->config.get("checkpoint.dir"); dir && !dir->empty()) {
      instance->checkpoints = std::make_shared<const state::CheckpointStorage>(*dir, job_id_);
    }
    instance->graph = std::shared_ptr<const runtime::StreamGraph>(std::move(graph_));
    instance->job_graph = std::make_shared<const proto::JobGraph>(std::move(jg));
    instance_ = std::move(instance);
    return Status::ok();
  }
  const proto::JobGraph& job_graph() const { return *instance_->job_graph; }

  /// Creates the executor (so another thread can cancel it), once.
  runtime::LocalExecutor& executor(runtime::LocalRunOptions options = {}) {
    if (!executor_) executor_ = std::make_unique<runtime::LocalExecutor>(instance_, std::move(options));
    return *executor_;
  }
  /// Runs the job to its end on this thread.
  Status run(runtime::LocalRunOptions options = {}) { return executor(std::move(options)).run(); }

  /// Runs the job on another thread; wait() and result() follow it. A job
  /// still running when the TestJob goes (a failed assertion) is cancelled.
  void start(runtime::LocalRunOptions options = {}) {
    auto& ex = executor(std::move(options));
    running_ = std::async(std::launch::async, [&ex] { return ex.run(); });
  }
  /// True once the started job has ended.
  bool wait(std::chrono::milliseconds timeout = kWait) {
    return running_.wait_for(timeout) == std::future_status::ready;
  }
  Status result() { return running_.get(); }

  ~TestJob() {
    if (running_.valid()) {
      executor_->cancel();
      running_.wait();
    }
  }

 private:
  std::unique_ptr<runtime::StreamGraph> graph_;
  api::StreamExecutionEnvironment env_;
  std::string job_id_;
  std::shared_ptr<const runtime::JobInstance> instance_;
  std::unique_ptr<runtime::LocalExecutor> executor_;
  std::future<Status> running_;
};

}  // namespace sluice::rt_test
