// What the operator's commands (submit, list, status, cancel, savepoint,
// stop, logs) share: connection options, the token, the RPC stub and
// errors phrased so that they say what to do.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "engine/common/status.h"
#include "engine/proto/control.grpc.pb.h"

namespace sluice::cli {

/// Options every client command shares.
struct ClientOptions {
  std::string jobmanager = "127.0.0.1:6123";
  std::string token_file;
  std::string output = "table";
  std::string tls_ca, tls_cert, tls_key;
};

void add_client_options(CLI::App* cmd, ClientOptions& o, bool needs_token);

/// The token and where it came from ("--token-file PATH", "SLUICE_TOKEN");
/// empty when none was given.
struct Token {
  std::string value;
  std::string source;
};
Result<Token> token_of(const ClientOptions& o);

Result<std::unique_ptr<proto::JobManager::Stub>> connect(const ClientOptions& o);

/// Prints an RPC error in words that say what to do; returns the exit code
/// (3: refused for the token, 1: anything else).
int rpc_error(const ClientOptions& o, const grpc::Status& st, const Token& token = {});

void deadline(grpc::ClientContext& ctx, int seconds);

/// "YYYY-MM-DD HH:MM:SS" (UTC) of epoch ms.
std::string fmt_time(int64_t ms);

}  // namespace sluice::cli
