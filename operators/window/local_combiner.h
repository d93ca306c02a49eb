// Local pre-aggregation of window aggregates before the shuffle (Flink's
// two-phase / local-global aggregation).
//
// A `LocalWindowCombiner` runs chained behind each source subtask, before
// the hash exchange to the window operator. It folds the records of one
// (key, window) into one accumulator with the window's AggregateFunction
// and sends that partial accumulator instead of the records: over a file of
// 5 M clicks on 100 pages, thousands of partials cross the exchange instead
// of 5 M records, and the window operator does one state update and one
// timer registration per partial.
//
// Exactly-once and equal results:
//  - nothing is kept across a checkpoint: snapshot_state (called before the
//    barrier goes downstream) emits every partial first, so the barrier
//    follows them and the checkpoint holds no combiner state;
//  - a partial of window w is emitted before the combiner forwards a
//    watermark >= w's last timestamp, so it reaches the window operator
//    before the window fires, exactly as its records would have;
//  - a record with a window whose end the combiner's watermark already
//    passed (late here; possibly within the allowed lateness or not late
//    downstream, whose watermark may lag) is not combined: it is sent
//    as it is (`WindowPartial::raw`) and the window operator treats it as
//    the uncombined job would (update, late side output, dead letter). The
//    combiner's watermark is operator state, so after a restore this rule
//    still guarantees a partial never reaches a window that fired;
//  - the window operator folds a partial in with AggregateFunction::merge:
//    results equal the uncombined job's for every aggregate whose merge of
//    two accumulators equals adding their records one by one (true of the
//    built-in ones; for user aggregates the job opts in).
//  - `window.local-combine=false` (job setting, default true) turns a
//    combiner into a pass-through of raw records; partials are also
//    emitted once `window.local-combine.max-entries` (default 10000)
//    (key, window) pairs are pending, which bounds its memory.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "engine/common/text.h"
#include "engine/runtime/operator.h"
#include "engine/runtime/type_info.h"
#include "operators/basic/functions.h"
#include "operators/window/aggregates.h"
#include "operators/window/window.h"
#include "operators/window/window_operator.h"

namespace sluice::window {

/// Whether aggregate() pre-aggregates with AGG unless the job says
/// otherwise: the built-in aggregates, whose merge is known to equal adding
/// the records one by one. A user's AggregateFunction opts in with
/// WindowedStream::local_combine(true).
template <class AGG>
inline constexpr bool kCombinesByDefault = false;
template <class IN>
inline constexpr bool kCombinesByDefault<CountAggregate<IN>> = true;
template <class IN, class V>
inline constexpr bool kCombinesByDefault<SumAggregate<IN, V>> = true;
template <class IN, class V>
inline constexpr bool kCombinesByDefault<MinAggregate<IN, V>> = true;
template <class IN, class V>
inline constexpr bool kCombinesByDefault<MaxAggregate<IN, V>> = true;
template <class IN>
inline constexpr bool kCombinesByDefault<AvgAggregate<IN>> = true;
template <class IN, class V>
inline constexpr bool kCombinesByDefault<FirstNAggregate<IN, V>> = true;

/// What crosses the exchange from a LocalWindowCombiner to the window
/// operator: the accumulator of (key, window) over some records, or one
/// record passed through as it is (`raw` set; window and acc unused).
template <class K, class T, class ACC>
struct WindowPartial {
  K key{};
  int64_t start = 0;
  int64_t end = 0;
  ACC acc{};
  std::optional<T> raw;
  SLUICE_FIELDS(key, start, end, acc, raw)
};

/// Window contents for partials (WindowOperator over WindowPartial):
/// AggregatingContents's state ("window-contents") plus folding in a
/// partial's accumulator, so a checkpoint of the combined job restores into
/// the uncombined one and back. `Record` is the type of the records before
/// combining (what late records are side-output as). Same lifecycle,
/// thread and owner as AggregatingContents (the window operator's).
template <class K, class T, class ACC, class OUT>
class PreAggregatedContents : public AggregatingContents<T, ACC, OUT> {
 public:
  using Record = T;
  using Partial = WindowPartial<K, T, ACC>;
  using AggregatingContents<T, ACC, OUT>::AggregatingContents;
  void add_partial(const ACC& acc) { this->state_->add_accumulator(acc); }
};

/// The combiner (see the file comment). One instance per subtask of the
/// vertex it is chained into; task thread only; owned by the task's
/// operator chain. Event-time, non-merging assigners only (the API checks).
template <class K, class T, class ACC, class OUT>
class LocalWindowCombiner final : public runtime::OneInputOperator<T> {
 public:
  using Partial = WindowPartial<K, T, ACC>;

  LocalWindowCombiner(std::shared_ptr<const runtime::KeySelector<T, K>> ks, WindowAssigner assigner,
                      std::shared_ptr<const AggregateFunction<T, ACC, OUT>> fn)
      : ks_(std::move(ks)), assigner_(std::move(assigner)), fn_(std::move(fn)) {}

  /// The watermark it had reached: min over the old subtasks (as keyed
  /// operators restore theirs).
  Status initialize_state(const runtime::OperatorRestore& restore) override {
    for (const auto& blob : restore.states) {
      if (blob.empty()) continue;
      int64_t wm = 0;
      if (!deserialize(blob, wm).is_ok()) return Status::corruption("window combiner state");
      wm_ = std::min(wm_ == kNoWatermark ? wm : wm_, wm);
    }
    return Status::ok();
  }

  Status open() override {
    out_ = static_cast<runtime::Output<Partial>*>(this->outputs().at(0));
    const Configuration& c = this->context().job_config();
    Result<bool> enabled = c.get_bool("window.local-combine", true);
    if (!enabled.is_ok()) return enabled.status().with_context("window.local-combine");
    enabled_ = *enabled;
    Result<int64_t> max = c.get_int("window.local-combine.max-entries", 10'000);
    if (!max.is_ok() || *max < 1) {
      return Status::invalid_argument("window.local-combine.max-entries must be a whole number of at least 1");
    }
    max_entries_ = static_cast<size_t>(*max);
    return Status::ok();
  }

  void process_element(const T& v, EventTime ts) override {
    if (!enabled_ || ts.is_min()) {
      pass_raw(v, ts);
      return;
    }
    const int64_t t = ts.ms();
    if (t < pane_.start || t >= pane_.end) assign(t);
    // Late here (one of its windows already passed): the window operator
    // decides what it is.
    if (first_max_timestamp_ <= wm_) {
      pass_raw(v, ts);
      return;
    }
    std::optional<K> key = select_key(v);
    if (!key) return;
    // The key's bytes are hashed once and probe every window's map as a
    // view; they are copied only into a new (key, window) entry.
    const KeyView probe = KeyView::of(key_bytes(*key));
    for (size_t i = 0; i < windows_.size(); ++i) {
      Partials* partials = buckets_[i];
      if (!partials) {
        const TimeWindow& w = windows_[i];
        partials = buckets_[i] = &pending_[{w.max_timestamp(), w.start}];
      }
      auto it = partials->find(probe);
      if (it == partials->end()) {
        Partial p;
        p.key = *key;
        p.start = windows_[i].start;
        p.end = windows_[i].end;
        p.acc = fn_->create_accumulator();
        it = partials->emplace(std::string(probe.bytes), std::move(p)).first;
        ++entries_;
      }
      fn_->add(it->second.acc, v);
    }
    if (entries_ > max_entries_) flush_until(kNoWatermark, true);
  }

  void process_watermark(EventTime wm) override {
    flush_until(wm.ms(), false);
    if (wm.ms() > wm_) wm_ = wm.ms();
    this->forward_watermark(wm);
  }

  Status finish() override {
    flush_until(kNoWatermark, true);
    return Status::ok();
  }

  /// Emits everything (the barrier follows the partials) and keeps only
  /// the watermark.
  Result<std::string> snapshot_state(CheckpointId) override {
    flush_until(kNoWatermark, true);
    return serialize(wm_);
  }

 private:
  static constexpr int64_t kNoWatermark = std::numeric_limits<int64_t>::min();

  std::optional<K> select_key(const T& v) {
    try {
      return ks_->key(v);
    } catch (const InvalidRecord& e) {
      basic::dead_letter_for(this->context(), v, std::string("key selector: ") + e.what());
    } catch (const std::exception& e) {
      this->context().fail(Status::internal("key selector of '" + this->context().info().operator_name +
                                            "' threw: " + e.what()));
    }
    return std::nullopt;
  }

  /// A key's bytes with their hash, computed once per record: probes the
  /// maps of all its windows without building a string.
  // absl's own string hash (Debian's absl::string_view is not
  // std::string_view, whose absl::Hash falls back to std::hash).
  static size_t hash_bytes(std::string_view b) { return absl::Hash<absl::string_view>{}({b.data(), b.size()}); }
  struct KeyView {
    std::string_view bytes;
    size_t hash = 0;
    static KeyView of(std::string_view b) { return {b, hash_bytes(b)}; }
  };
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view b) const { return hash_bytes(b); }
    size_t operator()(const KeyView& k) const { return k.hash; }
  };
  struct KeyEq {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const { return a == b; }
    bool operator()(std::string_view a, const KeyView& b) const { return a == b.bytes; }
    bool operator()(const KeyView& a, std::string_view b) const { return a.bytes == b; }
  };
  // key bytes -> partial of one window
  using Partials = absl::flat_hash_map<std::string, Partial, KeyHash, KeyEq>;

  // What identifies a key in the maps: a string key's own bytes, any other
  // key's serialization (into scratch_; valid until the next record).
  std::string_view key_bytes(const K& key) {
    if constexpr (std::is_same_v<K, std::string> || std::is_same_v<K, Text>) {
      return std::string_view(key);
    } else {
      runtime::KeySelector<T, K>::serialize_key(key, scratch_);
      return scratch_;
    }
  }

  // The windows of t, reused for every record of the same pane.
  void assign(int64_t t) {
    assigner_.assign(t, windows_);
    pane_ = assigner_.pane(t);
    first_max_timestamp_ = std::numeric_limits<int64_t>::max();
    for (const TimeWindow& w : windows_) first_max_timestamp_ = std::min(first_max_timestamp_, w.max_timestamp());
    buckets_.assign(windows_.size(), nullptr);
  }

  void pass_raw(const T& v, EventTime ts) {
    std::optional<K> key = select_key(v);
    if (!key) return;
    raw_.key = std::move(*key);
    raw_.raw = v;
    out_->collect(raw_, ts);
    raw_.raw.reset();
  }

  // Emits the partials of the windows whose last timestamp is <= wm, or
  // of every window.
  void flush_until(int64_t wm, bool all) {
    bool flushed = false;
    while (!pending_.empty()) {
      auto first = pending_.begin();
      if (!all && first->first.first > wm) break;
      for (auto& [bytes, p] : first->second) out_->collect(p, EventTime(first->first.first));
      entries_ -= first->second.size();
      pending_.erase(first);
      flushed = true;
    }
    // The maps of the current windows may be gone.
    if (flushed) std::fill(buckets_.begin(), buckets_.end(), nullptr);
  }

  std::shared_ptr<const runtime::KeySelector<T, K>> ks_;
  WindowAssigner assigner_;
  // shared: one immutable function for every subtask's operator.
  std::shared_ptr<const AggregateFunction<T, ACC, OUT>> fn_;
  runtime::Output<Partial>* out_ = nullptr;
  bool enabled_ = true;
  size_t max_entries_ = 10'000;
  int64_t wm_ = kNoWatermark;
  // (window's last timestamp, window start) -> key bytes -> partial
  std::map<std::pair<int64_t, int64_t>, Partials> pending_;
  size_t entries_ = 0;
  // The windows of the last record assigned, the timestamps that share
  // them, the earliest last timestamp among them, and each one's map in
  // pending_ (null until looked up, reset when a flush erases maps).
  std::vector<TimeWindow> windows_;
  TimeWindow pane_;
  int64_t first_max_timestamp_ = 0;
  std::vector<Partials*> buckets_;
  std::string scratch_;
  Partial raw_;
};

}  // namespace sluice::window
