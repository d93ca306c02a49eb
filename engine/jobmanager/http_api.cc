#include "engine/jobmanager/http_api.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "engine/common/clock.h"
#include "engine/common/json.h"
#include "engine/jobmanager/dashboard/assets.h"

namespace sluice::jobmanager {

namespace {

int64_t now_ms() { return SystemClock::instance().now_ms(); }

HttpResponse json(int code, std::string body) {
  HttpResponse r{code, std::move(body)};
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

HttpResponse error(int code, const std::string& message) {
  std::string o = "{\"error\":";
  json_append_string(o, message);
  return json(code, o + "}");
}

/// 401 without a token, 403 with a wrong one: the message says which.
std::optional<HttpResponse> check_token(const HttpRequest& r, JobManagerView& view, const char* what) {
  std::string h = r.header("Authorization");
  if (h.empty()) {
    spdlog::warn("http: refused {} from {}: no token", what, r.remote);
    auto resp = error(401, std::string(what) + " needs the cluster token and none was sent: send it as "
                               "`Authorization: Bearer <token>` (the dashboard asks for it: Enter token); the token "
                               "is " + view.token_location());
    resp.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"sluice\"");
    return resp;
  }
  std::string_view given = h.rfind("Bearer ", 0) == 0 ? std::string_view(h).substr(7) : std::string_view();
  if (!view.token_matches(given)) {
    spdlog::warn("http: refused {} from {}: wrong token", what, r.remote);
    return error(403, std::string(what) + " refused: the token is not this cluster's token");
  }
  return std::nullopt;
}

int http_code(const Status& st) {
  switch (st.code()) {
    case StatusCode::kNotFound: return 404;
    case StatusCode::kFailedPrecondition: return 409;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kTimeout: return 504;
    case StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

std::string logs_json(const proto::LogResponse& r) {
  std::string o = "{\"logs\":[";
  for (int i = 0; i < r.logs_size(); ++i) {
    const auto& l = r.logs(i);
    if (i) o += ',';
    o += "{\"source\":";
    json_append_string(o, l.source());
    o += ",\"error\":";
    json_append_string(o, l.error());
    o += ",\"lines\":[";
    for (int k = 0; k < l.lines_size(); ++k) {
      if (k) o += ',';
      json_append_string(o, l.lines(k));
    }
    o += "]}";
  }
  return o + "]}";
}

HttpResponse static_file(const dashboard::Asset& a) {
  HttpResponse r{200, std::string(a.content), std::string(a.content_type)};
  // The page runs only its own scripts and talks only to this server; it
  // is never framed (no clickjacking of the cancel button).
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                         "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

/// `handler`, or 503 naming the leader while this jobmanager is a standby.
HttpServer::Handler leading(JobManagerView& view, HttpServer::Handler handler) {
  return [&view, handler = std::move(handler)](const HttpRequest& r) {
    if (auto leader = view.standby_of()) {
      std::string o = "{\"error\":\"standby\",\"leader\":";
      json_append_string(o, *leader);
      return json(503, o + "}");
    }
    return handler(r);
  };
}

}  // namespace

std::string token_location_text(bool in_data_dir) {
  return in_data_dir ? "in the file `token` of the jobmanager's --data-dir (its --ha-dir with standby jobmanagers)"
                     : "the secret the jobmanager was started with (its --token-file, SLUICE_TOKEN_FILE or "
                       "SLUICE_TOKEN)";
}

std::string missing_token_message(const std::string& what, const std::string& location) {
  return what + " needs the cluster token and none was sent: pass --token-file PATH, or set SLUICE_TOKEN_FILE=PATH "
                "or SLUICE_TOKEN=<token> in the environment; the token is " + location;
}

void add_http_api(HttpServer& server, JobManagerView& view) {
  // --- the dashboard (public: static files, nothing of the cluster's)
  server.get(
      "/",
      [](const HttpRequest&) {
        const auto* a = dashboard::find_asset("index.html");
        return a ? static_file(*a) : error(404, "the dashboard is not built into this binary");
      },
      true);
  server.get(
      R"(/ui/([A-Za-z0-9_.-]+))",
      [](const HttpRequest& r) {
        const auto* a = dashboard::find_asset(r.matches.at(1));
        return a ? static_file(*a) : error(404, "no such file");
      },
      true);

  // --- JSON status
  server.get("/overview", leading(view, [&view](const HttpRequest&) {
    return json(200, overview_json(view.job_statuses(), view.taskmanager_statuses()));
  }));
  server.get("/jobs", leading(view, [&view](const HttpRequest&) {
    auto jobs = view.job_statuses();
    std::string o = "[";
    const int64_t now = now_ms();
    for (size_t i = 0; i < jobs.size(); ++i) o += (i ? "," : "") + job_status_json(jobs[i], now);
    return json(200, o + "]");
  }));
  server.get("/taskmanagers", leading(view, [&view](const HttpRequest&) {
    return json(200, taskmanagers_json(view.taskmanager_statuses()));
  }));
  server.get(R"(/jobs/([A-Za-z0-9_-]{1,200}))", leading(view, [&view](const HttpRequest& r) {
    auto st = view.job_status(r.matches.at(1));
    if (!st) return error(404, "unknown job '" + r.matches.at(1) + "'");
    return json(200, job_status_json(*st, now_ms()));
  }));
  // Logs of the job's processes (the jobmanager's and its taskmanagers'
  // latest lines that name the job): ?taskmanager=ID&lines=N.
  server.get(R"(/jobs/([A-Za-z0-9_-]{1,200})/logs)", leading(view, [&view](const HttpRequest& r) {
    proto::LogRequest q;
    q.set_job_id(r.matches.at(1));
    q.set_taskmanager_id(r.param("taskmanager"));
    q.set_max_lines(std::clamp(std::atoi(r.param("lines").c_str()), 0, 5000));
    auto logs = view.logs(q);
    if (!logs.is_ok()) return error(http_code(logs.status()), logs.status().message());
    return json(200, logs_json(*logs));
  }));
  server.get(R"(/taskmanagers/([A-Za-z0-9_.:-]{1,256})/log)", leading(view, [&view](const HttpRequest& r) {
    proto::LogRequest q;
    q.set_taskmanager_id(r.matches.at(1));
    q.set_job_id(r.param("job"));
    q.set_max_lines(std::clamp(std::atoi(r.param("lines").c_str()), 0, 5000));
    auto logs = view.logs(q);
    if (!logs.is_ok()) return error(http_code(logs.status()), logs.status().message());
    return json(200, logs_json(*logs));
  }));

  // --- actions: always the token, whatever the read access
  server.post(R"(/jobs/([A-Za-z0-9_-]{1,200})/cancel)", leading(view, [&view](const HttpRequest& r) {
    if (auto refused = check_token(r, view, "cancel")) return *refused;
    Status st = view.cancel_job(r.matches.at(1));
    if (!st.is_ok()) return error(http_code(st), st.message());
    spdlog::info("http: job {} cancelled by {}", r.matches.at(1), r.remote);
    return json(200, "{\"state\":\"CANCELED\"}");
  }));
  for (bool stop : {false, true}) {
    server.post(std::string(R"(/jobs/([A-Za-z0-9_-]{1,200})/)") + (stop ? "stop" : "savepoint"),
                leading(view, [&view, stop](const HttpRequest& r) {
                  if (auto refused = check_token(r, view, stop ? "stop" : "savepoint")) return *refused;
                  auto sp = view.savepoint(r.matches.at(1), "", stop);
                  if (!sp.is_ok()) return error(http_code(sp.status()), sp.status().message());
                  spdlog::info("http: {} of job {} by {}: {}", stop ? "stop with savepoint" : "savepoint",
                               r.matches.at(1), r.remote, sp->path());
                  std::string o = "{\"savepoint_id\":" + std::to_string(sp->checkpoint_id()) + ",\"path\":";
                  json_append_string(o, sp->path());
                  return json(200, o + "}");
                }));
  }
}

}  // namespace sluice::jobmanager
