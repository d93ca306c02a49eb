// AsyncDataStream: async I/O on a stream (Flink's AsyncDataStream).
//
//   auto scored = AsyncDataStream::unordered_wait(txns, ScoreFn(url), 500ms, 1000);
//   auto kept   = AsyncDataStream::ordered_wait_with_retry(txns, ScoreFn(url), 2s, 100,
//                     AsyncRetryStrategy<Scored>::exponential_backoff(4, 50ms, 1s));
//
// F derives from async_io::AsyncFunction<T, OUT> and is copied into every
// subtask. `timeout` bounds a record's whole time in the operator (retries
// included); `capacity` is how many records may be in flight per subtask.
// For every knob (attempt timeout, failing the job on errors) use wait().
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "engine/api/datastream.h"
#include "operators/async/async_wait_operator.h"

namespace sluice::api {

namespace detail {
template <class IN, class OUT>
OUT async_output(const async_io::AsyncFunction<IN, OUT>*);
}  // namespace detail

class AsyncDataStream {
 public:
  template <class F>
  using OutputOf = decltype(detail::async_output(static_cast<const F*>(nullptr)));

  template <class T, class F>
  static DataStream<OutputOf<F>> ordered_wait(const DataStream<T>& in, F fn, Duration timeout, int capacity = 100,
                                              std::string name = "async") {
    return wait(in, std::move(fn), options(async_io::OutputMode::kOrdered, timeout, capacity), {}, std::move(name));
  }
  template <class T, class F>
  static DataStream<OutputOf<F>> unordered_wait(const DataStream<T>& in, F fn, Duration timeout, int capacity = 100,
                                                std::string name = "async") {
    return wait(in, std::move(fn), options(async_io::OutputMode::kUnordered, timeout, capacity), {}, std::move(name));
  }
  template <class T, class F>
  static DataStream<OutputOf<F>> ordered_wait_with_retry(const DataStream<T>& in, F fn, Duration timeout,
                                                         int capacity, async_io::AsyncRetryStrategy<OutputOf<F>> retry,
                                                         std::string name = "async") {
    return wait(in, std::move(fn), options(async_io::OutputMode::kOrdered, timeout, capacity), std::move(retry),
                std::move(name));
  }
  template <class T, class F>
  static DataStream<OutputOf<F>> unordered_wait_with_retry(const DataStream<T>& in, F fn, Duration timeout,
                                                           int capacity,
                                                           async_io::AsyncRetryStrategy<OutputOf<F>> retry,
                                                           std::string name = "async") {
    return wait(in, std::move(fn), options(async_io::OutputMode::kUnordered, timeout, capacity), std::move(retry),
                std::move(name));
  }

  /// Every option; throws std::invalid_argument for a bad one.
  template <class T, class F>
  static DataStream<OutputOf<F>> wait(const DataStream<T>& in, F fn, async_io::AsyncOptions options,
                                      async_io::AsyncRetryStrategy<OutputOf<F>> retry = {},
                                      std::string name = "async") {
    using OUT = OutputOf<F>;
    static_assert(std::is_base_of_v<async_io::AsyncFunction<T, OUT>, F>,
                  "the async function's input type must be the stream's element type");
    static_assert(std::is_copy_constructible_v<F>, "the async function is copied into every subtask");
    options.validate();
    std::string desc = std::string(options.mode == async_io::OutputMode::kOrdered ? "async ordered" : "async unordered") +
                       " timeout " + format_duration(options.timeout) + " capacity " +
                       std::to_string(options.capacity) + " " + retry.describe();
    return in.template add_one_input<OUT>(std::move(name), std::move(desc), [fn, options, retry]() {
      return std::make_unique<async_io::AsyncWaitOperator<T, OUT>>(std::make_unique<F>(fn), options, retry);
    });
  }

 private:
  static async_io::AsyncOptions options(async_io::OutputMode mode, Duration timeout, int capacity) {
    async_io::AsyncOptions o;
    o.mode = mode;
    o.timeout = timeout;
    o.capacity = capacity;
    return o;
  }
};

}  // namespace sluice::api
