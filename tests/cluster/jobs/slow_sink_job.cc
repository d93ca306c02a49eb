// it_slow_sink: clicks in, clicks out through a deliberately slow sink
// (sleeps `delay_us` per record), for the cluster's backpressure test
// (tests/cluster/cluster_test.cc). The records themselves are written by
// the exactly-once NDJSON sink, so the test can check none is lost.
//
// Arguments: source (file:///...), sink (file:///...), dlq, delay_us (default 100).
#include <chrono>
#include <thread>

#include "connectors/connectors.h"
#include "engine/api/sluice.h"

namespace sluice_it {

struct Click {
  std::string user_id;
  std::string page_url;
  std::string event_type;
  int64_t ts = 0;
  SLUICE_FIELDS(user_id, page_url, event_type, ts)
};

/// Delegates to another sink's writer, sleeping before every record.
template <class T>
class SlowSink final : public sluice::runtime::Sink<T> {
 public:
  SlowSink(std::shared_ptr<const sluice::runtime::Sink<T>> inner, int64_t delay_us)
      : inner_(std::move(inner)), delay_us_(delay_us) {}
  std::string description() const override { return "slow " + inner_->description(); }
  std::unique_ptr<sluice::runtime::SinkWriter<T>> create_writer() const override {
    return std::make_unique<Writer>(inner_->create_writer(), delay_us_);
  }

 private:
  class Writer final : public sluice::runtime::SinkWriter<T> {
   public:
    Writer(std::unique_ptr<sluice::runtime::SinkWriter<T>> w, int64_t d) : w_(std::move(w)), d_(d) {}
    sluice::Status open(sluice::runtime::OperatorContext& ctx) override { return w_->open(ctx); }
    sluice::Status write(const T& v, sluice::EventTime ts) override {
      std::this_thread::sleep_for(std::chrono::microseconds(d_));
      return w_->write(v, ts);
    }
    sluice::Status flush() override { return w_->flush(); }
    sluice::Result<std::string> snapshot_state(sluice::CheckpointId id) override { return w_->snapshot_state(id); }
    sluice::Status notify_checkpoint_complete(sluice::CheckpointId id) override {
      return w_->notify_checkpoint_complete(id);
    }
    void notify_checkpoint_aborted(sluice::CheckpointId id) override { w_->notify_checkpoint_aborted(id); }
    sluice::Status initialize_state(const sluice::runtime::OperatorRestore& r) override {
      return w_->initialize_state(r);
    }
    sluice::Status close() override { return w_->close(); }

   private:
    std::unique_ptr<sluice::runtime::SinkWriter<T>> w_;
    int64_t d_;
  };
  std::shared_ptr<const sluice::runtime::Sink<T>> inner_;
  int64_t delay_us_;
};

template <class T>
T or_arg_error(sluice::Result<T> r, const std::string& key) {
  if (!r.is_ok()) throw sluice::api::JobArgError("--arg " + key + ": " + r.status().message());
  return std::move(r).value();
}

}  // namespace sluice_it

SLUICE_JOB(it_slow_sink) {
  using namespace sluice;
  using sluice_it::Click;
  auto source = sluice_it::or_arg_error(
      connectors::source_from_uri<Click>(args.require("source", "file:///path/to/clicks.ndjson")), "source");
  auto inner = sluice_it::or_arg_error(connectors::sink_from_uri<Click>(args.get("sink", "stdout:")), "sink");
  auto dlq = sluice_it::or_arg_error(connectors::sink_from_uri<DeadLetter>(args.get("dlq", "stderr:")), "dlq");
  const int64_t delay_us = args.get_int("delay_us", 100);
  env.set_dead_letter_sink(dlq);
  auto strategy = WatermarkStrategy<Click>::for_bounded_out_of_orderness(std::chrono::seconds(2))
                      .with_timestamp_assigner([](const Click& c) { return c.ts; });
  auto clicks = env.from_source(source, strategy, "clicks");
  clicks.uid("clicks");
  auto sink = std::make_shared<sluice_it::SlowSink<Click>>(inner, delay_us);
  clicks.rebalance().sink_to(sink, "slow sink").uid("slow-sink").set_parallelism(1);
}
