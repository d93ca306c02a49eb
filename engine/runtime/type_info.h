// TypeInfo<T>: everything the runtime needs to move records of type T
// without knowing T — chained calls, serialization into channels with a
// partitioner, fan-out, and deserialization on the receiving side. Created
// by the DataStream API (which knows T) and stored in the StreamGraph.
#pragma once

#include <cstdint>
#include <functional>
#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/serde.h"
#include "engine/runtime/frames.h"
#include "engine/runtime/operator.h"
#include "engine/runtime/record_writer.h"
#include "engine/runtime/two_input.h"
#include "state/key_groups.h"

namespace sluice::runtime {

enum class Partitioning { kForward, kHash, kRebalance, kBroadcast };

std::string_view partitioning_name(Partitioning p);

/// Extracts a key from records; type-erased base stored on hash edges and
/// in keyed operators.
class KeySelectorBase {
 public:
  virtual ~KeySelectorBase() = default;
  virtual std::string_view key_type_name() const = 0;
};

/// Computes the key group of a T (for routing).
template <class T>
class KeyGroupAssigner : public KeySelectorBase {
 public:
  /// Serializes the key into `scratch` and returns its key group.
  virtual KeyGroup key_group(const T& value, int32_t max_parallelism, std::string& scratch) const = 0;
};

/// A key selector K(const T&), with the key's serialization.
template <class T, class K>
class KeySelector final : public KeyGroupAssigner<T> {
 public:
  explicit KeySelector(std::function<K(const T&)> fn) : fn_(std::move(fn)) {}
  std::string_view key_type_name() const override { return type_name<K>(); }
  K key(const T& v) const { return fn_(v); }
  static void serialize_key(const K& k, std::string& out) {
    out.clear();
    ByteWriter w(out);
    Serde<K>::write(w, k);
  }
  KeyGroup key_group(const T& value, int32_t max_parallelism, std::string& scratch) const override {
    serialize_key(fn_(value), scratch);
    return state::key_group_for_key(scratch, max_parallelism);
  }

 private:
  std::function<K(const T&)> fn_;
};

/// Decodes records of one input and hands them to the consuming operator.
class InputHandler {
 public:
  virtual ~InputHandler() = default;
  /// False if the payload does not decode (a corrupt channel).
  virtual bool process(std::string_view payload, EventTime ts) = 0;
};

class TypeInfoBase {
 public:
  virtual ~TypeInfoBase() = default;
  virtual std::string_view name() const = 0;
  /// Calls `target`'s ElementSink of input `input` directly (operator
  /// chaining). Once `failed` (the task's failure flag, may be null) is set
  /// nothing more reaches `target`: a failing record stops the chain at
  /// once. `merge` (may be null): this output is one of several chained
  /// edges into that input; its watermarks go through `merge` (as its
  /// input `slot`) and the target sees their minimum.
  virtual std::unique_ptr<OutputBase> make_chained_output(StreamOperator* target,
                                                          const std::atomic<bool>* failed, int input = 0,
                                                          InputWatermarks* merge = nullptr,
                                                          int slot = 0) const = 0;
  /// Serializes into `writer`, choosing channels with `partitioning`.
  virtual std::unique_ptr<OutputBase> make_writer_output(RecordWriter* writer,
                                                         Partitioning partitioning,
                                                         const KeySelectorBase* key_selector,
                                                         int32_t max_parallelism,
                                                         int32_t subtask) const = 0;
  /// Sends everything to each of `outs` (not owned).
  virtual std::unique_ptr<OutputBase> make_fanout(std::vector<OutputBase*> outs) const = 0;
  /// Drops records (an output nothing consumes), forwards nothing.
  virtual std::unique_ptr<OutputBase> make_discard() const = 0;
  virtual std::unique_ptr<InputHandler> make_input_handler(StreamOperator* target,
                                                           int input_index) const = 0;
};

/// Hands what an operator emits to the next operator of its chain. Stops
/// (drops everything) once the task failed: the records after a failing
/// one — the rest of a source's poll batch, the rest of a flat_map's or a
/// window firing's output — and later watermarks never reach the
/// operators behind, so none of them (a sink, a window about to fire)
/// acts on input the restart replays. Task thread; owned by the chain.
template <class T>
class ChainedOutput final : public Output<T> {
 public:
  ChainedOutput(StreamOperator* op, const std::atomic<bool>* failed, int input, InputWatermarks* merge, int slot)
      : op_(op),
        sink_(static_cast<ElementSink<T>*>(op->element_sink(input))),
        failed_(failed),
        input_(input),
        merge_(merge),
        slot_(slot) {}
  void collect(const T& v, EventTime ts) override {
    if (stopped()) [[unlikely]] return;
    sink_->process_element(v, ts);
  }
  // Watermarks go to the target's input (a two-input operator combines its
  // inputs); several chained edges into one input are combined first.
  void emit_watermark(EventTime wm) override {
    if (stopped()) return;
    if (!merge_) return op_->process_watermark_input(input_, wm);
    if (auto combined = merge_->on_watermark(slot_, wm)) op_->process_watermark_input(input_, *combined);
  }
  void emit_watermark_status(bool idle) override {
    if (stopped()) return;
    if (!merge_) return op_->process_watermark_status_input(input_, idle);
    std::optional<EventTime> advanced;
    const bool changed = merge_->on_status(slot_, idle, advanced);
    if (advanced) op_->process_watermark_input(input_, *advanced);
    if (changed) op_->process_watermark_status_input(input_, merge_->idle());
  }

 private:
  bool stopped() const { return failed_ && failed_->load(std::memory_order_relaxed); }

  StreamOperator* op_;
  ElementSink<T>* sink_;
  const std::atomic<bool>* failed_;
  int input_;
  InputWatermarks* merge_;
  int slot_;
};

template <class T>
class WriterOutput final : public Output<T> {
 public:
  WriterOutput(RecordWriter* w, Partitioning p, const KeyGroupAssigner<T>* ks, int32_t maxp,
               int32_t subtask)
      : w_(w), p_(p), ks_(ks), maxp_(maxp), n_(w->num_channels()), next_(subtask) {}

  void collect(const T& v, EventTime ts) override {
    switch (p_) {
      case Partitioning::kForward:
        write_to(0, v, ts);
        break;
      case Partitioning::kRebalance:
        next_ = (next_ + 1) % n_;
        write_to(next_, v, ts);
        break;
      case Partitioning::kHash: {
        KeyGroup kg = ks_->key_group(v, maxp_, scratch_);
        write_to(state::subtask_for_key_group(maxp_, n_, kg), v, ts);
        break;
      }
      case Partitioning::kBroadcast:
        for (int ch = 0; ch < n_; ++ch) write_to(ch, v, ts);
        break;
    }
  }
  void emit_watermark(EventTime wm) override { w_->broadcast_watermark(wm); }
  void emit_watermark_status(bool idle) override { w_->broadcast_status(idle); }

 private:
  void write_to(int ch, const T& v, EventTime ts) {
    std::string& buf = w_->buffer(ch);
    size_t start = frames::begin_record(buf, ts);
    ByteWriter bw(buf);
    Serde<T>::write(bw, v);
    frames::end_record(buf, start);
    w_->record_appended(ch);
  }

  RecordWriter* w_;
  Partitioning p_;
  const KeyGroupAssigner<T>* ks_;
  int32_t maxp_;
  int n_;
  int next_;
  std::string scratch_;
};

template <class T>
class FanOutOutput final : public Output<T> {
 public:
  explicit FanOutOutput(std::vector<OutputBase*> outs) {
    for (auto* o : outs) outs_.push_back(static_cast<Output<T>*>(o));
  }
  void collect(const T& v, EventTime ts) override {
    for (auto* o : outs_) o->collect(v, ts);
  }
  void emit_watermark(EventTime wm) override {
    for (auto* o : outs_) o->emit_watermark(wm);
  }
  void emit_watermark_status(bool idle) override {
    for (auto* o : outs_) o->emit_watermark_status(idle);
  }

 private:
  std::vector<Output<T>*> outs_;
};

template <class T>
class DiscardOutput final : public Output<T> {
 public:
  void collect(const T&, EventTime) override {}
  void emit_watermark(EventTime) override {}
  void emit_watermark_status(bool) override {}
};

template <class T>
class TypedInputHandler final : public InputHandler {
 public:
  explicit TypedInputHandler(ElementSink<T>* sink) : sink_(sink) {}
  bool process(std::string_view payload, EventTime ts) override {
    ByteReader r(payload);
    if (!Serde<T>::read(r, value_) || !r.empty()) return false;
    sink_->process_element(value_, ts);
    return true;
  }

 private:
  ElementSink<T>* sink_;
  T value_{};  // reused: strings and vectors keep their capacity between records
};

template <class T>
class TypeInfo final : public TypeInfoBase {
 public:
  std::string_view name() const override { return type_name<T>(); }
  std::unique_ptr<OutputBase> make_chained_output(StreamOperator* target, const std::atomic<bool>* failed,
                                                  int input, InputWatermarks* merge, int slot) const override {
    return std::make_unique<ChainedOutput<T>>(target, failed, input, merge, slot);
  }
  std::unique_ptr<OutputBase> make_writer_output(RecordWriter* writer, Partitioning partitioning,
                                                 const KeySelectorBase* key_selector,
                                                 int32_t max_parallelism,
                                                 int32_t subtask) const override {
    return std::make_unique<WriterOutput<T>>(
        writer, partitioning, static_cast<const KeyGroupAssigner<T>*>(key_selector),
        max_parallelism, subtask);
  }
  std::unique_ptr<OutputBase> make_fanout(std::vector<OutputBase*> outs) const override {
    return std::make_unique<FanOutOutput<T>>(std::move(outs));
  }
  std::unique_ptr<OutputBase> make_discard() const override {
    return std::make_unique<DiscardOutput<T>>();
  }
  std::unique_ptr<InputHandler> make_input_handler(StreamOperator* target,
                                                   int input_index) const override {
    return std::make_unique<TypedInputHandler<T>>(
        static_cast<ElementSink<T>*>(target->element_sink(input_index)));
  }
};

template <class T>
std::shared_ptr<const TypeInfoBase> type_info() {
  // shared: one immutable instance per type, referenced by many graph nodes.
  static const auto instance = std::make_shared<const TypeInfo<T>>();
  return instance;
}

}  // namespace sluice::runtime
