// The jobmanager's HTTP face, on the same server (and port) as before:
// the JSON status (/overview, /jobs, /jobs/<id>, /taskmanagers, logs and
// exceptions), the actions of the web dashboard (cancel, savepoint, stop
// with savepoint; POST with `Authorization: Bearer <token>`, the same
// cluster token the CLI sends) and the dashboard itself: static
// HTML/CSS/JavaScript compiled into the binary (dashboard/, embedded by
// CMake), served at / and /ui/....
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/http_server.h"
#include "engine/common/status.h"
#include "engine/proto/control.pb.h"

namespace sluice::jobmanager {

/// Where the cluster token is, in words for an error message: in the
/// jobmanager's <data-dir>/token when it generated (or read) it there,
/// else the secret it was started with. Never the path itself: the
/// message goes to clients that are not (yet) authenticated.
std::string token_location_text(bool in_data_dir);

/// The message for a call that sent no token: every way the CLI takes one
/// (`--token-file`, `SLUICE_TOKEN_FILE`, `SLUICE_TOKEN`) and where it is.
std::string missing_token_message(const std::string& what, const std::string& location);

/// What the HTTP API reads from and does to the jobmanager. Implemented by
/// the jobmanager; every method is thread-safe (called from HTTP workers).
class JobManagerView {
 public:
  virtual ~JobManagerView() = default;
  virtual std::vector<proto::JobStatusResponse> job_statuses() = 0;
  virtual std::optional<proto::JobStatusResponse> job_status(const std::string& job_id) = 0;
  virtual std::vector<proto::TaskManagerStatus> taskmanager_statuses() = 0;
  /// The actions, with the same checks and errors as the CLI's RPCs.
  virtual Status cancel_job(const std::string& job_id) = 0;
  virtual Result<proto::SavepointResponse> savepoint(const std::string& job_id, const std::string& path,
                                                     bool stop) = 0;
  virtual Result<proto::LogResponse> logs(const proto::LogRequest& request) = 0;
  /// Constant-time comparison with the cluster token.
  virtual bool token_matches(std::string_view token) const = 0;
  /// Where a refused client finds the token, for the error message: the
  /// file the jobmanager generated, or the secret it was started with.
  virtual std::string token_location() const { return token_location_text(true); }
  /// Standby jobmanagers: unset while this jobmanager serves (the only one,
  /// or the elected leader); else the leader's HTTP address as last seen
  /// ("" if unknown). A standby answers every status and action with 503.
  virtual std::optional<std::string> standby_of() const { return std::nullopt; }
};

/// Registers every route on `server` (before it starts). `open_read_access`:
/// whether reads need the token (with `--read-access token` the server
/// itself refuses them without it; the dashboard's static files stay
/// public, they hold nothing of the cluster's).
void add_http_api(HttpServer& server, JobManagerView& view);

/// JSON of one job as /jobs/<id> serves it (and `sluice status -o json`
/// prints): the summary fields at the top level and under "job", vertices
/// with their chained operators and live rates, edges, subtasks,
/// checkpoints with their history, restore, failures, arguments and
/// configuration (values of secret-looking keys masked). `now_ms`: epoch
/// ms, for watermark lags.
std::string job_status_json(const proto::JobStatusResponse& status, int64_t now_ms);
std::string taskmanagers_json(const std::vector<proto::TaskManagerStatus>& tms);
/// Cluster overview: taskmanagers, slots, jobs by state, job summaries.
std::string overview_json(const std::vector<proto::JobStatusResponse>& jobs,
                          const std::vector<proto::TaskManagerStatus>& tms);

/// "******" for values of keys that look secret (password, secret, token,
/// credential, api key) and for such parameters inside URIs (`?password=x`).
std::string redact_setting(std::string_view key, std::string_view value);

}  // namespace sluice::jobmanager
