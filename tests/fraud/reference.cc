#include "tests/fraud/reference.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <fstream>
#include <signal.h>

#include "jobs/fraud/rules.h"
#include "tests/integration/support.h"

namespace sluice::fraud_test {

namespace {

bool get_string(simdjson::dom::element d, const char* k, std::string& out) {
  std::string_view v;
  if (d[k].get(v) != simdjson::SUCCESS) return false;
  out = std::string(v);
  return true;
}

/// The event of one line of `stream`, or nothing if the line is malformed
/// for the job (not an object, a field missing or of the wrong type).
bool parse_event(simdjson::dom::parser& p, const std::string& line, int stream, Event& e) {
  simdjson::dom::element d;
  if (p.parse(line).get(d) != simdjson::SUCCESS || !d.is_object()) return false;
  e = Event{};
  e.kind = stream;
  if (!get_string(d, "id", e.id) || !get_string(d, "user", e.user) || d["ts"].get(e.ts) != simdjson::SUCCESS) {
    return false;
  }
  if (stream == Event::kLogin) {
    std::string ip;
    return get_string(d, "device", e.device) && get_string(d, "ip", ip) && get_string(d, "country", e.country) &&
           d["success"].get(e.success) == simdjson::SUCCESS;
  }
  if (stream == Event::kError) {
    std::string endpoint;
    int64_t status = 0;
    return get_string(d, "endpoint", endpoint) && d["status"].get(status) == simdjson::SUCCESS;
  }
  std::string currency;
  double amount = 0;
  auto a = d["amount"];
  if (a.get(amount) != simdjson::SUCCESS) {
    int64_t i = 0;
    if (a.get(i) != simdjson::SUCCESS) return false;
    amount = static_cast<double>(i);
  }
  e.amount = amount;
  return get_string(d, "currency", currency) && get_string(d, "merchant", e.merchant) &&
         get_string(d, "device", e.device);
}

const Rules& rules_at(const std::vector<Rules>& sorted, int64_t ts) {
  const Rules* best = &sorted.front();
  for (const auto& r : sorted) {
    if (r.effective_ts > ts) break;
    best = &r;
  }
  return *best;
}

}  // namespace

std::string to_string(const Decision& d) {
  return d.rule + " " + d.user + " " + d.trigger + (d.alert ? " alert" : " no-alert") + " v" +
         std::to_string(d.rule_version);
}

Inputs read_inputs(const std::string& dir) {
  Inputs in;
  simdjson::dom::parser p;
  const std::pair<const char*, int> streams[] = {
      {"logins.ndjson", Event::kLogin}, {"api_errors.ndjson", Event::kError}, {"transactions.ndjson", Event::kTransaction}};
  for (const auto& [name, kind] : streams) {
    for (const auto& line : it::read_lines(dir + "/" + name)) {
      if (it::is_blank(line)) continue;
      Event e;
      if (parse_event(p, line, kind, e)) in.events.push_back(std::move(e));
      else ++in.malformed;
    }
  }
  return in;
}

std::set<Decision> reference_decisions(const Inputs& in, const Params& p, std::vector<Rules> versions) {
  if (versions.empty() || versions.front().version != 0) versions.insert(versions.begin(), Rules{});
  std::stable_sort(versions.begin(), versions.end(), [](const Rules& a, const Rules& b) {
    return std::tie(a.effective_ts, a.version) < std::tie(b.effective_ts, b.version);
  });
  std::map<std::string, std::vector<const Event*>> by_user;
  std::map<std::string, std::vector<int64_t>> errors;  // user -> error times
  for (const auto& e : in.events) {
    if (e.kind == Event::kError) errors[e.user].push_back(e.ts);
    else by_user[e.user].push_back(&e);
  }
  for (auto& [u, ts] : errors) std::sort(ts.begin(), ts.end());
  std::set<Decision> out;
  for (auto& [user, events] : by_user) {
    std::sort(events.begin(), events.end(), [](const Event* a, const Event* b) {
      return std::tie(a->ts, a->kind, a->id) < std::tie(b->ts, b->kind, b->id);
    });
    std::vector<int64_t> fails;               // since the last stuffing match
    std::map<std::string, int64_t> bought;    // device -> last purchase
    const Event* prev_login = nullptr;        // last successful login
    std::vector<int64_t> small;               // recent small purchases
    auto decide = [&](const std::string& rule, const Event& trigger, const Rules& r) {
      bool alert = r.allow_users.count(user) == 0 &&
                   !(trigger.kind == Event::kTransaction && r.allow_merchants.count(trigger.merchant) > 0);
      out.insert(Decision{rule, user, trigger.id, alert, r.version});
    };
    for (const Event* e : events) {
      const Rules& r = rules_at(versions, e->ts);
      if (e->kind == Event::kLogin) {
        if (!e->success) {
          fails.push_back(e->ts);
          continue;
        }
        if (prev_login && prev_login->country != e->country) {
          double km = fraud::distance_km(prev_login->country, e->country);
          double hours = static_cast<double>(e->ts - prev_login->ts) / 3.6e6;
          if (km >= r.travel_min_km && (hours <= 0 || km / hours > r.travel_max_kmh)) decide("impossible_travel", *e, r);
        }
        prev_login = e;
        continue;
      }
      // A purchase: from a new device? (none from it within the TTL before)
      auto it = bought.find(e->device);
      const bool new_device = it == bought.end() || it->second <= e->ts - p.device_ttl_ms;
      if (e->amount >= p.amount_threshold && new_device) {
        int64_t n = std::count_if(fails.begin(), fails.end(), [&](int64_t f) { return e->ts - f < p.within_ms; });
        if (n >= p.fail_count) {
          decide("stuffing_purchase", *e, r);
          fails.clear();
        }
      }
      bought[e->device] = std::max(e->ts, it == bought.end() ? e->ts : it->second);
      if (e->amount <= r.card_test_max_amount) {
        std::erase_if(small, [&](int64_t t) { return t <= e->ts - r.card_test_window_ms; });
        small.push_back(e->ts);
        if (static_cast<int64_t>(small.size()) >= r.card_test_count) {
          decide("card_testing", *e, r);
          small.clear();
        }
      }
      const auto& errs = errors[user];
      int64_t n = std::upper_bound(errs.begin(), errs.end(), e->ts) -
                  std::lower_bound(errs.begin(), errs.end(), e->ts - p.error_window_ms);
      if (n >= r.error_storm_count) decide("error_storm", *e, r);
    }
  }
  return out;
}

std::vector<Truth> read_truth(const std::string& path) {
  std::vector<Truth> out;
  simdjson::dom::parser p;
  for (const auto& line : it::read_lines(path)) {
    simdjson::dom::element d;
    Truth t;
    if (p.parse(line).get(d) != simdjson::SUCCESS || !get_string(d, "scenario", t.scenario) ||
        !get_string(d, "variant", t.variant) || !get_string(d, "user", t.user) || !get_string(d, "rule", t.rule) ||
        !get_string(d, "trigger", t.trigger) || d["alert"].get(t.alert) != simdjson::SUCCESS ||
        d["ts"].get(t.ts) != simdjson::SUCCESS) {
      ADD_FAILURE() << "ground truth line does not parse: " << line;
      continue;
    }
    out.push_back(t);
  }
  return out;
}

std::set<Decision> truth_alerts(const std::vector<Truth>& truth) {
  std::set<Decision> out;
  for (const auto& t : truth)
    if (t.alert) out.insert(Decision{t.rule, t.user, t.trigger, true, 0});
  return out;
}

std::vector<AuditRow> read_audit(const std::vector<std::string>& files) {
  std::vector<AuditRow> out;
  simdjson::dom::parser p;
  for (const auto& line : lines_of(files)) {
    simdjson::dom::element d;
    AuditRow r;
    if (p.parse(line).get(d) != simdjson::SUCCESS || !get_string(d, "decision_id", r.decision_id) ||
        !get_string(d, "rule", r.decision.rule) || !get_string(d, "user", r.decision.user) ||
        !get_string(d, "trigger_id", r.decision.trigger) || d["alert"].get(r.decision.alert) != simdjson::SUCCESS ||
        d["rule_version"].get(r.decision.rule_version) != simdjson::SUCCESS ||
        d["scored"].get(r.scored) != simdjson::SUCCESS || d["score"].get(r.score) != simdjson::SUCCESS ||
        !get_string(d, "score_error", r.score_error)) {
      ADD_FAILURE() << "audit line does not parse: " << line;
      continue;
    }
    out.push_back(r);
  }
  return out;
}

std::vector<AlertRow> read_alerts(const std::vector<std::string>& lines) {
  std::vector<AlertRow> out;
  simdjson::dom::parser p;
  for (const auto& line : lines) {
    if (it::is_blank(line)) continue;
    simdjson::dom::element d;
    AlertRow r;
    if (p.parse(line).get(d) != simdjson::SUCCESS || !get_string(d, "alert_id", r.alert_id) ||
        !get_string(d, "rule", r.rule) || !get_string(d, "user", r.user) || !get_string(d, "trigger_id", r.trigger) ||
        d["rule_version"].get(r.rule_version) != simdjson::SUCCESS || d["scored"].get(r.scored) != simdjson::SUCCESS ||
        !get_string(d, "severity", r.severity)) {
      ADD_FAILURE() << "alert does not parse: " << line;
      continue;
    }
    out.push_back(r);
  }
  return out;
}

std::set<Decision> decisions_of(const std::vector<AuditRow>& rows, std::vector<std::string>* repeats) {
  std::set<Decision> out;
  std::set<std::string> ids;
  for (const auto& r : rows) {
    if (!ids.insert(r.decision_id).second && repeats) repeats->push_back(to_string(r.decision));
    out.insert(r.decision);
  }
  return out;
}

std::set<Decision> alerts_of(const std::vector<AlertRow>& rows, std::vector<std::string>* repeats) {
  std::set<Decision> out;
  std::set<std::string> ids;
  for (const auto& r : rows) {
    Decision d{r.rule, r.user, r.trigger, true, r.rule_version};
    if (!ids.insert(r.alert_id).second && repeats) repeats->push_back(to_string(d));
    out.insert(d);
  }
  return out;
}

std::string diff(const std::set<Decision>& expected, const std::set<Decision>& actual, size_t limit) {
  std::string out;
  size_t n = 0;
  for (const auto& d : expected)
    if (!actual.count(d) && n++ < limit) out += "missing: " + to_string(d) + "\n";
  for (const auto& d : actual)
    if (!expected.count(d) && n++ < limit) out += "unexpected: " + to_string(d) + "\n";
  if (n > limit) out += "... " + std::to_string(n - limit) + " more\n";
  return out;
}

std::vector<std::string> lines_of(const std::vector<std::string>& files) {
  std::vector<std::string> out;
  for (const auto& f : files)
    for (auto& l : it::read_lines(f))
      if (!it::is_blank(l)) out.push_back(std::move(l));
  return out;
}

std::string job_library() { return it::build_dir() + "/jobs/fraud/libfraud.so"; }

void generate(const std::string& dir, const std::vector<std::string>& extra) {
  std::vector<std::string> args{"gen", "--kind", "fraud", "--output", dir};
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = it::run_sluice(args);
  ASSERT_EQ(r.exit_code, 0) << r.describe(args);
}

std::vector<std::string> job_args(const std::string& in_dir, const std::string& out_dir, double rate,
                                  const std::string& audit_uri) {
  std::vector<std::string> out;
  // The streams' shares of the lines (30 %, 10 %, 60 %) keep them in step.
  const std::pair<const char*, double> streams[] = {{"logins", 0.3}, {"api_errors", 0.1}, {"transactions", 0.6}};
  for (const auto& [name, share] : streams) {
    std::string uri = "file://" + in_dir + "/" + name + ".ndjson";
    if (rate > 0) uri += "?rate=" + std::to_string(static_cast<int64_t>(std::max(1.0, rate * share)));
    out.insert(out.end(), {"--arg", std::string(name) + "=" + uri});
  }
  out.insert(out.end(), {"--arg", "audit=" + (audit_uri.empty() ? "file://" + out_dir + "/audit.ndjson" : audit_uri),
                         "--arg", "alerts=file://" + out_dir + "/alerts.ndjson", "--arg",
                         "dlq=file://" + out_dir + "/dlq.ndjson"});
  return out;
}

ScorerProcess::ScorerProcess(const std::string& dir, const std::string& token) : log_(dir + "/scorer.log") {
  it::write_file(dir + "/model.json",
                 "{\"version\":\"fraud-test-1\",\"bias\":-3.0,\"weights\":{\"amount_log\":0.4,\"new_device\":1.5,"
                 "\"failed_logins\":0.3,\"api_errors\":0.05,\"rule_impossible_travel\":2.0}}");
  it::write_file(dir + "/scorer-token", token + "\n");
  std::filesystem::permissions(dir + "/scorer-token", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::replace);
  const std::string ready = dir + "/scorer-ready.json";
  pid_ = it::start_process({it::build_dir() + "/jobs/fraud/scorer/sluice-scorer", "--model", dir + "/model.json",
                            "--token-file", dir + "/scorer-token", "--grpc-bind", "127.0.0.1:0", "--http-bind",
                            "127.0.0.1:0", "--ready-file", ready},
                           log_, /*die_with_parent=*/true);
  simdjson::dom::parser p;
  for (int i = 0; i < 200 && pid_ > 0; ++i) {
    auto lines = it::read_lines(ready);
    simdjson::dom::element d;
    std::string_view g, h;
    if (!lines.empty() && p.parse(lines[0]).get(d) == simdjson::SUCCESS && d["grpc"].get(g) == simdjson::SUCCESS &&
        d["http"].get(h) == simdjson::SUCCESS) {
      grpc_ = std::string(g);
      http_ = std::string(h);
      return;
    }
    if (it::wait_process(pid_, std::chrono::milliseconds(50)) >= 0) {
      pid_ = -1;
      break;
    }
  }
  ADD_FAILURE() << "sluice-scorer did not start: " << log();
}

ScorerProcess::~ScorerProcess() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  if (it::wait_process(pid_, std::chrono::seconds(10)) < 0) {
    ::kill(pid_, SIGKILL);
    it::wait_process(pid_, std::chrono::seconds(10));
  }
}

std::string ScorerProcess::log() const {
  std::string out;
  for (const auto& l : it::read_lines(log_)) out += l + "\n";
  return out;
}

}  // namespace sluice::fraud_test
