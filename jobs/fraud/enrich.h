// The enrichment step of the fraud job: per user, logins, transactions and
// API errors put in event-time order and each transaction given what was
// known about the user at its time — the latest successful login (a keyed
// co-process join), whether its device is new (known devices with an
// event-time TTL) and the API errors of the preceding window (counted from
// the user's API errors, the second input).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "engine/api/sluice.h"
#include "jobs/fraud/events.h"

namespace sluice::fraud {

/// The latest successful login of a user.
struct LastLogin {
  std::string id;
  std::string device;
  std::string country;
  int64_t ts = 0;
  SLUICE_FIELDS(id, device, country, ts)
};

/// An API error of a user: its time and id.
struct ErrorMark {
  int64_t ts = 0;
  std::string id;
  SLUICE_FIELDS(ts, id)
};

/// A device the user bought from, and when last.
struct KnownDevice {
  std::string device;
  int64_t last = 0;
  SLUICE_FIELDS(device, last)
};

/// Everything the enrich step keeps about one user (one value of keyed
/// state, kept decoded in memory between checkpoints).
struct UserTrail {
  // Waiting for the watermark, each by (ts, id): one list per input
  // stream, as each arrives nearly in order (an insert lands near the end
  // even while another stream is read far ahead).
  std::vector<Activity> pending_logins;
  std::vector<Activity> pending_txns;
  std::vector<ErrorMark> pending_errors;
  std::vector<ErrorMark> errors;            // passed, still inside the error window of what comes next
  std::vector<KnownDevice> devices;         // at most kMaxDevices
  std::optional<LastLogin> last_login;
  SLUICE_FIELDS(pending_logins, pending_txns, pending_errors, errors, devices, last_login)
};

/// Input 1: a user's logins and transactions (as Activity, not enriched);
/// input 2: the user's API errors. Buffers both until the watermark passes
/// them, then emits the user's activities in (ts, logins first, id) order —
/// the same order at every parallelism, after every restore — each
/// transaction with the API errors in [ts - error_window, ts]. Records at
/// or behind the watermark are dead letters (late). State: one UserTrail
/// per user in a cached value state (written back at every checkpoint), one
/// event-time timer per user at its earliest buffered record. One copy per
/// subtask; task thread only.
class EnrichFunction final : public KeyedCoProcessFunction<std::string, Activity, ApiError, Activity> {
 public:
  /// `device_ttl_ms`: a device stays known this long (event time) after
  /// the user's last purchase from it; `error_window_ms`: API errors this
  /// long before a transaction (and at its time) count for it.
  EnrichFunction(int64_t device_ttl_ms, int64_t error_window_ms)
      : device_ttl_ms_(device_ttl_ms), error_window_ms_(error_window_ms) {}
  EnrichFunction(const EnrichFunction& o) : device_ttl_ms_(o.device_ttl_ms_), error_window_ms_(o.error_window_ms_) {}

  void open(RuntimeContext& ctx) override;
  void process_element1(const Activity& a, Context& ctx, Collector<Activity>& out) override;
  void process_element2(const ApiError& e, Context& ctx, Collector<Activity>& out) override;
  void on_timer(int64_t ts, OnTimerContext& ctx, Collector<Activity>& out) override;

  /// A user keeps at most this many known devices (the least recently used go).
  static constexpr size_t kMaxDevices = 32;

 private:
  void enrich(UserTrail& u, Activity& a) const;
  static void schedule(const UserTrail& u, int64_t before, TimerService& timers);

  int64_t device_ttl_ms_;
  int64_t error_window_ms_;
  state::CachedValueState<UserTrail>* trail_ = nullptr;
};

}  // namespace sluice::fraud
