// The enrichment step of the fraud job: per user, logins and transactions
// put in event-time order and each transaction given what was known about
// the user at its time — the latest successful login (a keyed co-process
// join), whether its device is new (keyed state of known devices with an
// event-time TTL) and the API errors of the preceding window (the
// interval join's pairs, second input).
#pragma once

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "engine/api/sluice.h"
#include "jobs/fraud/events.h"

namespace sluice::fraud {

/// The latest successful login of a user (keyed state).
struct LastLogin {
  std::string id;
  std::string device;
  std::string country;
  int64_t ts = 0;
  SLUICE_FIELDS(id, device, country, ts)
};

/// Input 1: a user's logins and transactions (as Activity, not enriched);
/// input 2: the API errors that fall into a transaction's error window.
/// Buffers input 1 in keyed state until the watermark passes it, then
/// emits the user's activities in (ts, logins first, id) order — the same
/// order at every parallelism, after every restore. Records at or behind
/// the watermark are dead letters (late). One copy per subtask; task
/// thread only.
class EnrichFunction final : public KeyedCoProcessFunction<std::string, Activity, TxnError, Activity> {
 public:
  /// `device_ttl_ms`: a device stays known this long (event time) after
  /// the user's last purchase from it.
  explicit EnrichFunction(int64_t device_ttl_ms) : device_ttl_ms_(device_ttl_ms) {}
  EnrichFunction(const EnrichFunction& o) : device_ttl_ms_(o.device_ttl_ms_) {}

  void open(RuntimeContext& ctx) override;
  void process_element1(const Activity& a, Context& ctx, Collector<Activity>& out) override;
  void process_element2(const TxnError& e, Context& ctx, Collector<Activity>& out) override;
  void on_timer(int64_t ts, OnTimerContext& ctx, Collector<Activity>& out) override;

  /// A user keeps at most this many known devices (the least recently used go).
  static constexpr size_t kMaxDevices = 32;

 private:
  using Slot = std::tuple<int64_t, int32_t, std::string>;  // (ts, kind, id)
  void enrich(Activity& a);

  int64_t device_ttl_ms_;
  state::OrderedMapState<Slot, Activity>* pending_ = nullptr;
  state::MapState<std::string, std::vector<TxnError>>* errors_ = nullptr;  // txn id -> its errors
  state::MapState<std::string, int64_t>* devices_ = nullptr;               // device -> last purchase ts
  state::ValueState<LastLogin>* last_login_ = nullptr;
};

}  // namespace sluice::fraud
