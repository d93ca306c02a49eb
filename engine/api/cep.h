// Complex event processing on a keyed stream (operators/cep):
//
//   auto fraud = cep::Pattern<Event>::begin("fail").where(...).times(5)
//                    .followed_by("buy").where(...).within(10min);
//   DataStream<Alert> alerts =
//       CEP::pattern(events.key_by([](const Event& e) { return e.user; }), fraud)
//           .side_output_timed_out(timeouts_tag)
//           .process(FraudAlerts());   // a PatternProcessFunction<Event, Alert>
//
// The pattern is compiled (and refused with a message if unsupported) when
// the job is built.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "engine/api/datastream.h"
#include "operators/cep/cep_operator.h"
#include "operators/cep/compiled_pattern.h"
#include "operators/cep/pattern.h"

namespace sluice::api {

namespace detail {
template <class E, class OUT>
OUT pattern_output(const cep::PatternProcessFunction<E, OUT>*);

/// select(): a function of the match as a PatternProcessFunction.
template <class E, class OUT>
class SelectFunction final : public cep::PatternProcessFunction<E, OUT> {
 public:
  explicit SelectFunction(std::function<OUT(const cep::Match<E>&)> f) : f_(std::move(f)) {}
  void process_match(const cep::Match<E>& m, typename cep::PatternProcessFunction<E, OUT>::Context&,
                     basic::Collector<OUT>& out) override {
    out.collect(f_(m));
  }

 private:
  std::function<OUT(const cep::Match<E>&)> f_;
};
}  // namespace detail

/// A pattern applied to a keyed stream, before its results are defined.
/// Value type (copyable, like the stream handles).
template <class E, class K>
class PatternStream {
 public:
  PatternStream(KeyedStream<E, K> input, const cep::Pattern<E>& pattern)
      : input_(std::move(input)), pattern_(cep::CompiledPattern<E>::compile(pattern)) {}

  /// Match in processing time (records as they arrive) instead of event time.
  PatternStream& in_processing_time() {
    options_.time = cep::TimeMode::kProcessingTime;
    return *this;
  }
  /// Late records (event time) go to side output `tag` of the result.
  PatternStream& side_output_late_data(const basic::OutputTag<E>& tag) {
    options_.late_tag = tag.id;
    return *this;
  }
  /// Partial matches that ran out of time go to side output `tag` of the
  /// result, with the events they had.
  PatternStream& side_output_timed_out(const basic::OutputTag<cep::TimedOutMatch<E>>& tag) {
    options_.timed_out_tag = tag.id;
    return *this;
  }
  /// Per-key bounds (defaults from the job's cep.* settings).
  PatternStream& max_partial_matches_per_key(int64_t n) {
    options_.max_partial_matches = n;
    return *this;
  }
  PatternStream& max_events_per_key(int64_t n) {
    options_.max_events = n;
    return *this;
  }
  PatternStream& max_buffered_events_per_key(int64_t n) {
    options_.max_buffered = n;
    return *this;
  }
  PatternStream& fail_at_limit(bool fail = true) {
    options_.policy = fail ? cep::NfaLimits::Policy::kFail : cep::NfaLimits::Policy::kDropOldest;
    return *this;
  }

  /// F derives from cep::PatternProcessFunction<E, OUT>; copied per subtask.
  template <class F>
  auto process(F fn, std::string name = "cep") const {
    using OUT = decltype(detail::pattern_output(static_cast<const F*>(nullptr)));
    auto ks = input_.key_selector();
    auto pattern = pattern_;
    auto options = options_;
    DataStream<OUT> out = input_.input().template add_one_input<OUT>(
        std::move(name), description(),
        [ks, pattern, options, fn]() {
          return std::make_unique<cep::CepOperator<K, E, OUT, F>>(ks, pattern, options, fn);
        },
        ks, true);
    auto& node = input_.input().env()->graph().node(out.node_id());
    if (options_.late_tag) node.side_output_types[*options_.late_tag] = runtime::type_info<E>();
    if (options_.timed_out_tag) {
      node.side_output_types[*options_.timed_out_tag] = runtime::type_info<cep::TimedOutMatch<E>>();
    }
    return out;
  }
  /// OUT f(const cep::Match<E>&) for every match.
  template <class SF>
  auto select(SF f, std::string name = "cep") const {
    using OUT = std::decay_t<std::invoke_result_t<SF&, const cep::Match<E>&>>;
    return process(detail::SelectFunction<E, OUT>(std::function<OUT(const cep::Match<E>&)>(f)), std::move(name));
  }

 private:
  std::string description() const {
    std::string d = options_.time == cep::TimeMode::kEventTime ? "cep event-time" : "cep processing-time";
    const cep::Program& p = *pattern_->program;
    d += " within " + std::to_string(p.within_ms) + "ms skip " + std::to_string(static_cast<int>(p.skip)) +
         "\n" + p.describe();
    return d;
  }

  KeyedStream<E, K> input_;
  // shared: the compiled pattern is immutable and serves every subtask.
  std::shared_ptr<const cep::CompiledPattern<E>> pattern_;
  cep::CepOptions options_;
};

/// Entry point, as Flink's CEP.pattern.
struct CEP {
  template <class E, class K>
  static PatternStream<E, K> pattern(const KeyedStream<E, K>& input, const cep::Pattern<E>& pattern) {
    return PatternStream<E, K>(input, pattern);
  }
};

}  // namespace sluice::api
