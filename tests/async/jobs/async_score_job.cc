// it_async_score: transactions scored by an external service through async
// I/O, over HTTP/JSON or gRPC. Built for tests/async/async_job_test.cc (and
// the async benchmark), which run it with `sluice run-local` against the
// test servers of tests/async/support.
//
// Input: NDJSON {"id":N,"user":"u1","amount":12.5,"ts":1700000000123}.
// Output: {"id":N,"user":..,"score":..,"ts":..} per scored transaction;
// timed-out and failed ones go to the dead-letter output.
//
// Arguments (--arg key=value):
//   source            file:///path.ndjson[?rate=N] (required)
//   sink              file:///path.ndjson (default stdout:)
//   dlq               dead letters (default stderr:)
//   protocol          http | grpc (default http)
//   endpoint          http://127.0.0.1:PORT/score or 127.0.0.1:PORT (required)
//   mode              ordered | unordered (default unordered)
//   timeout           per record, retries included (default 5s)
//   attempt_timeout   per call (default 0: none)
//   capacity          records in flight per subtask (default 100)
//   attempts          calls per record at most (default 1)
//   backoff           first retry delay, doubling up to 1s (default 20ms)
#include <chrono>
#include <memory>
#include <string>

#include "connectors/connectors.h"
#include "engine/api/sluice.h"
#include "operators/async/grpc/grpc_client.h"
#include "tests/async/support/scoring.grpc.pb.h"

using namespace std::chrono_literals;

namespace it_async {

struct Txn {
  int64_t id = 0;
  std::string user;
  double amount = 0;
  int64_t ts = 0;
  SLUICE_FIELDS(id, user, amount, ts)
};

struct Scored {
  int64_t id = 0;
  std::string user;
  double score = 0;
  int64_t ts = 0;
  SLUICE_FIELDS(id, user, score, ts)
};

struct ScoreRequestJson {
  int64_t id = 0;
  double amount = 0;
  SLUICE_FIELDS(id, amount)
};

struct ScoreReplyJson {
  int64_t id = 0;
  double score = 0;
  SLUICE_FIELDS(id, score)
};

/// Scores on the test Scorer service over gRPC. The channel, stub and
/// client are made per subtask in open() (copies carry the settings only).
class GrpcScoreFn final : public sluice::AsyncFunction<Txn, Scored> {
 public:
  GrpcScoreFn(std::string target, sluice::Duration deadline) : target_(std::move(target)), deadline_(deadline) {}
  GrpcScoreFn(const GrpcScoreFn& o) : target_(o.target_), deadline_(o.deadline_) {}

  sluice::Status open(sluice::RuntimeContext&) override {
    // Reconnect quickly after an outage (gRPC's default backoff grows to 2 min).
    grpc::ChannelArguments ch;
    ch.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    ch.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    ch.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
    channel_ = grpc::CreateCustomChannel(target_, grpc::InsecureChannelCredentials(), ch);
    stub_ = sluice::test::Scorer::NewStub(channel_);
    client_ = std::make_unique<sluice::grpc_client::AsyncUnaryClient>();
    return sluice::Status::ok();
  }
  void close() override {
    client_.reset();  // cancels and calls back what is still running
    stub_.reset();
    channel_.reset();
  }
  void async_invoke(const Txn& t, sluice::ResultFuture<Scored> result) override {
    sluice::test::ScoreRequest req;
    req.set_id(t.id);
    req.set_user(t.user);
    req.set_amount(t.amount);
    sluice::Status st = client_->call(
        *stub_, &sluice::test::Scorer::Stub::PrepareAsyncScore, req, deadline_,
        std::function<void(const grpc::Status&, sluice::test::ScoreReply&&)>(
            [t, result](const grpc::Status& s, sluice::test::ScoreReply&& reply) mutable {
              if (!s.ok()) result.complete_exceptionally(sluice::grpc_client::from_grpc(s));
              else result.complete(Scored{t.id, t.user, reply.score(), t.ts});
            }));
    if (!st.is_ok()) result.complete_exceptionally(st);
  }

 private:
  std::string target_;
  sluice::Duration deadline_;
  std::shared_ptr<grpc::Channel> channel_;  // shared: gRPC's own type
  std::unique_ptr<sluice::test::Scorer::Stub> stub_;
  std::unique_ptr<sluice::grpc_client::AsyncUnaryClient> client_;
};

template <class T>
T or_arg_error(sluice::Result<T> r, const std::string& key) {
  if (!r.is_ok()) throw sluice::api::JobArgError("--arg " + key + ": " + r.status().message());
  return std::move(r).value();
}

}  // namespace it_async

SLUICE_JOB(it_async_score) {
  using namespace sluice;
  using namespace it_async;
  auto source = or_arg_error(connectors::source_from_uri<Txn>(args.require("source", "file:///path.ndjson")), "source");
  auto sink = or_arg_error(connectors::sink_from_uri<Scored>(args.get("sink", "stdout:")), "sink");
  auto dlq = or_arg_error(connectors::sink_from_uri<DeadLetter>(args.get("dlq", "stderr:")), "dlq");
  env.set_dead_letter_sink(dlq);
  const std::string protocol = args.get("protocol", "http");
  const std::string endpoint = args.require("endpoint", "http://127.0.0.1:8080/score");
  const std::string mode = args.get("mode", "unordered");
  if (protocol != "http" && protocol != "grpc") throw api::JobArgError("--arg protocol must be http or grpc");
  if (mode != "ordered" && mode != "unordered") throw api::JobArgError("--arg mode must be ordered or unordered");

  AsyncOptions opts;
  opts.mode = mode == "ordered" ? OutputMode::kOrdered : OutputMode::kUnordered;
  opts.timeout = args.get_duration("timeout", 5s);
  opts.attempt_timeout = args.get_duration("attempt_timeout", 0s);
  opts.capacity = static_cast<int>(args.get_int("capacity", 100));
  const int attempts = static_cast<int>(args.get_int("attempts", 1));
  const Duration backoff = args.get_duration("backoff", 20ms);
  auto retry = attempts > 1 ? AsyncRetryStrategy<Scored>::exponential_backoff(attempts, backoff, std::max(backoff, Duration(1000)))
                            : AsyncRetryStrategy<Scored>::no_retry();
  // Each call may take the whole attempt timeout (or the record's timeout).
  Duration call_timeout = opts.attempt_timeout.count() > 0 ? opts.attempt_timeout : opts.timeout;

  auto txns = env.from_source(source,
                              WatermarkStrategy<Txn>::for_bounded_out_of_orderness(0s).with_timestamp_assigner(
                                  [](const Txn& t) { return t.ts; }),
                              "txns");
  txns.uid("txns");
  DataStream<Scored> scored = [&] {
    if (protocol == "grpc") {
      return AsyncDataStream::wait(txns, GrpcScoreFn(endpoint, call_timeout), opts, retry, "score");
    }
    HttpJsonOptions http;
    http.url = endpoint;
    http.request_timeout = call_timeout;
    http.client.name = "it-score";
    return AsyncDataStream::wait(
        txns,
        HttpJsonFunction<Txn, ScoreRequestJson, ScoreReplyJson, Scored>(
            http, [](const Txn& t) { return ScoreRequestJson{t.id, t.amount}; },
            [](const Txn& t, ScoreReplyJson r) { return Scored{t.id, t.user, r.score, t.ts}; }),
        opts, retry, "score");
  }();
  scored.uid("score");
  scored.sink_to(sink, "scored").uid("scored-sink").set_parallelism(1);
}
