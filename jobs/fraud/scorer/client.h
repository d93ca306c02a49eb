// Calling the scorer from a job: ScorerClient (gRPC or HTTP/JSON, chosen by
// the endpoint's scheme) and ScorerFn, a ready-made AsyncFunction for
// AsyncDataStream that hands every outcome — a score, or why there is none
// (scorer down, slow, refusing) — to the job, so a decision is never lost.
//
//   auto scored = AsyncDataStream::unordered_wait(suspicious,
//       fraud_scorer::ScorerFn<Suspicion, Decision>(
//           {.endpoint = "grpc://127.0.0.1:7070", .token = "env:SCORER_TOKEN", .deadline = 200ms},
//           [](const Suspicion& s) { return fraud_scorer::ScoreInput{s.id, s.user, {{"amount_log", s.amount_log}}}; },
//           [](const Suspicion& s, Result<fraud_scorer::ScoreResult> r) {
//             return r.is_ok() ? Decision::scored(s, r->score, r->model_version) : Decision::unscored(s, r.status());
//           }),
//       500ms, 1000);
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "engine/common/serde.h"
#include "engine/common/status.h"
#include "engine/common/time.h"
#include "operators/async/async_function.h"

namespace sluice::fraud_scorer {

/// One scoring request; also the JSON body of POST /v1/score.
struct ScoreInput {
  std::string request_id;
  std::string user;
  std::map<std::string, double> features;
  SLUICE_FIELDS(request_id, user, features)
};

/// The answer; also the JSON reply of POST /v1/score.
struct ScoreResult {
  std::string request_id;
  double score = 0;
  std::string model_version;
  SLUICE_FIELDS(request_id, score, model_version)
};

/// Value type, copied into every subtask. Defaults in brackets.
struct ScorerClientOptions {
  /// Required. grpc://host:port, grpcs://host:port (TLS), http://host:port
  /// or https://host:port (POST /v1/score is appended to HTTP endpoints).
  std::string endpoint;
  /// Required: the bearer token, as env:NAME or file:PATH (read in open(),
  /// on the machine that runs the subtask) or the literal token.
  std::string token;
  /// [500 ms] per call; keep it at or below the async operator's (attempt) timeout.
  Duration deadline{500};
  /// [none] grpcs/https: the CA that signed the scorer's certificate (https:
  /// default the system's); a client certificate for mutual TLS.
  std::string tls_ca, tls_cert, tls_key;
  /// [10 000] calls in flight per client; more are refused (kResourceExhausted).
  size_t max_pending = 10'000;
  /// [4] HTTP only: connections to the scorer per process (calls beyond
  /// wait in the client). Keep the sum over all processes at or below the
  /// scorer's --threads: each open connection holds one of its workers.
  /// gRPC multiplexes every call on one connection.
  long http_connections = 4;
};

/// A connection to the scorer. submit() is thread-safe and never blocks;
/// `done` runs exactly once on the client's thread (keep it short) with the
/// result or an error: kUnavailable (down, 429/5xx), kTimeout (deadline),
/// kPermissionDenied (token refused), kInvalidArgument (request refused,
/// with the scorer's reason), kCorruption (unreadable reply). Destruction
/// calls back what is still in flight (kCancelled) before it returns.
class ScorerClient {
 public:
  using Callback = std::function<void(Result<ScoreResult>)>;
  static Result<std::unique_ptr<ScorerClient>> connect(const ScorerClientOptions& options);
  virtual ~ScorerClient() = default;
  /// OK: `done` will be called. An error (too many in flight, stopping):
  /// `done` is dropped without being called.
  virtual Status submit(const ScoreInput& input, Callback done) = 0;
};

/// AsyncFunction<IN, OUT> over a ScorerClient made per subtask in open().
/// `from_result` gets the score or the reason there is none — including the
/// operator's timeout — and makes the output: nothing goes to the
/// dead-letter output because the scorer failed. It runs on the client's
/// thread (or the task thread for a timeout): pure and quick. To retry,
/// give the operator a retry strategy with retry_if_result on an unscored
/// output; when attempts run out that output is emitted.
template <class IN, class OUT>
class ScorerFn final : public async_io::AsyncFunction<IN, OUT> {
 public:
  using ToInput = std::function<ScoreInput(const IN&)>;
  using FromResult = std::function<OUT(const IN&, Result<ScoreResult>)>;

  ScorerFn(ScorerClientOptions options, ToInput to_input, FromResult from_result)
      : opts_(std::move(options)), to_input_(std::move(to_input)), from_result_(std::move(from_result)) {}
  ScorerFn(const ScorerFn& o) : opts_(o.opts_), to_input_(o.to_input_), from_result_(o.from_result_) {}  // not the client

  Status open(basic::RuntimeContext&) override {
    SLUICE_ASSIGN_OR_RETURN(client_, ScorerClient::connect(opts_));
    return Status::ok();
  }
  void close() override { client_.reset(); }

  void async_invoke(const IN& input, async_io::ResultFuture<OUT> result) override {
    Status st = client_->submit(to_input_(input), [input, result, from = from_result_](Result<ScoreResult> r) mutable {
      result.complete(from(input, std::move(r)));
    });
    if (!st.is_ok()) result.complete(from_result_(input, st));
  }
  void timeout(const IN& input, async_io::ResultFuture<OUT> result) override {
    result.complete(from_result_(input, Status::timeout("the scorer did not answer in time")));
  }

 private:
  ScorerClientOptions opts_;
  ToInput to_input_;
  FromResult from_result_;
  std::unique_ptr<ScorerClient> client_;
};

}  // namespace sluice::fraud_scorer
