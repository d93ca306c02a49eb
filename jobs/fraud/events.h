// The records of the fraud example: the three input streams (logins, API
// errors, transactions), what the job derives from them (each user's
// activity in event-time order, enriched; signals; decisions) and what it
// writes (decisions to the audit trail, alerts to Kafka and SIEMs).
// Shared by the job, the generator (`sluice gen --kind fraud`) and the
// tests, which read the outputs with their own parser.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/common/serde.h"

namespace sluice::fraud {

/// {"id":"l17","user":"u42","device":"d42-1","ip":"10.0.4.2","country":"DE","success":false,"ts":1700000000123}
struct Login {
  std::string id;
  std::string user;
  std::string device;
  std::string ip;
  std::string country;  // ISO 3166 alpha-2 (geo.h knows where)
  bool success = false;
  int64_t ts = 0;  // event time, epoch ms
  SLUICE_FIELDS(id, user, device, ip, country, success, ts)
};

/// {"id":"e9","user":"u42","endpoint":"/v1/cards","status":502,"ts":...}
struct ApiError {
  std::string id;
  std::string user;
  std::string endpoint;
  int32_t status = 0;
  int64_t ts = 0;
  SLUICE_FIELDS(id, user, endpoint, status, ts)
};

/// {"id":"t5","user":"u42","amount":12.5,"currency":"EUR","merchant":"m7","device":"d42-1","ts":...}
struct Transaction {
  std::string id;
  std::string user;
  double amount = 0;
  std::string currency;
  std::string merchant;
  std::string device;
  int64_t ts = 0;
  SLUICE_FIELDS(id, user, amount, currency, merchant, device, ts)
};

/// A user's login or transaction, as the enrichment step emits it: in
/// event-time order per user (ties: logins first, then by id), each
/// transaction with what was known about the user at its time.
struct Activity {
  static constexpr int32_t kLogin = 0;
  static constexpr int32_t kTransaction = 1;
  int32_t kind = kLogin;
  std::string id;
  std::string user;
  std::string device;
  int64_t ts = 0;
  // logins
  std::string ip;
  std::string country;
  bool success = false;
  // transactions
  double amount = 0;
  std::string currency;
  std::string merchant;
  bool new_device = false;      // no purchase from this device within the device TTL before
  std::string login_device;     // the latest successful login at or before ts ("" if none)
  std::string login_country;
  int64_t login_ts = 0;
  int32_t errors_before = 0;    // API errors of the user in the error window before ts
  std::vector<std::string> error_ids;  // their ids (at most kMaxErrorIds, earliest first)
  SLUICE_FIELDS(kind, id, user, device, ts, ip, country, success, amount, currency, merchant, new_device,
                login_device, login_country, login_ts, errors_before, error_ids)

  static constexpr size_t kMaxErrorIds = 64;
  bool is_login() const { return kind == kLogin; }
  bool is_transaction() const { return kind == kTransaction; }
};

/// What the rule check sees: an enriched activity, or a CEP match whose
/// last event is `activity` (the purchase) and whose events are `event_ids`.
struct Signal {
  std::string rule;  // "" for a plain activity; the pattern's rule for a match
  std::vector<std::string> event_ids;
  int32_t failed_logins = 0;  // of a match
  Activity activity;
  SLUICE_FIELDS(rule, event_ids, failed_logins, activity)
};

/// A rule update from the `rules` topic. `version` must grow; fields left
/// out keep the value of the version before. Takes effect for events at or
/// after `effective_ts` (event time), in every subtask.
///   {"version":2,"effective_ts":1700000600000,"allow_users":["u7"],"error_storm_count":30}
struct RuleUpdate {
  int64_t version = 0;
  int64_t effective_ts = 0;
  std::optional<double> travel_max_kmh;        // consecutive logins faster than this
  std::optional<double> travel_min_km;         // ... and at least this far apart
  std::optional<int64_t> card_test_count;      // this many small transactions ...
  std::optional<double> card_test_max_amount;  // ... of at most this amount ...
  std::optional<int64_t> card_test_window_ms;  // ... within this window
  std::optional<int64_t> error_storm_count;    // a transaction after this many API errors in the error window
  std::optional<std::vector<std::string>> allow_users;      // never alerted (decisions still audited)
  std::optional<std::vector<std::string>> allow_merchants;  // transactions there never alerted
  SLUICE_FIELDS(version, effective_ts, travel_max_kmh, travel_min_km, card_test_count, card_test_max_amount,
                card_test_window_ms, error_storm_count, allow_users, allow_merchants)
};

/// One decision about a suspicious sequence: a rule matched (alert, or
/// not when allow-listed), with the score of the model service when it
/// answered. Written to the audit trail, every one exactly once.
struct Decision {
  std::string decision_id;  // stable: rule, user and trigger event (the alert id of an alert)
  std::string rule;         // stuffing_purchase, card_testing, impossible_travel, error_storm
  int64_t rule_version = 0;
  std::string user;
  std::string trigger_id;   // the event that completed the sequence
  std::vector<std::string> event_ids;
  int64_t ts = 0;           // event time of the trigger
  bool alert = false;
  std::string reason;       // why (not) alerted
  double amount = 0;        // the trigger transaction's (0 for a login)
  std::string merchant;
  std::string device;
  std::string country;
  std::map<std::string, double> features;  // what the model was (to be) given
  double score = -1;        // the model's probability; -1 when unscored
  bool scored = false;
  std::string score_error;  // why unscored (timeout, unavailable, ...)
  std::string model_version;
  int64_t decided_at = 0;   // wall clock (ms) when the rule decided
  int64_t latency_ms = 0;   // wall clock from the decision to its score (or giving up)
  SLUICE_FIELDS(decision_id, rule, rule_version, user, trigger_id, event_ids, ts, alert, reason, amount, merchant,
                device, country, features, score, scored, score_error, model_version, decided_at, latency_ms)
};

/// What security gets: the alert of a decision. `alert_id` is stable
/// (the same on every delivery, run and restore), so receivers can drop
/// repeats.
struct Alert {
  std::string alert_id;
  std::string rule;
  int64_t rule_version = 0;
  std::string user;
  std::string trigger_id;
  std::vector<std::string> event_ids;
  int64_t ts = 0;
  std::string severity;  // high (score >= 0.8 or unscored), medium
  double score = -1;
  bool scored = false;
  double amount = 0;
  std::string merchant;
  std::string device;
  std::string country;
  std::string reason;
  SLUICE_FIELDS(alert_id, rule, rule_version, user, trigger_id, event_ids, ts, severity, score, scored, amount,
                merchant, device, country, reason)
};

}  // namespace sluice::fraud
