// Operators with two inputs (connect, co-process, broadcast process, joins).
//
// Each input has its own element sink (ElementSink<IN1> for input 0,
// ElementSink<IN2> for input 1), fed by the task from the job edges with
// that input index — each edge with its own partitioning and key selector.
// The operator's event time is the minimum of its inputs' watermarks; an
// idle input does not hold it back, and a finished input counts as
// EventTime::max().
#pragma once

#include <algorithm>
#include <optional>
#include <type_traits>
#include <vector>

#include "engine/common/time.h"
#include "engine/runtime/operator.h"

namespace sluice::runtime {

/// The combined watermark and idleness of an operator's inputs: the
/// minimum over inputs that are not idle, never going back; idle when
/// every input is idle. Task thread only; a value member of its operator.
class InputWatermarks {
 public:
  explicit InputWatermarks(int inputs) : inputs_(static_cast<size_t>(inputs)) {}

  /// Input `index` reached `wm`. Returns the combined watermark if it advanced.
  std::optional<EventTime> on_watermark(int index, EventTime wm) {
    Input& in = inputs_.at(static_cast<size_t>(index));
    if (wm > in.watermark) in.watermark = wm;
    return advance();
  }
  /// Input `index` became idle or active. Returns whether the combined
  /// status changed (then `idle()` is the new one) and, through `advanced`,
  /// the combined watermark if excluding an idle input moved it.
  bool on_status(int index, bool idle, std::optional<EventTime>& advanced) {
    inputs_.at(static_cast<size_t>(index)).idle = idle;
    bool all_idle = true;
    for (const auto& in : inputs_) all_idle = all_idle && in.idle;
    advanced = all_idle ? std::nullopt : advance();
    if (all_idle == idle_) return false;
    idle_ = all_idle;
    return true;
  }
  EventTime combined() const { return combined_; }
  EventTime input(int index) const { return inputs_.at(static_cast<size_t>(index)).watermark; }
  bool input_idle(int index) const { return inputs_.at(static_cast<size_t>(index)).idle; }
  bool idle() const { return idle_; }

 private:
  struct Input {
    EventTime watermark = EventTime::min();
    bool idle = false;
  };
  std::optional<EventTime> advance() {
    bool any = false;
    EventTime m = EventTime::max();
    for (const auto& in : inputs_) {
      if (in.idle) continue;
      any = true;
      m = std::min(m, in.watermark);
    }
    if (!any || m <= combined_) return std::nullopt;
    combined_ = m;
    return m;
  }

  std::vector<Input> inputs_;
  EventTime combined_ = EventTime::min();
  bool idle_ = false;
};

/// Base of operators with two inputs. Subclasses implement
/// process_element1/2 and, like one-input operators, react to the combined
/// watermark in process_watermark(wm) (the default forwards it). `Base` is
/// StreamOperator or a subclass of it (KeyedOperatorBase<K> for keyed
/// two-input operators, see keyed.h). All calls on the task thread.
template <class IN1, class IN2, class Base = StreamOperator>
class TwoInputOperator : public Base {
  static_assert(std::is_base_of_v<StreamOperator, Base>);

 public:
  using Base::Base;

  virtual void process_element1(const IN1& value, EventTime ts) = 0;
  virtual void process_element2(const IN2& value, EventTime ts) = 0;

  void* element_sink(int index) override {
    if (index == 0) return static_cast<ElementSink<IN1>*>(&sink1_);
    if (index == 1) return static_cast<ElementSink<IN2>*>(&sink2_);
    return nullptr;
  }
  void process_watermark_input(int index, EventTime wm) final {
    if (auto combined = watermarks_.on_watermark(index, wm)) this->process_watermark(*combined);
  }
  void process_watermark_status_input(int index, bool idle) final {
    std::optional<EventTime> advanced;
    bool changed = watermarks_.on_status(index, idle, advanced);
    if (advanced) this->process_watermark(*advanced);
    if (changed) this->process_watermark_status(watermarks_.idle());
  }

 protected:
  /// The watermark input `index` has reached on its own (EventTime::max()
  /// once it ended).
  EventTime input_watermark(int index) const { return watermarks_.input(index); }
  /// Whether input `index` is idle now (it does not hold event time back).
  bool input_idle(int index) const { return watermarks_.input_idle(index); }

 private:
  template <class T, int I>
  class Sink final : public ElementSink<T> {
   public:
    explicit Sink(TwoInputOperator* op) : op_(op) {}
    void process_element(const T& value, EventTime ts) override {
      if constexpr (I == 0) op_->process_element1(value, ts);
      else op_->process_element2(value, ts);
    }

   private:
    TwoInputOperator* op_;
  };

  Sink<IN1, 0> sink1_{this};
  Sink<IN2, 1> sink2_{this};
  InputWatermarks watermarks_{2};
};

}  // namespace sluice::runtime
