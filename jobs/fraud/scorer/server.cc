#include "jobs/fraud/scorer/server.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "engine/common/auth.h"
#include "engine/common/json.h"
#include "engine/common/metrics.h"
#include "jobs/fraud/scorer/scorer.grpc.pb.h"

namespace sluice::fraud_scorer {

namespace {

/// The scorer's metric families (process-wide registry).
struct ScorerMetrics {
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Counter>& unknown;
  prometheus::Family<prometheus::Histogram>& seconds;

  static ScorerMetrics& get() {
    static ScorerMetrics* m = [] {
      auto& r = metrics::registry();
      return new ScorerMetrics{
          prometheus::BuildCounter()
              .Name("sluice_scorer_requests_total")
              .Help("Scoring requests by endpoint (grpc, http) and outcome (scored, bad_request, unauthenticated)")
              .Register(r),
          prometheus::BuildCounter()
              .Name("sluice_scorer_unknown_features_total")
              .Help("Request features the model does not know (ignored)")
              .Register(r),
          prometheus::BuildHistogram()
              .Name("sluice_scorer_request_seconds")
              .Help("Time to validate and score a request, by endpoint")
              .Register(r),
      };
    }();
    return *m;
  }
  void count(const char* endpoint, const char* outcome) { requests.Add({{"endpoint", endpoint}, {"outcome", outcome}}).Increment(); }
};

const prometheus::Histogram::BucketBoundaries kBuckets{0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05};

struct Reply {
  double score = 0;
  std::string model_version;
};

/// Validates and scores one request; the error (kInvalidArgument) is the
/// reason a client gets. Request threads.
template <class Features>
Result<Reply> score_request(const ScorerOptions& o, const ModelStore& store, const char* endpoint,
                            std::string_view request_id, std::string_view user, const Features& features) {
  auto& m = ScorerMetrics::get();
  auto bad = [&](std::string why) {
    m.count(endpoint, "bad_request");
    return Status::invalid_argument(std::move(why));
  };
  if (request_id.size() > o.max_id_bytes) return bad("request_id is longer than " + std::to_string(o.max_id_bytes) + " bytes");
  if (user.size() > o.max_id_bytes) return bad("user is longer than " + std::to_string(o.max_id_bytes) + " bytes");
  if (features.size() > o.max_features) {
    return bad(std::to_string(features.size()) + " features, more than the limit of " + std::to_string(o.max_features));
  }
  for (const auto& [name, value] : features) {
    if (name.empty() || name.size() > o.max_id_bytes) {
      return bad("feature names must have 1 to " + std::to_string(o.max_id_bytes) + " bytes");
    }
    if (!std::isfinite(value)) return bad("feature \"" + std::string(name) + "\" is not a finite number");
  }
  auto model = store.current();
  auto s = model->score(features);
  if (s.unknown) m.unknown.Add({{"endpoint", endpoint}}).Increment(static_cast<double>(s.unknown));
  m.count(endpoint, "scored");
  return Reply{s.score, model->version()};
}

std::string error_json(std::string_view why) {
  std::string out = "{\"error\":";
  json_append_string(out, why);
  out += '}';
  return out;
}

/// Parses a POST /v1/score body: {"request_id":"..","user":"..","features":{"name":number,..}}.
/// Its size is bounded by the server's body limit, so is what it allocates.
Status parse_http_request(const std::string& body, std::string& request_id, std::string& user,
                          std::vector<std::pair<std::string_view, double>>& features, simdjson::dom::parser& parser) {
  auto fail = [](const std::string& what, simdjson::error_code e) {
    return Status::invalid_argument(what + " (" + simdjson::error_message(e) + ")");
  };
  simdjson::dom::element doc;
  if (auto e = parser.parse(body).get(doc)) return fail("body is not JSON", e);
  simdjson::dom::object root;
  if (auto e = doc.get_object().get(root)) return fail("body must be a JSON object", e);
  for (const char* key : {"request_id", "user"}) {
    auto v = root[key];
    if (v.error() == simdjson::NO_SUCH_FIELD) continue;
    std::string_view s;
    if (auto e = v.get_string().get(s)) return fail(std::string("\"") + key + "\" must be a string", e);
    (key[0] == 'u' ? user : request_id) = std::string(s);
  }
  simdjson::dom::object f;
  if (auto e = root["features"].get_object().get(f)) return fail("\"features\" must be an object", e);
  features.reserve(f.size());
  for (auto [name, value] : f) {
    double x = 0;
    if (auto e = value.get_double().get(x)) return fail("feature \"" + std::string(name.substr(0, 64)) + "\" must be a number", e);
    features.emplace_back(name, x);
  }
  // A name given twice is ambiguous (gRPC's map cannot even say it): refused.
  std::sort(features.begin(), features.end());
  for (size_t i = 1; i < features.size(); ++i) {
    if (features[i].first == features[i - 1].first) {
      return Status::invalid_argument("feature \"" + std::string(features[i].first.substr(0, 64)) + "\" is given twice");
    }
  }
  return Status::ok();
}

bool bearer_matches(std::string_view header, std::string_view token) {
  constexpr std::string_view kPrefix = "Bearer ";
  if (header.substr(0, kPrefix.size()) != kPrefix) return false;
  return auth::constant_time_equal(header.substr(kPrefix.size()), token);
}

}  // namespace

// --- gRPC ------------------------------------------------------------------------

/// The gRPC service on gRPC's callback API: scoring is short CPU work, done
/// inline on gRPC's own (fixed) executor threads, so a burst of calls queues
/// instead of being refused for want of a thread.
class ScorerServer::GrpcService final : public sluice::fraud::Scorer::CallbackService {
 public:
  GrpcService(const ScorerOptions& o, ModelStore* store) : opts_(o), store_(store) {}

  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* ctx, const sluice::fraud::ScoreRequest* req,
                                  sluice::fraud::ScoreResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(score(ctx, req, resp));
    return reactor;
  }

 private:
  grpc::Status score(grpc::CallbackServerContext* ctx, const sluice::fraud::ScoreRequest* req,
                     sluice::fraud::ScoreResponse* resp) {
    auto t0 = std::chrono::steady_clock::now();
    const auto& md = ctx->client_metadata();
    auto it = md.find("authorization");
    if (it == md.end() || !bearer_matches(std::string_view(it->second.data(), it->second.size()), opts_.token)) {
      ScorerMetrics::get().count("grpc", "unauthenticated");
      spdlog::warn("scorer: refused gRPC call from {}: {}", ctx->peer(), it == md.end() ? "no credentials" : "wrong token");
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "needs metadata authorization: Bearer <token>");
    }
    auto r = score_request(opts_, *store_, "grpc", req->request_id(), req->user(), req->features());
    if (!r.is_ok()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, r.status().message());
    resp->set_request_id(req->request_id());
    resp->set_score(r->score);
    resp->set_model_version(r->model_version);
    histogram_->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return grpc::Status::OK;
  }

  const ScorerOptions opts_;
  ModelStore* store_;
  prometheus::Histogram* histogram_ = &ScorerMetrics::get().seconds.Add({{"endpoint", "grpc"}}, kBuckets);
};

// --- server ----------------------------------------------------------------------

Result<std::unique_ptr<ScorerServer>> ScorerServer::start(const ScorerOptions& o, ModelStore* store) {
  if (o.token.empty()) return Status::invalid_argument("scorer: a token is required (--token-file or SLUICE_SCORER_TOKEN)");
  if (o.grpc_bind.empty() && o.http_bind.empty()) return Status::invalid_argument("scorer: no endpoint to serve");
  if (o.threads < 1 || o.max_features < 1 || o.max_body_bytes < 64) {
    return Status::invalid_argument("scorer: threads, max features and max body bytes (>= 64) must be positive");
  }
  std::unique_ptr<ScorerServer> s(new ScorerServer());

  if (!o.http_bind.empty()) {
    HttpServerOptions h;
    h.bind = o.http_bind;
    h.tls_cert = o.tls.cert;
    h.tls_key = o.tls.key;
    h.tls_ca = o.tls.ca;
    h.bearer_token = o.token;
    h.threads = o.threads;
    h.max_body_bytes = o.max_body_bytes;
    h.name = "scorer http";
    SLUICE_ASSIGN_OR_RETURN(s->http_, HttpServer::create(h));
    auto* histogram = &ScorerMetrics::get().seconds.Add({{"endpoint", "http"}}, kBuckets);
    s->http_->post("/v1/score", [o, store, histogram](const HttpRequest& req) {
      auto t0 = std::chrono::steady_clock::now();
      std::string request_id, user;
      std::vector<std::pair<std::string_view, double>> features;  // views into the parser's document
      thread_local simdjson::dom::parser parser(o.max_body_bytes);
      Status st = parse_http_request(req.body, request_id, user, features, parser);
      if (!st.is_ok()) {
        ScorerMetrics::get().count("http", "bad_request");
        return HttpResponse{400, error_json(st.message())};
      }
      auto r = score_request(o, *store, "http", request_id, user, features);
      if (!r.is_ok()) return HttpResponse{400, error_json(r.status().message())};
      std::string out = "{\"request_id\":";
      json_append_string(out, request_id);
      out += ",\"score\":";
      JsonSerde<double>::write(out, r->score);
      out += ",\"model_version\":";
      json_append_string(out, r->model_version);
      out += '}';
      histogram->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      return HttpResponse{200, std::move(out)};
    });
    s->http_->get("/healthz", [store](const HttpRequest&) {
      std::string out = "{\"status\":\"ok\",\"model_version\":";
      json_append_string(out, store->current()->version());
      out += '}';
      return HttpResponse{200, std::move(out)};
    }, /*is_public=*/true);
    s->http_->get("/metrics", [store](const HttpRequest&) {
      metrics::FamilyBuilder b;
      b.gauge("sluice_scorer_model_info", "The model serving (value 1), by version", {{"version", store->current()->version()}}, 1);
      b.counter("sluice_scorer_model_reloads_total", "Model reloads by outcome (ok; failed: the old model kept serving)",
                {{"outcome", "ok"}}, static_cast<double>(store->reloads()));
      b.counter("sluice_scorer_model_reloads_total", "", {{"outcome", "failed"}}, static_cast<double>(store->failed_reloads()));
      return HttpResponse{200, metrics::scrape(b.take()), "text/plain; version=0.0.4; charset=utf-8"};
    });
    s->http_address_ = s->http_->address();
  }

  if (!o.grpc_bind.empty()) {
    SLUICE_ASSIGN_OR_RETURN(auto creds, rpc::server_credentials(o.tls));
    s->service_ = std::make_unique<GrpcService>(o, store);
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort(o.grpc_bind, creds, &port);
    b.RegisterService(s->service_.get());
    // Bounded: the memory of calls in flight, calls per connection, message size.
    grpc::ResourceQuota quota("scorer");
    quota.Resize(o.grpc_memory_bytes);
    b.SetResourceQuota(quota);
    b.SetMaxReceiveMessageSize(static_cast<int>(o.max_body_bytes));
    b.SetMaxSendMessageSize(static_cast<int>(o.max_body_bytes));
    b.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, o.grpc_max_streams);
    s->grpc_ = b.BuildAndStart();
    if (!s->grpc_ || port == 0) return Status::unavailable("scorer: cannot listen for gRPC on " + o.grpc_bind + " (in use?)");
    std::string host = o.grpc_bind.substr(0, o.grpc_bind.rfind(':'));
    s->grpc_address_ = host + ":" + std::to_string(port);
  }
  if (s->http_) s->http_->start();
  spdlog::info("scorer: serving model {} on gRPC {} and HTTP {}{}", store->current()->version(),
               s->grpc_address_.empty() ? "(off)" : s->grpc_address_, s->http_address_.empty() ? "(off)" : s->http_address_,
               o.tls.enabled() ? " (TLS)" : "");
  return s;
}

ScorerServer::~ScorerServer() {
  if (grpc_) grpc_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  http_.reset();
}

}  // namespace sluice::fraud_scorer
