#include "jobs/fraud/scorer/client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "connectors/http/push_config.h"
#include "engine/common/json.h"
#include "engine/common/json_read.h"
#include "engine/proto/rpc_auth.h"
#include "jobs/fraud/scorer/scorer.grpc.pb.h"
#include "operators/async/grpc/grpc_client.h"
#include "operators/async/http/http_client.h"

namespace sluice::fraud_scorer {

namespace {

/// gRPC: one channel, one completion-queue thread per client.
class GrpcScorerClient final : public ScorerClient {
 public:
  GrpcScorerClient(std::shared_ptr<grpc::Channel> channel, std::string token, Duration deadline, size_t max_pending)
      : channel_(std::move(channel)),
        stub_(sluice::fraud::Scorer::NewStub(channel_)),
        client_(std::make_unique<grpc_client::AsyncUnaryClient>(
            grpc_client::AsyncUnaryClientOptions{.name = "scorer", .max_pending = max_pending})),
        metadata_{{"authorization", "Bearer " + token}},
        deadline_(deadline) {}
  ~GrpcScorerClient() override { client_.reset(); }  // cancels and calls back first

  Status submit(const ScoreInput& in, Callback done) override {
    sluice::fraud::ScoreRequest req;
    req.set_request_id(in.request_id);
    req.set_user(in.user);
    req.mutable_features()->insert(in.features.begin(), in.features.end());
    return client_->call(
        *stub_, &sluice::fraud::Scorer::Stub::PrepareAsyncScore, req, deadline_,
        std::function<void(const grpc::Status&, sluice::fraud::ScoreResponse&&)>(
            [done = std::move(done)](const grpc::Status& s, sluice::fraud::ScoreResponse&& r) {
              if (!s.ok()) {
                Status st = grpc_client::from_grpc(s);
                if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
                  st = Status::permission_denied("the scorer refused the token: " + s.error_message());
                }
                return done(st);
              }
              done(ScoreResult{r.request_id(), r.score(), r.model_version()});
            }),
        metadata_);
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;  // shared: gRPC's own type
  std::unique_ptr<sluice::fraud::Scorer::Stub> stub_;
  std::unique_ptr<grpc_client::AsyncUnaryClient> client_;
  const std::vector<std::pair<std::string, std::string>> metadata_;
  const Duration deadline_;
};

/// HTTP/JSON on the process's shared HTTP client named "scorer".
class HttpScorerClient final : public ScorerClient {
 public:
  HttpScorerClient(std::shared_ptr<http_client::HttpClient> client, std::string url, std::string token, Duration deadline)
      : client_(std::move(client)),
        url_(std::move(url)),
        headers_{{"Content-Type", "application/json"}, {"Authorization", "Bearer " + token}},
        deadline_(deadline) {}

  Status submit(const ScoreInput& in, Callback done) override {
    http_client::Request req;
    req.method = http_client::Method::kPost;
    req.url = url_;
    req.headers = headers_;
    req.body = to_json(in);
    req.timeout = deadline_;
    return client_->submit(std::move(req), [done = std::move(done)](Result<http_client::Response> r) {
      if (!r.is_ok()) return done(r.status());
      const long s = r->status;
      const std::string what = http_client::describe_status(s) + ": " + r->body.substr(0, 200);
      if (s == 401 || s == 403) return done(Status::permission_denied("the scorer refused the token (" + what + ")"));
      if (s == 400 || s == 413) return done(Status::invalid_argument("the scorer refused the request (" + what + ")"));
      if (!r->ok()) return done(Status::unavailable("the scorer answered " + what));
      thread_local JsonParser parser;
      ScoreResult out;
      if (std::string err = parser.parse(r->body, out); !err.empty()) {
        return done(Status::corruption("unreadable scorer reply: " + err));
      }
      done(std::move(out));
    });
  }

 private:
  std::shared_ptr<http_client::HttpClient> client_;  // shared: one per process and name
  const std::string url_;
  const std::vector<std::pair<std::string, std::string>> headers_;
  const Duration deadline_;
};

}  // namespace

Result<std::unique_ptr<ScorerClient>> ScorerClient::connect(const ScorerClientOptions& o) {
  const std::string what = "scorer client for '" + o.endpoint + "'";
  if (o.token.empty()) return Status::invalid_argument(what + ": a token is required (env:NAME or file:PATH)");
  SLUICE_ASSIGN_OR_RETURN(std::string token, http_sink::SecretRef::parse(o.token).resolve(what + " token"));
  if (token.empty() || token.find_first_of("\r\n") != std::string::npos) {
    return Status::invalid_argument(what + ": the token is empty or holds a line break");
  }
  if (o.deadline.count() <= 0) return Status::invalid_argument(what + ": the deadline must be positive");
  auto scheme_end = o.endpoint.find("://");
  const std::string scheme = scheme_end == std::string::npos ? "" : o.endpoint.substr(0, scheme_end);
  if (scheme == "grpc" || scheme == "grpcs") {
    const std::string target = o.endpoint.substr(scheme_end + 3);
    if (target.empty() || target.find('/') != std::string::npos) return Status::invalid_argument(what + ": expected grpc://host:port");
    rpc::TlsFiles tls;
    if (scheme == "grpcs") {
      tls = {o.tls_cert, o.tls_key, o.tls_ca};
      if (tls.ca.empty()) return Status::invalid_argument(what + ": grpcs needs tls_ca (the CA of the scorer's certificate)");
    }
    SLUICE_ASSIGN_OR_RETURN(auto creds, rpc::channel_credentials(tls));
    // Reconnect quickly after an outage (gRPC's default backoff grows to minutes).
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    return std::unique_ptr<ScorerClient>(new GrpcScorerClient(grpc::CreateCustomChannel(target, creds, args),
                                                              std::move(token), o.deadline, o.max_pending));
  }
  if (scheme == "http" || scheme == "https") {
    http_client::HttpClientOptions h;
    h.name = "scorer";
    h.max_pending = o.max_pending;
    h.ca_file = o.tls_ca;
    h.default_timeout = o.deadline;
    h.max_host_connections = std::max(1L, o.http_connections);
    h.max_total_connections = h.max_host_connections;
    h.max_active = static_cast<size_t>(h.max_host_connections);
    SLUICE_ASSIGN_OR_RETURN(auto client, http_client::HttpClient::shared(h));
    std::string url = o.endpoint;
    while (!url.empty() && url.back() == '/') url.pop_back();
    return std::unique_ptr<ScorerClient>(new HttpScorerClient(std::move(client), url + "/v1/score", std::move(token), o.deadline));
  }
  return Status::invalid_argument(what + ": the endpoint must start with grpc://, grpcs://, http:// or https://");
}

}  // namespace sluice::fraud_scorer
