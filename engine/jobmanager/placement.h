// Where the next attempt of a job runs: Flink's slot sharing (slot i of a
// job runs subtask i of every vertex) over the registered taskmanagers,
// spread by free slots, avoiding taskmanagers suspected of the last failure.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/common/status.h"
#include "engine/common/time.h"

namespace sluice::jobmanager {

/// A taskmanager as placement sees it.
struct PlacementCandidate {
  std::string id;
  int free_slots = 0;
  bool suspect = false;  // named by a recent failure: used only if the others lack slots
};

/// Slot i of the job -> taskmanager id, or kResourceExhausted saying how
/// many slots are free. Each next slot goes to the candidate with the most
/// free slots left; suspects only when the others cannot hold the job.
Result<std::vector<std::string>> place_slots(std::vector<PlacementCandidate> candidates, int need);

/// Taskmanagers a failure implicated, kept out of placement for a while.
/// A taskmanager whose control calls or deploy failed is dropped from the
/// registry at once (the jobmanager forgets it until it registers again);
/// one only named by a failure — the far end of a lost data-plane
/// connection, which may be alive but unreachable from its peers — is a
/// suspect here for `period`, and placement avoids it while others have
/// room. Not thread-safe: used under the jobmanager's lock.
class Suspects {
 public:
  explicit Suspects(Duration period = Duration(30'000)) : period_(period) {}
  /// `data_addresses`: taskmanager id -> its data-plane address. Marks
  /// every taskmanager whose address appears in `cause`; returns their ids.
  std::vector<std::string> implicate(const std::string& cause,
                                     const std::map<std::string, std::string>& data_addresses, int64_t now_ms);
  void add(const std::string& tm, int64_t now_ms) { until_[tm] = now_ms + period_.count(); }
  bool suspect(const std::string& tm, int64_t now_ms) const;
  void forget(const std::string& tm) { until_.erase(tm); }

 private:
  Duration period_;
  std::map<std::string, int64_t> until_;  // steady ms
};

}  // namespace sluice::jobmanager
