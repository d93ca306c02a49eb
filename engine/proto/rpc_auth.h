// The control plane's security glue: TLS credentials for gRPC servers and
// channels (mutual TLS when a CA is given), and the per-call signature of
// engine/common/auth.h carried as gRPC metadata. Used by the jobmanager,
// the taskmanager and the CLI.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "engine/common/auth.h"
#include "engine/common/status.h"

namespace sluice::rpc {

/// PEM files of one process. Default: all empty = plaintext.
struct TlsFiles {
  std::string cert;  // this process's certificate (server, and client certificate for mTLS)
  std::string key;   // its private key
  std::string ca;    // CA that signed the peers' certificates; given on a server: clients must present one
  bool enabled() const { return !cert.empty() || !key.empty() || !ca.empty(); }
};

/// Server credentials: plaintext when nothing is set; TLS with cert+key;
/// mutual TLS (clients must present a certificate signed by `ca`) when `ca`
/// is set too. A CA without a certificate is refused.
Result<std::shared_ptr<grpc::ServerCredentials>> server_credentials(const TlsFiles& tls);
/// Channel credentials: plaintext when nothing is set; TLS verifying the
/// server against `ca`; plus a client certificate when cert+key are set.
Result<std::shared_ptr<grpc::ChannelCredentials>> channel_credentials(const TlsFiles& tls);

/// Adds the signature of `method` to a call about to be made.
inline void sign(grpc::ClientContext& ctx, const auth::CallAuthenticator& a, const char* method) {
  ctx.AddMetadata(auth::kMetadataKey, a.sign(method));
}

/// Checks the signature of an incoming call of `method`; logs and returns
/// UNAUTHENTICATED if it is missing, wrong, stale or replayed.
grpc::Status check(grpc::ServerContext* ctx, auth::CallAuthenticator& a, const char* method);

}  // namespace sluice::rpc
