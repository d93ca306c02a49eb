#include "engine/proto/rpc_auth.h"

#include <spdlog/spdlog.h>

#include <fstream>
#include <sstream>

namespace sluice::rpc {

namespace {

Result<std::string> read_pem(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) return Status::not_found(std::string("cannot read ") + what + " '" + path + "'");
  std::stringstream s;
  s << in.rdbuf();
  if (s.str().empty()) return Status::invalid_argument(std::string(what) + " '" + path + "' is empty");
  return s.str();
}

}  // namespace

Result<std::shared_ptr<grpc::ServerCredentials>> server_credentials(const TlsFiles& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  if (tls.cert.empty() || tls.key.empty()) {
    return Status::invalid_argument("TLS needs both --tls-cert and --tls-key (and --tls-ca for mutual TLS)");
  }
  SLUICE_ASSIGN_OR_RETURN(std::string cert, read_pem(tls.cert, "--tls-cert"));
  SLUICE_ASSIGN_OR_RETURN(std::string key, read_pem(tls.key, "--tls-key"));
  grpc::SslServerCredentialsOptions so(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  so.pem_key_cert_pairs.push_back({key, cert});
  if (!tls.ca.empty()) {
    SLUICE_ASSIGN_OR_RETURN(so.pem_root_certs, read_pem(tls.ca, "--tls-ca"));
    so.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(so);
}

Result<std::shared_ptr<grpc::ChannelCredentials>> channel_credentials(const TlsFiles& tls) {
  if (!tls.enabled()) return grpc::InsecureChannelCredentials();
  if (tls.ca.empty()) return Status::invalid_argument("TLS to a peer needs --tls-ca (the CA that signed its certificate)");
  if (tls.cert.empty() != tls.key.empty()) return Status::invalid_argument("--tls-cert and --tls-key go together");
  grpc::SslCredentialsOptions so;
  SLUICE_ASSIGN_OR_RETURN(so.pem_root_certs, read_pem(tls.ca, "--tls-ca"));
  if (!tls.cert.empty()) {
    SLUICE_ASSIGN_OR_RETURN(so.pem_cert_chain, read_pem(tls.cert, "--tls-cert"));
    SLUICE_ASSIGN_OR_RETURN(so.pem_private_key, read_pem(tls.key, "--tls-key"));
  }
  return grpc::SslCredentials(so);
}

grpc::Status check(grpc::ServerContext* ctx, auth::CallAuthenticator& a, const char* method) {
  const auto& md = ctx->client_metadata();
  auto it = md.find(auth::kMetadataKey);
  std::string_view value;
  if (it != md.end()) value = std::string_view(it->second.data(), it->second.size());
  Status st = a.verify(method, value);
  if (st.is_ok()) return grpc::Status::OK;
  spdlog::warn("refused {} from {}: {}", method, ctx->peer(), st.message());
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      std::string(method) + " refused: " + st.message() +
                          " (cluster members need the cluster secret: --token-file or SLUICE_TOKEN)");
}

}  // namespace sluice::rpc
