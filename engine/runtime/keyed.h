// Keyed operators: the current-key context and timers.
//
// InternalTimerService keeps event-time and processing-time timers per
// (key, namespace) in the operator's keyed state backend, fires event-time
// timers as the watermark passes them and processing-time timers through
// the task's ProcessingTimeService. KeyedOneInputOperator is the base of
// every operator after key_by (windows, keyed process functions).
#pragma once

#include <cstdint>
#include <algorithm>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "engine/runtime/operator.h"
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

/// Base of keyed one-input operators: sets the current key from each record
/// and keeps the timer service.
template <class K, class IN>
class KeyedOneInputOperator : public OneInputOperator<IN>, public Triggerable {
 public:
  explicit KeyedOneInputOperator(std::shared_ptr<const KeySelector<IN, K>> key_selector)
      : key_selector_(std::move(key_selector)) {}

  /// The operator's watermark is part of its state: after a restore, a
  /// record that was late before the checkpoint must still be late (its
  /// window may be gone). Rescaled subtasks take the minimum of the old ones.
  Status initialize_state(const OperatorRestore& restore) override {
    for (const auto& blob : restore.states) {
      if (blob.empty()) continue;
      int64_t wm;
      if (!deserialize(blob, wm).is_ok()) return Status::corruption("keyed operator state");
      restored_wm_ = restored_wm_ ? std::min(*restored_wm_, wm) : wm;
    }
    return Status::ok();
  }
  Result<std::string> snapshot_state(CheckpointId) override {
    return serialize(timers_->current_watermark().ms());
  }

  Status open() override {
    backend_ = this->context().keyed_backend();
    if (!backend_) return Status::internal("keyed operator without a keyed state backend");
    timers_ = std::make_unique<InternalTimerService>(*backend_, this->context().processing_time(),
                                                     *this);
    if (restored_wm_) timers_->restore_watermark(EventTime(*restored_wm_));
    timers_->start();
    return Status::ok();
  }

  void process_watermark(EventTime wm) override {
    timers_->advance_watermark(wm);
    this->forward_watermark(wm);
  }

 protected:
  /// Extracts and selects the key of `value`; false (after failing the
  /// task) if the record reached the wrong subtask, which is a routing bug.
  bool set_current_key_from(const IN& value) {
    current_key_ = key_selector_->key(value);
    KeySelector<IN, K>::serialize_key(*current_key_, key_bytes_);
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

  state::KeyedStateBackend* backend_ = nullptr;
  std::unique_ptr<InternalTimerService> timers_;
  std::shared_ptr<const KeySelector<IN, K>> key_selector_;

 private:
  std::optional<K> current_key_;
  std::string key_bytes_;
  std::optional<int64_t> restored_wm_;
};

}  // namespace sluice::runtime
