// HttpJsonFunction: a ready-made AsyncFunction that POSTs a JSON request
// per record to an HTTP service and turns the JSON reply into the output,
// on the process's shared HttpClient (libcurl multi, connection reuse).
//
//   AsyncDataStream::unordered_wait(txns,
//       HttpJsonFunction<Txn, ScoreRequest, ScoreReply, Scored>(
//           {.url = "http://127.0.0.1:8080/score"},
//           [](const Txn& t) { return ScoreRequest{t.id, t.amount}; },
//           [](const Txn& t, ScoreReply r) { return Scored{t.id, r.score}; }),
//       500ms, 1000);
//
// Answers: 2xx -> the reply; 408, 429 and 5xx, transport errors and
// unreadable replies -> an error (retried by the operator's retry
// strategy); other 4xx -> the record is bad: dead-letter output.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/json.h"
#include "engine/common/json_read.h"
#include "operators/async/async_function.h"
#include "operators/async/http/http_client.h"

namespace sluice::async_io {

/// Value type, copied into every subtask.
struct HttpJsonOptions {
  std::string url;
  /// Extra request headers (Content-Type: application/json is always sent).
  std::vector<std::pair<std::string, std::string>> headers;
  /// Default 0: the client's default timeout. Keep it at or below the
  /// operator's (attempt) timeout.
  Duration request_timeout{0};
  /// The client; functions of one process with the same client name share
  /// one client (one event-loop thread, one connection pool).
  http_client::HttpClientOptions client;
};

template <class IN, class REQ, class REPLY, class OUT>
class HttpJsonFunction final : public AsyncFunction<IN, OUT> {
 public:
  using ToRequest = std::function<REQ(const IN&)>;
  using FromReply = std::function<OUT(const IN&, REPLY)>;

  HttpJsonFunction(HttpJsonOptions options, ToRequest to_request, FromReply from_reply)
      : opts_(std::move(options)), to_request_(std::move(to_request)), from_reply_(std::move(from_reply)) {
    opts_.headers.emplace_back("Content-Type", "application/json");
  }
  HttpJsonFunction(const HttpJsonFunction& o)
      : opts_(o.opts_), to_request_(o.to_request_), from_reply_(o.from_reply_) {}  // not the client

  Status open(basic::RuntimeContext&) override {
    if (opts_.url.rfind("http://", 0) != 0 && opts_.url.rfind("https://", 0) != 0) {
      return Status::invalid_argument("HTTP JSON function: url must start with http:// or https://, got '" +
                                      opts_.url + "'");
    }
    SLUICE_ASSIGN_OR_RETURN(client_, http_client::HttpClient::shared(opts_.client));
    return Status::ok();
  }
  void close() override { client_.reset(); }

  void async_invoke(const IN& input, ResultFuture<OUT> result) override {
    http_client::Request req;
    req.method = http_client::Method::kPost;
    req.url = opts_.url;
    req.headers = opts_.headers;
    req.body = to_json(to_request_(input));
    req.timeout = opts_.request_timeout;
    Status st = client_->submit(std::move(req), [input, result, from = from_reply_](
                                                    Result<http_client::Response> r) mutable {
      if (!r.is_ok()) {
        result.complete_exceptionally(r.status());
        return;
      }
      const auto& resp = *r;
      if (!resp.ok()) {
        std::string what = http_client::describe_status(resp.status) + ": " + resp.body.substr(0, 200);
        bool retryable = resp.status == 408 || resp.status == 429 || resp.status >= 500;
        if (retryable) result.complete_exceptionally(Status::unavailable(what));
        else result.dead_letter(what);
        return;
      }
      thread_local JsonParser parser;
      REPLY reply{};
      std::string err = parser.parse(resp.body, reply);
      if (!err.empty()) {
        result.complete_exceptionally(Status::corruption("unreadable reply: " + err));
        return;
      }
      try {
        result.complete(from(input, std::move(reply)));
      } catch (const InvalidRecord& e) {
        result.dead_letter(e.what());
      } catch (const std::exception& e) {
        result.complete_exceptionally(Status::internal(std::string("reply function threw: ") + e.what()));
      }
    });
    if (!st.is_ok()) result.complete_exceptionally(st);
  }

 private:
  HttpJsonOptions opts_;
  ToRequest to_request_;
  FromReply from_reply_;
  std::shared_ptr<http_client::HttpClient> client_;  // shared: one client per process and name
};

}  // namespace sluice::async_io
