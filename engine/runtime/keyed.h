// Keyed operators: the current-key context and timers.
//
// InternalTimerService keeps event-time and processing-time timers per
// (key, namespace) in the operator's keyed state backend, fires event-time
// timers as the watermark passes them and processing-time timers through
// the task's ProcessingTimeService. KeyedOperatorBase<K> is the keyed part
// of every operator after key_by, with KeyedOneInputOperator (windows,
// keyed process functions) and KeyedTwoInputOperator (keyed co-process,
// joins) on top.
#pragma once

#include <cstdint>
#include <algorithm>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/runtime/operator.h"
#include "engine/runtime/two_input.h"
#include "engine/runtime/type_info.h"
#include "state/keyed_state_backend.h"

namespace sluice::runtime {

/// Receives fired timers; the backend's current key is the timer's key.
class Triggerable {
 public:
  virtual ~Triggerable() = default;
  virtual void on_event_time(const state::TimerEntry& timer) = 0;
  virtual void on_processing_time(const state::TimerEntry& timer) = 0;
};

/// Timers of one keyed operator instance (task thread only).
class InternalTimerService {
 public:
  InternalTimerService(state::KeyedStateBackend& backend, ProcessingTimeService& pts,
                       Triggerable& target);

  /// Timers for the current key of the backend.
  void register_event_time_timer(std::string_view ns, int64_t ts);
  void delete_event_time_timer(std::string_view ns, int64_t ts);
  void register_processing_time_timer(std::string_view ns, int64_t ts);
  void delete_processing_time_timer(std::string_view ns, int64_t ts);

  EventTime current_watermark() const { return watermark_; }
  /// After restore: the watermark the operator had reached (timers at or
  /// before it already fired).
  void restore_watermark(EventTime wm) { watermark_ = wm; }
  int64_t current_processing_time() const { return pts_.now_ms(); }
  /// Fires every event-time timer <= wm, in timestamp order.
  void advance_watermark(EventTime wm);
  /// After restore: schedule the wake-up for restored processing timers.
  void start();
  /// Fires every processing-time timer now, in timestamp order, whatever
  /// the clock says: for operators whose processing-time work must not be
  /// lost when a bounded input ends (processing-time windows, in finish()).
  void fire_all_processing_timers();
  size_t event_timer_count() const { return event_.size(); }

 private:
  void schedule_wakeup(int64_t ts);
  void on_wakeup(int64_t now, int64_t scheduled_for);

  state::KeyedStateBackend& backend_;
  ProcessingTimeService& pts_;
  Triggerable& target_;
  state::TimerQueue& event_;
  state::TimerQueue& processing_;
  EventTime watermark_ = EventTime::min();
  int64_t next_wakeup_ = std::numeric_limits<int64_t>::max();
};

/// Serializes a key as KeySelector does (the bytes that pick the key group
/// and address keyed state).
template <class K>
void serialize_key(const K& key, std::string& out) {
  out.clear();
  ByteWriter w(out);
  Serde<K>::write(w, key);
}

/// The keyed part of every keyed operator, whatever its number of inputs:
/// the keyed-state backend and the current key, the timer service, and the
/// operator's watermark as operator state. Subclasses select the key of
/// each record (set_current_key) before touching state or timers; a
/// firing timer has its key selected already. Task thread only.
template <class K>
class KeyedOperatorBase : public StreamOperator, public Triggerable {
 public:
  /// The operator's watermark is part of its state: after a restore, a
  /// record that was late before the checkpoint must still be late (its
  /// window may be gone). Rescaled subtasks take the minimum of the old
  /// ones. Subclasses with more operator state wrap this blob in theirs and
  /// call restore_watermark / watermark_state.
  Status initialize_state(const OperatorRestore& restore) override {
    return restore_watermark(restore.states);
  }
  Result<std::string> snapshot_state(CheckpointId) override { return watermark_state(); }

  Status open() override {
    backend_ = this->context().keyed_backend();
    if (!backend_) return Status::internal("keyed operator without a keyed state backend");
    timers_ = std::make_unique<InternalTimerService>(*backend_, this->context().processing_time(),
                                                     *this);
    if (restored_wm_) timers_->restore_watermark(EventTime(*restored_wm_));
    timers_->start();
    return Status::ok();
  }

  /// Fires the event-time timers the watermark passed, then forwards it.
  void process_watermark(EventTime wm) override {
    timers_->advance_watermark(wm);
    this->forward_watermark(wm);
  }

 protected:
  /// Makes `key` the current key; false (after failing the task) if its key
  /// group is not this subtask's, which is a routing bug.
  bool set_current_key(K key) {
    current_key_ = std::move(key);
    serialize_key(*current_key_, key_bytes_);
    KeyGroup kg = state::key_group_for_key(key_bytes_, backend_->max_parallelism());
    if (!backend_->key_group_range().contains(kg)) [[unlikely]] {
      this->context().fail(Status::internal(
          "record with key group " + std::to_string(kg.value()) + " reached a subtask owning " +
          backend_->key_group_range().to_string()));
      return false;
    }
    backend_->set_current_key(key_bytes_, kg);
    return true;
  }
  /// Selects the key of a fired timer (the backend already has its bytes).
  void set_current_key_from_timer(const state::TimerEntry& t) {
    backend_->set_current_key(t.key, t.kg);
    current_key_.reset();
  }
  /// Selects a key by its serialized bytes (e.g. one found by iterating
  /// the keys of a state).
  void set_current_key_bytes(std::string_view key_bytes, KeyGroup kg) {
    backend_->set_current_key(key_bytes, kg);
    current_key_.reset();
  }
  /// The current key as a K (decoded lazily for timers).
  const K& current_key() {
    if (!current_key_) {
      K k{};
      Status st = deserialize(backend_->current_key(), k);
      (void)st;  // bytes were produced by serialize_key in this job
      current_key_ = std::move(k);
    }
    return *current_key_;
  }

  /// The watermark blob of snapshot_state.
  std::string watermark_state() const { return serialize(timers_->current_watermark().ms()); }
  /// Takes the minimum of the watermark blobs of the old subtasks (empty
  /// blobs are skipped).
  Status restore_watermark(const std::vector<std::string>& blobs) {
    for (const auto& blob : blobs) {
      if (blob.empty()) continue;
      int64_t wm = 0;
      if (!deserialize(blob, wm).is_ok()) return Status::corruption("keyed operator state");
      restored_wm_ = restored_wm_ ? std::min(*restored_wm_, wm) : wm;
    }
    return Status::ok();
  }

  state::KeyedStateBackend* backend_ = nullptr;
  std::unique_ptr<InternalTimerService> timers_;

 private:
  std::optional<K> current_key_;
  std::string key_bytes_;
  std::optional<int64_t> restored_wm_;
};

/// Base of keyed one-input operators (windows, keyed process functions):
/// the key of each record comes from the input's key selector.
template <class K, class IN>
class KeyedOneInputOperator : public KeyedOperatorBase<K>, public ElementSink<IN> {
 public:
  explicit KeyedOneInputOperator(std::shared_ptr<const KeySelector<IN, K>> key_selector)
      : key_selector_(std::move(key_selector)) {}

  void* element_sink(int index) override {
    return index == 0 ? static_cast<ElementSink<IN>*>(this) : nullptr;
  }

 protected:
  /// Selects the key of `value`; false (after failing the task) if the
  /// record reached the wrong subtask.
  bool set_current_key_from(const IN& value) { return this->set_current_key(key_selector_->key(value)); }

  std::shared_ptr<const KeySelector<IN, K>> key_selector_;
};

/// Base of keyed two-input operators (keyed co-process, interval joins):
/// both inputs are partitioned by the same key type, each by its own key
/// selector; state and timers are shared by the two sides through one
/// backend, and the current key is that of whichever input delivered the
/// record (or of the firing timer).
template <class K, class IN1, class IN2>
class KeyedTwoInputOperator : public TwoInputOperator<IN1, IN2, KeyedOperatorBase<K>> {
 public:
  KeyedTwoInputOperator(std::shared_ptr<const KeySelector<IN1, K>> key_selector1,
                        std::shared_ptr<const KeySelector<IN2, K>> key_selector2)
      : key_selector1_(std::move(key_selector1)), key_selector2_(std::move(key_selector2)) {}

 protected:
  bool set_current_key_from1(const IN1& value) { return this->set_current_key(key_selector1_->key(value)); }
  bool set_current_key_from2(const IN2& value) { return this->set_current_key(key_selector2_->key(value)); }

  std::shared_ptr<const KeySelector<IN1, K>> key_selector1_;
  std::shared_ptr<const KeySelector<IN2, K>> key_selector2_;
};

}  // namespace sluice::runtime
