// The keyed CEP operator: one NFA per key over the key's events, its
// state in keyed state (heap or RocksDB), its deadlines on timers.
//
// Event time: a record waits in the key's buffer until the watermark passes
// it; then the key's records are processed in timestamp order (ties in
// arrival order), each after the deadlines before it. Records behind the
// watermark are late: side output, or dead letters. Processing time: each
// record is processed when it arrives, at the current processing time.
// Records that no condition of the pattern accepts (for patterns without
// next()/not_next()) change nothing and are neither buffered nor processed.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "operators/basic/functions.h"
#include "operators/cep/cep_metrics.h"
#include "operators/cep/keyed_store.h"
#include "operators/cep/nfa.h"

namespace sluice::cep {

enum class TimeMode : uint8_t { kEventTime, kProcessingTime };

/// Settings of one CEP operator. Unset limits come from the job
/// configuration: cep.max-partial-matches-per-key (default 10000),
/// cep.max-events-per-key (100000), cep.max-buffered-events-per-key
/// (100000), cep.limit-policy (drop-oldest | fail; default drop-oldest);
/// cep.state-cache-entries (1000000): items of recently used keys kept
/// decoded in memory between checkpoints (keyed_store.h).
struct CepOptions {
  TimeMode time = TimeMode::kEventTime;
  std::optional<int64_t> max_partial_matches;
  std::optional<int64_t> max_events;
  std::optional<int64_t> max_buffered;
  std::optional<NfaLimits::Policy> policy;
  /// Overrides cep.state-cache-entries (0: nothing stays cached beyond the
  /// key being processed).
  std::optional<int64_t> state_cache_entries;
  /// Side output for late records (event time); unset: dead letters.
  std::optional<std::string> late_tag;
  /// Side output for TimedOutMatch<E>; unset: only process_timed_out_match.
  std::optional<std::string> timed_out_tag;
};

/// What users implement: called with every match (and timed-out partial
/// match) of the pattern. One copy per subtask; task thread only.
template <class E, class OUT>
class PatternProcessFunction {
 public:
  class Context {
   public:
    virtual ~Context() = default;
    /// Time of what completed the match: the last event's timestamp, or
    /// the deadline - 1 for what time completed.
    virtual int64_t timestamp() const = 0;
    virtual int64_t current_processing_time() const = 0;
    /// Emits to a side output.
    template <class X>
    void output(const basic::OutputTag<X>& tag, const X& value) {
      if (auto* o = side(tag.id)) static_cast<runtime::Output<X>*>(o)->collect(value, EventTime(timestamp()));
    }

   protected:
    virtual runtime::OutputBase* side(const std::string& id) = 0;
  };

  virtual ~PatternProcessFunction() = default;
  /// Register state here (keyed state of the current key is available).
  virtual void open(basic::RuntimeContext& ctx) {}
  virtual void process_match(const Match<E>& match, Context& ctx, basic::Collector<OUT>& out) = 0;
  /// A partial match whose within() ran out, with the events it had.
  virtual void process_timed_out_match(const Match<E>& match, Context& ctx) {}
  virtual void close() {}
};

/// Per key group: what the subtask holds (for the gauges, exact across
/// restores and rescaling).
struct KeyGroupCounts {
  int64_t partial_matches = 0, held = 0, events = 0, buffered = 0;
  SLUICE_FIELDS(partial_matches, held, events, buffered)
};

template <class K, class E, class OUT, class F>
class CepOperator final : public runtime::KeyedOneInputOperator<K, E>, private NfaHost<E> {
  using Base = runtime::KeyedOneInputOperator<K, E>;

 public:
  CepOperator(std::shared_ptr<const runtime::KeySelector<E, K>> ks,
              std::shared_ptr<const CompiledPattern<E>> pattern, CepOptions options, const F& fn)
      : Base(std::move(ks)), pattern_(std::move(pattern)), options_(std::move(options)), fn_(fn), ctx_(this) {}

  Status initialize_state(const runtime::OperatorRestore& restore) override {
    runtime::OperatorRestore base = restore;
    base.states.clear();
    for (const std::string& blob : restore.states) {
      if (blob.empty()) continue;
      std::pair<std::string, SavedState> s;
      if (!deserialize(blob, s).is_ok()) return Status::corruption("CEP operator state does not decode");
      base.states.push_back(std::move(s.first));
      seq_ = std::max(seq_, s.second.seq);
      restored_counts_.insert(restored_counts_.end(), s.second.counts.begin(), s.second.counts.end());
    }
    return Base::initialize_state(base);
  }
  Result<std::string> snapshot_state(CheckpointId id) override {
    store_->flush();  // the backend's snapshot follows: it must hold every change
    Result<std::string> base = Base::snapshot_state(id);
    if (!base.is_ok()) return base.status();
    publish();
    SavedState s;
    s.seq = seq_;
    for (size_t g = 0; g < counts_.size(); ++g) {
      const KeyGroupCounts& c = counts_[g];
      if (c.partial_matches || c.held || c.events || c.buffered) {
        s.counts.emplace_back(this->backend_->key_group_range().start + static_cast<int32_t>(g), c);
      }
    }
    return serialize(std::make_pair(std::move(*base), s));
  }

  Status open() override {
    SLUICE_RETURN_IF_ERROR(Base::open());
    const runtime::OperatorInfo& info = this->context().info();
    const Configuration& cfg = this->context().job_config();
    NfaLimits limits;
    SLUICE_ASSIGN_OR_RETURN(limits.max_partial_matches,
                            cfg.get_int("cep.max-partial-matches-per-key", 10'000));
    SLUICE_ASSIGN_OR_RETURN(limits.max_events, cfg.get_int("cep.max-events-per-key", 100'000));
    SLUICE_ASSIGN_OR_RETURN(max_buffered_, cfg.get_int("cep.max-buffered-events-per-key", 100'000));
    const std::string policy = cfg.get_string("cep.limit-policy", "drop-oldest");
    if (policy == "fail") limits.policy = NfaLimits::Policy::kFail;
    else if (policy != "drop-oldest") {
      return Status::invalid_argument("cep.limit-policy must be drop-oldest or fail, not '" + policy + "'");
    }
    if (options_.max_partial_matches) limits.max_partial_matches = *options_.max_partial_matches;
    if (options_.max_events) limits.max_events = *options_.max_events;
    if (options_.max_buffered) max_buffered_ = *options_.max_buffered;
    if (options_.policy) limits.policy = *options_.policy;
    SLUICE_ASSIGN_OR_RETURN(int64_t cache_entries, cfg.get_int("cep.state-cache-entries", 1'000'000));
    if (options_.state_cache_entries) cache_entries = *options_.state_cache_entries;
    if (cache_entries < 0) return Status::invalid_argument("cep.state-cache-entries must be at least 0");
    if (limits.max_partial_matches < 1 || limits.max_events < 1 || max_buffered_ < 1) {
      return Status::invalid_argument("CEP limits must be at least 1");
    }
    store_ = std::make_unique<KeyedNfaStore<E>>(*this->backend_, static_cast<size_t>(cache_entries));
    nfa_ = std::make_unique<Nfa<E>>(pattern_, *store_, static_cast<NfaHost<E>&>(*this), limits);
    const state::KeyGroupRange& range = this->backend_->key_group_range();
    counts_.assign(static_cast<size_t>(range.size()), {});
    for (const auto& [kg, c] : restored_counts_) {
      if (!range.contains(KeyGroup(kg))) continue;
      KeyGroupCounts& mine = counts_[static_cast<size_t>(kg - range.start)];
      mine.partial_matches += c.partial_matches;
      mine.held += c.held;
      mine.events += c.events;
      mine.buffered += c.buffered;
      stats_.partial_matches += c.partial_matches;
      stats_.held += c.held;
      stats_.shared_events += c.events;
      stats_.buffered += c.buffered;
    }
    restored_counts_.clear();
    metrics_ = std::make_unique<CepMetrics>(info.job_name, info.operator_name, info.subtask);
    collector_.set_output(static_cast<runtime::Output<OUT>*>(this->outputs().at(0)));
    if (options_.late_tag) late_ = static_cast<runtime::Output<E>*>(this->context().side_output(*options_.late_tag));
    if (options_.timed_out_tag) {
      timed_out_ = static_cast<runtime::Output<TimedOutMatch<E>>*>(this->context().side_output(*options_.timed_out_tag));
    }
    basic::RuntimeContext rc(this->context());
    try {
      fn_.open(rc);
    } catch (const std::exception& e) {
      return Status::invalid_argument("open() of '" + info.operator_name + "' failed: " + e.what());
    }
    return Status::ok();
  }

  void process_element(const E& v, EventTime ts) override {
    if (!this->set_current_key_from(v)) return;
    const bool event_time = options_.time == TimeMode::kEventTime;
    if (event_time && ts.is_min()) {
      reject(v, "record has no event timestamp; give the source a timestamp assigner or use processing time");
      return;
    }
    const int64_t t = event_time ? ts.ms() : this->timers_->current_processing_time();
    const EventTime wm = this->timers_->current_watermark();
    if (event_time && !wm.is_min() && ts <= wm) {
      late(v, ts, wm);
      return;
    }
    bool inert = false;
    if (!guarded(v, [&] { inert = nfa_->is_inert(v, t); })) return;
    if (inert) {
      stats_.skipped++;
      return;
    }
    store_->select();
    if (!event_time) {
      process_one(v, t);
      return;
    }
    KeyGroupCounts& c = counts_[this->backend_->current_group_index()];
    const std::optional<int64_t> first = store_->buffer_first();
    if (!store_->buffer_add(t, seq_++, v, max_buffered_)) {
      reject(v, "CEP: the key already holds " + std::to_string(max_buffered_) +
                    " records waiting for the watermark (cep.max-buffered-events-per-key); is the "
                    "watermark advancing?");
      return;
    }
    c.buffered++;
    stats_.buffered++;
    // One timer per key, at its earliest buffered record: drain() takes
    // everything the watermark passed and sets the next one.
    if (!first || t < *first) this->timers_->register_event_time_timer(kBufferNs, t);
  }

  void process_watermark(EventTime wm) override {
    Base::process_watermark(wm);
    if (++watermarks_ % 16 == 0) publish();
  }
  void on_event_time(const state::TimerEntry& t) override {
    this->set_current_key_from_timer(t);
    store_->select();
    drain(this->timers_->current_watermark().ms());
  }
  void on_processing_time(const state::TimerEntry& t) override {
    this->set_current_key_from_timer(t);
    store_->select();
    run([&] { return nfa_->advance_time(this->timers_->current_processing_time()); }, nullptr);
  }
  void close() override {
    if (metrics_) publish();
    fn_.close();
  }

  /// For tests and benchmarks.
  const CepStats& stats() const { return stats_; }
  /// Whether F overrides process_timed_out_match (if not, the pointer to
  /// member names the base's no-op).
  static constexpr bool kOverridesTimedOut =
      !std::is_same_v<decltype(&F::process_timed_out_match),
                      void (PatternProcessFunction<E, OUT>::*)(const Match<E>&,
                                                               typename PatternProcessFunction<E, OUT>::Context&)>;

 private:
  static constexpr const char* kBufferNs = "b";
  static constexpr const char* kDeadlineNs = "d";

  struct SavedState {
    int64_t seq = 0;
    std::vector<std::pair<int32_t, KeyGroupCounts>> counts;
    SLUICE_FIELDS(seq, counts)
  };

  class Ctx final : public PatternProcessFunction<E, OUT>::Context {
   public:
    explicit Ctx(CepOperator* op) : op_(op) {}
    int64_t timestamp() const override { return ts_; }
    int64_t current_processing_time() const override { return op_->timers_->current_processing_time(); }
    int64_t ts_ = 0;

   protected:
    runtime::OutputBase* side(const std::string& id) override { return op_->context().side_output(id); }

   private:
    CepOperator* op_;
  };

  // Processes the key's buffered records up to the watermark, then its
  // deadlines up to the watermark + 1.
  void drain(int64_t wm) {
    KeyGroupCounts& c = counts_[this->backend_->current_group_index()];
    std::vector<std::pair<typename KeyedNfaStore<E>::BufferKey, E>>& batch = batch_;
    for (;;) {
      batch.clear();
      store_->buffer_take(wm, 256, batch);
      c.buffered -= static_cast<int64_t>(batch.size());
      stats_.buffered -= static_cast<int64_t>(batch.size());
      for (const auto& [key, e] : batch) process_one(e, key.first);
      if (batch.size() < 256) break;
    }
    if (auto next = store_->buffer_first()) this->timers_->register_event_time_timer(kBufferNs, *next);
    const int64_t until = wm == INT64_MAX ? kNoTime - 1 : wm + 1;
    run([&] { return nfa_->advance_time(until); }, nullptr);
  }

  void process_one(const E& e, int64_t t) {
    run([&] { return nfa_->process(e, t); }, &e);
  }

  // Runs an NFA call: user exceptions from conditions (the NFA's state is
  // left as before the record) become dead letters or a task failure, and
  // what the call changed is counted for the key group.
  template <class Fn>
  void run(Fn&& fn, const E* record) {
    const NfaCounts before = nfa_->counts();
    Status st = Status::ok();
    if (record) {
      guarded(*record, [&] { st = fn(); });
    } else {
      st = fn();
    }
    const NfaCounts& after = nfa_->counts();
    KeyGroupCounts& c = counts_[this->backend_->current_group_index()];
    c.partial_matches += after.partial_matches - before.partial_matches;
    c.held += after.held - before.held;
    c.events += after.events - before.events;
    stats_.partial_matches += after.partial_matches - before.partial_matches;
    stats_.held += after.held - before.held;
    stats_.shared_events += after.events - before.events;
    stats_.matches += after.matches - before.matches;
    stats_.timeouts += after.timeouts - before.timeouts;
    stats_.dropped += after.discarded - before.discarded;
    if (!st.is_ok()) this->context().fail(st);
  }
  template <class Fn>
  bool guarded(const E& record, Fn&& fn) {
    bool ok = false;
    basic::call_user(this->context(), record, [&] {
      fn();
      ok = true;
    });
    return ok;
  }

  // --- NfaHost ------------------------------------------------------------------
  void match(Match<E>&& m, int64_t ts) override {
    ctx_.ts_ = ts;
    collector_.set_timestamp(EventTime(ts));
    user(m, "match", [&] { fn_.process_match(m, ctx_, collector_); });
  }
  // Timed-out partial matches are read back only for someone: the side
  // output, or a function that overrides process_timed_out_match.
  bool wants_timed_out() const override { return kOverridesTimedOut || options_.timed_out_tag.has_value(); }
  void timed_out(Match<E>&& m, int64_t ts) override {
    ctx_.ts_ = ts;
    if (timed_out_) timed_out_->collect(TimedOutMatch<E>{m, ts}, EventTime(ts));
    user(m, "timed-out match", [&] { fn_.process_timed_out_match(m, ctx_); });
  }
  void discarded(Match<E>&& m, const std::string& reason) override {
    basic::dead_letter_for(this->context(), m, reason + " (cep.max-partial-matches-per-key / cep.max-events-per-key)");
  }
  void reschedule(int64_t old_deadline, int64_t new_deadline) override {
    if (options_.time == TimeMode::kEventTime) {
      if (old_deadline != kNoTime) this->timers_->delete_event_time_timer(kDeadlineNs, old_deadline - 1);
      if (new_deadline != kNoTime) this->timers_->register_event_time_timer(kDeadlineNs, new_deadline - 1);
    } else {
      if (old_deadline != kNoTime) this->timers_->delete_processing_time_timer(kDeadlineNs, old_deadline);
      if (new_deadline != kNoTime) this->timers_->register_processing_time_timer(kDeadlineNs, new_deadline);
    }
  }
  template <class Fn>
  void user(const Match<E>& m, const char* what, Fn&& fn) {
    try {
      fn();
    } catch (const InvalidRecord& e) {
      basic::dead_letter_for(this->context(), m, std::string(what) + " rejected: " + e.what());
    } catch (const std::exception& e) {
      this->context().fail(Status::internal("pattern function of '" + this->context().info().operator_name +
                                            "' threw: " + e.what()));
    }
  }

  void late(const E& v, EventTime ts, EventTime wm) {
    stats_.late++;
    if (late_) {
      late_->collect(v, ts);
      return;
    }
    this->context().metrics().late_records_dropped.fetch_add(1, std::memory_order_relaxed);
    reject(v, "late record: event time " + std::to_string(ts.ms()) + " is not after the watermark " +
                  std::to_string(wm.ms()));
  }
  void reject(const E& v, std::string reason) { basic::dead_letter_for(this->context(), v, std::move(reason)); }
  void publish() { metrics_->publish(stats_); }

  std::shared_ptr<const CompiledPattern<E>> pattern_;
  CepOptions options_;
  F fn_;
  Ctx ctx_;
  basic::Collector<OUT> collector_;
  runtime::Output<E>* late_ = nullptr;
  runtime::Output<TimedOutMatch<E>>* timed_out_ = nullptr;
  std::unique_ptr<KeyedNfaStore<E>> store_;
  std::vector<std::pair<typename KeyedNfaStore<E>::BufferKey, E>> batch_;
  std::unique_ptr<Nfa<E>> nfa_;
  std::unique_ptr<CepMetrics> metrics_;
  int64_t max_buffered_ = 100'000;
  int64_t seq_ = 0;  // arrival order of buffered records (restored: the largest)
  std::vector<KeyGroupCounts> counts_;
  std::vector<std::pair<int32_t, KeyGroupCounts>> restored_counts_;
  CepStats stats_;
  uint64_t watermarks_ = 0;
};

}  // namespace sluice::cep
