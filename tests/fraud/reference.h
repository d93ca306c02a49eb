// What the fraud tests share: the generated input read independently
// (simdjson's DOM parser), a brute-force reference of the job's rules over
// it (each user's events sorted, every rule checked from its definition in
// jobs/fraud/README.md), the ground truth, and the job's outputs.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace sluice::fraud_test {

/// One valid input event.
struct Event {
  enum Kind { kLogin = 0, kTransaction = 1, kError = 2 };
  int kind = kLogin;
  std::string id, user, device, country, merchant;
  bool success = false;
  double amount = 0;
  int64_t ts = 0;
};

/// The valid events of a generated directory and how many lines of each
/// stream were malformed (not an object of that stream's schema).
struct Inputs {
  std::vector<Event> events;
  int64_t malformed = 0;
};
Inputs read_inputs(const std::string& dir);

/// One version of the rules (the job's version 0 by default).
struct Rules {
  int64_t version = 0;
  int64_t effective_ts = INT64_MIN;
  double travel_max_kmh = 900, travel_min_km = 500;
  int64_t card_test_count = 5;
  double card_test_max_amount = 2.0;
  int64_t card_test_window_ms = 120'000;
  int64_t error_storm_count = 20;
  std::set<std::string> allow_users, allow_merchants;
};

/// The stuffing pattern's and the enrichment's settings.
struct Params {
  int64_t fail_count = 5;
  double amount_threshold = 500;
  int64_t within_ms = 600'000;
  int64_t device_ttl_ms = 30LL * 24 * 3'600'000;
  int64_t error_window_ms = 300'000;
};

/// A decision as the tests compare them.
struct Decision {
  std::string rule, user, trigger;
  bool alert = true;
  int64_t rule_version = 0;
  auto tie() const { return std::tie(rule, user, trigger, alert, rule_version); }
  bool operator<(const Decision& o) const { return tie() < o.tie(); }
  bool operator==(const Decision& o) const { return tie() == o.tie(); }
};
std::string to_string(const Decision& d);

/// Every decision the rules make on `in`; `versions` sorted by nothing in
/// particular (the one with the latest effective_ts at or before an event
/// judges it; version 0 = Rules{} unless given).
std::set<Decision> reference_decisions(const Inputs& in, const Params& p, std::vector<Rules> versions = {});

/// A ground-truth line.
struct Truth {
  std::string scenario, variant, user, rule, trigger;
  bool alert = false;
  int64_t ts = 0;
};
std::vector<Truth> read_truth(const std::string& path);
/// The alerting truth as decisions of version 0.
std::set<Decision> truth_alerts(const std::vector<Truth>& truth);

/// A decision row of the audit trail.
struct AuditRow {
  Decision decision;
  std::string decision_id;
  bool scored = false;
  double score = -1;
  std::string score_error;
};
/// Every row of the files (a test failure for a line that does not parse).
std::vector<AuditRow> read_audit(const std::vector<std::string>& files);
/// An alert row (Kafka, file or a SIEM body after unwrapping).
struct AlertRow {
  std::string alert_id, rule, user, trigger;
  int64_t rule_version = 0;
  bool scored = false;
  std::string severity;
};
std::vector<AlertRow> read_alerts(const std::vector<std::string>& lines);

/// The decisions of rows (alerting ones only for alerts); a row seen twice
/// is reported in `repeats`.
std::set<Decision> decisions_of(const std::vector<AuditRow>& rows, std::vector<std::string>* repeats);
std::set<Decision> alerts_of(const std::vector<AlertRow>& rows, std::vector<std::string>* repeats);

/// At most `limit` lines describing how two sets differ; empty if equal.
std::string diff(const std::set<Decision>& expected, const std::set<Decision>& actual, size_t limit = 10);

/// Every line of the files.
std::vector<std::string> lines_of(const std::vector<std::string>& files);

// ---- running the job ----------------------------------------------------------

/// <build>/jobs/fraud/libfraud.so
std::string job_library();
/// `sluice gen --kind fraud --output dir` with `extra` options; fails the test if it fails.
void generate(const std::string& dir, const std::vector<std::string>& extra);
/// --arg pairs: the three inputs in `in_dir` (at `rate` lines per second
/// over all three when > 0), the audit trail as `audit_uri` (default
/// out_dir/audit.ndjson), alerts to out_dir/alerts.ndjson, dead letters to
/// out_dir/dlq.ndjson.
std::vector<std::string> job_args(const std::string& in_dir, const std::string& out_dir, double rate = 0,
                                  const std::string& audit_uri = "");

/// The real scoring service (build/jobs/fraud/scorer/sluice-scorer) on
/// free loopback ports, with a small model and `token` in a 0600 file
/// under `dir`; stopped with SIGTERM when the object goes.
class ScorerProcess {
 public:
  ScorerProcess(const std::string& dir, const std::string& token);
  ~ScorerProcess();
  ScorerProcess(const ScorerProcess&) = delete;
  ScorerProcess& operator=(const ScorerProcess&) = delete;
  bool ok() const { return !grpc_.empty(); }
  const std::string& grpc() const { return grpc_; }  // 127.0.0.1:PORT
  const std::string& http() const { return http_; }
  std::string log() const;

 private:
  int pid_ = -1;
  std::string grpc_, http_, log_;
};

}  // namespace sluice::fraud_test
