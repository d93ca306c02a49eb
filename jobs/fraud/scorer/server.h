// ScorerServer: the scoring service's two endpoints over one ModelStore —
// gRPC (scorer.proto, sluice.fraud.Scorer/Score) and HTTP/JSON (POST
// /v1/score, GET /healthz, GET /metrics) — with a bearer token on both,
// optional TLS, bounded request sizes, feature counts and worker threads.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "engine/common/http_server.h"
#include "engine/common/status.h"
#include "engine/proto/rpc_auth.h"
#include "jobs/fraud/scorer/model.h"

namespace sluice::fraud_scorer {

/// Value type; defaults in brackets.
struct ScorerOptions {
  std::string grpc_bind = "127.0.0.1:7070";  ///< host:port, port 0 = any free port; "" = no gRPC endpoint
  std::string http_bind = "127.0.0.1:7071";  ///< host:port, port 0 = any free port; "" = no HTTP endpoint
  /// Required (non-empty): `Authorization: Bearer <token>` on /v1/score and
  /// /metrics, gRPC metadata `authorization: Bearer <token>`.
  std::string token;
  /// [none] PEM files: TLS on both endpoints with cert+key, mutual TLS with ca.
  rpc::TlsFiles tls;
  size_t max_body_bytes = 64u << 10;  ///< [64 KiB] HTTP body / gRPC message
  size_t max_features = 256;          ///< [256] features per request
  size_t max_id_bytes = 256;          ///< [256] request_id, user and each feature name
  /// [8] HTTP worker threads: concurrent HTTP connections served (a
  /// keep-alive connection holds its worker while it stays open).
  int threads = 8;
  /// gRPC runs on gRPC's own executor; bounded by [256] concurrent calls
  /// per connection and [64 MiB] of memory for calls in flight.
  int grpc_max_streams = 256;
  size_t grpc_memory_bytes = 64u << 20;
};

/// Owns both endpoints' servers and threads. Lifecycle: start() (binds and
/// serves) -> destruction (stops accepting, finishes running requests,
/// joins). Request threads only read the store and the options.
class ScorerServer {
 public:
  static Result<std::unique_ptr<ScorerServer>> start(const ScorerOptions& options, ModelStore* store);
  ~ScorerServer();
  ScorerServer(const ScorerServer&) = delete;
  ScorerServer& operator=(const ScorerServer&) = delete;

  /// host:port as bound ("" when the endpoint is off).
  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& http_address() const { return http_address_; }

 private:
  class GrpcService;
  ScorerServer() = default;
  std::string grpc_address_, http_address_;
  std::unique_ptr<GrpcService> service_;
  std::unique_ptr<grpc::Server> grpc_;
  std::unique_ptr<HttpServer> http_;
};

}  // namespace sluice::fraud_scorer
