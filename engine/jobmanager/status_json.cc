// JSON of the jobmanager's status (HTTP and `sluice status -o json`), built
// from the same protos the gRPC status returns.
#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <map>

#include "engine/common/job_state.h"
#include "engine/common/json.h"
#include "engine/jobmanager/http_api.h"

namespace sluice::jobmanager {

namespace {

/// Appends a JSON object or array member by member; commas are its job.
class Json {
 public:
  explicit Json(std::string& out) : o_(out) {}
  Json& begin_object(std::string_view key = {}) { return open(key, '{'); }
  Json& begin_array(std::string_view key = {}) { return open(key, '['); }
  Json& end_object() { return close('}'); }
  Json& end_array() { return close(']'); }
  Json& str(std::string_view key, std::string_view v) {
    name(key);
    json_append_string(o_, v);
    return *this;
  }
  Json& num(std::string_view key, int64_t v) {
    name(key);
    o_ += std::to_string(v);
    return *this;
  }
  Json& real(std::string_view key, double v) {
    name(key);
    if (!std::isfinite(v)) {
      o_ += "null";
    } else {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.6g", v);
      o_ += buf;
    }
    return *this;
  }
  Json& boolean(std::string_view key, bool v) {
    name(key);
    o_ += v ? "true" : "false";
    return *this;
  }
  Json& null(std::string_view key) {
    name(key);
    o_ += "null";
    return *this;
  }
  /// A raw JSON value (already valid).
  Json& raw(std::string_view key, std::string_view v) {
    name(key);
    o_ += v;
    return *this;
  }

 private:
  Json& open(std::string_view key, char c) {
    name(key);
    o_ += c;
    first_ = true;
    return *this;
  }
  Json& close(char c) {
    o_ += c;
    first_ = false;
    return *this;
  }
  void name(std::string_view key) {
    if (!first_) o_ += ',';
    first_ = false;
    if (!key.empty()) {
      json_append_string(o_, key);
      o_ += ':';
    }
  }
  std::string& o_;
  bool first_ = true;
};

bool has_watermark(int64_t wm) { return wm != INT64_MIN && wm != INT64_MAX; }

/// watermark_ms / watermark_lag_ms: null while there is none; "end" once
/// the input ended (the final watermark).
void watermark(Json& j, int64_t wm, int64_t now_ms) {
  if (has_watermark(wm)) {
    j.num("watermark_ms", wm).num("watermark_lag_ms", std::max<int64_t>(0, now_ms - wm));
  } else {
    j.null("watermark_ms").null("watermark_lag_ms");
  }
  j.str("watermark", wm == INT64_MIN ? "none" : wm == INT64_MAX ? "end" : "set");
}

std::string_view partitioner_name(proto::Partitioner p) {
  switch (p) {
    case proto::PARTITIONER_FORWARD: return "forward";
    case proto::PARTITIONER_HASH: return "hash";
    case proto::PARTITIONER_REBALANCE: return "rebalance";
    case proto::PARTITIONER_BROADCAST: return "broadcast";
    default: return "?";
  }
}

void summary(Json& j, const proto::JobSummary& s) {
  j.str("id", s.job_id())
      .str("name", s.name())
      .str("state", s.state())
      .num("parallelism", s.parallelism())
      .num("submitted_ms", s.submitted_ms())
      .num("ended_ms", s.ended_ms())
      .num("restarts", s.restarts())
      .num("last_checkpoint_id", s.last_checkpoint_id())
      .num("checkpoints_completed", s.checkpoints_completed())
      .str("last_failure", s.last_failure())
      .str("graph_hash", s.graph_hash());
}

void settings(Json& j, std::string_view key, const google::protobuf::Map<std::string, std::string>& m) {
  std::map<std::string, std::string> sorted(m.begin(), m.end());
  j.begin_object(key);
  for (const auto& [k, v] : sorted) j.str(k, redact_setting(k, v));
  j.end_object();
}

}  // namespace

std::string redact_setting(std::string_view key, std::string_view value) {
  auto secret = [](std::string_view k) {
    std::string l(k);
    for (char& c : l) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const char* w : {"password", "passwd", "secret", "token", "credential", "apikey", "api_key", "api-key",
                          "private"}) {
      if (l.find(w) != std::string::npos) return true;
    }
    return false;
  };
  if (secret(key)) return "******";
  // URI parameters: ...?a=1&sasl.password=x
  std::string v(value);
  size_t q = v.find('?');
  if (q == std::string::npos) return v;
  std::string out = v.substr(0, q + 1);
  size_t at = q + 1;
  while (at <= v.size()) {
    size_t amp = v.find('&', at);
    std::string kv = v.substr(at, amp == std::string::npos ? std::string::npos : amp - at);
    size_t eq = kv.find('=');
    if (eq != std::string::npos && secret(kv.substr(0, eq))) kv = kv.substr(0, eq + 1) + "******";
    out += kv;
    if (amp == std::string::npos) break;
    out += '&';
    at = amp + 1;
  }
  return out;
}

std::string job_status_json(const proto::JobStatusResponse& st, int64_t now_ms) {
  std::string o;
  Json j(o);
  const auto& g = st.job_graph();
  j.begin_object();
  summary(j, st.job());
  j.num("attempt", st.attempt()).str("library", st.library_name());
  j.begin_object("job");
  summary(j, st.job());
  j.end_object();

  j.begin_array("restart_causes");
  for (const auto& c : st.restart_causes()) j.str({}, c);
  j.end_array();

  if (st.has_restored_from()) {
    const auto& r = st.restored_from();
    j.begin_object("restored_from")
        .str("path", r.path())
        .num("checkpoint_id", r.checkpoint_id())
        .boolean("savepoint", r.savepoint())
        .num("attempt", r.attempt())
        .num("time_ms", r.time_ms())
        .end_object();
  } else {
    j.null("restored_from");
  }

  j.begin_array("failures");
  for (const auto& f : st.failures()) {
    j.begin_object()
        .num("time_ms", f.time_ms())
        .num("attempt", f.attempt())
        .str("task", f.task())
        .num("vertex", f.vertex())
        .num("subtask", f.subtask())
        .str("taskmanager", f.taskmanager_id())
        .str("message", f.message())
        .boolean("permanent", f.permanent())
        .boolean("restarted", f.restarted())
        .end_object();
  }
  j.end_array();

  // Per-vertex aggregates of its subtasks: sums of counts and rates, the
  // worst (highest) backpressure and busy share — the bottleneck shows —
  // and the lowest watermark (what downstream sees).
  struct Agg {
    uint64_t in = 0, out = 0, dead = 0;
    double in_s = 0, out_s = 0, bp = 0, busy = 0;
    int64_t wm = INT64_MAX;
    bool any = false;
    std::map<std::string, int> states;
  };
  std::map<int, Agg> agg;
  for (const auto& t : st.subtasks()) {
    auto& a = agg[t.vertex()];
    a.any = true;
    a.in += t.records_in();
    a.out += t.records_out();
    a.dead += t.dead_letters();
    a.in_s += t.records_in_per_s();
    a.out_s += t.records_out_per_s();
    a.bp = std::max(a.bp, t.backpressure());
    a.busy = std::max(a.busy, t.busy());
    a.wm = std::min(a.wm, t.watermark_ms());
    ++a.states[t.state()];
  }
  j.begin_array("vertices");
  for (const auto& v : g.vertices()) {
    const auto& a = agg[v.id()];
    j.begin_object()
        .num("id", v.id())
        .str("name", v.name())
        .num("parallelism", v.parallelism())
        .num("max_parallelism", v.max_parallelism())
        .boolean("is_source", v.is_source())
        .boolean("is_dead_letter_sink", v.is_dead_letter_sink());
    j.begin_array("operators");
    for (const auto& op : v.operators()) {
      j.begin_object().str("name", op.name()).str("uid", op.uid()).str("description", op.description()).end_object();
    }
    j.end_array();
    j.num("records_in", static_cast<int64_t>(a.in))
        .num("records_out", static_cast<int64_t>(a.out))
        .num("dead_letters", static_cast<int64_t>(a.dead))
        .real("records_in_per_s", a.in_s)
        .real("records_out_per_s", a.out_s)
        .real("backpressure", a.bp)
        .real("busy", a.busy);
    watermark(j, a.any ? a.wm : INT64_MIN, now_ms);
    j.begin_object("states");
    for (const auto& [s, n] : a.states) j.num(s, n);
    j.end_object();
    j.end_object();
  }
  j.end_array();

  j.begin_array("edges");
  for (const auto& e : g.edges()) {
    j.begin_object()
        .num("id", e.id())
        .num("source", e.source_vertex())
        .num("target", e.target_vertex())
        .str("partitioning", partitioner_name(e.partitioner()))
        .str("tag", e.tag())
        .boolean("dead_letter", e.dead_letter())
        .end_object();
  }
  j.end_array();

  j.begin_array("subtasks");
  for (const auto& t : st.subtasks()) {
    j.begin_object()
        .num("vertex", t.vertex())
        .str("name", t.vertex_name())
        .num("subtask", t.subtask())
        .str("taskmanager", t.taskmanager_id())
        .str("state", t.state())
        .num("records_in", static_cast<int64_t>(t.records_in()))
        .num("records_out", static_cast<int64_t>(t.records_out()))
        .num("dead_letters", static_cast<int64_t>(t.dead_letters()))
        .real("records_in_per_s", t.records_in_per_s())
        .real("records_out_per_s", t.records_out_per_s())
        .real("backpressure", t.backpressure())
        .real("busy", t.busy());
    watermark(j, t.watermark_ms(), now_ms);
    j.end_object();
  }
  j.end_array();

  const auto& c = st.checkpoints();
  j.begin_object("checkpoints")
      .num("completed", c.completed())
      .num("failed", c.failed())
      .num("last_completed_id", c.last_completed_id())
      .num("last_duration_ms", c.last_duration_ms())
      .num("last_size_bytes", c.last_size_bytes())
      .num("last_alignment_ms", c.last_alignment_ms())
      .num("last_sync_ms", c.last_sync_ms())
      .str("last_path", c.last_path())
      .str("dir", st.checkpoint_dir())
      .num("in_progress", c.in_progress());
  j.begin_array("history");
  for (const auto& h : c.history()) {
    j.begin_object()
        .num("id", h.id())
        .boolean("savepoint", h.savepoint())
        .str("status", h.status())
        .num("trigger_ms", h.trigger_ms())
        .num("duration_ms", h.duration_ms())
        .num("size_bytes", h.size_bytes())
        .num("alignment_ms", h.alignment_ms())
        .num("sync_ms", h.sync_ms())
        .num("acknowledged", h.acknowledged())
        .num("tasks", h.tasks())
        .str("failure", h.failure())
        .str("path", h.path())
        .end_object();
  }
  j.end_array();
  j.end_object();

  settings(j, "args", g.args());
  settings(j, "config", g.config());
  j.end_object();
  return o;
}

std::string taskmanagers_json(const std::vector<proto::TaskManagerStatus>& tms) {
  std::string o;
  Json j(o);
  j.begin_array();
  for (const auto& t : tms) {
    j.begin_object()
        .str("id", t.id())
        .str("control_address", t.control_address())
        .str("data_address", t.data_address())
        .num("slots", t.slots())
        .num("slots_used", t.slots_used())
        .num("tasks", t.tasks())
        .num("last_heartbeat_ms_ago", t.last_heartbeat_ms_ago())
        .num("rss_bytes", t.rss_bytes())
        .num("inbound_connections", t.inbound_connections())
        .num("outbound_connections", t.outbound_connections())
        .end_object();
  }
  j.end_array();
  return o;
}

std::string overview_json(const std::vector<proto::JobStatusResponse>& jobs,
                          const std::vector<proto::TaskManagerStatus>& tms) {
  std::string o;
  Json j(o);
  int slots = 0, used = 0;
  for (const auto& t : tms) slots += t.slots(), used += t.slots_used();
  std::map<std::string, int> by_state;
  for (auto s : {JobState::kCreated, JobState::kRunning, JobState::kRestarting, JobState::kFinished,
                 JobState::kCanceled, JobState::kFailed}) {
    by_state[std::string(job_state_name(s))] = 0;
  }
  for (const auto& s : jobs) ++by_state[s.job().state()];
  j.begin_object().num("taskmanager_count", static_cast<int64_t>(tms.size())).num("slots", slots).num("slots_used", used);
  j.begin_object("jobs_by_state");
  for (const auto& [s, n] : by_state) j.num(s, n);
  j.end_object();
  j.begin_array("jobs");
  for (const auto& s : jobs) {
    j.begin_object();
    summary(j, s.job());
    j.end_object();
  }
  j.end_array();
  j.raw("taskmanagers", taskmanagers_json(tms));
  j.end_object();
  return o;
}

}  // namespace sluice::jobmanager
