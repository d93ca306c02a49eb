#include "engine/jobmanager/placement.h"

#include <algorithm>
#include <cctype>

namespace sluice::jobmanager {

Result<std::vector<std::string>> place_slots(std::vector<PlacementCandidate> candidates, int need) {
  int total = 0;
  for (const auto& c : candidates) total += std::max(0, c.free_slots);
  if (total < need) {
    return Status::resource_exhausted("waiting for slots: need " + std::to_string(need) + ", " +
                                      std::to_string(total) + " free");
  }
  std::vector<std::string> slots(need);
  for (int i = 0; i < need; ++i) {
    // The healthy candidate with the most free slots; a suspect only when
    // no healthy one has room left.
    PlacementCandidate* best = nullptr;
    for (auto& c : candidates) {
      if (c.free_slots <= 0) continue;
      if (!best || (best->suspect && !c.suspect) ||
          (best->suspect == c.suspect && c.free_slots > best->free_slots)) {
        best = &c;
      }
    }
    slots[i] = best->id;
    --best->free_slots;
  }
  return slots;
}

std::vector<std::string> Suspects::implicate(const std::string& cause,
                                             const std::map<std::string, std::string>& data_addresses,
                                             int64_t now_ms) {
  std::vector<std::string> hit;
  for (const auto& [tm, address] : data_addresses) {
    if (address.empty()) continue;
    // "…at 10.0.0.2:4455 lost…": the address, not a longer port that starts with it.
    for (size_t p = cause.find(address); p != std::string::npos; p = cause.find(address, p + 1)) {
      size_t end = p + address.size();
      if (end < cause.size() && cause[end] >= '0' && cause[end] <= '9') continue;
      if (p > 0 && (std::isalnum(static_cast<unsigned char>(cause[p - 1])) || cause[p - 1] == '.')) continue;
      add(tm, now_ms);
      hit.push_back(tm);
      break;
    }
  }
  return hit;
}

bool Suspects::suspect(const std::string& tm, int64_t now_ms) const {
  auto it = until_.find(tm);
  return it != until_.end() && now_ms < it->second;
}

}  // namespace sluice::jobmanager
