// The DataStream API: how a job describes its pipeline.
//
//   auto clicks = env.from_source(source, WatermarkStrategy<Click>::for_bounded_out_of_orderness(2s)
//                                            .with_timestamp_assigner([](const Click& c) { return c.ts; }),
//                                 "clicks");
//   clicks.key_by([](const Click& c) { return c.page_url; })
//         .window(TumblingEventTimeWindows::of(60s))
//         .aggregate(CountAggregate<Click>(), [](const std::string& page, const TimeWindow& w,
//                                                int64_t n) { return PageCount{...}; })
//         .sink_to(sink);
//
// Every call adds nodes and edges to the StreamGraph; nothing runs until
// the runtime deploys the graph. Streams are cheap handles (copyable).
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/runtime/sink.h"
#include "engine/runtime/source.h"
#include "engine/runtime/stream_graph.h"
#include "operators/basic/basic_operators.h"
#include "operators/basic/keyed_process.h"
#include "operators/window/local_combiner.h"
#include "operators/window/window_operator.h"

namespace sluice::api {

using runtime::Partitioning;
using runtime::StreamGraph;
using runtime::StreamNode;

template <class T>
class DataStream;
template <class T, class K>
class KeyedStream;
template <class T, class K>
class WindowedStream;
template <class T1, class T2>
class ConnectedStreams;
template <class T1, class T2, class K>
class KeyedConnectedStreams;
template <class T>
class BroadcastStream;
template <class T1, class T2>
class BroadcastConnectedStream;
template <class T1, class K, class T2>
class KeyedBroadcastConnectedStream;
template <class T1, class T2, class K>
class IntervalJoin;
template <class T1, class T2>
class JoinedStreams;

/// The build function's handle on the job being described. Owned by the
/// runtime for the duration of the build; single-threaded.
class StreamExecutionEnvironment {
 public:
  explicit StreamExecutionEnvironment(StreamGraph& graph) : graph_(graph) {}
  StreamGraph& graph() { return graph_; }

  /// Job configuration, e.g. "state.backend", "checkpoint.interval".
  Configuration& config() { return graph_.config; }
  /// Key groups of keyed state (upper bound for rescaling). Default 128.
  void set_max_parallelism(int m) { graph_.max_parallelism = m; }
  void set_job_name(std::string name) { graph_.job_name = std::move(name); }

  template <class T>
  DataStream<T> from_source(std::shared_ptr<const runtime::Source<T>> source,
                            runtime::WatermarkStrategy<T> strategy, std::string name = "source");

  /// Dead letters of every operator of the job go to `sink` (one writer
  /// unless parallelism is set on the returned node id).
  int set_dead_letter_sink(std::shared_ptr<const runtime::Sink<DeadLetter>> sink,
                           std::string name = "dead letters");

  /// Adds a node fed by `inputs` (internal, used by the stream classes).
  struct Input {
    int node;
    std::string tag;
  };
  int add_node(StreamNode node, const std::vector<Input>& inputs, Partitioning partitioning,
               std::shared_ptr<const runtime::KeySelectorBase> key_selector = nullptr);
  /// One edge into a node: its source, the node's input it feeds, its own
  /// partitioning and (for kHash) key selector.
  struct EdgeSpec {
    Input input;
    int input_index = 0;
    Partitioning partitioning = Partitioning::kForward;
    std::shared_ptr<const runtime::KeySelectorBase> key_selector;
  };
  /// Adds a node fed by `edges` (operators with several inputs).
  int add_node(StreamNode node, const std::vector<EdgeSpec>& edges);
  /// Hash edges by `ks` assume their records are already partitioned by
  /// it (DataStream::reinterpret_as_keyed).
  void assume_key_partitioned(std::shared_ptr<const runtime::KeySelectorBase> ks) {
    reinterpreted_.push_back(std::move(ks));
  }

 private:
  bool reinterpreted(const runtime::KeySelectorBase* ks) const;

  StreamGraph& graph_;
  // shared with the edges and nodes that use them; held here so that no
  // other selector can take the address of one that went unused.
  std::vector<std::shared_ptr<const runtime::KeySelectorBase>> reinterpreted_;
};

/// A stream of records of type T.
template <class T>
class DataStream {
 public:
  using Input = StreamExecutionEnvironment::Input;

  DataStream(StreamExecutionEnvironment* env, std::vector<Input> inputs,
             Partitioning partitioning = Partitioning::kForward)
      : env_(env), inputs_(std::move(inputs)), partitioning_(partitioning) {}

  /// OUT f(const T&)
  template <class F>
  auto map(F f, std::string name = "map") const {
    using OUT = std::decay_t<std::invoke_result_t<F&, const T&>>;
    return add_one_input<OUT>(std::move(name), "map",
                              [f]() { return std::make_unique<basic::MapOperator<T, OUT, F>>(f); });
  }
  /// bool f(const T&)
  template <class F>
  DataStream<T> filter(F f, std::string name = "filter") const {
    return add_one_input<T>(std::move(name), "filter",
                            [f]() { return std::make_unique<basic::FilterOperator<T, F>>(f); });
  }
  /// void f(const T&, Collector<OUT>&)
  template <class OUT, class F>
  DataStream<OUT> flat_map(F f, std::string name = "flat_map") const {
    return add_one_input<OUT>(std::move(name), "flat_map", [f]() {
      return std::make_unique<basic::FlatMapOperator<T, OUT, F>>(f);
    });
  }

  /// Partitions by key: K f(const T&). K must be serializable (Serde).
  template <class F>
  auto key_by(F f) const {
    using K = std::decay_t<std::invoke_result_t<F&, const T&>>;
    auto ks = std::make_shared<const runtime::KeySelector<T, K>>(std::function<K(const T&)>(f));
    return KeyedStream<T, K>(*this, std::move(ks));
  }

  /// This stream as a keyed stream by K f(const T&) without a shuffle:
  /// the job declares that its records are already partitioned by that key
  /// — every record is on the subtask its key's key group belongs to, as
  /// the output of a keyed operator keyed by the same key (Flink's
  /// DataStreamUtils.reinterpretAsKeyedStream). Where the graph can prove
  /// the partitioning (every record comes, over forward edges, from keyed
  /// operators of the consumer's parallelism and max parallelism), the
  /// consumer is fed by a forward edge and chained to its input — no
  /// serialization, no thread hand-off; elsewhere (another parallelism, a
  /// rebalance or source on the way) it gets the usual hash edge. The key
  /// itself is the job's promise: a record whose key group is not the
  /// subtask's fails the task with the key group and the subtask's range.
  template <class F>
  auto reinterpret_as_keyed(F f) const {
    auto keyed = key_by(std::move(f));
    env_->assume_key_partitioned(keyed.key_selector());
    return keyed;
  }

  DataStream<T> union_with(const DataStream<T>& other) const {
    std::vector<Input> in = inputs_;
    in.insert(in.end(), other.inputs_.begin(), other.inputs_.end());
    return DataStream<T>(env_, std::move(in), partitioning_);
  }
  /// Round-robin over the next operator's subtasks.
  DataStream<T> rebalance() const { return DataStream<T>(env_, inputs_, Partitioning::kRebalance); }
  /// Every subtask of the next operator gets every record.
  DataStream<T> broadcast() const { return DataStream<T>(env_, inputs_, Partitioning::kBroadcast); }
  /// A broadcast stream with broadcast state: the MapStateDescriptors of
  /// the states the broadcast side of the consuming operator may write.
  /// Connect it to a stream (connect(...)) and process() both.
  template <class D, class... Ds>
  BroadcastStream<T> broadcast(const D& descriptor, const Ds&... more) const;

  /// Processes this stream (input 1) and `other` (input 2) together.
  template <class T2>
  ConnectedStreams<T, T2> connect(const DataStream<T2>& other) const;
  /// Processes this stream with a broadcast stream and its broadcast state.
  template <class T2>
  BroadcastConnectedStream<T, T2> connect(const BroadcastStream<T2>& other) const;

  /// Window join with `other`: join(other).where(ka).equal_to(kb)
  /// .window(assigner).apply(f) — pairs of one key in one window.
  template <class T2>
  JoinedStreams<T, T2> join(const DataStream<T2>& other) const;
  /// The same, left outer: a left record without a partner in its window
  /// is emitted once with an empty right.
  template <class T2>
  JoinedStreams<T, T2> left_outer_join(const DataStream<T2>& other) const;

  /// The records the producing operator emitted to side output `tag`.
  template <class X>
  DataStream<X> get_side_output(const basic::OutputTag<X>& tag) const {
    int n = single_node("get_side_output");
    auto& types = env_->graph().node(n).side_output_types;
    auto it = types.find(tag.id);
    if (it != types.end() && it->second->name() != type_name<X>()) {
      throw std::invalid_argument("side output '" + tag.id + "' is used with two element types");
    }
    types[tag.id] = runtime::type_info<X>();
    return DataStream<X>(env_, {Input{n, tag.id}});
  }

  /// Ends the pipeline in `sink`. Returns the sink's stream handle (for
  /// name/uid/set_parallelism).
  DataStream<T> sink_to(std::shared_ptr<const runtime::Sink<T>> sink, std::string name = "sink") const {
    StreamNode node;
    node.name = std::move(name);
    node.kind = runtime::NodeKind::kSink;
    node.description = "sink " + sink->description();
    node.in_types = {runtime::type_info<T>()};
    node.factory = [sink]() { return std::make_unique<runtime::SinkOperator<T>>(sink); };
    node.validate = [sink](const Configuration& c) { return sink->validate(c); };
    int id = env_->add_node(std::move(node), inputs_, partitioning_);
    return DataStream<T>(env_, {Input{id, ""}});
  }

  // --- settings of the operator that produced this stream ------------------
  DataStream<T>& name(std::string n) {
    node().name = std::move(n);
    return *this;
  }
  /// A stable id: state in savepoints is matched to operators by uid.
  DataStream<T>& uid(std::string u) {
    node().uid = std::move(u);
    return *this;
  }
  DataStream<T>& set_parallelism(int p) {
    node().parallelism = p;
    return *this;
  }
  DataStream<T>& set_max_parallelism(int p) {
    node().max_parallelism = p;
    return *this;
  }
  /// Runs the operator in a task of its own.
  DataStream<T>& disable_chaining() {
    node().chaining = runtime::Chaining::kNever;
    return *this;
  }
  /// Starts a new task chain at this operator.
  DataStream<T>& start_new_chain() {
    node().chaining = runtime::Chaining::kHead;
    return *this;
  }

  StreamExecutionEnvironment* env() const { return env_; }
  const std::vector<Input>& inputs() const { return inputs_; }
  Partitioning partitioning() const { return partitioning_; }
  /// Id of the node producing this stream (throws for unions).
  int node_id() const { return single_node("node_id"); }

  /// Adds a one-input operator fed by this stream (extension point).
  template <class OUT, class Make>
  DataStream<OUT> add_one_input(std::string name, std::string description, Make make,
                                std::shared_ptr<const runtime::KeySelectorBase> ks = nullptr,
                                bool keyed = false) const {
    StreamNode node;
    node.name = std::move(name);
    node.description = std::move(description);
    node.keyed = keyed;
    node.in_types = {runtime::type_info<T>()};
    node.out_type = runtime::type_info<OUT>();
    node.key_selector = ks;
    node.factory = [make]() -> std::unique_ptr<runtime::StreamOperator> { return make(); };
    int id = env_->add_node(std::move(node), inputs_, keyed ? Partitioning::kHash : partitioning_,
                            keyed ? ks : nullptr);
    return DataStream<OUT>(env_, {Input{id, ""}});
  }

 private:
  int single_node(const char* what) const {
    if (inputs_.size() != 1 || !inputs_[0].tag.empty()) {
      throw std::invalid_argument(std::string(what) +
                                  " needs the stream of one operator, not a union or side output");
    }
    return inputs_[0].node;
  }
  StreamNode& node() { return env_->graph().node(single_node("operator settings")); }

  StreamExecutionEnvironment* env_;
  std::vector<Input> inputs_;
  Partitioning partitioning_;
};

namespace detail {
template <class K, class IN, class OUT>
OUT process_output(const basic::KeyedProcessFunction<K, IN, OUT>*);
template <class IN, class R, class K>
R window_output(const window::ProcessWindowFunction<IN, R, K>*);
}  // namespace detail

/// A stream partitioned by key K: state and timers are per key.
template <class T, class K>
class KeyedStream {
 public:
  KeyedStream(DataStream<T> input, std::shared_ptr<const runtime::KeySelector<T, K>> ks)
      : input_(std::move(input)), ks_(std::move(ks)) {}

  /// F derives from KeyedProcessFunction<K, T, OUT>; copied per subtask.
  template <class F>
  auto process(F fn, std::string name = "process") const {
    using OUT = decltype(detail::process_output(static_cast<const F*>(nullptr)));
    auto ks = ks_;
    return input_.template add_one_input<OUT>(
        std::move(name), "keyed-process",
        [ks, fn]() { return std::make_unique<basic::KeyedProcessOperator<K, T, OUT, F>>(ks, fn); },
        ks_, true);
  }

  WindowedStream<T, K> window(window::WindowAssigner assigner) const {
    return WindowedStream<T, K>(*this, std::move(assigner));
  }

  /// Processes this stream and another one keyed by the same key type.
  template <class T2>
  KeyedConnectedStreams<T, T2, K> connect(const KeyedStream<T2, K>& other) const;
  /// Processes this stream with a broadcast stream and its broadcast state.
  template <class T2>
  KeyedBroadcastConnectedStream<T, K, T2> connect(const BroadcastStream<T2>& other) const;
  /// Joins this stream with another one keyed by the same key type on
  /// event time intervals: interval_join(other).between(lower, upper).process(..).
  template <class T2>
  IntervalJoin<T, T2, K> interval_join(const KeyedStream<T2, K>& other) const;

  const DataStream<T>& input() const { return input_; }
  const std::shared_ptr<const runtime::KeySelector<T, K>>& key_selector() const { return ks_; }

 private:
  DataStream<T> input_;
  std::shared_ptr<const runtime::KeySelector<T, K>> ks_;
};

/// A keyed stream cut into windows: on event time, or on processing time
/// with TumblingProcessingTimeWindows / SlidingProcessingTimeWindows.
template <class T, class K>
class WindowedStream {
 public:
  WindowedStream(KeyedStream<T, K> keyed, window::WindowAssigner assigner)
      : keyed_(std::move(keyed)) {
    settings_.assigner = std::move(assigner);
  }

  /// Keeps window state this long after the window fired; late records
  /// within it fire an updated result. Default 0.
  WindowedStream& allowed_lateness(Duration d) {
    settings_.allowed_lateness = d;
    return *this;
  }
  /// Records too late for every window go to side output `tag` of the
  /// result stream (otherwise to the dead-letter output).
  WindowedStream& side_output_late_data(const basic::OutputTag<T>& tag) {
    settings_.late_tag = tag.id;
    return *this;
  }
  /// Fires windows that changed every `interval` of processing time
  /// (aligned to multiples of it), before their end and, within the allowed
  /// lateness, after it (late records then wait for the next early firing).
  /// Results are updates: the latest per (key, window) wins. Default off.
  WindowedStream& early_firing(Duration interval) {
    if (interval.count() <= 0) throw std::invalid_argument("early_firing needs a positive interval");
    settings_.early_firing = interval;
    return *this;
  }
  /// Pre-aggregation before the shuffle (window/local_combiner.h): each
  /// subtask of the input folds its records into one accumulator per (key,
  /// window) and sends those instead of the records; exactly-once, equal
  /// results. For incremental aggregation (aggregate, count, reduce) on
  /// event-time tumbling and sliding windows without early firing. Default:
  /// on for the built-in aggregates (count, sum, min, max, avg, first-n),
  /// off for a user's AggregateFunction or reduce (whose merge must equal
  /// adding the records one by one to turn it on). The job setting
  /// `window.local-combine=false` turns every combiner into a pass-through.
  WindowedStream& local_combine(bool on = true) {
    local_combine_ = on;
    return *this;
  }

  /// Incremental aggregation; the result is the aggregate alone.
  template <class AGG>
  auto aggregate(AGG agg, std::string name = "window") const {
    using OUT = typename AGG::Output;
    return aggregate(std::move(agg),
                     [](const K&, const window::TimeWindow&, const OUT& v) { return v; },
                     std::move(name));
  }
  /// Incremental aggregation with the key and window:
  /// R wf(const K&, const TimeWindow&, const OUT&).
  template <class AGG, class WF>
  auto aggregate(AGG agg, WF wf, std::string name = "window") const {
    using IN = typename AGG::Input;
    using ACC = typename AGG::Accumulator;
    using OUT = typename AGG::Output;
    static_assert(std::is_same_v<IN, T>, "the aggregate's input type must be the stream's type");
    using R = std::decay_t<std::invoke_result_t<WF&, const K&, const window::TimeWindow&, const OUT&>>;
    using Contents = window::AggregatingContents<T, ACC, OUT>;
    using Op = window::WindowOperator<K, T, Contents, R>;
    std::shared_ptr<const state::AggregateFunction<T, ACC, OUT>> fn =
        std::make_shared<const AGG>(std::move(agg));
    if (combine(window::kCombinesByDefault<AGG>)) return combined<R>(fn, std::move(wf), std::move(name));
    typename Op::WindowFn emit = [wf](const K& k, const window::TimeWindow& w, const OUT& v,
                                      basic::Collector<R>& out) { out.collect(wf(k, w, v)); };
    return make<R>(std::move(name), [ks = keyed_.key_selector(), s = settings_, fn, emit]() {
      return std::make_unique<Op>(ks, s, Contents(fn), emit);
    });
  }
  /// Incremental aggregation over merging windows whose results are
  /// upserted or kept as a changelog downstream: as aggregate(agg, wf), and
  /// when a merge absorbs a window that already fired (a late record
  /// bridging or extending sessions), `rf` withdraws its result; the merged
  /// window fires as a new window when its time comes:
  ///   std::optional<R> rf(const K&, const TimeWindow& old, const OUT& old_contents,
  ///                       const TimeWindow& merged)   (nullopt: emit nothing)
  template <class AGG, class WF, class RF>
  auto aggregate_with_retractions(AGG agg, WF wf, RF rf, std::string name = "window") const {
    using ACC = typename AGG::Accumulator;
    using OUT = typename AGG::Output;
    using R = std::decay_t<std::invoke_result_t<WF&, const K&, const window::TimeWindow&, const OUT&>>;
    using Contents = window::AggregatingContents<T, ACC, OUT>;
    using Op = window::WindowOperator<K, T, Contents, R>;
    if (!settings_.assigner.is_merging()) {
      throw std::invalid_argument("aggregate_with_retractions needs merging (session) windows");
    }
    combine(false);  // refuses an explicit local_combine(true)
    std::shared_ptr<const state::AggregateFunction<T, ACC, OUT>> fn =
        std::make_shared<const AGG>(std::move(agg));
    typename Op::WindowFn emit = [wf](const K& k, const window::TimeWindow& w, const OUT& v,
                                      basic::Collector<R>& out) { out.collect(wf(k, w, v)); };
    typename Op::RetractFn retract = [rf](const K& k, const window::TimeWindow& old, const OUT& v,
                                          const window::TimeWindow& merged, basic::Collector<R>& out) {
      std::optional<R> r = rf(k, old, v, merged);
      if (r) out.collect(*r);
    };
    return make<R>(std::move(name), [ks = keyed_.key_selector(), s = settings_, fn, emit, retract]() {
      return std::make_unique<Op>(ks, s, Contents(fn), emit, retract);
    });
  }
  /// Record count per window: R wf(const K&, const TimeWindow&, int64_t).
  template <class WF>
  auto count(WF wf, std::string name = "window-count") const {
    return aggregate(window::CountAggregate<T>(), std::move(wf), std::move(name));
  }
  /// T reduce(const T&, const T&), result with key and window:
  /// R wf(const K&, const TimeWindow&, const T&).
  template <class F, class WF>
  auto reduce(F f, WF wf, std::string name = "window-reduce") const {
    return aggregate(window::ReduceAggregate<T>(std::function<T(const T&, const T&)>(f)),
                     std::move(wf), std::move(name));
  }
  /// Full-window function: F derives from ProcessWindowFunction<T, R, K>.
  template <class F>
  auto process(F fn, std::string name = "window-process") const {
    using R = decltype(detail::window_output(static_cast<const F*>(nullptr)));
    if (local_combine_.value_or(false)) {
      throw std::invalid_argument("local_combine needs an incremental aggregation (aggregate, count, reduce), "
                                  "not a full-window process function");
    }
    using Contents = window::ListContents<T>;
    using Op = window::WindowOperator<K, T, Contents, R>;
    return make<R>(std::move(name), [ks = keyed_.key_selector(), s = settings_, fn]() {
      auto f = std::make_shared<F>(fn);  // shared: captured by the window fn of one subtask
      typename Op::WindowFn emit = [f](const K& k, const window::TimeWindow& w,
                                       const std::vector<T>& v, basic::Collector<R>& out) {
        f->process(k, w, v, out);
      };
      return std::make_unique<Op>(ks, s, Contents(), emit);
    });
  }

 private:
  // Whether this window pre-aggregates: the job's choice, else `by_default`
  // where the windows allow it. Throws if the job asked for it where they
  // do not.
  bool combine(bool by_default) const {
    const bool allowed = !settings_.assigner.is_merging() && !settings_.assigner.is_processing_time() &&
                         settings_.early_firing.count() == 0;
    if (local_combine_.value_or(false) && !allowed) {
      throw std::invalid_argument(
          "local_combine works on event-time tumbling and sliding windows without early firing (a "
          "session window's merges and a processing-time or early firing need every record at the window)");
    }
    return allowed && local_combine_.value_or(by_default);
  }

  // The combiner chained to the input, a hash exchange of partials, and
  // the window operator folding them in.
  template <class R, class ACC, class OUT, class WF>
  DataStream<R> combined(std::shared_ptr<const state::AggregateFunction<T, ACC, OUT>> fn, WF wf,
                         std::string name) const {
    using P = window::WindowPartial<K, T, ACC>;
    using Contents = window::PreAggregatedContents<K, T, ACC, OUT>;
    using Op = window::WindowOperator<K, P, Contents, R>;
    using Combiner = window::LocalWindowCombiner<K, T, ACC, OUT>;
    DataStream<P> partials = keyed_.input().template add_one_input<P>(
        name + " (local combine)", "window-combine " + settings_.assigner.description(),
        [ks = keyed_.key_selector(), a = settings_.assigner, fn]() { return std::make_unique<Combiner>(ks, a, fn); });
    // Chained to its input: the same parallelism (when the inputs agree).
    int input_parallelism = env()->graph().node(keyed_.input().inputs().front().node).parallelism;
    for (const auto& in : keyed_.input().inputs()) {
      if (env()->graph().node(in.node).parallelism != input_parallelism) input_parallelism = -1;
    }
    partials.set_parallelism(input_parallelism);
    auto pks = std::make_shared<const runtime::KeySelector<P, K>>(std::function<K(const P&)>(
        [](const P& p) { return p.key; }));
    typename Op::WindowFn emit = [wf](const K& k, const window::TimeWindow& w, const OUT& v,
                                      basic::Collector<R>& out) { out.collect(wf(k, w, v)); };
    return make<R>(std::move(name), [pks, s = settings_, fn, emit]() {
      return std::make_unique<Op>(pks, s, Contents(fn), emit);
    }, &partials, pks);
  }

  template <class R, class Make>
  DataStream<R> make(std::string name, Make m) const {
    return make<R>(std::move(name), std::move(m), &keyed_.input(), keyed_.key_selector());
  }
  template <class R, class Make, class IN>
  DataStream<R> make(std::string name, Make m, const DataStream<IN>* input,
                     std::shared_ptr<const runtime::KeySelectorBase> ks) const {
    if (settings_.assigner.is_processing_time() &&
        (settings_.allowed_lateness.count() > 0 || settings_.early_firing.count() > 0)) {
      throw std::invalid_argument(
          "allowed_lateness and early_firing apply to event-time windows only: a processing-time "
          "window fires when the subtask's clock passes its end and nothing is late");
    }
    std::string desc = "window " + settings_.assigner.description() +
                       " lateness " + format_duration(settings_.allowed_lateness);
    if (settings_.early_firing.count() > 0) desc += " early " + format_duration(settings_.early_firing);
    DataStream<R> out = input->template add_one_input<R>(std::move(name), std::move(desc), m, ks, true);
    if (settings_.late_tag) {
      env()->graph().node(out.node_id()).side_output_types[*settings_.late_tag] =
          runtime::type_info<T>();
    }
    env()->graph().node(out.node_id()).windowed = true;
    return out;
  }
  StreamExecutionEnvironment* env() const { return keyed_.input().env(); }

  KeyedStream<T, K> keyed_;
  window::WindowSettings settings_;
  std::optional<bool> local_combine_;  // unset: the aggregate's default
};

// ---------------------------------------------------------------------------

template <class T>
DataStream<T> StreamExecutionEnvironment::from_source(
    std::shared_ptr<const runtime::Source<T>> source, runtime::WatermarkStrategy<T> strategy,
    std::string name) {
  StreamNode node;
  node.name = std::move(name);
  node.kind = runtime::NodeKind::kSource;
  node.chaining = runtime::Chaining::kHead;
  node.description = "source " + source->description() + " out-of-orderness " +
                     format_duration(strategy.out_of_orderness) + " idleness " +
                     format_duration(strategy.idleness);
  node.out_type = runtime::type_info<T>();
  node.factory = [source, strategy]() {
    return std::make_unique<runtime::SourceOperator<T>>(source, strategy);
  };
  node.check_input = [source] { return source->check_input(); };
  int id = add_node(std::move(node), {}, Partitioning::kForward);
  return DataStream<T>(this, {Input{id, ""}});
}

}  // namespace sluice::api

#include "engine/api/connected_streams.h"
#include "engine/api/joins.h"
